//! The client against the simulator over real loopback HTTP: validation, action codes, AUTO
//! numbering under concurrency, restart persistence, every fault kind with the client's retries,
//! 401, plain and double-encoded bodies, key case, and logs free of card data and keys.
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use cardlane::gateway::record::{CardRequest, CheckRequest, CustomerFields, CustomerRequest};
use cardlane::gateway::response::parse_reply;
use cardlane::gateway::sim::{
    self, CardFacts, CardReadError, CardReader, ReadContext, SimConfig, SimServer,
};
use cardlane::gateway::{
    ApiKey, ClientConfig, Delivery, GatewayClient, Outcome, PanString, RetryPolicy,
};
use serde_json::{json, Value};

mod common;
use common::OutputWithin;

const KEY: &str = "sim-test-key-0f8fad5b-d9cb-469f";
/// Visa test card from the vendor's samples (onepay-gateway.md).
const PAN: &str = "4005571701111111";
/// One digit too many for `card.number` (customer-api.md: 13 to 19 digits).
const BAD_NUMBER: &str = "40055717011111119999";
const TRACKS: &str = "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?";

// ---- log capture: every test in this binary logs at TRACE into one buffer ----

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static LogBuf {
    static LOGS: OnceLock<LogBuf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buf
    })
}

// ---- helpers ----

async fn start(plain_json: bool, db: Option<&std::path::Path>) -> SimServer {
    logs();
    let mut cfg = SimConfig::new(ApiKey::new(KEY));
    cfg.plain_json = plain_json;
    cfg.db_path = db.map(|p| p.to_path_buf());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::spawn(cfg, listener).unwrap()
}

fn client_for(base_url: &str, key: &str, attempts: u32) -> GatewayClient {
    let mut cfg = ClientConfig::new(base_url, ApiKey::new(key));
    cfg.retry = RetryPolicy {
        max_attempts: attempts,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
    };
    cfg.total_timeout = Duration::from_secs(5);
    GatewayClient::new(cfg).unwrap()
}

