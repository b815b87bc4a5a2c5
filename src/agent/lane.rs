//! The running agent as the local API sees it: the [`Lane`] implementation behind
//! `cardlane run`.
//!
//! Three sources feed it: device events (which readers exist and whether they are connected),
//! the durable queue (what is held), and the gateway's health (what deliveries and a periodic
//! TCP probe saw). Nothing here holds card data: readers are selectors, the queue is read through
//! its metadata-only listing, and deliveries are observed by outcome and latency only.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::agent::api::{
    FieldError, GatewayState, Lane, QueueInfo, QueueRecordInfo, ReaderInfo, ReaderState,
};
use crate::agent::events::{LaneEvent, MaskedAccountText, MaskedPanText};
use crate::agent::metrics::Metrics;
use crate::device::manager::DeviceEvent;
use crate::gateway::record::CustomerFields;
use crate::gateway::validate::validate_customer_fields;
use crate::queue::{Deliver, DeliverFuture, DeliverResult, Queue, RecordState, UploaderHealth};

/// The keys a kiosk may post inside `customer` (the Customer API `customer` object).
pub const CUSTOMER_KEYS: [&str; 15] = [
    "customer_id",
    "first_name",
    "last_name",
    "street_1",
    "street_2",
    "city",
    "state",
    "zip",
    "country",
    "phone_number",
    "company",
    "email",
    "email_receipt",
    "notes",
    "action_code",
];

/// Customer fields that are digits only and so may be posted as JSON numbers.
const NUMBER_KEYS: [&str; 4] = ["zip", "phone_number", "email_receipt", "action_code"];

/// Gateway reachability as last observed. Shared by the delivery observer, the probe and the
/// lane; lock-free so that a slow API call never holds up an upload.
#[derive(Debug)]
pub struct GatewayHealth {
    state: AtomicU8,
}

const REACHABLE: u8 = 0;
const UNREACHABLE: u8 = 1;
const AUTH_FAILED: u8 = 2;

impl Default for GatewayHealth {
    fn default() -> Self {
        GatewayHealth::new()
    }
}

impl GatewayHealth {
    /// Starts `unreachable`: nothing has been seen yet.
    pub fn new() -> GatewayHealth {
        GatewayHealth {
            state: AtomicU8::new(UNREACHABLE),
        }
    }

    pub fn state(&self) -> GatewayState {
        match self.state.load(Ordering::Relaxed) {
            REACHABLE => GatewayState::Reachable,
            AUTH_FAILED => GatewayState::AuthFailed,
            _ => GatewayState::Unreachable,
        }
    }

    /// What one delivery said. An answer of any kind but auth failure proves the gateway
    /// reachable and the key good; a transient failure makes it unreachable until the next
    /// answer or probe.
    pub fn observe(&self, result: &DeliverResult) {
        let s = match result {
            DeliverResult::Final(_) => REACHABLE,
            DeliverResult::Transient(_) => UNREACHABLE,
            DeliverResult::AuthFailed(_) => AUTH_FAILED,
        };
        self.state.store(s, Ordering::Relaxed);
    }

    /// What a TCP probe saw. A refused key stays reported until a delivery succeeds: a probe
    /// cannot tell whether the key was fixed.
    pub fn probed(&self, connected: bool) {
        let _ = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                if s == AUTH_FAILED {
                    None
                } else if connected {
                    Some(REACHABLE)
                } else {
                    Some(UNREACHABLE)
                }
            });
    }

    /// The uploader resumed after an auth pause: forget the failure until the next answer.
    pub fn auth_cleared(&self) {
        let _ = self.state.compare_exchange(
            AUTH_FAILED,
            UNREACHABLE,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }
}

