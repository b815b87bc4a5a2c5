//! Writes a capture file as chunks arrive, one flushed line per chunk, so a capture cut short
//! (Ctrl-C, unplug) keeps everything read so far.

use std::io::Write;
use std::time::Duration;

use super::format::{chunk_line, header_lines};
use super::Headers;
use crate::device::transport::Chunk;

pub struct Recorder<W: Write> {
    out: W,
    last_at: Option<Duration>,
    chunks: usize,
}

impl<W: Write> Recorder<W> {
    pub fn new(mut out: W, headers: &Headers) -> std::io::Result<Self> {
        out.write_all(header_lines(headers).as_bytes())?;
        out.flush()?;
        Ok(Recorder {
            out,
            last_at: None,
            chunks: 0,
        })
    }

    /// Appends a chunk; its delay is the time since the previous chunk (0 for the first).
    pub fn record(&mut self, chunk: &Chunk) -> std::io::Result<()> {
        let delay = match self.last_at {
            Some(prev) => chunk.at.saturating_sub(prev),
            None => Duration::ZERO,
        };
        self.last_at = Some(chunk.at);
        let line = zeroize::Zeroizing::new(chunk_line(delay, chunk.kind, &chunk.bytes));
        self.out.write_all(line.as_bytes())?;
        self.out.flush()?;
        self.chunks += 1;
        Ok(())
    }

    pub fn chunks(&self) -> usize {
        self.chunks
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}
