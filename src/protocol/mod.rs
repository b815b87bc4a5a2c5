//! Reader command protocols: frame codecs and session state machines. Sans-io: bytes and
//! timer ticks in, bytes to write, events and deadlines out (design.md §5). The thin drivers
//! that run a session on a port live in `device::session`.
pub mod magtek_v5;
pub mod mms;
pub mod neo2;