/// One TCP connect to the gateway's host, bounded by `timeout`.
pub async fn probe(addr: &str, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// `host:port` of a gateway base URL (default ports 443/80), for [`probe`].
pub fn probe_target(base_url: &str) -> Option<String> {
    let url = reqwest::Url::parse(base_url).ok()?;
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    // An IPv6 literal keeps its brackets from `host_str`.
    Some(format!("{host}:{port}"))
}

/// Wraps the gateway [`Deliver`] and feeds [`GatewayHealth`] with each answer. Payloads pass
/// through untouched and are never looked at. (Latency is timed by the pipeline.)
pub struct ObservedDeliver {
    inner: Arc<dyn Deliver>,
    health: Arc<GatewayHealth>,
}

impl ObservedDeliver {
    pub fn new(inner: Arc<dyn Deliver>, health: Arc<GatewayHealth>) -> ObservedDeliver {
        ObservedDeliver { inner, health }
    }
}

impl Deliver for ObservedDeliver {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a> {
        Box::pin(async move {
            let result = self.inner.deliver(payload).await;
            self.health.observe(&result);
            result
        })
    }
}

#[derive(Debug, Clone)]
struct ReaderEntry {
    info: ReaderInfo,
}

/// Readers by id plus the selector → id map device events need.
#[derive(Debug, Default)]
struct Readers {
    by_id: BTreeMap<String, ReaderEntry>,
    /// Device event `source` (a selector's canonical text) → reader id.
    by_source: BTreeMap<String, String>,
}

/// The agent's [`Lane`].
pub struct AgentLane {
    readers: Mutex<Readers>,
    /// The uploader's loop state, for health (set once the pipeline runs).
    uploader: std::sync::OnceLock<Arc<UploaderHealth>>,
    queue: Option<Arc<Queue>>,
    health: Arc<GatewayHealth>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AgentLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLane")
            .field("readers", &self.lock().by_id.len())
            .field("gateway", &self.health.state())
            .finish()
    }
}

impl AgentLane {
    /// `queue`: `None` when the agent runs without one (tests); the lane then reports it empty.
    pub fn new(
        queue: Option<Arc<Queue>>,
        health: Arc<GatewayHealth>,
        metrics: Arc<Metrics>,
    ) -> AgentLane {
        AgentLane {
            readers: Mutex::new(Readers::default()),
            uploader: std::sync::OnceLock::new(),
            queue,
            health,
            metrics,
        }
    }

