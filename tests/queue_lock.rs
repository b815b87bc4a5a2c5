//! One process per queue file: `run` holds the queue's lock; `queue flush` and `replay` on the
//! same file are refused with a message naming the holder's pid, and run once it has gone.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const API_KEY: &str = "lock-test-key";

fn cardlane(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(args)
        .env("CARDLANE_API_KEY", API_KEY)
        .env_remove("CARDLANE_QUEUE_KEY")
        .env_remove("CARDLANE_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `cardlane run` on `dir/queue.db` with nothing but the API; returns once it is ready.
fn start_agent(dir: &Path) -> Child {
    let config = dir.join("cardlane.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nbase_url = \"http://127.0.0.1:9\"\n[queue]\npath = \"{}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n[devices]\nhotplug = false\n",
            dir.join("queue.db").display(),
            dir.join("api-token").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--config"])
        .arg(&config)
        .env("CARDLANE_API_KEY", API_KEY)
        .env_remove("CARDLANE_QUEUE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the agent did not print its ready line");
    assert!(ready.starts_with("ready:"), "{ready}");
    child
}

#[test]
fn a_second_process_on_the_queue_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let mut agent = start_agent(dir.path());
    let pid = agent.id();
    let queue = dir.path().join("queue.db");
    let lock = std::fs::read_to_string(dir.path().join("queue.db.lock")).unwrap();
    assert_eq!(lock.trim(), pid.to_string());
    let q = queue.to_str().unwrap();

    let flush = cardlane(&[
        "queue",
        "flush",
        "--queue",
        q,
        "--gateway",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(flush.status.code(), Some(1));
    let err = String::from_utf8_lossy(&flush.stderr);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("in use"), "{err}");

    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/captures/idtech-securemag-hid.capture"
    );
    let replay = cardlane(&[
        "replay",
        "--gateway",
        "http://127.0.0.1:9",
        "--queue",
        q,
        "--no-delay",
        "--wait",
        "0",
        fixture,
    ]);
    assert_eq!(replay.status.code(), Some(1));
    let err = String::from_utf8_lossy(&replay.stderr);
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(replay.stdout.is_empty(), "nothing was replayed");

    // The holder gone (SIGKILL: the kernel drops its lock), the queue is free again.
    agent.kill().unwrap();
    agent.wait().unwrap();
    let flush = cardlane(&[
        "queue",
        "flush",
        "--queue",
        q,
        "--gateway",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(
        flush.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&flush.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&flush.stdout).trim(),
        r#"{"failed":0,"remaining":0,"sent":0}"#
    );
}
