//! The lane console: one page (HTML, script, style embedded in the binary) served at `/`, and
//! its sign-in. The page holds no lane data itself: once signed in it asks the API, with a
//! session cookie that this module issues for a one-time code (`cardlane console-url`) or for
//! the pasted token. The token never goes into a URL.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::ApiError;
use super::guard::{read_body, same_origin, session_cookie, SESSION_COOKIE};
use super::secrets::SESSION_TTL;
use super::AppState;

const INDEX: &str = include_str!("index.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");

/// Where `cardlane console-url` points: the page, which exchanges the `code` in its query.
pub const SIGNIN_PATH: &str = "/console/signin";

/// Served without a token or session (they hold no lane data).
pub(crate) const PUBLIC_GET: [&str; 4] = ["/", SIGNIN_PATH, "/console/app.js", "/console/app.css"];
/// The sign-in exchange and sign-out (each checks what it is given itself).
pub(crate) const PUBLIC_POST: [&str; 2] = ["/console/session", "/console/signout"];

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn cookie(value: &str, max_age_s: u64) -> HeaderValue {
    // HttpOnly: the page's script never sees it; Strict: no other site's request carries it.
    let text =
        format!("{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}");
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /console/session` `{"code":…}` or `{"token":…}` → 204 and the session cookie.
pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // Only the console's own page may sign in (no other site can plant a session).
    if !same_origin(&headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin",
            "sign in from the console's own page",
        )
        .into_response();
    }
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // Exactly one key, as the document's ConsoleSignIn says: anything else is refused whole.
    let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let one = match &value {
        Value::Object(m) if m.len() == 1 => m.iter().next(),
        _ => None,
    };
    let access = &state.api.access;
    let ok = match one {
        Some((k, Value::String(c))) if k == "code" => access.codes.accept(c.as_bytes()),
        Some((k, Value::String(t))) if k == "token" => state.api.token.verify(t.trim().as_bytes()),
        _ => return ApiError::field("body", "send {\"code\":…} or {\"token\":…}").into_response(),
    };
    if !ok {
        tracing::warn!(code = "console-signin-refused", "console sign-in refused");
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "signin-refused",
            "the code is unknown, used or expired, or the token is wrong",
        )
        .into_response();
    }
    let session = access.sessions.issue();
    tracing::info!("console session started");
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie(&session, SESSION_TTL.as_secs()))],
    )
        .into_response()
}

/// `POST /console/signout`: forgets the session and clears the cookie.
pub(crate) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-origin",
            "sign out from the console's own page",
        )
        .into_response();
    }
    if let Some(s) = session_cookie(&headers) {
        state.api.access.sessions.revoke(s.as_bytes());
    }
    (
        StatusCode::NO_CONTENT,
        [(header::SET_COOKIE, cookie("", 0))],
    )
        .into_response()
}
