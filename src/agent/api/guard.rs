//! What every request passes first: the bearer token, then the body size limit.
//!
//! A refused request's body is drained (up to a cap, briefly) before answering: a client still
//! sending a large body would otherwise see its connection reset and never read the 401 or 413.

use std::time::Duration;

use axum::body::{Body, HttpBody as _};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
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
    let path = req.uri().path();
    let bearer_ok = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| bearer(v.as_bytes()))
        .is_some_and(|t| state.api.token.verify(t));
    let authorized = if is_public(req.method(), path) || bearer_ok {
        true
    } else if let Some(ticket) = event_ticket(&req) {
        // An `EventSource` cannot send a header: a ticket from `POST /v1/events/ticket`
        // opens one stream, once.
        state.api.access.tickets.accept(ticket.as_bytes())
    } else {
        // The console's session cookie, for the console's own pages only: a request that
        // another site's page made (even with the cookie, which SameSite=Strict already
        // withholds) is refused, as is minting sign-in codes from a session.
        !BEARER_ONLY.contains(&path)
            && same_origin(req.headers())
            && session_cookie(req.headers())
                .is_some_and(|s| state.api.access.sessions.accept(s.as_bytes()))
    };
    if !authorized {
        // The path only: never headers or query, which may hold a (wrong) token or ticket.
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

/// The console's static files and its sign-in exchange: served to anyone (they hold no lane
/// data; the page asks the API for everything once signed in).
fn is_public(method: &Method, path: &str) -> bool {
    let get = *method == Method::GET || *method == Method::HEAD;
    (get && super::console::PUBLIC_GET.contains(&path))
        || (*method == Method::POST && super::console::PUBLIC_POST.contains(&path))
}

/// Routes that take the bearer token only (not a console session).
const BEARER_ONLY: [&str; 1] = ["/v1/console/code"];

/// The cookie that carries a console session.
pub(crate) const SESSION_COOKIE: &str = "cardlane_session";

/// `GET /v1/events?ticket=…`'s ticket.
fn event_ticket(req: &Request) -> Option<&str> {
    if req.method() != Method::GET || req.uri().path() != "/v1/events" {
        return None;
    }
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("ticket="))
        .filter(|t| !t.is_empty())
}

/// The session cookie's value, if the request carries one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The request comes from a page of this very origin. Browsers send `Sec-Fetch-Site` to
/// loopback and HTTPS origins, and pages cannot set it. Over plain HTTP to another host
/// (`allow_remote`) it is absent: then an `Origin` (which browsers send with every cross-origin
/// request and every POST) must name this host, and a request with neither is a same-origin
/// GET, or one that SameSite=Strict kept the cookie from.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        None => true,
        Some(Ok(o)) => host.is_some_and(|h| o.strip_prefix("http://") == Some(h)),
        Some(Err(_)) => false,
    }
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
    use super::*;
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

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn session_cookie_among_others() {
        let h = headers(&[("cookie", "a=1; cardlane_session=abc; b=2")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "cardlane_session=def")]);
        assert_eq!(session_cookie(&h), Some("def"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "cardlane_session=")])),
            None
        );
        assert_eq!(
            session_cookie(&headers(&[("cookie", "xcardlane_session=1")])),
            None
        );
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn same_origin_by_fetch_metadata_or_origin() {
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        // Fetch metadata wins over a matching Origin.
        assert!(!same_origin(&headers(&[
            ("sec-fetch-site", "none"),
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:7878"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:7878"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "http://127.0.0.1:8080"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:7878"),
            ("origin", "null"),
        ])));
        assert!(same_origin(&headers(&[("host", "10.0.0.5:7878")])));
    }
}
