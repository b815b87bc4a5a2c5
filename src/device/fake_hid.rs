//! A fake HID transport for in-process tests and `reader-sim`'s MagTek mode (the probe-rs "fake
//! probe" idea): it carries output reports (report id 0, then a 64-byte MMS packet) to a
//! simulated DynaFlex and hands its answers back as input reports, as hidraw would. A PTY
//! cannot carry HID reports, so the simulated reader lives in the same process.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::transport::{Chunk, ChunkKind, Transport, TransportError, Writer};
use crate::protocol::mms::packet::{segment, Reassembler, REPORT_LEN};
use crate::protocol::mms::sim::SimDynaflex;

/// What the fake reader shares with the test or CLI that made it.
pub struct FakeLine {
    pub reader: SimDynaflex,
    /// Input reports waiting for the host.
    to_host: VecDeque<Vec<u8>>,
    /// A card is presented this long after a transaction starts (`None`: never).
    pub present_after: Option<Duration>,
    started_at: Option<Instant>,
    /// The reader ignores everything (a wrongly framed host, a wedged reader).
    pub deaf: bool,
    /// Unplugged: reads and writes fail with `Closed`.
    pub gone: bool,
    /// Every input report handed to the host, in order (what `cardlane capture` would record).
    pub delivered: Vec<Vec<u8>>,
}

impl FakeLine {
    pub fn new(reader: SimDynaflex, present_after: Option<Duration>) -> Arc<Mutex<FakeLine>> {
        Arc::new(Mutex::new(FakeLine {
            reader,
            to_host: VecDeque::new(),
            present_after,
            started_at: None,
            deaf: false,
            gone: false,
            delivered: Vec::new(),
        }))
    }
}

fn lock(l: &Mutex<FakeLine>) -> MutexGuard<'_, FakeLine> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host's end of the fake line.
pub struct FakeDynaflexPort {
    line: Arc<Mutex<FakeLine>>,
    from_host: Reassembler,
    opened: Instant,
}

impl FakeDynaflexPort {
    pub fn new(line: Arc<Mutex<FakeLine>>) -> FakeDynaflexPort {
        FakeDynaflexPort {
            line,
            from_host: Reassembler::new(),
            opened: Instant::now(),
        }
    }
}

fn queue(l: &mut FakeLine, messages: Vec<Vec<u8>>) {
    for m in messages {
        l.to_host.extend(segment(&m, REPORT_LEN));
    }
}

impl Transport for FakeDynaflexPort {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        let next = {
            let mut l = lock(&self.line);
            if l.gone {
                return Err(TransportError::Closed);
            }
            let due = match (l.started_at, l.present_after) {
                (Some(at), Some(after)) => Instant::now() >= at + after,
                _ => false,
            };
            if due && l.reader.running() {
                l.started_at = None;
                let notes = l
                    .reader
                    .present()
                    .map_err(|e| TransportError::Io(e.to_string()))?;
                queue(&mut l, notes);
            }
            let next = l.to_host.pop_front();
            if let Some(r) = &next {
                l.delivered.push(r.clone());
            }
            next
        };
        match next {
            Some(r) => Ok(Some(Chunk::new(r, self.opened.elapsed(), ChunkKind::Hex))),
            None => {
                // Stands in for the OS wait of a real port (bounded: the caller loops).
                std::thread::sleep(timeout.min(Duration::from_millis(5)));
                Ok(None)
            }
        }
    }
}

impl Writer for FakeDynaflexPort {
    fn write_unit(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let mut l = lock(&self.line);
        if l.gone {
            return Err(TransportError::Closed);
        }
        // Report id 0 first, then one 64-byte packet.
        let Some((&0, packet)) = bytes.split_first() else {
            return Err(TransportError::Io(
                "output report without report id 0".into(),
            ));
        };
        if packet.len() != REPORT_LEN {
            return Err(TransportError::Io("output report is not 64 bytes".into()));
        }
        let Ok(Some(message)) = self.from_host.push(packet) else {
            return Ok(());
        };
        if l.deaf {
            return Ok(());
        }
        let was_running = l.reader.running();
        let replies = l.reader.handle(&message);
        if !was_running && l.reader.running() {
            l.started_at = Some(Instant::now());
        }
        queue(&mut l, replies);
        Ok(())
    }
}
