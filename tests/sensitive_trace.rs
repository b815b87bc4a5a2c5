//! design.md §2 at the most verbose level: `decode`, `replay` (both modes), `demo` and the
//! gateway simulator run with `CARDLANE_LOG=trace` in both log formats; stdout, stderr and every
//! file they leave (queue, WAL, simulator database) are searched for each fixture PAN and for
//! clear track text. None may appear. PIN blocks (issue 17): `run` with a keypad `reader-sim`
//! and `gateway-sim`, all at trace in both formats; every output, file, metric and event is
//! searched for the blocks' hex in upper and lower case.
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{wait_until, Lines, OutputWithin};
mod driven_pin;

const KEY: &str = "trace-test-key-42";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cardlane")
}

fn fixture(rel: &str) -> String {
    format!("{}/fixtures/{rel}", env!("CARGO_MANIFEST_DIR"))
}

/// PANs of the fixtures used below (from their `# clear:` provenance lines and the capture
/// written here), and clear track fragments.
const SECRETS: &[&str] = &[
    "4761739001010119",
    "5413330089020011",
    "5452300551227189",
    "4111111111111111",
    "5555555555554444",
    "=29121010",
    "^29121010",
    // Bank account numbers of the MICR fixtures and check captures (sensitive like a PAN).
    "123456789",
    "246801357",
    "5551234321",
    "0012345678",
];

const CAPTURE: &str = "# cardlane capture v1\n# profile: generic-keyboard-wedge\n\
# source: synthetic; public test PANs\n\
+0ms text %B4111111111111111^TEST/VISA^29121010000000000000?\n\
+5ms text ;4111111111111111=29121010000000000?\\r\n\
+10ms text %B5555555555554444^DOE/JANE^30011010000000000000?;5555555555554444=30011010000000000?\\r\n";

/// Every PAN the bundled captures (and so the demo) carry: the `CARDS` table of
/// fixtures/captures/make.sh, which generated them.
fn capture_pans() -> Vec<String> {
    let script = std::fs::read_to_string(fixture("captures/make.sh")).unwrap();
    let pans: Vec<String> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split('|').next())
        .filter(|p| p.len() >= 13 && p.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    assert!(pans.len() >= 9, "make.sh CARDS table not found");
    pans
}

fn check(label: &str, bytes: &[u8]) {
    let pans = capture_pans();
    let all = SECRETS
        .iter()
        .copied()
        .chain(pans.iter().map(String::as_str));
    for s in all {
        assert!(
            !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
            "{label}: found card data `{}…`",
            &s[..4]
        );
    }
}

fn check_output(label: &str, out: &Output) {
    check(&format!("{label} stdout"), &out.stdout);
    check(&format!("{label} stderr"), &out.stderr);
}

