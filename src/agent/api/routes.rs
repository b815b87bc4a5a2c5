//! The routes of design.md §3. [`Op::ALL`] is the one list: the router and the OpenAPI
//! document are both built from it.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Json;
use futures_util::StreamExt;
use serde_json::{json, Map, Value};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::capture_request::CaptureRequest;
use super::console;
use super::error::ApiError;
use super::guard::read_body;
use super::lane::{HealthStatus, Lane};
use super::AppState;
use crate::agent::captures::{CaptureError, CaptureStatus, CardOptions};
use crate::agent::metrics;

/// One operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Health,
    Readers,
    ArmCapture,
    GetCapture,
    CancelCapture,
    Events,
    Queue,
    Metrics,
    OpenApi,
    EventsTicket,
    QueueFlush,
    Reads,
    ConsoleCode,
    ConsolePage,
    ConsoleSignInPage,
    ConsoleScript,
    ConsoleStyle,
    ConsoleSession,
    ConsoleSignOut,
}

impl Op {
    pub const ALL: [Op; 19] = [
        Op::Health,
        Op::Readers,
        Op::ArmCapture,
        Op::GetCapture,
        Op::CancelCapture,
        Op::Events,
        Op::Queue,
        Op::Metrics,
        Op::OpenApi,
        Op::EventsTicket,
        Op::QueueFlush,
        Op::Reads,
        Op::ConsoleCode,
        Op::ConsolePage,
        Op::ConsoleSignInPage,
        Op::ConsoleScript,
        Op::ConsoleStyle,
        Op::ConsoleSession,
        Op::ConsoleSignOut,
    ];

    pub fn method(self) -> Method {
        match self {
            Op::ArmCapture
            | Op::EventsTicket
            | Op::QueueFlush
            | Op::ConsoleCode
            | Op::ConsoleSession
            | Op::ConsoleSignOut => Method::POST,
            Op::CancelCapture => Method::DELETE,
            _ => Method::GET,
        }
    }

    /// The path, in the `{param}` syntax shared by axum and OpenAPI.
    pub fn path(self) -> &'static str {
        match self {
            Op::Health => "/v1/health",
            Op::Readers => "/v1/readers",
            Op::ArmCapture => "/v1/captures",
            Op::GetCapture | Op::CancelCapture => "/v1/captures/{id}",
            Op::Events => "/v1/events",
            Op::Queue => "/v1/queue",
            Op::Metrics => "/metrics",
            Op::OpenApi => "/v1/openapi.json",
            Op::EventsTicket => "/v1/events/ticket",
            Op::QueueFlush => "/v1/queue/flush",
            Op::Reads => "/v1/reads",
            Op::ConsoleCode => "/v1/console/code",
            Op::ConsolePage => "/",
            Op::ConsoleSignInPage => console::SIGNIN_PATH,
            Op::ConsoleScript => "/console/app.js",
            Op::ConsoleStyle => "/console/app.css",
            Op::ConsoleSession => "/console/session",
            Op::ConsoleSignOut => "/console/signout",
        }
    }

    /// Adds this operation's handler to the method router of its path.
    pub(crate) fn attach(self, mr: MethodRouter<AppState>) -> MethodRouter<AppState> {
        match self {
            Op::Health => mr.get(health),
            Op::Readers => mr.get(readers),
            Op::ArmCapture => mr.post(arm_capture),
            Op::GetCapture => mr.get(get_capture),
            Op::CancelCapture => mr.delete(cancel_capture),
            Op::Events => mr.get(events),
            Op::Queue => mr.get(queue),
            Op::Metrics => mr.get(metrics_text),
            Op::OpenApi => mr.get(openapi),
            Op::EventsTicket => mr.post(events_ticket),
            Op::QueueFlush => mr.post(queue_flush),
            Op::Reads => mr.get(reads),
            Op::ConsoleCode => mr.post(console_code),
            Op::ConsolePage | Op::ConsoleSignInPage => mr.get(console::page),
            Op::ConsoleScript => mr.get(console::script),
            Op::ConsoleStyle => mr.get(console::style),
            Op::ConsoleSession => mr.post(console::sign_in),
            Op::ConsoleSignOut => mr.post(console::sign_out),
        }
    }
}

