//! The local API's own limits over real TCP on 127.0.0.1: a client that never finishes its
//! headers is cut off, connections past the cap are closed at once (and counted), event streams
//! past their cap get 503. Each wait has a time-out that fails the test rather than hanging.
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardlane::agent::api::{
    self, token, ApiSettings, ApiState, FieldError, GatewayState, Lane, QueueInfo, ReaderInfo,
    ServerHandle, HEADER_READ_TIMEOUT, MAX_CONNECTIONS, MAX_EVENT_STREAMS,
};
use cardlane::agent::captures::Captures;
use cardlane::agent::events::EventHub;
use cardlane::agent::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct QuietLane;

impl Lane for QuietLane {
    fn readers(&self) -> Vec<ReaderInfo> {
        Vec::new()
    }
    fn queue(&self) -> QueueInfo {
        QueueInfo::default()
    }
    fn gateway(&self) -> GatewayState {
        GatewayState::Reachable
    }
    fn validate_customer(&self, _: &serde_json::Value) -> Result<(), FieldError> {
        Ok(())
    }
}

struct Api {
    handle: ServerHandle,
    token: String,
    _dir: tempfile::TempDir,
}

async fn start() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let tok = token::load_or_create(&dir.path().join("api-token")).unwrap();
    let token = tok.expose().to_string();
    let state = ApiState::new(
        Arc::new(QuietLane),
        Arc::new(Captures::new(4)),
        EventHub::new(16),
        Arc::new(Metrics::new()),
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
    Api {
        handle,
        token,
        _dir: dir,
    }
}

/// Reads until the server closes the connection; fails after `limit`.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
}

async fn get(api: &Api, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://{}{path}", api.handle.local_addr()))
        .bearer_auth(&api.token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_closed() {
    let api = start().await;
    let addr = api.handle.local_addr();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let limit = HEADER_READ_TIMEOUT * 3;
    let t = closed_within(&mut half, limit).await;
    assert!(t >= HEADER_READ_TIMEOUT / 2, "closed too early: {t:?}");
    closed_within(&mut silent, limit).await;
    // The server still serves.
    assert_eq!(get(&api, "/v1/health").await.status(), 200);
    api.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_and_counted() {
    let api = start().await;
    let addr = api.handle.local_addr();
    let mut open = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        open.push(TcpStream::connect(addr).await.unwrap());
    }
    // Each held connection is served; one request on the first proves they were accepted.
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    closed_within(&mut extra, Duration::from_secs(20)).await;
    open.clear();
    // Slots come back once the held connections are gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let r = reqwest::Client::new()
            .get(format!("http://{addr}/metrics"))
            .bearer_auth(&api.token)
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        if let Ok(r) = r {
            break r.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let line = text
        .lines()
        .find(|l| l.starts_with("cardlane_api_refused_total{reason=\"connection-cap\"}"))
        .unwrap_or_else(|| panic!("no refusal counted:\n{text}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 1.0, "{line}");
    api.handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn event_streams_past_their_cap_get_503() {
    let api = start().await;
    let mut streams = Vec::new();
    for _ in 0..MAX_EVENT_STREAMS {
        let r = get(&api, "/v1/events").await;
        assert_eq!(r.status(), 200);
        streams.push(r);
    }
    let r = get(&api, "/v1/events").await;
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too-many-event-streams", "{body}");
    // Closing one frees its slot.
    streams.pop();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(&api, "/v1/events").await;
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed stream's slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(streams);
    api.handle.shutdown().await.unwrap();
}
