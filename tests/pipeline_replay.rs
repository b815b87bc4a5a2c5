//! Whole flows with real processes and files: `cardlane replay --gateway` and `cardlane queue
//! flush` against `cardlane gateway-sim` on 127.0.0.1:0 (faults injected, gateway down, wrong
//! API key, kill -9 mid-flush, SIGTERM mid-replay).
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{wait_output, wait_until, Lines, OutputWithin, WAIT};

const KEY: &str = "test-api-key-0001";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cardlane")
}

/// Public test cards: (PAN, Track 1 name, YYMM).
const CARDS: &[(&str, &str, &str)] = &[
    ("4111111111111111", "TEST/VISA", "2912"),
    ("5555555555554444", "DOE/JANE", "3001"),
    ("378282246310005", "AMEX/TEST", "2811"),
    ("6011111111111117", "DISC/OVER", "2705"),
    ("4005571701111111", "FDMS TEST CARD/VISA", "2512"),
    ("4761739001010119", "VISA ACQUIRER TEST/CARD 19", "2512"),
];

/// A keyboard-wedge capture: each swipe typed in two bursts, `gap_ms` apart from the last.
fn wedge_capture(cards: &[(&str, &str, &str)], gap_ms: u64) -> String {
    let mut s = String::from(
        "# cardlane capture v1\n# profile: generic-keyboard-wedge\n# transport: keyboard\n\
         # source: synthetic; public test PANs, clear tracks\n",
    );
    for (i, (pan, name, yymm)) in cards.iter().enumerate() {
        let delay = if i == 0 { 0 } else { gap_ms };
        s.push_str(&format!(
            "+{delay}ms text %B{pan}^{name}^{yymm}1010000000000000?\n+7ms text ;{pan}={yymm}1010000000000?\\r\n"
        ));
    }
    s
}

