//! The agent process itself: no core files (its memory holds keys and clear card data), plain
//! log text when standard error is a pipe, and a readable `ready` log line.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[test]
fn the_agent_dumps_no_core_and_logs_plain_text_to_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cardlane.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nbase_url = \"http://127.0.0.1:9\"\n[queue]\npath = \"{}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n[devices]\nhotplug = false\n",
            dir.path().join("queue.db").display(),
            dir.path().join("api-token").display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--config"])
        .arg(&config)
        .env("CARDLANE_API_KEY", "k")
        .env("CARDLANE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let end = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let ready = loop {
        let left = end.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no ready log line: {seen:?}"));
        seen.push(line.clone());
        if line.contains("ready") {
            break line;
        }
    };
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
    assert!(ready.contains("api=127.0.0.1:"), "{ready}");
    assert!(!ready.contains("Some("), "{ready}");
    for l in &seen {
        assert!(!l.contains('\u{1b}'), "colour escape in a piped log: {l:?}");
    }
}
