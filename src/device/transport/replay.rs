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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_chunks_in_order_then_closes() {
        let c = Capture::parse("# cardlane capture v1\n+0ms hex 0102\n+3ms text ab\\r\n").unwrap();
        for real_time in [false, true] {
            let mut t = ReplayTransport::new(&c, real_time);
            let a = t.read_chunk(Duration::from_secs(1)).unwrap().unwrap();
            assert_eq!(a.bytes.as_slice(), &[1, 2]);
            let b = t.read_chunk(Duration::from_secs(1)).unwrap().unwrap();
            assert_eq!(
                (b.bytes.as_slice(), b.at),
                (&b"ab\r"[..], Duration::from_millis(3))
            );
            assert_eq!(
                t.read_chunk(Duration::from_secs(1)),
                Err(TransportError::Closed)
            );
        }
    }
}