struct Sim {
    child: Child,
    url: String,
    addr: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(dir: &Path) -> Sim {
    let mut child = Command::new(bin())
        .args(["gateway-sim", "--listen", "127.0.0.1:0"])
        .args(["--bdk", "0123456789ABCDEFFEDCBA9876543210", "--db"])
        .arg(dir.join("sim.db"))
        .env("CARDLANE_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = Lines::new(child.stdout.take().unwrap()).next();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    let addr = url.strip_prefix("http://").unwrap().to_string();
    Sim { child, url, addr }
}

/// A minimal HTTP/1.1 call for the simulator's `/_sim/` hooks.
fn http(addr: &str, method: &str, path: &str, body: &str) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nx-authorization: {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 2"), "{head}");
    serde_json::from_str(body.trim()).unwrap_or(Value::Null)
}

fn customers(sim: &Sim) -> Vec<Value> {
    http(&sim.addr, "GET", "/_sim/customers", "")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn cardlane(dir: &Path, key: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("CARDLANE_API_KEY", key)
        .env_remove("CARDLANE_QUEUE_KEY")
        .env("CARDLANE_QUEUE", dir.join("q.db"))
        .output_within()
}

fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_fixtures(dir: &Path) -> Vec<PathBuf> {
    let a = dir.join("lane_a.capture");
    let b = dir.join("lane_b.capture");
    std::fs::write(&a, wedge_capture(&CARDS[..3], 40)).unwrap();
    std::fs::write(&b, wedge_capture(&CARDS[3..], 40)).unwrap();
    vec![a, b]
}

fn last4s(v: &[Value], key: &str) -> Vec<String> {
    let mut out: Vec<String> = v
        .iter()
        .map(|c| c[key].as_str().unwrap_or_default().to_string())
        .collect();
    out.sort();
    out
}

fn expected_last4() -> Vec<String> {
    let mut out: Vec<String> = CARDS
        .iter()
        .map(|(p, _, _)| p[p.len() - 4..].to_string())
        .collect();
    out.sort();
    out
}

/// Bytes of the queue database and its WAL/SHM, for "nothing in clear" checks.
fn queue_files(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(dir.join(format!("q.db{suffix}"))) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn replay_through_faults_saves_every_swipe_once() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path());
    http(
        &sim.addr,
        "POST",
        "/_sim/faults",
        r#"{"kind":"http-500","count":2}"#,
    );
    http(
        &sim.addr,
        "POST",
        "/_sim/faults",
        r#"{"kind":"commit-then-drop","count":2}"#,
    );
    let fixtures = write_fixtures(dir.path());
    let mut args = vec![
        "replay",
        "--gateway",
        &sim.url,
        "--allow-clear",
        "--wait",
        "30",
    ];
    let paths: Vec<String> = fixtures.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = cardlane(dir.path(), KEY, &args);
    let got = lines(&out);
    assert_eq!(got.len(), CARDS.len(), "{got:?}");
    for l in &got {
        assert_eq!(l["outcome"], "saved", "{l}");
        assert!(l["token"].as_str().is_some_and(|t| !t.is_empty()));
        assert!(l["customer_id"].as_str().unwrap().starts_with("CL"));
    }
    assert_eq!(got[0]["swipe"], 1);
    assert_eq!(got[3]["swipe"], 1);
    assert!(out.status.success());
    // Exactly one customer per swipe, with the cards' last 4 digits.
    let stored = customers(&sim);
    assert_eq!(stored.len(), CARDS.len(), "{stored:?}");
    assert_eq!(last4s(&stored, "account_last_4"), expected_last4());
    let mut ids: Vec<_> = got.iter().map(|l| l["customer_id"].clone()).collect();
    ids.sort_by_key(|v| v.to_string());
    let mut sim_ids: Vec<_> = stored.iter().map(|c| c["customer_id"].clone()).collect();
    sim_ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, sim_ids);
    // Names from Track 1 `SURNAME/GIVEN`.
    assert!(stored
        .iter()
        .any(|c| c["last_name"] == "DOE" && c["first_name"] == "JANE"));
    // Acknowledged records are gone.
    let list = cardlane(dir.path(), KEY, &["queue", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "");
}

#[test]
fn gateway_down_then_flush_killed_and_rerun_delivers_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let fixtures = write_fixtures(dir.path());
    let paths: Vec<String> = fixtures.iter().map(|p| p.display().to_string()).collect();
    let mut args = vec![
        "replay",
        "--gateway",
        &closed,
        "--allow-clear",
        "--no-delay",
        "--wait",
        "1",
    ];
    args.extend(paths.iter().map(String::as_str));
    let out = cardlane(dir.path(), KEY, &args);
    let got = lines(&out);
    assert_eq!(got.len(), CARDS.len());
    assert!(got.iter().all(|l| l["outcome"] == "queued"), "{got:?}");
    assert!(out.status.success());
    // Nothing readable at rest: no PAN, no track text, no name.
    let disk = queue_files(dir.path());
    assert!(!disk.is_empty());
    for (pan, name, _) in CARDS {
        assert!(!contains(&disk, pan), "PAN on disk");
        assert!(!contains(&disk, name), "name on disk");
    }
    // Track text: a start sentinel with the card's first digits. (Not "%B" alone: two given
    // bytes turn up in a few KB of ciphertext by chance, about once in 30 runs.)
    for (pan, _, _) in CARDS {
        assert!(
            !contains(&disk, &format!("%B{}", &pan[..6])),
            "track 1 on disk"
        );
        assert!(
            !contains(&disk, &format!(";{}", &pan[..6])),
            "track 2 on disk"
        );
    }

    // The gateway comes back slowly; a flush is killed mid-way, then run again. The delay
    // outlasts the test, so the two requests the flush sends first are still unanswered when
    // it is killed.
    let sim = start_sim(dir.path());
    http(
        &sim.addr,
        "POST",
        "/_sim/faults",
        r#"{"kind":"delay","count":2,"delay_ms":120000}"#,
    );
    let sending = |dir: &Path| {
        lines(&cardlane(dir, KEY, &["queue", "list"]))
            .iter()
            .filter(|r| r["state"] == "sending")
            .count()
    };
    // The replay's backoff (2 s at most) leaves the records not yet due for a while, and a
    // flush sends only what is due when it starts: start flushes until one has records in
    // flight, then SIGKILL it while the gateway holds them unanswered.
    let deadline = std::time::Instant::now() + WAIT;
    let in_flight = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no flush sent anything"
        );
        let mut flush = Command::new(bin())
            .args([
                "queue",
                "flush",
                "--gateway",
                &sim.url,
                "--concurrency",
                "2",
            ])
            .env("CARDLANE_API_KEY", KEY)
            .env("CARDLANE_QUEUE", dir.path().join("q.db"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut exited = false;
        wait_until("records in flight or the flush done", || {
            exited = flush.try_wait().unwrap().is_some();
            exited || sending(dir.path()) > 0
        });
        if exited {
            // Nothing was due yet: it sent nothing and kept everything.
            let report: Value = serde_json::from_slice(&wait_output(&mut flush).stdout).unwrap();
            assert_eq!(
                (report["sent"].as_u64(), report["remaining"].as_u64()),
                (Some(0), Some(CARDS.len() as u64)),
                "{report}"
            );
            continue;
        }
        flush.kill().unwrap(); // SIGKILL
        wait_output(&mut flush);
        break sending(dir.path());
    };
    // The kill left them in flight: unanswered, not stored, at most the two slots.
    assert!(
        (1..=2).contains(&in_flight),
        "{in_flight} records in flight at the kill"
    );
    assert_eq!(
        lines(&cardlane(dir.path(), KEY, &["queue", "list"])).len(),
        CARDS.len()
    );
    assert!(
        customers(&sim).is_empty(),
        "the delayed requests were not stored"
    );
    http(&sim.addr, "DELETE", "/_sim/faults", "");
    // Flush again until everything is sent (records still in backoff wait for a later run).
    let mut sent = 0;
    wait_until("the queue drained", || {
        let again = cardlane(dir.path(), KEY, &["queue", "flush", "--gateway", &sim.url]);
        let report: Value = serde_json::from_slice(&again.stdout).unwrap();
        assert_eq!(report["failed"], 0, "{report}");
        sent += report["sent"].as_u64().unwrap();
        report["remaining"] == 0 && again.status.success()
    });
    assert_eq!(sent, CARDS.len() as u64);
    let stored = customers(&sim);
    assert_eq!(stored.len(), CARDS.len(), "{stored:?}");
    assert_eq!(last4s(&stored, "account_last_4"), expected_last4());
    let list = cardlane(dir.path(), KEY, &["queue", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "");
}

#[test]
fn wrong_api_key_pauses_uploads_and_keeps_swipes() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path());
    let fixtures = write_fixtures(dir.path());
    let out = cardlane(
        dir.path(),
        "not-the-key",
        &[
            "replay",
            "--gateway",
            &sim.url,
            "--allow-clear",
            "--no-delay",
            "--wait",
            "1",
            &fixtures[0].display().to_string(),
        ],
    );
    let got = lines(&out);
    assert_eq!(got.len(), 3);
    // Kept in the queue, but a refused key is no success (issue 13, point 9).
    assert!(got.iter().all(|l| l["outcome"] == "auth-failed"), "{got:?}");
    assert_eq!(out.status.code(), Some(1));
    assert!(customers(&sim).is_empty());
    let list = lines(&cardlane(dir.path(), KEY, &["queue", "list"]));
    assert_eq!(list.len(), 3);
    assert!(list
        .iter()
        .any(|r| r["last_error"].as_str().is_some_and(|e| e.contains("auth"))));
}

