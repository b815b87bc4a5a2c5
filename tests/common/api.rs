//! A blocking client for the agent's local API (bearer token from the agent's token file), for
//! the tests that run `cardlane run` as a process.
use std::path::Path;
use std::time::Instant;

use reqwest::StatusCode;
use serde_json::Value;

use super::WAIT;

pub struct Api {
    pub rt: tokio::runtime::Runtime,
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    pub fn new(base: &str, token_file: &Path) -> Api {
        Api {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::builder().timeout(WAIT).build().unwrap(),
            base: base.to_string(),
            token: std::fs::read_to_string(token_file)
                .unwrap()
                .trim()
                .to_string(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Any request, any status: the status and the body as text.
    pub fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, String) {
        self.rt.block_on(async {
            let r = req.send().await.unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        })
    }

    /// `GET` with the token, any status, body as text.
    pub fn get(&self, path: &str) -> (StatusCode, String) {
        self.send(self.http.get(self.url(path)).bearer_auth(&self.token))
    }

    /// `GET`, 200 expected, JSON body.
    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `GET`, any status (e.g. `/v1/health`'s 503), JSON body or null.
    pub fn get_any(&self, path: &str) -> (StatusCode, Value) {
        let (s, text) = self.get(path);
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A text route (`/metrics`), 200 expected.
    pub fn text(&self, path: &str) -> String {
        let (status, body) = self.get(path);
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    pub fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let (s, text) = self.send(
            self.http
                .post(self.url(path))
                .bearer_auth(&self.token)
                .json(body),
        );
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub fn delete(&self, path: &str) -> (StatusCode, Value) {
        let (s, text) = self.send(self.http.delete(self.url(path)).bearer_auth(&self.token));
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Polls `f` until it holds; fails the test after `WAIT`.
    pub fn wait_for(&self, what: &str, f: impl Fn(&Api) -> bool) {
        let end = Instant::now() + WAIT;
        while !f(self) {
            assert!(Instant::now() < end, "timed out waiting for {what}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The reader `id` of `/v1/readers`, or null.
    pub fn reader(&self, id: &str) -> Value {
        self.json("/v1/readers")["readers"]
            .as_array()
            .and_then(|a| a.iter().find(|r| r["id"] == id).cloned())
            .unwrap_or(Value::Null)
    }

    pub fn capture(&self, id: &str) -> Value {
        self.json(&format!("/v1/captures/{id}"))
    }

    /// Arms a capture (202 expected); returns its id.
    pub fn arm(&self, body: Value) -> String {
        let (s, armed) = self.post("/v1/captures", &body);
        assert_eq!(s, StatusCode::ACCEPTED, "{armed}");
        armed["id"].as_str().unwrap().to_string()
    }

    /// Waits for the capture's final state (not `waiting`, not `queued`); returns its status.
    pub fn until_done(&self, id: &str) -> Value {
        self.wait_for("capture outcome", |a| {
            !matches!(a.capture(id)["state"].as_str(), Some("waiting" | "queued"))
        });
        self.capture(id)
    }

    /// Arms a capture and waits for its final state; returns its status.
    pub fn capture_until_done(&self, body: Value) -> Value {
        let id = self.arm(body);
        self.until_done(&id)
    }
}
