//! The simulator as a process: it listens on loopback only, and its database is private.
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn sim(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cardlane"));
    c.arg("gateway-sim")
        .args(args)
        .env("CARDLANE_API_KEY", "sim-cli-test-key")
        .stdin(Stdio::null());
    c
}

#[test]
fn listen_beyond_loopback_is_refused() {
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let out = sim(&["--listen", addr]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{addr}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("loopback only"), "{addr}: {err}");
        assert!(out.stdout.is_empty(), "{addr}: it must not have listened");
    }
}

#[test]
fn database_and_token_key_are_created_0600() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.db");
    let mut child = sim(&["--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut l = String::new();
        let _ = BufReader::new(out).read_line(&mut l);
        let _ = tx.send(l);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("no 'listening on' line within 30 s");
    assert!(line.starts_with("listening on http://127.0.0.1:"), "{line}");
    for f in ["sim.db", "sim.db.token-key"] {
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
}

/// The `/_sim/` hooks show who was saved and inject failures: without the API key they answer
/// 401 and change nothing.
#[test]
fn test_hooks_need_the_api_key() {
    use std::io::{Read, Write};
    let mut child = sim(&["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut l = String::new();
        let _ = BufReader::new(out).read_line(&mut l);
        let _ = tx.send(l);
    });
    let line = rx.recv_timeout(Duration::from_secs(30));
    let call = |addr: &str, head: &str| -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(s, "{head}Host: {addr}\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp
    };
    let result = std::panic::catch_unwind(|| {
        let line = line.expect("no 'listening on' line within 30 s");
        let addr = line
            .trim()
            .trim_start_matches("listening on http://")
            .to_string();
        for head in [
            "GET /_sim/customers HTTP/1.1\r\n",
            "GET /_sim/stats HTTP/1.1\r\n",
            "DELETE /_sim/faults HTTP/1.1\r\n",
            "GET /_sim/customers HTTP/1.1\r\nx-authorization: wrong-key\r\n",
        ] {
            let resp = call(&addr, head);
            assert!(resp.starts_with("HTTP/1.1 401"), "{head:?}: {resp}");
        }
        let ok = call(
            &addr,
            "GET /_sim/customers HTTP/1.1\r\nx-authorization: sim-cli-test-key\r\n",
        );
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
