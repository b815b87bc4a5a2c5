//! Waiting helpers shared by the whole-flow tests: every wait is on an event (a line, an exit,
//! a condition) and has a generous time-out that fails the test rather than hanging it. The
//! time-outs are bounds for a loaded 2-core CI machine, never speed assertions.
#![allow(dead_code)] // each test binary uses a different subset

pub mod agent;
pub mod api;
pub mod driven_hid;
pub mod gateway;
pub mod reader_sim;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The bytes of a `fixtures/decode/good` hex file: its payload without the `#` comment lines.
pub fn decode_fixture_bytes(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/decode/good")
        .join(name);
    let text = std::fs::read_to_string(p).unwrap();
    let hex: String = text.lines().filter(|l| !l.starts_with('#')).collect();
    hex::decode(hex.trim()).unwrap()
}

/// How long any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Lines of a child's pipe, read on a thread so that a wait for a line can time out.
pub struct Lines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Lines {
    pub fn new(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next line; fails on end of stream or after `WAIT`.
    pub fn next(&mut self) -> String {
        match self.rx.recv_timeout(WAIT) {
            Ok(l) => {
                self.seen.push(l.clone());
                l
            }
            Err(e) => panic!(
                "no line within {WAIT:?} ({e}); lines so far:\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// Skips lines until one matches `pred`; fails after `WAIT` in all.
    pub fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "waited {WAIT:?} for {what} ({e}); lines so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every line up to the end of the stream (the child closed it); fails after `WAIT`.
    pub fn rest(&mut self) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    out.push(l);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return out,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("stream still open after {WAIT:?}; got:\n{}", out.join("\n"))
                }
            }
        }
    }

    /// Everything read so far (for failure messages and leak checks).
    pub fn seen(&self) -> String {
        self.seen.join("\n")
    }
}

/// Polls `cond` until it holds; fails after `WAIT`. For conditions with no event to wait on
/// (a file growing, a row changing state in another process's database).
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the child to exit; kills it and fails after `WAIT`.
pub fn wait_exit(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} still running after {WAIT:?}; killed", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut p) = pipe {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            let _ = tx.send(buf);
        });
    }
    rx
}

/// `Command::output` with a time-out: the child is killed and the test fails after `WAIT`.
pub trait OutputWithin {
    fn output_within(&mut self) -> Output;
}

impl OutputWithin for Command {
    fn output_within(&mut self) -> Output {
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_output(&mut child)
    }
}

/// Collects a spawned child's piped stdout/stderr and waits for it to exit, all within `WAIT`.
pub fn wait_output(child: &mut Child) -> Output {
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = wait_exit(child);
    // The pipes close when the child exits (unless it left a grandchild holding them).
    let get = |rx: mpsc::Receiver<Vec<u8>>| match rx.recv_timeout(WAIT) {
        Ok(b) => b,
        Err(mpsc::RecvTimeoutError::Disconnected) => Vec::new(),
        Err(e) => panic!("child's output still open {WAIT:?} after it exited ({e})"),
    };
    Output {
        status,
        stdout: get(out),
        stderr: get(err),
    }
}

/// Owns a child process and kills it when dropped, so a failed assertion never leaves one
/// running (a stalled drain or a replay waiting on a held request would otherwise linger).
pub struct Reaper(pub Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `body` with its Luhn check digit, computed the textbook way (double every second digit from
/// the right), independently of the crate's own PAN checks.
pub fn with_check_digit(body: &str) -> String {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 0 {
                let x = d * 2;
                x / 10 + x % 10
            } else {
                d
            }
        })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}
