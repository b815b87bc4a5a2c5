//! Lane events (reader attached/detached, swipe, saved, queued, failed) and the broadcast hub
//! that feeds `GET /v1/events`.
//!
//! Events carry card data only in masked form. The masked PAN is a [`MaskedPanText`], which
//! refuses text showing more than 10 digits (first 6 + last 4), so a PAN cannot slip into the
//! event stream even by mistake; a check's account number is a [`MaskedAccountText`] (last 4).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

/// A masked PAN as shown to people: at most 10 digits visible, the rest masked.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MaskedPanText(String);

impl MaskedPanText {
    /// `None` when the text shows more than 10 digits or is not a masked PAN shape
    /// (digits and `*` only, 12-19 long).
    pub fn new(text: &str) -> Option<MaskedPanText> {
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        let shape = text.bytes().all(|b| b.is_ascii_digit() || b == b'*');
        (shape && digits <= 10 && (12..=19).contains(&text.len()))
            .then(|| MaskedPanText(text.to_string()))
    }

    /// Masks a PAN: first 6 and last 4 kept. `None` if it is not 12-19 digits.
    pub fn from_pan_digits(pan: &str) -> Option<MaskedPanText> {
        let len = pan.len();
        if !(12..=19).contains(&len) || !pan.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let head = pan.get(..6)?;
        let tail = pan.get(len - 4..)?;
        Some(MaskedPanText(format!(
            "{head}{}{tail}",
            "*".repeat(len - 10)
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last four digits.
    pub fn last4(&self) -> Option<&str> {
        let tail = self.0.get(self.0.len().checked_sub(4)?..)?;
        tail.bytes().all(|b| b.is_ascii_digit()).then_some(tail)
    }
}

impl std::fmt::Debug for MaskedPanText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaskedPanText({})", self.0)
    }
}

/// A bank account number as shown to people: `*` for every hidden digit, then at most the
/// last 4 (never more digits than stars, so a short number is never half shown). Text with
/// more digits, or digits before a star, is refused: a clear account cannot get through.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MaskedAccountText(String);

impl MaskedAccountText {
    /// `None` unless `text` is 1 to 32 stars followed by at most 4 digits, no more digits
    /// than stars (the shape [`AccountNumber::masked`](crate::card::AccountNumber) gives).
    pub fn new(text: &str) -> Option<MaskedAccountText> {
        let stars = text.bytes().take_while(|&b| b == b'*').count();
        let tail = text.get(stars..)?;
        let digits = tail.len();
        let ok = (1..=32).contains(&text.len())
            && stars > 0
            && tail.bytes().all(|b| b.is_ascii_digit())
            && digits <= 4
            && digits <= stars;
        ok.then(|| MaskedAccountText(text.to_string()))
    }

    /// The account masked to its last 4 (fewer for a short number).
    pub fn from_account(account: &crate::card::AccountNumber) -> Option<MaskedAccountText> {
        MaskedAccountText::new(&account.masked())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for MaskedAccountText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaskedAccountText({})", self.0)
    }
}

/// What happened on the lane. Serialized with `"type"` naming the kind (the SSE event name).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LaneEvent {
    ReaderAttached {
        reader: String,
        profile: Option<String>,
        transport: Option<String>,
    },
    ReaderDetached {
        reader: String,
        reason: Option<String>,
    },
    /// A frame was read and decoded (or failed to decode: `error_code` set).
    Swipe {
        reader: String,
        format: Option<String>,
        entry_mode: Option<String>,
        masked_pan: Option<MaskedPanText>,
        /// A check's account, masked to its last 4 (`None` for cards).
        masked_account: Option<MaskedAccountText>,
        #[serde(serialize_with = "last4_only")]
        last4: Option<String>,
        capture_id: Option<String>,
        error_code: Option<String>,
    },
    /// A read that could not be decoded, with its reason code (`bad-lrc`, `truncated`, …), so
    /// a kiosk can ask for another try at once.
    SwipeUnreadable { reader: String, code: String },
    /// The gateway saved the customer.
    Saved {
        reader: Option<String>,
        capture_id: Option<String>,
        customer_id: String,
        token: Option<String>,
        masked_pan: Option<MaskedPanText>,
        /// A check's account, masked to its last 4 (`None` for cards).
        masked_account: Option<MaskedAccountText>,
        #[serde(serialize_with = "last4_only")]
        last4: Option<String>,
    },
    /// Durable in the queue, not yet acknowledged by the gateway.
    Queued {
        reader: Option<String>,
        capture_id: Option<String>,
        customer_id: String,
        masked_pan: Option<MaskedPanText>,
        /// A check's account, masked to its last 4 (`None` for cards).
        masked_account: Option<MaskedAccountText>,
        #[serde(serialize_with = "last4_only")]
        last4: Option<String>,
    },
    /// A driven reader's own prompt (NEO 2 `61-01`, e.g. "PRESENT CARD"), for a kiosk screen.
    ReaderPrompt { reader: String, text: String },
    /// A final failure: declined, rejected, or could not be kept.
    Failed {
        reader: Option<String>,
        capture_id: Option<String>,
        customer_id: Option<String>,
        code: String,
        error: String,
        masked_pan: Option<MaskedPanText>,
        /// A check's account, masked to its last 4 (`None` for cards).
        masked_account: Option<MaskedAccountText>,
        #[serde(serialize_with = "last4_only")]
        last4: Option<String>,
    },
}

/// Writes at most the last four characters of `last4`, whatever the caller put there.
fn last4_only<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(text) => {
            let tail: String = text
                .chars()
                .rev()
                .take(4)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            s.serialize_str(&tail)
        }
    }
}

