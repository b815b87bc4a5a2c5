//! The console's sign-in, session cookie, event-stream tickets and CORS over real HTTP (a fake
//! lane; the browser itself is in tests/console_browser.rs). Requests are made the way a
//! browser would make them: `Sec-Fetch-Site` and `Origin` set by hand as a page's fetch sends
//! them.

use std::sync::Arc;
use std::time::Duration;

use cardlane::agent::api::{
    self, token, ApiSettings, ApiState, FieldError, FlushSummary, GatewayState, Lane, QueueFlush,
    QueueInfo, ReaderInfo, ServerHandle,
};
use cardlane::agent::captures::Captures;
use cardlane::agent::events::{EventHub, LaneEvent, MaskedPanText};
use cardlane::agent::metrics::Metrics;
use reqwest::header::{
    ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE,
};
use reqwest::StatusCode;
use serde_json::{json, Value};

const HANG: Duration = Duration::from_secs(20);
const KIOSK: &str = "http://kiosk.example:8080";

struct NoLane;
impl Lane for NoLane {
    fn readers(&self) -> Vec<ReaderInfo> {
        Vec::new()
    }
    fn queue(&self) -> QueueInfo {
        QueueInfo::default()
    }
    fn gateway(&self) -> GatewayState {
        GatewayState::Reachable
    }
    fn validate_customer(&self, _: &Value) -> Result<(), FieldError> {
        Ok(())
    }
}

/// A flush that reports fixed figures, to see them come back through the route.
struct FixedFlush;
impl QueueFlush for FixedFlush {
    fn flush(&self) -> futures_util::future::BoxFuture<'static, Result<FlushSummary, String>> {
        Box::pin(async {
            Ok(FlushSummary {
                sent: 2,
                failed: 1,
                remaining: 0,
            })
        })
    }
}

