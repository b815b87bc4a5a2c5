//! What `Pipeline::submit` hands back: the swipe's id, customer id, masked PAN, and its outcome
//! as it progresses (pending → queued → saved/declined/rejected, or failed/unreadable at once).
use std::time::Duration;

use tokio::sync::watch;

use crate::agent::events::MaskedPanText;

/// Where a swipe stands. Reasons are for people and never hold card data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwipeOutcome {
    /// Decoded; its record is not durable yet.
    Pending,
    /// Durable in the queue, the gateway has not answered yet. The swipe is taken.
    Queued,
    Saved {
        token: Option<String>,
    },
    Declined {
        reason: String,
    },
    /// The gateway (or local validation) refused the record.
    Rejected {
        reason: String,
    },
    /// Not kept: clear reader refused, queue full, PIN record while offline, shutting down.
    Failed {
        code: String,
        error: String,
    },
    /// The frame did not decode (`code`: the decoder's reason code).
    Unreadable {
        code: String,
        error: String,
    },
    /// No capture armed and the lane ignores such swipes.
    Ignored,
}

impl SwipeOutcome {
    /// `pending`, `queued`, `saved`, `declined`, `rejected`, `failed`, `unreadable`, `ignored`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SwipeOutcome::Pending => "pending",
            SwipeOutcome::Queued => "queued",
            SwipeOutcome::Saved { .. } => "saved",
            SwipeOutcome::Declined { .. } => "declined",
            SwipeOutcome::Rejected { .. } => "rejected",
            SwipeOutcome::Failed { .. } => "failed",
            SwipeOutcome::Unreadable { .. } => "unreadable",
            SwipeOutcome::Ignored => "ignored",
        }
    }

    /// A reason code for the failed kinds (events' `code`).
    pub fn code(&self) -> &str {
        match self {
            SwipeOutcome::Failed { code, .. } | SwipeOutcome::Unreadable { code, .. } => code,
            other => other.as_str(),
        }
    }

    /// Nothing more will change.
    pub fn is_final(&self) -> bool {
        !matches!(self, SwipeOutcome::Pending | SwipeOutcome::Queued)
    }

    /// Saved or durable: nothing swiped is lost.
    pub fn is_kept(&self) -> bool {
        matches!(self, SwipeOutcome::Saved { .. } | SwipeOutcome::Queued)
    }

    pub fn token(&self) -> Option<String> {
        match self {
            SwipeOutcome::Saved { token } => token.clone(),
            _ => None,
        }
    }

    pub fn error(&self) -> Option<String> {
        match self {
            SwipeOutcome::Declined { reason } | SwipeOutcome::Rejected { reason } => {
                Some(reason.clone())
            }
            SwipeOutcome::Failed { error, .. } | SwipeOutcome::Unreadable { error, .. } => {
                Some(error.clone())
            }
            _ => None,
        }
    }
}

/// One submitted swipe.
#[derive(Debug, Clone)]
pub struct SwipeTicket {
    /// Unique within this pipeline; the `swipe_id` of the `swipe` span.
    pub swipe_id: u64,
    /// The agent-chosen customer id, once a record was built.
    pub customer_id: Option<String>,
    pub masked_pan: Option<MaskedPanText>,
    /// `account_type` style brand from the BIN (VI, MC, AX, …).
    pub brand: Option<String>,
    /// The entry mode sent to the gateway.
    pub entry_mode: Option<String>,
    /// The decoder's format name.
    pub format: Option<String>,
    /// A check's account number masked to its last 4 (`*****6789`).
    pub masked_account: Option<String>,
    rx: watch::Receiver<SwipeOutcome>,
}

impl SwipeTicket {
    pub(super) fn new(swipe_id: u64, rx: watch::Receiver<SwipeOutcome>) -> SwipeTicket {
        SwipeTicket {
            swipe_id,
            customer_id: None,
            masked_pan: None,
            brand: None,
            entry_mode: None,
            format: None,
            masked_account: None,
            rx,
        }
    }

    /// Where the swipe stands now.
    pub fn outcome(&self) -> SwipeOutcome {
        self.rx.borrow().clone()
    }

    async fn wait_until(&mut self, done: impl Fn(&SwipeOutcome) -> bool) -> SwipeOutcome {
        let waited = self.rx.wait_for(|s| done(s)).await.map(|s| s.clone());
        // Err: the pipeline is gone; what it said last stands.
        waited.unwrap_or_else(|_| self.outcome())
    }

    /// Waits until the swipe is taken (durable) or has ended without being kept.
    pub async fn taken(&mut self) -> SwipeOutcome {
        self.wait_until(|s| *s != SwipeOutcome::Pending).await
    }

    /// Waits for the gateway's final answer (or a local failure). May wait long while offline.
    pub async fn finished(&mut self) -> SwipeOutcome {
        self.wait_until(SwipeOutcome::is_final).await
    }

    /// The final outcome if it comes within `wait`, else where the swipe stands then (`queued`
    /// when the gateway did not answer in time).
    pub async fn settle(&mut self, wait: Duration) -> SwipeOutcome {
        match tokio::time::timeout(wait, self.finished()).await {
            Ok(s) => s,
            Err(_) => self.outcome(),
        }
    }
}
