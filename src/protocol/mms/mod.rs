//! MagTek Messaging Schema (MMS) for the DynaFlex family (reader-protocols.md §3.1): the message
//! codec (`AA 00`, `81` info, `82` status, `84` payload), the USB-HID packet scheme (single,
//! head, middle, tail, cancel), the commands a card-on-file host sends and the notifications
//! that carry card data. Sans-io.
pub mod commands;
pub mod message;
pub mod notify;
pub mod packet;
pub mod session;
pub mod sim;

pub use commands::{Start, CANCEL, CLOSE, START};
pub use message::{Message, MessageError, MsgType, Status};
pub use notify::{Notice, Technology};
pub use packet::{PacketError, Reassembler, REPORT_LEN};
