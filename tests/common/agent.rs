//! `cardlane run` as a child process: its stdout and stderr merged into one line stream that
//! tests wait on, its API address from the `ready:` line, SIGTERM and the rest of its output.
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::WAIT;

pub struct Agent {
    child: Child,
    /// The API's base URL (`http://127.0.0.1:port`).
    pub api: String,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, stdout and stderr interleaved.
    pub seen: Vec<String>,
}

impl Agent {
    /// `cardlane run --config config` with `CARDLANE_LOG=log`, up to its `ready:` line.
    pub fn start(config: &Path, api_key: &str, log: &str) -> Agent {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
            .args(["run", "--config"])
            .arg(config)
            .env("CARDLANE_API_KEY", api_key)
            .env("CARDLANE_LOG", log)
            .env_remove("CARDLANE_QUEUE_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
        for stream in [out, err] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        let mut agent = Agent {
            child,
            api: String::new(),
            lines: rx,
            seen: Vec::new(),
        };
        let line = agent
            .wait_line(|l| l.starts_with("ready: api on http://"))
            .unwrap_or_else(|| panic!("no ready line; output: {:?}", agent.seen));
        agent.api = line.trim_start_matches("ready: api on ").to_string();
        agent
    }

    /// The next line that `want` takes, or `None` after `WAIT`.
    pub fn wait_line(&mut self, want: impl Fn(&str) -> bool) -> Option<String> {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.checked_duration_since(Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if want(&l) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// SIGTERM; the exit status once the agent has stopped and its output is read to the end.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let end = Instant::now() + WAIT;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "agent did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        // Read to the end of the pipes (the reader threads hang up there), however slowly those
        // threads get to run.
        let end = Instant::now() + WAIT;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(l) => self.seen.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(e) => panic!("agent output still open {WAIT:?} after exit: {e}"),
            }
        }
        status
    }

    pub fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
