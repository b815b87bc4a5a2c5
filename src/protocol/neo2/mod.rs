//! ID TECH NEO 2 ("ViVOtech2") host protocol (reader-protocols.md §1): frame codec, streaming
//! deframer, the HID report scheme, and the reader session state machine.
pub mod deframer;
pub mod frame;
pub mod hid;
mod status;

pub use deframer::{Deframed, Deframer};
pub use frame::{Command, Direction, FrameError, Incoming, Response};
pub use status::Status;
pub mod commands;
pub mod pin;
pub mod session;
pub use commands::Interfaces;
pub use pin::{PinOutcome, PinRequest, PinRequestError};
pub use session::{Activate, Event, Outcome, Session, SessionConfig, SessionError, State, Warning};
