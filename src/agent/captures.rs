//! The capture registry: a kiosk arms "the next swipe" with customer fields, the pipeline takes
//! the armed capture when a swipe arrives and reports the gateway's outcome back.
//!
//! Policy when several captures wait on one reader: first armed, first served (FIFO). A capture
//! for "any reader" competes with reader-specific ones by arming order. At most
//! `max_waiting` captures may wait per reader (and per "any reader"); one more is refused with
//! [`CaptureError::LimitReached`] (the API answers 409), so a runaway kiosk cannot pile up swipes
//! meant for people who already left.
//!
//! Time-outs are applied lazily on every call, so no task runs per capture. A capture's clock
//! starts when it is armed, not when it reaches the head of the line. A capture that has a swipe
//! no longer times out: its record is on its way to the gateway.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

use super::capture_pin::{KioskPin, PinNote, PinPolicy};
use super::events::{MaskedAccountText, MaskedPanText};
use crate::gateway::check_record::CheckOptions;
use crate::protocol::neo2::Interfaces;
use crate::queue::{CaptureRow, Queue};

/// Customer fields as posted by the kiosk (Customer API `customer` object).
pub type CustomerFields = Map<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureState {
    Waiting,
    Saved,
    Queued,
    Declined,
    Rejected,
    Failed,
    TimedOut,
    Cancelled,
}

impl CaptureState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureState::Waiting => "waiting",
            CaptureState::Saved => "saved",
            CaptureState::Queued => "queued",
            CaptureState::Declined => "declined",
            CaptureState::Rejected => "rejected",
            CaptureState::Failed => "failed",
            CaptureState::TimedOut => "timed-out",
            CaptureState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<CaptureState> {
        [
            CaptureState::Waiting,
            CaptureState::Saved,
            CaptureState::Queued,
            CaptureState::Declined,
            CaptureState::Rejected,
            CaptureState::Failed,
            CaptureState::TimedOut,
            CaptureState::Cancelled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// No further change is possible. `queued` is not final: the upload may still succeed.
    pub fn is_final(self) -> bool {
        !matches!(self, CaptureState::Waiting | CaptureState::Queued)
    }
}

/// What the pipeline reports for a capture's swipe.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureOutcome {
    /// `saved`, `queued`, `declined`, `rejected` or `failed`.
    pub state: CaptureState,
    pub customer_id: Option<String>,
    pub token: Option<String>,
    pub masked_pan: Option<MaskedPanText>,
    /// A check's account number masked to its last 4.
    pub masked_account: Option<MaskedAccountText>,
    /// Reason text for people; never card data.
    pub error: Option<String>,
    /// Stable reason code of a failure (`pin-needs-online`, `queue-full`, …).
    pub error_code: Option<String>,
}

/// The oldest capture waiting for a driven reader: what its transaction needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub id: String,
    pub deadline: Instant,
    /// `None`: every interface the reader has.
    pub interfaces: Option<Interfaces>,
    /// Ask the reader's keypad for the PIN after the read.
    pub pin: Option<PinPolicy>,
}

/// What a card capture asks of its read beside the customer fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CardOptions {
    /// A driven reader's transaction accepts only these (`None`: all it has).
    pub interfaces: Option<Interfaces>,
    /// `"pin"`: the reader's keypad takes the PIN after the read.
    pub pin: Option<PinPolicy>,
    /// `"pin_block"`: the kiosk's own PIN pad gave it.
    pub pin_block: Option<KioskPin>,
}

/// A capture handed to the pipeline for one swipe.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmedCapture {
    pub id: String,
    pub reader: Option<String>,
    pub customer: CustomerFields,
    /// A check capture (`"kind":"check"`): what the record needs beside the MICR line.
    pub check: Option<CheckOptions>,
    /// A PIN block from the kiosk's PIN pad, for this capture's card read.
    pub pin_block: Option<KioskPin>,
}

/// What `GET /v1/captures/{id}` shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaptureStatus {
    pub id: String,
    pub state: CaptureState,
    pub reader: Option<String>,
    /// A swipe has been taken for this capture and its outcome is pending or known.
    pub swiped: bool,
    pub customer_id: Option<String>,
    pub token: Option<String>,
    pub masked_pan: Option<MaskedPanText>,
    /// A check capture's account number masked to its last 4 (`null` for cards; `masked_pan`
    /// is `null` for checks).
    pub masked_account: Option<MaskedAccountText>,
    pub error: Option<String>,
    /// Stable reason code when a driven reader ended the capture (`reader-timed-out`,
    /// `reader-declined`, `reader-error`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// For a capture with `"pin"` or `"pin_block"`: `entered`, `skipped` or `given`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinNote>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("no such capture")]
    Unknown,
    #[error("{waiting} captures are already waiting for {}; the limit is {limit}: wait for one to finish or cancel one", reader_name(.reader))]
    LimitReached {
        reader: Option<String>,
        waiting: usize,
        limit: usize,
    },
    #[error("the capture is already {}", .0.as_str())]
    Finished(CaptureState),
    #[error("the capture already has a swipe; its outcome is pending")]
    Swiped,
    #[error("the capture has no swipe yet")]
    NotSwiped,
    #[error("`{}` is not an outcome", .0.as_str())]
    BadOutcome(CaptureState),
}