fn swipe(id: &str, action: &str) -> CustomerRequest {
    CustomerRequest {
        client_ip: Some("10.0.0.5".into()),
        customer: CustomerFields {
            customer_id: Some(id.into()),
            first_name: Some("Oscar".into()),
            last_name: Some("Brady".into()),
            zip: Some("32503".into()),
            action_code: Some(action.into()),
            ..Default::default()
        },
        card: Some(CardRequest {
            track_data: Some(TRACKS.into()),
            entry_mode: Some("90".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn raw_post(base: &str, key: &str, body: &Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/Customer"))
        .header("x-authorization", key)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn customers(base: &str) -> Vec<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/_sim/customers"))
        .header("x-authorization", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array().cloned().unwrap_or_default()
}

async fn fault(base: &str, spec: Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/_sim/faults"))
        .header("x-authorization", KEY)
        .json(&spec)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

fn saved_id(d: &Delivery) -> String {
    match &d.outcome {
        Outcome::Saved { customer_id, .. } => customer_id.clone(),
        other => panic!("expected saved, got {other:?}"),
    }
}

// ---- validation ----

/// Each row: a patch to a valid body, the field the error must name. Values chosen by hand
/// against customer-api.md; the ABA numbers' checksums are worked out in the comments.
#[tokio::test]
async fn every_validation_rule_is_result_code_3_naming_the_field() {
    let sim = start(false, None).await;
    let long = |n: usize| "x".repeat(n);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"client_ip": long(46)}), "client_ip"),
        (json!({"customer": {"first_name": long(51)}}), "first_name"),
        (json!({"customer": {"last_name": long(51)}}), "last_name"),
        (json!({"customer": {"street_1": long(51)}}), "street_1"),
        (json!({"customer": {"street_2": long(51)}}), "street_2"),
        (json!({"customer": {"city": long(51)}}), "city"),
        (json!({"customer": {"state": long(51)}}), "state"),
        (json!({"customer": {"country": long(51)}}), "country"),
        (json!({"customer": {"company": long(51)}}), "company"),
        (json!({"customer": {"notes": long(256)}}), "notes"),
        (json!({"customer": {"zip": "1234"}}), "zip"),
        (json!({"customer": {"zip": "1234567"}}), "zip"),
        (
            json!({"customer": {"phone_number": "555019"}}),
            "phone_number",
        ),
        (json!({"customer": {"email": "oscar.example.com"}}), "email"),
        (
            json!({"customer": {"email_receipt": "maybe"}}),
            "email_receipt",
        ),
        (json!({"customer": {"customer_id": null}}), "customer_id"),
        (
            json!({"customer": {"customer_id": long(51)}}),
            "customer_id",
        ),
        (json!({"customer": {"action_code": "5"}}), "action_code"),
        (json!({"customer": {"action_code": 0}}), "action_code"),
        (
            json!({"card": {"number": "424242424242", "expiration_date": "1229"}}),
            "number",
        ),
        (
            json!({"card": {"number": "42424242424242424242", "expiration_date": "1229"}}),
            "number",
        ),
        (
            json!({"card": {"number": PAN, "expiration_date": "1229", "code": "12"}}),
            "code",
        ),
        (
            json!({"card": {"number": PAN, "expiration_date": "1329"}}),
            "expiration_date",
        ),
        (json!({"card": {"number": PAN}}), "expiration_date"),
        (
            json!({"card": {"track_data": TRACKS, "ksn": "FFFF9876543210E0000"}}),
            "ksn",
        ),
        (
            json!({"card": {"track_data": TRACKS, "entry_mode": "06"}}),
            "entry_mode",
        ),
        (
            json!({"card": {"number": PAN, "expiration_date": "1229", "pin_block": "0412AC89ABCDEF67"}}),
            "ksn",
        ),
        (json!({"card": {"entry_mode": "90"}}), "card"),
        // 021000022: 7·(2+0+2) + (1+0+2) = 31, not a multiple of 10.
        (
            json!({"check": {"aba_code": "021000022", "account_number": "12345678"}}),
            "aba_code",
        ),
        (
            json!({"check": {"aba_code": "02100002", "account_number": "12345678"}}),
            "aba_code",
        ),
        (json!({"check": {"account_number": "12345678"}}), "aba_code"),
        // 021000021: 7·4 + 2 = 30 ✓, so only the account number is wrong.
        (
            json!({"check": {"aba_code": "021000021", "account_number": "1234567"}}),
            "account_number",
        ),
        (
            json!({"check": {"aba_code": "021000021"}}),
            "account_number",
        ),
        (
            json!({"check": {"aba_code": "021000021", "account_number": "12345678", "account_type": "3"}}),
            "account_type",
        ),
        (
            json!({"check": {"aba_code": "021000021", "account_number": "12345678", "check_number": "12345"}}),
            "check_number",
        ),
        (
            json!({"check": {"aba_code": "021000021", "account_number": "12345678", "sec_code": "6"}}),
            "sec_code",
        ),
    ];
    let base = || json!({"customer": {"customer_id": "VALID1", "action_code": "1"}});
    for (patch, field) in cases {
        let mut body = base();
        merge(&mut body, &patch);
        let (status, text) = raw_post(&sim.base_url, KEY, &body).await;
        assert_eq!(status, 200, "{patch}");
        let reply = parse_reply(text.as_bytes()).unwrap();
        let r = reply.customer_response;
        assert_eq!(r.result_code, 3, "{patch} → {r:?}");
        let msg = r.result_text.unwrap_or_default();
        let named = [String::new(), "card.".into(), "check.".into()]
            .iter()
            .any(|prefix| msg.starts_with(&format!("{prefix}{field}:")));
        assert!(named, "{patch}: {msg:?} should name {field}");
        assert!(msg.len() <= 100);
    }
    // None of those stored anything, and the valid base does.
    assert!(customers(&sim.base_url).await.is_empty());
    let (_, text) = raw_post(&sim.base_url, KEY, &base()).await;
    assert_eq!(
        parse_reply(text.as_bytes())
            .unwrap()
            .customer_response
            .result_code,
        1
    );
    sim.shutdown().await;
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) if v.is_object() => merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

// ---- action codes ----

#[tokio::test]
async fn action_codes_over_http() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 1);

    let first = client.save_customer(&swipe("CID001", "1")).await;
    let Outcome::Saved {
        customer_id,
        token,
        brand,
        last4,
    } = first.outcome.clone()
    else {
        panic!("{first:?}")
    };
    assert_eq!(customer_id, "CID001");
    assert_eq!(brand.as_deref(), Some("VI"));
    assert_eq!(last4.as_deref(), Some("1111"));
    let token = token.unwrap();
    assert!(token.len() <= 16 && token.bytes().all(|b| b.is_ascii_digit()));

    // 1 again: upsert, same token for the same customer and card.
    let mut update = swipe("CID001", "1");
    update.customer.first_name = Some("Otto".into());
    let again = client.save_customer(&update).await;
    assert!(matches!(&again.outcome, Outcome::Saved { token: Some(t), .. } if *t == token));

    // 2: exists → kept as is.
    let mut keep = swipe("CID001", "2");
    keep.customer.first_name = Some("Ignored".into());
    assert_eq!(saved_id(&client.save_customer(&keep).await), "CID001");

    // 3: exists → error naming customer_id; new id → added.
    match client.save_customer(&swipe("CID001", "3")).await.outcome {
        Outcome::Rejected { text } => assert!(text.contains("customer_id"), "{text}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        saved_id(&client.save_customer(&swipe("CID002", "3")).await),
        "CID002"
    );

    // 4: delete token.
    let mut del = swipe("CID001", "4");
    del.card = None;
    let d = client.save_customer(&del).await;
    assert!(
        matches!(d.outcome, Outcome::Saved { token: None, .. }),
        "{d:?}"
    );
    let mut missing = swipe("NOPE", "4");
    missing.card = None;
    assert!(matches!(
        client.save_customer(&missing).await.outcome,
        Outcome::Rejected { .. }
    ));

    let list = customers(&sim.base_url).await;
    let c1 = list.iter().find(|c| c["customer_id"] == "CID001").unwrap();
    assert_eq!(c1["first_name"], "Otto");
    assert_eq!(c1["token"], Value::Null);
    assert_eq!(c1["updated_count"], 2);
    assert_eq!(list.len(), 2);
    sim.shutdown().await;
}

// ---- AUTO ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_ids_unique_under_50_concurrent_requests() {
    let sim = start(true, None).await;
    let client = client_for(&sim.base_url, KEY, 1);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let c = client.clone();
        tasks.spawn(async move { c.save_customer(&swipe("AUTO", "1")).await });
    }
    let mut ids = HashSet::new();
    while let Some(d) = tasks.join_next().await {
        ids.insert(saved_id(&d.unwrap()));
    }
    let want: HashSet<String> = (100_000..100_050).map(|n| n.to_string()).collect();
    assert_eq!(ids, want);
    sim.shutdown().await;
}

