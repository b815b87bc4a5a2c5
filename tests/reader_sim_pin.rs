//! PIN entry with real processes (issue 17): `cardlane reader read --pin …` driving `cardlane
//! reader-sim --pin …` over a real PTY. A PIN typed on the simulated keypad comes back as a PIN
//! KSN (the reader's PIN key, not the card data's) and a block that verifies with `--bdk`; a
//! customer's cancel, a customer who never types and a host Ctrl-C each end typed. The sim's
//! command log shows nothing but a cancel between the two answers to 62-01, and no output holds
//! the PIN block's bytes, the PIN, or (outside a --bdk read's `decrypted`) the PAN.
mod common;
use common::reader_sim::ReaderSim;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cardlane");
const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// A Visa test PAN.
const PAN: &str = "4761739001010119";
const PIN: &str = "907531";
/// The sim's PIN DUKPT key: its default initial KSN counted up once (first PIN entry).
const PIN_KSN: &str = "FFFF9876543211E00001";
const WAIT: Duration = Duration::from_secs(30);

/// A simulator with the test card, on a PTY link in its own temporary directory.
struct Sim {
    proc: ReaderSim,
    link: PathBuf,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Sim {
    type Target = ReaderSim;
    fn deref(&self) -> &ReaderSim {
        &self.proc
    }
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("neo2");
        let card = format!("{PAN}:2812");
        let mut args = vec!["--card", &card, "--present-after", "200"];
        args.extend_from_slice(extra);
        Sim {
            proc: ReaderSim::start("idtech-neo2-serial", &link, &args),
            link,
            _dir: dir,
        }
    }

    fn device(&self) -> String {
        format!("serial:{}", self.link.display())
    }

    /// The 62-01 request line, checked against §1.6: key type 01, no PAN, lengths 4..12.
    fn pin_request(&self) -> Value {
        let log = self.log();
        let reqs: Vec<&Value> = log.iter().filter(|v| v["cmd"] == "62-01").collect();
        assert_eq!(reqs.len(), 1, "one 62-01:\n{}", self.raw_log());
        let r = reqs[0].clone();
        assert_eq!(r["answer"], "62-00", "first answer: status 00");
        assert_eq!(r["key_type"], "01");
        assert_eq!(r["pan_len"], 0);
        assert_eq!(
            (r["pin_min"].as_u64(), r["pin_max"].as_u64()),
            (Some(4), Some(12))
        );
        r
    }

    /// Commands the host sent after 62-01 up to the sim's line `end` (the PIN answer).
    fn commands_between_pin_answers(&self, end: &str) -> Vec<String> {
        let log = self.log();
        let start = log.iter().position(|v| v["cmd"] == "62-01").unwrap();
        let stop = log
            .iter()
            .position(|v| v["event"] == end)
            .unwrap_or(log.len());
        log[start + 1..stop]
            .iter()
            .filter_map(|v| v["cmd"].as_str().map(str::to_owned))
            .collect()
    }

    /// CRCs good; only cancels while a transaction or PIN entry runs; no PAN or PIN logged.
    fn check_protocol_rules(&self) {
        for v in self.log().iter().filter(|v| v.get("cmd").is_some()) {
            assert_eq!(v["crc"], "ok", "bad CRC: {v}");
            if v["in_transaction"] == true {
                assert_eq!(v["cmd"], "05-01", "only a cancel during a transaction: {v}");
            }
        }
        let raw = self.raw_log();
        assert!(
            !raw.contains(PAN) && !raw.contains(PIN),
            "card data in the sim's log"
        );
    }
}

/// The format 0 block the sim must have produced, computed by the `pinblock` lab command.
fn expected_block() -> String {
    let out = Command::new(BIN)
        .args(["pinblock", "encrypt", "--bdk", BDK, "--ksn", PIN_KSN])
        .args(["--pin", PIN, "--pan", PAN, "--format", "0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn spawn_reader(args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("reader")
        .args(args)
        .env_remove("CARDLANE_BDK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Output {
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(&pid).status();
            panic!("cardlane reader did not finish within 30 s");
        }
    }
}

/// Runs `reader read`; (exit code, the one JSON line, stderr).
fn read(dev: &str, rest: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["read", "--device", dev, "--profile", "idtech-neo2-serial"];
    args.extend_from_slice(rest);
    line_of(finish(spawn_reader(&args)))
}

fn line_of(out: Output) -> (i32, Value, String) {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(lines[0]).unwrap(),
        stderr,
    )
}

/// No PIN block bytes and no PIN anywhere; the PAN only inside a --bdk read's `decrypted`.
fn assert_clean(line: &Value, stderr: &str, block: &str) {
    let mut outside = line.clone();
    if let Some(o) = outside.as_object_mut() {
        o.remove("decrypted");
    }
    for text in [line.to_string(), stderr.to_owned()] {
        assert!(!text.to_uppercase().contains(block), "PIN block in output");
        assert!(!text.contains(PIN), "PIN in output");
    }
    assert!(!outside.to_string().contains(PAN), "clear PAN in output");
    assert!(!stderr.contains(PAN), "clear PAN on standard error");
}

