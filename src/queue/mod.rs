//! Durable store-and-forward of Customer records (SQLite, encrypted at rest).
//!
//! [`Queue`] holds records until the gateway gives a final answer; [`uploader::Uploader`]
//! drains it through any [`uploader::Deliver`] (the gateway client, or a fake in tests).
//! Payloads are opaque bytes (the serialized Customer request) sealed with AES-256-GCM;
//! nothing else stored is card data (the PAN is kept masked, errors are masked).

mod error;
mod key;
mod lock;
mod mask;
mod seal;
mod store;
pub mod uploader;

/// Queue file used when none is configured (`--queue`, `CARDLANE_QUEUE`, `[queue] path`).
pub const DEFAULT_PATH: &str = "cardlane-queue.db";

pub use error::QueueError;
pub use key::{KeySource, QueueKey, KEY_ENV};
pub use lock::{lock_path, QueueLock};
pub use mask::mask_text;
pub use store::{
    CaptureRow, Claimed, NewRecord, Queue, QueueConfig, QueueStats, RecordId, RecordInfo,
    RecordState,
};
pub use uploader::{
    Backoff, Deliver, DeliverFuture, DeliverResult, DirectSlot, FinalAnswer, FlushReport, Saved,
    StoredRx, UploadEvent, Uploader, UploaderConfig, UploaderHealth, UploaderStatus, UploaderTask,
};
