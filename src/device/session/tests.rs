//! The driver on fake ports: an in-memory NEO 2 reader over a serial-like or HID-like line.
use std::sync::{Arc, Mutex};

use super::*;
use crate::device::transport::{Chunk, ChunkKind, Transport, Writer};
use crate::protocol::neo2::hid::Reassembler;
use crate::protocol::neo2::{Deframed, Deframer, Response, Status};

#[derive(Default)]
struct Line {
    /// Units the reader has for the host (serial chunks or HID reports).
    to_host: Vec<Vec<u8>>,
    /// Commands the reader received, as names.
    got: Vec<String>,
    /// Stop answering (a wedged reader); cleared by a reopen.
    wedged_after: Option<usize>,
    gone: bool,
}

struct FakeReader {
    line: Arc<Mutex<Line>>,
    hid: bool,
    deframer: Deframer,
    reports: Reassembler,
}

impl Transport for FakeReader {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        let next = {
            let mut l = self.line.lock().unwrap();
            if l.gone {
                return Err(TransportError::Closed);
            }
            (!l.to_host.is_empty()).then(|| l.to_host.remove(0))
        };
        match next {
            Some(b) => Ok(Some(Chunk::new(b, Duration::ZERO, ChunkKind::Hex))),
            None => {
                // Stands in for the OS wait of a real port.
                std::thread::sleep(timeout.min(Duration::from_millis(5)));
                Ok(None)
            }
        }
    }
}

impl Writer for FakeReader {
    fn write_unit(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        let frame = if self.hid {
            assert_eq!(bytes.len(), hid::REPORT_LEN, "whole output reports");
            match self.reports.push(bytes) {
                Some(f) => f.to_vec(),
                None => return Ok(()),
            }
        } else {
            bytes.to_vec()
        };
        let mut l = self.line.lock().unwrap();
        for d in self.deframer.push_commands(&frame) {
            let Deframed::Frame(c) = d else {
                panic!("the driver wrote a bad frame: {d:?}")
            };
            l.got.push(c.name());
            if l.wedged_after.is_some_and(|n| l.got.len() > n) {
                continue;
            }
            let data: &[u8] = if c.command == 0x29 { b"FAKE 1.0" } else { &[] };
            // A transaction start gets the first response only: no card is ever presented.
            let status = if c.command == 0x02 {
                Status::FirstResponse
            } else {
                Status::Ok
            };
            let answer = Response::new(c.command, status, data).encode().unwrap();
            if self.hid {
                for r in hid::segment(&answer) {
                    l.to_host.push(r.to_vec());
                }
            } else {
                // Split the answer in two reads to exercise the deframer.
                let (a, b) = answer.split_at(answer.len() / 2);
                l.to_host.push(a.to_vec());
                l.to_host.push(b.to_vec());
            }
        }
        Ok(())
    }
}

fn config() -> DriverConfig {
    DriverConfig {
        session: SessionConfig {
            response_timeout: Duration::from_millis(300),
            idle_ping: Duration::from_millis(200),
            ..SessionConfig::default()
        },
        backoff_min: Duration::from_millis(20),
        ..DriverConfig::default()
    }
}

fn spawn(line: Arc<Mutex<Line>>, hid: bool) -> (DrivenReader, mpsc::Receiver<DriverEvent>) {
    let (tx, rx) = mpsc::channel();
    let connect = move || {
        let mut l = line.lock().unwrap();
        l.gone = false;
        l.wedged_after = None;
        Ok(Port {
            io: Box::new(FakeReader {
                line: line.clone(),
                hid,
                deframer: Deframer::reader(),
                reports: Reassembler::new(),
            }) as Box<dyn Duplex>,
            hid,
        })
    };
    let r = DrivenReader::spawn_with(connect, config(), move |e| {
        let _ = tx.send(e);
    });
    (r, rx)
}

fn wait_for(rx: &mpsc::Receiver<DriverEvent>, want: impl Fn(&DriverEvent) -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let left = until.saturating_duration_since(Instant::now());
        let e = rx.recv_timeout(left).expect("event within 20 s");
        if want(&e) {
            return;
        }
    }
}

fn ready(e: &DriverEvent) -> bool {
    matches!(e, DriverEvent::Session(Event::Ready { firmware: Some(f) }) if f == "FAKE 1.0")
}

#[test]
fn opens_over_serial_and_over_hid_reports() {
    for hid in [false, true] {
        let line = Arc::new(Mutex::new(Line::default()));
        let (r, rx) = spawn(line.clone(), hid);
        wait_for(&rx, ready);
        assert_eq!(
            line.lock().unwrap().got,
            ["18-01", "29-00", "01-01", "04-00"],
            "hid={hid}"
        );
        r.shutdown();
        wait_for(&rx, |e| *e == DriverEvent::Stopped);
    }
}

#[test]
fn wedged_reader_is_reopened_and_unplug_reconnects() {
    let line = Arc::new(Mutex::new(Line::default()));
    let (r, rx) = spawn(line.clone(), false);
    wait_for(&rx, ready);
    // Wedge: the watchdog's ping goes unanswered.
    line.lock().unwrap().wedged_after = Some(4);
    wait_for(&rx, |e| {
        *e == DriverEvent::Session(Event::State(State::Unresponsive))
    });
    wait_for(&rx, |e| *e == DriverEvent::PortOpened);
    wait_for(&rx, ready);
    // Unplug: reads fail, the driver reconnects and opens the reader again.
    line.lock().unwrap().gone = true;
    wait_for(&rx, |e| {
        *e == DriverEvent::PortError(TransportError::Closed)
    });
    wait_for(&rx, ready);
    assert_eq!(
        r.activate(Activate {
            interfaces: crate::protocol::neo2::Interfaces::ALL,
            timeout: Duration::from_secs(5),
        }),
        Ok(())
    );
    r.shutdown();
    // Shutdown cancelled the transaction before closing: the last command is the cancel.
    let got = line.lock().unwrap().got.clone();
    assert_eq!(
        got.iter().rev().take(2).collect::<Vec<_>>(),
        ["05-01", "02-40"]
    );
}
