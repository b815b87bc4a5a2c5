//! A fake HID transport for in-process tests and `reader-sim`'s MagTek mode (the probe-rs "fake
//! probe" idea): it carries output reports and feature reports to a simulated reader and hands
//! its answers back as input reports, as hidraw would. A PTY cannot carry HID reports, so the
//! simulated reader lives in the same process. Two readers plug in through [`SimHid`]: the
//! DynaFlex (MMS packets in output reports, report id 0) and the eDynamo (commands in feature
//! reports, notifications in input report 2).
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::transport::{Chunk, ChunkKind, FeatureReports, Transport, TransportError, Writer};
use crate::protocol::magtek_v5::sim::SimEdynamo;
use crate::protocol::mms::packet::{segment, REPORT_LEN};
use crate::protocol::mms::sim::SimDynaflex;

/// A simulated HID reader as the fake port sees it. Reports carry no report id unless said.
pub trait SimHid: Send {
    /// A transaction runs (a presented card would be read).
    fn running(&self) -> bool;
    /// A card is presented: the input reports the reader sends.
    fn present(&mut self) -> Result<Vec<Vec<u8>>, TransportError>;
    /// One output report, report id first: the input reports in reply.
    fn output_report(&mut self, report: &[u8]) -> Result<Vec<Vec<u8>>, TransportError>;
    /// One feature report set (without its id): input reports it causes.
    fn set_feature(&mut self, report: &[u8]) -> Result<Vec<Vec<u8>>, TransportError>;
    /// The feature report a get returns (without its id).
    fn get_feature(&mut self) -> Result<Vec<u8>, TransportError>;
}

fn no_features() -> TransportError {
    TransportError::Io("this reader takes no feature reports".into())
}

impl SimHid for SimDynaflex {
    fn running(&self) -> bool {
        SimDynaflex::running(self)
    }
    fn present(&mut self) -> Result<Vec<Vec<u8>>, TransportError> {
        let messages = SimDynaflex::present(self).map_err(|e| TransportError::Io(e.to_string()))?;
        Ok(packets(messages))
    }
    fn output_report(&mut self, report: &[u8]) -> Result<Vec<Vec<u8>>, TransportError> {
        // Report id 0 first, then one 64-byte packet.
        let Some((&0, packet)) = report.split_first() else {
            return Err(TransportError::Io(
                "output report without report id 0".into(),
            ));
        };
        if packet.len() != REPORT_LEN {
            return Err(TransportError::Io("output report is not 64 bytes".into()));
        }
        Ok(packets(self.handle_packet(packet)))
    }
    fn set_feature(&mut self, _: &[u8]) -> Result<Vec<Vec<u8>>, TransportError> {
        Err(no_features())
    }
    fn get_feature(&mut self) -> Result<Vec<u8>, TransportError> {
        Err(no_features())
    }
}

/// MMS messages as the 64-byte input reports (report id 0: none sent) that carry them.
fn packets(messages: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    messages
        .iter()
        .flat_map(|m| segment(m, REPORT_LEN))
        .collect()
}

impl SimHid for SimEdynamo {
    fn running(&self) -> bool {
        SimEdynamo::running(self)
    }
    fn present(&mut self) -> Result<Vec<Vec<u8>>, TransportError> {
        SimEdynamo::present(self).map_err(|e| TransportError::Io(e.to_string()))
    }
    fn output_report(&mut self, _: &[u8]) -> Result<Vec<Vec<u8>>, TransportError> {
        Err(TransportError::Io(
            "an eDynamo takes commands as feature reports".into(),
        ))
    }
    fn set_feature(&mut self, report: &[u8]) -> Result<Vec<Vec<u8>>, TransportError> {
        Ok(SimEdynamo::set_feature(self, report))
    }
    fn get_feature(&mut self) -> Result<Vec<u8>, TransportError> {
        Ok(SimEdynamo::get_feature(self))
    }
}