impl LaneEvent {
    /// The SSE event name: `reader-attached`, `reader-detached`, `swipe`, `saved`, `queued`,
    /// `failed`, `reader-prompt`.
    pub fn kind(&self) -> &'static str {
        match self {
            LaneEvent::ReaderAttached { .. } => "reader-attached",
            LaneEvent::ReaderDetached { .. } => "reader-detached",
            LaneEvent::Swipe { .. } => "swipe",
            LaneEvent::SwipeUnreadable { .. } => "swipe-unreadable",
            LaneEvent::Saved { .. } => "saved",
            LaneEvent::Queued { .. } => "queued",
            LaneEvent::Failed { .. } => "failed",
            LaneEvent::ReaderPrompt { .. } => "reader-prompt",
        }
    }

    /// A read or its outcome (not a reader coming, going or prompting).
    pub fn is_read(&self) -> bool {
        !matches!(
            self,
            LaneEvent::ReaderAttached { .. }
                | LaneEvent::ReaderDetached { .. }
                | LaneEvent::ReaderPrompt { .. }
        )
    }

    /// The event as one JSON object (what an SSE `data:` line carries).
    pub fn to_json(&self) -> String {
        // Serializing plain strings and options cannot fail; fall back to the bare kind.
        serde_json::to_string(self).unwrap_or_else(|_| format!("{{\"type\":\"{}\"}}", self.kind()))
    }
}

/// Fan-out of lane events to every subscriber (SSE clients, metrics, logs). Slow subscribers
/// miss events rather than slowing the lane down.
#[derive(Clone)]
pub struct EventHub {
    tx: broadcast::Sender<LaneEvent>,
    /// The last reads and their outcomes, for the console's "last reads".
    recent: Arc<Mutex<VecDeque<LaneEvent>>>,
}

/// Read events [`EventHub::recent`] keeps.
pub const RECENT_READS: usize = 20;

impl EventHub {
    /// `capacity`: events buffered per subscriber before it starts missing some.
    pub fn new(capacity: usize) -> EventHub {
        let (tx, _) = broadcast::channel(capacity.max(1));
        EventHub {
            tx,
            recent: Arc::new(Mutex::new(VecDeque::with_capacity(RECENT_READS))),
        }
    }

    /// Sends to current subscribers; returns how many there were.
    pub fn publish(&self, event: LaneEvent) -> usize {
        if event.is_read() {
            let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.len() >= RECENT_READS {
                recent.pop_front();
            }
            recent.push_back(event.clone());
        }
        self.tx.send(event).unwrap_or(0)
    }