/// Runs a (possibly blocking) `Lane` call off the async workers.
async fn with_lane<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Lane) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let lane = state.api.lane.clone();
    tokio::task::spawn_blocking(move || f(lane.as_ref()))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the agent failed to answer",
            )
        })
}

/// `GET /v1/health`: 200 for `ok` and `degraded`; for `down`, `[api] health_down_status` (200
/// by default: the report is the answer, and clients read a 5xx as the agent failing; 503 for
/// monitors that look at the status code only).
async fn health(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (readers, queue, gateway, reasons) = with_lane(&state, |l| {
        (l.readers(), l.queue(), l.gateway(), l.health_reasons())
    })
    .await?;
    let status = HealthStatus::of(&reasons);
    let code = match status {
        HealthStatus::Down if state.api.settings.health_down_status == 503 => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::OK,
    };
    let body = Json(json!({
        "status": status.as_str(),
        "reasons": reasons,
        "readers": readers,
        "queue": {"held": queue.held, "oldest_age_s": queue.oldest_age_s},
        "gateway": gateway,
    }));
    Ok((code, body).into_response())
}

async fn readers(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let readers = with_lane(&state, |l| l.readers()).await?;
    Ok(Json(json!({ "readers": readers })))
}

async fn queue(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let queue = with_lane(&state, |l| l.queue()).await?;
    Ok(Json(json!(queue)))
}

/// `POST /v1/captures`: the body as the document's `CaptureRequest` says (400/422), then what
/// depends on the lane: customer rules (400), the reader and its keypad, the capture limit (409).
async fn arm_capture(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let bytes = read_body(body).await?;
    let req = CaptureRequest::parse(&bytes, &state.api.settings)?;
    drop(bytes);
    let customer_value = Value::Object(req.customer);
    let (check, known) = with_lane(&state, move |l| {
        let check = l.validate_customer(&customer_value);
        (check.map(|()| customer_value), l.readers())
    })
    .await?;
    let customer = match check {
        Ok(Value::Object(m)) => m,
        Ok(_) => Map::new(),
        Err(fe) => {
            let message = format!("customer field `{}`: {}", fe.field, fe.message);
            return Err(ApiError::field(&fe.field, message));
        }
    };
    // A capture is kept under the reader's id, whichever way the kiosk named it.
    let reader = match &req.reader {
        None => None,
        Some(sel) => match known.iter().find(|r| &r.id == sel || &r.device == sel) {
            Some(r) => Some(r),
            None => {
                // design.md §3: a bad field is a 400 naming it; the document lists the readers.
                return Err(ApiError::bad_value(
                    "reader",
                    "unknown-reader",
                    "no such reader (see GET /v1/readers)",
                ));
            }
        },
    };
    if req.pin.is_some() {
        let keypad = reader.is_some_and(|r| r.pin_entry && r.protocol.as_deref() == Some("neo2"));
        if !keypad {
            return Err(ApiError::conflict(
                "pin",
                "pin-not-supported",
                "`pin` needs `reader` naming a driven reader with a keypad (pin_entry in GET /v1/readers)",
            ));
        }
    }
    let reader = reader.map(|r| r.id.clone());
    let captures = &state.api.captures;
    let id = match req.check {
        Some(c) => captures.arm_check(reader, customer, req.timeout, c),
        None => captures.arm_card(
            reader,
            customer,
            req.timeout,
            CardOptions {
                interfaces: req.interfaces,
                pin: req.pin,
                pin_block: req.pin_block,
            },
        ),
    }
    .map_err(capture_error)?;
    let status = state
        .api
        .captures
        .get(&id)
        .ok_or_else(|| capture_error(CaptureError::Unknown))?;
    let location = format!("/v1/captures/{id}");
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(status),
    )
        .into_response())
}