fn reader_name(reader: &Option<String>) -> String {
    match reader {
        Some(r) => format!("reader `{r}`"),
        None => "any reader".into(),
    }
}

impl CaptureError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            CaptureError::Unknown => "unknown-capture",
            CaptureError::LimitReached { .. } => "capture-limit",
            CaptureError::Finished(_) => "capture-finished",
            CaptureError::Swiped => "capture-swiped",
            CaptureError::NotSwiped => "capture-not-swiped",
            CaptureError::BadOutcome(_) => "bad-outcome",
        }
    }
}

struct Entry {
    reader: Option<String>,
    /// Armed for a check (a MICR read) rather than a card.
    check: Option<CheckOptions>,
    /// Dropped once the capture is final, to keep personal data no longer than needed.
    customer: Option<CustomerFields>,
    deadline: Instant,
    state: CaptureState,
    swiped: bool,
    customer_id: Option<String>,
    token: Option<String>,
    masked_pan: Option<MaskedPanText>,
    masked_account: Option<MaskedAccountText>,
    error: Option<String>,
    error_code: Option<String>,
    interfaces: Option<Interfaces>,
    pin: Option<PinPolicy>,
    /// Dropped (zeroed) once the capture is final.
    pin_block: Option<KioskPin>,
    pin_note: Option<PinNote>,
}

impl Entry {
    fn armed(&self) -> bool {
        self.state == CaptureState::Waiting && !self.swiped
    }

    fn status(&self, id: &str) -> CaptureStatus {
        CaptureStatus {
            id: id.to_string(),
            state: self.state,
            reader: self.reader.clone(),
            swiped: self.swiped,
            customer_id: self.customer_id.clone(),
            token: self.token.clone(),
            masked_pan: self.masked_pan.clone(),
            masked_account: self.masked_account.clone(),
            error: self.error.clone(),
            error_code: self.error_code.clone(),
            pin: self.pin_note,
        }
    }

    fn finish(&mut self, state: CaptureState) {
        self.state = state;
        if state.is_final() {
            self.customer = None;
            self.pin_block = None;
        }
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Ids in arming order: the FIFO.
    order: VecDeque<String>,
}

/// The registry. Shared between the API and the pipeline behind an `Arc`.
pub struct Captures {
    inner: Mutex<Inner>,
    /// Where a capture's outcome is kept beside its record, so it outlives a restart.
    store: Option<Arc<Queue>>,
    max_waiting: usize,
    /// Finished captures kept for `GET` before the oldest are forgotten.
    retain: usize,
    /// Touched whenever a capture is armed or ends, so driven readers look again.
    changed: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for Captures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.lock().entries.len();
        f.debug_struct("Captures")
            .field("held", &held)
            .field("max_waiting", &self.max_waiting)
            .finish()
    }
}

impl Captures {
    /// `max_waiting`: captures allowed to wait per reader (at least 1).
    pub fn new(max_waiting: usize) -> Captures {
        Captures {
            inner: Mutex::new(Inner::default()),
            store: None,
            max_waiting: max_waiting.max(1),
            retain: 1024,
            changed: tokio::sync::watch::channel(()).0,
        }
    }

