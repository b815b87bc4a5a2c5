//! The DynaFlex session: a sans-io state machine with the NEO 2 session's interface and rules
//! (`protocol::neo2::Session`), over MMS messages. Whole messages in (`handle_bytes`, after the
//! driver joined the HID packets), whole messages out (`poll_transmit`; the driver cuts them
//! into packets), events and deadlines out.
//!
//! - Open: an echo (`DF01`, the spec's example) as the ping, then ready.
//! - One request in flight at a time; while a transaction runs only a cancel (`1008`) is sent,
//!   and its answer is awaited.
//! - A transaction: start (`1001`) with the reader's time-out set later than the host's; card
//!   data arrives as a transaction update (ARQC or batch data); a card-on-file save needs no
//!   cryptogram, so the session ends the transaction with a cancel at once. A refused start is
//!   retried once after a pause.
//! - A DynaFlex ignores a message it cannot parse: no error, no answer. A request unanswered
//!   within `response_timeout` makes the session `unresponsive` (the driver reopens the port)
//!   and ends a running transaction `disconnected`; the idle watchdog is an echo.
use std::collections::VecDeque;
use std::time::Instant;

use super::commands::{self, Start};
use super::message::{Message, Status as MmsStatus};
use super::notify::{classify, Notice};
use crate::parse;
use crate::protocol::neo2::{Activate, Event, Outcome, SessionConfig, SessionError, State, Status};