// ---- persistence ----

#[tokio::test]
async fn state_survives_restart_with_the_same_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.db");
    let sim = start(false, Some(&db)).await;
    let client = client_for(&sim.base_url, KEY, 1);
    let before = client.save_customer(&swipe("KEEP1", "1")).await;
    assert_eq!(
        saved_id(&client.save_customer(&swipe("AUTO", "1")).await),
        "100000"
    );
    sim.shutdown().await;

    let sim = start(false, Some(&db)).await;
    let client = client_for(&sim.base_url, KEY, 1);
    let list = customers(&sim.base_url).await;
    let ids: Vec<_> = list.iter().map(|c| c["customer_id"].clone()).collect();
    assert_eq!(ids, vec![json!("KEEP1"), json!("100000")]);
    // Same token for the same customer and card after the restart; AUTO carries on.
    let after = client.save_customer(&swipe("KEEP1", "1")).await;
    let token = |d: &Delivery| match &d.outcome {
        Outcome::Saved { token, .. } => token.clone(),
        _ => None,
    };
    assert_eq!(token(&before), token(&after));
    assert_eq!(
        saved_id(&client.save_customer(&swipe("AUTO", "1")).await),
        "100001"
    );
    sim.shutdown().await;
}

// ---- faults and retries ----

#[tokio::test]
async fn http_500_is_retried_and_bounded() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 4);
    fault(&sim.base_url, json!({"kind": "http-500", "count": 2})).await;
    let d = client.save_customer(&swipe("R500", "1")).await;
    assert_eq!(d.attempts, 3);
    assert_eq!(saved_id(&d), "R500");

    fault(&sim.base_url, json!({"kind": "http-500", "count": 10})).await;
    let d = client.save_customer(&swipe("R500B", "1")).await;
    assert_eq!(d.attempts, 4);
    assert_eq!(
        d.outcome,
        Outcome::Transient {
            reason: "http status 500".into()
        }
    );
    let r = reqwest::Client::new()
        .delete(format!("{}/_sim/faults", sim.base_url))
        .header("x-authorization", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        saved_id(&client.save_customer(&swipe("R500B", "1")).await),
        "R500B"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn reset_is_retried() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 4);
    fault(&sim.base_url, json!({"kind": "reset", "count": 2})).await;
    let d = client.save_customer(&swipe("RST", "1")).await;
    assert_eq!(d.attempts, 3);
    assert_eq!(saved_id(&d), "RST");
    // Resets never reached the store.
    assert_eq!(customers(&sim.base_url).await[0]["updated_count"], 0);

    fault(&sim.base_url, json!({"kind": "reset", "count": 5})).await;
    let d = client.save_customer(&swipe("RST2", "1")).await;
    assert_eq!(d.attempts, 4);
    assert!(d.outcome.is_transient());
    sim.shutdown().await;
}

