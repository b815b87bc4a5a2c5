//! `replay --gateway` and `queue flush --gateway` follow `run`'s URL rules up front (https, or
//! plain http to a loopback host), a non-URL is a usage error, and a wrong API key ends a
//! replay with `auth-failed` and exit 1.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const KEY: &str = "url-rules-key";

fn cardlane(dir: &Path, key: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(args)
        .env("CARDLANE_API_KEY", key)
        .env_remove("CARDLANE_QUEUE_KEY")
        .env_remove("CARDLANE_LOG")
        .env("CARDLANE_QUEUE", dir.join("q.db"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn capture(dir: &Path) -> String {
    let path = dir.join("lane.capture");
    std::fs::write(
        &path,
        "# cardlane capture v1\n# profile: generic-keyboard-wedge\n# transport: keyboard\n\
         # source: synthetic; public test PAN, clear tracks\n\
         +0ms text %B4111111111111111^TEST/VISA^29121010000000000000?\n\
         +7ms text ;4111111111111111=29121010000000000?\\r\n",
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn remote_plain_http_and_non_urls_are_usage_errors_before_any_connection() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = capture(dir.path());
    for (url, why) in [
        (
            "http://gateway.example.com",
            "plain http is allowed only to a loopback host",
        ),
        (
            "http://10.1.2.3:8080",
            "plain http is allowed only to a loopback host",
        ),
        ("gateway.example.com", "not a URL"),
        ("ftp://127.0.0.1/", "not a URL"),
    ] {
        let out = cardlane(
            dir.path(),
            KEY,
            &[
                "replay",
                "--gateway",
                url,
                "--allow-clear",
                "--no-delay",
                &fixture,
            ],
        );
        assert_eq!(out.status.code(), Some(2), "replay {url}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "replay {url}: {err}");
        assert!(out.stdout.is_empty());
        let out = cardlane(dir.path(), KEY, &["queue", "flush", "--gateway", url]);
        assert_eq!(out.status.code(), Some(2), "flush {url}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(why));
    }
    // Nothing was taken: no queue was even created.
    assert!(!dir.path().join("q.db").exists());
}

struct Sim(Child);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_wrong_api_key_ends_replay_with_auth_failed() {
    let dir = tempfile::tempdir().unwrap();
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
    let _sim = Sim(child);
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let fixture = capture(dir.path());
    let out = cardlane(
        dir.path(),
        "not-the-key",
        &[
            "replay",
            "--gateway",
            &url,
            "--allow-clear",
            "--no-delay",
            "--wait",
            "20",
            &fixture,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["outcome"], "auth-failed", "{}", lines[0]);
    // The swipe is not lost: it stays in the queue for when the key is fixed.
    let list = cardlane(dir.path(), KEY, &["queue", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).lines().count(), 1);
}
