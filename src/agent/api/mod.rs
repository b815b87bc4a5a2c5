//! The local API for kiosks and supervisors (design.md §3): bearer token on every route, bodies
//! up to 64 KiB, loopback by default, JSON errors that name the bad field.
//!
//! ```text
//! GET    /v1/health         GET /v1/readers      GET /v1/queue
//! POST   /v1/captures       GET|DELETE /v1/captures/{id}
//! GET    /v1/events (SSE)   GET /metrics         GET /v1/openapi.json
//! POST   /v1/events/ticket  POST /v1/queue/flush GET /v1/reads
//! POST   /v1/console/code   GET / (the console, see [`console`]) POST /console/session|signout
//! ```
//! The agent plugs in through [`Lane`]; captures go through the shared
//! [`Captures`] registry, events through the [`EventHub`].

mod capture_request;
pub mod console;
mod cors;
mod error;
mod guard;
mod lane;
mod openapi;
mod routes;
mod secrets;
mod server;
pub mod token;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::MethodRouter;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use error::ApiError;
pub use guard::BODY_LIMIT;
pub use lane::{
    FieldError, GatewayState, HealthStatus, Lane, QueueInfo, QueueRecordInfo, ReaderInfo,
    ReaderState, DOWN_REASONS,
};
pub use openapi::document as openapi_document;
pub use routes::Op;
pub use secrets::{CODE_TTL, SESSION_TTL, TICKET_TTL};
pub use server::{HEADER_READ_TIMEOUT, MAX_CONNECTIONS};
pub use token::ApiToken;

use crate::agent::captures::Captures;
use crate::agent::config::ApiConfig;
use crate::agent::events::EventHub;
use crate::agent::metrics::Metrics;

/// Capture time-outs as the API applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSettings {
    /// For a capture posted without `timeout_s`.
    pub default_capture_timeout: Duration,
    /// Largest `timeout_s` accepted.
    pub max_capture_timeout: Duration,
    /// `GET /v1/health`'s status when the lane is down (200 or 503, `[api] health_down_status`).
    pub health_down_status: u16,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings::from(&ApiConfig::default())
    }
}

impl From<&ApiConfig> for ApiSettings {
    fn from(c: &ApiConfig) -> Self {
        ApiSettings {
            default_capture_timeout: c.capture_timeout,
            max_capture_timeout: c.max_capture_timeout,
            health_down_status: c.health_down_status,
        }
    }
}

/// Everything the API serves from. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    pub lane: Arc<dyn Lane>,
    pub captures: Arc<Captures>,
    pub events: EventHub,
    pub metrics: Arc<Metrics>,
    pub settings: ApiSettings,
    token: Arc<ApiToken>,
    /// One permit per open `GET /v1/events` stream.
    pub(crate) event_streams: Arc<tokio::sync::Semaphore>,
    /// Sign-in codes, console sessions, event-stream tickets.
    pub(crate) access: Arc<secrets::Access>,
    /// `[api] allowed_origins`: pages that may call the API (CORS).
    pub allowed_origins: Arc<Vec<String>>,
    /// What `POST /v1/queue/flush` runs; `None`: the route answers 503.
    pub flush: Option<Arc<dyn QueueFlush>>,
}

/// A manual flush of the durable queue (the console's button): every record held is sent
/// once now, whatever its backoff says.
pub trait QueueFlush: Send + Sync + 'static {
    fn flush(&self) -> futures_util::future::BoxFuture<'static, Result<FlushSummary, String>>;
}

/// What a manual flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct FlushSummary {
    pub sent: u64,
    pub failed: u64,
    pub remaining: u64,
}

/// Event streams open at once; each holds a connection and a broadcast receiver.
pub const MAX_EVENT_STREAMS: usize = 32;

