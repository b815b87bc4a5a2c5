//! The OnePay Customer API client: one `POST` per attempt, outcomes mapped as
//! onepay-gateway.md says, retries with exponential backoff and jitter for transient failures only.
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;

use super::record::{CustomerRequest, RESULT_APPROVED, RESULT_DECLINED};
use super::response::parse_reply;
use super::secret::ApiKey;

/// Where and how to call the gateway. `Debug` is safe: the key prints as `***`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `https://apisandbox.onepay.com` or the simulator's `http://127.0.0.1:PORT`.
    pub base_url: String,
    pub api_key: ApiKey,
    /// Path of the Customer endpoint.
    pub path: String,
    pub connect_timeout: Duration,
    /// Whole request: connect, send, and read the reply.
    pub total_timeout: Duration,
    pub retry: RetryPolicy,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> Self {
        Self {
            base_url: base_url.into(),
            api_key,
            path: "/Customer".into(),
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
        }
    }
}

/// Backoff for `save_customer`: delays grow ×2 from `min_delay` up to `max_delay`, with jitter.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    pub min_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What the gateway made of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// result_code 1. `customer_id` is the gateway's (an `AUTO` request gets the generated one).
    Saved {
        customer_id: String,
        token: Option<String>,
        /// `account_type`: VI, MC, AX, DS, JC, DC.
        brand: Option<String>,
        last4: Option<String>,
    },
    /// result_code 2: final.
    Declined { text: String },
    /// result_code 3 (validation) or an HTTP status that retrying will not fix: final.
    Rejected { text: String },
    /// 401/403: the API key is wrong. Stop and alert; never retried.
    AuthFailed,
    /// 5xx, timeout, connection failure, unreadable reply: worth retrying.
    Transient { reason: String },
}

impl Outcome {
    pub fn is_transient(&self) -> bool {
        matches!(self, Outcome::Transient { .. })
    }
    /// Short stable name: `saved`, `declined`, `rejected`, `auth-failed`, `transient`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Saved { .. } => "saved",
            Outcome::Declined { .. } => "declined",
            Outcome::Rejected { .. } => "rejected",
            Outcome::AuthFailed => "auth-failed",
            Outcome::Transient { .. } => "transient",
        }
    }
}

/// The last outcome and how many attempts it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub outcome: Outcome,
    pub attempts: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the HTTP client")]
    Build,
    #[error("the API key is not a valid header value")]
    BadApiKey,
}

/// Cheap to clone; share one per gateway.
#[derive(Clone, Debug)]
pub struct GatewayClient {
    http: reqwest::Client,
    url: String,
    key: reqwest::header::HeaderValue,
    retry: RetryPolicy,
}

impl GatewayClient {
    pub fn new(cfg: ClientConfig) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.total_timeout)
            // A redirected POST would silently turn into a GET: treat 3xx as an answer instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| ClientError::Build)?;
        let mut key = reqwest::header::HeaderValue::from_str(cfg.api_key.expose())
            .map_err(|_| ClientError::BadApiKey)?;
        // Keeps the key out of any Debug print of headers.
        key.set_sensitive(true);
        let url = format!(
            "{}/{}",
            cfg.base_url.trim_end_matches('/'),
            cfg.path.trim_start_matches('/')
        );
        Ok(Self {
            http,
            url,
            key,
            retry: cfg.retry,
        })
    }

    /// Sends `req`, retrying transient failures with backoff. Final outcomes return at once.
    pub async fn save_customer(&self, req: &CustomerRequest) -> Delivery {
        let attempts = AtomicU32::new(0);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_attempts.saturating_sub(1) as usize)
            .with_jitter();
        let result = (|| async {
            attempts.fetch_add(1, Ordering::Relaxed);
            match self.save_once(req).await {
                transient @ Outcome::Transient { .. } => Err(transient),
                done => Ok(done),
            }
        })
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .notify(|o: &Outcome, after: Duration| {
            if let Outcome::Transient { reason } = o {
                tracing::info!(reason = %reason, retry_in_ms = after.as_millis() as u64, "gateway transient failure");
            }
        })
        .await;
        Delivery {
            outcome: result.unwrap_or_else(|last| last),
            attempts: attempts.load(Ordering::Relaxed),
        }
    }

    /// One attempt, no retry: for the queue uploader, which keeps its own backoff.
    pub async fn save_once(&self, req: &CustomerRequest) -> Outcome {
        let body = match serde_json::to_vec(req) {
            Ok(b) => b,
            Err(_) => {
                return Outcome::Rejected {
                    text: "record cannot be encoded".into(),
                }
            }
        };
        let sent = self
            .http
            .post(&self.url)
            .header("x-authorization", self.key.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transient(describe(&e)),
        };
        let status = resp.status();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return transient(describe(&e)),
        };
        let outcome =
            outcome_from_http(status.as_u16(), &body, req.customer.customer_id.as_deref());
        tracing::debug!(
            status = status.as_u16(),
            outcome = outcome.kind(),
            "gateway answered"
        );
        outcome
    }
}