#[tokio::test]
async fn commit_then_drop_then_retry_leaves_one_customer() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 3);
    fault(
        &sim.base_url,
        json!({"kind": "commit-then-drop", "count": 1}),
    )
    .await;
    let d = client.save_customer(&swipe("CTD1", "1")).await;
    assert_eq!(d.attempts, 2);
    assert_eq!(saved_id(&d), "CTD1");
    let list = customers(&sim.base_url).await;
    assert_eq!(list.len(), 1);
    // Stored by the dropped attempt, updated by the retry.
    assert_eq!(list[0]["updated_count"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn delay_beyond_the_timeout_is_transient_then_saved() {
    let sim = start(false, None).await;
    let client_with = |timeout: Duration| {
        let mut cfg = ClientConfig::new(&sim.base_url, ApiKey::new(KEY));
        cfg.total_timeout = timeout;
        cfg.retry = RetryPolicy {
            max_attempts: 2,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        };
        GatewayClient::new(cfg).unwrap()
    };
    // Margins a loaded machine cannot close: a 1 s time-out against an 8 s delay, a 50 ms
    // delay against a 20 s time-out.
    fault(
        &sim.base_url,
        json!({"kind": "delay", "count": 1, "delay_ms": 8000}),
    )
    .await;
    let once = client_with(Duration::from_secs(1))
        .save_once(&swipe("SLOW", "1"))
        .await;
    assert_eq!(
        once,
        Outcome::Transient {
            reason: "timeout".into()
        }
    );
    // A short delay is only a delay.
    fault(
        &sim.base_url,
        json!({"kind": "delay", "count": 1, "delay_ms": 50}),
    )
    .await;
    let d = client_with(Duration::from_secs(20))
        .save_customer(&swipe("SLOW", "1"))
        .await;
    assert_eq!((saved_id(&d), d.attempts), ("SLOW".into(), 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn decline_and_auth_failure_are_final() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 4);
    fault(&sim.base_url, json!({"kind": "decline"})).await;
    let d = client.save_customer(&swipe("DEC", "1")).await;
    assert_eq!(
        d,
        Delivery {
            outcome: Outcome::Declined {
                text: "DECLINED".into()
            },
            attempts: 1
        }
    );

    let wrong = client_for(&sim.base_url, "wrong-key", 4);
    let d = wrong.save_customer(&swipe("AUTH", "1")).await;
    assert_eq!(
        d,
        Delivery {
            outcome: Outcome::AuthFailed,
            attempts: 1
        }
    );
    let r = reqwest::Client::new()
        .post(format!("{}/customer", sim.base_url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(customers(&sim.base_url).await.is_empty());

    let r = reqwest::Client::new()
        .post(format!("{}/_sim/faults", sim.base_url))
        .header("x-authorization", KEY)
        .json(&json!({"kind": "bogus"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn unreachable_gateway_is_transient() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = client_for(&format!("http://127.0.0.1:{port}"), KEY, 2);
    let d = client.save_customer(&swipe("X", "1")).await;
    assert_eq!(d.attempts, 2);
    assert_eq!(
        d.outcome,
        Outcome::Transient {
            reason: "connect failed".into()
        }
    );
}

// ---- encodings ----

#[tokio::test]
async fn double_encoded_by_default_plain_on_request_and_any_key_case() {
    let odd = json!({
        "Client_IP": "10.0.0.5",
        "CUSTOMER": {"Customer_ID": "CaseID", "First_Name": "Oscar", "Action_Code": 1},
        "Card": {"Track_Data": TRACKS, "Entry_Mode": "90"}
    });
    for plain in [false, true] {
        let sim = start(plain, None).await;
        let (status, text) = raw_post(&sim.base_url, KEY, &odd).await;
        assert_eq!(status, 200);
        assert_eq!(text.starts_with('"'), !plain, "{text}");
        assert_eq!(text.starts_with('{'), plain, "{text}");
        // Decoding the string layer by hand gives the same document the parser reads.
        let doc: Value = if plain {
            serde_json::from_str(&text).unwrap()
        } else {
            serde_json::from_str(serde_json::from_str::<String>(&text).unwrap().as_str()).unwrap()
        };
        assert_eq!(doc["customer_response"]["result_code"], 1);
        assert_eq!(doc["customer_response"]["account_last_4"], "1111");
        assert_eq!(doc["customer_response"]["expiration_date"], "1225");
        assert_eq!(doc["customer"]["customer_id"], "CaseID");
        let dt = doc["customer_response"]["transaction_datetime"]
            .as_str()
            .unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(dt, "%Y%m%dT%H%M%SZ").is_ok(),
            "{dt}"
        );
        let client = client_for(&sim.base_url, KEY, 1);
        assert_eq!(
            saved_id(&client.save_customer(&swipe("PLAIN", "1")).await),
            "PLAIN"
        );
        sim.shutdown().await;
    }
}

/// A stand-in gateway answering with odd key case, a string result_code, and the response
/// nested inside `customer`, double-encoded: what the public samples leave open.
#[tokio::test]
async fn client_reads_odd_replies() {
    logs();
    let body = serde_json::to_string(
        r#"{"Customer":{"Customer_Id":"X1","CUSTOMER_RESPONSE":{"Result_Code":"1","Token":1234567890123456,"Account_Type":"MC","Account_Last_4":"0434"}}}"#,
    )
    .unwrap();
    let app = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move { body }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = client_for(&format!("http://{addr}"), KEY, 1);
    let d = client.save_customer(&swipe("X1", "1")).await;
    assert_eq!(
        d.outcome,
        Outcome::Saved {
            customer_id: "X1".into(),
            token: Some("1234567890123456".into()),
            brand: Some("MC".into()),
            last4: Some("0434".into())
        }
    );
    server.abort();
}

// ---- the CardReader seam ----

/// Pretends to decrypt: any hex track data under device code MAGTEK reads as a Mastercard.
struct FakeDecoder;

impl CardReader for FakeDecoder {
    fn read_card(&self, card: &CardRequest, ctx: &ReadContext) -> Result<CardFacts, CardReadError> {
        if ctx.bdks.is_empty() || ctx.device_code != Some("MAGTEK") || card.ksn.is_none() {
            return Err(CardReadError::DecryptFailed);
        }
        Ok(CardFacts {
            pan: PanString::new("5413330089010434"),
            expiry_mmyy: Some("0930".into()),
            cardholder_name: None,
        })
    }
}

#[tokio::test]
async fn a_plugged_in_reader_decides_the_card_and_the_default_refuses_ciphertext() {
    logs();
    let mut encrypted = swipe("ENC1", "1");
    encrypted.device_code = Some("MAGTEK".into());
    encrypted.card = Some(CardRequest {
        track_data: Some("A1B2C3D4E5F60718293A4B5C6D7E8F90".into()),
        ksn: Some("FFFF9876543210E00001".into()),
        ..Default::default()
    });

    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 1);
    assert_eq!(
        client.save_customer(&encrypted).await.outcome,
        Outcome::Rejected {
            text: "card.track_data: cannot decrypt (no decoder configured)".into()
        }
    );
    let mut pin = swipe("PIN1", "1");
    if let Some(card) = pin.card.as_mut() {
        card.pin_block = Some("0412AC89ABCDEF67".into());
        card.ksn = Some("FFFF9876543210E00001".into());
    }
    match client.save_customer(&pin).await.outcome {
        Outcome::Rejected { text } => assert!(text.starts_with("card.pin_block:"), "{text}"),
        other => panic!("{other:?}"),
    }
    sim.shutdown().await;

    let mut cfg = SimConfig::new(ApiKey::new(KEY));
    cfg.reader = Arc::new(FakeDecoder);
    cfg.bdks = vec![sim::Bdk::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap()];
    let sim = sim::spawn(cfg, std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
    let client = client_for(&sim.base_url, KEY, 1);
    match client.save_customer(&encrypted).await.outcome {
        Outcome::Saved { brand, last4, .. } => {
            assert_eq!(
                (brand.as_deref(), last4.as_deref()),
                (Some("MC"), Some("0434"))
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(customers(&sim.base_url).await[0]["expiration_date"], "0930");
    sim.shutdown().await;
}

// ---- checks ----

#[tokio::test]
async fn check_accounts_get_a_token() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 1);
    let mut req = swipe("CHK1", "1");
    req.card = None;
    req.check = Some(CheckRequest {
        // 011000015: 7·(1+0+1) + (1+0+5) = 20 ✓
        aba_code: Some("011000015".into()),
        account_number: Some("000123456789".into()),
        account_type: Some("0".into()),
        sec_code: Some("1".into()),
        ..Default::default()
    });
    match client.save_customer(&req).await.outcome {
        Outcome::Saved {
            token: Some(t),
            last4,
            ..
        } => {
            assert_eq!(t.len(), 16);
            assert_eq!(last4.as_deref(), Some("6789"));
        }
        other => panic!("{other:?}"),
    }
    sim.shutdown().await;
}

// ---- logs ----

#[tokio::test]
async fn logs_never_hold_the_pan_tracks_or_api_key() {
    let sim = start(false, None).await;
    let client = client_for(&sim.base_url, KEY, 3);
    let mut with_number = swipe("LOG1", "1");
    with_number.card = Some(CardRequest {
        number: Some(PAN.into()),
        expiration_date: Some("1229".into()),
        code: Some("123".into()),
        ..Default::default()
    });
    // Each call must have done what it stands for, or the search below covers less.
    let d = client.save_customer(&with_number).await;
    assert_eq!((saved_id(&d), d.attempts), ("LOG1".into(), 1));
    let d = client.save_customer(&swipe("LOG2", "1")).await;
    assert_eq!((saved_id(&d), d.attempts), ("LOG2".into(), 1));
    fault(&sim.base_url, json!({"kind": "http-500", "count": 1})).await;
    let d = client.save_customer(&swipe("LOG3", "1")).await;
    assert_eq!(
        (saved_id(&d), d.attempts),
        ("LOG3".into(), 2),
        "retried after the 500"
    );
    fault(
        &sim.base_url,
        json!({"kind": "commit-then-drop", "count": 1}),
    )
    .await;
    let d = client.save_customer(&swipe("LOG4", "1")).await;
    assert_eq!(
        (saved_id(&d), d.attempts),
        ("LOG4".into(), 2),
        "retried after the drop"
    );
    // A keyed number of 20 digits (customer-api.md: 13 to 19), with no track data to prefer
    // over it: the rejection's text and logs must not echo it.
    let mut bad = swipe("LOG5", "1");
    bad.card = Some(CardRequest {
        number: Some(BAD_NUMBER.into()),
        expiration_date: Some("1229".into()),
        ..Default::default()
    });
    let d = client.save_customer(&bad).await;
    assert!(
        matches!(&d.outcome, Outcome::Rejected { text }
            if text.contains("card.number") && !text.contains(BAD_NUMBER)),
        "{d:?}"
    );
    let d = client_for(&sim.base_url, "wrong-key-LOGTEST", 1)
        .save_customer(&swipe("LOG6", "1"))
        .await;
    assert_eq!(d.outcome, Outcome::AuthFailed);
    // Debug prints of the request and config go to the log too: they must be redacted.
    tracing::trace!(request = ?with_number, config = ?ClientConfig::new("http://x", ApiKey::new(KEY)), "debug dump");
    sim.shutdown().await;

    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    assert!(text.contains("customer request"), "the capture works");
    assert!(text.contains("LOG1"));
    for secret in [
        PAN,
        KEY,
        "wrong-key-LOGTEST",
        "2512101",
        "FDMS TEST CARD",
        BAD_NUMBER,
    ] {
        assert!(!text.contains(secret), "log holds {secret:?}");
    }
}

// ---- the command ----

/// `cardlane gateway-sim` prints `listening on http://ADDR` first, serves, keeps state in
/// `--db`, and exits 0 on SIGTERM; without an API key it is a usage error (2).
#[tokio::test]
async fn the_command_runs_and_stops_gracefully() {
    use std::process::{Command, Stdio};
    logs();
    let exe = env!("CARGO_BIN_EXE_cardlane");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cli.db");

    let status = Command::new(exe)
        .args(["gateway-sim", "--listen", "127.0.0.1:0"])
        .env_remove("CARDLANE_API_KEY")
        .output_within()
        .status;
    assert_eq!(status.code(), Some(2));

    let mut child = Command::new(exe)
        .args([
            "gateway-sim",
            "--listen",
            "127.0.0.1:0",
            "--plain-json",
            "--db",
        ])
        .arg(&db)
        .env("CARDLANE_API_KEY", KEY)
        .env("CARDLANE_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = common::Lines::new(child.stdout.take().unwrap()).next();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");

    let (status, text) = raw_post(
        &base,
        KEY,
        &serde_json::to_value(swipe("CLI1", "1")).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(text.starts_with('{'), "--plain-json: {text}");
    assert_eq!(customers(&base).await.len(), 1);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .output_within();
    assert!(killed.status.success());
    let out = common::wait_output(&mut child);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("customer request"), "{stderr}");
    for secret in [PAN, KEY, "2512101"] {
        assert!(!stderr.contains(secret), "stderr holds {secret:?}");
    }
    assert!(db.exists());
}

/// "listening on" means ready, signals included: a SIGTERM sent the moment the line is read
/// stops the simulator gracefully (exit 0), never kills it outright. Twenty times, since the
/// old race (handler installed by a task spawned after the line) lost only sometimes.
#[test]
fn sigterm_right_after_listening_is_graceful() {
    use std::process::{Command, Stdio};
    for _ in 0..20 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
            .args(["gateway-sim", "--listen", "127.0.0.1:0"])
            .env("CARDLANE_API_KEY", KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let first = common::Lines::new(child.stdout.take().unwrap()).next();
        assert!(first.starts_with("listening on "), "{first}");
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: kill(2) on our own child process id; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = common::wait_exit(&mut child);
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}
