//! Serial readers played by real PTY pairs: split frames, garbage, the far end closing and
//! coming back (reconnect), and `cardlane capture --device serial:PTY` as a process.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cardlane::capture::{frames, Capture};
use cardlane::device::enumerate::SelectorConnector;
use cardlane::device::manager::{spawn_reader, DeviceEvent, ManagerConfig};
use cardlane::device::profile::TransportKind;
use cardlane::device::{Profiles, Selector, TransportError};
use serialport::{SerialPort, TTYPort};
use tokio::sync::mpsc;

/// The NEO 2 guide's ViVOtech2 example frame with its published CRC 32E6.
const VIVO: &str = "5669564F74656368320004000005DFED11010032E6";
/// ID TECH original-format frame; LRC BF and checksum 65 computed in Python (XOR / 8-bit sum).
const ORIGINAL: &str = "023F0000020018003B3431313131312A2A2A2A2A2A313131313D2A2A2A2A3F2A00112233445566770011223344556677001122334455667762994900000000000001BF6503";
const GARBAGE: &[u8] = b"\x00\xFF\x02\x05\x00junk\x03ViVOpay\r\n";

mod common;
use common::{wait_output, Lines};

fn b(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

/// A PTY pair; the slave end is closed again so that the code under test opens it by path.
fn far_end() -> (TTYPort, String) {
    let (master, slave) = TTYPort::pair().expect("openpty");
    let name = slave.name().expect("pty name");
    drop(slave);
    (master, name)
}

/// Writes pieces with a pause between them so the reader likely sees separate reads. Pacing
/// only: the assertions hold however the reads split (the framer's chunking proptests cover
/// every split).
fn send(master: &mut TTYPort, pieces: &[&[u8]]) {
    for p in pieces {
        master.write_all(p).unwrap();
        master.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
}

fn recv(rt: &tokio::runtime::Runtime, rx: &mut mpsc::Receiver<DeviceEvent>) -> DeviceEvent {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await })
        .expect("event within 20 s")
        .expect("channel open")
}

/// Next event that is not a connect error (those repeat while the device is away).
fn next_significant(
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<DeviceEvent>,
) -> DeviceEvent {
    loop {
        match recv(rt, rx) {
            DeviceEvent::Error { .. } => continue,
            e => return e,
        }
    }
}