#[test]
fn typed_pin_comes_back_under_the_pin_ksn_and_verifies() {
    let sim = Sim::start(&["--pin", PIN]);
    let (code, line, stderr) = read(&sim.device(), &["--pin", "required", "--bdk", BDK]);
    assert_eq!(code, 0, "{line}\n{stderr}");
    assert_eq!(line["last4"], "0119");
    let pin = &line["pin"];
    assert_eq!(pin["ksn"], PIN_KSN);
    assert_ne!(
        pin["ksn"], line["ksn"],
        "the PIN key's KSN is not the card data's"
    );
    assert_eq!(pin["format"], 0);
    assert_eq!(pin["pin_block"], "present");
    assert_eq!(pin["pin_verified"], true);
    sim.wait_log("the expected line", |v| v["event"] == "pin-entered");
    sim.pin_request();
    assert_eq!(
        sim.commands_between_pin_answers("pin-entered"),
        Vec::<String>::new()
    );
    sim.check_protocol_rules();
    assert_clean(&line, &stderr, &expected_block());
    assert!(
        !sim.raw_log().contains(&expected_block()),
        "PIN block in the sim's log"
    );
}

#[test]
fn without_bdk_the_pin_is_present_but_not_verified() {
    let sim = Sim::start(&["--pin", PIN]);
    let (code, line, stderr) = read(&sim.device(), &["--pin", "optional"]);
    assert_eq!(code, 0, "{line}\n{stderr}");
    assert_eq!(line["pin"]["pin_block"], "present");
    assert!(line["pin"].get("pin_verified").is_none());
    assert_clean(&line, &stderr, &expected_block());
    assert!(!line.to_string().contains(PAN));
}

#[test]
fn customer_cancel_is_pin_cancelled() {
    let sim = Sim::start(&["--pin-cancel"]);
    let (code, line, stderr) = read(&sim.device(), &["--pin", "required"]);
    assert_eq!(code, 1, "{line}");
    assert_eq!(line["error"]["code"], "pin-cancelled");
    sim.wait_log("the expected line", |v| v["event"] == "pin-cancelled");
    sim.pin_request();
    // Nothing at all was sent between the two answers (a cancel is the only thing allowed).
    assert_eq!(
        sim.commands_between_pin_answers("pin-cancelled"),
        Vec::<String>::new()
    );
    sim.check_protocol_rules();
    assert!(!line.to_string().contains(PAN) && !stderr.contains(PAN));

    // Optional: the same cancel leaves the read, with no PIN.
    let sim = Sim::start(&["--pin-cancel"]);
    let (code, line, _) = read(&sim.device(), &["--pin", "optional"]);
    assert_eq!(code, 0, "{line}");
    assert_eq!(line["last4"], "0119");
    assert!(line["pin"].is_null());
}

#[test]
fn customer_who_never_types_is_pin_timed_out() {
    let sim = Sim::start(&["--pin-never"]);
    let (code, line, _) = read(&sim.device(), &["--pin", "required", "--pin-timeout", "2"]);
    assert_eq!(code, 1, "{line}");
    assert_eq!(line["error"]["code"], "pin-timed-out");
    sim.wait_log("the expected line", |v| v["event"] == "pin-timeout");
    assert_eq!(sim.pin_request()["timeout_s"], 2);
    assert_eq!(
        sim.commands_between_pin_answers("pin-timeout"),
        Vec::<String>::new()
    );
    sim.check_protocol_rules();
}

#[test]
fn ctrl_c_during_pin_entry_sends_only_a_cancel() {
    let sim = Sim::start(&["--pin-never"]);
    let dev = sim.device();
    let child = spawn_reader(&[
        "read",
        "--device",
        &dev,
        "--profile",
        "idtech-neo2-serial",
        "--pin",
        "required",
        "--pin-timeout",
        "20",
    ]);
    let pid = child.id().to_string();
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "62-01" && v["answer"] == "62-00"
    });
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let (code, line, _) = line_of(finish(child));
    assert_eq!(code, 1, "{line}");
    assert_eq!(line["error"]["code"], "pin-cancelled");
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "05-01" && v["in_transaction"] == true
    });
    assert_eq!(sim.commands_between_pin_answers("pin-timeout"), ["05-01"]);
    sim.check_protocol_rules();
}

#[test]
fn a_reader_without_keypad_refuses_62_01_as_a_reader_error() {
    let sim = Sim::start(&[]);
    let (code, line, _) = read(&sim.device(), &["--pin", "required"]);
    assert_eq!(code, 1, "{line}");
    assert_eq!(line["error"]["code"], "reader-error");
    // Status 02 (unknown command), as the sim answered it.
    assert!(line["error"]["message"]
        .as_str()
        .unwrap()
        .contains("status 02"));
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "62-01" && v["answer"] == "62-02"
    });
    sim.check_protocol_rules();
}