    /// The uploader whose loop health reports on.
    pub fn watch_uploader(&self, health: Arc<UploaderHealth>) {
        let _ = self.uploader.set(health);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Readers> {
        // Plain data: a panic elsewhere while holding the lock leaves it usable.
        self.readers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a reader (from the configuration, or found by hot-plug) as disconnected until its
    /// thread reports it attached. `source` is the canonical selector text device events carry.
    pub fn add_reader(
        &self,
        id: &str,
        source: &str,
        profile: Option<String>,
        transport: &str,
        configured: bool,
    ) {
        let mut r = self.lock();
        r.by_source.insert(source.to_string(), id.to_string());
        r.by_id.insert(
            id.to_string(),
            ReaderEntry {
                info: ReaderInfo {
                    id: id.to_string(),
                    device: source.to_string(),
                    profile,
                    transport: Some(transport.to_string()),
                    state: ReaderState::Disconnected,
                    configured,
                    error: None,
                    protocol: None,
                    firmware: None,
                    pin_entry: false,
                },
            },
        );
        drop(r);
        self.metrics.set_reader_connected(id, false);
    }

    /// Shows the reader's protocol (`none`, `neo2`, …) in `GET /v1/readers`.
    pub fn set_protocol(&self, id: &str, protocol: &str) {
        if let Some(e) = self.lock().by_id.get_mut(id) {
            e.info.protocol = Some(protocol.to_string());
        }
    }

    /// Shows whether the reader is asked for PINs (`pin_entry`) in `GET /v1/readers`.
    pub fn set_pin_entry(&self, id: &str, pin_entry: bool) {
        if let Some(e) = self.lock().by_id.get_mut(id) {
            e.info.pin_entry = pin_entry;
        }
    }

    /// A driven reader's state, error and (once read) firmware; returns the lane event to
    /// publish when it came or went.
    pub fn set_driven(
        &self,
        id: &str,
        next: ReaderState,
        error: Option<String>,
        firmware: Option<Option<String>>,
    ) -> Option<LaneEvent> {
        let mut r = self.lock();
        let entry = r.by_id.get_mut(id)?;
        let was = entry.info.state;
        entry.info.state = next;
        if next.is_connected() {
            entry.info.error = None;
        } else if error.is_some() {
            entry.info.error = error;
        }
        if let Some(f) = firmware {
            entry.info.firmware = f;
        }
        let info = entry.info.clone();
        drop(r);
        self.metrics.set_reader_connected(id, next.is_connected());
        match (was.is_connected(), next.is_connected()) {
            (false, true) => Some(LaneEvent::ReaderAttached {
                reader: id.to_string(),
                profile: info.profile,
                transport: info.transport,
            }),
            (true, false) => Some(LaneEvent::ReaderDetached {
                reader: id.to_string(),
                reason: info.error,
            }),
            _ => None,
        }
    }

    /// Forgets a hot-plugged reader that went away (configured readers stay listed).
    pub fn remove_reader(&self, id: &str) {
        let mut r = self.lock();
        if r.by_id.get(id).is_some_and(|e| !e.info.configured) {
            r.by_id.remove(id);
            r.by_source.retain(|_, v| v != id);
        }
    }

    /// The reader id for a device event's `source`, if the lane knows it.
    pub fn reader_id(&self, source: &str) -> Option<String> {
        self.lock().by_source.get(source).cloned()
    }

    /// Applies a reader thread's event (frames are not the lane's business) and returns the
    /// lane event to publish, if any.
    pub fn apply(&self, event: &DeviceEvent) -> Option<LaneEvent> {
        let mut r = self.lock();
        let (source, next, error) = match event {
            DeviceEvent::Attached { source, .. } => (source, ReaderState::Connected, None),
            DeviceEvent::Detached { source, reason } => (
                source,
                ReaderState::Disconnected,
                Some(reason.code().to_string()),
            ),
            DeviceEvent::Error {
                source,
                error,
                hint,
            } => {
                let text = match hint {
                    Some(h) => format!("{}: {h}", error.code()),
                    None => error.code().to_string(),
                };
                (source, ReaderState::Error, Some(text))
            }
            DeviceEvent::Frame(_) | DeviceEvent::Unreadable { .. } => return None,
        };
        let id = r.by_source.get(source.as_str())?.clone();
        let entry = r.by_id.get_mut(&id)?;
        let was = entry.info.state;
        entry.info.state = next;
        entry.info.error = error;
        if let DeviceEvent::Attached {
            profile: Some(p), ..
        } = event
        {
            entry.info.profile = Some(p.clone());
        }
        let info = entry.info.clone();
        drop(r);
        self.metrics
            .set_reader_connected(&id, next == ReaderState::Connected);
        match (was, next) {
            (ReaderState::Connected, ReaderState::Connected) => None,
            (_, ReaderState::Connected) => Some(LaneEvent::ReaderAttached {
                reader: id,
                profile: info.profile,
                transport: info.transport,
            }),
            (ReaderState::Connected, _) => Some(LaneEvent::ReaderDetached {
                reader: id,
                reason: info.error,
            }),
            _ => None,
        }
    }

    pub fn health(&self) -> &Arc<GatewayHealth> {
        &self.health
    }
}

impl Lane for AgentLane {
    fn readers(&self) -> Vec<ReaderInfo> {
        self.lock().by_id.values().map(|e| e.info.clone()).collect()
    }

    fn queue(&self) -> QueueInfo {
        let Some(q) = &self.queue else {
            return QueueInfo::default();
        };
        let records = match q.list() {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(code = e.code(), "queue: cannot list records");
                Vec::new()
            }
        };
        let oldest = records.iter().map(|r| r.age).max().unwrap_or_default();
        let now_ms = q.now_ms();
        QueueInfo {
            held: u64::try_from(records.len()).unwrap_or(u64::MAX),
            oldest_age_s: oldest.as_secs(),
            records: records
                .into_iter()
                .map(|r| QueueRecordInfo {
                    customer_id: r.customer_id,
                    state: r.state.as_str().to_string(),
                    attempts: r.attempts,
                    age_s: r.age.as_secs(),
                    last_error: r.last_error,
                    // The queue stores a masked PAN; re-check it so nothing wider leaks out.
                    masked_pan: r.masked_pan.as_deref().and_then(MaskedPanText::new),
                    // A check record's masked account sits in the same column; the two
                    // shapes exclude each other (a masked PAN shows its first digits).
                    masked_account: r.masked_pan.as_deref().and_then(MaskedAccountText::new),
                    next_attempt_in_s: (r.state == RecordState::Pending).then(|| {
                        u64::try_from(r.next_attempt_ms.saturating_sub(now_ms) / 1000).unwrap_or(0)
                    }),
                })
                .collect(),
        }
    }

    fn gateway(&self) -> GatewayState {
        self.health.state()
    }

    fn validate_customer(&self, fields: &Value) -> Result<(), FieldError> {
        validate_customer(fields)
    }

    /// `reader-missing:ID` for each configured reader not connected (and
    /// `no-reader-connected` when that is all of them, or `no-reader` when none is known);
    /// `queue-not-writable`; `uploader-not-alive`, `queue-storage-failing`;
    /// `gateway-auth-failed` (uploads paused: refused key or a URL that is not the gateway).
    fn health_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        let readers = self.readers();
        let connected = readers
            .iter()
            .filter(|r| r.state == ReaderState::Connected)
            .count();
        let configured: Vec<_> = readers.iter().filter(|r| r.configured).collect();
        for r in &configured {
            if r.state != ReaderState::Connected {
                reasons.push(format!("reader-missing:{}", r.id));
            }
        }
        if connected == 0 {
            reasons.push(if configured.is_empty() {
                "no-reader".to_string()
            } else {
                "no-reader-connected".to_string()
            });
        }
        if let Some(q) = &self.queue {
            if let Err(e) = q.writable() {
                tracing::warn!(error = %e, "health: the queue cannot take a record");
                reasons.push("queue-not-writable".into());
            }
        }
        if let Some(u) = self.uploader.get() {
            let st = u.status();
            if !st.alive {
                reasons.push("uploader-not-alive".into());
            }
            if st.storage_failing.is_some() {
                reasons.push("queue-storage-failing".into());
            }
        }
        if self.health.state() == GatewayState::AuthFailed {
            reasons.push("gateway-auth-failed".into());
        }
        reasons
    }
}

