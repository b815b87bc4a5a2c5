//! `cardlane capture` decides from what the reader sends whether the file may hold it: a serial
//! reader without a profile that sends a clear track is refused before the track reaches the
//! file; files are created 0600 and never over an existing one. Real PTY, real process.
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

const PAN: &str = "4111111111111111";

fn clear_swipe() -> String {
    format!("%B{PAN}^TEST/CARD^2912101?;{PAN}=2912101?\r\n")
}

fn start(pts: &str, out: &Path, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["capture", "--device", &format!("serial:{pts}"), "--out"])
        .arg(out)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Standard error line by line through a channel, so every wait has a time-out.
    let (tx, rx) = mpsc::channel();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || loop {
        let mut l = String::new();
        match err.read_line(&mut l) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send(l).is_err() {
                    return;
                }
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, starts: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.starts_with(starts) => return l,
            Ok(_) => {}
            Err(e) => panic!("no line starting {starts:?}: {e}"),
        }
    }
}

fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("capture did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pty() -> (TTYPort, String) {
    let (master, slave) = TTYPort::pair().expect("openpty");
    let name = slave.name().expect("pty name");
    drop(slave);
    (master, name)
}

#[test]
fn clear_track_without_a_profile_is_refused_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("clear.capture");
    let (mut master, pts) = pty();
    let (mut child, rx) = start(&pts, &out, &["--seconds", "60"]);
    wait_line(&rx, "recording from serial:");
    master.write_all(clear_swipe().as_bytes()).unwrap();
    master.flush().unwrap();
    let line = wait_line(&rx, "error:");
    assert!(line.contains("clear card data"), "{line}");
    assert!(!line.contains(PAN));
    assert_eq!(wait_exit(&mut child).code(), Some(1));
    let meta = std::fs::metadata(&out).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let mut text = String::new();
    std::fs::File::open(&out)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("# cardlane capture v1"), "{text}");
    assert!(!text.contains(PAN), "clear PAN written: {text}");
    assert!(!text.contains("+0ms"), "a chunk was written: {text}");
}

#[test]
fn allow_clear_records_the_track() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("allowed.capture");
    let (mut master, pts) = pty();
    // A serial reader without a profile frames binary only: the text is kept as unframed bytes,
    // so the capture ends by time.
    let (mut child, rx) = start(&pts, &out, &["--allow-clear", "--seconds", "4"]);
    wait_line(&rx, "recording from serial:");
    master.write_all(clear_swipe().as_bytes()).unwrap();
    master.flush().unwrap();
    let status = wait_exit(&mut child);
    assert!(status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let cap = cardlane::capture::Capture::parse(&text).unwrap();
    let recorded: Vec<u8> = cap.chunks.iter().flat_map(|c| c.bytes.to_vec()).collect();
    assert_eq!(recorded, clear_swipe().as_bytes());
}

#[test]
fn an_existing_file_is_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kept.capture");
    std::fs::write(&out, "precious\n").unwrap();
    let (_master, pts) = pty();
    let (mut child, rx) = start(&pts, &out, &["--frames", "1"]);
    let line = wait_line(&rx, "error:");
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(wait_exit(&mut child).code(), Some(2));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "precious\n");
}
