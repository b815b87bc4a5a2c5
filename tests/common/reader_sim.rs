//! `cardlane reader-sim` as a child process, with its command log (JSON lines on its stderr)
//! collected as they come, for tests that check what the simulated reader was sent.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::WAIT;

/// A running simulator; killed when dropped.
pub struct ReaderSim {
    pub child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl ReaderSim {
    /// `cardlane reader-sim --profile profile --link link` plus `args`, up to its ready line
    /// (printed once the PTY link exists).
    pub fn start(profile: &str, link: &Path, args: &[&str]) -> ReaderSim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
            .args(["reader-sim", "--profile", profile, "--link"])
            .arg(link)
            .args(args)
            .env_remove("CARDLANE_BDK")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("reader-sim starts");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let ready: Value =
            serde_json::from_str(&rx.recv_timeout(WAIT).expect("sim ready")).unwrap();
        assert_eq!(ready["ready"], true);
        assert!(link.exists(), "no PTY link at {}", link.display());
        ReaderSim { child, log }
    }

    /// The command log so far, parsed.
    pub fn log(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).expect("sim log lines are JSON"))
            .collect()
    }

    pub fn raw_log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until the simulator logged a line matching `want` (it logs each command as it
    /// answers it).
    pub fn wait_log(&self, what: &str, want: impl Fn(&Value) -> bool) {
        self.wait_log_all(what, |log| log.iter().any(&want));
    }

    /// Waits until the whole log so far satisfies `want`.
    pub fn wait_log_all(&self, what: &str, want: impl Fn(&[Value]) -> bool) {
        let until = Instant::now() + WAIT;
        while Instant::now() < until {
            if want(&self.log()) {
                return;
            }
            // Polling a log another thread fills; the deadline fails the test.
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("sim never logged {what}:\n{}", self.raw_log());
    }

    /// The commands it answered, as logged (lines with a `cmd`).
    pub fn commands(&self) -> Vec<Value> {
        self.log()
            .into_iter()
            .filter(|v| v.get("cmd").is_some())
            .collect()
    }
}

impl Drop for ReaderSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