/// The kiosk's `customer` object against the Customer API rules. The agent picks the
/// `customer_id` when the kiosk gives none, so its absence is not an error here.
pub fn validate_customer(fields: &Value) -> Result<(), FieldError> {
    let field = |name: &str, message: &str| FieldError {
        field: name.to_string(),
        message: message.to_string(),
    };
    let Value::Object(map) = fields else {
        return Err(field("customer", "must be an object"));
    };
    for (key, value) in map {
        if !CUSTOMER_KEYS.contains(&key.as_str()) {
            // Named only when it looks like a key: the API never echoes odd input.
            let plain = key.len() <= 64
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            return Err(if plain {
                field(key, "not a Customer API customer field")
            } else {
                field("customer", "has a key that is not a customer field")
            });
        }
        match value {
            Value::String(_) | Value::Null => {}
            // Digits-only fields may come as JSON numbers; a number is no name or address.
            Value::Number(_) if NUMBER_KEYS.contains(&key.as_str()) => {}
            Value::Number(_) => return Err(field(key, "must be a string")),
            _ if NUMBER_KEYS.contains(&key.as_str()) => {
                return Err(field(key, "must be a string or a number"))
            }
            _ => return Err(field(key, "must be a string")),
        }
    }
    // Every capture is saved with action code 1 (add or update): that is what makes a retry
    // safe (design.md §2). Another code is refused, never silently replaced.
    if let Some(code) = map.get("action_code").filter(|v| !v.is_null()) {
        let one = match code {
            Value::String(s) => s == "1",
            Value::Number(n) => n.as_u64() == Some(1),
            _ => false,
        };
        if !one {
            return Err(field(
                "action_code",
                "only 1 (add or update) is supported: the agent saves every capture as an upsert",
            ));
        }
    }
    let mut parsed: CustomerFields = serde_json::from_value(fields.clone())
        .map_err(|_| field("customer", "is not a Customer API customer object"))?;
    if parsed.customer_id.is_none() {
        // A stand-in that passes the id rule: the real one is chosen per swipe.
        parsed.customer_id = Some("CL0".into());
    }
    match validate_customer_fields(&parsed) {
        Ok(()) => Ok(()),
        Err(errors) => {
            let first = errors
                .into_iter()
                .next()
                .map(|e| field(&e.field, &e.rule.to_string()))
                .unwrap_or_else(|| field("customer", "is not valid"));
            Err(first)
        }
    }
}

