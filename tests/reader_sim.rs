//! `cardlane reader` driving `cardlane reader-sim` as real processes over a real PTY: firmware
//! from `info`, a tap read and decrypted, a time-out that cancels on the reader, a refused start
//! retried, a wedged reader that comes back after a reopen. The simulator's command log (JSON
//! lines on its stderr) is checked for CRCs and for nothing but a cancel during a transaction.
mod common;
use common::reader_sim::ReaderSim;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_cardlane");
const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// A Visa test PAN; must never appear in any output.
const PAN: &str = "4761739001010119";
const FIRMWARE: &str = "NEO2 TEST 9.9";
const WAIT: Duration = Duration::from_secs(30);

/// A simulator on a PTY link in its own temporary directory.
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

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut ReaderSim {
        &mut self.proc
    }
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("neo2");
        let mut args = vec!["--firmware", FIRMWARE];
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

    /// Waits until the simulator logged at least `n` commands.
    fn wait_commands(&self, n: usize) {
        self.wait_log_all(&format!("{n} commands"), |log| {
            log.iter().filter(|v| v.get("cmd").is_some()).count() >= n
        });
    }

    /// Commands as (name, answer, in_transaction).
    fn command_list(&self) -> Vec<(String, Option<String>, bool)> {
        self.commands()
            .iter()
            .map(|v| {
                (
                    v["cmd"].as_str().unwrap().to_string(),
                    v["answer"].as_str().map(str::to_string),
                    v["in_transaction"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    /// Every command carried a correct CRC, and only cancels came during a transaction.
    fn check_protocol_rules(&self) {
        for v in self.log().iter().filter(|v| v.get("cmd").is_some()) {
            assert_eq!(v["crc"], "ok", "bad CRC: {v}");
            if v["in_transaction"] == true {
                assert_eq!(v["cmd"], "05-01", "only a cancel during a transaction: {v}");
            }
        }
        assert!(!self.raw_log().contains(PAN), "clear PAN in the sim's log");
    }
}

/// Runs `cardlane reader …`; (exit code, stdout, stderr). Fails after 30 s.
fn reader(args: &[&str]) -> (i32, String, String) {
    let child = Command::new(BIN)
        .arg("reader")
        .args(args)
        .env_remove("CARDLANE_BDK")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(out) => {
            let out = out.unwrap();
            let stdout = String::from_utf8(out.stdout).unwrap();
            let stderr = String::from_utf8(out.stderr).unwrap();
            assert!(!stderr.contains(PAN), "clear PAN on standard error");
            // Only a --bdk read (a lab tool, like decode --bdk) shows the clear track, in
            // `decrypted`; the caller checks the rest.
            if !args.contains(&"--bdk") {
                assert!(!stdout.contains(PAN), "clear PAN in output");
            }
            (out.status.code().unwrap_or(-1), stdout, stderr)
        }
        Err(_) => {
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("cardlane reader {args:?} did not finish within 30 s");
        }
    }
}

fn json_line(stdout: &str) -> Value {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line: {stdout}");
    serde_json::from_str(lines[0]).unwrap()
}

fn dev_args<'a>(device: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["--device", device, "--profile", "idtech-neo2-serial"];
    v.extend_from_slice(rest);
    v
}

#[test]
fn info_then_a_tap_read_and_decrypted() {
    let card = format!("{PAN}:2812");
    let sim = Sim::start(&[
        "--card",
        &card,
        "--present-after",
        "200",
        "--interface",
        "contactless",
    ]);
    let dev = sim.device();

    let (code, out, _) = reader(&[&["info"][..], &dev_args(&dev, &[])].concat());
    assert_eq!(code, 0);
    let info = json_line(&out);
    assert_eq!(info["firmware"], FIRMWARE);
    assert_eq!(info["profile"], "idtech-neo2-serial");
    assert_eq!(info["protocol"], "neo2");
    // The open sequence of design.md §3, in order.
    sim.wait_commands(4);
    let names: Vec<String> = sim.command_list().into_iter().map(|c| c.0).collect();
    assert_eq!(names, ["18-01", "29-00", "01-01", "04-00"]);

    let (code, out, err) = reader(&[&["read"][..], &dev_args(&dev, &["--bdk", BDK])].concat());
    assert_eq!(code, 0, "{out}{err}");
    let r = json_line(&out);
    assert_eq!(r["format"], "vivotech2");
    assert_eq!(r["entry_mode"], "07");
    assert_eq!(r["last4"], "0119");
    assert_eq!(r["masked_pan"], "476173******0119");
    // The simulator's first read uses the KSN after its base FFFF9876543210E00000.
    assert_eq!(r["ksn"], "FFFF9876543210E00001");
    let t2 = r["decrypted"]["2"].as_str().unwrap();
    assert!(
        t2.starts_with(&format!(";{PAN}=2812")),
        "Track 2 equivalent"
    );
    // The read is ended with a cancel (DFEE25 0010), answered before the port closed.
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "05-01" && v["answer"] == "05-00"
    });
    sim.check_protocol_rules();
}

