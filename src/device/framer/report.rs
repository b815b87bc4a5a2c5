//! Fixed-size report engine (MagTek HID layout): every `size` bytes make one frame. Partial reads
//! (a buffer smaller than the report) are reassembled; a partial left past the stall time is
//! dropped so the next report starts clean.

use std::time::Duration;

use zeroize::Zeroize;

use super::FramerStats;

pub(super) struct ReportEngine {
    size: usize,
    buf: Vec<u8>,
    last_at: Option<Duration>,
    stall: Duration,
}

impl ReportEngine {
    pub(super) fn new(size: usize, stall: Duration) -> Self {
        ReportEngine {
            size: size.max(1),
            buf: Vec::with_capacity(size.max(1)),
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
        self.poll(at, stats);
        self.last_at = Some(at);
        for piece in data.chunks(self.size) {
            let room = self.size - self.buf.len();
            let (now, later) = piece.split_at(room.min(piece.len()));
            self.buf.extend_from_slice(now);
            if self.buf.len() == self.size {
                out.push(self.buf.clone());
                self.buf.zeroize();
                self.buf.clear();
            }
            self.buf.extend_from_slice(later);
        }
    }

    pub(super) fn poll(&mut self, now: Duration, stats: &mut FramerStats) {
        if let (false, Some(t)) = (self.buf.is_empty(), self.last_at) {
            if now.saturating_sub(t) >= self.stall {
                self.finish(stats);
            }
        }
    }

    pub(super) fn at_report_start(&self) -> bool {
        self.buf.is_empty()
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        if self.buf.is_empty() {
            return None;
        }
        self.last_at.map(|t| t.saturating_add(self.stall))
    }

    pub(super) fn finish(&mut self, stats: &mut FramerStats) {
        if !self.buf.is_empty() {
            stats.dropped_partials += 1;
            self.buf.zeroize();
            self.buf.clear();
        }
    }
}

impl Drop for ReportEngine {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}