impl ApiState {
    pub fn new(
        lane: Arc<dyn Lane>,
        captures: Arc<Captures>,
        events: EventHub,
        metrics: Arc<Metrics>,
        token: ApiToken,
        settings: ApiSettings,
    ) -> ApiState {
        ApiState {
            lane,
            captures,
            events,
            metrics,
            settings,
            token: Arc::new(token),
            event_streams: Arc::new(tokio::sync::Semaphore::new(MAX_EVENT_STREAMS)),
            access: Arc::new(secrets::Access::default()),
            allowed_origins: Arc::new(Vec::new()),
            flush: None,
        }
    }

    /// Pages of these exact origins may call the API (CORS).
    pub fn with_allowed_origins(mut self, origins: Vec<String>) -> ApiState {
        self.allowed_origins = Arc::new(origins);
        self
    }

    /// Lets `POST /v1/queue/flush` flush the queue.
    pub fn with_flush(mut self, flush: Arc<dyn QueueFlush>) -> ApiState {
        self.flush = Some(flush);
        self
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("captures", &self.captures)
            .field("events", &self.events)
            .field("settings", &self.settings)
            .field("token", &self.token)
            .field("access", &self.access)
            .field("allowed_origins", &self.allowed_origins)
            .finish()
    }
}

/// The state handlers see: the API state plus the shutdown signal long-lived streams watch.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) api: ApiState,
    pub(crate) shutdown: watch::Receiver<bool>,
}

fn build_router(state: AppState) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<AppState>> = BTreeMap::new();
    for op in Op::ALL {
        let mr = by_path.remove(op.path()).unwrap_or_default();
        by_path.insert(op.path(), op.attach(mr));
    }
    let mut router: Router<AppState> = Router::new();
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
        .fallback(|| async {
            ApiError::not_found("no-route", "no such route (see GET /v1/openapi.json)")
        })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::guard,
        ))
        // Outside the guard: a CORS preflight carries no token.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            cors::cors,
        ))
        .with_state(state)
}

/// The router alone (no shutdown signal), e.g. to mount under another server.
pub fn router(state: ApiState) -> Router {
    let (_tx, rx) = watch::channel(false);
    build_router(AppState {
        api: state,
        shutdown: rx,
    })
}

/// Binds the API's listener. Refuses a non-loopback address unless `allow_remote`.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> std::io::Result<TcpListener> {
    if !allow_remote && !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            "the API listens on loopback only unless api.allow_remote is set",
        ));
    }
    TcpListener::bind(addr).await
}

/// A running server. Dropping it leaves the server running; call [`ServerHandle::shutdown`].
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends event streams, lets requests in flight finish, then returns.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.map_err(std::io::Error::other)?
    }
}

/// Serves the API on `listener` until [`ServerHandle::shutdown`]. Must be called inside a
/// tokio runtime.
pub fn serve(listener: TcpListener, state: ApiState) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let (stop, rx) = watch::channel(false);
    let state_metrics = state.metrics.clone();
    let router = build_router(AppState {
        api: state,
        shutdown: rx.clone(),
    });
    let metrics = state_metrics;
    let task = tokio::spawn(server::accept_loop(listener, router, rx, metrics));
    Ok(ServerHandle { addr, stop, task })
}

/// Why the API could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Token(#[from] token::TokenError),
    #[error("api.listen {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
}

