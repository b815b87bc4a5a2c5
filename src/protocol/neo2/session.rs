//! The reader session: a sans-io state machine in the manner of quinn-proto. Inputs are bytes
//! from the reader (or decoded frames), timer ticks and user calls, each with the current
//! `Instant`; outputs are frames to write (`poll_transmit`), events (`poll_event`) and the next
//! deadline (`poll_timeout`). A driver runs it on a port (`device::session`).
//!
//! Rules it enforces (reader-protocols.md §1.3): one command in flight at a time; while a
//! transaction runs nothing but a cancel is sent; a cancel's answer is awaited before anything
//! else; a refused start is cancelled and retried once after a short pause; an idle reader is
//! pinged, and one that does not answer is reported `Unresponsive` so the driver reopens it (after a cancel, too, went
//! unanswered). After a read, `request_pin` runs PIN entry on a keypad reader (`62-01`, §1.6)
//! under the same rule: only a cancel between its two answers.
mod outcome;
mod types;

use std::collections::VecDeque;
use std::time::Instant;

use super::commands::{self, ACTIVATE, CANCEL, PROMPT};
use super::pin::{parse_pin_answer, GET_PIN};
use super::{Command, Deframed, Deframer, Incoming, PinOutcome, PinRequest, Response, Status};
use outcome::{ascii, final_outcome, prompt_text};
pub use types::{Activate, Event, Outcome, SessionConfig, SessionError, State, Warning};