/// What the fake reader shares with the test or CLI that made it.
pub struct FakeLine<R = SimDynaflex> {
    pub reader: R,
    /// Input reports waiting for the host.
    to_host: VecDeque<Vec<u8>>,
    /// A card is presented this long after a transaction starts (`None`: never).
    pub present_after: Option<Duration>,
    started_at: Option<Instant>,
    /// The reader ignores everything (a wrongly framed host, a wedged reader): output reports
    /// vanish, feature reports fail as a control transfer nobody answers does.
    pub deaf: bool,
    /// Unplugged: reads and writes fail with `Closed`.
    pub gone: bool,
    /// The report id feature reports must carry.
    pub feature_id: u8,
    /// Every input report handed to the host, in order (what `cardlane capture` would record).
    pub delivered: Vec<Vec<u8>>,
}

impl<R: SimHid> FakeLine<R> {
    pub fn new(reader: R, present_after: Option<Duration>) -> Arc<Mutex<FakeLine<R>>> {
        Arc::new(Mutex::new(FakeLine {
            reader,
            to_host: VecDeque::new(),
            present_after,
            started_at: None,
            deaf: false,
            gone: false,
            feature_id: 0,
            delivered: Vec::new(),
        }))
    }

    /// Presents a card now (whatever `present_after` says).
    pub fn present_now(&mut self) -> Result<(), TransportError> {
        let reports = self.reader.present()?;
        self.to_host.extend(reports);
        Ok(())
    }

    /// Runs `f` on the reader and queues what it sends; notes a transaction's start.
    fn with_reader(
        &mut self,
        f: impl FnOnce(&mut R) -> Result<Vec<Vec<u8>>, TransportError>,
    ) -> Result<(), TransportError> {
        let was_running = self.reader.running();
        let replies = f(&mut self.reader)?;
        if !was_running && self.reader.running() {
            self.started_at = Some(Instant::now());
        }
        self.to_host.extend(replies);
        Ok(())
    }
}

fn lock<R>(l: &Mutex<FakeLine<R>>) -> MutexGuard<'_, FakeLine<R>> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// The host's end of the fake line.
pub struct FakeHidPort<R = SimDynaflex> {
    line: Arc<Mutex<FakeLine<R>>>,
    opened: Instant,
}

/// The DynaFlex's port (the name tests and `reader-sim` knew first).
pub type FakeDynaflexPort = FakeHidPort<SimDynaflex>;

impl<R: SimHid> FakeHidPort<R> {
    pub fn new(line: Arc<Mutex<FakeLine<R>>>) -> FakeHidPort<R> {
        FakeHidPort {
            line,
            opened: Instant::now(),
        }
    }
}

impl<R: SimHid> Transport for FakeHidPort<R> {
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
                l.present_now()?;
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
    fn as_features(&mut self) -> Option<&mut dyn FeatureReports> {
        Some(self)
    }
}

impl<R: SimHid> Writer for FakeHidPort<R> {
    fn write_unit(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let mut l = lock(&self.line);
        if l.gone {
            return Err(TransportError::Closed);
        }
        if l.deaf {
            return Ok(());
        }
        l.with_reader(|r| r.output_report(bytes))
    }
}

impl<R: SimHid> FeatureReports for FakeHidPort<R> {
    fn set_feature(&mut self, report: &[u8]) -> Result<(), TransportError> {
        let mut l = lock(&self.line);
        if l.gone {
            return Err(TransportError::Closed);
        }
        let Some((&id, body)) = report.split_first() else {
            return Err(TransportError::Io("empty feature report".into()));
        };
        if id != l.feature_id {
            return Err(TransportError::Io("wrong feature report id".into()));
        }
        if l.deaf {
            // What hidraw gives for a control transfer the device never completes.
            return Err(TransportError::Io("timed out".into()));
        }
        l.with_reader(|r| r.set_feature(body))
    }

    fn get_feature(&mut self, report_id: u8, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut l = lock(&self.line);
        if l.gone {
            return Err(TransportError::Closed);
        }
        if report_id != l.feature_id {
            return Err(TransportError::Io("wrong feature report id".into()));
        }
        if l.deaf {
            return Err(TransportError::Io("timed out".into()));
        }
        let r = l.reader.get_feature()?;
        let n = (r.len() + 1).min(buf.len());
        if let Some((first, rest)) = buf.split_first_mut() {
            *first = report_id;
            let k = n.saturating_sub(1);
            rest[..k].copy_from_slice(&r[..k]);
        }
        Ok(n)
    }
}
