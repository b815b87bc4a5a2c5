//! A driven reader (profile `protocol = "neo2"`) in `run`: the device's [`DrivenReader`] thread
//! plus one task that decides when a transaction runs. `on-capture`: while a capture this reader
//! may serve is armed, a transaction runs for it; the capture's `DELETE`, its time-out or its
//! being served elsewhere cancels it. `continuous`: one always runs, restarted after each
//! outcome. Reads go into the pipeline like swipes (the whole final response is the frame).
//!
//! A capture with `"pin"` on a keypad reader (`pin_entry`): after the read the reader is asked
//! for the PIN (`62-01` with its own PAN, so the host never handles the PAN) while the read waits
//! here in memory; the PIN block and the PIN key's KSN then go with the read. Required: a cancel,
//! time-out or reader error fails the capture with its code and nothing is saved. Optional: the
//! read is saved without a PIN and the capture says `pin: "skipped"`. The PIN time-out is what is
//! left of the capture's (`timeout_s` covers card and PIN), at most [`PIN_WINDOW`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::agent::api::ReaderState;
use crate::agent::capture_pin::{PinNote, PinPolicy};
use crate::agent::captures::{CaptureState, Captures};
use crate::agent::config::ActivateMode;
use crate::agent::events::{EventHub, LaneEvent};
use crate::agent::lane::AgentLane;
use crate::agent::pipeline::{Pipeline, Swipe};
use crate::device::session::{DrivenReader, DriverConfig, DriverEvent};
use crate::device::{Profile, Selector};
use crate::gateway::swipe::RecordPin;
use crate::gateway::SecretString;
use crate::protocol::neo2::{Activate, Event, Interfaces, Outcome, PinOutcome, PinRequest, State};

/// `continuous`: how long one transaction waits for a card before it is restarted.
pub const CONTINUOUS_WINDOW: Duration = Duration::from_secs(60);
/// The reader's time-out is one byte of seconds; longer captures get several transactions.
const MAX_WINDOW: Duration = Duration::from_secs(250);
/// The host times out this much before the capture does, so the capture ends with the
/// reader's reason code rather than the registry's own time-out.
const DEADLINE_LEAD: Duration = Duration::from_millis(250);
/// Pause before restarting after an outcome that was not a read or time-out, so a reader that
/// fails at once is not driven in a tight loop.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Longest PIN entry the reader is asked for.
pub const PIN_WINDOW: Duration = Duration::from_secs(60);
/// The PIN entry ends this much before the capture, so the capture ends with the PIN's own
/// reason code rather than the registry's time-out.
const PIN_LEAD: Duration = Duration::from_secs(1);

/// What a driven reader's task needs from the agent.
#[derive(Clone)]
pub struct DrivenContext {
    pub lane: Arc<AgentLane>,
    pub events: EventHub,
    pub captures: Arc<Captures>,
    pub pipeline: Arc<Pipeline>,
}

/// Starts the reader's driver thread and its task; the task ends (after cancelling an open
/// transaction and closing the port) once `stop` turns true.
pub fn spawn_driven(
    id: String,
    selector: Selector,
    profile: Option<Arc<Profile>>,
    mode: ActivateMode,
    ctx: DrivenContext,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let reader = DrivenReader::spawn(
        selector,
        profile.as_deref().cloned(),
        DriverConfig::default(),
        move |e| {
            let _ = tx.send(e);
        },
    );
    let task = Task {
        id,
        profile,
        mode,
        changed: ctx.captures.subscribe(),
        ctx,
        reader: Some(Arc::new(reader)),
        ready: false,
        running: None,
        awaiting_pin: None,
        cancelling: false,
        resume_at: None,
    };
    tokio::spawn(task.run(rx, stop))
}

async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The transaction the task started.
struct Running {
    /// The capture it serves (`None` in `continuous` mode with no capture armed).
    capture: Option<String>,
    deadline: Option<Instant>,
    /// The capture's `"pin"`.
    pin: Option<PinPolicy>,
}

/// A read waiting in memory (never on disk) for the customer's PIN on the reader's keypad.
struct AwaitingPin {
    frame: Zeroizing<Vec<u8>>,
    capture: String,
    policy: PinPolicy,
}