/// What `cardlane run` calls: token file (created if missing), loopback check, bind, serve.
pub async fn start(
    config: &ApiConfig,
    lane: Arc<dyn Lane>,
    captures: Arc<Captures>,
    events: EventHub,
    metrics: Arc<Metrics>,
    flush: Option<Arc<dyn QueueFlush>>,
) -> Result<ServerHandle, StartError> {
    let token = token::load_or_create(&config.token_file)?;
    let bind_err = |e: std::io::Error| StartError::Bind {
        addr: config.listen,
        reason: e.to_string(),
    };
    let listener = bind(config.listen, config.allow_remote)
        .await
        .map_err(bind_err)?;
    let mut state = ApiState::new(
        lane,
        captures,
        events,
        metrics,
        token,
        ApiSettings::from(config),
    )
    .with_allowed_origins(config.allowed_origins.clone());
    if let Some(f) = flush {
        state = state.with_flush(f);
    }
    serve(listener, state).map_err(bind_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_is_loopback_unless_allowed() {
        let e = bind("0.0.0.0:0".parse().unwrap(), false).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let l = bind("127.0.0.1:0".parse().unwrap(), false).await.unwrap();
        assert!(l.local_addr().unwrap().ip().is_loopback());
    }

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
        fn validate_customer(&self, _: &serde_json::Value) -> Result<(), FieldError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn start_creates_the_token_and_listens() {
        let dir = tempfile::tempdir().unwrap();
        let config = ApiConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            token_file: dir.path().join("tok"),
            ..ApiConfig::default()
        };
        let parts = || {
            (
                Arc::new(NoLane) as Arc<dyn Lane>,
                Arc::new(Captures::new(1)),
                EventHub::default(),
                Arc::new(Metrics::new()),
            )
        };
        let (l, c, e, m) = parts();
        let handle = start(&config, l, c, e, m, None).await.unwrap();
        assert!(config.token_file.exists());
        let addr = handle.local_addr();
        // The port is taken now: a second start names the address.
        let (l, c, e, m) = parts();
        let busy = ApiConfig {
            listen: addr,
            ..config.clone()
        };
        match start(&busy, l, c, e, m, None).await.unwrap_err() {
            StartError::Bind { addr: a, .. } => assert_eq!(a, addr),
            other => panic!("{other:?}"),
        }
        handle.shutdown().await.unwrap();
    }

    /// A lane reporting fixed health reasons.
    struct Reasons(Vec<&'static str>);
    impl Lane for Reasons {
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
        fn health_reasons(&self) -> Vec<String> {
            self.0.iter().map(|r| r.to_string()).collect()
        }
    }

    #[tokio::test]
    async fn health_status_and_http_code_follow_the_reasons() {
        let dir = tempfile::tempdir().unwrap();
        // (reasons, status, code with the default `health_down_status`, code with 503)
        for (reasons, status, default_code, strict_code) in [
            (vec![], "ok", 200, 200),
            (
                vec!["reader-missing:back", "gateway-auth-failed"],
                "degraded",
                200,
                200,
            ),
            (vec!["uploader-not-alive"], "degraded", 200, 200),
            (
                vec!["reader-missing:front", "no-reader-connected"],
                "down",
                200,
                503,
            ),
            (vec!["queue-not-writable"], "down", 200, 503),
        ] {
            for (down_status, code) in [(200, default_code), (503, strict_code)] {
                let config = ApiConfig {
                    listen: "127.0.0.1:0".parse().unwrap(),
                    token_file: dir.path().join("tok"),
                    health_down_status: down_status,
                    ..ApiConfig::default()
                };
                let handle = start(
                    &config,
                    Arc::new(Reasons(reasons.clone())),
                    Arc::new(Captures::new(1)),
                    EventHub::default(),
                    Arc::new(Metrics::new()),
                    None,
                )
                .await
                .unwrap();
                let token = std::fs::read_to_string(&config.token_file).unwrap();
                let resp = reqwest::Client::new()
                    .get(format!("http://{}/v1/health", handle.local_addr()))
                    .bearer_auth(token.trim())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status().as_u16(), code, "{reasons:?} {down_status}");
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_eq!(body["status"], status, "{reasons:?}");
                assert_eq!(body["reasons"], serde_json::json!(reasons));
                handle.shutdown().await.unwrap();
            }
        }
    }

    #[test]
    fn settings_follow_the_config() {
        let c = ApiConfig {
            capture_timeout: Duration::from_secs(5),
            max_capture_timeout: Duration::from_secs(9),
            ..ApiConfig::default()
        };
        let s = ApiSettings::from(&c);
        assert_eq!(s.default_capture_timeout, Duration::from_secs(5));
        assert_eq!(s.max_capture_timeout, Duration::from_secs(9));
    }
}
