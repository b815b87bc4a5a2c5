//! The gateway client against the documents rather than against itself: request bodies and
//! headers as they reach the wire, compared with JSON written by hand from
//! `spec/onepay-gateway.md` and `spec/customer-api.md`; and replies written by hand from what
//! those documents say a reply may look like, through the client's own reading of them.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardlane::gateway::client::outcome_from_http;
use cardlane::gateway::record::{CardRequest, CustomerFields, CustomerRequest};
use cardlane::gateway::swipe::{build_record, LaneSettings, SwipeInput};
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient, Outcome, RetryPolicy, SecretString};
use serde_json::{json, Value};

const KEY: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

/// What a stub gateway saw of one request.
#[derive(Debug, Clone, Default)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// A stub gateway that records the request and answers `reply` (the spec's success shape).
async fn stub(reply: &'static str) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
            log.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
                body,
            });
            reply
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn client(base: &str) -> GatewayClient {
    let mut cfg = ClientConfig::new(base, ApiKey::new(KEY));
    cfg.retry = RetryPolicy {
        max_attempts: 1,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    };
    cfg.total_timeout = Duration::from_secs(20);
    GatewayClient::new(cfg).unwrap()
}

fn header<'a>(s: &'a Seen, name: &str) -> Option<&'a str> {
    s.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const SAVED_REPLY: &str = r#"{"customer_response":{"result_code":1,"result_sub_code":"000","result_text":"SUCCESS","transaction_datetime":"20190318T145608Z","token":"1234567890123456","account_type":"VI","account_last_4":"1111","expiration_date":"1225"},"customer":{"customer_id":"CID001"}}"#;