struct Task {
    id: String,
    profile: Option<Arc<Profile>>,
    mode: ActivateMode,
    ctx: DrivenContext,
    changed: watch::Receiver<()>,
    reader: Option<Arc<DrivenReader>>,
    /// The session finished its open sequence and the port is up.
    ready: bool,
    running: Option<Running>,
    /// PIN entry under way for a read.
    awaiting_pin: Option<AwaitingPin>,
    /// A cancel was asked for the running transaction (or PIN entry).
    cancelling: bool,
    /// No new transaction before this.
    resume_at: Option<tokio::time::Instant>,
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<DriverEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        enum Next {
            Driver(DriverEvent),
            Look,
            Resume,
            Stop,
        }
        loop {
            let resume = self.resume_at;
            // The select only picks; handling comes after, so no watch guard is held across
            // an await.
            let next = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(DriverEvent::Stopped) | None => Next::Stop,
                    Some(ev) => Next::Driver(ev),
                },
                r = self.changed.changed() => if r.is_err() { Next::Stop } else { Next::Look },
                _ = sleep_until_some(resume), if resume.is_some() => Next::Resume,
                _ = stop.wait_for(|v| *v) => Next::Stop,
            };
            match next {
                Next::Driver(ev) => self.on_driver_event(ev).await,
                Next::Look => {}
                Next::Resume => self.resume_at = None,
                Next::Stop => break,
            }
            self.step().await;
        }
        self.shut_down(rx).await;
    }

    /// Cancels an open transaction (waiting for its answer, within the driver's grace time)
    /// and closes the port; a read that arrives meanwhile still goes to the pipeline.
    async fn shut_down(&mut self, mut rx: mpsc::UnboundedReceiver<DriverEvent>) {
        let Some(reader) = self.reader.take() else {
            return;
        };
        let done = tokio::task::spawn_blocking(move || {
            if let Ok(r) = Arc::try_unwrap(reader) {
                r.shutdown();
            }
        });
        while let Some(ev) = rx.recv().await {
            if ev == DriverEvent::Stopped {
                break;
            }
            self.on_driver_event(ev).await;
        }
        let _ = done.await;
    }

    async fn on_driver_event(&mut self, ev: DriverEvent) {
        match ev {
            DriverEvent::PortOpened | DriverEvent::Stopped => {}
            DriverEvent::PortError(e) => {
                self.ready = false;
                self.show(ReaderState::Error, Some(e.code().to_string()), None);
            }
            DriverEvent::Session(Event::Ready { firmware }) => {
                self.ready = true;
                self.show(ReaderState::Idle, None, Some(firmware));
            }
            DriverEvent::Session(Event::State(s)) => {
                if matches!(s, State::Closed | State::Unresponsive) {
                    self.ready = false;
                }
                let shown = match s {
                    State::Closed | State::Opening => ReaderState::Disconnected,
                    State::Idle => ReaderState::Idle,
                    State::WaitingForCard => ReaderState::WaitingForCard,
                    State::WaitingForPin => ReaderState::WaitingForPin,
                    State::Cancelling => ReaderState::Cancelling,
                    State::Unresponsive => ReaderState::Unresponsive,
                };
                // Opening/Idle before `Ready` is the open sequence: not yet usable.
                if shown == ReaderState::Idle && !self.ready {
                    return;
                }
                let why = (s == State::Unresponsive).then(|| String::from("unresponsive"));
                self.show(shown, why, None);
            }
            DriverEvent::Session(Event::Prompt(text)) => {
                self.ctx.events.publish(LaneEvent::ReaderPrompt {
                    reader: self.id.clone(),
                    text,
                });
            }
            DriverEvent::Session(Event::Outcome(o)) => self.on_outcome(o).await,
            DriverEvent::Session(Event::Pin(o)) => self.on_pin(o).await,
            DriverEvent::Session(Event::Warning(w)) => {
                tracing::debug!(reader = %self.id, warning = ?w, "reader warning");
            }
            DriverEvent::Session(Event::CancelAnswered { .. } | Event::Pong) => {}
        }
    }

    fn show(&self, state: ReaderState, error: Option<String>, firmware: Option<Option<String>>) {
        if let Some(ev) = self.ctx.lane.set_driven(&self.id, state, error, firmware) {
            self.ctx.events.publish(ev);
        }
    }

    async fn on_outcome(&mut self, outcome: Outcome) {
        let Some(running) = self.running.take() else {
            return;
        };
        self.cancelling = false;
        let capture = running.capture.as_deref();
        let end = |state: CaptureState, code: &str, error: String| {
            if let Some(id) = capture {
                // Already ended (cancelled, served, timed out): nothing to change.
                let _ = self.ctx.captures.end_by_reader(id, state, code, error);
            }
        };
        match outcome {
            Outcome::Read { mut frame, .. } => {
                // Moved, not copied: the bytes stay in one zeroizing buffer.
                let bytes = std::mem::take(&mut *frame);
                match (capture, running.pin) {
                    (Some(id), Some(policy)) if self.pin_entry() => {
                        let wait = AwaitingPin {
                            frame: Zeroizing::new(bytes),
                            capture: id.to_string(),
                            policy,
                        };
                        self.ask_pin(wait, running.deadline).await;
                    }
                    _ => {
                        let swipe = Swipe::new(bytes, self.id.clone(), self.profile.clone());
                        drop(self.ctx.pipeline.submit(swipe).await);
                    }
                }
            }
            Outcome::TimedOut => {
                let due = running
                    .deadline
                    .is_some_and(|d| Instant::now() + DEADLINE_LEAD * 2 >= d);
                if due {
                    end(
                        CaptureState::TimedOut,
                        "reader-timed-out",
                        "no card was presented before the capture's time-out".into(),
                    );
                }
            }
            Outcome::Cancelled => {}
            Outcome::Declined { code } => {
                end(
                    CaptureState::Declined,
                    "reader-declined",
                    format!("the reader ended the transaction with result code {code:04X}"),
                );
                self.pause();
            }
            Outcome::ReaderError { status } => {
                end(
                    CaptureState::Failed,
                    "reader-error",
                    format!("the reader refused the transaction ({})", status.code()),
                );
                self.pause();
            }
            Outcome::Unreadable { code } => {
                // As for a bad swipe: reported, and the capture waits for the next card.
                self.ctx.events.publish(LaneEvent::Swipe {
                    reader: self.id.clone(),
                    format: None,
                    entry_mode: None,
                    masked_pan: None,
                    masked_account: None,
                    last4: None,
                    capture_id: None,
                    error_code: Some(code.into()),
                });
            }
            Outcome::Disconnected => self.pause(),
        }
    }

    fn pin_entry(&self) -> bool {
        self.profile.as_ref().is_some_and(|p| p.pin_entry)
    }

    /// Asks the reader's keypad for the PIN of the read it just made.
    async fn ask_pin(&mut self, wait: AwaitingPin, deadline: Option<Instant>) {
        let left = deadline.map_or(PIN_WINDOW, |d| {
            d.saturating_duration_since(Instant::now())
                .saturating_sub(PIN_LEAD)
        });
        // Whole seconds: the reader's time-out is one byte of them.
        let secs = left.min(PIN_WINDOW).as_secs();
        let req = PinRequest::new(4, 12, "ENTER PIN", Duration::from_secs(secs));
        let Ok(req) = req else {
            // No time left for a PIN in this capture.
            self.awaiting_pin = Some(wait);
            return self.on_pin(PinOutcome::PinTimedOut).await;
        };
        match self.call(move |r| r.request_pin(req)).await {
            Ok(()) => self.awaiting_pin = Some(wait),
            Err(e) => {
                tracing::warn!(reader = %self.id, error = %e, code = "pin-error", "PIN entry not started");
                self.awaiting_pin = Some(wait);
                self.on_pin(PinOutcome::Disconnected).await;
            }
        }
    }

    /// The PIN entry ended: the read goes on with its PIN block, without one (optional), or
    /// not at all (required, or the capture ended meanwhile).
    async fn on_pin(&mut self, outcome: PinOutcome) {
        let Some(wait) = self.awaiting_pin.take() else {
            tracing::warn!(reader = %self.id, code = "unexpected-pin", "PIN answer with no PIN request");
            return;
        };
        self.cancelling = false;
        let captures = &self.ctx.captures;
        if !captures.is_armed(&wait.capture) {
            // Cancelled or timed out during the PIN entry: the read is dropped (and zeroed).
            tracing::info!(reader = %self.id, capture = %wait.capture, code = "pin-abandoned", "capture ended during PIN entry; read dropped");
            return;
        }
        let AwaitingPin {
            mut frame,
            capture: id,
            policy,
        } = wait;
        let pin = match outcome {
            PinOutcome::Pin { ksn, block } => Some(RecordPin {
                block: SecretString::new(block.to_hex().as_str()),
                ksn: Some(ksn.to_hex()),
            }),
            other => {
                let code = other.code();
                tracing::warn!(reader = %self.id, capture = %id, code, "no PIN from the reader");
                if policy == PinPolicy::Required {
                    let error = match &other {
                        PinOutcome::PinCancelled => "the PIN entry was cancelled".to_string(),
                        PinOutcome::PinTimedOut => "no PIN was entered in time".to_string(),
                        o => format!("the reader gave no PIN ({})", o.code()),
                    };
                    let code = match other {
                        PinOutcome::PinCancelled | PinOutcome::PinTimedOut => code,
                        _ => "pin-error",
                    };
                    // The kiosk hears it on the event stream too, with the code.
                    self.ctx.events.publish(LaneEvent::Failed {
                        reader: Some(self.id.clone()),
                        capture_id: Some(id.clone()),
                        customer_id: None,
                        code: code.to_string(),
                        error: error.clone(),
                        masked_pan: None,
                        masked_account: None,
                        last4: None,
                    });
                    let _ = captures.end_by_reader(&id, CaptureState::Failed, code, error);
                    return;
                }
                None
            }
        };
        let Some(taken) = captures.take_by_id(&id) else {
            return;
        };
        let note = if pin.is_some() {
            PinNote::Entered
        } else {
            PinNote::Skipped
        };
        captures.note_pin(&id, note);
        let bytes = std::mem::take(&mut *frame);
        let mut swipe = Swipe::new(bytes, self.id.clone(), self.profile.clone());
        swipe.pin_block = pin;
        swipe.capture = Some(taken);
        drop(self.ctx.pipeline.submit(swipe).await);
    }

    fn pause(&mut self) {
        self.resume_at = Some(tokio::time::Instant::now() + RETRY_PAUSE);
    }

    /// Starts, keeps or cancels the transaction to match what is wanted now.
    async fn step(&mut self) {
        // During PIN entry only a cancel may go to the reader: sent when its capture ended.
        if let Some(wait) = &self.awaiting_pin {
            if !self.ctx.captures.is_armed(&wait.capture) && !self.cancelling && self.ready {
                self.cancelling = true;
                if let Err(e) = self.call(|r| r.cancel()).await {
                    tracing::debug!(reader = %self.id, error = %e, "cancel not sent");
                }
            }
            return;
        }
        if let Some(running) = &self.running {
            let unwanted = match &running.capture {
                Some(id) => !self.ctx.captures.is_armed(id),
                None => false,
            };
            if unwanted && !self.cancelling && self.ready {
                self.cancelling = true;
                if let Err(e) = self.call(|r| r.cancel()).await {
                    tracing::debug!(reader = %self.id, error = %e, "cancel not sent");
                }
            }
            return;
        }
        if !self.ready || self.resume_at.is_some() {
            return;
        }
        let pending = self.ctx.captures.pending_for(&self.id);
        let pin = pending.as_ref().and_then(|p| p.pin);
        let (capture, deadline, interfaces, window) = match (&pending, self.mode) {
            (Some(p), _) => {
                let left = p.deadline.saturating_duration_since(Instant::now());
                let window = left.saturating_sub(DEADLINE_LEAD).min(MAX_WINDOW);
                if window.is_zero() {
                    return;
                }
                (
                    Some(p.id.clone()),
                    Some(p.deadline),
                    p.interfaces.unwrap_or(Interfaces::ALL),
                    window,
                )
            }
            (None, ActivateMode::Continuous) => (None, None, Interfaces::ALL, CONTINUOUS_WINDOW),
            (None, ActivateMode::OnCapture) => return,
        };
        let req = Activate {
            interfaces,
            timeout: window,
        };
        match self.call(move |r| r.activate(req)).await {
            Ok(()) => {
                self.running = Some(Running {
                    capture,
                    deadline,
                    pin,
                });
            }
            Err(e) => {
                tracing::debug!(reader = %self.id, error = %e, "transaction not started");
                self.pause();
            }
        }
    }

    /// Runs a driver request off the async workers (it waits for the driver's thread).
    async fn call(
        &self,
        f: impl FnOnce(&DrivenReader) -> Result<(), crate::device::session::DriverError>
            + Send
            + 'static,
    ) -> Result<(), crate::device::session::DriverError> {
        let Some(reader) = self.reader.clone() else {
            return Err(crate::device::session::DriverError::Stopped);
        };
        tokio::task::spawn_blocking(move || f(&reader))
            .await
            .unwrap_or(Err(crate::device::session::DriverError::Stopped))
    }
}