    /// The last [`RECENT_READS`] read events (swipes and their outcomes), oldest first.
    pub fn recent(&self) -> Vec<LaneEvent> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LaneEvent> {
        self.tx.subscribe()
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(256)
    }
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("subscribers", &self.tx.receiver_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_pan_refuses_clear_pans() {
        assert!(MaskedPanText::new("4111111111111111").is_none());
        assert!(MaskedPanText::new("41111111111*1111").is_none());
        assert!(MaskedPanText::new("411111******1111").is_some());
        assert!(MaskedPanText::new("5413********4111").is_some());
        assert!(MaskedPanText::new("****").is_none());
        assert!(MaskedPanText::new("4111-11**-****-1111").is_none());
    }

    #[test]
    fn masked_account_refuses_clear_accounts() {
        // What AccountNumber::masked gives passes: 9 digits show their last 4, 6 show 2.
        let a = crate::card::AccountNumber::new("123456789").unwrap();
        let m = MaskedAccountText::from_account(&a).unwrap();
        assert_eq!(m.as_str(), "*****6789");
        let short = crate::card::AccountNumber::new("123456").unwrap();
        assert_eq!(
            MaskedAccountText::from_account(&short).unwrap().as_str(),
            "****56"
        );
        for clear in [
            "123456789",
            "*23456789",
            "****56789",
            "12**6789",
            "**1234",
            "6789",
            "",
            "*****67a9",
        ] {
            assert!(MaskedAccountText::new(clear).is_none(), "{clear}");
        }
        assert!(MaskedAccountText::new(&"*".repeat(33)).is_none());
        assert_eq!(format!("{m:?}"), "MaskedAccountText(*****6789)");
        let e = LaneEvent::Saved {
            reader: None,
            capture_id: None,
            customer_id: "CL3".into(),
            token: None,
            masked_pan: None,
            masked_account: Some(m),
            last4: Some("6789".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["masked_account"], "*****6789");
        assert!(v["masked_pan"].is_null());
    }

    #[test]
    fn masks_pan_digits() {
        let m = MaskedPanText::from_pan_digits("4005571701111111").unwrap();
        assert_eq!(m.as_str(), "400557******1111");
        assert_eq!(m.last4(), Some("1111"));
        let amex = MaskedPanText::from_pan_digits("379605176666666").unwrap();
        assert_eq!(amex.as_str(), "379605*****6666");
        assert!(MaskedPanText::from_pan_digits("41111").is_none());
        assert!(MaskedPanText::from_pan_digits("4111x11111111111").is_none());
    }

    #[test]
    fn events_serialize_with_kind() {
        let e = LaneEvent::Saved {
            reader: Some("front".into()),
            capture_id: None,
            customer_id: "CL1".into(),
            token: Some("123".into()),
            masked_pan: MaskedPanText::from_pan_digits("4005571701111111"),
            masked_account: None,
            last4: Some("1111".into()),
        };
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], "saved");
        assert_eq!(v["masked_pan"], "400557******1111");
        assert_eq!(e.kind(), "saved");
        let d = LaneEvent::ReaderDetached {
            reader: "r".into(),
            reason: None,
        };
        assert_eq!(
            d.to_json(),
            r#"{"type":"reader-detached","reader":"r","reason":null}"#
        );
    }

    #[test]
    fn last4_never_carries_more_than_four() {
        let e = LaneEvent::Queued {
            reader: None,
            capture_id: None,
            customer_id: "CL2".into(),
            masked_pan: None,
            masked_account: None,
            last4: Some("4005571701111111".into()),
        };
        let json = e.to_json();
        assert!(json.contains("\"last4\":\"1111\""), "{json}");
        assert!(!json.contains("4005571701111111"));
    }

    #[tokio::test]
    async fn hub_fans_out() {
        let hub = EventHub::new(8);
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        let ev = LaneEvent::ReaderAttached {
            reader: "r".into(),
            profile: None,
            transport: Some("serial".into()),
        };
        assert_eq!(hub.publish(ev.clone()), 2);
        assert_eq!(a.recv().await.unwrap(), ev);
        assert_eq!(b.recv().await.unwrap(), ev);
        drop((a, b));
        assert_eq!(hub.publish(ev), 0);
        assert!(hub.recent().is_empty(), "a reader event is not a read");
    }

    #[test]
    fn recent_keeps_the_last_reads_only() {
        let hub = EventHub::new(4);
        for i in 0..RECENT_READS + 3 {
            hub.publish(LaneEvent::SwipeUnreadable {
                reader: "r".into(),
                code: format!("c{i}"),
            });
            hub.publish(LaneEvent::ReaderPrompt {
                reader: "r".into(),
                text: "PRESENT CARD".into(),
            });
        }
        let recent = hub.recent();
        assert_eq!(recent.len(), RECENT_READS);
        // Oldest first; the three oldest of 23 were dropped.
        assert!(matches!(&recent[0], LaneEvent::SwipeUnreadable { code, .. } if code == "c3"));
        assert!(
            matches!(&recent[RECENT_READS - 1], LaneEvent::SwipeUnreadable { code, .. } if code == "c22")
        );
    }
}