fn check_dir(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() && p.extension().map_or(true, |e| e != "capture") {
            check(&p.display().to_string(), &std::fs::read(&p).unwrap());
        }
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The JSON lines a command printed (fails on any other line).
fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn run(fmt: &str, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .arg("--log-format")
        .arg(fmt)
        .args(args)
        .env("CARDLANE_LOG", "trace")
        .env("CARDLANE_API_KEY", KEY)
        .env("CARDLANE_QUEUE", dir.join("q.db"))
        .env_remove("CARDLANE_QUEUE_KEY")
        .output_within();
    // Trace level really is on where there is I/O to log (a flush with nothing due has none:
    // the flush loop checks its own).
    if (args.contains(&"--gateway") && args[0] != "queue") || args[0] == "demo" {
        assert!(!out.stderr.is_empty(), "{args:?}: no log output");
    }
    out
}

#[test]
fn no_card_data_at_trace_level() {
    // The search itself finds card data where it is (the capture written below).
    assert!(std::panic::catch_unwind(|| check("self-test", CAPTURE.as_bytes())).is_err());
    for fmt in ["human", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let cap = dir.path().join("wedge.capture");
        std::fs::write(&cap, CAPTURE).unwrap();
        let cap = cap.display().to_string();

        for (file, hex) in [
            ("decode/good/idtech_enhanced_tdes.hex", true),
            ("decode/good/magtek_hid.hex", true),
            ("decode/good/tracks_with_lrc.txt", false),
            ("decode/good/09_magtek_kb_sl2_sureswipe.txt", false),
            ("decode/good/micr_magtek_format_0000.txt", false),
            ("decode/good/micr_business_status.txt", false),
            ("decode/good/micr_stx_etx_lrc.hex", true),
            ("decode/good/magtek_emv_arqc_contact.hex", true),
            ("decode/good/magtek_emv_batch_contactless.hex", true),
        ] {
            let f = fixture(file);
            let mut args = vec!["decode"];
            if hex {
                args.push("--hex");
            }
            args.push(&f);
            let out = run(fmt, dir.path(), &args);
            check_output(file, &out);
            // The command really decoded the card (the search above is not over an error).
            assert!(out.status.success(), "{file}: {out:?}");
            let got = json_lines(&out);
            assert_eq!(got.len(), 1, "{file}");
            // (A check's masked account for the MICR fixtures.)
            let masked = &got[0]["masked_pan"];
            let account = &got[0]["check"]["account_masked"];
            assert!(
                masked.is_string() || account.is_string(),
                "{file}: {}",
                got[0]
            );
        }
        let tdes = fixture("decode/good/idtech_enhanced_tdes.hex");
        let clear = fixture("decode/good/tracks_with_lrc.txt");
        let decoded = run(fmt, dir.path(), &["replay", &tdes, &clear, &cap]);
        check_output("replay decode-only", &decoded);
        assert!(decoded.status.success(), "{decoded:?}");
        // One frame in each fixture file, two swipes in the capture.
        assert_eq!(json_lines(&decoded).len(), 4);
        let micr = fixture("captures/magtek-micr-serial.capture");
        let micr_kb = fixture("captures/magtek-micr-kb.capture");
        let checks = run(fmt, dir.path(), &["replay", &micr, &micr_kb]);
        check_output("replay decode-only (checks)", &checks);
        assert!(checks.status.success(), "{checks:?}");
        // Two checks in the serial capture, one in the keyboard one.
        assert_eq!(json_lines(&checks).len(), 3);
        // Epson replies: two checks and an abnormal end (exit 1 for the unreadable one).
        let epson = fixture("captures/epson-micr-serial.capture");
        let replies = run(fmt, dir.path(), &["replay", &epson]);
        check_output("replay decode-only (Epson checks)", &replies);
        assert_eq!(json_lines(&replies).len(), 3, "{replies:?}");

        // The simulator, logging at trace into a file we search afterwards.
        let sim_log = std::fs::File::create(dir.path().join("sim.log")).unwrap();
        let mut sim = Command::new(bin())
            .args([
                "--log-format",
                fmt,
                "gateway-sim",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--bdk", "0123456789ABCDEFFEDCBA9876543210"])
            .arg("--db")
            .arg(dir.path().join("sim.db"))
            .env("CARDLANE_LOG", "trace")
            .env("CARDLANE_API_KEY", KEY)
            .stdout(Stdio::piped())
            .stderr(sim_log)
            .spawn()
            .unwrap();
        let line = Lines::new(sim.stdout.take().unwrap()).next();
        // Killed when the test ends, also when an assertion fails on the way.
        let mut sim = KillOnDrop(sim);
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        // Encrypted captures of 4111111111111111 (keyboard ID TECH, iDynamo), decrypted by the sim.
        let enc1 = fixture("captures/idtech-securemag-kb.capture");
        let enc2 = fixture("captures/magtek-idynamo-kb.capture");
        // A DynaFlex chip read (5413330089020011): an EMV container in MMS packets.
        let enc3 = fixture("captures/magtek-dynaflex-hid.capture");
        // eDynamo and tDynamo reads (4761739001010119, 5413330089020011): EMV containers in
        // MagneSafe V5 notifications (input report 2).
        let enc4 = fixture("captures/chip-magtek-edynamo-hid.capture");
        let enc5 = fixture("captures/magtek-tdynamo-hid.capture");
        let replay = run(
            fmt,
            dir.path(),
            &[
                "replay",
                "--gateway",
                &url,
                "--allow-clear",
                "--no-delay",
                "--wait",
                "10",
                &cap,
                &clear,
                &enc1,
                &enc2,
                &enc3,
                &enc4,
                &enc5,
            ],
        );
        check_output("replay --gateway", &replay);
        assert!(
            replay.status.success(),
            "{}",
            String::from_utf8_lossy(&replay.stdout)
        );
        // Two clear swipes, one clear track file, five encrypted captures (one read each):
        // all reached the simulator, so its trace log covers real requests.
        let saved = json_lines(&replay);
        assert_eq!(saved.len(), 8, "{saved:?}");
        assert!(saved.iter().all(|l| l["outcome"] == "saved"), "{saved:?}");
        // Gateway down: everything goes through the queue file.
        let down = run(
            fmt,
            dir.path(),
            &[
                "replay",
                "--gateway",
                "http://127.0.0.1:9",
                "--allow-clear",
                "--no-delay",
                "--wait",
                "1",
                &cap,
            ],
        );
        check_output("replay (gateway down)", &down);
        let queued = json_lines(&down);
        assert_eq!(queued.len(), 2, "{queued:?}");
        assert!(
            queued.iter().all(|l| l["outcome"] == "queued"),
            "{queued:?}"
        );
        let list = run(fmt, dir.path(), &["queue", "list"]);
        check_output("queue list", &list);
        assert_eq!(json_lines(&list).len(), 2, "{list:?}");
        // Flush until both are sent: records in the replay's backoff wait for a later run.
        let mut sent = 0;
        wait_until("the queue flushed", || {
            let flush = run(fmt, dir.path(), &["queue", "flush", "--gateway", &url]);
            check_output("queue flush", &flush);
            let report: Value = serde_json::from_slice(&flush.stdout).unwrap();
            assert_eq!(report["failed"], 0, "{report}");
            let n = report["sent"].as_u64().unwrap();
            if n > 0 {
                assert!(!flush.stderr.is_empty(), "flush sent {n}: no log output");
            }
            sent += n;
            report["remaining"] == 0
        });
        assert_eq!(sent, 2, "the flush sent the queued swipes");
        let _ = sim.0.kill();
        let _ = sim.0.wait();
        // The simulator's trace log saw the requests it is searched for.
        let sim_log = std::fs::read_to_string(dir.path().join("sim.log")).unwrap();
        assert!(sim_log.contains("customer request"), "{sim_log}");
        // The V5 flow driven live: the driver, feature reports and notifications at trace.
        let v5 = run(
            fmt,
            dir.path(),
            &[
                "reader-sim",
                "--profile",
                "magtek-edynamo-hid",
                "--interface",
                "contact",
                "--card",
                "4761739001010119:2512",
                "--present-after",
                "10",
            ],
        );
        check_output("reader-sim magtek-edynamo-hid", &v5);
        assert!(v5.status.success(), "{v5:?}");
        let demo = run(fmt, dir.path(), &["demo"]);
        check_output("demo", &demo);
        assert!(demo.status.success(), "{demo:?}");
        check_dir(dir.path());
    }
}

/// PIN blocks at trace: a keypad reader's block (`"pin":"required"`) and a kiosk PIN pad's
/// (`"pin_block"`, formats 0 and 4) go through `run`, `reader-sim` and `gateway-sim`, all at
/// `CARDLANE_LOG=trace`, in both log formats. The blocks' hex, upper and lower case, and the PAN
/// appear in no output and no file they leave.
#[test]
fn no_pin_block_at_trace_level() {
    use driven_pin::*;
    use serde_json::json;
    const PAN: &str = "4761739001010119";
    const PIN: &str = "2580";
    // reader-sim's PIN key: its default initial KSN, first entry (tests/reader_sim_pin.rs).
    const READER_PIN_KSN: &str = "FFFF9876543211E00001";
    const PAD_TDES_KSN: &str = "FFFF9876543212E00009";
    const PAD_AES_KSN: &str = "123456789012345600000005";
    // Format 0 has no random fill: this is the very block the reader sends. The simulator
    // saving the customer below shows the block it got verifies under that KSN and PAN.
    let reader_block = pad_block(TDES_BDK, READER_PIN_KSN, PIN, PAN, 0);
    let block0 = pad_block(TDES_BDK, PAD_TDES_KSN, PIN, PAN, 0);
    let block4 = pad_block(AES_BDK, PAD_AES_KSN, PIN, PAN, 4);
    let needles: Vec<String> = [&reader_block, &block0, &block4]
        .iter()
        .flat_map(|b| [b.to_string(), b.to_lowercase()])
        .chain([PAN.to_string()])
        .collect();
    // The search finds a block where it is.
    assert!(std::panic::catch_unwind(|| assert_absent(
        "self-test",
        format!("x{}x", block4.to_lowercase()).as_bytes(),
        &needles
    ))
    .is_err());
    for fmt in ["human", "json"] {
        let log = format!("trace/{fmt}");
        let dir = tempfile::tempdir().unwrap();
        let mut gateway = GatewaySim::start(dir.path(), &log);
        let link = dir.path().join("keypad");
        let card = format!("{PAN}:2812");
        let mut sim = reader_sim(
            &link,
            &log,
            &[
                "--pin", PIN, "--card", &card, "--card", &card, "--card", &card,
            ],
        );
        let config = write_config(
            dir.path(),
            &gateway.url,
            &[ReaderEntry::neo2("keypad", &link)],
        );
        let (mut agent, base) = agent(&config, &log);
        let api = Api::new(&base, &dir.path().join("api-token"));
        api.wait_for("reader idle", |a| a.reader("keypad")["state"] == "idle");
        let events = events(&api);
        let mut bodies = vec![json!({"reader": "keypad", "pin": "required", "timeout_s": 20})];
        for (block, ksn, format) in [(&block0, PAD_TDES_KSN, 0), (&block4, PAD_AES_KSN, 4)] {
            bodies.push(json!({"reader": "keypad", "timeout_s": 20,
                "pin_block": {"block": block.to_lowercase(), "ksn": ksn, "format": format}}));
        }
        for body in bodies {
            let id = api.arm(body);
            let cap = api.until_done(&id);
            assert_eq!(cap["state"], "saved", "{fmt}: {cap}");
        }
        assert_eq!(gateway.customers().len(), 3);
        // The API's own outputs: metrics, queue, readers and the event stream (which saw the
        // three saves).
        let metrics = api.text("/metrics");
        assert!(metrics.contains("cardlane_"), "{metrics}");
        events.wait_for("three saved events", |_| {
            events
                .lines()
                .iter()
                .filter(|l| l.starts_with("event: saved"))
                .count()
                >= 3
        });
        let api_text = format!(
            "{metrics}\n{}\n{}\n{}",
            api.json("/v1/queue"),
            api.json("/v1/readers"),
            events.text()
        );
        assert_absent(&format!("{fmt} api"), api_text.as_bytes(), &needles);
        assert!(agent.terminate().success());
        assert!(gateway.proc.terminate().success());
        let _ = sim.child.kill();
        let _ = sim.child.wait();
        // Trace really was on: the agent logged the swipes it searched.
        assert!(agent.err.text().contains("TRACE"), "{fmt}: no trace lines");
        for (label, p) in [
            ("agent", &agent),
            ("gateway-sim", &gateway.proc),
            ("reader-sim", &sim),
        ] {
            assert_absent(
                &format!("{fmt} {label}"),
                p.all_output().as_bytes(),
                &needles,
            );
        }
        assert_absent_in_files(dir.path(), &needles);
    }
}

/// Clear tracks typed by a wedge head on a PTY: the fixture PANs of `CAPTURE` above.
const WEDGE_SWIPES: [&str; 2] = [
    "%B4111111111111111^TEST/VISA^29121010000000000000?;4111111111111111=29121010000000000?\r",
    "%B5555555555554444^DOE/JANE^30011010000000000000?;5555555555554444=30011010000000000?\r",
];

/// The console's answers (page, script, style, and every API route it calls, with its session
/// cookie; the event stream it reads) and the agent's trace log, while two swipes wait in the
/// queue (gateway down): none holds a PAN or clear track text.
#[test]
fn no_card_data_in_the_console() {
    use std::io::Write as _;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = serialport::TTYPort::pair().expect("openpty");
    let pts = serialport::SerialPort::name(&slave).unwrap();
    drop(slave);
    let config = dir.path().join("cardlane.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nbase_url = \"http://127.0.0.1:9\"\n[queue]\npath = \"{}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n\
             [[readers]]\nid = \"front\"\ndevice = \"serial:{pts}@9600\"\n\
             profile = \"generic-keyboard-wedge\"\n[lane]\nallow_clear_text = true\n\
             [devices]\nhotplug = false\n",
            dir.path().join("queue.db").display(),
            dir.path().join("api-token").display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent = Command::new(bin())
        .args(["run", "--config"])
        .arg(&config)
        .env("CARDLANE_LOG", "trace")
        .env("CARDLANE_API_KEY", KEY)
        .env_remove("CARDLANE_QUEUE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut out = Lines::new(agent.stdout.take().unwrap());
    let agent = KillOnDrop(agent);
    let ready = out.until("the ready line", |l| l.starts_with("ready: api on "));
    let api = ready.trim_start_matches("ready: api on ").to_string();
    let token = std::fs::read_to_string(dir.path().join("api-token")).unwrap();
    let token = token.trim().to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // Sign in as the console does: a one-time code for the session cookie.
    let cookie = rt.block_on(async {
        let code: Value = http
            .post(format!("{api}/v1/console/code"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = http
            .post(format!("{api}/console/session"))
            .header("sec-fetch-site", "same-origin")
            .json(&serde_json::json!({"code": code["code"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        let set = r.headers()["set-cookie"].to_str().unwrap();
        set.split(';').next().unwrap().to_string()
    });
    let get = |path: &str| -> String {
        rt.block_on(async {
            let r = http
                .get(format!("{api}{path}"))
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.text().await.unwrap()
        })
    };
    let deadline = Instant::now() + common::WAIT;
    while !get("/v1/readers").contains("\"connected\"") {
        assert!(Instant::now() < deadline, "the PTY reader never connected");
        std::thread::sleep(Duration::from_millis(20));
    }

    // The event stream the console reads, collected while both cards are swiped.
    let mut stream = rt.block_on(async {
        http.get(format!("{api}/v1/events"))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap()
    });
    let mut events = String::new();
    rt.block_on(async {
        // The stream's first chunk (`: connected`) means it is subscribed.
        let c = stream.chunk().await.unwrap().unwrap();
        events.push_str(&String::from_utf8_lossy(&c));
    });
    for s in WEDGE_SWIPES {
        master.write_all(s.as_bytes()).unwrap();
        master.flush().unwrap();
    }
    rt.block_on(async {
        tokio::time::timeout(common::WAIT, async {
            while events.matches("event: queued").count() < 2 {
                let c = stream.chunk().await.unwrap().unwrap();
                events.push_str(&String::from_utf8_lossy(&c));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("two queued events: {events}"))
    });
    drop(stream);
    check("console event stream", events.as_bytes());

    let mut seen_masked = String::new();
    for path in [
        "/",
        "/console/signin",
        "/console/app.js",
        "/console/app.css",
        "/v1/health",
        "/v1/readers",
        "/v1/queue",
        "/v1/reads",
        "/metrics",
    ] {
        let body = get(path);
        check(&format!("console GET {path}"), body.as_bytes());
        seen_masked.push_str(&body);
    }
    // The search covered the reads themselves: the queue and the last reads show both cards,
    // masked.
    for masked in ["411111******1111", "555555******4444"] {
        assert!(
            seen_masked.matches(masked).count() >= 2,
            "{masked} not in the console's answers"
        );
        assert!(events.contains(masked), "{masked} not in the events");
    }
    drop(agent);
    let log = std::fs::read(dir.path().join("agent.log")).unwrap();
    assert!(!log.is_empty(), "no trace output");
    check("agent trace log", &log);
    check_dir(dir.path());
}
