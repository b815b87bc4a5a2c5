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
    /// An answer that is not the gateway's (a redirect, 404, 405, a page that is not a Customer
    /// reply): the URL or path is wrong. Like `AuthFailed`, nothing is final: stop and alert.
    Misconfigured { reason: String },
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
            Outcome::Misconfigured { .. } => "misconfigured",
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
    #[error("gateway URL {0}")]
    BadUrl(&'static str),
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
        // Checked before anything can connect: card data and the key go nowhere else.
        let base = check_base_url(&cfg.base_url).map_err(ClientError::BadUrl)?;
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
        let url = format!("{}/{}", base, cfg.path.trim_start_matches('/'));
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
        let outcome = match read_limited(resp, MAX_REPLY_BYTES).await {
            Ok(Some(body)) => {
                outcome_from_http(status.as_u16(), &body, req.customer.customer_id.as_deref())
            }
            // Not a Customer reply, whatever it is: judged as an unreadable body.
            Ok(None) => outcome_from_http(status.as_u16(), b"", None),
            Err(e) => return transient(describe(&e)),
        };
        tracing::debug!(
            status = status.as_u16(),
            outcome = outcome.kind(),
            "gateway answered"
        );
        outcome
    }
}

/// The largest gateway reply read (a Customer reply is a few hundred bytes); past it the reply
/// is not read further and counts as unreadable.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The body, or `None` when it is longer than `limit` (announced or as it streams in).
async fn read_limited(
    mut resp: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if resp
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// `http(s)://host[:port][/path]`, no credentials; plain http only to a loopback host, since
/// records carry card data and the key. The one rule for `run`, `replay`, `queue flush` and
/// anything else that builds a [`GatewayClient`].
pub fn check_base_url(url: &str) -> std::result::Result<String, &'static str> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("not a URL (expected http:// or https://)")?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err("has no host");
    }
    if authority.contains('@') {
        return Err("must not hold credentials (use gateway.api_key_file)");
    }
    if url.contains(char::is_whitespace) || url.contains(['?', '#']) {
        return Err("must be a plain base URL without spaces, query or fragment");
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    match scheme {
        "https" => {}
        "http" => {
            let loopback = host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .map(|ip| ip.is_loopback())
                    .unwrap_or(false);
            if !loopback {
                return Err("plain http is allowed only to a loopback host");
            }
        }
        _ => return Err("not a URL (expected http:// or https://)"),
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// Maps an HTTP answer to an outcome. `sent_id` is the request's `customer_id`, used when the
/// reply does not echo one. Only a parsed Customer reply is final: any other answer outside
/// 2xx (a redirect, a 404 or 405 page) says the URL is wrong, so nothing is decided on it.
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
    let reply = match parse_reply(body) {
        Ok(r) => r,
        // An upsert is safe to repeat, so an unreadable 200 is retried rather than guessed at.
        Err(e) if status.is_success() => {
            return transient(format!("unreadable reply: {}", e.code()))
        }
        Err(_) => {
            return Outcome::Misconfigured {
                reason: format!(
                    "the gateway URL answered http status {} without a Customer reply (check gateway.base_url and customer_path)",
                    status.as_u16()
                ),
            }
        }
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
        assert!(outcome_from_http(200, b"<html>", None).is_transient());
        // Not the gateway speaking: nothing final, a configuration error.
        for status in [301, 302, 307, 308, 400, 404, 405, 413] {
            assert_eq!(
                outcome_from_http(status, b"<html>Not Found</html>", None).kind(),
                "misconfigured",
                "{status}"
            );
        }
        // The gateway's own refusal, even under a 400, is its final answer.
        assert_eq!(
            outcome_from_http(
                400,
                br#"{"customer_response":{"result_code":3,"result_text":"zip"}}"#,
                None
            ),
            Outcome::Rejected { text: "zip".into() }
        );
    }

    /// A loopback server that answers every request with `response` (raw HTTP).
    async fn answering(response: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    // Read the request head and whatever body came with it, then answer.
                    let mut buf = vec![0u8; 65536];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(response.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        format!("http://{addr}")
    }

    fn request() -> CustomerRequest {
        serde_json::from_value(serde_json::json!({
            "customer": {"customer_id": "CID1", "action_code": "1"}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn redirects_and_missing_endpoints_are_configuration_errors() {
        let cases = [
            "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 9\r\nConnection: close\r\n\r\nNot Found",
            "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:9/elsewhere\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ];
        for raw in cases {
            let url = answering(raw).await;
            let client = GatewayClient::new(ClientConfig::new(url, ApiKey::new("k"))).unwrap();
            let outcome = client.save_once(&request()).await;
            assert_eq!(outcome.kind(), "misconfigured", "{raw}: {outcome:?}");
        }
    }

    #[tokio::test]
    async fn a_reply_past_the_limit_is_not_read() {
        // 200 with a body announced far past the limit: not read, not a Customer reply.
        let url = answering(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n{\"customer_response\":{\"result_code\":1}}",
        )
        .await;
        let client = GatewayClient::new(ClientConfig::new(url, ApiKey::new("k"))).unwrap();
        assert_eq!(
            client.save_once(&request()).await,
            Outcome::Transient {
                reason: "unreadable reply: not-json".into()
            }
        );
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
    fn url_rules_hold_for_every_client() {
        let client = |u: &str| GatewayClient::new(ClientConfig::new(u, ApiKey::new("k")));
        for ok in [
            "https://apisandbox.onepay.com",
            "http://127.0.0.1:8080",
            "http://[::1]:9/",
            "http://localhost:1",
        ] {
            assert!(client(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            (
                "http://gateway.example.com",
                "plain http is allowed only to a loopback host",
            ),
            (
                "http://10.0.0.5:80",
                "plain http is allowed only to a loopback host",
            ),
            (
                "gateway.example.com",
                "not a URL (expected http:// or https://)",
            ),
            (
                "ftp://127.0.0.1",
                "not a URL (expected http:// or https://)",
            ),
            (
                "https://user:pw@x.com",
                "must not hold credentials (use gateway.api_key_file)",
            ),
        ] {
            match client(bad) {
                Err(ClientError::BadUrl(reason)) => assert_eq!(reason, why, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn config_debug_hides_key() {
        let cfg = ClientConfig::new("https://x", ApiKey::new("secret-key-123"));
        assert!(!format!("{cfg:?}").contains("secret-key-123"));
        let client = GatewayClient::new(cfg).unwrap();
        assert!(!format!("{client:?}").contains("secret-key-123"));
    }
}