fn frame_hex(e: DeviceEvent) -> String {
    match e {
        DeviceEvent::Frame(f) => hex::encode_upper(f.bytes.as_slice()),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn point(link: &Path, target: &str) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn split_frames_after_garbage_then_unplug_and_replug() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A stable device name that follows the reader across "replugs", like /dev/serial/by-id.
    let link = dir.path().join("ttyREADER");
    let (mut m1, pts1) = far_end();
    point(&link, &pts1);

    let profiles = Profiles::embedded().unwrap();
    let profile = profiles.get("idtech-serial").cloned();
    let selector = Selector::Serial {
        path: link.display().to_string(),
        baud: Some(115200),
    };
    let connector = SelectorConnector {
        selector,
        profile: profile.clone(),
    };
    let config = ManagerConfig {
        backoff_min: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        read_timeout: Duration::from_millis(200),
        ..ManagerConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(64);
    let (mut stop, handle) = spawn_reader(
        Box::new(connector),
        profile,
        TransportKind::Serial,
        config,
        tx,
    )
    .unwrap();

    assert!(matches!(
        next_significant(&rt, &mut rx),
        DeviceEvent::Attached { .. }
    ));
    let (v, o) = (b(VIVO), b(ORIGINAL));
    // Garbage, then the ViVOtech2 frame split inside its header and inside its CRC, then the
    // ID TECH frame split right after STX and before ETX.
    let n = o.len();
    send(
        &mut m1,
        &[
            GARBAGE,
            &v[..4],
            &v[4..20],
            &v[20..],
            &o[..1],
            &o[1..n - 1],
            &o[n - 1..],
        ],
    );
    assert_eq!(frame_hex(recv(&rt, &mut rx)), VIVO);
    assert_eq!(frame_hex(recv(&rt, &mut rx)), ORIGINAL);

    // The far end goes away: the reader notices and reports it.
    drop(m1);
    match next_significant(&rt, &mut rx) {
        DeviceEvent::Detached { reason, .. } => assert_eq!(reason, TransportError::Closed),
        other => panic!("{other:?}"),
    }
    // ...and comes back under the same name, on a new PTY.
    let (mut m2, pts2) = far_end();
    point(&link, &pts2);
    assert!(matches!(
        next_significant(&rt, &mut rx),
        DeviceEvent::Attached { .. }
    ));
    send(&mut m2, &[&o[..30], &o[30..]]);
    assert_eq!(frame_hex(recv(&rt, &mut rx)), ORIGINAL);

    stop.stop();
    drop(rx);
    handle.join().unwrap();
}

#[test]
fn capture_command_records_two_frames_from_a_pty() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pty.capture");
    let (mut master, pts) = far_end();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args([
            "capture",
            "--device",
            &format!("serial:{pts}"),
            "--frames",
            "2",
            "--out",
        ])
        .arg(&out)
        .env("CARDLANE_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it has the port open (it says so on stderr) before the reader "swipes".
    let mut stderr = Lines::new(child.stderr.take().unwrap());
    stderr.until("the recording line", |l| {
        l.starts_with("recording from serial:")
    });

    // Each piece is written once the previous one was read (the capture logs each read at
    // debug level; chunks of an open frame are held back from the file until the frame is
    // checked for clear card data), so each is exactly one read, one chunk.
    let (v, o) = (b(VIVO), b(ORIGINAL));
    let pieces: [&[u8]; 5] = [GARBAGE, &v[..3], &v[3..11], &v[11..], &o];
    for (i, p) in pieces.iter().enumerate() {
        master.write_all(p).unwrap();
        master.flush().unwrap();
        if i + 1 < pieces.len() {
            stderr.until("the piece read", |l| l.contains("chunk read"));
        }
    }

    let status = wait_output(&mut child).status;
    let rest = stderr.rest().join("\n");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("captured 2 frame(s)"), "{rest}");

    let text = std::fs::read_to_string(&out).unwrap();
    let cap = Capture::parse(&text).unwrap();
    assert_eq!(cap.headers.transport.as_deref(), Some("serial"));
    assert_eq!(
        cap.headers.profile, None,
        "no profile: replay detects the framing"
    );
    assert_eq!(cap.chunks.len(), pieces.len(), "one chunk per read");
    let got: Vec<String> = frames(&cap, &Profiles::embedded().unwrap())
        .unwrap()
        .iter()
        .map(|f| hex::encode_upper(f.bytes.as_slice()))
        .collect();
    assert_eq!(got, [VIVO, ORIGINAL]);
    // The chunks hold exactly the bytes sent, garbage included.
    let sent: Vec<u8> = [GARBAGE, &v, &o].concat();
    let recorded: Vec<u8> = cap.chunks.iter().flat_map(|c| c.bytes.to_vec()).collect();
    assert_eq!(recorded, sent);
}

/// Reads from the PTY master until `want` bytes came or 20 s passed.
fn read_from_reader_side(master: &mut TTYPort, want: usize) -> Vec<u8> {
    use std::io::Read;
    master.set_timeout(Duration::from_millis(200)).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    while got.len() < want && std::time::Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    got
}

/// A MagTek MICR reader in STX data ETX LRC framing (micr.md §2): a frame whose LRC is wrong
/// is answered NAK (0x15) and not passed on; the reader's resend goes through. Two NAKs in a
/// row at most: a third bad frame is passed on (to be reported bad-lrc).
#[test]
fn a_micr_frame_with_a_wrong_lrc_is_asked_for_again() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut master, pts) = far_end();
    let profiles = Profiles::embedded().unwrap();
    let profile = profiles.get("magtek-micr-serial").cloned();
    let connector = SelectorConnector {
        selector: Selector::Serial {
            path: pts,
            baud: Some(9600),
        },
        profile: profile.clone(),
    };
    let config = ManagerConfig {
        read_timeout: Duration::from_millis(200),
        ..ManagerConfig::default()
    };
    let (tx, mut rx) = mpsc::channel(64);
    let (mut stop, handle) = spawn_reader(
        Box::new(connector),
        profile,
        TransportKind::Serial,
        config,
        tx,
    )
    .unwrap();
    assert!(matches!(
        next_significant(&rt, &mut rx),
        DeviceEvent::Attached { .. }
    ));

    // The spec's public example line; LRC = XOR of the data and ETX.
    let data = b"T122000218T 1234 5678 9U 1321";
    let lrc = data.iter().fold(0x03u8, |a, b| a ^ b);
    let frame = |l: u8| [&[0x02][..], data, &[0x03, l]].concat();
    let (good, bad) = (frame(lrc), frame(lrc ^ 0x40));

    send(&mut master, &[&bad]);
    assert_eq!(
        read_from_reader_side(&mut master, 1),
        [0x15],
        "NAK for a bad LRC"
    );
    send(&mut master, &[&good]);
    assert_eq!(frame_hex(recv(&rt, &mut rx)), hex::encode_upper(&good));

    // Three bad frames in a row: two NAKs, then the third is passed on as it came.
    for _ in 0..2 {
        send(&mut master, &[&bad]);
        assert_eq!(read_from_reader_side(&mut master, 1), [0x15]);
    }
    send(&mut master, &[&bad]);
    assert_eq!(frame_hex(recv(&rt, &mut rx)), hex::encode_upper(&bad));

    stop.stop();
    drop(rx);
    handle.join().unwrap();
}

