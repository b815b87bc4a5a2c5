//! MagneSafe V5 extended commands (eDynamo, tDynamo, mDynamo; reader-protocols.md §3.2):
//! HID feature reports carry commands (`cmd, len, data`) and their results (`result, len,
//! data`); extended commands go through command `49` in chunks and answer `0A` (done) or `0B`
//! (more parts follow); notifications arrive as input report `02`. Sans-io.
pub mod commands;
pub mod extended;
pub mod feature;
pub mod notify;
pub mod session;
pub mod sim;

pub use commands::{CardTypes, DateTime, StartEmv};
pub use extended::{ExtAnswer, ExtAssembler, ExtError};
pub use notify::{NoticeAssembler, V5Notice};
