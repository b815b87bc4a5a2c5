//! The local API against its own OpenAPI document, as a client generated from it sees it: a real
//! `cardlane run` (and `cardlane gateway-sim`) on 127.0.0.1, the document it serves checked
//! against the official OpenAPI 3.1 schema (tests/openapi/oas-3.1, see its README), every route
//! served and documented, and every answer, errors included, checked against the schema the
//! document gives for its status.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

mod common;
use common::{Lines, Reaper};

use cardlane::agent::api::Op;
use cardlane::agent::events::{LaneEvent, MaskedAccountText, MaskedPanText};

const API_KEY: &str = "openapi-test-key";

/// A gateway simulator and an agent, both real processes, killed on drop.
struct Agent {
    _sim: Reaper,
    _agent: Reaper,
    _lines: Lines,
    base: String,
    token: String,
    http: reqwest::Client,
}

fn spawn(args: &[&str], config: Option<&Path>) -> (Reaper, Lines) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardlane"));
    cmd.args(args);
    if let Some(c) = config {
        cmd.arg(c);
    }
    let mut child = cmd
        .env("CARDLANE_API_KEY", API_KEY)
        .env("CARDLANE_LOG", "warn")
        .env_remove("CARDLANE_QUEUE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    (Reaper(child), lines)
}

impl Agent {
    /// `max_timeout` is `[api] max_capture_timeout` (seconds); one configured reader, `front`,
    /// whose device is not there (so it has no keypad and the lane is down).
    fn start(dir: &Path, max_timeout: u32) -> Agent {
        Agent::start_with(dir, max_timeout, "")
    }

    /// As `start`, with `api_extra` lines in `[api]`.
    fn start_with(dir: &Path, max_timeout: u32, api_extra: &str) -> Agent {
        let (sim, mut sim_lines) = spawn(&["gateway-sim", "--plain-json"], None);
        let sim_url = sim_lines
            .until("the simulator's address", |l| {
                l.starts_with("listening on ")
            })
            .trim_start_matches("listening on ")
            .to_string();
        let config = dir.join("cardlane.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[gateway]
base_url = "{sim_url}"
[queue]
path = "{q}"
[api]
listen = "127.0.0.1:0"
token_file = "{t}"
max_capture_timeout = "{max_timeout}s"
max_waiting_captures = 2
{api_extra}
[[readers]]
id = "front"
device = "serial:{dev}@9600"
[devices]
hotplug = false
"#,
                q = dir.join("queue.db").display(),
                t = dir.join("api-token").display(),
                dev = dir.join("no-such-tty").display(),
            ),
        )
        .unwrap();
        let (agent, mut lines) = spawn(&["run", "--config"], Some(&config));
        let base = lines
            .until("the agent's ready line", |l| {
                l.starts_with("ready: api on ")
            })
            .trim_start_matches("ready: api on ")
            .to_string();
        let token = std::fs::read_to_string(dir.join("api-token"))
            .unwrap()
            .trim()
            .to_string();
        Agent {
            _sim: sim,
            _agent: agent,
            _lines: lines,
            base,
            token,
            http: reqwest::Client::new(),
        }
    }

    fn request(&self, method: &Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method.clone(), format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    async fn document(&self) -> Value {
        self.request(&Method::GET, "/v1/openapi.json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// A validator for the named component schema, its references resolved in the document.
fn component(doc: &Value, name: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
    root["$ref"] = json!(format!("#/components/schemas/{name}"));
    jsonschema::draft202012::new(&root).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[tokio::test]
async fn the_served_document_is_valid_openapi_3_1() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), 600);
    let doc = agent.document().await;
    assert_eq!(doc["openapi"], "3.1.0");

    let oas: Value =
        serde_json::from_str(include_str!("openapi/oas-3.1/schema.json")).expect("vendored schema");
    let oas = jsonschema::draft202012::new(&oas).unwrap();
    let problems = errors(&oas, &doc);
    assert!(problems.is_empty(), "{problems:#?}");

    // The OAS schema leaves schemas to their dialect (JSON Schema 2020-12): each one is checked
    // against that meta-schema and compiled (which also compiles every pattern).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.len() > 10);
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
            panic!("{name}: {e}");
        }
        component(&doc, name);
    }
}