/// Periodically probes `target` (`host:port`) and feeds `health`, until `stop` turns true.
pub async fn run_probe(
    target: String,
    health: Arc<GatewayHealth>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let ok = probe(&target, Duration::from_secs(3)).await;
        health.probed(ok);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::TransportError;
    use crate::queue::{FinalAnswer, Saved};
    use serde_json::json;

    fn lane() -> AgentLane {
        AgentLane::new(
            None,
            Arc::new(GatewayHealth::new()),
            Arc::new(Metrics::new()),
        )
    }

    #[test]
    fn customer_fields_follow_the_gateway_rules() {
        assert_eq!(validate_customer(&json!({})), Ok(()));
        let ok = json!({"first_name":"Ada","last_name":"Lovelace","zip":"94107","phone_number":"4155550100"});
        assert_eq!(validate_customer(&ok), Ok(()));
        let zip = validate_customer(&json!({"first_name":"Ada","zip":"9410"})).unwrap_err();
        assert_eq!(zip.field, "zip");
        assert_eq!(zip.message, "must be 5 or 9 digits");
        assert!(!zip.message.contains("9410"));
        let phone = validate_customer(&json!({"phone_number":"555"})).unwrap_err();
        assert_eq!(phone.field, "phone_number");
        let long = validate_customer(&json!({"city": "x".repeat(51)})).unwrap_err();
        assert_eq!(long.field, "city");
        let id = validate_customer(&json!({"customer_id":"bad id!"})).unwrap_err();
        assert_eq!(id.field, "customer_id");
        // A number is a scalar the gateway takes as text.
        assert_eq!(validate_customer(&json!({"zip": 94107})), Ok(()));
    }

    #[test]
    fn customer_shape_errors_name_the_key() {
        let e = validate_customer(&json!({"zipcode":"94107"})).unwrap_err();
        assert_eq!(e.field, "zipcode");
        // Numbers only where the field is digits; another action code is refused, not rewritten.
        let e = validate_customer(&json!({"first_name": 12345})).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("first_name", "must be a string")
        );
        assert!(validate_customer(&json!({"city": 7})).is_err());
        assert_eq!(
            validate_customer(&json!({"phone_number": 4155550100u64})),
            Ok(())
        );
        for bad in [json!("3"), json!(3), json!("2"), json!(true)] {
            let e = validate_customer(&json!({ "action_code": bad })).unwrap_err();
            assert_eq!(e.field, "action_code", "{bad}");
        }
        assert_eq!(validate_customer(&json!({"action_code": "1"})), Ok(()));
        assert_eq!(validate_customer(&json!({"action_code": 1})), Ok(()));
        let e = validate_customer(&json!({"zip":{"a":1}})).unwrap_err();
        assert_eq!(e.field, "zip");
        let e = validate_customer(&json!({"bad key\n":"x"})).unwrap_err();
        assert_eq!(e.field, "customer");
        let e = validate_customer(&json!(["zip"])).unwrap_err();
        assert_eq!(e.field, "customer");
    }

    #[test]
    fn readers_follow_device_events() {
        let l = lane();
        l.add_reader("front", "serial:/dev/ttyX@9600", None, "serial", true);
        let attached = DeviceEvent::Attached {
            source: "serial:/dev/ttyX@9600".into(),
            profile: Some("idtech-serial".into()),
        };
        assert_eq!(
            l.apply(&attached),
            Some(LaneEvent::ReaderAttached {
                reader: "front".into(),
                profile: Some("idtech-serial".into()),
                transport: Some("serial".into()),
            })
        );
        // A repeat does not publish twice.
        assert_eq!(l.apply(&attached), None);
        let r = l.readers();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].state, ReaderState::Connected);
        assert!(l
            .metrics
            .render()
            .contains("cardlane_reader_connected{reader=\"front\"} 1"));
        let gone = DeviceEvent::Detached {
            source: "serial:/dev/ttyX@9600".into(),
            reason: TransportError::Closed,
        };
        assert_eq!(
            l.apply(&gone),
            Some(LaneEvent::ReaderDetached {
                reader: "front".into(),
                reason: Some("closed".into()),
            })
        );
        // Errors while away are shown but not published again.
        let err = DeviceEvent::Error {
            source: "serial:/dev/ttyX@9600".into(),
            error: TransportError::PermissionDenied,
            hint: Some("add the user to group pos".into()),
        };
        assert_eq!(l.apply(&err), None);
        let r = l.readers();
        assert_eq!(r[0].state, ReaderState::Error);
        assert_eq!(
            r[0].error.as_deref(),
            Some("permission-denied: add the user to group pos")
        );
        // Unknown sources are ignored.
        let other = DeviceEvent::Attached {
            source: "stdin".into(),
            profile: None,
        };
        assert_eq!(l.apply(&other), None);
        // Configured readers stay listed; hot-plugged ones are forgotten.
        l.remove_reader("front");
        assert_eq!(l.readers().len(), 1);
        l.add_reader(
            "hidraw:/dev/hidraw3",
            "hidraw:/dev/hidraw3",
            None,
            "hid",
            false,
        );
        assert_eq!(l.readers().len(), 2);
        l.remove_reader("hidraw:/dev/hidraw3");
        assert_eq!(l.readers().len(), 1);
        assert_eq!(l.reader_id("hidraw:/dev/hidraw3"), None);
    }

    /// The queue view shows a card record's masked PAN and a check record's masked account
    /// (the queue keeps either in the same column), each only in its own field.
    #[test]
    fn queued_records_show_a_masked_pan_or_a_masked_account() {
        use crate::queue::{KeySource, NewRecord, QueueConfig, QueueKey};
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(
            Queue::open(
                dir.path().join("q.db"),
                QueueConfig {
                    key: KeySource::Key(QueueKey::from_bytes([6; 32])),
                    ..QueueConfig::default()
                },
            )
            .unwrap(),
        );
        for (id, masked) in [("CARD1", "400557******1111"), ("CHECK1", "*****6789")] {
            queue
                .enqueue(NewRecord {
                    customer_id: id.into(),
                    masked_pan: Some(masked.into()),
                    payload: zeroize::Zeroizing::new(b"{}".to_vec()),
                    has_pin_block: false,
                    in_flight: false,
                })
                .unwrap();
        }
        let l = AgentLane::new(
            Some(queue),
            Arc::new(GatewayHealth::new()),
            Arc::new(Metrics::new()),
        );
        let v = serde_json::to_value((&l as &dyn Lane).queue()).unwrap();
        let record = |id: &str| {
            v["records"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["customer_id"] == id)
                .cloned()
                .unwrap()
        };
        let (card, check) = (record("CARD1"), record("CHECK1"));
        assert_eq!(
            (&card["masked_pan"], &card["masked_account"]),
            (&json!("400557******1111"), &json!(null))
        );
        assert_eq!(
            (&check["masked_pan"], &check["masked_account"]),
            (&json!(null), &json!("*****6789"))
        );
    }

    /// Health used to say `ok` while the only reader was missing or the queue could not take
    /// a record.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_reasons_name_what_is_wrong() {
        use crate::queue::{KeySource, QueueConfig, QueueKey, Uploader, UploaderConfig};
        let dir = tempfile::tempdir().unwrap();
        let queue = Arc::new(
            Queue::open(
                dir.path().join("q.db"),
                QueueConfig {
                    key: KeySource::Key(QueueKey::from_bytes([5; 32])),
                    ..QueueConfig::default()
                },
            )
            .unwrap(),
        );
        let health = Arc::new(GatewayHealth::new());
        let l = AgentLane::new(
            Some(queue.clone()),
            health.clone(),
            Arc::new(Metrics::new()),
        );
        let uploader = Uploader::new(
            queue.clone(),
            Arc::new(Fixed(DeliverResult::Transient("x".into()))),
            UploaderConfig::default(),
        )
        .unwrap();
        l.watch_uploader(uploader.health());
        let task = uploader.start();
        let reasons = |l: &AgentLane| {
            let l = l as &dyn Lane;
            l.health_reasons()
        };

        // The only configured reader is not there: no swipe can be taken.
        l.add_reader("front", "serial:/dev/ttyX@9600", None, "serial", true);
        assert_eq!(reasons(&l), ["reader-missing:front", "no-reader-connected"]);
        l.apply(&DeviceEvent::Attached {
            source: "serial:/dev/ttyX@9600".into(),
            profile: None,
        });
        assert_eq!(reasons(&l), Vec::<String>::new());

        // Something else holds the queue's write lock: a swipe could not be stored.
        let other = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // The running uploader may meet the same lock on its poll and say so too.
        let held = reasons(&l);
        assert!(
            held.first().map(String::as_str) == Some("queue-not-writable")
                && held.iter().skip(1).all(|r| r == "queue-storage-failing"),
            "{held:?}"
        );
        other.execute_batch("ROLLBACK").unwrap();
        // Once the lock is gone the uploader's next try (backoff from 200 ms) clears it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !reasons(&l).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "still {:?} 30 s after the lock went",
                reasons(&l)
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }

        health.observe(&DeliverResult::AuthFailed("401".into()));
        assert_eq!(reasons(&l), ["gateway-auth-failed"]);
        health.auth_cleared();

        task.stop().await.unwrap();
        assert_eq!(reasons(&l), ["uploader-not-alive"]);
    }

    #[test]
    fn gateway_health_transitions() {
        let h = GatewayHealth::new();
        assert_eq!(h.state(), GatewayState::Unreachable);
        h.probed(true);
        assert_eq!(h.state(), GatewayState::Reachable);
        h.observe(&DeliverResult::Transient("connect".into()));
        assert_eq!(h.state(), GatewayState::Unreachable);
        h.observe(&DeliverResult::AuthFailed("401".into()));
        assert_eq!(h.state(), GatewayState::AuthFailed);
        // A probe cannot clear a refused key.
        h.probed(true);
        assert_eq!(h.state(), GatewayState::AuthFailed);
        h.auth_cleared();
        assert_eq!(h.state(), GatewayState::Unreachable);
        h.observe(&DeliverResult::Final(FinalAnswer::Saved(Saved::default())));
        assert_eq!(h.state(), GatewayState::Reachable);
        h.probed(false);
        assert_eq!(h.state(), GatewayState::Unreachable);
    }

    #[test]
    fn probe_targets() {
        assert_eq!(
            probe_target("https://apisandbox.onepay.com").as_deref(),
            Some("apisandbox.onepay.com:443")
        );
        assert_eq!(
            probe_target("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(probe_target("http://[::1]:9").as_deref(), Some("[::1]:9"));
        assert_eq!(probe_target("not a url"), None);
    }

    #[tokio::test]
    async fn probe_sees_a_listener_and_a_closed_port() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        assert!(probe(&addr, Duration::from_secs(2)).await);
        drop(l);
        assert!(!probe(&addr, Duration::from_secs(2)).await);
    }

    struct Fixed(DeliverResult);
    impl Deliver for Fixed {
        fn deliver<'a>(&'a self, _: &'a [u8]) -> DeliverFuture<'a> {
            let r = self.0.clone();
            Box::pin(async move { r })
        }
    }

    #[tokio::test]
    async fn observed_delivery_classifies() {
        let health = Arc::new(GatewayHealth::new());
        let d = ObservedDeliver::new(
            Arc::new(Fixed(DeliverResult::AuthFailed("401".into()))),
            health.clone(),
        );
        let r = d.deliver(b"{}").await;
        assert_eq!(r, DeliverResult::AuthFailed("401".into()));
        assert_eq!(health.state(), GatewayState::AuthFailed);
    }
}
