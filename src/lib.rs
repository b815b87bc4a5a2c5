//! cardlane: a card-present terminal agent.
//!
//! Data flows one way: reader → transport → framer → decoder → record builder → queue →
//! uploader → gateway. `card`, `parse`, `crypto` and `protocol` are sans-io; the rest is the I/O shell.
#![forbid(unsafe_code)]

pub mod agent;
pub mod capture;
pub mod card;
pub mod crypto;
pub mod device;
pub mod gateway;
pub mod parse;
pub mod protocol;
pub mod queue;