/// `cardlane capture` with an Epson MICR printer (a fake one on the PTY): the capture asks it
/// for a check (`FS a`, micr.md §2: `1C 61 n`) and again after each reply, and the file replays
/// to the two checks the fake printer answered with (fields as the lines were written).
#[test]
fn capture_asks_an_epson_printer_for_each_check() {
    const FS_A: [u8; 3] = [0x1C, 0x61, 0x00];
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("epson.capture");
    let (mut master, pts) = far_end();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["capture", "--device", &format!("serial:{pts}")])
        .args([
            "--profile",
            "epson-micr-serial",
            "--allow-clear",
            "--frames",
            "2",
        ])
        .arg("--out")
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = Lines::new(child.stderr.take().unwrap());
    stderr.until("the recording line", |l| {
        l.starts_with("recording from serial:")
    });
    // A personal check, then a business one, in the profile's default characters
    // (A transit, C on-us, D dash).
    let lines: [&[u8]; 2] = [
        b"A122000218A 1234 5678 9C 1321",
        b"C0004567C A021000021A 555D123D4321C",
    ];
    for line in lines {
        assert_eq!(
            read_from_reader_side(&mut master, 3),
            FS_A,
            "asked for a check"
        );
        let mut reply = vec![0x5F, 0x00];
        reply.extend_from_slice(line);
        reply.push(0);
        master.write_all(&reply).unwrap();
        master.flush().unwrap();
    }
    let status = wait_output(&mut child).status;
    let rest = stderr.rest().join("\n");
    assert!(status.success(), "{rest}");
    assert!(rest.contains("captured 2 frame(s)"), "{rest}");

    let replay = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .arg("replay")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{text}");
    let checks: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(checks.len(), 2, "{text}");
    let (personal, business) = (&checks[0]["check"], &checks[1]["check"]);
    assert_eq!(
        (
            &personal["aba_code"],
            &personal["account_last4"],
            &personal["check_number"]
        ),
        (&"122000218".into(), &"6789".into(), &"1321".into()),
        "{text}"
    );
    assert_eq!(
        (
            &business["aba_code"],
            &business["account_last4"],
            &business["type"]
        ),
        (&"021000021".into(), &"4321".into(), &"business".into()),
        "{text}"
    );
    assert!(!text.contains("123456789") && !text.contains("5551234321"));
}