#[test]
fn no_card_times_out_and_the_transaction_is_cancelled_on_the_reader() {
    let sim = Sim::start(&["--no-card"]);
    let dev = sim.device();
    let (code, out, _) = reader(&[&["read"][..], &dev_args(&dev, &["--timeout", "2"])].concat());
    assert_eq!(code, 1);
    let e = json_line(&out);
    assert_eq!(e["error"]["code"], "timed-out");
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "05-01" && v["answer"] == "05-00"
    });
    let cmds = sim.command_list();
    let start = cmds.iter().position(|c| c.0 == "02-40").expect("a start");
    // After the start: the cancel, received during the transaction and answered; nothing else.
    assert_eq!(
        cmds[start + 1..].to_vec(),
        vec![("05-01".to_string(), Some("05-00".to_string()), true)]
    );
    sim.check_protocol_rules();
}

#[test]
fn a_refused_start_is_cancelled_and_retried_once() {
    let card = format!("{PAN}:2812");
    let sim = Sim::start(&["--card", &card, "--present-after", "100", "--refuse", "1"]);
    let dev = sim.device();
    let (code, out, err) = reader(&[&["read"][..], &dev_args(&dev, &[])].concat());
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_line(&out)["last4"], "0119");
    sim.wait_commands(7);
    let cmds: Vec<(String, Option<String>)> =
        sim.command_list().into_iter().map(|c| (c.0, c.1)).collect();
    let s = |a: &str, b: &str| (a.to_string(), Some(b.to_string()));
    assert_eq!(
        cmds[4..7].to_vec(),
        vec![
            s("02-40", "02-0B"),
            s("05-01", "05-00"),
            s("02-40", "02-63")
        ]
    );
    sim.check_protocol_rules();
}

#[test]
fn a_wedged_reader_fails_the_read_and_answers_again_after_a_reopen() {
    // Answers the open sequence (4 commands), then nothing until the PTY is reopened.
    let sim = Sim::start(&["--no-card", "--wedge-after", "4"]);
    let dev = sim.device();
    let (code, out, _) = reader(&[&["read"][..], &dev_args(&dev, &["--timeout", "1"])].concat());
    assert_eq!(code, 1);
    assert_eq!(json_line(&out)["error"]["code"], "reader-error");
    // The unanswered start was followed by a cancel only.
    sim.wait_commands(6);
    let cmds = sim.command_list();
    assert_eq!(cmds[4].0, "02-40");
    assert_eq!(cmds[4].1, None);
    assert!(cmds[5..].iter().all(|c| c.0 == "05-01"), "{cmds:?}");
    // A new process reopens the PTY: the simulated reader answers again.
    let (code, out, _) = reader(&[&["info"][..], &dev_args(&dev, &[])].concat());
    assert_eq!(code, 0);
    assert_eq!(json_line(&out)["firmware"], FIRMWARE);
    sim.check_protocol_rules();
}

#[test]
fn a_dip_on_the_contact_interface_only() {
    let card = format!("{PAN}:2812");
    let sim = Sim::start(&[
        "--card",
        &card,
        "--present-after",
        "100",
        "--interface",
        "contact",
    ]);
    let dev = sim.device();
    let args = dev_args(&dev, &["--interfaces", "contact", "--timeout", "10"]);
    let (code, out, err) = reader(&[&["read"][..], &args].concat());
    assert_eq!(code, 0, "{out}{err}");
    let r = json_line(&out);
    assert_eq!(r["entry_mode"], "05");
    assert_eq!(r["last4"], "0119");
    let start = sim.log().into_iter().find(|v| v["cmd"] == "02-40").unwrap();
    // DFEF37 bit 2 = contact; the reader's time-out is the host's 10 s plus the 2 s margin.
    assert_eq!(start["interfaces"], 4);
    assert_eq!(start["timeout_s"], 12);
    sim.check_protocol_rules();
}

#[test]
fn a_swipe_on_the_msr_interface_decrypts_to_the_card() {
    let card = format!("{PAN}:2812");
    let sim = Sim::start(&[
        "--card",
        &card,
        "--present-after",
        "100",
        "--interface",
        "msr",
    ]);
    let dev = sim.device();
    let args = dev_args(&dev, &["--interfaces", "msr", "--bdk", BDK]);
    let (code, out, err) = reader(&[&["read"][..], &args].concat());
    assert_eq!(code, 0, "{out}{err}");
    let r = json_line(&out);
    assert_eq!(r["entry_mode"], "90");
    assert_eq!(r["last4"], "0119");
    let t2 = r["decrypted"]["2"].as_str().unwrap();
    assert!(t2.starts_with(&format!(";{PAN}=2812")), "Track 2");
    let start = sim.log().into_iter().find(|v| v["cmd"] == "02-40").unwrap();
    assert_eq!(start["interfaces"], 1, "DFEF37 bit 0 = MSR");
    sim.check_protocol_rules();
}

