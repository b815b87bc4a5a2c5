//! What every request passes first: the bearer token, then the body size limit.
//!
//! A refused request's body is drained (up to a cap, briefly) before answering: a client still
//! sending a large body would otherwise see its connection reset and never read the 401 or 413.

use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use zeroize::Zeroizing;

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

/// Reads a body of at most [`BODY_LIMIT`] bytes (for bodies sent without a length). The body
/// can carry a PIN block and customer details: it is held zeroizing and wiped when dropped.
pub(crate) async fn read_body(body: Body) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let mut body = body;
    // Room for a declared length up front, so that a normal request never has to grow.
    let hint = usize::try_from(body.size_hint().lower()).unwrap_or(BODY_LIMIT);
    let mut buf = Zeroizing::new(Vec::with_capacity(hint.min(BODY_LIMIT)));
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
            push_wiped(&mut buf, data);
        }
    }
    Ok(buf)
}

/// Appends `data`. Vec's own growth would free the old allocation with the bytes still in it;
/// here a larger zeroizing buffer takes them and the old one is wiped as it drops.
fn push_wiped(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    let need = buf.len().saturating_add(data.len());
    if need > buf.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(
            need.max(buf.capacity().saturating_mul(2)),
        ));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::{bearer, push_wiped};
    use zeroize::Zeroizing;

    #[test]
    fn a_growing_body_moves_to_a_new_zeroizing_buffer() {
        let mut buf = Zeroizing::new(Vec::with_capacity(4));
        push_wiped(&mut buf, b"{\"a\"");
        let first = buf.as_ptr();
        push_wiped(&mut buf, b":1}");
        // Outgrew its 4-byte start: the bytes live in a new allocation (the old one was wiped on
        // drop by Zeroizing), whole and in order.
        assert_ne!(buf.as_ptr(), first);
        assert_eq!(buf.as_slice(), b"{\"a\":1}");
        assert!(buf.capacity() >= 8);
        let before = buf.as_ptr();
        let room = buf.capacity() - buf.len();
        push_wiped(&mut buf, &vec![b' '; room]);
        assert_eq!(buf.as_ptr(), before, "fits: appended in place");
    }

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