/// Every operation as (METHOD, path), written out here apart from the code.
const ROUTES: [(&str, &str); 19] = [
    ("GET", "/v1/health"),
    ("GET", "/v1/readers"),
    ("POST", "/v1/captures"),
    ("GET", "/v1/captures/{id}"),
    ("DELETE", "/v1/captures/{id}"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events/ticket"),
    ("GET", "/v1/queue"),
    ("POST", "/v1/queue/flush"),
    ("GET", "/v1/reads"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/console/code"),
    ("GET", "/"),
    ("GET", "/console/signin"),
    ("GET", "/console/app.js"),
    ("GET", "/console/app.css"),
    ("POST", "/console/session"),
    ("POST", "/console/signout"),
];

#[tokio::test]
async fn the_document_lists_exactly_the_routes_served() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), 600);
    let doc = agent.document().await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let ops: BTreeSet<(String, String)> = Op::ALL
        .iter()
        .map(|op| (op.method().to_string(), op.path().to_string()))
        .collect();
    assert_eq!(documented, routes);
    assert_eq!(ops, routes);

    // Each is served: never the router's own 404 (`no-route`) or 405.
    for (method, path) in &routes {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = agent
            .request(&m, &path.replace("{id}", "cap_none"))
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if path == "/v1/events" {
            assert_eq!(r.status(), StatusCode::OK);
            continue; // an open stream
        }
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["error"]["code"], "no-route",
            "{method} {path}: {status}"
        );
    }
    // And nothing else is: an undocumented path or method is refused by the router.
    for (method, path) in [
        ("GET", "/v1/nothing"),
        ("PUT", "/v1/captures"),
        ("POST", "/v1/readers"),
    ] {
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = agent.request(&m, path).send().await.unwrap();
        assert!(
            r.status() == StatusCode::NOT_FOUND || r.status() == StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {}",
            r.status()
        );
    }
}

/// One request of [`every_route_answers_as_documented`].
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
    token: bool,
    headers: Vec<(&'static str, String)>,
}

fn call(method: &str, path: &str) -> Call {
    Call {
        method: Method::from_bytes(method.as_bytes()).unwrap(),
        path: path.to_string(),
        body: None,
        token: true,
        headers: Vec::new(),
    }
}

impl Call {
    fn body(mut self, b: Value) -> Call {
        self.body = Some(b);
        self
    }
    fn anonymous(mut self) -> Call {
        self.token = false;
        self
    }
    fn header(mut self, k: &'static str, v: &str) -> Call {
        self.headers.push((k, v.to_string()));
        self
    }
}

/// The document's operation for a concrete request path.
fn operation<'d>(doc: &'d Value, method: &Method, path: &str) -> &'d Value {
    let path = path.split('?').next().unwrap();
    let key = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .find(|p| {
            let (a, b): (Vec<&str>, Vec<&str>) =
                (p.split('/').collect(), path.split('/').collect());
            a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| x == y || x.starts_with('{'))
        })
        .unwrap_or_else(|| panic!("{path} is not documented"));
    &doc["paths"][key][method.as_str().to_lowercase()]
}

