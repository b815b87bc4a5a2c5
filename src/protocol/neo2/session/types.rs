//! What the session takes and gives: its configuration, the transaction request, states,
//! outcomes, events and errors.
use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use super::super::commands::Interfaces;
use super::super::{FrameError, PinOutcome, Status};
use crate::card::CardRead;

/// Timings. Defaults suit a USB or RS-232 reader.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// How long a short command (ping, firmware, cancel…) may go unanswered.
    pub response_timeout: Duration,
    /// Quiet time after which an idle reader is pinged (the watchdog).
    pub idle_ping: Duration,
    /// Pause before the one retry of a refused start.
    pub retry_pause: Duration,
    /// The reader's own time-out is set this much later than the host's, so the host's clock
    /// decides and the transaction always ends with a cancel and its answer.
    pub reader_timeout_margin: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            response_timeout: Duration::from_secs(3),
            idle_ping: Duration::from_secs(15),
            retry_pause: Duration::from_millis(250),
            reader_timeout_margin: Duration::from_secs(2),
        }
    }
}

/// A card-on-file transaction request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activate {
    pub interfaces: Interfaces,
    /// How long to wait for a card.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not opened, or the port went away.
    Closed,
    /// The open sequence (ping, firmware, poll mode, burst off) is running.
    Opening,
    Idle,
    /// A transaction was asked for and runs (start sent, or its retry pending).
    WaitingForCard,
    /// A cancel was sent; nothing else goes out until it is answered.
    Cancelling,
    /// `62-01` runs: the customer types the PIN on the reader; only a cancel may be sent.
    WaitingForPin,
    /// The reader stopped answering: the driver should reopen the port.
    Unresponsive,
}

impl State {
    /// Names as the local API shows them (design.md §3).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Opening => "opening",
            State::Idle => "idle",
            State::WaitingForCard => "waiting-for-card",
            State::Cancelling => "cancelling",
            State::WaitingForPin => "waiting-for-pin",
            State::Unresponsive => "unresponsive",
        }
    }
}

/// How a transaction ended. Exactly one per accepted `activate`.
#[derive(Clone, PartialEq)]
pub enum Outcome {
    /// Card data, decoded by the ViVOtech2 / EMV TLV decoders; `frame` is the reader's whole
    /// final response (what the gateway gets as `track_data`).
    Read {
        read: Box<CardRead>,
        frame: Zeroizing<Vec<u8>>,
    },
    TimedOut,
    Cancelled,
    /// The reader answered with a failing status and no result code.
    ReaderError {
        status: Status,
    },
    /// The reader ended the transaction with a result code (`DFEE25`, or `FFEE1F`) that is not
    /// a read, a time-out or a cancel, e.g. `3012` MSR read error.
    Declined {
        code: u16,
    },
    /// The final response held card data the decoders refused (reason code).
    Unreadable {
        code: &'static str,
    },
    /// The reader went away or stopped answering during the transaction.
    Disconnected,
}

impl Outcome {
    /// The outcome of card data `frame` as `decode` gives it: `Read` with the frame kept whole
    /// (what the gateway gets), or `Unreadable` with the decoder's reason code.
    pub fn of_frame(
        frame: Zeroizing<Vec<u8>>,
        decode: impl FnOnce(&[u8]) -> Result<CardRead, crate::parse::ParseError>,
    ) -> Outcome {
        match decode(&frame) {
            Ok(read) => Outcome::Read {
                read: Box::new(read),
                frame,
            },
            Err(e) => Outcome::Unreadable { code: e.code() },
        }
    }

    /// Stable code (design.md §3 error codes for `reader read`).
    pub fn code(&self) -> &'static str {
        match self {
            Outcome::Read { .. } => "read",
            Outcome::TimedOut => "timed-out",
            Outcome::Cancelled => "cancelled",
            Outcome::ReaderError { .. } => "reader-error",
            Outcome::Declined { .. } => "declined",
            Outcome::Unreadable { .. } => "unreadable",
            Outcome::Disconnected => "disconnected",
        }
    }
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // CardRead's Debug is redacted; the frame is shown by length only.
            Outcome::Read { read, frame } => f
                .debug_struct("Read")
                .field("read", read)
                .field("frame_len", &frame.len())
                .finish(),
            Outcome::TimedOut => f.write_str("TimedOut"),
            Outcome::Cancelled => f.write_str("Cancelled"),
            Outcome::ReaderError { status } => f
                .debug_struct("ReaderError")
                .field("status", status)
                .finish(),
            Outcome::Declined { code } => f
                .debug_struct("Declined")
                .field("code", &format_args!("{code:04X}"))
                .finish(),
            Outcome::Unreadable { code } => {
                f.debug_struct("Unreadable").field("code", code).finish()
            }
            Outcome::Disconnected => f.write_str("Disconnected"),
        }
    }
}

/// Something the driver or the user should know that is not an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    BadCrc {
        command: u8,
    },
    Garbage {
        len: usize,
    },
    /// A response to no command in flight.
    Unexpected {
        command: u8,
        status: Status,
    },
    /// A step of the open sequence was answered with a failing status.
    OpenStep {
        command: String,
        status: Status,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    State(State),
    /// The open sequence finished.
    Ready {
        firmware: Option<String>,
    },
    /// The reader's own prompt (`61-01`), e.g. "PRESENT CARD".
    Prompt(String),
    Outcome(Outcome),
    /// How a PIN entry (`Session::request_pin`) ended.
    Pin(PinOutcome),
    /// A cancel (user's, or the session's own) was answered.
    CancelAnswered {
        status: Status,
    },
    Pong,
    Warning(Warning),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Only a cancel may be sent while a transaction runs or a cancel awaits its answer.
    #[error("the reader is {} : only a cancel may be sent now", .0.as_str())]
    Busy(State),
    #[error("the reader is {} , not ready", .0.as_str())]
    NotReady(State),
    #[error("nothing to cancel")]
    NothingToCancel,
    #[error("frame: {0}")]
    Frame(#[from] FrameError),
}

impl SessionError {
    pub fn code(&self) -> &'static str {
        match self {
            SessionError::Busy(_) => "busy",
            SessionError::NotReady(_) => "not-ready",
            SessionError::NothingToCancel => "nothing-to-cancel",
            SessionError::Frame(e) => e.code(),
        }
    }
}
