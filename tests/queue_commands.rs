//! `cardlane queue` as an operator uses it after an outage: `flush` sends everything held now
//! (backoff or not) and says why what is left was not sent, a corrupt row makes it fail,
//! `list` shows each record's next attempt, a missing queue file is an error, and a closed pipe
//! (`queue list | head -1`) ends the output without a panic.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const KEY: &str = "queue-commands-key";

/// Public test cards (PAN, Track 1 name, YYMM), typed by a clear keyboard-wedge reader.
const CARDS: &[(&str, &str, &str)] = &[
    ("4111111111111111", "TEST/VISA", "2912"),
    ("5555555555554444", "DOE/JANE", "3001"),
    ("6011111111111117", "DISC/OVER", "2705"),
];

fn capture(dir: &Path) -> PathBuf {
    let mut s = String::from(
        "# cardlane capture v1\n# profile: generic-keyboard-wedge\n# transport: keyboard\n\
         # source: synthetic; public test PANs, clear tracks\n",
    );
    for (pan, name, yymm) in CARDS {
        s.push_str(&format!(
            "+40ms text %B{pan}^{name}^{yymm}1010000000000000?\n+7ms text ;{pan}={yymm}1010000000000?\\r\n"
        ));
    }
    let path = dir.join("lane.capture");
    std::fs::write(&path, s).unwrap();
    path
}

fn cardlane(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(args)
        .env("CARDLANE_API_KEY", KEY)
        .env_remove("CARDLANE_QUEUE_KEY")
        .env_remove("CARDLANE_LOG")
        .env("CARDLANE_QUEUE", dir.join("q.db"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

struct Sim {
    child: Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim() -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["gateway-sim", "--listen", "127.0.0.1:0"])
        .env("CARDLANE_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    Sim { child, url }
}

/// A port nothing listens on.
fn closed_gateway() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// Three swipes replayed while the gateway is down: durable, not sent.
fn queued_after_outage(dir: &Path) {
    let fixture = capture(dir);
    let out = cardlane(
        dir,
        &[
            "replay",
            "--gateway",
            &closed_gateway(),
            "--allow-clear",
            "--no-delay",
            "--wait",
            "0",
            fixture.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        CARDS.len()
    );
}

/// What a long outage leaves: every record's next attempt an hour away (its backoff).
fn push_next_attempts(dir: &Path, at_ms: i64) {
    let conn = rusqlite::Connection::open(dir.join("q.db")).unwrap();
    conn.execute(
        "UPDATE records SET next_attempt = ?1, state = 'pending'",
        [at_ms],
    )
    .unwrap();
}

fn list(dir: &Path) -> Vec<Value> {
    let out = cardlane(dir, &["queue", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn flush_after_an_outage_sends_everything_held_and_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    queued_after_outage(dir.path());
    let later = now_ms() + 3_600_000;
    push_next_attempts(dir.path(), later);

    // `list` shows when each record is tried next.
    let held = list(dir.path());
    assert_eq!(held.len(), CARDS.len());
    for r in &held {
        assert_eq!(r["next_attempt_ms"], later, "{r}");
        let in_s = r["next_attempt_in_s"].as_i64().unwrap();
        assert!((3_500..=3_600).contains(&in_s), "{r}");
    }

    // Still down: a manual flush tries every record anyway and says why each is still held.
    let out = cardlane(
        dir.path(),
        &["queue", "flush", "--gateway", &closed_gateway()],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"sent": 0, "failed": 0, "remaining": 3})
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("connect failed").count(), CARDS.len(), "{err}");

    // The gateway is back; the records' backoff says "in an hour"; flush sends them now.
    push_next_attempts(dir.path(), later);
    let sim = start_sim();
    let out = cardlane(dir.path(), &["queue", "flush", "--gateway", &sim.url]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"sent": 3, "failed": 0, "remaining": 0})
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(list(dir.path()).is_empty());
}

#[test]
fn a_corrupt_row_makes_flush_fail() {
    let dir = tempfile::tempdir().unwrap();
    queued_after_outage(dir.path());
    push_next_attempts(dir.path(), now_ms());
    {
        // One sealed payload damaged on disk: it can never be sent.
        let conn = rusqlite::Connection::open(dir.path().join("q.db")).unwrap();
        let id: i64 = conn
            .query_row("SELECT MIN(id) FROM records", [], |r| r.get(0))
            .unwrap();
        let mut ct: Vec<u8> = conn
            .query_row("SELECT payload FROM records WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        ct[0] ^= 0xFF;
        conn.execute(
            "UPDATE records SET payload = ?1 WHERE id = ?2",
            rusqlite::params![ct, id],
        )
        .unwrap();
    }
    let sim = start_sim();
    let out = cardlane(dir.path(), &["queue", "flush", "--gateway", &sim.url]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"sent": 2, "failed": 1, "remaining": 0})
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"));
}

#[test]
fn list_of_a_missing_queue_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = cardlane(dir.path(), &["queue", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no queue at"));
    assert!(!dir.path().join("q.db").exists());
}

#[test]
fn list_into_a_closed_pipe_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    queued_after_outage(dir.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["queue", "list"])
        .env("CARDLANE_QUEUE", dir.path().join("q.db"))
        .env_remove("CARDLANE_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away before anything is written (`| head -0`, a closed terminal).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