#[test]
fn the_reader_unplugged_mid_transaction_ends_the_read() {
    let mut sim = Sim::start(&["--no-card"]);
    let dev = sim.device();
    let args: Vec<String> = [&["read"][..], &dev_args(&dev, &["--timeout", "20"])]
        .concat()
        .into_iter()
        .map(String::from)
        .collect();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let _ = tx.send(reader(&refs));
    });
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "02-40" && v["answer"] == "02-63"
    });
    // Unplug: the far end of the line goes away.
    sim.child.kill().unwrap();
    let _ = sim.child.wait();
    let (code, out, _) = rx.recv_timeout(WAIT).expect("read ends after the unplug");
    assert_eq!(code, 1);
    assert_eq!(json_line(&out)["error"]["code"], "reader-error");
}

#[test]
fn ctrl_c_cancels_the_transaction_and_waits_for_the_answer() {
    let sim = Sim::start(&["--no-card"]);
    let dev = sim.device();
    let child = Command::new(BIN)
        .arg("reader")
        .args(["read"])
        .args(dev_args(&dev, &["--timeout", "20"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "02-40" && v["answer"] == "02-63"
    });
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(WAIT) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg(&pid).status();
            panic!("reader read did not end after Ctrl-C within 30 s");
        }
    };
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(json_line(&stdout)["error"]["code"], "cancelled");
    // The sim logs on another thread of this test: wait for the line, not just the exit.
    sim.wait_log("the expected line", |v| {
        v["cmd"] == "05-01" && v["answer"] == "05-00"
    });
    let cmds = sim.command_list();
    let start = cmds.iter().position(|c| c.0 == "02-40").unwrap();
    assert_eq!(
        cmds[start + 1..].to_vec(),
        vec![("05-01".to_string(), Some("05-00".to_string()), true)]
    );
    sim.check_protocol_rules();
}

/// Speaks to the simulator directly with the codec: the reader's own time-out, with the frames
/// as the guide writes them (command CRC LSB first out, response CRC MSB first back).
#[test]
fn the_sim_times_out_by_itself_when_the_host_waits() {
    use cardlane::protocol::neo2::{Deframed, Deframer, Incoming, Status};
    use std::io::{Read, Write};

    let sim = Sim::start(&["--no-card"]);
    let mut port = serialport::new(sim.link.to_str().unwrap(), 115_200)
        .timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    // 02-40: reader time-out 1 s, amount zero, purchase, all interfaces; CRC 7158 computed in
    // Python (CRC-16/CCITT-FALSE), sent least significant byte first.
    let start = hex::decode("5669564F74656368320002400012019F02060000000000009C0100DFEF3701075871")
        .unwrap();
    port.write_all(&start).unwrap();
    let mut d = Deframer::host();
    let mut got = Vec::new();
    let until = std::time::Instant::now() + WAIT;
    let mut buf = [0u8; 256];
    while got.len() < 3 && std::time::Instant::now() < until {
        match port.read(&mut buf) {
            Ok(n) => got.extend(d.push_incoming(&buf[..n]).into_iter().map(|x| match x {
                Deframed::Frame(f) => f,
                other => panic!("bad frame from the sim: {other:?}"),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got.len(), 3, "63, the prompt, then the time-out");
    let status = |f: &Incoming| match f {
        Incoming::Response(r) => (r.command, r.status, r.data.to_vec()),
        Incoming::ReaderRequest(c) => (c.command, Status::Other(c.sub), c.data.to_vec()),
    };
    assert_eq!(status(&got[0]), (0x02, Status::FirstResponse, vec![]));
    assert_eq!(
        status(&got[1]),
        (0x61, Status::Other(0x01), b"PRESENT CARD".to_vec())
    );
    // Attribution byte, then DFEE25 0008 (time-out), status 0A.
    assert_eq!(
        status(&got[2]),
        (
            0x02,
            Status::Failed,
            vec![0x41, 0xDF, 0xEE, 0x25, 0x02, 0x00, 0x08]
        )
    );
    sim.wait_log("the expected line", |v| v["event"] == "reader-timeout");
    let start = sim.log().into_iter().find(|v| v["cmd"] == "02-40").unwrap();
    assert_eq!(start["timeout_s"], 1);
}

#[test]
fn not_driven_profiles_are_refused() {
    let (code, out, _) = reader(&[
        "info",
        "--device",
        "serial:/dev/null",
        "--profile",
        "idtech-serial",
    ]);
    assert_eq!(code, 1);
    assert_eq!(json_line(&out)["error"]["code"], "not-driven");
}
