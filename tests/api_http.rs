//! The local API over real HTTP on 127.0.0.1:0 with a fake lane: every route and error, the SSE
//! stream, capture time-outs, cancellation and racing, the token file.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use cardlane::agent::api::{
    self, token, ApiSettings, ApiState, FieldError, GatewayState, Lane, QueueInfo, QueueRecordInfo,
    ReaderInfo, ReaderState, ServerHandle,
};
use cardlane::agent::captures::{CaptureOutcome, CaptureState, Captures};
use cardlane::agent::events::{EventHub, LaneEvent, MaskedPanText};
use cardlane::agent::metrics::Metrics;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Guards against a hang; no test asserts on speed.
const HANG: Duration = Duration::from_secs(20);

struct FakeLane;

impl Lane for FakeLane {
    fn readers(&self) -> Vec<ReaderInfo> {
        vec![
            ReaderInfo {
                id: "front".into(),
                device: "serial:/dev/ttyUSB0@9600".into(),
                profile: Some("idtech-securemag-serial".into()),
                transport: Some("serial".into()),
                state: ReaderState::Connected,
                configured: true,
                error: None,
                protocol: None,
                firmware: None,
                pin_entry: false,
            },
            ReaderInfo {
                id: "back".into(),
                device: "hid:0801:0011".into(),
                profile: None,
                transport: Some("hid".into()),
                state: ReaderState::Disconnected,
                configured: true,
                error: None,
                protocol: None,
                firmware: None,
                pin_entry: false,
            },
        ]
    }

    fn queue(&self) -> QueueInfo {
        QueueInfo {
            held: 2,
            oldest_age_s: 75,
            records: vec![QueueRecordInfo {
                customer_id: "CL0001".into(),
                state: "pending".into(),
                attempts: 3,
                age_s: 75,
                last_error: Some("gateway unreachable".into()),
                masked_pan: MaskedPanText::new("400557******1111"),
                masked_account: None,
                next_attempt_in_s: Some(30),
            }],
        }
    }

    fn gateway(&self) -> GatewayState {
        GatewayState::Unreachable
    }

    /// The Customer API rule for `zip`: 5 or 9 digits.
    fn validate_customer(&self, fields: &Value) -> Result<(), FieldError> {
        if let Some(zip) = fields.get("zip") {
            let ok = zip.as_str().is_some_and(|z| {
                (z.len() == 5 || z.len() == 9) && z.bytes().all(|b| b.is_ascii_digit())
            });
            if !ok {
                return Err(FieldError {
                    field: "zip".into(),
                    message: "must be 5 or 9 digits".into(),
                });
            }
        }
        Ok(())
    }
}

struct Server {
    handle: ServerHandle,
    base: String,
    token: String,
    captures: Arc<Captures>,
    events: EventHub,
    metrics: Arc<Metrics>,
    token_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

async fn start(max_waiting: usize) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("lib/api-token");
    let tok = token::load_or_create(&token_path).unwrap();
    let secret = tok.expose().to_string();
    let captures = Arc::new(Captures::new(max_waiting));
    let events = EventHub::new(64);
    let metrics = Arc::new(Metrics::new());
    let state = ApiState::new(
        Arc::new(FakeLane),
        captures.clone(),
        events.clone(),
        metrics.clone(),
        tok,
        ApiSettings {
            default_capture_timeout: Duration::from_secs(60),
            max_capture_timeout: Duration::from_secs(600),
            ..ApiSettings::default()
        },
    );
    let listener = api::bind("127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let handle = api::serve(listener, state).unwrap();
    let base = format!("http://{}", handle.local_addr());
    Server {
        handle,
        base,
        token: secret,
        captures,
        events,
        metrics,
        token_path,
        _dir: dir,
        http: reqwest::Client::new(),
    }
}

impl Server {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    fn post(&self, path: &str, body: &Value) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
    }

    fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    async fn arm(&self, body: Value) -> String {
        let r = self.post("/v1/captures", &body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let v: Value = r.json().await.unwrap();
        v["id"].as_str().unwrap().to_string()
    }

    async fn capture(&self, id: &str) -> Value {
        let r = self
            .get(&format!("/v1/captures/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }
}

async fn error_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    (status, v["error"].clone())
}

#[tokio::test]
async fn token_file_is_0600_and_every_route_needs_the_token() {
    let s = start(4).await;
    let mode = std::fs::metadata(&s.token_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&s.token_path).unwrap().trim(),
        s.token
    );

    let paths = [
        ("GET", "/v1/health"),
        ("GET", "/v1/readers"),
        ("POST", "/v1/captures"),
        ("GET", "/v1/captures/cap_0000000000000000"),
        ("DELETE", "/v1/captures/cap_0000000000000000"),
        ("GET", "/v1/events"),
        ("GET", "/v1/queue"),
        ("GET", "/metrics"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/no/such/route"),
    ];
    let wrong_same_length = "0".repeat(s.token.len());
    for (method, path) in paths {
        let url = format!("{}{path}", s.base);
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let none = s.http.request(m.clone(), &url).send().await.unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(none.headers()["www-authenticate"], "Bearer");
        let (_, e) = error_of(none).await;
        assert_eq!(e["code"], "unauthorized");
        for bad in [wrong_same_length.as_str(), "x", &s.token[1..]] {
            let r = s
                .http
                .request(m.clone(), &url)
                .bearer_auth(bad)
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} wrong token"
            );
        }
        let basic = s
            .http
            .request(m.clone(), &url)
            .header("authorization", format!("Basic {}", s.token))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    }
    // With the token an unknown route is a JSON 404.
    let (st, e) = error_of(s.get("/no/such/route").send().await.unwrap()).await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no-route"))
    );
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn bodies_over_64k_get_413() {
    let s = start(4).await;
    let big = vec![b' '; 1024 * 1024];
    let r = s
        .http
        .post(format!("{}/v1/captures", s.base))
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (st, e) = error_of(r).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(e["code"], "body-too-large");
    // Without a token the answer is 401, not 413: nothing is read for strangers.
    let r = s
        .http
        .post(format!("{}/v1/captures", s.base))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Just under the limit is read (and refused for what it says, not its size).
    let mut padded = b"{\"customer\":{\"notes\":\"".to_vec();
    padded.resize(64 * 1024 - 4, b'a');
    padded.extend_from_slice(b"\"}}");
    let r = s
        .http
        .post(format!("{}/v1/captures", s.base))
        .bearer_auth(&s.token)
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // A chunked body (no Content-Length) over the limit, by hand on a raw socket.
    let addr = s.handle.local_addr();
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/captures HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.token
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 8192];
    for _ in 0..10 {
        sock.write_all(format!("{:X}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        sock.write_all(&chunk).await.unwrap();
        sock.write_all(b"\r\n").await.unwrap();
    }
    sock.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(HANG, sock.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let s = start(4).await;
    let cases = [
        (
            json!({"customer": {"first_name": "Oscar", "zip": "3250"}}),
            "zip",
        ),
        (json!({"customer": {"zip": 32503}}), "zip"),
        (json!({"customer": {}, "colour": "red"}), "colour"),
        (json!({"4111111111111111 x": 1}), "body"),
        (json!({"customer": []}), "customer"),
        (json!({"reader": 7}), "reader"),
        (json!({"reader": null}), "reader"),
        (json!({"timeout_s": 0}), "timeout_s"),
        (json!({"timeout_s": 601}), "timeout_s"),
        (json!({"timeout_s": "10"}), "timeout_s"),
    ];
    for (body, field) in cases {
        let (st, e) = error_of(s.post("/v1/captures", &body).send().await.unwrap()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(e["code"], "bad-field", "{body}");
        assert_eq!(e["field"], field, "{body}");
        assert!(e["message"].as_str().unwrap().contains(field), "{e}");
    }
    // A reader the lane does not know: a bad field (design.md §3), with its own code; the
    // document lists the readers it may name.
    let body = json!({"reader": "side-door"});
    let (st, e) = error_of(s.post("/v1/captures", &body).send().await.unwrap()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(
        (e["code"].as_str(), e["field"].as_str()),
        (Some("unknown-reader"), Some("reader"))
    );
    // The value itself is never echoed.
    let (_, e) = error_of(
        s.post(
            "/v1/captures",
            &json!({"customer": {"zip": "4111111111111111"}}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert!(!e.to_string().contains("4111111111111111"));
    for raw in ["{not json", "[1,2]", ""] {
        let r = s
            .http
            .post(format!("{}/v1/captures", s.base))
            .bearer_auth(&s.token)
            .body(raw)
            .send()
            .await
            .unwrap();
        let (st, e) = error_of(r).await;
        assert_eq!(
            (st, e["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad-json")),
            "{raw}"
        );
    }
    assert!(
        s.captures.waiting().is_empty(),
        "nothing armed by bad requests"
    );
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn capture_flow_to_saved() {
    let s = start(4).await;
    let r = s
        .post(
            "/v1/captures",
            &json!({"reader": "serial:/dev/ttyUSB0@9600",
                    "customer": {"first_name": "Oscar", "last_name": "Brady", "zip": "32503"},
                    "timeout_s": 30}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["state"], "waiting");
    assert_eq!(
        v["reader"], "front",
        "the selector resolves to the reader's id"
    );
    assert_eq!(location, format!("/v1/captures/{id}"));

    // The pipeline's side: a swipe on `front` takes the capture with the kiosk's fields.
    assert!(s.captures.take_for_swipe("back").is_none());
    let armed = s.captures.take_for_swipe("front").unwrap();
    assert_eq!(armed.id, id);
    assert_eq!(armed.customer["last_name"], "Brady");
    assert_eq!(armed.customer["zip"], "32503");
    let mid = s.capture(&id).await;
    assert_eq!(
        (mid["state"].as_str(), mid["swiped"].as_bool()),
        (Some("waiting"), Some(true))
    );
    // A capture being processed cannot be cancelled.
    let (st, e) = error_of(
        s.delete(&format!("/v1/captures/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("capture-swiped"))
    );

    s.captures
        .complete(
            &id,
            CaptureOutcome {
                state: CaptureState::Saved,
                customer_id: Some("CL000123".into()),
                token: Some("9876543210123456".into()),
                masked_pan: MaskedPanText::from_pan_digits("4005571701111111"),
                masked_account: None,
                error: None,
                error_code: None,
            },
        )
        .unwrap();
    let done = s.capture(&id).await;
    assert_eq!(done["state"], "saved");
    assert_eq!(done["customer_id"], "CL000123");
    assert_eq!(done["token"], "9876543210123456");
    assert_eq!(done["masked_pan"], "400557******1111");
    assert_eq!(done["error"], Value::Null);

    for path in ["/v1/captures/cap_ffffffffffffffff", "/v1/captures/whatever"] {
        let (st, e) = error_of(s.get(path).send().await.unwrap()).await;
        assert_eq!(
            (st, e["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown-capture"))
        );
        let (st, e) = error_of(s.delete(path).send().await.unwrap()).await;
        assert_eq!(
            (st, e["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown-capture"))
        );
    }
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn capture_times_out_and_cancels() {
    let s = start(4).await;
    let short = s.arm(json!({"customer": {}, "timeout_s": 0.3})).await;
    let state = tokio::time::timeout(HANG, async {
        loop {
            let v = s.capture(&short).await;
            if v["state"] != "waiting" {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(state["state"], "timed-out");
    assert!(state["error"].is_string());
    assert!(
        s.captures.take_for_swipe("front").is_none(),
        "a timed-out capture is not served"
    );
    let (st, e) = error_of(
        s.delete(&format!("/v1/captures/{short}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (StatusCode::CONFLICT, Some("capture-finished"))
    );

    let id = s.arm(json!({"reader": "back"})).await;
    let r = s
        .delete(&format!("/v1/captures/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "cancelled");
    assert_eq!(s.capture(&id).await["state"], "cancelled");
    assert!(
        s.captures.take_for_swipe("back").is_none(),
        "a cancelled capture is not served"
    );
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_captures_on_one_reader_wait_in_turn_then_the_limit_refuses() {
    let s = start(2).await;
    // Two kiosks arm at the same time: both are accepted, in the order they arrived.
    let body = json!({"reader": "front", "customer": {"first_name": "A"}});
    let (a, b) = tokio::join!(
        s.post("/v1/captures", &body).send(),
        s.post("/v1/captures", &body).send()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.status(), b.status()),
        (StatusCode::ACCEPTED, StatusCode::ACCEPTED)
    );
    let a: Value = a.json().await.unwrap();
    let b: Value = b.json().await.unwrap();
    // A third is over the limit of 2 for `front`: 409 with a message saying why.
    let (st, e) = error_of(s.post("/v1/captures", &body).send().await.unwrap()).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(e["code"], "capture-limit");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("reader `front`") && msg.contains("limit is 2"),
        "{msg}"
    );
    // Swipes serve them first come, first served.
    let waiting: Vec<String> = s.captures.waiting().into_iter().map(|c| c.id).collect();
    let first = s.captures.take_for_swipe("front").unwrap().id;
    let second = s.captures.take_for_swipe("front").unwrap().id;
    assert_eq!(vec![first.clone(), second.clone()], waiting);
    let ids: BTreeSet<String> = [a["id"].as_str().unwrap(), b["id"].as_str().unwrap()]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(ids, [first, second].into_iter().collect());
    // With both taken there is room again.
    s.arm(body).await;

    // Limit 1, racing: exactly one wins and the other is told why.
    let s1 = start(1).await;
    let body = json!({"reader": "back"});
    let (x, y) = tokio::join!(
        s1.post("/v1/captures", &body).send(),
        s1.post("/v1/captures", &body).send()
    );
    let mut statuses = vec![x.unwrap().status(), y.unwrap().status()];
    statuses.sort();
    assert_eq!(statuses, vec![StatusCode::ACCEPTED, StatusCode::CONFLICT]);
    s.handle.shutdown().await.unwrap();
    s1.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn events_stream_masked_lane_events() {
    let s = start(4).await;
    let mut resp = s.get("/v1/events").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut text = String::new();
    // The first comment says the subscription is live.
    tokio::time::timeout(HANG, async {
        while !text.contains(": connected") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
    let pan = "4005571701111111";
    let masked = MaskedPanText::from_pan_digits(pan);
    s.events.publish(LaneEvent::ReaderAttached {
        reader: "front".into(),
        profile: Some("idtech-securemag-serial".into()),
        transport: Some("serial".into()),
    });
    s.events.publish(LaneEvent::Swipe {
        reader: "front".into(),
        format: Some("idtech-enhanced".into()),
        entry_mode: Some("90".into()),
        masked_pan: masked.clone(),
        masked_account: None,
        last4: Some("1111".into()),
        capture_id: None,
        error_code: None,
    });
    // A publisher that hands the whole PAN where only the last 4 belong: the stream must
    // still carry only the last 4 (and a clear PAN is no masked PAN at all).
    assert!(MaskedPanText::new(pan).is_none());
    s.events.publish(LaneEvent::Saved {
        reader: Some("front".into()),
        capture_id: None,
        customer_id: "CL1".into(),
        token: Some("1234".into()),
        masked_pan: masked,
        masked_account: None,
        last4: Some(pan.into()),
    });
    s.events.publish(LaneEvent::ReaderDetached {
        reader: "front".into(),
        reason: Some("unplugged".into()),
    });
    tokio::time::timeout(HANG, async {
        while !text.contains("event: reader-detached") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
    // Parse the SSE frames: `event:` then `data:` (one JSON object).
    let mut seen = Vec::new();
    for frame in text.split("\n\n") {
        let event = frame.lines().find_map(|l| l.strip_prefix("event: "));
        let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
        if let (Some(event), Some(data)) = (event, data) {
            let v: Value = serde_json::from_str(data).unwrap();
            assert_eq!(v["type"], event);
            seen.push((event.to_string(), v));
        }
    }
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["reader-attached", "swipe", "saved", "reader-detached"]
    );
    assert_eq!(seen[1].1["masked_pan"], "400557******1111");
    assert_eq!(seen[1].1["last4"], "1111");
    assert_eq!(seen[2].1["masked_pan"], "400557******1111");
    assert_eq!(seen[2].1["last4"], "1111", "{}", seen[2].1);
    assert!(!text.contains(pan), "no PAN in the stream");
    s.handle.shutdown().await.unwrap();
}

/// A subscriber that falls behind (the hub keeps 64 events per subscriber) is told how many
/// it missed and then gets the newest ones, in order; the stream stays open.
#[tokio::test]
async fn a_lagging_event_subscriber_is_told_what_it_missed() {
    let s = start(4).await;
    let mut resp = s.get("/v1/events").send().await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(HANG, async {
        while !text.contains(": connected") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
    // Published without yielding: on this single-threaded runtime the stream cannot read any
    // of them before all 200 are in, so it lags by exactly 200 - 64.
    for i in 0..200 {
        s.events.publish(LaneEvent::Queued {
            reader: Some("front".into()),
            capture_id: None,
            customer_id: format!("CL{i:03}"),
            masked_pan: None,
            masked_account: None,
            last4: None,
        });
    }
    tokio::time::timeout(HANG, async {
        while !text.contains("CL199") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
    assert!(text.contains(": missed 136 events"), "{text}");
    let ids: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["customer_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let want: Vec<String> = (136..200).map(|i| format!("CL{i:03}")).collect();
    assert_eq!(ids, want);
    // Still live after the lag.
    s.events.publish(LaneEvent::ReaderDetached {
        reader: "front".into(),
        reason: None,
    });
    tokio::time::timeout(HANG, async {
        while !text.contains("event: reader-detached") {
            let chunk = resp.chunk().await.unwrap().unwrap();
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap();
    tokio::time::timeout(HANG, s.handle.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_ends_open_event_streams() {
    let s = start(4).await;
    let mut resp = s.get("/v1/events").send().await.unwrap();
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("connected"));
    let base = s.base.clone();
    tokio::time::timeout(HANG, s.handle.shutdown())
        .await
        .expect("graceful shutdown does not wait on SSE clients forever")
        .unwrap();
    let end = tokio::time::timeout(HANG, async {
        loop {
            match resp.chunk().await {
                Ok(Some(_)) => continue,
                other => return other.map(|_| ()),
            }
        }
    })
    .await
    .unwrap();
    assert!(end.is_ok(), "the stream ends cleanly");
    assert!(
        reqwest::get(format!("{base}/v1/health")).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn health_readers_queue_and_metrics() {
    let s = start(4).await;
    let h: Value = s
        .get("/v1/health")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["gateway"], "unreachable");
    assert_eq!(h["queue"], json!({"held": 2, "oldest_age_s": 75}));
    assert_eq!(h["readers"][0]["id"], "front");
    assert_eq!(h["readers"][0]["state"], "connected");

    let r: Value = s
        .get("/v1/readers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let readers = r["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 2);
    assert_eq!(readers[1]["device"], "hid:0801:0011");
    assert_eq!(readers[1]["state"], "disconnected");

    let q: Value = s
        .get("/v1/queue")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["held"], 2);
    assert_eq!(q["records"][0]["customer_id"], "CL0001");
    assert_eq!(q["records"][0]["masked_pan"], "400557******1111");
    assert_eq!(q["records"][0]["attempts"], 3);

    s.metrics.swipe("front", "idtech-enhanced");
    s.metrics
        .observe_gateway_latency(Duration::from_millis(200));
    let m = s.get("/metrics").send().await.unwrap();
    assert_eq!(m.status(), StatusCode::OK);
    assert!(m.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = m.text().await.unwrap();
    let lines: BTreeSet<&str> = text.lines().collect();
    for want in [
        "cardlane_queue_depth 2",
        "cardlane_queue_oldest_age_seconds 75",
        "cardlane_reader_connected{reader=\"front\"} 1",
        "cardlane_reader_connected{reader=\"back\"} 0",
        "cardlane_swipes_total{format=\"idtech-enhanced\",reader=\"front\"} 1",
        "cardlane_gateway_latency_seconds_bucket{le=\"0.25\"} 1",
        "cardlane_gateway_latency_seconds_count 1",
        "# TYPE cardlane_gateway_latency_seconds histogram",
    ] {
        assert!(lines.contains(want), "missing `{want}` in\n{text}");
    }
    s.handle.shutdown().await.unwrap();
}
