//! The framer (sans-io): turns chunks as a transport delivered them (HID reports, serial reads,
//! keystroke bursts) into whole reader frames, per the profile's framing.
//!
//! Three engines: a binary stream engine (ID TECH `STX…ETX` and `ViVOtech2` frames, used for
//! serial reads and for HID reports that carry such frames zero-filled or in continuation
//! reports), a fixed-size report engine (MagTek HID layout), a text engine (keyboard wedge) and
//! one for Epson's binary MICR replies.
//! Time is passed in by the caller (`Duration` since the stream started), so replays are exact.

mod epson;
mod magtek_v5;
mod mms;
mod report;
mod stream;
mod text;

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

pub use stream::{crc16_ccitt_false, STX_MAX_LEN, VIVO_MAX_LEN};

use crate::device::profile::{Framing, Profile};

/// One whole reader message. `bytes` may hold card data: Debug is redacted, memory zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub bytes: Zeroizing<Vec<u8>>,
    /// When the chunk completing the frame arrived, relative to the start of the stream.
    pub at: Duration,
    /// The device selector or capture file the frame came from.
    pub source: String,
}

impl Frame {
    pub fn new(bytes: Vec<u8>, at: Duration, source: impl Into<String>) -> Self {
        Frame {
            bytes: Zeroizing::new(bytes),
            at,
            source: source.into(),
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("len", &self.bytes.len())
            .field("at", &self.at)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Counters for what the framer threw away (reported, never logged as content).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FramerStats {
    pub frames: u64,
    /// Non-zero bytes skipped while resynchronising (zero fill does not count).
    pub garbage_bytes: u64,
    /// Incomplete frames dropped at a stall, a finish or a new report.
    pub dropped_partials: u64,
    /// Whole frames (start, length and end in place) that failed their LRC, checksum or CRC:
    /// bad reads, reported as unreadable rather than passed on.
    pub bad_lrc: u64,
    pub bad_checksum: u64,
    pub bad_crc: u64,
}

impl FramerStats {
    /// Reason codes of the bad reads counted in `self` but not yet in `before`, oldest kind
    /// first (as `decode` names them).
    pub fn bad_reads_since(&self, before: &FramerStats) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (now, then, code) in [
            (self.bad_lrc, before.bad_lrc, "bad-lrc"),
            (self.bad_checksum, before.bad_checksum, "bad-checksum"),
            (self.bad_crc, before.bad_crc, "bad-crc"),
        ] {
            for _ in then..now {
                out.push(code);
            }
        }
        out
    }
}

/// Options that tune an engine; defaults suit the profile-less case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramerOptions {
    /// HID report id to strip from each report (0 = unnumbered reports).
    pub report_id: u8,
    /// Fixed report size for `magtek-report` (bytes without the report id).
    pub report_size: usize,
    /// Keyboard text: a pause this long ends a line that has no CR.
    pub char_timeout: Duration,
    /// Binary streams: a partial frame left this long without new bytes is abandoned.
    pub stall_timeout: Duration,
    /// Keyboard text: prefix and suffix the reader wraps around each message.
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
    /// Keyboard text: block padding to drop around messages (iDynamo pads with `x`).
    pub pad: Option<u8>,
}

impl Default for FramerOptions {
    fn default() -> Self {
        FramerOptions {
            report_id: 0,
            report_size: 0,
            char_timeout: Duration::from_millis(250),
            stall_timeout: Duration::from_millis(1000),
            prefix: Vec::new(),
            suffix: Vec::new(),
            pad: None,
        }
    }
}

impl FramerOptions {
    pub fn from_profile(p: &Profile) -> Self {
        let mut o = FramerOptions::default();
        if let Some(r) = &p.report {
            o.report_id = r.id;
            o.report_size = r.size;
        }
        if let Some(w) = &p.wedge {
            o.prefix = w.prefix.as_bytes().to_vec();
            o.suffix = w.suffix.as_bytes().to_vec();
            o.pad = w.pad.as_deref().and_then(|p| p.bytes().next());
            if let Some(ms) = w.char_timeout_ms {
                o.char_timeout = Duration::from_millis(ms);
            }
        }
        o
    }
}

enum Engine {
    Epson(epson::EpsonEngine),
    Mms(mms::MmsEngine),
    Stream(stream::StreamEngine),
    Report(report::ReportEngine),
    Text(text::TextEngine),
    V5(magtek_v5::V5Engine),
}

/// Reassembles chunks into frames. Feed with [`Framer::push`], call [`Framer::poll`] when
/// [`Framer::deadline`] passes without input, and [`Framer::finish`] at end of stream.
pub struct Framer {
    engine: Engine,
    framing: Framing,
    report_id: u8,
    source: String,
    stats: FramerStats,
}

impl Framer {
    pub fn new(framing: Framing, options: FramerOptions, source: impl Into<String>) -> Self {
        let engine = match framing {
            Framing::Stream | Framing::IdtechReport | Framing::ContinuationReport => {
                Engine::Stream(stream::StreamEngine::new(options.stall_timeout))
            }
            Framing::MagtekReport => Engine::Report(report::ReportEngine::new(
                options.report_size,
                options.stall_timeout,
            )),
            Framing::MmsPacket => Engine::Mms(mms::MmsEngine::default()),
            Framing::MagtekV5Report => Engine::V5(magtek_v5::V5Engine::new(
                options.report_size,
                options.stall_timeout,
            )),
            Framing::EpsonMicr => Engine::Epson(epson::EpsonEngine::new(options.stall_timeout)),
            Framing::Text => Engine::Text(text::TextEngine::new(
                options.char_timeout,
                options.prefix.clone(),
                options.suffix.clone(),
                options.pad,
            )),
        };
        Framer {
            engine,
            framing,
            report_id: options.report_id,
            source: source.into(),
            stats: FramerStats::default(),
        }
    }