/// Sends `c` and checks the answer against the document: a documented status, the documented
/// media type, and a body valid for the documented schema. Returns status and body.
async fn check(agent: &Agent, doc: &Value, c: Call) -> (u16, Value) {
    let op = operation(doc, &c.method, &c.path);
    let mut req = agent
        .http
        .request(c.method.clone(), format!("{}{}", agent.base, c.path));
    if c.token {
        req = req.bearer_auth(&agent.token);
    }
    for (k, v) in &c.headers {
        req = req.header(*k, v);
    }
    if let Some(b) = &c.body {
        req = req.json(b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let what = format!("{} {} {:?} → {status}", c.method, c.path, c.body);
    let documented = &op["responses"][status.to_string()];
    assert!(documented.is_object(), "{what}: status not documented");
    let media_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let Some(content) = documented["content"].as_object() else {
        assert!(resp.bytes().await.unwrap().is_empty(), "{what}: a body");
        return (status, Value::Null);
    };
    let (media, spec) = content.iter().next().unwrap();
    let got = media_type.unwrap_or_default();
    assert!(
        got.starts_with(media.as_str()),
        "{what}: {got}, documented {media}"
    );
    if media == "text/event-stream" {
        return (status, Value::Null); // an open stream: the first event is checked elsewhere
    }
    let text = resp.text().await.unwrap();
    let body: Value = if media == "application/json" {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
    } else {
        Value::String(text)
    };
    let schema = &spec["schema"];
    let problems = match schema["$ref"].as_str() {
        Some(r) => errors(
            &component(doc, r.trim_start_matches("#/components/schemas/")),
            &body,
        ),
        None => errors(&jsonschema::draft202012::new(schema).unwrap(), &body),
    };
    assert!(problems.is_empty(), "{what}: {problems:#?}\n{body}");
    (status, body)
}

/// `[api] health_down_status = 503`: a down lane answers 503, and the document says so.
#[tokio::test]
async fn a_down_lane_answers_503_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start_with(dir.path(), 600, "health_down_status = 503");
    let doc = agent.document().await;
    assert!(doc["paths"]["/v1/health"]["get"]["responses"]
        .get("503")
        .is_some());
    let (status, health) = check(&agent, &doc, call("GET", "/v1/health")).await;
    assert_eq!((status, health["status"].as_str()), (503, Some("down")));
}

#[tokio::test]
async fn every_route_answers_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    // A maximum of its own, so that the document is seen to follow the configuration.
    let agent = Agent::start(dir.path(), 300);
    let doc = agent.document().await;
    let request_schema = component(&doc, "CaptureRequest");

    // POST /v1/captures: for each body, the schema's verdict and the agent's agree (400, 413 and
    // 422 are the schema-level refusals; 409, a well-formed request the lane cannot honour).
    let block = "0412AC89ABCDEF67"; // shape only: 16 hex digits
    let tdes_ksn = "FFFF9876543210E00001";
    let bodies = [
        (json!({}), 202),
        (
            json!({"timeout_s": 300, "customer": {"first_name": "Ada", "zip": "12345"}}),
            202,
        ),
        (json!({"timeout_s": 0.25, "interfaces": ["msr"]}), 409), // 2 wait already
        (
            json!({"kind": "check", "check": {"account_type": "savings", "sec_code": 4}}),
            409,
        ),
        (json!({"reader": "nope"}), 400), // not among the readers the document lists
        (json!({"reader": "front", "pin": "required"}), 409),
        (json!({"reader": null}), 400),
        (json!({"customer": null}), 400),
        (json!({"timeout_s": 301}), 400),
        (json!({"timeout_s": 0}), 400),
        (json!({"timeout_s": "5"}), 400),
        (json!({"interfaces": []}), 400),
        (json!({"kind": "card", "check": {}}), 400),
        (json!({"kind": "check", "check": {"bank_name": 7}}), 400),
        (
            json!({"kind": "check", "check": {"account_type": "Checking"}}),
            400,
        ),
        (json!({"customer": {"zip": "1234"}}), 400),
        (json!({"customer": {"zip": 123456}}), 400),
        (json!({"customer": {"email": "a@b"}}), 400),
        (json!({"customer": {"action_code": "2"}}), 400),
        (json!({"customer": {"card": {}}}), 400),
        (json!({"customer": {"first_name": "x".repeat(51)}}), 400),
        (json!({"colour": "blue"}), 400),
        (json!({"pin": "required"}), 422),
        (json!({"reader": "front", "pin": "maybe"}), 422),
        (
            json!({"pin_block": {"block": block, "ksn": tdes_ksn, "format": 4}}),
            422,
        ),
        (
            json!({"pin_block": {"block": block, "ksn": tdes_ksn, "format": 2}}),
            422,
        ),
        (
            json!({"pin_block": {"block": block, "ksn": tdes_ksn, "format": 0, "pin": 1}}),
            422,
        ),
        (
            json!({"reader": "front", "pin": "optional",
                "pin_block": {"block": block, "ksn": tdes_ksn, "format": 0}}),
            422,
        ),
        (
            json!({"kind": "check", "pin_block": {"block": block, "ksn": tdes_ksn, "format": 0}}),
            422,
        ),
        (json!([1]), 400),
    ];
    let mut armed = Vec::new();
    for (body, want) in bodies {
        let valid = request_schema.is_valid(&body);
        let (status, answer) = check(
            &agent,
            &doc,
            call("POST", "/v1/captures").body(body.clone()),
        )
        .await;
        assert_eq!(status, want, "{body}: {answer}");
        assert_eq!(
            valid,
            ![400, 413, 422].contains(&status),
            "schema and agent disagree on {body}: {answer}"
        );
        if status == 202 {
            armed.push(answer["id"].as_str().unwrap().to_string());
        }
    }
    // Not JSON, and over the size limit.
    let r = agent
        .request(&Method::POST, "/v1/captures")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (status, _) = check(
        &agent,
        &doc,
        call("POST", "/v1/captures").body(json!({"customer": {"notes": "n".repeat(70_000)}})),
    )
    .await;
    assert_eq!(status, 413);

    // A capture stays readable after it is cancelled; a second cancel is a conflict.
    let id = &armed[0];
    let path = format!("/v1/captures/{id}");
    assert_eq!(check(&agent, &doc, call("GET", &path)).await.0, 200);
    let (s, c) = check(&agent, &doc, call("DELETE", &path)).await;
    assert_eq!((s, c["state"].as_str()), (200, Some("cancelled")));
    assert_eq!(check(&agent, &doc, call("DELETE", &path)).await.0, 409);
    let (s, c) = check(&agent, &doc, call("GET", &path)).await;
    assert_eq!((s, c["state"].as_str()), (200, Some("cancelled")));
    for m in ["GET", "DELETE"] {
        assert_eq!(
            check(&agent, &doc, call(m, "/v1/captures/cap_none"))
                .await
                .0,
            404
        );
    }

    // The other routes, with and without the token.
    let (_, ticket) = check(&agent, &doc, call("POST", "/v1/events/ticket")).await;
    let (_, code) = check(&agent, &doc, call("POST", "/v1/console/code")).await;
    let ticket = ticket["ticket"].as_str().unwrap();
    let code = code["code"].as_str().unwrap();
    // The one configured reader is not there: down, said in the body with 200 (the default
    // `[api] health_down_status`).
    let (status, health) = check(&agent, &doc, call("GET", "/v1/health")).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("down")));
    for (c, want) in [
        (call("GET", "/v1/readers"), 200),
        (call("GET", "/v1/queue"), 200),
        (call("POST", "/v1/queue/flush"), 200),
        (call("GET", "/v1/reads"), 200),
        (call("GET", "/metrics"), 200),
        (call("GET", "/v1/openapi.json"), 200),
        (call("GET", "/v1/events"), 200),
        (
            call("GET", &format!("/v1/events?ticket={ticket}")).anonymous(),
            200,
        ),
        (
            call("GET", &format!("/v1/events?ticket={ticket}")).anonymous(),
            401,
        ), // used
        (call("GET", "/").anonymous(), 200),
        (
            call("GET", &format!("/console/signin?code={code}")).anonymous(),
            200,
        ),
        (call("GET", "/console/app.js").anonymous(), 200),
        (call("GET", "/console/app.css").anonymous(), 200),
        (
            call("POST", "/console/session")
                .anonymous()
                .body(json!({"code": code})),
            204,
        ),
        (
            call("POST", "/console/session")
                .anonymous()
                .body(json!({"code": code})),
            401,
        ), // used
        (
            call("POST", "/console/session")
                .anonymous()
                .body(json!({"token": agent.token})),
            204,
        ),
        (
            call("POST", "/console/session")
                .anonymous()
                .body(json!({"code": "x", "token": "y"})),
            400,
        ),
        (
            call("POST", "/console/session").anonymous().body(json!({})),
            400,
        ),
        (
            call("POST", "/console/session")
                .anonymous()
                .body(json!({"token": agent.token}))
                .header("origin", "http://evil.example"),
            403,
        ),
        (call("POST", "/console/signout").anonymous(), 204),
        (
            call("POST", "/console/signout")
                .anonymous()
                .header("origin", "http://evil.example"),
            403,
        ),
    ] {
        let what = format!("{} {}", c.method, c.path);
        let (status, _) = check(&agent, &doc, c).await;
        assert_eq!(status, want, "{what}");
    }
    // Every operation that needs the token answers 401 without it, as documented.
    for op in Op::ALL {
        let public =
            doc["paths"][op.path()][op.method().as_str().to_lowercase()]["security"] == json!([]);
        if public {
            continue;
        }
        let path = op.path().replace("{id}", "cap_none");
        let (status, body) =
            check(&agent, &doc, call(op.method().as_str(), &path).anonymous()).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (401, &json!("unauthorized")),
            "{path}"
        );
    }
}

