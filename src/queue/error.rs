//! The queue's typed errors. None of them embeds payload bytes or card data.
use thiserror::Error;

/// Why a queue operation failed. `code()` gives a stable reason code for logs and JSON.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    /// The cap is reached: the record was NOT stored (the caller must tell the operator).
    #[error("queue full: {held} records held (cap {cap}); flush or purge the queue before taking more swipes")]
    Full { held: u64, cap: u64 },
    /// PIN blocks are never written to disk (design.md §2): send online or fail.
    #[error("a record carrying a PIN block cannot be queued; it must be sent online")]
    PinBlockRefused,
    /// `masked_pan` holds more digits than first 6 / last 4.
    #[error("masked_pan is not masked (more than 10 digits)")]
    UnmaskedPan,
    /// `customer_id` empty or too long.
    #[error("customer_id must be 1..=64 characters")]
    BadCustomerId,
    /// The key does not open this queue (another key file or CARDLANE_QUEUE_KEY).
    #[error("the queue key does not match this queue file")]
    WrongKey,
    /// The queue was opened without a key (inspection only) and the operation needs one.
    #[error("this operation needs the queue key")]
    NoKey,
    /// Key file or environment value unusable.
    #[error("queue key unusable: {0}")]
    Key(String),
    /// A stored payload failed authentication (tampering or corruption).
    #[error("record {0} failed decryption (corrupt or tampered)")]
    Corrupt(i64),
    /// The record id is not in the queue (already acknowledged or purged).
    #[error("record {0} not found")]
    NotFound(i64),
    /// Another process holds the queue (its lock file beside it).
    #[error("queue {path} is in use by another cardlane process ({}); stop it or use another queue file", pid.map_or_else(|| "pid unknown".to_string(), |p| format!("pid {p}")))]
    Locked { path: String, pid: Option<u32> },
    /// SQLite or file-system failure; the message comes from SQLite/the OS, never from payloads.
    #[error("queue storage: {0}")]
    Storage(String),
}

impl QueueError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::Full { .. } => "queue-full",
            QueueError::PinBlockRefused => "pin-block-not-queueable",
            QueueError::UnmaskedPan => "unmasked-pan",
            QueueError::BadCustomerId => "bad-customer-id",
            QueueError::WrongKey => "wrong-key",
            QueueError::NoKey => "no-key",
            QueueError::Key(_) => "key-unusable",
            QueueError::Corrupt(_) => "corrupt-record",
            QueueError::NotFound(_) => "not-found",
            QueueError::Locked { .. } => "queue-locked",
            QueueError::Storage(_) => "storage",
        }
    }
}

impl From<rusqlite::Error> for QueueError {
    fn from(e: rusqlite::Error) -> Self {
        // SQLite messages name tables/constraints, never bound values.
        QueueError::Storage(e.to_string())
    }
}

impl From<std::io::Error> for QueueError {
    fn from(e: std::io::Error) -> Self {
        QueueError::Storage(e.to_string())
    }
}
