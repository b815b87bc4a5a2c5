//! Reader profiles, transports, report reassembly (framer), hot-plug.
//!
//! Bytes flow `transport` → `framer` → [`Frame`]; frames leave this module as bytes (decoding is
//! `parse`'s job). The `manager` ties a transport to a framer on its own thread, reconnects with
//! backoff and reports attach/detach/error events over a tokio channel.

pub mod enumerate;
pub mod fake_hid;
pub mod framer;
pub mod manager;
pub mod profile;
pub mod selector;
pub mod session;
pub mod simulated;
pub mod transport;

pub use framer::{Frame, Framer};
pub use profile::{Profile, ProfileError, Profiles};
pub use selector::Selector;
pub use transport::{Chunk, ChunkKind, Transport, TransportError};