    pub fn for_profile(profile: &Profile, source: impl Into<String>) -> Self {
        Framer::new(
            profile.framing,
            FramerOptions::from_profile(profile),
            source,
        )
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Feeds one chunk as the transport delivered it; returns the frames it completed.
    pub fn push(&mut self, chunk: &[u8], at: Duration) -> Vec<Frame> {
        let data = self.strip_report_id(chunk);
        let mut out = Vec::new();
        match &mut self.engine {
            Engine::Epson(e) => e.push(data, at, &mut out, &mut self.stats),
            Engine::Mms(e) => e.push(data, at, &mut out, &mut self.stats),
            Engine::Stream(e) => e.push(data, at, &mut out, &mut self.stats),
            Engine::Report(e) => e.push(data, at, &mut out, &mut self.stats),
            Engine::Text(e) => e.push(data, at, &mut out, &mut self.stats),
            Engine::V5(e) => e.push(data, at, &mut out, &mut self.stats),
        }
        self.wrap(out, at)
    }

    /// Applies time-outs (inter-character, stall) as of `now`; returns frames that completes.
    pub fn poll(&mut self, now: Duration) -> Vec<Frame> {
        let mut out = Vec::new();
        match &mut self.engine {
            Engine::Epson(e) => e.poll(now, &mut self.stats),
            Engine::Mms(_) => {}
            Engine::Stream(e) => e.poll(now, &mut out, &mut self.stats),
            Engine::Report(e) => e.poll(now, &mut self.stats),
            Engine::Text(e) => e.poll(now, &mut out),
            Engine::V5(e) => e.poll(now, &mut self.stats),
        }
        self.wrap(out, now)
    }

    /// When `poll` should next be called if no input arrives (None: nothing pending).
    pub fn deadline(&self) -> Option<Duration> {
        match &self.engine {
            Engine::Epson(e) => e.deadline(),
            Engine::Mms(_) => None,
            Engine::Stream(e) => e.deadline(),
            Engine::Report(e) => e.deadline(),
            Engine::Text(e) => e.deadline(),
            Engine::V5(e) => e.deadline(),
        }
    }

    /// End of stream: salvages what it can and drops the rest.
    pub fn finish(&mut self, at: Duration) -> Vec<Frame> {
        let mut out = Vec::new();
        match &mut self.engine {
            Engine::Epson(e) => e.finish(&mut self.stats),
            Engine::Mms(_) => {}
            Engine::Stream(e) => e.finish(&mut out, &mut self.stats),
            Engine::Report(e) => e.finish(&mut self.stats),
            Engine::Text(e) => e.finish(&mut out),
            Engine::V5(e) => e.finish(&mut self.stats),
        }
        self.wrap(out, at)
    }

    fn strip_report_id<'a>(&self, chunk: &'a [u8]) -> &'a [u8] {
        let reports = matches!(
            self.framing,
            Framing::IdtechReport | Framing::ContinuationReport | Framing::MagtekReport
        );
        // MagTek reports may arrive in partial reads: only the first piece carries the id.
        let at_start = match &self.engine {
            Engine::Report(e) => e.at_report_start(),
            _ => true,
        };
        if reports && self.report_id != 0 && at_start {
            if let Some((&first, rest)) = chunk.split_first() {
                if first == self.report_id {
                    return rest;
                }
            }
        }
        chunk
    }

    fn wrap(&mut self, raw: Vec<Vec<u8>>, at: Duration) -> Vec<Frame> {
        self.stats.frames += raw.len() as u64;
        raw.into_iter()
            .map(|b| Frame::new(b, at, self.source.clone()))
            .collect()
    }
}

/// Guesses the framing of profile-less traffic from its bytes: an `STX` or `ViVO` header means
/// a binary stream; otherwise printable text means keyboard lines.
pub fn detect_framing(first_bytes: &[u8]) -> Framing {
    let binary = first_bytes
        .iter()
        .any(|&b| b == 0x02 || (b < 0x20 && b != b'\r' && b != b'\n' && b != b'\t') || b >= 0x80);
    let vivo = first_bytes.windows(4).any(|w| w == b"ViVO");
    if binary || vivo {
        Framing::Stream
    } else {
        Framing::Text
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::{IDTECH_ENHANCED, IDTECH_ORIGINAL, VIVO_EXAMPLE};
}