struct Server {
    handle: ServerHandle,
    base: String,
    token: String,
    events: EventHub,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(origins: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let tok = token::load_or_create(&dir.path().join("tok")).unwrap();
    let secret = tok.expose().to_string();
    let events = EventHub::new(16);
    let state = ApiState::new(
        Arc::new(NoLane),
        Arc::new(Captures::new(2)),
        events.clone(),
        Arc::new(Metrics::new()),
        tok,
        ApiSettings::default(),
    )
    .with_allowed_origins(origins.iter().map(|o| o.to_string()).collect())
    .with_flush(Arc::new(FixedFlush));
    let listener = api::bind("127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let handle = api::serve(listener, state).unwrap();
    Server {
        base: format!("http://{}", handle.local_addr()),
        handle,
        token: secret,
        events,
        http: reqwest::Client::builder().timeout(HANG).build().unwrap(),
        _dir: dir,
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A one-time code, as `cardlane console-url` asks for it.
    async fn code(&self) -> String {
        let r = self
            .http
            .post(self.url("/v1/console/code"))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        let code = v["code"].as_str().unwrap().to_string();
        assert_eq!(v["path"], format!("/console/signin?code={code}"));
        assert_eq!(v["expires_in_s"], 60);
        code
    }

    /// The console page's exchange (same origin), returning the response.
    async fn exchange(&self, body: Value, site: &str) -> reqwest::Response {
        self.http
            .post(self.url("/console/session"))
            .header("sec-fetch-site", site)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

fn session_of(r: &reqwest::Response) -> String {
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr} missing: {set}");
    }
    let value = set
        .strip_prefix("cardlane_session=")
        .and_then(|v| v.split(';').next())
        .unwrap();
    assert_eq!(value.len(), 64, "{set}");
    value.to_string()
}

#[tokio::test]
async fn page_and_sign_in_with_a_one_time_code() {
    let s = start(&[]).await;
    // The page, script and style: served to anyone, under the strict policy.
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/signin", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let csp = r.headers()[CONTENT_SECURITY_POLICY].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "img-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    }
    // Lane data is not public.
    let r = s.http.get(s.url("/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Minting a code needs the token.
    let r = s.http.post(s.url("/v1/console/code")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let code = s.code().await;
    // Another site's page cannot spend the code (nor plant a session).
    let r = s.exchange(json!({"code": code}), "cross-site").await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = s.exchange(json!({"code": code}), "same-origin").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let session = session_of(&r);
    assert_ne!(session, code);
    // The code works once.
    let r = s.exchange(json!({"code": code}), "same-origin").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(SET_COOKIE).is_none());

    let cookie = format!("cardlane_session={session}");
    let get = |path: &str, site: &str| {
        s.http
            .get(s.url(path))
            .header(COOKIE, &cookie)
            .header("sec-fetch-site", site)
            .send()
    };
    // The console's own requests pass with the cookie...
    let r = get("/v1/health", "same-origin").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // ...a cross-site request carrying it does not...
    for site in ["cross-site", "same-site", "none"] {
        let r = get("/v1/health", site).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{site}");
    }
    // ...and a session cannot mint sign-in codes.
    let r = s
        .http
        .post(s.url("/v1/console/code"))
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The flush button's route, with the session.
    let r = s
        .http
        .post(s.url("/v1/queue/flush"))
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"sent": 2, "failed": 1, "remaining": 0}));

    // Signing out ends the session.
    let r = s
        .http
        .post(s.url("/console/signout"))
        .header(COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = get("/v1/health", "same-origin").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Pasting the token signs in too; a wrong one does not.
    let r = s.exchange(json!({"token": "nope"}), "same-origin").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s.exchange(json!({"token": s.token}), "same-origin").await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    session_of(&r);
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn last_reads_newest_first_and_masked() {
    let s = start(&[]).await;
    for (id, pan) in [("CL1", "4111111111111111"), ("CL2", "5555555555554444")] {
        s.events.publish(LaneEvent::Queued {
            reader: Some("front".into()),
            capture_id: None,
            customer_id: id.into(),
            masked_pan: MaskedPanText::from_pan_digits(pan),
            masked_account: None,
            last4: Some(pan.into()),
        });
    }
    let r = s
        .http
        .get(s.url("/v1/reads"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["reads"][0]["customer_id"], "CL2");
    assert_eq!(v["reads"][0]["masked_pan"], "555555******4444");
    assert_eq!(v["reads"][1]["customer_id"], "CL1");
    assert!(!text.contains("4111111111111111") && !text.contains("5555555555554444"));
    s.handle.shutdown().await.unwrap();
}

/// Reads an SSE response until `want` shows up in it (or fails after `HANG`).
async fn sse_until(mut r: reqwest::Response, want: &str) -> String {
    let mut seen = String::new();
    tokio::time::timeout(HANG, async {
        while let Some(chunk) = r.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(want) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {want:?} in the stream: {seen}"));
    seen
}

#[tokio::test]
async fn event_ticket_opens_one_stream_once() {
    let s = start(&[]).await;
    let r = s
        .http
        .post(s.url("/v1/events/ticket"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_in_s"], 30);
    let ticket = v["ticket"].as_str().unwrap().to_string();
    let url = s.url(&format!("/v1/events?ticket={ticket}"));
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let stream = tokio::spawn(sse_until(r, "event: swipe-unreadable"));
    // Published once the stream has its subscriber (the hub counts it).
    tokio::time::timeout(HANG, async {
        while s.events.subscribers() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    s.events.publish(LaneEvent::SwipeUnreadable {
        reader: "front".into(),
        code: "bad-lrc".into(),
    });
    let seen = stream.await.unwrap();
    assert!(seen.contains("\"code\":\"bad-lrc\""), "{seen}");
    // Spent: the same ticket opens nothing now, nor does a made-up one.
    let r = s.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .get(s.url(&format!("/v1/events?ticket={}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // A ticket opens the event stream only.
    let r = s
        .http
        .post(s.url("/v1/events/ticket"))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    let t: Value = r.json().await.unwrap();
    let r = s
        .http
        .get(s.url(&format!(
            "/v1/health?ticket={}",
            t["ticket"].as_str().unwrap()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn cors_only_for_the_allowed_origins() {
    // None configured: no CORS header at all, preflight included.
    let s = start(&[]).await;
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/v1/health"))
        .header("origin", KIOSK)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-")));
    let r = s
        .http
        .get(s.url("/v1/health"))
        .header("origin", KIOSK)
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .keys()
        .all(|k| !k.as_str().starts_with("access-control-")));
    assert!(r.headers().get("vary").is_none());
    s.handle.shutdown().await.unwrap();

    let s = start(&[KIOSK]).await;
    // The kiosk's preflight: answered without a token, for its origin only.
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/v1/captures"))
        .header("origin", KIOSK)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], KIOSK);
    let methods = r.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap();
    assert!(
        methods.contains("POST") && methods.contains("DELETE"),
        "{methods}"
    );
    let headers = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(r
        .headers()
        .get("access-control-allow-credentials")
        .is_none());
    let r = s
        .http
        .get(s.url("/v1/health"))
        .header("origin", KIOSK)
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], KIOSK);
    assert_eq!(r.headers()["vary"], "Origin");
    // Another origin, or the same host on another port or scheme: nothing.
    for other in [
        "http://evil.example",
        "http://kiosk.example:8081",
        "https://kiosk.example:8080",
        "http://kiosk.example:8080/",
    ] {
        let r = s
            .http
            .request(reqwest::Method::OPTIONS, s.url("/v1/health"))
            .header("origin", other)
            .header("access-control-request-method", "GET")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{other}");
        assert!(
            r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{other}"
        );
    }
    s.handle.shutdown().await.unwrap();
}
