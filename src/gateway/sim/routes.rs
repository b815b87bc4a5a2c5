//! HTTP routes: `POST /Customer` (any path case) and the `/_sim/` test hooks.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;

use super::customer::{declined, process, Core};
use super::faults::{FaultKind, FaultSpec, Faults};
use super::ConnControl;
use crate::gateway::lenient::{lowercase_keys, parse_json_layers};
use crate::gateway::record::{CustomerReply, CustomerRequest};
use crate::gateway::secret::ApiKey;

pub struct AppState {
    pub core: Core,
    pub api_key: ApiKey,
    pub plain_json: bool,
    pub faults: Faults,
    pub requests: AtomicU64,
}

pub fn router(state: Arc<AppState>) -> Router {
    // The test hooks show who was saved and can make the gateway fail: the same API key as
    // `/Customer` guards them.
    let hooks = Router::new()
        .route("/_sim/customers", get(list_customers))
        .route(
            "/_sim/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_sim/stats", get(stats))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));
    Router::new()
        .merge(hooks)
        .fallback(customer_endpoint)
        .with_state(state)
}

async fn require_api_key(
    State(st): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if authorized(&st, request.headers()) {
        next.run(request).await
    } else {
        tracing::info!("test hook refused: missing or wrong x-authorization");
        denied()
    }
}

fn authorized(st: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get("x-authorization")
        .is_some_and(|v| st.api_key.matches(v.as_bytes()))
}

fn denied() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"message": "Authorization has been denied for this request."})),
    )
        .into_response()
}

async fn customer_endpoint(
    State(st): State<Arc<AppState>>,
    conn: Option<Extension<ConnControl>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/');
    if !path.eq_ignore_ascii_case("/customer") {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    if method != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "use POST").into_response();
    }
    st.requests.fetch_add(1, Ordering::Relaxed);

    let fault = st.faults.take();
    match fault {
        Some(FaultKind::Http500) => {
            tracing::info!(fault = "http-500", "injected fault");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal server error").into_response();
        }
        Some(FaultKind::Reset) => {
            tracing::info!(fault = "reset", "injected fault");
            return drop_connection(conn, true).await;
        }
        Some(FaultKind::Delay(d)) => {
            tracing::info!(
                fault = "delay",
                delay_ms = d.as_millis() as u64,
                "injected fault"
            );
            tokio::time::sleep(d).await;
        }
        _ => {}
    }

    if !authorized(&st, &headers) {
        tracing::info!("request refused: missing or wrong x-authorization");
        return denied();
    }

    let req = match parse_request(&body) {
        Ok(r) => r,
        Err(text) => return encode(&st, &bad_body(text)),
    };

    if fault == Some(FaultKind::Decline) {
        tracing::info!(fault = "decline", "injected fault");
        return encode(&st, &declined(&req));
    }

    let (reply, summary) = match process(&st.core, &req) {
        Ok(done) => done,
        Err(e) => {
            tracing::error!(error = %e, "simulator store failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "store error").into_response();
        }
    };
    tracing::info!(
        customer_id = %summary.customer_id,
        action = summary.action,
        result_code = summary.result_code,
        "customer request"
    );
    if fault == Some(FaultKind::CommitThenDrop) {
        tracing::info!(fault = "commit-then-drop", "injected fault");
        return drop_connection(conn, false).await;
    }
    encode(&st, &reply)
}

/// Keys in any case, scalars as strings or numbers, the body itself possibly double-encoded.
fn parse_request(body: &[u8]) -> Result<CustomerRequest, &'static str> {
    let value = parse_json_layers(body).map_err(|_| "body: is not JSON")?;
    let value = lowercase_keys(value);
    if !value.is_object() {
        return Err("body: must be a JSON object");
    }
    serde_json::from_value(value).map_err(|_| "body: customer, card and check must be objects")
}

fn bad_body(text: &str) -> CustomerReply {
    let mut r = CustomerReply::default();
    r.customer_response.result_code = crate::gateway::record::RESULT_ERROR;
    r.customer_response.result_sub_code = Some("003".into());
    r.customer_response.result_text = Some(text.into());
    r.customer_response.transaction_datetime =
        Some(chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    r
}

/// The gateway's habit: a JSON string holding the JSON document, unless `--plain-json`.
fn encode(st: &AppState, reply: &CustomerReply) -> Response {
    let doc = match serde_json::to_string(reply) {
        Ok(s) => s,
        Err(_) => return (StatusCode::INTERNAL_SERVER_ERROR, "encode error").into_response(),
    };
    let body = if st.plain_json {
        doc
    } else {
        serde_json::Value::String(doc).to_string()
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        Body::from(body),
    )
        .into_response()
}

/// Asks the connection task to close the socket (`reset`: with RST), then never answers.
async fn drop_connection(conn: Option<Extension<ConnControl>>, reset: bool) -> Response {
    match conn {
        Some(Extension(c)) => {
            c.kill(reset);
            std::future::pending::<()>().await;
            unreachable_response()
        }
        // Served without a connection (unit use): the closest thing is a 500.
        None => unreachable_response(),
    }
}

fn unreachable_response() -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, "connection dropped").into_response()
}

async fn list_customers(State(st): State<Arc<AppState>>) -> Response {
    match st.core.store.list() {
        Ok(rows) => {
            let out: Vec<_> = rows
                .into_iter()
                .map(|(id, c)| {
                    let card = c.card.as_ref();
                    json!({
                        "customer_id": id,
                        "first_name": c.fields.first_name,
                        "last_name": c.fields.last_name,
                        "token": card.map(|k| k.token.clone()).or(c.check_token.clone()),
                        "account_type": card.and_then(|k| k.account_type.clone()),
                        "account_last_4": card.and_then(|k| k.last4.clone()).or(c.check_last4.clone()),
                        "expiration_date": card.and_then(|k| k.expiry.clone()),
                        "aba_code": c.check_aba,
                        "updated_count": c.updated_count,
                    })
                })
                .collect();
            Json(out).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "simulator store failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "store error").into_response()
        }
    }
}

async fn add_fault(State(st): State<Arc<AppState>>, body: Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "body must be {\"kind\":…,\"count\":N,\"delay_ms\":M}"})),
            )
                .into_response()
        }
    };
    match spec.parse() {
        Ok((kind, count)) => {
            st.faults.push(kind, count);
            tracing::info!(fault = kind.name(), count, "fault armed");
            (StatusCode::OK, Json(faults_json(&st.faults))).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn list_faults(State(st): State<Arc<AppState>>) -> Response {
    Json(faults_json(&st.faults)).into_response()
}

async fn clear_faults(State(st): State<Arc<AppState>>) -> Response {
    st.faults.clear();
    Json(faults_json(&st.faults)).into_response()
}

fn faults_json(f: &Faults) -> serde_json::Value {
    let pending: Vec<_> = f
        .pending()
        .into_iter()
        .map(|(kind, count)| {
            let delay = match kind {
                FaultKind::Delay(d) => Some(d.as_millis() as u64),
                _ => None,
            };
            json!({"kind": kind.name(), "count": count, "delay_ms": delay})
        })
        .collect();
    json!({ "pending": pending })
}

async fn stats(State(st): State<Arc<AppState>>) -> Response {
    Json(json!({"customer_requests": st.requests.load(Ordering::Relaxed)})).into_response()
}