/// onepay-gateway.md "Request": POST {base}/Customer, headers x-authorization (the key as
/// is), Content-Type and Accept application/json, no Authorization; the body shape of its
/// sample, every scalar a string.
#[tokio::test]
async fn the_documented_request_reaches_the_wire_as_documented() {
    let (base, seen) = stub(SAVED_REPLY).await;
    let req = CustomerRequest {
        client_ip: Some("10.0.0.5".into()),
        customer: CustomerFields {
            customer_id: Some("CID001".into()),
            first_name: Some("Oscar".into()),
            last_name: Some("Brady".into()),
            street_1: Some("55 Airport Drive".into()),
            city: Some("Pensacola".into()),
            state: Some("FL".into()),
            zip: Some("32503".into()),
            country: Some("US".into()),
            phone_number: Some("2025550197".into()),
            email: Some("o@example.com".into()),
            email_receipt: Some("0".into()),
            action_code: Some("1".into()),
            ..Default::default()
        },
        card: Some(CardRequest {
            track_data: Some(SecretString::new(
                "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?",
            )),
            entry_mode: Some("90".into()),
            expiration_date: Some("1225".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let d = client(&base).save_customer(&req).await;
    assert_eq!(
        d.outcome,
        Outcome::Saved {
            customer_id: "CID001".into(),
            token: Some("1234567890123456".into()),
            brand: Some("VI".into()),
            last4: Some("1111".into()),
        }
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.method, "POST");
    assert_eq!(s.path, "/Customer");
    assert_eq!(header(s, "x-authorization"), Some(KEY));
    assert!(header(s, "content-type").is_some_and(|v| v.starts_with("application/json")));
    assert_eq!(header(s, "accept"), Some("application/json"));
    assert_eq!(header(s, "authorization"), None, "no Basic/Bearer");
    // Written by hand from the sample in onepay-gateway.md (notes left out: not sent when empty).
    let golden = json!({
        "client_ip": "10.0.0.5",
        "customer": {
            "customer_id": "CID001", "first_name": "Oscar", "last_name": "Brady",
            "street_1": "55 Airport Drive", "city": "Pensacola", "state": "FL", "zip": "32503",
            "country": "US", "phone_number": "2025550197", "email": "o@example.com",
            "email_receipt": "0", "action_code": "1"
        },
        "card": {
            "track_data": "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?",
            "entry_mode": "90",
            "expiration_date": "1225"
        }
    });
    let body: Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(body, golden);
}

/// A clear swipe of the vendor's sample card, through decode and the record builder, sent by
/// the client: what the vendor's own apps send (onepay-gateway.md: both tracks concatenated,
/// expiry as MMYY, entry mode 90 for a swipe, action code 1 with an agent-chosen id, names
/// from Track 1 `SURNAME/GIVEN`).
#[tokio::test]
async fn a_clear_swipe_goes_out_as_the_vendor_apps_send_it() {
    let (base, seen) = stub(SAVED_REPLY).await;
    let swipe = "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?";
    let mut read = cardlane::parse::decode_frame(swipe.as_bytes()).unwrap();
    cardlane::parse::validate(&mut read);
    let lane = LaneSettings {
        allow_clear: true,
        customer_id_prefix: "LANE7".into(),
        client_ip: Some("10.0.0.5".into()),
        ..LaneSettings::default()
    };
    let rec = build_record(SwipeInput {
        read: &read,
        frame: swipe.as_bytes(),
        profile: None,
        lane: &lane,
        customer: None,
        pin_block: None,
    })
    .unwrap();
    client(&base).save_customer(&rec.request).await;
    let seen = seen.lock().unwrap().clone();
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    let id = body["customer"]["customer_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("LANE7"), "{id}");
    let golden = json!({
        "client_ip": "10.0.0.5",
        "customer": {
            "customer_id": id, "first_name": "VISA", "last_name": "FDMS TEST CARD",
            "action_code": "1"
        },
        "card": {
            "track_data": swipe,
            "expiration_date": "1225",
            "entry_mode": "90"
        }
    });
    assert_eq!(body, golden);
}

/// Replies as the documents describe them, each written out by hand, with the outcome the
/// documents give them (onepay-gateway.md "Response" and "What follows" 2).
#[test]
fn documented_replies_read_as_documented() {
    let saved = |id: &str| Outcome::Saved {
        customer_id: id.into(),
        token: Some("1234567890123456".into()),
        brand: Some("VI".into()),
        last4: Some("4242".into()),
    };
    let response = r#"{"result_code":1,"result_sub_code":"000","result_text":"SUCCESS","transaction_datetime":"20190318T145608Z","token":"1234567890123456","account_type":"VI","account_last_4":"4242","expiration_date":"1225"}"#;
    let beside = format!(
        r#"{{"customer_response":{response},"customer":{{"customer_id":"CID001","first_name":"Oscar"}}}}"#
    );
    let inside = format!(
        r#"{{"customer_response":{}}}"#,
        response.replace(
            r#""expiration_date":"1225""#,
            r#""expiration_date":"1225","customer":{"customer_id":"CID001"}"#
        )
    );
    // "The body is (at least sometimes) double-encoded": a JSON string holding the document.
    let double = serde_json::to_string(&beside).unwrap();
    // "result_code ... is a JSON number in samples; everything else is a string": also as a
    // string, and the token as the number it is ("numeric, up to 16 digits").
    let string_code = beside.replace(r#""result_code":1"#, r#""result_code":"1""#);
    let numeric_token = beside.replace(
        r#""token":"1234567890123456""#,
        r#""token":1234567890123456"#,
    );
    // Key case as in official samples (`Customer`).
    let key_case = beside
        .replace("customer_response", "Customer_Response")
        .replace("\"customer\"", "\"Customer\"")
        .replace("result_code", "Result_Code");
    let declined = r#"{"customer_response":{"result_code":2,"result_sub_code":"005","result_text":"DECLINED","token":null},"customer":{"customer_id":"CID001"}}"#;
    let invalid = r#"{"customer_response":{"result_code":3,"result_sub_code":"999","result_text":"Duplicate Nonce"}}"#;
    let denied = r#"{"message":"Authorization has been denied for this request."}"#;

    let cases: Vec<(u16, String, Outcome)> = vec![
        (200, beside.clone(), saved("CID001")),
        (200, inside, saved("CID001")),
        (200, double, saved("CID001")),
        (200, string_code, saved("CID001")),
        (200, numeric_token, saved("CID001")),
        (200, key_case, saved("CID001")),
        (
            200,
            declined.into(),
            Outcome::Declined {
                text: "DECLINED".into(),
            },
        ),
        (
            200,
            invalid.into(),
            Outcome::Rejected {
                text: "Duplicate Nonce".into(),
            },
        ),
        (401, denied.into(), Outcome::AuthFailed),
    ];
    for (status, body, want) in cases {
        assert_eq!(
            outcome_from_http(status, body.as_bytes(), Some("CID001")),
            want,
            "{status} {body}"
        );
    }
    // No echo: the id sent stands.
    let bare = format!(r#"{{"customer_response":{response}}}"#);
    assert_eq!(
        outcome_from_http(200, bare.as_bytes(), Some("CID009")),
        saved("CID009")
    );
    // 5xx is transient, whatever the body.
    assert!(outcome_from_http(503, b"busy", Some("CID001")).is_transient());
    assert!(outcome_from_http(500, beside.as_bytes(), Some("CID001")).is_transient());
}