#[test]
fn clear_reader_refused_without_allow_clear() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = write_fixtures(dir.path());
    let closed = "http://127.0.0.1:9";
    let out = cardlane(
        dir.path(),
        KEY,
        &[
            "replay",
            "--gateway",
            closed,
            "--no-delay",
            "--wait",
            "0",
            &fixtures[0].display().to_string(),
        ],
    );
    let got = lines(&out);
    assert!(got.iter().all(|l| l["outcome"] == "failed"), "{got:?}");
    assert_eq!(out.status.code(), Some(1));
    // Nothing was kept.
    let list = cardlane(dir.path(), KEY, &["queue", "list"]);
    assert_eq!(String::from_utf8_lossy(&list.stdout).trim(), "");
}

#[test]
fn sigterm_mid_replay_keeps_what_was_taken() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("slow.capture");
    // The second swipe comes ten minutes after the first: SIGTERM arrives in between.
    std::fs::write(&cap, wedge_capture(&CARDS[..2], 600_000)).unwrap();
    let child = Command::new(bin())
        .args([
            "replay",
            "--gateway",
            "http://127.0.0.1:9",
            "--allow-clear",
            "--wait",
            "60",
        ])
        .arg(&cap)
        .env("CARDLANE_API_KEY", KEY)
        .env("CARDLANE_QUEUE", dir.path().join("q.db"))
        .env("CARDLANE_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM once the first swipe has its outcome (durable, gateway unreachable).
    let mut child = child;
    let mut log = Lines::new(child.stderr.take().unwrap());
    log.until("the first swipe queued", |l| {
        l.contains("swipe outcome") && l.contains("queued")
    });
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child process id; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // It exits on the signal rather than after the capture's ten-minute gap (a hang fails
    // after WAIT).
    let out = wait_output(&mut child);
    let got = lines(&out);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["outcome"], "queued");
    assert!(out.status.success());
    let list = lines(&cardlane(dir.path(), KEY, &["queue", "list"]));
    assert_eq!(list.len(), 1);
}

