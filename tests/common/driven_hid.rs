//! Shared steps of the MagTek driven-reader tests (DynaFlex over MMS, eDynamo over V5): waiting
//! on the driver's session events, turning the input reports a simulated reader sent into a
//! capture file, and replaying that capture through the agent pipeline into `cardlane
//! gateway-sim` on 127.0.0.1.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use cardlane::device::session::DriverEvent;
use cardlane::protocol::neo2::{Event, Outcome};
use serde_json::Value;

use super::{Lines, OutputWithin, Reaper, WAIT};

/// The next session event matching `pick`, within `WAIT`.
pub fn wait_for<T>(
    rx: &mpsc::Receiver<DriverEvent>,
    what: &str,
    pick: impl Fn(&Event) -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(DriverEvent::Session(e)) => {
                if let Some(t) = pick(&e) {
                    return t;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("waited {WAIT:?} for {what}: {e}"),
        }
    }
}

pub fn ready(rx: &mpsc::Receiver<DriverEvent>) {
    wait_for(rx, "ready", |e| {
        matches!(e, Event::Ready { .. }).then_some(())
    });
}

/// The read's last 4 and frame; fails on any other outcome.
pub fn read(rx: &mpsc::Receiver<DriverEvent>) -> (String, Vec<u8>) {
    wait_for(rx, "the read", |e| match e {
        Event::Outcome(Outcome::Read { read, frame }) => {
            Some((read.last4.clone().unwrap().to_string(), frame.to_vec()))
        }
        Event::Outcome(o) => panic!("outcome {o:?}"),
        _ => None,
    })
}

/// The input reports the host got, as a capture of `profile` (what `cardlane capture` writes).
pub fn capture_text(profile: &str, source: &str, reports: &[Vec<u8>]) -> String {
    let mut text = format!(
        "# cardlane capture v1\n# profile: {profile}\n# transport: hid\n# source: {source}\n"
    );
    for r in reports {
        text.push_str(&format!("+1ms hex {}\n", hex::encode_upper(r)));
    }
    text
}

/// What `replay --gateway` printed and what the simulator then held.
pub struct Replayed {
    pub stdout: String,
    pub lines: Vec<Value>,
    pub customers: Vec<Value>,
}

/// Replays `capture` (a capture file's text) with `cardlane replay --gateway` into a fresh
/// `cardlane gateway-sim --bdk bdk`; `key` is the API key both use.
pub fn replay_to_gateway_sim(capture: &str, bdk: &str, key: &str) -> Replayed {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reads.capture");
    std::fs::write(&file, capture).unwrap();
    let bin = env!("CARGO_BIN_EXE_cardlane");
    let mut sim = Command::new(bin)
        .args([
            "gateway-sim",
            "--listen",
            "127.0.0.1:0",
            "--bdk",
            bdk,
            "--db",
        ])
        .arg(dir.path().join("sim.db"))
        .env("CARDLANE_API_KEY", key)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = sim.stdout.take().unwrap();
    let sim = Reaper(sim);
    let first = Lines::new(stdout).next();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let addr = url.strip_prefix("http://").unwrap().to_string();
    let out = Command::new(bin)
        .args(["replay", "--no-delay", "--gateway", &url])
        .arg("--queue")
        .arg(dir.path().join("q.db"))
        .arg(&file)
        .env("CARDLANE_API_KEY", key)
        .env_remove("CARDLANE_QUEUE_KEY")
        .output_within();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let customers = sim_customers(&addr, key);
    drop(sim);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    Replayed {
        stdout,
        lines,
        customers,
    }
}

/// `GET /_sim/customers` over a bare HTTP/1.1 connection.
fn sim_customers(addr: &str, key: &str) -> Vec<Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /_sim/customers HTTP/1.1\r\nHost: {addr}\r\nx-authorization: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 2"), "{head}");
    let v: Value = serde_json::from_str(body.trim()).unwrap();
    v.as_array().cloned().unwrap_or_default()
}

/// `reader-sim --profile profile` with two test cards on the contact interface: checks its
/// ready line and its two decode lines (last 4 of each card, the KSN counting up, entry mode
/// 05, no clear PAN), and returns the ready line and the requests the simulated reader
/// received, in order.
pub fn reader_sim_two_cards(profile: &str) -> (Value, Vec<String>) {
    const CARDS: [(&str, &str); 2] = [
        ("5413330089020011", "5413330089020011:2912"),
        ("4761739001010119", "4761739001010119:2512"),
    ];
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["reader-sim", "--profile", profile, "--interface", "contact"])
        .args(["--card", CARDS[0].1, "--card", CARDS[1].1])
        .args(["--present-after", "20"])
        .output_within();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["ready"], true);
    for (i, (l, (pan, _))) in lines[1..].iter().zip(CARDS).enumerate() {
        assert_eq!(l["format"], "magtek-emv");
        assert_eq!(l["last4"], &pan[pan.len() - 4..]);
        assert_eq!(l["ksn"], format!("FFFF9876543210E0000{}", i + 1));
        assert_eq!(l["entry_mode"], "05");
        assert!(!stdout.contains(pan), "clear PAN in reader-sim's output");
    }
    let received = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["received"].as_str().map(str::to_string))
        .collect();
    (lines[0].clone(), received)
}

/// `received` begins with the open's `ping` and, with any further pings (the idle watchdog's,
/// on a slow machine) left out, is `transactions`.
pub fn assert_requests(received: &[String], ping: &str, transactions: &[&str]) {
    assert_eq!(
        received.first().map(String::as_str),
        Some(ping),
        "{received:?}"
    );
    let rest: Vec<&str> = received
        .iter()
        .map(String::as_str)
        .filter(|r| *r != ping)
        .collect();
    assert_eq!(rest, transactions, "{received:?}");
}
