//! The eDynamo/tDynamo session (sans-io), with the NEO 2 session's events and rules, over V5
//! extended commands. Feature reports are synchronous on the host (set, then get the result),
//! so the session asks its driver for actions: `Action::Set(report)` (set it, then get the
//! result and hand it to `handle_feature`) and `Action::Get` (get the next `0B` part).
//! Notifications (input report 2) go to `handle_input`.
//!
//! - Open: set date and time (`030C`, needed after every power-up), then ready.
//! - Start EMV (`0300`) with the reader's time-out beyond the host's; ARQC (`0303`) or
//!   transaction result (`0304`) data ends the transaction with a read, and the session
//!   follows an ARQC with a cancel (`0304`): a card-on-file save needs no cryptogram.
//! - Cancel refused (non-zero result: a card was already presented): wait for the card data or
//!   the reader's end-of-transaction status, bounded by the host deadline; card data is then
//!   followed by a cancel, as after any read.
//! - A feature result the driver could not get (`feature_failed`) makes the reader unresponsive.
//! - Watchdog and ping: the clock set again (a harmless round trip that also keeps the reader's
//!   clock right) after `idle_ping` of quiet while idle; its answer is `Event::Pong`.
use std::collections::VecDeque;
use std::time::Instant;

use super::commands::{self, CardTypes, DateTime, StartEmv};
use super::extended::{ExtAnswer, ExtAssembler};
use super::notify::{classify, NoticeAssembler, V5Notice, EVENT_HOST_CANCELLED, EVENT_TIMED_OUT};
use crate::parse;
use crate::protocol::neo2::{
    Activate, Event, Outcome, SessionConfig, SessionError, State, Status, Warning,
};

/// Input report id of a MagneSafe V5 swipe (reader-formats.md §4).
pub const SWIPE_REPORT_ID: u8 = 0x01;

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set this feature report, then get the result and pass it to `handle_feature`.
    Set(Vec<u8>),
    /// Get the next part of a multi-part answer.
    Get,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Clock,
    Ping,
    Start,
    Cancel(Why),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    User,
    HostTimeout,
    AfterRead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Starting,
    Started,
    Cancelling(Why),
    CancelRefused,
}

struct Tx {
    phase: Phase,
    deadline: Instant,
    outcome_sent: bool,
}

#[derive(Debug, Clone, Default)]
pub struct V5Config {
    pub session: SessionConfig,
    pub card_types: CardTypes,
    pub start: StartEmv,
}

pub struct Session {
    config: V5Config,
    state: State,
    /// The command whose answer is being read, and the reports still to set for it.
    in_flight: Option<Purpose>,
    pending_sets: VecDeque<Vec<u8>>,
    answer: ExtAssembler,
    notes: NoticeAssembler,
    tx: Option<Tx>,
    actions: VecDeque<Action>,
    events: VecDeque<Event>,
    /// Unix seconds at an `Instant`, from `open_at`: the wall clock for later clock sets.
    wall_base: Option<(Instant, u64)>,
    /// When the reader last answered (`None` before `open_at`: no watchdog).
    last_heard: Option<Instant>,
}