fn capture_error(e: CaptureError) -> ApiError {
    let status = match e {
        CaptureError::Unknown => StatusCode::NOT_FOUND,
        CaptureError::LimitReached { .. }
        | CaptureError::Finished(_)
        | CaptureError::Swiped
        | CaptureError::NotSwiped => StatusCode::CONFLICT,
        CaptureError::BadOutcome(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, e.code(), e.to_string())
}

async fn get_capture(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CaptureStatus>, ApiError> {
    state
        .api
        .captures
        .get(&id)
        .map(Json)
        .ok_or_else(|| capture_error(CaptureError::Unknown))
}

async fn cancel_capture(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CaptureStatus>, ApiError> {
    state
        .api
        .captures
        .cancel(&id)
        .map(Json)
        .map_err(capture_error)
}

/// `GET /v1/events`: Server-Sent Events, one per lane event, `event:` naming its kind.
async fn events(State(state): State<AppState>) -> Response {
    let Ok(permit) = state.api.event_streams.clone().try_acquire_owned() else {
        tracing::warn!(
            code = "api-event-stream-cap",
            max = super::MAX_EVENT_STREAMS,
            "event stream refused: too many open"
        );
        state.api.metrics.api_refused("event-streams");
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-event-streams",
            format!(
                "{} event streams are open already; close one and retry",
                super::MAX_EVENT_STREAMS
            ),
        )
        .into_response();
    };
    let rx = state.api.events.subscribe();
    let mut shutdown = state.shutdown.clone();
    let stopped = async move {
        // A dropped sender means nobody can ask for shutdown: keep streaming.
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let hello = futures_util::stream::once(async { Event::default().comment("connected") });
    let stream = BroadcastStream::new(rx).map(|item| match item {
        Ok(ev) => Event::default().event(ev.kind()).data(ev.to_json()),
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            Event::default().comment(format!("missed {n} events"))
        }
    });
    let stream = hello
        .chain(stream)
        .map(move |e| {
            // The stream owns its slot: dropped with it when the client goes away.
            let _slot = &permit;
            Ok::<_, Infallible>(e)
        })
        .take_until(stopped);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `GET /metrics`: gauges that mirror the lane are refreshed from it first.
async fn metrics_text(State(state): State<AppState>) -> Result<Response, ApiError> {
    let (queue, readers) = with_lane(&state, |l| (l.queue(), l.readers())).await?;
    let m = &state.api.metrics;
    m.set_queue(queue.held, Duration::from_secs(queue.oldest_age_s));
    for r in &readers {
        m.set_reader_connected(&r.id, r.state.is_connected());
    }
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], m.render()).into_response())
}

async fn openapi(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let readers = with_lane(&state, |l| {
        l.readers()
            .into_iter()
            .flat_map(|r| [r.id, r.device])
            .collect::<std::collections::BTreeSet<String>>()
    })
    .await?;
    let readers: Vec<String> = readers.into_iter().collect();
    Ok(Json(super::openapi::document(
        &state.api.settings,
        &readers,
    )))
}

/// `POST /v1/events/ticket`: a single-use ticket that opens one event stream
/// (`GET /v1/events?ticket=…`) within [`TICKET_TTL`](super::TICKET_TTL), for browsers, whose
/// `EventSource` cannot send the bearer token.
async fn events_ticket(State(state): State<AppState>) -> Json<Value> {
    let ticket = state.api.access.tickets.issue();
    Json(json!({
        "ticket": ticket.as_str(),
        "expires_in_s": state.api.access.tickets.ttl().as_secs(),
    }))
}

/// `POST /v1/console/code` (bearer token only): a one-time sign-in code for the console,
/// which `cardlane console-url` turns into a URL.
async fn console_code(State(state): State<AppState>) -> Json<Value> {
    let code = state.api.access.codes.issue();
    Json(json!({
        "code": code.as_str(),
        "path": format!("{}?code={}", console::SIGNIN_PATH, code.as_str()),
        "expires_in_s": state.api.access.codes.ttl().as_secs(),
    }))
}

/// `POST /v1/queue/flush`: sends every held record once now. An agent without an uploader
/// (a test lane) sends nothing and says what is still held.
async fn queue_flush(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let Some(flush) = state.api.flush.clone() else {
        let held = with_lane(&state, |l| l.queue().held).await?;
        return Ok(Json(json!(super::FlushSummary {
            remaining: held,
            ..Default::default()
        })));
    };
    let report = flush
        .flush()
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "flush-failed", e))?;
    Ok(Json(json!(report)))
}

/// `GET /v1/reads`: the last reads and their outcomes (masked), newest first.
async fn reads(State(state): State<AppState>) -> Json<Value> {
    let mut reads = state.api.events.recent();
    reads.reverse();
    Json(json!({ "reads": reads }))
}