/// Maps an HTTP answer to an outcome. `sent_id` is the request's `customer_id`, used when the
/// reply does not echo one.
pub fn outcome_from_http(status: u16, body: &[u8], sent_id: Option<&str>) -> Outcome {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Outcome::AuthFailed;
    }
    if status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        return transient(format!("http status {}", status.as_u16()));
    }
    if !status.is_success() {
        return Outcome::Rejected {
            text: format!("http status {}", status.as_u16()),
        };
    }
    let reply = match parse_reply(body) {
        Ok(r) => r,
        // An upsert is safe to repeat, so an unreadable 200 is retried rather than guessed at.
        Err(e) => return transient(format!("unreadable reply: {}", e.code())),
    };
    let r = reply.customer_response;
    let text = r.result_text.clone().unwrap_or_default();
    match r.result_code {
        RESULT_APPROVED => Outcome::Saved {
            customer_id: reply
                .customer
                .and_then(|c| c.customer_id)
                .or_else(|| sent_id.map(str::to_owned))
                .unwrap_or_default(),
            token: r.token,
            brand: r.account_type,
            last4: r.account_last_4,
        },
        RESULT_DECLINED => Outcome::Declined { text },
        _ => Outcome::Rejected { text },
    }
}

fn transient(reason: String) -> Outcome {
    Outcome::Transient { reason }
}

/// A reason built from the error's kind only: reqwest's own text carries the URL.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect failed".into()
    } else if e.is_body() || e.is_decode() {
        "reply body interrupted".into()
    } else if e.is_request() {
        "connection closed before a reply".into()
    } else {
        "transport error".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping() {
        assert_eq!(outcome_from_http(401, b"", None), Outcome::AuthFailed);
        assert!(outcome_from_http(500, b"", None).is_transient());
        assert!(outcome_from_http(503, b"", None).is_transient());
        assert!(outcome_from_http(429, b"", None).is_transient());
        assert_eq!(
            outcome_from_http(404, b"", None),
            Outcome::Rejected {
                text: "http status 404".into()
            }
        );
        assert!(outcome_from_http(200, b"<html>", None).is_transient());
    }

    #[test]
    fn result_codes() {
        let saved = outcome_from_http(
            200,
            br#"{"customer_response":{"result_code":1,"token":"77","account_type":"VI","account_last_4":"1111"}}"#,
            Some("CID9"),
        );
        assert_eq!(
            saved,
            Outcome::Saved {
                customer_id: "CID9".into(),
                token: Some("77".into()),
                brand: Some("VI".into()),
                last4: Some("1111".into())
            }
        );
        assert_eq!(
            outcome_from_http(
                200,
                br#"{"customer_response":{"result_code":"2","result_text":"DECLINED"}}"#,
                None
            ),
            Outcome::Declined {
                text: "DECLINED".into()
            }
        );
        assert_eq!(
            outcome_from_http(200, br#"{"customer_response":{"result_code":3,"result_text":"zip: must be 5 or 9 digits"}}"#, None),
            Outcome::Rejected { text: "zip: must be 5 or 9 digits".into() }
        );
    }

    #[test]
    fn config_debug_hides_key() {
        let cfg = ClientConfig::new("http://x", ApiKey::new("secret-key-123"));
        assert!(!format!("{cfg:?}").contains("secret-key-123"));
        let client = GatewayClient::new(cfg).unwrap();
        assert!(!format!("{client:?}").contains("secret-key-123"));
    }
}