impl Session {
    pub fn new(config: V5Config) -> Session {
        Session {
            config,
            state: State::Closed,
            in_flight: None,
            pending_sets: VecDeque::new(),
            answer: ExtAssembler::new(),
            notes: NoticeAssembler::new(),
            tx: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            wall_base: None,
            last_heard: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// The port opened: set the reader's clock (`wall`: the time now).
    pub fn open(&mut self, wall: DateTime) {
        self.tx = None;
        self.actions.clear();
        self.set_state(State::Opening);
        self.send(Purpose::Clock, wall.reports());
    }

    /// The port opened at `now`, `unix_secs` the wall clock (UTC): sets the reader's clock and
    /// arms the idle watchdog.
    pub fn open_at(&mut self, now: Instant, unix_secs: u64) {
        self.wall_base = Some((now, unix_secs));
        self.last_heard = Some(now);
        self.open(DateTime::from_unix(unix_secs));
    }

    fn wall(&self, now: Instant) -> Option<DateTime> {
        let (at, secs) = self.wall_base?;
        Some(DateTime::from_unix(
            secs + now.saturating_duration_since(at).as_secs(),
        ))
    }

    /// Checks the reader answers (the clock set again); `Event::Pong` when it does.
    pub fn ping(&mut self, now: Instant) -> Result<(), SessionError> {
        if self.tx.is_some() {
            return Err(SessionError::Busy(self.state));
        }
        if self.state != State::Idle || self.in_flight.is_some() {
            return Err(SessionError::NotReady(self.state));
        }
        let wall = self.wall(now).unwrap_or(DateTime::from_unix(0));
        self.send(Purpose::Ping, wall.reports());
        Ok(())
    }

    pub fn closed(&mut self) {
        self.end_with(Outcome::Disconnected);
        self.tx = None;
        self.in_flight = None;
        self.actions.clear();
        self.set_state(State::Closed);
    }

    fn send(&mut self, purpose: Purpose, reports: Vec<Vec<u8>>) {
        self.in_flight = Some(purpose);
        self.pending_sets = reports.into();
        if let Some(first) = self.pending_sets.pop_front() {
            self.actions.push_back(Action::Set(first));
        }
    }

    pub fn activate(&mut self, now: Instant, req: Activate) -> Result<(), SessionError> {
        match self.state {
            State::Idle if self.tx.is_none() => {}
            State::WaitingForCard | State::Cancelling => {
                return Err(SessionError::Busy(self.state))
            }
            s => return Err(SessionError::NotReady(s)),
        }
        let reader_timeout = req.timeout + self.config.session.reader_timeout_margin;
        let start = StartEmv {
            timeout_s: u8::try_from(reader_timeout.as_secs().max(1)).unwrap_or(u8::MAX),
            card_types: self.config.card_types.mask(req.interfaces),
            ..self.config.start.clone()
        };
        self.tx = Some(Tx {
            phase: Phase::Starting,
            deadline: now + req.timeout,
            outcome_sent: false,
        });
        self.set_state(State::WaitingForCard);
        self.send(Purpose::Start, start.reports());
        Ok(())
    }

    pub fn cancel(&mut self, _now: Instant) -> Result<(), SessionError> {
        match self.tx.as_ref().map(|t| t.phase) {
            None => Err(SessionError::NothingToCancel),
            Some(Phase::Cancelling(_) | Phase::CancelRefused) => Ok(()),
            Some(_) => {
                self.send_cancel(Why::User);
                Ok(())
            }
        }
    }

    fn send_cancel(&mut self, why: Why) {
        if let Some(t) = self.tx.as_mut() {
            t.phase = Phase::Cancelling(why);
        }
        self.set_state(State::Cancelling);
        self.send(Purpose::Cancel(why), commands::cancel());
    }

    /// The result of the last `Set` (or `Get`), as got.
    pub fn handle_feature(&mut self, now: Instant, report: &[u8]) {
        if self.last_heard.is_some() {
            self.last_heard = Some(now);
        }
        if let Some(next) = self.pending_sets.pop_front() {
            // A chunk of a long command was taken; set the next one.
            self.actions.push_back(Action::Set(next));
            return;
        }
        match self.answer.push(report) {
            Ok(None) => self.actions.push_back(Action::Get),
            Ok(Some(a)) => {
                if let Some(p) = self.in_flight.take() {
                    self.on_answer(now, p, &a);
                }
            }
            Err(_) => {
                self.events
                    .push_back(Event::Warning(Warning::Garbage { len: report.len() }));
                if let Some(p) = self.in_flight.take() {
                    self.on_answer(
                        now,
                        p,
                        &ExtAnswer {
                            code: 0xFFFF,
                            data: Default::default(),
                        },
                    );
                }
            }
        }
    }

    /// The driver could not set or get a feature report (no answer): the reader is gone.
    pub fn feature_failed(&mut self) {
        self.end_with(Outcome::Disconnected);
        self.tx = None;
        self.in_flight = None;
        self.actions.clear();
        self.set_state(State::Unresponsive);
    }

    fn on_answer(&mut self, now: Instant, p: Purpose, a: &ExtAnswer) {
        match p {
            Purpose::Clock => {
                if !a.is_ok() {
                    self.events.push_back(Event::Warning(Warning::OpenStep {
                        command: "030C".into(),
                        status: Status::Failed,
                    }));
                }
                self.set_state(State::Idle);
                self.events.push_back(Event::Ready { firmware: None });
            }
            Purpose::Ping => self.events.push_back(Event::Pong),
            Purpose::Start => {
                if a.is_ok() {
                    if let Some(t) = self.tx.as_mut() {
                        t.phase = Phase::Started;
                    }
                } else {
                    self.end_with(Outcome::ReaderError {
                        status: Status::Failed,
                    });
                    self.finish();
                }
            }
            Purpose::Cancel(why) => {
                self.events.push_back(Event::CancelAnswered {
                    status: if a.is_ok() {
                        Status::Ok
                    } else {
                        Status::Failed
                    },
                });
                if !a.is_ok() && why != Why::AfterRead {
                    // "Card already presented": its data ends the transaction.
                    if let Some(t) = self.tx.as_mut() {
                        t.phase = Phase::CancelRefused;
                        t.deadline = now + self.config.session.response_timeout * 4;
                    }
                    return;
                }
                match why {
                    Why::User => self.end_with(Outcome::Cancelled),
                    Why::HostTimeout => self.end_with(Outcome::TimedOut),
                    Why::AfterRead => {}
                }
                self.finish();
            }
        }
    }

    /// One input report (report id first): a notification (id 2) or, during a transaction, a
    /// MagneSafe swipe report (id 1, reader-formats.md §3.1), which ends it as a read.
    pub fn handle_input(&mut self, now: Instant, report: &[u8]) {
        if self.last_heard.is_some() {
            self.last_heard = Some(now);
        }
        if let Some((&SWIPE_REPORT_ID, swipe)) = report.split_first() {
            self.card_data(swipe);
            return;
        }
        let Some((id, data)) = self.notes.push(report) else {
            return;
        };
        match classify(id, &data) {
            V5Notice::Display(text) if !text.is_empty() => {
                self.events.push_back(Event::Prompt(text))
            }
            V5Notice::CardData { container, .. } => self.card_data(&container),
            V5Notice::Status { event, .. } => {
                let Some(t) = self.tx.as_ref() else { return };
                if matches!(t.phase, Phase::Started | Phase::CancelRefused)
                    && matches!(event, EVENT_TIMED_OUT | EVENT_HOST_CANCELLED)
                {
                    self.end_with(if event == EVENT_TIMED_OUT {
                        Outcome::TimedOut
                    } else {
                        Outcome::Cancelled
                    });
                    self.finish();
                }
            }
            _ => {}
        }
    }

    /// A container or swipe report: the transaction's read (or unreadable) outcome.
    fn card_data(&mut self, frame: &[u8]) {
        let Some(phase) = self
            .tx
            .as_ref()
            .filter(|t| !t.outcome_sent)
            .map(|t| t.phase)
        else {
            return;
        };
        let outcome =
            Outcome::of_frame(zeroize::Zeroizing::new(frame.to_vec()), parse::decode_frame);
        self.end_with(outcome);
        // The card's data is out: the reader now takes the cancel that ends its transaction
        // (also after a refused one), so the next start is not refused as busy.
        if !matches!(phase, Phase::Cancelling(_)) {
            self.send_cancel(Why::AfterRead);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.idle_ping_at().is_some_and(|at| now >= at) {
            let _ = self.ping(now);
            return;
        }
        let Some(t) = self.tx.as_ref() else { return };
        if now < t.deadline {
            return;
        }
        match t.phase {
            Phase::Started => self.send_cancel(Why::HostTimeout),
            Phase::CancelRefused => {
                self.end_with(Outcome::TimedOut);
                self.finish();
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.tx
            .as_ref()
            .filter(|t| matches!(t.phase, Phase::Started | Phase::CancelRefused))
            .map(|t| t.deadline)
            .or_else(|| self.idle_ping_at())
    }

    /// When an idle, quiet reader is pinged.
    fn idle_ping_at(&self) -> Option<Instant> {
        let quiet = self.state == State::Idle && self.tx.is_none() && self.in_flight.is_none();
        let heard = self.last_heard.filter(|_| quiet)?;
        Some(heard + self.config.session.idle_ping)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn finish(&mut self) {
        self.tx = None;
        self.set_state(State::Idle);
    }

    fn end_with(&mut self, o: Outcome) {
        if let Some(t) = self.tx.as_mut() {
            if !t.outcome_sent {
                t.outcome_sent = true;
                self.events.push_back(Event::Outcome(o));
            }
        }
    }

    fn set_state(&mut self, s: State) {
        if self.state != s {
            self.state = s;
            self.events.push_back(Event::State(s));
        }
    }
}
