//! Keyboard text engine: a message runs up to CR (or LF, or the profile's suffix); a pause longer
//! than the inter-character time-out also ends it, for readers configured without a terminator.
//! The profile's prefix is stripped. Empty lines are skipped.

use std::time::Duration;

use zeroize::Zeroize;

use super::FramerStats;

pub(super) struct TextEngine {
    buf: Vec<u8>,
    last_at: Option<Duration>,
    char_timeout: Duration,
    prefix: Vec<u8>,
    /// A terminator other than CR/LF (those always end a line).
    suffix: Vec<u8>,
    pad: Option<u8>,
}

impl TextEngine {
    pub(super) fn new(
        char_timeout: Duration,
        prefix: Vec<u8>,
        suffix: Vec<u8>,
        pad: Option<u8>,
    ) -> Self {
        let suffix = if suffix.iter().all(|&b| b == b'\r' || b == b'\n') {
            Vec::new()
        } else {
            // Only the part before a CR/LF matters: the CR/LF ends the line by itself.
            suffix
                .iter()
                .copied()
                .take_while(|&b| b != b'\r' && b != b'\n')
                .collect()
        };
        TextEngine {
            buf: Vec::with_capacity(1024),
            last_at: None,
            char_timeout,
            prefix,
            suffix,
            pad,
        }
    }

    pub(super) fn push(
        &mut self,
        data: &[u8],
        at: Duration,
        out: &mut Vec<Vec<u8>>,
        _stats: &mut FramerStats,
    ) {
        self.poll(at, out);
        self.last_at = Some(at);
        for &b in data {
            if b == b'\r' || b == b'\n' {
                self.emit(out);
                continue;
            }
            self.buf.push(b);
            if !self.suffix.is_empty() && self.buf.ends_with(&self.suffix) {
                let keep = self.buf.len() - self.suffix.len();
                self.buf.truncate(keep);
                self.emit(out);
            }
        }
    }

    pub(super) fn poll(&mut self, now: Duration, out: &mut Vec<Vec<u8>>) {
        if let (false, Some(t)) = (self.buf.is_empty(), self.last_at) {
            if now.saturating_sub(t) >= self.char_timeout {
                self.emit(out);
            }
        }
    }

    pub(super) fn deadline(&self) -> Option<Duration> {
        if self.buf.is_empty() {
            return None;
        }
        self.last_at.map(|t| t.saturating_add(self.char_timeout))
    }

    pub(super) fn finish(&mut self, out: &mut Vec<Vec<u8>>) {
        self.emit(out);
    }

    fn emit(&mut self, out: &mut Vec<Vec<u8>>) {
        let body = self
            .buf
            .strip_prefix(self.prefix.as_slice())
            .filter(|_| !self.prefix.is_empty())
            .unwrap_or(&self.buf);
        let body = match self.pad {
            Some(p) => {
                let start = body.iter().position(|&b| b != p).unwrap_or(body.len());
                let end = body.iter().rposition(|&b| b != p).map_or(start, |i| i + 1);
                body.get(start..end.max(start)).unwrap_or(&[])
            }
            None => body,
        };
        if !body.is_empty() {
            out.push(body.to_vec());
        }
        self.buf.zeroize();
        self.buf.clear();
    }
}

impl Drop for TextEngine {
    fn drop(&mut self) {
        self.buf.zeroize();
    }
}
