//! Epson ESC/POS `FS a` replies on a serial line (micr.md §2): `0x5F`, one status byte (any
//! value, CR or NUL included), the MICR data, NUL. A frame is the whole reply, NUL included,
//! so the decoder sees the status as the printer sent it. Bytes before a header are skipped.

use std::time::Duration;

use zeroize::Zeroize;

use super::FramerStats;
use crate::parse::micr::EPSON_HEADER;

/// Longest reply kept: a MICR line is 65 characters; anything far past that is no reply.
const MAX_REPLY: usize = 256;

pub(super) struct EpsonEngine {
    buf: Vec<u8>,
    last_at: Option<Duration>,
    stall_timeout: Duration,
}

impl EpsonEngine {
    pub(super) fn new(stall_timeout: Duration) -> Self {
        EpsonEngine {
            buf: Vec::with_capacity(MAX_REPLY),
            last_at: None,
            stall_timeout,
        }
    }

    pub(super) fn push(
        &mut self,
        data: &[u8],
        at: Duration,
        out: &mut Vec<Vec<u8>>,
        stats: &mut FramerStats,
    ) {
        self.poll(at, stats);
        self.last_at = Some(at);
        for &b in data {
            match self.buf.len() {
                0 if b == EPSON_HEADER => self.buf.push(b),
                0 => {
                    if b != 0 {
                        stats.garbage_bytes += 1;
                    }
                }
                // The status byte: any value.
                1 => self.buf.push(b),
                _ => {
                    self.buf.push(b);
                    if b == 0 {
                        out.push(self.buf.clone());
                        self.clear();
                    } else if self.buf.len() >= MAX_REPLY {
                        stats.dropped_partials += 1;
                        self.clear();
                    }
                }
            }
        }
    }

    /// A reply left without its NUL past the stall time-out is dropped.
    pub(super) fn poll(&mut self, now: Duration, stats: &mut FramerStats) {
        if let (false, Some(t)) = (self.buf.is_empty(), self.last_at) {
            if now.saturating_sub(t) >= self.stall_timeout {
                stats.dropped_partials += 1;
                self.clear();
            }
        }
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        if self.buf.is_empty() {
            return None;
        }
        self.last_at.map(|t| t.saturating_add(self.stall_timeout))
    }

    pub(super) fn finish(&mut self, stats: &mut FramerStats) {
        if !self.buf.is_empty() {
            stats.dropped_partials += 1;
        }
        self.clear();
    }

    fn clear(&mut self) {
        self.buf.zeroize();
        self.buf.clear();
    }
}

impl Drop for EpsonEngine {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}
