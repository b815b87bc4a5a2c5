//! The API's accept loop. axum's `serve` has no header-read time-out and no connection cap:
//! 200 half-sent requests stayed open for minutes and 20,000 connections ran the agent out of
//! file descriptors, stalling uploads. Here every connection has a header-read time-out (which
//! hyper also applies while a kept-alive connection waits for its next request), at most
//! [`MAX_CONNECTIONS`] are open at once (more are closed at accept, logged and counted), and
//! shutdown stops accepting, then lets requests in flight finish.
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::agent::metrics::Metrics;

/// Open connections at most. Kiosks and supervisors hold a handful (an event stream each).
pub const MAX_CONNECTIONS: usize = 256;
/// A request's headers must arrive within this, and an idle kept-alive connection is closed
/// after it.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until `stop` turns true, then waits for the connections still open.
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stopped = async move {
        // A dropped sender means nobody can ask for shutdown: serve on.
        if stop.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stopped);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = &mut stopped => break,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // EMFILE and friends: wait a little rather than spin.
                tracing::warn!(code = "api-accept-failed", error = %e, "API accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                code = "api-connection-cap",
                max = MAX_CONNECTIONS,
                "API connection refused: too many open"
            );
            metrics.api_refused("connection-cap");
            drop(stream);
            continue;
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let watched = graceful.watch(conn);
        tokio::spawn(async move {
            // A client that goes away or times out is not an error worth a log line.
            let _ = watched.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