#[test]
fn replay_decode_only_and_bad_frames() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = write_fixtures(dir.path());
    let good = cardlane(
        dir.path(),
        KEY,
        &["replay", &fixtures[0].display().to_string()],
    );
    let got = lines(&good);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0]["format"], "tracks");
    assert_eq!(got[0]["last4"], "1111");
    assert_eq!(got[0]["fixture"], fixtures[0].display().to_string());
    assert!(good.status.success());
    let broken = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/decode/broken/idtech_bad_lrc.hex"
    );
    let bad = cardlane(dir.path(), KEY, &["replay", broken]);
    let got = lines(&bad);
    assert_eq!(got[0]["error"]["code"], "bad-lrc");
    assert_eq!(bad.status.code(), Some(1));
}

/// The synth captures (every transport's chunking, garbage between frames, ciphertext the
/// simulator decrypts with the test BDK) while the simulator injects 500s and commit-then-drop.
#[test]
fn real_captures_through_faults_saved_once_with_matching_last4() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path());
    http(
        &sim.addr,
        "POST",
        "/_sim/faults",
        r#"{"kind":"http-500","count":3}"#,
    );
    http(
        &sim.addr,
        "POST",
        "/_sim/faults",
        r#"{"kind":"commit-then-drop","count":3}"#,
    );
    let caps = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/captures");
    let files = [
        "idtech-augusta-hid.capture",
        "idtech-securemag-kb.capture",
        "idtech-vp3350-hid.capture",
        "magtek-dynamag-kb.capture",
        "magtek-idynamo-kb.capture",
        "garbage-idtech-serial.capture",
        "multi-magtek-edynamo-hid.capture",
    ];
    let paths: Vec<String> = files.iter().map(|f| format!("{caps}/{f}")).collect();
    let mut args = vec![
        "replay",
        "--gateway",
        &sim.url,
        "--no-delay",
        "--wait",
        "30",
    ];
    args.extend(paths.iter().map(String::as_str));
    let out = cardlane(dir.path(), KEY, &args);
    let got = lines(&out);
    assert!(out.status.success(), "{got:?}");
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(got.iter().all(|l| l["outcome"] == "saved"), "{got:?}");
    let stored = customers(&sim);
    assert_eq!(stored.len(), 10, "{stored:?}");
    let mut want: Vec<String> = got
        .iter()
        .map(|l| {
            let m = l["masked_pan"].as_str().unwrap();
            m[m.len() - 4..].to_string()
        })
        .collect();
    want.sort();
    assert_eq!(last4s(&stored, "account_last_4"), want);
    // The gateway's last 4 are the cards' (expected.json, from the clear inputs).
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{caps}/expected.json")).unwrap())
            .unwrap();
    let mut listed: Vec<String> = Vec::new();
    for f in files {
        let cap = expected["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file"] == f)
            .unwrap();
        for fr in cap["frames"].as_array().unwrap() {
            listed.push(fr["last4"].as_str().unwrap().to_string());
        }
    }
    listed.sort();
    assert_eq!(last4s(&stored, "account_last_4"), listed);
}

