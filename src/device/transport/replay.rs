//! Replays a capture file's chunks, with their original delays or none.

use std::time::{Duration, Instant};

use super::{Chunk, Transport, TransportError};
use crate::capture::Capture;

pub struct ReplayTransport {
    chunks: std::vec::IntoIter<Chunk>,
    real_time: bool,
    started: Instant,
}

impl ReplayTransport {
    /// `real_time`: sleep each chunk's recorded delay; otherwise deliver at once (`--no-delay`).
    /// Chunk times stay the recorded ones either way, so the framer sees the same timing.
    pub fn new(capture: &Capture, real_time: bool) -> Self {
        ReplayTransport {
            chunks: capture.timed_chunks().into_iter(),
            real_time,
            started: Instant::now(),
        }
    }
}

impl Transport for ReplayTransport {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        let Some(chunk) = self.chunks.as_slice().first() else {
            return Err(TransportError::Closed);
        };
        if self.real_time {
            let due = chunk.at;
            let now = self.started.elapsed();
            if due > now {
                let wait = due - now;
                if wait > timeout {
                    std::thread::sleep(timeout);
                    return Ok(None);
                }
                std::thread::sleep(wait);
            }
        }
        Ok(self.chunks.next())
    }
}
