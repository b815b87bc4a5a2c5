//! Binary stream engine: ID TECH `02 LenL LenH data LRC SUM 03` and `ViVOtech2\0` frames
//! (also `ViVOpayV2\0`/`ViVOpayV3\0`) anywhere in a byte stream, with resynchronisation.
//!
//! A candidate start that fails a structural check (length bound, ETX, LRC, checksum, CRC) is
//! skipped by one byte, so a good frame right after garbage is still found. A candidate that
//! claims more bytes than have arrived is held until they arrive, the stream stalls, or it ends.

use std::time::Duration;

use zeroize::Zeroize;

use super::FramerStats;

/// Largest ID TECH card-data length accepted (enhanced frames are well under 1 KiB).
pub const STX_MAX_LEN: usize = 4096;
/// Largest ViVOtech2 data length accepted.
pub const VIVO_MAX_LEN: usize = 16384;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const VIVO_HEADERS: [&[u8; 10]; 3] = [b"ViVOtech2\0", b"ViVOpayV3\0", b"ViVOpayV2\0"];
/// header(10) + command + status + length(2).
const VIVO_FIXED: usize = 14;

pub(super) struct StreamEngine {
    buf: Vec<u8>,
    last_at: Option<Duration>,
    stall: Duration,
}

enum Candidate {
    /// A whole, valid frame of this many bytes starts at the front.
    Complete(usize),
    /// The front could be the start of a frame still arriving.
    Incomplete,
    /// The front byte cannot start a valid frame.
    Invalid,
    /// A whole frame is at the front but fails its LRC, checksum or CRC: a bad read. Skipped
    /// like `Invalid` (one byte), and counted.
    BadCheck(&'static str),
}

impl StreamEngine {
    pub(super) fn new(stall: Duration) -> Self {
        StreamEngine {
            buf: Vec::with_capacity(2 * STX_MAX_LEN),
            last_at: None,
            stall,
        }
    }

    pub(super) fn push(
        &mut self,
        data: &[u8],
        at: Duration,
        out: &mut Vec<Vec<u8>>,
        stats: &mut FramerStats,
    ) {
        // A partial frame that sat past the stall time is stale: resync before new bytes.
        if self.is_stale(at) {
            self.resync_all(out, stats);
        }
        self.buf.extend_from_slice(data);
        self.last_at = Some(at);
        self.scan(out, stats);
    }

    pub(super) fn poll(&mut self, now: Duration, out: &mut Vec<Vec<u8>>, stats: &mut FramerStats) {
        if self.is_stale(now) {
            self.resync_all(out, stats);
        }
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        if self.buf.is_empty() {
            return None;
        }
        self.last_at.map(|t| t.saturating_add(self.stall))
    }

    pub(super) fn finish(&mut self, out: &mut Vec<Vec<u8>>, stats: &mut FramerStats) {
        self.resync_all(out, stats);
    }

    fn is_stale(&self, now: Duration) -> bool {
        match (self.buf.is_empty(), self.last_at) {
            (false, Some(t)) => now.saturating_sub(t) >= self.stall,
            _ => false,
        }
    }

