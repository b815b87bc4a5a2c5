//! What the API needs from the running agent. The pipeline implements [`Lane`]; tests use a
//! fake. Captures are not part of it: they live in [`crate::agent::captures::Captures`], which
//! the pipeline consults on every swipe.

use serde::Serialize;

use crate::agent::events::{MaskedAccountText, MaskedPanText};

/// The agent as the API sees it. Calls may block briefly (the queue is a database): the API
/// runs them on the blocking pool.
pub trait Lane: Send + Sync + 'static {
    /// Configured and hot-plugged readers, attached or not.
    fn readers(&self) -> Vec<ReaderInfo>;
    /// What the durable queue holds.
    fn queue(&self) -> QueueInfo;
    /// The gateway as last seen by the uploader.
    fn gateway(&self) -> GatewayState;
    /// Checks the `customer` object a kiosk posts with a capture (Customer API rules: lengths,
    /// `zip` 5 or 9 digits, `phone_number` 10 digits, …). `Err` names the first bad field.
    fn validate_customer(&self, fields: &serde_json::Value) -> Result<(), FieldError>;
    /// Why the lane is not fully working, as reason codes (see [`HealthStatus::of`]). The
    /// default knows of nothing wrong; the agent's lane looks at readers, queue, uploader and
    /// gateway.
    fn health_reasons(&self) -> Vec<String> {
        Vec::new()
    }
}

/// `ok`, `degraded` (swipes are still taken and kept, something needs attention) or `down`
/// (a swipe cannot be taken now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthStatus {
    Ok,
    Degraded,
    Down,
}

/// Reasons that mean no swipe can be taken: the queue cannot store one, or no reader the
/// configuration names is there.
pub const DOWN_REASONS: [&str; 2] = ["queue-not-writable", "no-reader-connected"];

impl HealthStatus {
    /// The status the reasons add up to.
    pub fn of(reasons: &[String]) -> HealthStatus {
        if reasons
            .iter()
            .any(|r| DOWN_REASONS.contains(&r.split(':').next().unwrap_or(r)))
        {
            HealthStatus::Down
        } else if reasons.is_empty() {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Down => "down",
        }
    }
}

/// A customer field the gateway would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The key as the kiosk sent it inside `customer`, e.g. `zip`.
    pub field: String,
    /// Why, for people; never the value itself.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReaderState {
    Connected,
    Disconnected,
    /// A driven reader, open and ready for a transaction.
    Idle,
    /// A driven reader running a transaction.
    WaitingForCard,
    /// A keypad reader waiting for the customer's PIN (after a read).
    WaitingForPin,
    /// A driven reader's transaction is being cancelled (awaiting the cancel's answer).
    Cancelling,
    /// A driven reader stopped answering; its port is being reopened.
    Unresponsive,
    /// Present but unusable (permissions, no matching profile, …): see `error`.
    Error,
}

/// One reader for `GET /v1/readers` and health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReaderInfo {
    /// The name captures, events and metrics use.
    pub id: String,
    /// The device selector.
    pub device: String,
    pub profile: Option<String>,
    pub transport: Option<String>,
    pub state: ReaderState,
    /// From the configuration (as opposed to found by hot-plug).
    pub configured: bool,
    pub error: Option<String>,
    /// The profile's `protocol`: `none` (the reader sends by itself) or `neo2` (driven).
    pub protocol: Option<String>,
    /// A driven reader's firmware version, once read.
    pub firmware: Option<String>,
    /// A keypad reader the agent asks for the PIN when a capture says `"pin"` (the profile's
    /// `pin_entry`, or the reader's own setting).
    pub pin_entry: bool,
}

impl ReaderState {
    /// The reader is there and usable (listen-only: attached; driven: open and answering).
    pub fn is_connected(self) -> bool {
        matches!(
            self,
            ReaderState::Connected
                | ReaderState::Idle
                | ReaderState::WaitingForCard
                | ReaderState::WaitingForPin
                | ReaderState::Cancelling
        )
    }
}

/// Queue summary and records for `GET /v1/queue` (health shows `held` and `oldest_age_s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct QueueInfo {
    pub held: u64,
    /// 0 when the queue is empty.
    pub oldest_age_s: u64,
    pub records: Vec<QueueRecordInfo>,
}

/// A queued record as operators may see it: never card data beyond the masked PAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueRecordInfo {
    pub customer_id: String,
    pub state: String,
    pub attempts: u32,
    pub age_s: u64,
    pub last_error: Option<String>,
    pub masked_pan: Option<MaskedPanText>,
    /// A check record's account masked to its last 4 (the queue keeps it where a card's
    /// masked PAN goes; `null` for cards).
    pub masked_account: Option<MaskedAccountText>,
    /// Seconds until the uploader tries it again (0: due now); absent once it failed for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_in_s: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GatewayState {
    Reachable,
    Unreachable,
    AuthFailed,
}
