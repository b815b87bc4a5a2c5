//! Real processes for the PIN flows (issue 17): `cardlane gateway-sim`, `cardlane reader-sim`
//! keypad readers on PTYs and `cardlane run`, each with its output collected so tests can search
//! it, plus a small client for the local API. Every wait fails after [`WAIT`].
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_cardlane");
pub const API_KEY: &str = "driven-pin-test-key";
/// ANSI X9.24-1 test BDK: reader-sim's card data and PIN keys, and a TDES PIN pad's.
pub const TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// The AES-128 BDK of X9.24-3 (dukpt.md): an AES PIN pad's (format 4).
pub const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
/// Every wait fails after this; no test asserts on speed.
pub const WAIT: Duration = Duration::from_secs(30);

/// `log` is `CARDLANE_LOG`'s value, optionally with `/human` or `/json` for `--log-format`.
fn apply_log(cmd: &mut Command, log: &str) {
    let (level, format) = log.split_once('/').unwrap_or((log, ""));
    cmd.env("CARDLANE_LOG", level);
    if !format.is_empty() {
        cmd.args(["--log-format", format]);
    }
}

/// Lines a child writes on one pipe, collected by a thread; `closed` once the pipe ends.
#[derive(Clone, Default)]
pub struct Collected(Arc<Mutex<Vec<String>>>, Arc<AtomicBool>);

impl Collected {
    pub fn from(pipe: impl Read + Send + 'static) -> Collected {
        let c = Collected::default();
        let (sink, closed) = (c.0.clone(), c.1.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
            closed.store(true, Ordering::SeqCst);
        });
        c
    }

    pub fn closed(&self) -> bool {
        self.1.load(Ordering::SeqCst)
    }

    pub fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits for a line matching `want`; returns it.
    pub fn wait_for(&self, what: &str, want: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + WAIT;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| want(l)) {
                return l;
            }
            assert!(Instant::now() < end, "no {what} in:\n{}", self.text());
            // Polling a buffer another thread fills; the deadline fails the test.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A child killed when dropped, with its stdout and stderr collected.
pub struct Proc {
    pub child: Child,
    pub out: Collected,
    pub err: Collected,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Collected::from(child.stdout.take().unwrap());
        let err = Collected::from(child.stderr.take().unwrap());
        Proc { child, out, err }
    }

    /// Everything it printed so far, both pipes.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.out.text(), self.err.text())
    }

    /// SIGTERM, then waits for the exit and the end of its output.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let end = Instant::now() + WAIT;
        loop {
            let exited = self.child.try_wait().unwrap();
            // Done once it exited and both pipes were read to their end.
            if let Some(s) = exited.filter(|_| self.out.closed() && self.err.closed()) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "no exit (or output still open) 30 s after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cardlane gateway-sim` on 127.0.0.1:0 with the TDES and AES test BDKs.
pub struct GatewaySim {
    pub proc: Proc,
    pub url: String,
}

impl GatewaySim {
    pub fn start(dir: &Path, log: &str) -> GatewaySim {
        let mut cmd = Command::new(BIN);
        cmd.args(["gateway-sim", "--listen", "127.0.0.1:0"])
            .args(["--bdk", TDES_BDK, "--bdk", AES_BDK])
            .arg("--db")
            .arg(dir.join("sim.db"))
            .env("CARDLANE_API_KEY", API_KEY)
            .env_remove("CARDLANE_BDK");
        apply_log(&mut cmd, log);
        let proc = Proc::spawn(cmd);
        let line = proc
            .out
            .wait_for("listening line", |l| l.starts_with("listening on "));
        let url = line.trim_start_matches("listening on ").trim().to_string();
        GatewaySim { proc, url }
    }

    pub fn customers(&self) -> Vec<Value> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}/_sim/customers", self.url))
                .header("x-authorization", API_KEY)
                .timeout(WAIT)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }
}

/// `cardlane reader-sim --profile idtech-neo2-serial` at `link`, ready.
pub fn reader_sim(link: &Path, log: &str, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(BIN);
    cmd.args(["reader-sim", "--profile", "idtech-neo2-serial", "--link"])
        .arg(link)
        .args(["--present-after", "200"])
        .args(extra)
        .env_remove("CARDLANE_BDK");
    apply_log(&mut cmd, log);
    let p = Proc::spawn(cmd);
    let ready = p.out.wait_for("ready line", |l| l.contains("\"ready\""));
    let v: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(v["ready"], true);
    p
}