#[test]
fn past_the_queue_cap_a_swipe_is_refused_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let fixtures = write_fixtures(dir.path());
    let mut args = vec![
        "replay",
        "--gateway",
        &closed,
        "--allow-clear",
        "--no-delay",
        "--wait",
        "1",
        "--max-records",
        "2",
    ];
    let paths: Vec<String> = fixtures.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = cardlane(dir.path(), KEY, &args);
    let got = lines(&out);
    assert_eq!(got.len(), CARDS.len());
    let queued = got.iter().filter(|l| l["outcome"] == "queued").count();
    let full = got
        .iter()
        .filter(|l| {
            l["outcome"] == "failed"
                && l["error"]
                    .as_str()
                    .is_some_and(|e| e.starts_with("queue full"))
        })
        .count();
    assert_eq!((queued, full), (2, CARDS.len() - 2), "{got:?}");
    // The operator is told: exit status 1, and the queue holds exactly the two taken.
    assert_eq!(out.status.code(), Some(1));
    let list = cardlane(dir.path(), KEY, &["queue", "list"]);
    let held = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|l| l.contains("\"pending\""))
        .count();
    assert_eq!(held, 2, "{}", String::from_utf8_lossy(&list.stdout));
}

/// README: a swipe's request may start while its row commits; the row is written `sending`
/// and the answer applied only after the commit, so an agent killed after the commit and
/// before the answer sends it again on the next start, and the gateway keeps one customer.
/// Here the simulator holds the direct send unanswered (one free slot, a fresh customer id:
/// the direct lane), the replay is killed once the row is committed `sending`, and a flush
/// (the next start) delivers it.
#[test]
fn killed_between_direct_send_and_answer_resends_on_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let sim = start_sim(dir.path());
    http(
        &sim.addr,
        "POST",
        "/_sim/faults",
        r#"{"kind":"delay","count":1,"delay_ms":120000}"#,
    );
    let cap = dir.path().join("one.capture");
    std::fs::write(&cap, wedge_capture(&CARDS[..1], 0)).unwrap();
    let replay = Command::new(bin())
        .args([
            "replay",
            "--gateway",
            &sim.url,
            "--allow-clear",
            "--no-delay",
            "--wait",
            "600",
        ])
        .arg(&cap)
        .env("CARDLANE_API_KEY", KEY)
        .env("CARDLANE_QUEUE", dir.path().join("q.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut replay = common::Reaper(replay);
    let held = |dir: &Path| lines(&cardlane(dir, KEY, &["queue", "list"]));
    // The request is at the gateway (which holds it) and the row is committed `sending`.
    wait_until("the swipe committed while its send is in flight", || {
        http(&sim.addr, "GET", "/_sim/stats", "")["customer_requests"] == 1
            && held(dir.path()).iter().any(|r| r["state"] == "sending")
    });
    replay.0.kill().unwrap(); // SIGKILL
    wait_output(&mut replay.0);
    let rows = held(dir.path());
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["state"], "sending", "{rows:?}");
    assert!(customers(&sim).is_empty(), "the gateway has not answered");
    http(&sim.addr, "DELETE", "/_sim/faults", "");

    // The next start: the row left `sending` is sent again.
    let mut sent = 0;
    wait_until("the queue drained", || {
        let out = cardlane(dir.path(), KEY, &["queue", "flush", "--gateway", &sim.url]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["failed"], 0, "{report}");
        sent += report["sent"].as_u64().unwrap();
        report["remaining"] == 0
    });
    assert_eq!(sent, 1);
    let stored = customers(&sim);
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0]["customer_id"], rows[0]["customer_id"]);
    assert_eq!(stored[0]["account_last_4"], "1111");
    assert!(held(dir.path()).is_empty());
}