/// The echo the spec shows (`DF01` with `81 03 010203`): the session's ping.
pub const ECHO: u16 = 0xDF01;
const ECHO_PARAMS: [u8; 5] = [0x81, 0x03, 0x01, 0x02, 0x03];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Open,
    Ping,
    Start,
    Cancel(CancelWhy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelWhy {
    User,
    HostTimeout,
    BeforeRetry,
    AfterRead,
    Idle,
}

struct InFlight {
    msg_ref: u8,
    command: u16,
    purpose: Purpose,
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Started,
    RetryAt(Instant),
    Cancelling(CancelWhy),
    /// The reader refused the cancel (a card was already presented): wait for its data.
    CancelRefused,
}

struct Tx {
    req: Activate,
    phase: Phase,
    retried: bool,
    deadline: Instant,
    outcome_sent: bool,
}

/// Which way the start's interfaces and time-out go out (profile settings).
#[derive(Debug, Clone, Default)]
pub struct MmsConfig {
    pub session: SessionConfig,
    /// Template for the start request; its time-out and interfaces come from each activate.
    pub start: Start,
}

pub struct Session {
    config: MmsConfig,
    state: State,
    next_ref: u8,
    queue: VecDeque<(Message, Purpose)>,
    in_flight: Option<InFlight>,
    tx: Option<Tx>,
    last_heard: Instant,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
}

impl Session {
    pub fn new(config: MmsConfig, now: Instant) -> Session {
        Session {
            config,
            state: State::Closed,
            next_ref: 0,
            queue: VecDeque::new(),
            in_flight: None,
            tx: None,
            last_heard: now,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    fn echo(msg_ref: u8) -> Message {
        Message::request(msg_ref, ECHO, &ECHO_PARAMS)
    }

    pub fn open(&mut self, now: Instant) {
        self.reset();
        self.last_heard = now;
        self.set_state(State::Opening);
        self.queue.push_back((Self::echo(0), Purpose::Open));
        self.pump(now);
    }

    pub fn closed(&mut self) {
        self.end_tx_with(Outcome::Disconnected);
        self.reset();
        self.set_state(State::Closed);
    }

    fn reset(&mut self) {
        self.queue.clear();
        self.in_flight = None;
        self.tx = None;
        self.transmit.clear();
    }

    pub fn activate(&mut self, now: Instant, req: Activate) -> Result<(), SessionError> {
        match self.state {
            State::Idle if self.tx.is_none() => {}
            State::WaitingForCard | State::Cancelling => {
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
        });
        self.set_state(State::WaitingForCard);
        self.queue_start();
        self.pump(now);
        Ok(())
    }

    fn queue_start(&mut self) {
        let Some(tx) = self.tx.as_ref() else { return };
        let reader_timeout = tx.req.timeout + self.config.session.reader_timeout_margin;
        let start = Start {
            timeout_s: u8::try_from(reader_timeout.as_secs().max(1)).unwrap_or(u8::MAX),
            interfaces: tx.req.interfaces,
            ..self.config.start.clone()
        };
        let m = start.message(0);
        self.queue.push_back((m, Purpose::Start));
    }

    /// Cancels the running transaction (or resets an idle reader).
    pub fn cancel(&mut self, now: Instant) -> Result<(), SessionError> {
        match self.tx.as_ref().map(|t| t.phase) {
            Some(Phase::Cancelling(_) | Phase::CancelRefused) => Ok(()),
            Some(Phase::Queued | Phase::RetryAt(_)) if self.in_flight.is_none() => {
                // Nothing reached the reader yet.
                self.queue.clear();
                self.end_tx_with(Outcome::Cancelled);
                self.tx = None;
                self.set_state(State::Idle);
                Ok(())
            }
            Some(_) => {
                self.send_cancel(now, CancelWhy::User);
                Ok(())
            }
            None if self.state == State::Idle => {
                self.queue
                    .push_back((commands::cancel(0), Purpose::Cancel(CancelWhy::Idle)));
                self.set_state(State::Cancelling);
                self.pump(now);
                Ok(())
            }
            None => Err(SessionError::NothingToCancel),
        }
    }

    /// An echo now (a health check).
    pub fn ping(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.tx.is_some() {
            return Err(SessionError::Busy(self.state));
        }
        if self.state != State::Idle {
            return Err(SessionError::NotReady(self.state));
        }
        self.queue.push_back((Self::echo(0), Purpose::Ping));
        self.pump(now);
        Ok(())
    }

    fn send_cancel(&mut self, now: Instant, why: CancelWhy) {
        if let Some(t) = self.tx.as_mut() {
            t.phase = Phase::Cancelling(why);
        }
        self.set_state(State::Cancelling);
        // A cancel goes out even while the start awaits its answer: the reader takes it.
        self.queue.retain(|(_, p)| matches!(p, Purpose::Cancel(_)));
        self.queue
            .push_front((commands::cancel(0), Purpose::Cancel(why)));
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.purpose == Purpose::Start)
        {
            // Replace the start in flight: its answer, if any, is no longer waited for.
            self.in_flight = None;
        }
        self.pump(now);
    }

    /// One whole message from the reader.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        // Unparseable input is dropped: the reader does the same with ours.
        let Ok(m) = Message::decode(bytes) else {
            return;
        };
        self.last_heard = now;
        match classify(&m) {
            Notice::Response {
                msg_ref,
                command,
                status,
            } => self.on_response(now, msg_ref, command, status),
            Notice::CardData { container, .. } => self.on_card_data(now, &container),
            Notice::OperationComplete { status } => self.on_complete(now, status),
            Notice::Update { .. } | Notice::Other { .. } => {}
        }
        self.pump(now);
    }

    fn on_response(&mut self, now: Instant, msg_ref: u8, command: u16, status: MmsStatus) {
        let Some(f) = self
            .in_flight
            .take_if(|f| f.msg_ref == msg_ref && f.command == command)
        else {
            return;
        };
        match f.purpose {
            Purpose::Open => {
                self.set_state(State::Idle);
                self.events.push_back(Event::Ready { firmware: None });
            }
            Purpose::Ping => self.events.push_back(Event::Pong),
            Purpose::Start => {
                if status.is_ok() {
                    if let Some(t) = self.tx.as_mut() {
                        t.phase = Phase::Started;
                    }
                } else if self.tx.as_ref().is_some_and(|t| !t.retried) {
                    // Clear whatever the reader still runs, then retry once.
                    self.send_cancel(now, CancelWhy::BeforeRetry);
                } else {
                    self.end_tx_with(Outcome::ReaderError {
                        status: Status::Failed,
                    });
                    self.tx = None;
                    self.set_state(State::Idle);
                }
            }
            Purpose::Cancel(why) => self.on_cancel_answer(now, why, status),
        }
    }

    fn on_cancel_answer(&mut self, now: Instant, why: CancelWhy, status: MmsStatus) {
        self.events.push_back(Event::CancelAnswered {
            status: if status.is_ok() {
                Status::Ok
            } else {
                Status::Failed
            },
        });
        if status.is_failure() && matches!(why, CancelWhy::User | CancelWhy::HostTimeout) {
            // "Cannot cancel": a card is already being read. Its data (or the operation's
            // end) closes the transaction; the host deadline still bounds the wait.
            if let Some(t) = self.tx.as_mut() {
                t.phase = Phase::CancelRefused;
                t.deadline = now + self.config.session.response_timeout * 4;
            }
            return;
        }
        match why {
            CancelWhy::User => self.end_tx_with(Outcome::Cancelled),
            CancelWhy::HostTimeout => self.end_tx_with(Outcome::TimedOut),
            CancelWhy::AfterRead | CancelWhy::Idle => {}
            CancelWhy::BeforeRetry => {
                if let Some(t) = self.tx.as_mut() {
                    t.retried = true;
                    t.phase = Phase::RetryAt(now + self.config.session.retry_pause);
                    self.set_state(State::WaitingForCard);
                    return;
                }
            }
        }
        self.tx = None;
        self.set_state(State::Idle);
    }

    fn on_card_data(&mut self, now: Instant, container: &[u8]) {
        let Some(phase) = self
            .tx
            .as_ref()
            .filter(|t| !t.outcome_sent)
            .map(|t| t.phase)
        else {
            return;
        };
        let outcome = Outcome::of_frame(
            zeroize::Zeroizing::new(container.to_vec()),
            parse::decode_frame,
        );
        self.end_tx_with(outcome);
        match phase {
            // A cancel is on its way or was refused: its answer or the end closes it.
            Phase::Cancelling(_) => {}
            Phase::CancelRefused => {
                self.tx = None;
                self.set_state(State::Idle);
            }
            _ => self.send_cancel(now, CancelWhy::AfterRead),
        }
    }

    fn on_complete(&mut self, _now: Instant, status: MmsStatus) {
        let Some(t) = self.tx.as_ref() else { return };
        if !matches!(t.phase, Phase::Started | Phase::CancelRefused) {
            // A cancel's own answer ends it; an end that follows a cancelled start before its
            // retry belongs to the old start.
            return;
        }
        let outcome = if t.phase == Phase::CancelRefused {
            Outcome::Cancelled
        } else if status.is_failure() {
            Outcome::ReaderError {
                status: Status::Failed,
            }
        } else {
            Outcome::TimedOut
        };
        self.end_tx_with(outcome);
        self.tx = None;
        self.set_state(State::Idle);
    }

    fn end_tx_with(&mut self, outcome: Outcome) {
        if let Some(t) = self.tx.as_mut() {
            if !t.outcome_sent {
                t.outcome_sent = true;
                self.events.push_back(Event::Outcome(outcome));
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.in_flight.as_ref().is_some_and(|f| now >= f.deadline) {
            // No answer: the reader ignored the message or is gone.
            self.end_tx_with(Outcome::Disconnected);
            self.reset();
            self.set_state(State::Unresponsive);
            return;
        }
        if let Some(t) = self.tx.as_ref() {
            match t.phase {
                Phase::Started if now >= t.deadline => {
                    self.send_cancel(now, CancelWhy::HostTimeout)
                }
                Phase::CancelRefused if now >= t.deadline => {
                    self.end_tx_with(Outcome::TimedOut);
                    self.tx = None;
                    self.set_state(State::Idle);
                }
                Phase::RetryAt(at) if now >= at => {
                    if let Some(t) = self.tx.as_mut() {
                        t.phase = Phase::Queued;
                    }
                    self.queue_start();
                }
                _ => {}
            }
        }
        if self.state == State::Idle
            && self.tx.is_none()
            && self.in_flight.is_none()
            && self.queue.is_empty()
            && now >= self.last_heard + self.config.session.idle_ping
        {
            self.queue.push_back((Self::echo(0), Purpose::Ping));
        }
        self.pump(now);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = self.in_flight.as_ref().map(|f| f.deadline);
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        match self.tx.as_ref().map(|t| (t.phase, t.deadline)) {
            Some((Phase::Started | Phase::CancelRefused, d)) => consider(d),
            Some((Phase::RetryAt(at), _)) => consider(at),
            _ => {}
        }
        if self.state == State::Idle && self.tx.is_none() && self.in_flight.is_none() {
            consider(self.last_heard + self.config.session.idle_ping);
        }
        next
    }

    /// Sends the next queued request when none is in flight.
    fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        let Some((mut m, purpose)) = self.queue.pop_front() else {
            return;
        };
        self.next_ref = self.next_ref.wrapping_add(1);
        m.msg_ref = self.next_ref;
        if purpose == Purpose::Start {
            if let Some(t) = self.tx.as_mut() {
                t.phase = Phase::Started;
            }
        }
        self.in_flight = Some(InFlight {
            msg_ref: m.msg_ref,
            command: m.command,
            purpose,
            deadline: now + self.config.session.response_timeout,
        });
        self.transmit.push_back(m.encode());
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_transmit_pending(&self) -> bool {
        !self.transmit.is_empty()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn set_state(&mut self, s: State) {
        if self.state != s {
            self.state = s;
            self.events.push_back(Event::State(s));
        }
    }
}
