//! The capture file format (design.md §4): record a reader's traffic chunk by chunk and play it
//! back through the same framer.
//!
//! ```text
//! # cardlane capture v1
//! # profile: idtech-securemag-hid
//! # transport: hid
//! # source: synthetic; ANSI test BDK 0123456789ABCDEFFEDCBA9876543210
//! +0ms hex 02D500801F37…
//! +1500ms text %B4111111111111111^TEST/CARD^2912101?\r
//! ```

mod clear_gate;
mod format;
mod recorder;

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

pub use clear_gate::{ClearData, ClearGate};
pub use format::escape_text;
pub use recorder::Recorder;

use crate::device::framer::{detect_framing, Frame, Framer, FramerOptions};
use crate::device::profile::Profiles;
use crate::device::transport::{Chunk, ChunkKind};

pub const MAGIC: &str = "# cardlane capture v1";
/// What every version's first line starts with: a file that has it is a capture, of some version.
pub const SIGNATURE: &str = "# cardlane capture";

/// Whether `input` says it is a capture file (of any version, supported or not).
pub fn is_capture(input: &[u8]) -> bool {
    input.starts_with(SIGNATURE.as_bytes())
}

/// Header lines (`# key: value`) before the first chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub profile: Option<String>,
    pub transport: Option<String>,
    pub source: Option<String>,
    /// Other `key: value` headers, in file order.
    pub other: Vec<(String, String)>,
}

/// One chunk line. `bytes` may hold card data: zeroed on drop, redacted in Debug.
#[derive(Clone, PartialEq, Eq)]
pub struct CaptureChunk {
    /// Delay since the previous chunk (since the start for the first).
    pub delay: Duration,
    pub kind: ChunkKind,
    pub bytes: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for CaptureChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureChunk")
            .field("delay", &self.delay)
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub headers: Headers,
    pub chunks: Vec<CaptureChunk>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error("line {line}: not a capture file (first line must be `{MAGIC}`)")]
    NotACapture { line: usize },
    #[error("line {line}: chunk line must be `+<N>ms hex|text <payload>`")]
    BadChunkLine { line: usize },
    #[error("line {line}: bad delay")]
    BadDelay { line: usize },
    #[error("line {line}: chunk kind must be `hex` or `text`")]
    BadKind { line: usize },
    #[error("line {line}: bad hex payload")]
    BadHex { line: usize },
    #[error("line {line}: bad escape in text payload (use \\r, \\n, \\t, \\\\, \\xNN)")]
    BadEscape { line: usize },
    #[error("unknown profile `{0}` in capture header")]
    UnknownProfile(String),
    /// A capture of a version this build cannot read: refused rather than read as reader bytes.
    #[error("capture format version `{found}` is not supported (this cardlane reads v1)")]
    UnsupportedVersion { found: String },
}

impl CaptureError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            CaptureError::NotACapture { .. } => "not-a-capture",
            CaptureError::BadChunkLine { .. } => "bad-chunk-line",
            CaptureError::BadDelay { .. } => "bad-delay",
            CaptureError::BadKind { .. } => "bad-kind",
            CaptureError::BadHex { .. } => "bad-hex",
            CaptureError::BadEscape { .. } => "bad-escape",
            CaptureError::UnknownProfile(_) => "unknown-profile",
            CaptureError::UnsupportedVersion { .. } => "capture-version",
        }
    }
}

impl Capture {
    pub fn parse(text: &str) -> Result<Capture, CaptureError> {
        format::parse(text)
    }

    /// The file text, exactly as `Recorder` writes it.
    pub fn to_text(&self) -> String {
        format::write(self)
    }

    /// The chunks with absolute times (running sum of delays), as a live transport delivers them.
    pub fn timed_chunks(&self) -> Vec<Chunk> {
        let mut at = Duration::ZERO;
        self.chunks
            .iter()
            .map(|c| {
                at = at.saturating_add(c.delay);
                Chunk::new(c.bytes.to_vec(), at, c.kind)
            })
            .collect()
    }
}

/// Frames in a capture, through the same framer as a live reader: the `profile:` header's
/// framing, or, without one, framing detected from the bytes (binary STX/ViVOtech2 or text).
pub fn frames(capture: &Capture, profiles: &Profiles) -> Result<Vec<Frame>, CaptureError> {
    frames_from(capture, profiles, "capture")
}

/// As [`frames`], naming `source` (e.g. the file path) in each frame.
pub fn frames_from(
    capture: &Capture,
    profiles: &Profiles,
    source: &str,
) -> Result<Vec<Frame>, CaptureError> {
    let mut framer = match &capture.headers.profile {
        Some(id) => {
            let p = profiles
                .get(id)
                .ok_or_else(|| CaptureError::UnknownProfile(id.clone()))?;
            Framer::for_profile(p, source)
        }
        None => {
            let text_only = !capture.chunks.is_empty()
                && capture.chunks.iter().all(|c| c.kind == ChunkKind::Text);
            let mut head: Vec<u8> = Vec::new();
            for c in &capture.chunks {
                head.extend(c.bytes.iter().take(256 - head.len().min(256)));
            }
            let framing = if text_only {
                detect_framing(&head)
            } else {
                crate::device::profile::Framing::Stream
            };
            zeroize::Zeroize::zeroize(&mut head);
            Framer::new(framing, FramerOptions::default(), source)
        }
    };
    let mut out = Vec::new();
    let mut last = Duration::ZERO;
    for c in capture.timed_chunks() {
        out.extend(framer.push(&c.bytes, c.at));
        last = c.at;
    }
    out.extend(framer.finish(last));
    Ok(out)
}

#[cfg(test)]
mod tests;
