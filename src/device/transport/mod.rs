//! Transports: one small trait, [`Transport`], that hands out chunks as the device delivered
//! them. Opening is a separate capability ([`Connector`]) so the manager can reconnect.

mod hid;
mod keyboard;
mod replay;
mod serial;
mod stdin;

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

pub use hid::HidTransport;
pub use keyboard::{us_layout_char, KeyboardTransport};
pub use replay::ReplayTransport;
pub use serial::SerialTransport;
pub use stdin::StdinTransport;

/// How a chunk is best written in a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    Hex,
    Text,
}

/// One read: a HID report, a serial read, a keystroke burst. Holds card data: redacted Debug,
/// zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Chunk {
    pub bytes: Zeroizing<Vec<u8>>,
    /// Time since the transport was opened.
    pub at: Duration,
    pub kind: ChunkKind,
}

impl Chunk {
    pub fn new(bytes: Vec<u8>, at: Duration, kind: ChunkKind) -> Self {
        Chunk {
            bytes: Zeroizing::new(bytes),
            at,
            kind,
        }
    }
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("len", &self.bytes.len())
            .field("at", &self.at)
            .field("kind", &self.kind)
            .finish()
    }
}

/// Why a transport could not open or read. Never carries device data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("device not found")]
    NotFound,
    #[error("permission denied")]
    PermissionDenied,
    #[error("device busy (open elsewhere)")]
    Busy,
    /// Unplugged, end of file, far end hung up.
    #[error("device closed")]
    Closed,
    #[error("I/O error: {0}")]
    Io(String),
    #[error("bad configuration: {0}")]
    Config(String),
}

impl TransportError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            TransportError::NotFound => "not-found",
            TransportError::PermissionDenied => "permission-denied",
            TransportError::Busy => "busy",
            TransportError::Closed => "closed",
            TransportError::Io(_) => "io",
            TransportError::Config(_) => "config",
        }
    }

    pub(crate) fn from_io(e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => TransportError::NotFound,
            K::PermissionDenied => TransportError::PermissionDenied,
            K::UnexpectedEof | K::BrokenPipe | K::ConnectionReset => TransportError::Closed,
            _ => match e.raw_os_error() {
                Some(libc::EBUSY) => TransportError::Busy,
                // EIO: a PTY whose far end closed, a USB device pulled mid-read; ENODEV: gone.
                Some(libc::EIO) | Some(libc::ENODEV) | Some(libc::ENXIO) => TransportError::Closed,
                _ => TransportError::Io(e.kind().to_string()),
            },
        }
    }
}

/// A source of chunks. `Ok(None)` means the timeout passed with nothing read. Blocking
/// transports whose OS call cannot time out (stdin, evdev) may block longer; the manager runs
/// each transport on its own thread, so this never spins.
pub trait Transport {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError>;
    /// The write side, for a transport that has one (a serial line): a listening reader uses it
    /// only to answer the device (a MICR reader's NAK). `None` by default.
    fn as_writer(&mut self) -> Option<&mut dyn Writer> {
        None
    }
    /// HID feature reports, for a transport whose device takes commands that way (a MagneSafe
    /// V5 reader). `None` by default.
    fn as_features(&mut self) -> Option<&mut dyn FeatureReports> {
        None
    }
}

/// The write side of a transport, for readers the host drives (design.md §5: a capability
/// beside [`Transport`], not a fatter trait). One call writes one unit as the device takes it:
/// bytes on a serial line, one output report (report id first) on HID.
pub trait Writer {
    fn write_unit(&mut self, bytes: &[u8]) -> Result<(), TransportError>;
}

/// HID feature reports on the control pipe (design.md §5: a capability beside [`Transport`] and
/// [`Writer`]). Both calls carry the report id first, as hidapi does.
pub trait FeatureReports {
    /// Sets one feature report: `report[0]` is the report id.
    fn set_feature(&mut self, report: &[u8]) -> Result<(), TransportError>;
    /// Gets feature report `report_id` into `buf` (report id first); returns the bytes got,
    /// the id included.
    fn get_feature(&mut self, report_id: u8, buf: &mut [u8]) -> Result<usize, TransportError>;
}

/// A transport that can be read and written (a driven reader's port).
pub trait Duplex: Transport + Writer + Send {}

impl<T: Transport + Writer + Send> Duplex for T {}

/// Opens (and re-opens) a transport: the manager's reconnect capability.
pub trait Connector: Send {
    fn connect(&mut self) -> Result<Box<dyn Transport>, TransportError>;
    /// The selector or name shown in events.
    fn source(&self) -> String;
    /// False for sources that end for good (standard input, a replay): no reconnect.
    fn reconnectable(&self) -> bool {
        true
    }
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        (**self).read_chunk(timeout)
    }
    fn as_writer(&mut self) -> Option<&mut dyn Writer> {
        (**self).as_writer()
    }
    fn as_features(&mut self) -> Option<&mut dyn FeatureReports> {
        (**self).as_features()
    }
}

/// Checks that a device node can be opened for reading (precise errno for hints).
pub fn hid_probe(path: &str) -> Result<(), TransportError> {
    hid::probe_path(path)
}
