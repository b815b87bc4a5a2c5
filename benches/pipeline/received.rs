//! A loopback HTTP server standing in for the gateway: notes when each Customer request has
//! arrived (its head read) and answers it saved. The far end of "frame -> HTTP request
//! written", so the figure includes the client's serialization, the write and loopback.
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Arrival time by customer id.
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

const SAVED: &[u8] = br#"{"customer_response":{"result_code":1,"token":"1"}}"#;

async fn answer(
    arrivals: Arrivals,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    if let Ok(body) = req.into_body().collect().await {
        let body = body.to_bytes();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
            if let Some(id) = v["customer"]["customer_id"].as_str() {
                arrivals.lock().unwrap().entry(id.to_string()).or_insert(at);
            }
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(SAVED)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Starts the server on 127.0.0.1 and returns its base URL.
pub async fn start(arrivals: Arrivals) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(arrivals.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    url
}