/// Why a short command was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Open,
    Firmware,
    Ping,
    Cancel(CancelWhy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelWhy {
    User,
    HostTimeout,
    /// A refused start: clear whatever the reader still runs, then retry.
    BeforeRetry,
    /// A contact read stops after the card data (`DFEE25 0010`) with a cancel.
    AfterRead,
    /// No transaction: the user resets the reader.
    Idle,
    /// A ping went unanswered.
    Watchdog,
}

struct InFlight {
    command: u8,
    purpose: Purpose,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the in-flight short command (a watchdog ping) to be answered.
    Queued,
    /// Start sent; `first` once the reader said `63`.
    Started {
        first: bool,
    },
    RetryAt(Instant),
    /// A cancel for this transaction is in flight.
    Cancelling,
}

struct Tx {
    req: Activate,
    phase: Phase,
    retried: bool,
    /// Host-side deadline for a card.
    deadline: Instant,
    outcome_sent: bool,
    user_cancelled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PinPhase {
    /// Asked for while the read's transaction still ends (its cancel's answer is awaited).
    Queued,
    /// `62-01` sent; `acked` once its first answer (status 00, no data) came.
    Sent { acked: bool },
    /// A cancel for this PIN entry is in flight.
    Cancelling,
}

/// A PIN entry (reader-protocols.md §1.6): like a transaction, only a cancel may be sent while
/// it runs.
struct PinTx {
    req: PinRequest,
    phase: PinPhase,
    deadline: Instant,
    outcome_sent: bool,
}

pub struct Session {
    config: SessionConfig,
    state: State,
    deframer: Deframer,
    queue: VecDeque<(Command, Purpose)>,
    in_flight: Option<InFlight>,
    tx: Option<Tx>,
    pin: Option<PinTx>,
    last_heard: Instant,
    firmware: Option<String>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Session {
    pub fn new(config: SessionConfig, now: Instant) -> Session {
        Session {
            config,
            state: State::Closed,
            deframer: Deframer::host(),
            queue: VecDeque::new(),
            in_flight: None,
            tx: None,
            pin: None,
            last_heard: now,
            firmware: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn firmware(&self) -> Option<&str> {
        self.firmware.as_deref()
    }

    /// Whether a transaction or a PIN entry runs (so only a cancel may be asked for).
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some() || self.pin.is_some()
    }

    /// The port was (re)opened: forget everything and run the open sequence.
    pub fn open(&mut self, now: Instant) {
        self.reset();
        self.last_heard = now;
        self.set_state(State::Opening);
        for (c, p) in [
            (commands::ping(), Purpose::Open),
            (commands::firmware_version(), Purpose::Firmware),
            (commands::poll_on_demand(), Purpose::Open),
            (commands::burst_off(), Purpose::Open),
        ] {
            self.queue.push_back((c, p));
        }
        self.pump(now);
    }

    /// The port went away (unplugged, closed). A running transaction ends `Disconnected`.
    pub fn closed(&mut self) {
        self.end_tx_with(Outcome::Disconnected);
        self.end_pin_with(PinOutcome::Disconnected);
        self.reset();
        self.set_state(State::Closed);
    }

    fn reset(&mut self) {
        self.deframer.reset();
        self.queue.clear();
        self.in_flight = None;
        self.tx = None;
        self.pin = None;
        self.transmit.clear();
    }

    /// Starts a card-on-file transaction.
    pub fn activate(&mut self, now: Instant, req: Activate) -> Result<(), SessionError> {
        match self.state {
            State::Idle if self.tx.is_none() && self.pin.is_none() => {}
            State::WaitingForCard | State::Cancelling | State::WaitingForPin => {
                return Err(SessionError::Busy(self.state))
            }
            s => return Err(SessionError::NotReady(s)),
        }
        self.tx = Some(Tx {
            req,
            phase: Phase::Queued,
            retried: false,
            deadline: now + req.timeout,
            outcome_sent: false,
            user_cancelled: false,
        });
        self.set_state(State::WaitingForCard);
        self.pump(now);
        Ok(())
    }

    /// Asks the customer for the PIN on the reader's keypad after a read (`62-01`, the reader's
    /// own PAN). Accepted when idle, or while the read's transaction is being ended (a contact
    /// read's cancel): it is then sent once that cancel is answered. Ends with one `Event::Pin`.
    /// While it runs only `cancel` is accepted.
    pub fn request_pin(&mut self, now: Instant, req: PinRequest) -> Result<(), SessionError> {
        let read_ending = self
            .tx
            .as_ref()
            .is_some_and(|t| t.outcome_sent && t.phase == Phase::Cancelling);
        match self.state {
            _ if self.pin.is_some() => return Err(SessionError::Busy(self.state)),
            State::Idle if self.tx.is_none() => {}
            State::Cancelling if read_ending => {}
            State::WaitingForCard | State::Cancelling | State::WaitingForPin => {
                return Err(SessionError::Busy(self.state))
            }
            s => return Err(SessionError::NotReady(s)),
        }
        self.pin = Some(PinTx {
            req,
            phase: PinPhase::Queued,
            deadline: now,
            outcome_sent: false,
        });
        self.pump(now);
        Ok(())
    }

    /// Cancels the running transaction or PIN entry, or (idle) tells the reader to cancel
    /// whatever it runs.
    pub fn cancel(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.tx.is_none() {
            if let Some(p) = self.pin.as_ref() {
                match p.phase {
                    PinPhase::Queued => {
                        self.end_pin_with(PinOutcome::PinCancelled);
                        self.pin = None;
                    }
                    PinPhase::Sent { .. } => self.send_pin_cancel(now, CancelWhy::User),
                    PinPhase::Cancelling => {}
                }
                return Ok(());
            }
        } else if self
            .pin
            .as_ref()
            .is_some_and(|p| p.phase == PinPhase::Queued)
        {
            // The read's cancel is on its way; the PIN entry is dropped before it starts.
            self.end_pin_with(PinOutcome::PinCancelled);
            self.pin = None;
        }
        let Some(tx) = self.tx.as_mut() else {
            return match self.state {
                State::Idle => {
                    self.queue
                        .push_back((commands::cancel(), Purpose::Cancel(CancelWhy::Idle)));
                    self.set_state(State::Cancelling);
                    self.pump(now);
                    Ok(())
                }
                State::Cancelling => Ok(()),
                s => Err(SessionError::NotReady(s)),
            };
        };
        tx.user_cancelled = true;
        match tx.phase {
            Phase::Queued | Phase::RetryAt(_) => {
                // Nothing runs on the reader: the transaction ends here.
                self.end_tx_with(Outcome::Cancelled);
                self.tx = None;
                self.set_state(State::Idle);
            }
            Phase::Started { .. } => self.send_cancel(now, CancelWhy::User),
            // A cancel is already on its way; its answer ends the transaction as cancelled.
            Phase::Cancelling => {}
        }
        Ok(())
    }

    /// Pings the reader (idle only).
    pub fn ping(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.state {
            State::Idle if self.tx.is_none() && self.pin.is_none() => {
                self.queue.push_back((commands::ping(), Purpose::Ping));
                self.pump(now);
                Ok(())
            }
            State::WaitingForCard | State::Cancelling | State::WaitingForPin => {
                Err(SessionError::Busy(self.state))
            }
            s => Err(SessionError::NotReady(s)),
        }
    }

    /// Bytes read from the port (after HID reassembly).
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        for d in self.deframer.push_incoming(bytes) {
            match d {
                Deframed::Frame(f) => self.handle_frame(now, f),
                Deframed::BadCrc { command } => self
                    .events
                    .push_back(Event::Warning(Warning::BadCrc { command })),
                Deframed::Garbage { len } | Deframed::Oversize { len } => self
                    .events
                    .push_back(Event::Warning(Warning::Garbage { len })),
            }
        }
    }

    /// One decoded frame from the reader.
    pub fn handle_frame(&mut self, now: Instant, frame: Incoming) {
        self.last_heard = now;
        match frame {
            Incoming::ReaderRequest(c) => {
                if c.command == PROMPT {
                    self.events.push_back(Event::Prompt(prompt_text(&c.data)));
                }
            }
            Incoming::Response(r) => self.handle_response(now, r),
        }
        self.pump(now);
    }

    fn handle_response(&mut self, now: Instant, r: Response) {
        let matches_short = self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.command == r.command);
        if matches_short {
            if let Some(f) = self.in_flight.take() {
                self.short_answered(now, f.purpose, r);
            }
            return;
        }
        let pin_running = self
            .pin
            .as_ref()
            .is_some_and(|p| matches!(p.phase, PinPhase::Sent { .. } | PinPhase::Cancelling));
        if r.command == GET_PIN && pin_running {
            self.pin_answer(r);
            return;
        }
        let start_running = self
            .tx
            .as_ref()
            .is_some_and(|t| matches!(t.phase, Phase::Started { .. } | Phase::Cancelling));
        if r.command == ACTIVATE && start_running {
            self.transaction_answer(now, r);
        } else {
            self.events.push_back(Event::Warning(Warning::Unexpected {
                command: r.command,
                status: r.status,
            }));
        }
    }

    fn short_answered(&mut self, now: Instant, purpose: Purpose, r: Response) {
        match purpose {
            Purpose::Open | Purpose::Firmware => {
                if r.status != Status::Ok {
                    self.events.push_back(Event::Warning(Warning::OpenStep {
                        command: format!("{:02X}", r.command),
                        status: r.status,
                    }));
                } else if purpose == Purpose::Firmware {
                    self.firmware = Some(ascii(&r.data)).filter(|s| !s.is_empty());
                }
                let more_open = self
                    .queue
                    .iter()
                    .any(|(_, p)| matches!(p, Purpose::Open | Purpose::Firmware));
                if !more_open && self.state == State::Opening {
                    self.set_state(State::Idle);
                    self.events.push_back(Event::Ready {
                        firmware: self.firmware.clone(),
                    });
                }
            }
            Purpose::Ping => self.events.push_back(Event::Pong),
            Purpose::Cancel(why) => self.cancel_answered(now, why, r.status),
        }
    }

    fn cancel_answered(&mut self, now: Instant, why: CancelWhy, status: Status) {
        self.events.push_back(Event::CancelAnswered { status });
        if self.tx.is_none() && self.pin.is_some() {
            // A PIN entry's cancel: ends it (unless its answer raced the cancel and came first).
            self.end_pin_with(match why {
                CancelWhy::HostTimeout => PinOutcome::PinTimedOut,
                _ => PinOutcome::PinCancelled,
            });
            self.pin = None;
            self.set_state(State::Idle);
            return;
        }
        let retry = match (why, self.tx.as_ref()) {
            (CancelWhy::BeforeRetry, Some(t)) => !t.user_cancelled,
            _ => false,
        };
        if retry {
            if let Some(t) = self.tx.as_mut() {
                t.phase = Phase::RetryAt(now + self.config.retry_pause);
            }
            self.set_state(State::WaitingForCard);
            return;
        }
        let outcome = match why {
            CancelWhy::HostTimeout => Outcome::TimedOut,
            _ => Outcome::Cancelled,
        };
        self.end_tx_with(outcome);
        self.tx = None;
        self.set_state(State::Idle);
    }

    /// A response to the running `02-40`.
    fn transaction_answer(&mut self, now: Instant, r: Response) {
        let Some(tx) = self.tx.as_mut() else { return };
        let cancelling = tx.phase == Phase::Cancelling;
        match r.status {
            Status::FirstResponse => {
                if !cancelling {
                    tx.phase = Phase::Started { first: true };
                }
                return;
            }
            Status::UserInterfaceEvent => {
                self.events.push_back(Event::Prompt(prompt_text(&r.data)));
                return;
            }
            Status::CommandNotAllowed | Status::SubCommandNotAllowed
                if tx.phase == (Phase::Started { first: false }) =>
            {
                if tx.retried {
                    self.end_tx_with(Outcome::ReaderError { status: r.status });
                    self.tx = None;
                    self.set_state(State::Idle);
                } else {
                    tx.retried = true;
                    self.send_cancel(now, CancelWhy::BeforeRetry);
                }
                return;
            }
            _ => {}
        }
        let (outcome, result) = final_outcome(&r);
        self.end_tx_with(outcome);
        if cancelling {
            // The card raced the cancel: the read is delivered, the cancel's answer is still
            // awaited before anything else is sent.
            return;
        }
        if result == Some(0x0010) {
            // Card data read, no cryptogram asked for: end the reader's transaction.
            self.send_cancel(now, CancelWhy::AfterRead);
        } else {
            self.tx = None;
            self.set_state(State::Idle);
        }
    }

    fn send_cancel(&mut self, now: Instant, why: CancelWhy) {
        if let Some(t) = self.tx.as_mut() {
            t.phase = Phase::Cancelling;
        }
        // A cancel goes ahead of anything queued, at once: the start it cancels is answered
        // only later, so it does not occupy the one-in-flight slot.
        self.set_state(State::Cancelling);
        self.write(now, commands::cancel(), Purpose::Cancel(why));
    }

    /// A response to the running `62-01`: its first answer, then the PIN answer.
    fn pin_answer(&mut self, r: Response) {
        let Some(p) = self.pin.as_mut() else { return };
        let cancelling = p.phase == PinPhase::Cancelling;
        let outcome = match (p.phase, r.status) {
            // The acknowledgement: status 00 (or 63) with no data.
            (PinPhase::Sent { acked: false }, Status::Ok | Status::FirstResponse)
                if r.data.is_empty() =>
            {
                p.phase = PinPhase::Sent { acked: true };
                return;
            }
            (_, Status::Ok) => parse_pin_answer(&r.data),
            (_, status) => PinOutcome::ReaderError { status },
        };
        self.end_pin_with(outcome);
        if cancelling {
            // The answer raced the cancel: delivered; the cancel's answer is still awaited.
            return;
        }
        self.pin = None;
        self.set_state(State::Idle);
    }

    fn send_pin_cancel(&mut self, now: Instant, why: CancelWhy) {
        if let Some(p) = self.pin.as_mut() {
            p.phase = PinPhase::Cancelling;
        }
        self.set_state(State::Cancelling);
        self.write(now, commands::cancel(), Purpose::Cancel(why));
    }

    fn send_pin(&mut self, now: Instant) {
        let margin = self.config.reader_timeout_margin;
        let Some(p) = self.pin.as_mut() else { return };
        // The reader's own time-out ends a PIN entry nobody types (its state code says so);
        // the host's deadline, later, only guards against a reader that never answers.
        p.deadline = now + p.req.timeout() + margin;
        p.phase = PinPhase::Sent { acked: false };
        match p.req.command().encode() {
            Ok(bytes) => {
                self.transmit.push_back(bytes);
                self.set_state(State::WaitingForPin);
            }
            Err(_) => {
                self.end_pin_with(PinOutcome::ReaderError {
                    status: Status::MalformattedData,
                });
                self.pin = None;
            }
        }
    }

    /// Emits the PIN entry's outcome once.
    fn end_pin_with(&mut self, outcome: PinOutcome) {
        if let Some(p) = self.pin.as_mut() {
            if !p.outcome_sent {
                p.outcome_sent = true;
                self.events.push_back(Event::Pin(outcome));
            }
        }
    }

    /// Emits the transaction's outcome once.
    fn end_tx_with(&mut self, outcome: Outcome) {
        if let Some(t) = self.tx.as_mut() {
            if !t.outcome_sent {
                t.outcome_sent = true;
                self.events.push_back(Event::Outcome(outcome));
            }
        }
    }

    /// Timer tick.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(f) = self.in_flight.take_if(|f| now >= f.deadline) {
            if f.purpose == Purpose::Ping && self.tx.is_none() {
                // An unanswered ping: try a cancel first (a reader stuck in a transaction
                // answers that); only if it too goes unanswered is the port reopened.
                self.set_state(State::Cancelling);
                self.write(
                    now,
                    commands::cancel(),
                    Purpose::Cancel(CancelWhy::Watchdog),
                );
            } else {
                self.unresponsive();
            }
            return;
        }
        if let Some(tx) = self.tx.as_ref() {
            match tx.phase {
                Phase::Started { .. } if now >= tx.deadline => {
                    self.send_cancel(now, CancelWhy::HostTimeout)
                }
                Phase::RetryAt(at) if now >= at => self.send_start(),
                _ => {}
            }
        } else if let Some(p) = self.pin.as_ref() {
            if matches!(p.phase, PinPhase::Sent { .. }) && now >= p.deadline {
                self.send_pin_cancel(now, CancelWhy::HostTimeout);
            }
        }
        if self.watchdog_due(now) {
            self.queue.push_back((commands::ping(), Purpose::Ping));
        }
        self.pump(now);
    }

    fn watchdog_due(&self, now: Instant) -> bool {
        self.state == State::Idle
            && self.tx.is_none()
            && self.pin.is_none()
            && self.in_flight.is_none()
            && self.queue.is_empty()
            && now >= self.last_heard + self.config.idle_ping
    }

    fn unresponsive(&mut self) {
        self.end_tx_with(Outcome::Disconnected);
        self.end_pin_with(PinOutcome::Disconnected);
        self.reset();
        self.set_state(State::Unresponsive);
    }

    /// The next instant `handle_timeout` wants to run at.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.in_flight.as_ref().map(|f| f.deadline);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if let Some(tx) = self.tx.as_ref() {
            match tx.phase {
                Phase::Started { .. } => consider(tx.deadline),
                Phase::RetryAt(at) => consider(at),
                _ => {}
            }
        } else if let Some(p) = self.pin.as_ref() {
            if matches!(p.phase, PinPhase::Sent { .. }) {
                consider(p.deadline);
            }
        }
        if self.state == State::Idle
            && self.tx.is_none()
            && self.pin.is_none()
            && self.in_flight.is_none()
        {
            consider(self.last_heard + self.config.idle_ping);
        }
        next
    }

    /// The next frame to write, whole (the driver segments it for HID).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// Whether frames wait to be written.
    pub fn poll_transmit_pending(&self) -> bool {
        !self.transmit.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Sends what may be sent now: the next queued short command, or the queued start.
    fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        if let Some((c, p)) = self.queue.pop_front() {
            self.write(now, c, p);
            return;
        }
        if self.tx.as_ref().is_some_and(|t| t.phase == Phase::Queued) {
            self.send_start();
        } else if self.tx.is_none()
            && self
                .pin
                .as_ref()
                .is_some_and(|p| p.phase == PinPhase::Queued)
        {
            self.send_pin(now);
        }
    }

    fn send_start(&mut self) {
        let Some(tx) = self.tx.as_mut() else { return };
        let reader_timeout = tx.req.timeout + self.config.reader_timeout_margin;
        let cmd = commands::activate_card_on_file(tx.req.interfaces, reader_timeout);
        tx.phase = Phase::Started { first: false };
        match cmd.encode() {
            Ok(bytes) => self.transmit.push_back(bytes),
            Err(_) => self.end_tx_with(Outcome::ReaderError {
                status: Status::MalformattedData,
            }),
        }
        self.set_state(State::WaitingForCard);
    }

    fn write(&mut self, now: Instant, c: Command, purpose: Purpose) {
        // Short commands are a few bytes: encoding cannot fail; if it did, nothing is sent and
        // the deadline reports the reader unresponsive rather than panicking.
        if let Ok(bytes) = c.encode() {
            self.transmit.push_back(bytes);
        }
        self.in_flight = Some(InFlight {
            command: c.command,
            purpose,
            deadline: now + self.config.response_timeout,
        });
        if c.command == CANCEL && self.state != State::Cancelling {
            self.set_state(State::Cancelling);
        }
    }

    fn set_state(&mut self, s: State) {
        if self.state != s {
            self.state = s;
            self.events.push_back(Event::State(s));
        }
    }
}

#[cfg(test)]
mod tests;