    /// Emits every complete frame at the front; stops at an incomplete candidate.
    fn scan(&mut self, out: &mut Vec<Vec<u8>>, stats: &mut FramerStats) {
        let mut start = 0usize;
        loop {
            let rest = self.buf.get(start..).unwrap_or(&[]);
            // Skip to the next byte that could start a frame.
            let skip = rest
                .iter()
                .position(|&b| b == STX || b == b'V')
                .unwrap_or(rest.len());
            count_garbage(rest.get(..skip).unwrap_or(&[]), stats);
            start += skip;
            let rest = self.buf.get(start..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            match candidate(rest) {
                Candidate::Complete(n) => {
                    out.push(rest.get(..n).unwrap_or(&[]).to_vec());
                    start += n;
                }
                Candidate::Incomplete => break,
                Candidate::Invalid => {
                    count_garbage(rest.get(..1).unwrap_or(&[]), stats);
                    start += 1;
                }
                Candidate::BadCheck(code) => {
                    match code {
                        "bad-lrc" => stats.bad_lrc += 1,
                        "bad-checksum" => stats.bad_checksum += 1,
                        _ => stats.bad_crc += 1,
                    }
                    count_garbage(rest.get(..1).unwrap_or(&[]), stats);
                    start += 1;
                }
            }
        }
        self.consume(start);
    }

    /// Nothing more will arrive for what is buffered: give up on incomplete candidates one byte
    /// at a time, salvaging any complete frame that was hiding behind them.
    fn resync_all(&mut self, out: &mut Vec<Vec<u8>>, stats: &mut FramerStats) {
        while !self.buf.is_empty() {
            self.scan(out, stats);
            if self.buf.is_empty() {
                break;
            }
            // The front is an incomplete candidate: drop its first byte and rescan.
            stats.dropped_partials += 1;
            count_garbage(self.buf.get(..1).unwrap_or(&[]), stats);
            self.consume(1);
        }
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        // Zero what is discarded before the shift so it does not linger in the capacity.
        if let Some(head) = self.buf.get_mut(..n) {
            head.zeroize();
        }
        self.buf.drain(..n);
    }
}

impl Drop for StreamEngine {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}

fn count_garbage(bytes: &[u8], stats: &mut FramerStats) {
    stats.garbage_bytes += bytes.iter().filter(|&&b| b != 0).count() as u64;
}

fn candidate(buf: &[u8]) -> Candidate {
    match buf.first() {
        Some(&STX) => stx_candidate(buf),
        Some(&b'V') => vivo_candidate(buf),
        _ => Candidate::Invalid,
    }
}

fn stx_candidate(buf: &[u8]) -> Candidate {
    let (Some(&lo), Some(&hi)) = (buf.get(1), buf.get(2)) else {
        return Candidate::Incomplete;
    };
    let len = usize::from(u16::from_le_bytes([lo, hi]));
    if len == 0 || len > STX_MAX_LEN {
        return Candidate::Invalid;
    }
    let total = len + 6;
    let Some(frame) = buf.get(..total) else {
        return Candidate::Incomplete;
    };
    let data = frame.get(3..3 + len).unwrap_or(&[]);
    let lrc = data.iter().fold(0u8, |a, &b| a ^ b);
    let sum = data.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    let tail = frame.get(3 + len..).unwrap_or(&[]);
    match tail {
        [l, s, ETX] if *l == lrc && *s == sum => Candidate::Complete(total),
        [l, _, ETX] if *l != lrc => Candidate::BadCheck("bad-lrc"),
        [_, _, ETX] => Candidate::BadCheck("bad-checksum"),
        _ => Candidate::Invalid,
    }
}

fn vivo_candidate(buf: &[u8]) -> Candidate {
    let head_len = buf.len().min(10);
    let head = buf.get(..head_len).unwrap_or(&[]);
    let Some(header) = VIVO_HEADERS.iter().find(|h| h.starts_with(head)) else {
        return Candidate::Invalid;
    };
    if head_len < header.len() {
        return Candidate::Incomplete;
    }
    let (Some(&hi), Some(&lo)) = (buf.get(12), buf.get(13)) else {
        return Candidate::Incomplete;
    };
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    if len > VIVO_MAX_LEN {
        return Candidate::Invalid;
    }
    let total = VIVO_FIXED + len + 2;
    let Some(frame) = buf.get(..total) else {
        return Candidate::Incomplete;
    };
    let body = frame.get(..VIVO_FIXED + len).unwrap_or(&[]);
    let crc = crc16_ccitt_false(body).to_be_bytes();
    let sent = frame.get(VIVO_FIXED + len..).unwrap_or(&[]);
    // Reader-to-host ViVOtech2 sends the CRC high byte first; older firmware sends it low first.
    if sent == crc || sent == [crc[1], crc[0]] {
        Candidate::Complete(total)
    } else {
        // The header and length held: a frame whose data got damaged.
        Candidate::BadCheck("bad-crc")
    }
}

/// ViVOtech2 frames carry CRC-16/CCITT-FALSE; the decoder's implementation is the one truth.
pub use crate::parse::vivo::crc16 as crc16_ccitt_false;
