//! The local OnePay gateway simulator (`cardlane gateway-sim`, design.md §3).
//!
//! axum routes served by our own hyper accept loop, which lets a fault close a connection
//! without answering (`reset`, `commit-then-drop`) and gives a graceful shutdown.
pub mod customer;
pub mod decrypting_reader;
pub mod faults;
pub mod reader;
mod routes;
mod spec_rules;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

pub use reader::{Bdk, CardFacts, CardReadError, CardReader, ClearCardReader, ReadContext};
pub use store::StoreError;

use crate::gateway::secret::ApiKey;

/// How the simulator runs. `Debug` is safe: key and BDKs print as `***`.
#[derive(Clone)]
pub struct SimConfig {
    pub api_key: ApiKey,
    /// SQLite file; `None` keeps state in memory only.
    pub db_path: Option<PathBuf>,
    /// Answer with plain JSON instead of the gateway's double-encoded string.
    pub plain_json: bool,
    pub bdks: Vec<Bdk>,
    pub reader: Arc<dyn CardReader>,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl SimConfig {
    /// Decrypts reader output with `bdks` (none configured: encrypted data is refused).
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            api_key,
            db_path: None,
            plain_json: false,
            bdks: Vec::new(),
            reader: Arc::new(decrypting_reader::DecryptingReader),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("api_key", &self.api_key)
            .field("db_path", &self.db_path)
            .field("plain_json", &self.plain_json)
            .field("bdks", &self.bdks.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot use the listening socket: {0}")]
    Listener(std::io::Error),
}

/// A listening socket the simulator can take: std's or tokio's.
pub trait SimListener {
    fn into_tokio(self) -> std::io::Result<tokio::net::TcpListener>;
}

impl SimListener for tokio::net::TcpListener {
    fn into_tokio(self) -> std::io::Result<tokio::net::TcpListener> {
        Ok(self)
    }
}

impl SimListener for std::net::TcpListener {
    fn into_tokio(self) -> std::io::Result<tokio::net::TcpListener> {
        self.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(self)
    }
}

/// A running simulator. Drop it or call `shutdown` to stop.
#[derive(Debug)]
pub struct SimServer {
    pub addr: SocketAddr,
    /// `http://ADDR`, for `ClientConfig::new`.
    pub base_url: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimServer {
    /// Stops accepting, lets requests in flight finish (up to the grace period), then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops (after a `shutdown` from elsewhere or a listener failure).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A handle that can stop the server from another task (e.g. a signal handler).
    pub fn stopper(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Lets a handler close its own connection without answering.
#[derive(Clone, Debug)]
pub(crate) struct ConnControl(Arc<watch::Sender<Option<bool>>>);

impl ConnControl {
    /// `reset`: abort with RST; otherwise a plain close.
    pub(crate) fn kill(&self, reset: bool) {
        let _ = self.0.send(Some(reset));
    }
}

/// Starts the simulator on `listener`. Must be called inside a tokio runtime.
pub fn spawn(cfg: SimConfig, listener: impl SimListener) -> Result<SimServer, SimError> {
    let listener = listener.into_tokio().map_err(SimError::Listener)?;
    let addr = listener.local_addr().map_err(SimError::Listener)?;
    let store = store::Store::open(cfg.db_path.as_deref())?;
    let state = Arc::new(routes::AppState {
        core: customer::Core {
            store,
            reader: cfg.reader.clone(),
            bdks: cfg.bdks.clone(),
        },
        api_key: cfg.api_key.clone(),
        plain_json: cfg.plain_json,
        faults: faults::Faults::default(),
        requests: AtomicU64::new(0),
    });
    let app = routes::router(state);
    let (stop, stop_rx) = watch::channel(false);
    let grace = cfg.shutdown_grace;
    let task = tokio::spawn(accept_loop(listener, app, stop_rx, grace));
    Ok(SimServer {
        addr,
        base_url: format!("http://{addr}"),
        stop,
        task,
    })
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_conn(stream, app.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            // Reap finished connections so the set does not grow without bound.
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        conns.abort_all();
    }
    tracing::info!("simulator stopped");
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, to set SO_LINGER 0 (RST on close) for the `reset` fault.
    let (stream, twin) = match stream.into_std().and_then(|s| {
        let twin = s.try_clone()?;
        Ok((tokio::net::TcpStream::from_std(s)?, twin))
    }) {
        Ok(pair) => pair,
        Err(_) => return,
    };
    let (kill_tx, mut kill_rx) = watch::channel(None);
    let control = ConnControl(Arc::new(kill_tx));
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(control.clone());
        app.clone().oneshot(req)
    });
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = conn.as_mut() => break,
            changed = kill_rx.changed() => {
                let reset = changed.is_ok() && *kill_rx.borrow() == Some(true);
                if reset {
                    let _ = socket2::SockRef::from(&twin).set_linger(Some(Duration::ZERO));
                }
                // Dropping the connection closes the socket without a reply.
                break;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
