//! What every request passes first: the bearer token, then the body size limit.
//!
//! A refused request's body is drained (up to a cap, briefly) before answering: a client still
//! sending a large body would otherwise see its connection reset and never read the 401 or 413.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::error::ApiError;
use super::AppState;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;
/// Most bytes read and thrown away from a refused request.
const DRAIN_CAP: usize = 4 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

pub(crate) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .is_some_and(|t| state.api.token.verify(t));
    if !authorized {
        // The path only: never headers, which may hold a (wrong) token.
        tracing::warn!(path = %req.uri().path(), "local API: request without a valid token refused");
        return refuse(req.into_body(), ApiError::unauthorized()).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return refuse(req.into_body(), ApiError::too_large(BODY_LIMIT)).await;
    }
    next.run(req).await
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(value: &[u8]) -> Option<&[u8]> {
    let scheme = value.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

async fn refuse(body: Body, error: ApiError) -> Response {
    drain(body).await;
    error.into_response()
}

async fn drain(body: Body) {
    let mut body = body;
    let work = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len());
                if seen > DRAIN_CAP {
                    break;
                }
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, work).await;
}

/// Reads a body of at most [`BODY_LIMIT`] bytes (for bodies sent without a length).
pub(crate) async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "bad-body",
                "the request body could not be read",
            )
        })?;
        if let Some(data) = frame.data_ref() {
            if buf.len().saturating_add(data.len()) > BODY_LIMIT {
                drain(body).await;
                return Err(ApiError::too_large(BODY_LIMIT));
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer  abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b""), None);
    }
}
