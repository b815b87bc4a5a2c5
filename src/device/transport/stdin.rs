//! Keyboard text typed or piped into standard input (lab use).

use std::io::Read;
use std::time::{Duration, Instant};

use super::{Chunk, ChunkKind, Transport, TransportError};

pub struct StdinTransport {
    opened: Instant,
    buf: Vec<u8>,
}

impl StdinTransport {
    pub fn open() -> Self {
        StdinTransport {
            opened: Instant::now(),
            buf: vec![0; 4096],
        }
    }
}

impl Default for StdinTransport {
    fn default() -> Self {
        Self::open()
    }
}

impl Transport for StdinTransport {
    /// Blocks until input arrives (standard input has no read time-out); end of input is `Closed`.
    fn read_chunk(&mut self, _timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        match std::io::stdin().lock().read(&mut self.buf) {
            Ok(0) => Err(TransportError::Closed),
            Ok(n) => {
                let bytes = self.buf.get(..n).unwrap_or(&[]).to_vec();
                zeroize::Zeroize::zeroize(self.buf.as_mut_slice());
                Ok(Some(Chunk::new(
                    bytes,
                    self.opened.elapsed(),
                    ChunkKind::Text,
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(TransportError::from_io(&e)),
        }
    }
}
