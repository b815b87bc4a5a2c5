use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::*;
use crate::device::framer::tests_support::{IDTECH_ENHANCED, VIVO_EXAMPLE};
use crate::device::profile::Profiles;
use crate::device::transport::{Chunk, ChunkKind, Transport};

/// Plays back recorded reads, then fails with `end`.
struct Scripted {
    reads: VecDeque<Vec<u8>>,
    end: TransportError,
}

impl Transport for Scripted {
    fn read_chunk(&mut self, _timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        match self.reads.pop_front() {
            Some(b) => Ok(Some(Chunk::new(b, Duration::ZERO, ChunkKind::Hex))),
            None => Err(self.end.clone()),
        }
    }
}

/// Each connect takes the next scripted outcome: a transport or an error. When the script runs
/// out it reports NotFound forever.
struct FakeConnector {
    script: Arc<Mutex<VecDeque<Result<Scripted, TransportError>>>>,
}

impl Connector for FakeConnector {
    fn connect(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        let next = self.script.lock().ok().and_then(|mut s| s.pop_front());
        match next {
            Some(Ok(t)) => Ok(Box::new(t)),
            Some(Err(e)) => Err(e),
            None => Err(TransportError::NotFound),
        }
    }
    fn source(&self) -> String {
        String::from("fake:reader")
    }
}

fn reports(frame_hex: &str, size: usize) -> VecDeque<Vec<u8>> {
    let mut report = hex::decode(frame_hex).unwrap();
    let whole = report.len().div_ceil(size) * size;
    report.resize(whole, 0);
    report.chunks(size).map(<[u8]>::to_vec).collect()
}

fn fast() -> ManagerConfig {
    ManagerConfig {
        poll_interval: Duration::from_millis(10),
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        read_timeout: Duration::from_millis(50),
    }
}

#[test]
fn hid_reports_reassemble_and_reader_survives_failure_and_return() {
    let profiles = Profiles::embedded().unwrap();
    let profile = profiles.get("idtech-augusta-hid").cloned();
    let script = VecDeque::from([
        // Plugged in: a swipe in 64-byte continuation reports, then the cable is pulled.
        Ok(Scripted {
            reads: reports(IDTECH_ENHANCED, 64),
            end: TransportError::Closed,
        }),
        // Gone for two attempts, then no permission once (udev), then back.
        Err(TransportError::NotFound),
        Err(TransportError::NotFound),
        Err(TransportError::PermissionDenied),
        Ok(Scripted {
            reads: reports(VIVO_EXAMPLE, 64),
            end: TransportError::Io("boom".into()),
        }),
    ]);
    let connector = FakeConnector {
        script: Arc::new(Mutex::new(script)),
    };
    let (tx, mut rx) = mpsc::channel(64);
    let (mut stop, handle) =
        spawn_reader(Box::new(connector), profile, TransportKind::Hid, fast(), tx).unwrap();
    let mut got = Vec::new();
    while got.len() < 9 {
        match rx.blocking_recv() {
            Some(e) => got.push(e),
            None => break,
        }
    }
    stop.stop();
    drop(rx);
    handle.join().unwrap();
    let src = String::from("fake:reader");
    let frame = |h: &str| {
        let want = hex::decode(h).unwrap();
        got.iter()
            .any(|e| matches!(e, DeviceEvent::Frame(f) if f.bytes.as_slice() == want.as_slice()))
    };
    assert!(frame(IDTECH_ENHANCED), "{got:?}");
    assert!(frame(VIVO_EXAMPLE), "{got:?}");
    let kinds: Vec<String> = got
        .iter()
        .map(|e| match e {
            DeviceEvent::Attached { .. } => "attached".to_string(),
            DeviceEvent::Detached { reason, .. } => format!("detached:{}", reason.code()),
            DeviceEvent::Error { error, .. } => format!("error:{}", error.code()),
            DeviceEvent::Frame(_) => "frame".to_string(),
            DeviceEvent::Unreadable { code, .. } => format!("unreadable:{code}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "attached",
            "frame",
            "detached:closed",
            // Two NotFound in a row are reported once.
            "error:not-found",
            "error:permission-denied",
            "attached",
            "frame",
            "detached:io",
            "error:not-found",
        ]
    );
    let hint = got.iter().find_map(|e| match e {
        DeviceEvent::Error {
            error: TransportError::PermissionDenied,
            hint,
            source,
        } => {
            assert_eq!(source, &src);
            hint.clone()
        }
        _ => None,
    });
    let hint = hint.unwrap_or_default();
    assert!(
        hint.contains("SUBSYSTEM==\"hidraw\"") && hint.contains("0acd"),
        "{hint}"
    );
}

#[test]
fn watcher_reports_arrival_and_departure() {
    let info = |sel: &str| DeviceInfo {
        selector: sel.to_string(),
        profile: Some("idtech-securemag-hid".into()),
        name: String::new(),
        transport: "hid".into(),
        vid: "0ACD".into(),
        pid: "2010".into(),
        path: String::new(),
        problem: None,
        hint: None,
    };
    let rounds = Arc::new(Mutex::new(VecDeque::from([
        vec![],
        vec![info("hidraw:/dev/hidraw1")],
        vec![info("hidraw:/dev/hidraw1"), info("hidraw:/dev/hidraw2")],
        vec![info("hidraw:/dev/hidraw2")],
    ])));
    let list = move || {
        rounds
            .lock()
            .ok()
            .and_then(|mut r| r.pop_front())
            .unwrap_or_default()
    };
    let (tx, mut rx) = mpsc::channel(16);
    let (mut stop, handle) = spawn_watcher(list, Duration::from_millis(1), tx).unwrap();
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(rx.blocking_recv().unwrap());
    }
    stop.stop();
    drop(rx);
    handle.join().unwrap();
    let want = [
        ("a", "hidraw:/dev/hidraw1"),
        ("a", "hidraw:/dev/hidraw2"),
        ("d", "hidraw:/dev/hidraw1"),
        ("d", "hidraw:/dev/hidraw2"),
    ];
    for (e, (k, s)) in got.iter().zip(want) {
        match (e, k) {
            (DeviceEvent::Attached { source, .. }, "a")
            | (DeviceEvent::Detached { source, .. }, "d") => assert_eq!(source, s),
            other => panic!("{other:?}"),
        }
    }
}
