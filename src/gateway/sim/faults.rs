//! Injected failures for `/Customer` (`POST /_sim/faults`): each queued fault applies to the next
//! `count` requests, in the order they were posted.
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer 500 without touching the store.
    Http500,
    /// Wait, then answer normally.
    Delay(Duration),
    /// Reset the connection (RST) without touching the store.
    Reset,
    /// Store the customer, then close the connection without answering.
    CommitThenDrop,
    /// Answer result_code 2 (declined) without storing: the only way to see a decline.
    Decline,
}

impl FaultKind {
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Http500 => "http-500",
            FaultKind::Delay(_) => "delay",
            FaultKind::Reset => "reset",
            FaultKind::CommitThenDrop => "commit-then-drop",
            FaultKind::Decline => "decline",
        }
    }
}

/// `POST /_sim/faults` body.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct FaultSpec {
    pub kind: String,
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default)]
    pub delay_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("kind must be http-500, delay, reset, commit-then-drop or decline")]
    UnknownKind,
}

/// Delay used when `delay_ms` is not given.
const DEFAULT_DELAY: Duration = Duration::from_millis(1000);

impl FaultSpec {
    pub fn parse(&self) -> Result<(FaultKind, u32), FaultError> {
        let kind = match self.kind.to_ascii_lowercase().as_str() {
            "http-500" | "http500" | "500" => FaultKind::Http500,
            "delay" => FaultKind::Delay(
                self.delay_ms
                    .map(Duration::from_millis)
                    .unwrap_or(DEFAULT_DELAY),
            ),
            "reset" => FaultKind::Reset,
            "commit-then-drop" => FaultKind::CommitThenDrop,
            "decline" => FaultKind::Decline,
            _ => return Err(FaultError::UnknownKind),
        };
        Ok((kind, self.count.unwrap_or(1)))
    }
}

#[derive(Debug, Default)]
pub struct Faults(Mutex<VecDeque<(FaultKind, u32)>>);

impl Faults {
    pub fn push(&self, kind: FaultKind, count: u32) {
        if count == 0 {
            return;
        }
        if let Ok(mut q) = self.0.lock() {
            q.push_back((kind, count));
        }
    }

    pub fn clear(&self) {
        if let Ok(mut q) = self.0.lock() {
            q.clear();
        }
    }

    /// The fault for the request now arriving, if any; uses one of its count.
    pub fn take(&self) -> Option<FaultKind> {
        let mut q = self.0.lock().ok()?;
        let (kind, left) = q.front_mut()?;
        let kind = *kind;
        *left -= 1;
        if *left == 0 {
            q.pop_front();
        }
        Some(kind)
    }

    pub fn pending(&self) -> Vec<(FaultKind, u32)> {
        self.0
            .lock()
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_order_and_counts() {
        let f = Faults::default();
        f.push(FaultKind::Http500, 2);
        f.push(FaultKind::Reset, 1);
        f.push(FaultKind::Decline, 0);
        assert_eq!(f.take(), Some(FaultKind::Http500));
        assert_eq!(f.take(), Some(FaultKind::Http500));
        assert_eq!(f.take(), Some(FaultKind::Reset));
        assert_eq!(f.take(), None);
    }

    #[test]
    fn spec_parsing() {
        let spec = FaultSpec {
            kind: "delay".into(),
            count: None,
            delay_ms: Some(50),
        };
        assert_eq!(
            spec.parse(),
            Ok((FaultKind::Delay(Duration::from_millis(50)), 1))
        );
        let spec = FaultSpec {
            kind: "nope".into(),
            count: Some(1),
            delay_ms: None,
        };
        assert_eq!(spec.parse(), Err(FaultError::UnknownKind));
    }
}