    /// Marked changed whenever a capture is armed, cancelled or ended.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<()> {
        self.changed.subscribe()
    }

    fn touch(&self) {
        self.changed.send_replace(());
    }

    /// The oldest armed capture that `reader` may serve (its own or "any reader").
    pub fn pending_for(&self, reader: &str) -> Option<Pending> {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
        let inner = &*inner;
        inner.order.iter().find_map(|id| {
            inner
                .entries
                .get(id)
                .filter(|e| e.armed() && e.reader.as_deref().map_or(true, |r| r == reader))
                .map(|e| Pending {
                    id: id.clone(),
                    deadline: e.deadline,
                    interfaces: e.interfaces,
                    pin: e.pin,
                })
        })
    }

    /// The oldest armed check capture that `reader` may serve (a check reader that reads only
    /// when asked is asked for it).
    pub fn check_armed_for(&self, reader: &str) -> Option<String> {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
        let inner = &*inner;
        inner
            .order
            .iter()
            .find(|id| {
                inner.entries.get(*id).is_some_and(|e| {
                    e.armed()
                        && e.check.is_some()
                        && e.reader.as_deref().map_or(true, |r| r == reader)
                })
            })
            .cloned()
    }

    /// Whether the capture is still armed (waiting, no swipe taken).
    pub fn is_armed(&self, id: &str) -> bool {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
        inner.entries.get(id).is_some_and(Entry::armed)
    }

    /// A driven reader ended an armed capture's transaction without a read: the capture ends
    /// `timed-out`, `declined` or `failed` with a reason code. Captures no longer armed are
    /// left alone.
    pub fn end_by_reader(
        &self,
        id: &str,
        state: CaptureState,
        code: &str,
        error: impl Into<String>,
    ) -> Result<(), CaptureError> {
        if !matches!(
            state,
            CaptureState::TimedOut | CaptureState::Declined | CaptureState::Failed
        ) {
            return Err(CaptureError::BadOutcome(state));
        }
        let mut inner = self.lock();
        let e = inner.entries.get_mut(id).ok_or(CaptureError::Unknown)?;
        if e.state != CaptureState::Waiting {
            return Err(CaptureError::Finished(e.state));
        }
        if e.swiped {
            return Err(CaptureError::Swiped);
        }
        e.error = Some(error.into());
        e.error_code = Some(code.to_string());
        e.finish(state);
        self.trim(&mut inner);
        drop(inner);
        self.touch();
        Ok(())
    }

    /// Keeps every swiped capture's state in `queue` too: `get` then answers for captures
    /// of an earlier run, and [`Captures::settle_customer`] updates them.
    pub fn with_store(mut self, queue: Arc<Queue>) -> Captures {
        self.store = Some(queue);
        self
    }

    fn persist(&self, status: &CaptureStatus) {
        let Some(q) = &self.store else { return };
        let row = CaptureRow {
            id: status.id.clone(),
            customer_id: status.customer_id.clone(),
            state: status.state.as_str().to_string(),
            token: status.token.clone(),
            masked_pan: status.masked_pan.as_ref().map(|m| m.as_str().to_string()),
            masked_account: status
                .masked_account
                .as_ref()
                .map(|m| m.as_str().to_string()),
            error: status.error.clone(),
        };
        if let Err(e) = q.save_capture(&row) {
            tracing::warn!(code = e.code(), "captures: cannot keep a capture's state");
        }
    }

    /// A record delivered with no capture of this run waiting for it (the agent restarted in
    /// between): its kept captures take the outcome.
    pub fn settle_customer(&self, customer_id: &str, outcome: &CaptureOutcome) {
        let Some(q) = &self.store else { return };
        if let Err(e) = q.settle_captures(
            customer_id,
            outcome.state.as_str(),
            outcome.token.as_deref(),
            outcome.error.as_deref(),
        ) {
            tracing::warn!(code = e.code(), "captures: cannot update a kept capture");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Arms the next swipe on `reader` (or on any reader). Returns the capture's id.
    pub fn arm(
        &self,
        reader: Option<String>,
        customer: CustomerFields,
        timeout: Duration,
    ) -> Result<String, CaptureError> {
        self.arm_at(reader, customer, timeout, Instant::now(), None)
    }

    /// As [`Captures::arm`], limiting a driven reader's transaction to `interfaces`.
    pub fn arm_with_interfaces(
        &self,
        reader: Option<String>,
        customer: CustomerFields,
        timeout: Duration,
        interfaces: Option<Interfaces>,
    ) -> Result<String, CaptureError> {
        self.arm_at(reader, customer, timeout, Instant::now(), interfaces)
    }

    /// As [`Captures::arm`], with what the card read must bring (interfaces, PIN).
    pub fn arm_card(
        &self,
        reader: Option<String>,
        customer: CustomerFields,
        timeout: Duration,
        options: CardOptions,
    ) -> Result<String, CaptureError> {
        self.arm_entry(reader, customer, timeout, Instant::now(), None, options)
    }

    /// A driven reader read the card of capture `id` and takes it itself (after the PIN entry
    /// its read waited for): `None` when the capture is no longer armed.
    pub fn take_by_id(&self, id: &str) -> Option<ArmedCapture> {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
        let e = inner.entries.get_mut(id).filter(|e| e.armed())?;
        e.swiped = true;
        Some(ArmedCapture {
            id: id.to_string(),
            reader: e.reader.clone(),
            customer: e.customer.clone().unwrap_or_default(),
            check: e.check.clone(),
            pin_block: e.pin_block.clone(),
        })
    }

    /// Records what became of the capture's PIN (shown as `pin`).
    pub fn note_pin(&self, id: &str, note: PinNote) {
        if let Some(e) = self.lock().entries.get_mut(id) {
            e.pin_note = Some(note);
        }
    }

    /// Arms the next check (MICR read) on `reader`: card swipes pass it by, and a check read
    /// serves only check captures.
    pub fn arm_check(
        &self,
        reader: Option<String>,
        customer: CustomerFields,
        timeout: Duration,
        check: CheckOptions,
    ) -> Result<String, CaptureError> {
        self.arm_entry(
            reader,
            customer,
            timeout,
            Instant::now(),
            Some(check),
            CardOptions::default(),
        )
    }

    fn arm_at(
        &self,
        reader: Option<String>,
        customer: CustomerFields,
        timeout: Duration,
        now: Instant,
        interfaces: Option<Interfaces>,
    ) -> Result<String, CaptureError> {
        let options = CardOptions {
            interfaces,
            ..CardOptions::default()
        };
        self.arm_entry(reader, customer, timeout, now, None, options)
    }

    fn arm_entry(
        &self,
        reader: Option<String>,
        customer: CustomerFields,
        timeout: Duration,
        now: Instant,
        check: Option<CheckOptions>,
        options: CardOptions,
    ) -> Result<String, CaptureError> {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        let waiting = inner
            .entries
            .values()
            .filter(|e| e.armed() && e.reader == reader)
            .count();
        if waiting >= self.max_waiting {
            return Err(CaptureError::LimitReached {
                reader,
                waiting,
                limit: self.max_waiting,
            });
        }
        let id = new_id();
        let deadline = now.checked_add(timeout).unwrap_or(now);
        inner.entries.insert(
            id.clone(),
            Entry {
                reader,
                check,
                customer: Some(customer),
                deadline,
                state: CaptureState::Waiting,
                swiped: false,
                customer_id: None,
                token: None,
                masked_pan: None,
                masked_account: None,
                error: None,
                error_code: None,
                interfaces: options.interfaces,
                pin: options.pin,
                pin_note: options.pin_block.as_ref().map(|_| PinNote::Given),
                pin_block: options.pin_block,
            },
        );
        inner.order.push_back(id.clone());
        drop(inner);
        self.touch();
        Ok(id)
    }

    /// For a swipe on `reader`: the oldest armed capture for that reader or for any reader.
    /// The capture stays `waiting` (with `swiped: true`) until [`Captures::complete`].
    pub fn take_for_swipe(&self, reader: &str) -> Option<ArmedCapture> {
        self.take_for_swipe_at(reader, Instant::now())
    }

    /// For a check read on `reader`: the oldest armed check capture for it or any reader.
    pub fn take_for_check(&self, reader: &str) -> Option<ArmedCapture> {
        self.take_at(reader, Instant::now(), true)
    }

    fn take_for_swipe_at(&self, reader: &str, now: Instant) -> Option<ArmedCapture> {
        self.take_at(reader, now, false)
    }

    fn take_at(&self, reader: &str, now: Instant, check: bool) -> Option<ArmedCapture> {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        let Inner { entries, order } = &mut *inner;
        for id in order.iter() {
            let Some(e) = entries.get_mut(id) else {
                continue;
            };
            // A capture asking the keypad for a PIN is served only through its reader's PIN
            // entry (`take_by_id`), never by a read that skipped it.
            if e.armed()
                && e.check.is_some() == check
                && e.pin.is_none()
                && e.reader.as_deref().map_or(true, |r| r == reader)
            {
                e.swiped = true;
                return Some(ArmedCapture {
                    id: id.clone(),
                    reader: e.reader.clone(),
                    customer: e.customer.clone().unwrap_or_default(),
                    check: e.check.clone(),
                    pin_block: e.pin_block.clone(),
                });
            }
        }
        None
    }

    /// Gives a taken capture back (its swipe could not be used, e.g. a bad read) so that the
    /// next swipe serves it. It keeps its place in line and its deadline, even if that puts its
    /// reader over `max_waiting` for a while (the limit applies to arming).
    pub fn release(&self, id: &str) -> Result<(), CaptureError> {
        let mut inner = self.lock();
        let e = inner.entries.get_mut(id).ok_or(CaptureError::Unknown)?;
        if e.state != CaptureState::Waiting {
            return Err(CaptureError::Finished(e.state));
        }
        e.swiped = false;
        Ok(())
    }

    /// Records the outcome of a capture's swipe. `queued` may later be followed by another
    /// outcome once the upload finishes.
    pub fn complete(&self, id: &str, outcome: CaptureOutcome) -> Result<(), CaptureError> {
        if matches!(
            outcome.state,
            CaptureState::Waiting | CaptureState::TimedOut | CaptureState::Cancelled
        ) {
            return Err(CaptureError::BadOutcome(outcome.state));
        }
        let mut inner = self.lock();
        let e = inner.entries.get_mut(id).ok_or(CaptureError::Unknown)?;
        if e.state.is_final() {
            return Err(CaptureError::Finished(e.state));
        }
        if !e.swiped {
            return Err(CaptureError::NotSwiped);
        }
        e.customer_id = outcome.customer_id.or(e.customer_id.take());
        e.token = outcome.token.or(e.token.take());
        e.masked_pan = outcome.masked_pan.or(e.masked_pan.take());
        e.masked_account = outcome.masked_account.or(e.masked_account.take());
        e.error = outcome.error;
        e.error_code = outcome.error_code;
        e.finish(outcome.state);
        let status = e.status(id);
        self.trim(&mut inner);
        drop(inner);
        self.persist(&status);
        Ok(())
    }

    /// Cancels a capture that has no swipe yet.
    pub fn cancel(&self, id: &str) -> Result<CaptureStatus, CaptureError> {
        self.cancel_at(id, Instant::now())
    }

    fn cancel_at(&self, id: &str, now: Instant) -> Result<CaptureStatus, CaptureError> {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        let e = inner.entries.get_mut(id).ok_or(CaptureError::Unknown)?;
        if e.state != CaptureState::Waiting {
            return Err(CaptureError::Finished(e.state));
        }
        if e.swiped {
            return Err(CaptureError::Swiped);
        }
        e.finish(CaptureState::Cancelled);
        let status = e.status(id);
        self.trim(&mut inner);
        drop(inner);
        self.touch();
        Ok(status)
    }

    pub fn get(&self, id: &str) -> Option<CaptureStatus> {
        self.get_at(id, Instant::now())
    }

    /// By capture id, or by the `customer_id` of its record; captures of an earlier run come
    /// from the store.
    fn get_at(&self, id: &str, now: Instant) -> Option<CaptureStatus> {
        let mut inner = self.lock();
        self.sweep(&mut inner, now);
        if let Some(e) = inner.entries.get(id) {
            return Some(e.status(id));
        }
        // The latest capture of this customer, in arming order.
        let by_customer = inner.order.iter().rev().find_map(|cid| {
            inner
                .entries
                .get(cid)
                .filter(|e| e.customer_id.as_deref() == Some(id))
                .map(|e| e.status(cid))
        });
        drop(inner);
        if by_customer.is_some() {
            return by_customer;
        }
        let row = match self.store.as_ref()?.find_capture(id) {
            Ok(row) => row?,
            Err(e) => {
                tracing::warn!(code = e.code(), "captures: cannot read kept captures");
                return None;
            }
        };
        Some(CaptureStatus {
            id: row.id,
            state: CaptureState::parse(&row.state)?,
            reader: None,
            swiped: true,
            customer_id: row.customer_id,
            token: row.token,
            masked_pan: row.masked_pan.as_deref().and_then(MaskedPanText::new),
            masked_account: row
                .masked_account
                .as_deref()
                .and_then(MaskedAccountText::new),
            error: row.error,
            error_code: None,
            pin: None,
        })
    }

    /// Captures armed and not yet swiped, oldest first.
    pub fn waiting(&self) -> Vec<CaptureStatus> {
        let mut inner = self.lock();
        self.sweep(&mut inner, Instant::now());
        let inner = &*inner;
        inner
            .order
            .iter()
            .filter_map(|id| {
                inner
                    .entries
                    .get(id)
                    .filter(|e| e.armed())
                    .map(|e| e.status(id))
            })
            .collect()
    }

    /// Time-outs: armed captures past their deadline.
    fn sweep(&self, inner: &mut Inner, now: Instant) {
        let mut changed = false;
        for e in inner.entries.values_mut() {
            if e.armed() && now >= e.deadline {
                e.error = Some("no swipe before the capture's time-out".into());
                e.finish(CaptureState::TimedOut);
                changed = true;
            }
        }
        if changed {
            self.trim(inner);
        }
    }

    /// Forgets the oldest final captures beyond `retain`.
    fn trim(&self, inner: &mut Inner) {
        let finals = inner
            .entries
            .values()
            .filter(|e| e.state.is_final())
            .count();
        let mut excess = finals.saturating_sub(self.retain);
        if excess == 0 {
            return;
        }
        let Inner { entries, order } = inner;
        order.retain(|id| {
            let drop = excess > 0 && entries.get(id).is_some_and(|e| e.state.is_final());
            if drop {
                entries.remove(id);
                excess -= 1;
            }
            !drop
        });
    }
}

fn new_id() -> String {
    let bytes: [u8; 8] = rand::random();
    format!("cap_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(name: &str) -> CustomerFields {
        let mut m = Map::new();
        m.insert("first_name".into(), Value::String(name.into()));
        m
    }

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_driven_reader_sees_its_capture_and_ends_it_with_a_code() {
        let c = Captures::new(4);
        let mut changed = c.subscribe();
        let contact = Interfaces {
            msr: false,
            contactless: false,
            contact: true,
        };
        let other = c.arm(Some("other".into()), fields("o"), MIN).unwrap();
        let id = c
            .arm_with_interfaces(Some("kiosk".into()), fields("k"), MIN, Some(contact))
            .unwrap();
        assert!(changed.has_changed().unwrap());
        changed.mark_unchanged();
        // Only the kiosk's own capture (or an any-reader one) is its to serve.
        let p = c.pending_for("kiosk").unwrap();
        assert_eq!(p.id, id);
        assert_eq!(p.interfaces.map(Interfaces::bits), Some(0b100));
        assert_eq!(c.pending_for("other").unwrap().id, other);
        assert!(c.pending_for("nobody").is_none());

        c.end_by_reader(&id, CaptureState::TimedOut, "reader-timed-out", "no card")
            .unwrap();
        assert!(changed.has_changed().unwrap());
        let s = c.get(&id).unwrap();
        assert_eq!(s.state, CaptureState::TimedOut);
        assert_eq!(s.error_code.as_deref(), Some("reader-timed-out"));
        assert!(!c.is_armed(&id));
        assert!(c.pending_for("kiosk").is_none());
        // Ended once; an outcome that is not the reader's to give is refused.
        assert_eq!(
            c.end_by_reader(&id, CaptureState::Failed, "reader-error", "x"),
            Err(CaptureError::Finished(CaptureState::TimedOut))
        );
        assert_eq!(
            c.end_by_reader(&other, CaptureState::Saved, "x", "x"),
            Err(CaptureError::BadOutcome(CaptureState::Saved))
        );
        // A capture the pipeline has taken is no longer the reader's to end.
        c.take_for_swipe("other").unwrap();
        assert!(!c.is_armed(&other));
        assert_eq!(
            c.end_by_reader(&other, CaptureState::Declined, "reader-declined", "x"),
            Err(CaptureError::Swiped)
        );
        let json = serde_json::to_value(c.get(&other).unwrap()).unwrap();
        assert!(json.get("error_code").is_none(), "{json}");
    }

    fn saved(customer_id: &str) -> CaptureOutcome {
        CaptureOutcome {
            state: CaptureState::Saved,
            customer_id: Some(customer_id.into()),
            token: Some("1234567890".into()),
            masked_pan: MaskedPanText::new("400557******1111"),
            masked_account: None,
            error: None,
            error_code: None,
        }
    }

    #[test]
    fn arm_take_complete() {
        let c = Captures::new(4);
        let id = c.arm(Some("front".into()), fields("Oscar"), MIN).unwrap();
        assert!(id.starts_with("cap_") && id.len() == 20);
        assert_eq!(c.get(&id).unwrap().state, CaptureState::Waiting);
        assert!(c.take_for_swipe("back").is_none(), "other reader");
        let taken = c.take_for_swipe("front").unwrap();
        assert_eq!(taken.id, id);
        assert_eq!(taken.customer["first_name"], "Oscar");
        let s = c.get(&id).unwrap();
        assert_eq!((s.state, s.swiped), (CaptureState::Waiting, true));
        assert!(c.take_for_swipe("front").is_none(), "taken once");
        c.complete(&id, saved("CL1")).unwrap();
        let s = c.get(&id).unwrap();
        assert_eq!(s.state, CaptureState::Saved);
        assert_eq!(s.customer_id.as_deref(), Some("CL1"));
        assert_eq!(s.masked_pan.unwrap().as_str(), "400557******1111");
        assert_eq!(
            c.complete(&id, saved("CL1")),
            Err(CaptureError::Finished(CaptureState::Saved))
        );
    }

    #[test]
    fn fifo_across_specific_and_any_reader() {
        let c = Captures::new(4);
        let a = c.arm(None, fields("a"), MIN).unwrap();
        let b = c.arm(Some("front".into()), fields("b"), MIN).unwrap();
        let d = c.arm(Some("front".into()), fields("d"), MIN).unwrap();
        assert_eq!(c.take_for_swipe("front").unwrap().id, a);
        assert_eq!(c.take_for_swipe("back").map(|x| x.id), None);
        assert_eq!(c.take_for_swipe("front").unwrap().id, b);
        assert_eq!(c.take_for_swipe("front").unwrap().id, d);
        assert!(c.take_for_swipe("front").is_none());
    }

    #[test]
    fn limit_refuses_one_more_per_reader() {
        let c = Captures::new(2);
        c.arm(Some("r".into()), fields("1"), MIN).unwrap();
        let second = c.arm(Some("r".into()), fields("2"), MIN).unwrap();
        let err = c.arm(Some("r".into()), fields("3"), MIN).unwrap_err();
        assert_eq!(
            err,
            CaptureError::LimitReached {
                reader: Some("r".into()),
                waiting: 2,
                limit: 2
            }
        );
        assert_eq!(err.code(), "capture-limit");
        assert!(err.to_string().contains("reader `r`"));
        // Another reader and "any reader" have their own lines.
        c.arm(Some("s".into()), fields("4"), MIN).unwrap();
        c.arm(None, fields("5"), MIN).unwrap();
        // Once one is cancelled there is room again.
        c.cancel(&second).unwrap();
        c.arm(Some("r".into()), fields("6"), MIN).unwrap();
    }

    #[test]
    fn time_out_is_lazy_and_spares_swiped_captures() {
        let c = Captures::new(4);
        let t0 = Instant::now();
        let short = c
            .arm_at(
                Some("r".into()),
                fields("s"),
                Duration::from_secs(5),
                t0,
                None,
            )
            .unwrap();
        let long = c
            .arm_at(
                Some("r".into()),
                fields("l"),
                Duration::from_secs(50),
                t0,
                None,
            )
            .unwrap();
        let other = c
            .arm_at(
                Some("q".into()),
                fields("o"),
                Duration::from_secs(5),
                t0,
                None,
            )
            .unwrap();
        assert_eq!(
            c.take_for_swipe_at("q", t0 + Duration::from_secs(1))
                .unwrap()
                .id,
            other
        );
        let later = t0 + Duration::from_secs(6);
        let s = c.get_at(&short, later).unwrap();
        assert_eq!(s.state, CaptureState::TimedOut);
        assert!(s.error.is_some());
        assert_eq!(c.get_at(&long, later).unwrap().state, CaptureState::Waiting);
        // Swiped before its deadline: not timed out.
        assert_eq!(
            c.get_at(&other, later).unwrap().state,
            CaptureState::Waiting
        );
        // The timed-out one is skipped: the next swipe goes to the long one.
        assert_eq!(c.take_for_swipe_at("r", later).unwrap().id, long);
        assert_eq!(
            c.cancel_at(&short, later),
            Err(CaptureError::Finished(CaptureState::TimedOut))
        );
    }

    #[test]
    fn cancel_rules() {
        let c = Captures::new(4);
        let id = c.arm(None, fields("x"), MIN).unwrap();
        let s = c.cancel(&id).unwrap();
        assert_eq!(s.state, CaptureState::Cancelled);
        assert!(c.take_for_swipe("r").is_none(), "cancelled is not served");
        assert_eq!(
            c.cancel(&id),
            Err(CaptureError::Finished(CaptureState::Cancelled))
        );
        assert_eq!(c.cancel("cap_nope"), Err(CaptureError::Unknown));
        let id2 = c.arm(None, fields("y"), MIN).unwrap();
        c.take_for_swipe("r").unwrap();
        assert_eq!(c.cancel(&id2), Err(CaptureError::Swiped));
    }

    #[test]
    fn release_returns_the_capture_to_its_place() {
        let c = Captures::new(4);
        let first = c.arm(None, fields("1"), MIN).unwrap();
        let _second = c.arm(None, fields("2"), MIN).unwrap();
        assert_eq!(c.take_for_swipe("r").unwrap().id, first);
        c.release(&first).unwrap();
        let again = c.take_for_swipe("r").unwrap();
        assert_eq!(again.id, first);
        assert_eq!(again.customer["first_name"], "1");
    }

    #[test]
    fn queued_then_saved() {
        let c = Captures::new(4);
        let id = c.arm(None, fields("q"), MIN).unwrap();
        assert_eq!(c.complete(&id, saved("X")), Err(CaptureError::NotSwiped));
        c.take_for_swipe("r").unwrap();
        let queued = CaptureOutcome {
            state: CaptureState::Queued,
            customer_id: Some("CL9".into()),
            token: None,
            masked_pan: None,
            masked_account: None,
            error: Some("gateway unreachable".into()),
            error_code: None,
        };
        c.complete(&id, queued).unwrap();
        assert_eq!(c.get(&id).unwrap().state, CaptureState::Queued);
        c.complete(
            &id,
            CaptureOutcome {
                customer_id: None,
                ..saved("ignored")
            },
        )
        .unwrap();
        let s = c.get(&id).unwrap();
        assert_eq!(s.state, CaptureState::Saved);
        assert_eq!(
            s.customer_id.as_deref(),
            Some("CL9"),
            "kept from the queued outcome"
        );
        assert_eq!(s.error, None);
    }

    #[test]
    fn bad_outcomes_are_refused() {
        let c = Captures::new(1);
        let id = c.arm(None, fields("q"), MIN).unwrap();
        c.take_for_swipe("r").unwrap();
        for st in [
            CaptureState::Waiting,
            CaptureState::TimedOut,
            CaptureState::Cancelled,
        ] {
            let o = CaptureOutcome {
                state: st,
                ..saved("x")
            };
            assert_eq!(c.complete(&id, o), Err(CaptureError::BadOutcome(st)));
        }
        assert_eq!(c.complete("cap_x", saved("x")), Err(CaptureError::Unknown));
    }

    #[test]
    fn old_final_captures_are_forgotten() {
        let mut c = Captures::new(1);
        c.retain = 3;
        let ids: Vec<String> = (0..5)
            .map(|i| {
                let id = c.arm(None, fields(&i.to_string()), MIN).unwrap();
                c.cancel(&id).unwrap();
                id
            })
            .collect();
        assert!(c.get(&ids[0]).is_none());
        assert!(c.get(&ids[1]).is_none());
        assert!(c.get(&ids[2]).is_some());
        assert!(c.get(&ids[4]).is_some());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Arm(Option<u8>, u64),
        Swipe(u8),
        Cancel(usize),
        Complete(usize),
        Release(usize),
        Wait(u64),
    }

    fn step() -> impl proptest::strategy::Strategy<Value = Step> {
        use proptest::prelude::*;
        prop_oneof![
            (proptest::option::of(0u8..3), 1u64..20).prop_map(|(r, t)| Step::Arm(r, t)),
            (0u8..3).prop_map(Step::Swipe),
            (0usize..16).prop_map(Step::Cancel),
            (0usize..16).prop_map(Step::Complete),
            (0usize..16).prop_map(Step::Release),
            (0u64..10).prop_map(Step::Wait),
        ]
    }

    proptest::proptest! {
        /// Whatever the order of calls: no panic, arming is refused exactly at the limit,
        /// a swipe only ever gets a capture for its reader or any reader, and never one that
        /// another swipe holds.
        #[test]
        fn random_sequences_keep_the_rules(steps in proptest::collection::vec(step(), 0..60)) {
            let c = Captures::new(2);
            let mut now = Instant::now();
            let mut ids: Vec<String> = Vec::new();
            let mut held: std::collections::HashSet<String> = Default::default();
            for s in steps {
                match s {
                    Step::Arm(r, t) => {
                        let reader = r.map(|r| format!("r{r}"));
                        // Time-outs first, so the count is what arm_at will see.
                        let _ = c.get_at("", now);
                        let before = c
                            .lock()
                            .entries
                            .values()
                            .filter(|e| e.armed() && e.reader == reader)
                            .count();
                        match c.arm_at(reader, fields("p"), Duration::from_secs(t), now, None) {
                            Ok(id) => {
                                proptest::prop_assert!(before < 2);
                                ids.push(id);
                            }
                            Err(e) => {
                                proptest::prop_assert!(before >= 2);
                                proptest::prop_assert_eq!(e.code(), "capture-limit");
                            }
                        }
                    }
                    Step::Swipe(r) => {
                        let name = format!("r{r}");
                        if let Some(a) = c.take_for_swipe_at(&name, now) {
                            proptest::prop_assert!(a.reader.as_deref().map_or(true, |x| x == name));
                            proptest::prop_assert!(held.insert(a.id.clone()), "taken twice");
                        }
                    }
                    Step::Cancel(i) => {
                        if let Some(id) = ids.get(i) {
                            let _ = c.cancel_at(id, now);
                        }
                    }
                    Step::Complete(i) => {
                        if let Some(id) = ids.get(i) {
                            if c.complete(id, saved("x")).is_ok() {
                                held.remove(id);
                            }
                        }
                    }
                    Step::Release(i) => {
                        if let Some(id) = ids.get(i) {
                            if c.release(id).is_ok() {
                                held.remove(id);
                            }
                        }
                    }
                    Step::Wait(secs) => now += Duration::from_secs(secs),
                }
                let inner = c.lock();
                proptest::prop_assert_eq!(inner.entries.len(), inner.order.len());
            }
        }
    }

    #[test]
    fn state_names() {
        assert_eq!(
            serde_json::to_string(&CaptureState::TimedOut).unwrap(),
            "\"timed-out\""
        );
        assert_eq!(CaptureState::TimedOut.as_str(), "timed-out");
        assert!(!CaptureState::Queued.is_final());
        assert!(CaptureState::Declined.is_final());
    }

    #[test]
    fn a_pin_capture_is_served_only_through_its_readers_pin_entry() {
        let c = Captures::new(4);
        let pin = c
            .arm_card(
                Some("kiosk".into()),
                fields("p"),
                MIN,
                CardOptions {
                    pin: Some(PinPolicy::Required),
                    ..CardOptions::default()
                },
            )
            .unwrap();
        // The driven reader sees it (and that it wants a PIN) ...
        let p = c.pending_for("kiosk").unwrap();
        assert_eq!(
            (p.id.as_str(), p.pin),
            (pin.as_str(), Some(PinPolicy::Required))
        );
        // ... but a read that did not go through the PIN entry never takes it.
        assert!(c.take_for_swipe("kiosk").is_none());
        let taken = c.take_by_id(&pin).unwrap();
        assert_eq!(taken.customer["first_name"], "p");
        assert!(c.take_by_id(&pin).is_none(), "taken once");
        c.note_pin(&pin, PinNote::Skipped);
        let json = serde_json::to_value(c.get(&pin).unwrap()).unwrap();
        assert_eq!(json["pin"], "skipped", "{json}");
        // A cancelled capture cannot be taken.
        let other = c
            .arm_card(
                Some("kiosk".into()),
                fields("q"),
                MIN,
                CardOptions::default(),
            )
            .unwrap();
        c.cancel(&other).unwrap();
        assert!(c.take_by_id(&other).is_none());
    }

    #[test]
    fn check_captures_and_card_captures_take_only_their_own_reads() {
        let c = Captures::new(4);
        let card = c.arm(None, fields("card"), MIN).unwrap();
        let check = c
            .arm_check(None, fields("check"), MIN, CheckOptions::default())
            .unwrap();
        // Armed second, the check capture still serves the first check read.
        let got = c.take_for_check("micr").unwrap();
        assert_eq!(got.id, check);
        assert_eq!(got.check, Some(CheckOptions::default()));
        assert!(c.take_for_check("micr").is_none());
        let got = c.take_for_swipe("msr").unwrap();
        assert_eq!((got.id, got.check), (card, None));
        assert!(c.take_for_swipe("msr").is_none());
    }
}