/// Each kind of lane event, as the stream and `GET /v1/reads` carry it, against `LaneEvent`.
#[tokio::test]
async fn lane_events_match_their_schema() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), 600);
    let doc = agent.document().await;
    let schema = component(&doc, "LaneEvent");
    let s = |t: &str| Some(t.to_string());
    let pan = MaskedPanText::new("400557******1111");
    let events = [
        LaneEvent::ReaderAttached {
            reader: "front".into(),
            profile: s("idtech-securemag-serial"),
            transport: None,
        },
        LaneEvent::ReaderDetached {
            reader: "front".into(),
            reason: None,
        },
        LaneEvent::Swipe {
            reader: "front".into(),
            format: s("iso7813"),
            entry_mode: s("90"),
            masked_pan: pan.clone(),
            masked_account: None,
            last4: s("1111"),
            capture_id: None,
            error_code: None,
        },
        LaneEvent::SwipeUnreadable {
            reader: "front".into(),
            code: "bad-lrc".into(),
        },
        LaneEvent::Saved {
            reader: None,
            capture_id: s("cap_1"),
            customer_id: "CL1".into(),
            token: s("tok"),
            masked_pan: pan.clone(),
            masked_account: None,
            last4: s("1111"),
        },
        LaneEvent::Queued {
            reader: s("front"),
            capture_id: None,
            customer_id: "CL1".into(),
            masked_pan: None,
            // A check: its account masked to the last 4, no PAN.
            masked_account: MaskedAccountText::new("*****6789"),
            last4: s("6789"),
        },
        LaneEvent::ReaderPrompt {
            reader: "front".into(),
            text: "PRESENT CARD".into(),
        },
        LaneEvent::Failed {
            reader: None,
            capture_id: None,
            customer_id: None,
            code: "declined".into(),
            error: "declined".into(),
            masked_pan: pan,
            masked_account: None,
            last4: s("1111"),
        },
    ];
    let mut kinds = BTreeSet::new();
    for e in &events {
        let v: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], e.kind());
        let problems = errors(&schema, &v);
        assert!(problems.is_empty(), "{v}: {problems:#?}");
        kinds.insert(e.kind());
    }
    // A kind the document does not know is refused by the schema.
    assert!(!schema.is_valid(&json!({"type": "exploded", "reader": "front"})));
    assert_eq!(kinds.len(), events.len());

    // The stream opens with its comment line, as text/event-stream.
    let mut resp = agent
        .request(&Method::GET, "/v1/events")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let first = tokio::time::timeout(common::WAIT, resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b": connected\n\n");
}