/// The commands a reader-sim logged (JSON lines on its stderr).
pub fn sim_commands(sim: &Proc) -> Vec<Value> {
    sim.err
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("cmd").is_some())
        .collect()
}

/// One `[[readers]]` entry: id, link (a reader-sim's PTY) and extra keys.
pub struct ReaderEntry<'a> {
    pub id: &'a str,
    pub device: String,
    pub profile: &'a str,
    pub extra: &'a str,
}

impl ReaderEntry<'_> {
    pub fn neo2<'a>(id: &'a str, link: &Path) -> ReaderEntry<'a> {
        ReaderEntry {
            id,
            device: format!("serial:{}@115200", link.display()),
            profile: "idtech-neo2-serial",
            extra: "",
        }
    }
}

pub fn write_config(dir: &Path, gateway: &str, readers: &[ReaderEntry<'_>]) -> PathBuf {
    let mut text = format!(
        "[gateway]\nbase_url = \"{gateway}\"\n[queue]\npath = \"{q}\"\n[api]\nlisten = \"127.0.0.1:0\"\n\
         token_file = \"{t}\"\n[lane]\non_swipe = \"ignore\"\n[devices]\nhotplug = false\n",
        q = dir.join("queue.db").display(),
        t = dir.join("api-token").display(),
    );
    for r in readers {
        text.push_str(&format!(
            "[[readers]]\nid = \"{}\"\ndevice = \"{}\"\nprofile = \"{}\"\n{}\n",
            r.id, r.device, r.profile, r.extra
        ));
    }
    let path = dir.join("cardlane.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// `cardlane run`, ready; returns the process and the API's base URL.
pub fn agent(config: &Path, log: &str) -> (Proc, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(config)
        .env("CARDLANE_API_KEY", API_KEY)
        .env_remove("CARDLANE_QUEUE_KEY");
    apply_log(&mut cmd, log);
    let p = Proc::spawn(cmd);
    let end = Instant::now() + WAIT;
    let line = loop {
        let all = p.out.lines().into_iter().chain(p.err.lines());
        if let Some(l) = all
            .into_iter()
            .find(|l| l.starts_with("ready: api on http://"))
        {
            break l;
        }
        assert!(Instant::now() < end, "no ready line:\n{}", p.all_output());
        std::thread::sleep(Duration::from_millis(20));
    };
    let api = line.trim_start_matches("ready: api on ").trim().to_string();
    (p, api)
}

pub use crate::common::api::Api;

/// Opens `GET /v1/events` and collects its text on a thread until the stream ends.
pub fn events(api: &Api) -> Collected {
    let c = Collected::default();
    let (sink, closed) = (c.0.clone(), c.1.clone());
    let (url, token) = (format!("{}/v1/events", api.base), api.token.clone());
    let (opened_tx, opened) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await;
            let Ok(mut r) = r else { return };
            let _ = opened_tx.send(r.status());
            while let Ok(Some(chunk)) = r.chunk().await {
                let text = String::from_utf8_lossy(&chunk).into_owned();
                sink.lock().unwrap().extend(text.lines().map(String::from));
            }
        });
        closed.store(true, Ordering::SeqCst);
    });
    let status = opened.recv_timeout(WAIT).expect("event stream opened");
    assert_eq!(status, StatusCode::OK);
    c
}

/// An ISO 9564 PIN block under the PIN key of `ksn`, as a PIN pad would make it (upper hex).
pub fn pad_block(bdk: &str, ksn: &str, pin: &str, pan: &str, format: u8) -> String {
    let b = cardlane::crypto::pin_block_encrypt(
        &hex::decode(bdk).unwrap(),
        &cardlane::crypto::Ksn::from_slice(&hex::decode(ksn).unwrap()).unwrap(),
        pin,
        pan,
        cardlane::crypto::PinFormat::from_digit(format),
        None,
    )
    .unwrap();
    hex::encode_upper(b)
}

/// Searches `hay` for each needle; the message names only the label and the needle's start.
pub fn assert_absent(label: &str, hay: &[u8], needles: &[String]) {
    for n in needles {
        assert!(
            !hay.windows(n.len()).any(|w| w == n.as_bytes()),
            "{label}: found `{}…`",
            &n[..4]
        );
    }
}

/// Every file under `dir` (recursively), searched with [`assert_absent`].
pub fn assert_absent_in_files(dir: &Path, needles: &[String]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            assert_absent_in_files(&p, needles);
        } else if p.is_file() {
            assert_absent(
                &p.display().to_string(),
                &std::fs::read(&p).unwrap(),
                needles,
            );
        }
    }
}
