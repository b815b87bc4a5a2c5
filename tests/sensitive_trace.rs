//! design.md §2 at the most verbose level: `decode`, `replay` (both modes), `demo` and the
//! gateway simulator run with `CARDLANE_LOG=trace` in both log formats; stdout, stderr and every
//! file they leave (queue, WAL, simulator database) are searched for each fixture PAN and for
//! clear track text. None may appear.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

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

fn run(fmt: &str, dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(bin())
        .arg("--log-format")
        .arg(fmt)
        .args(args)
        .env("CARDLANE_LOG", "trace")
        .env("CARDLANE_API_KEY", KEY)
        .env("CARDLANE_QUEUE", dir.join("q.db"))
        .env_remove("CARDLANE_QUEUE_KEY")
        .output()
        .unwrap();
    // Trace level really is on where there is I/O to log.
    if args.contains(&"--gateway") || args[0] == "demo" {
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
        ] {
            let f = fixture(file);
            let mut args = vec!["decode"];
            if hex {
                args.push("--hex");
            }
            args.push(&f);
            check_output(file, &run(fmt, dir.path(), &args));
        }
        let tdes = fixture("decode/good/idtech_enhanced_tdes.hex");
        let clear = fixture("decode/good/tracks_with_lrc.txt");
        check_output(
            "replay decode-only",
            &run(fmt, dir.path(), &["replay", &tdes, &clear, &cap]),
        );
        let micr = fixture("captures/magtek-micr-serial.capture");
        let micr_kb = fixture("captures/magtek-micr-kb.capture");
        check_output(
            "replay decode-only (checks)",
            &run(fmt, dir.path(), &["replay", &micr, &micr_kb]),
        );

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
        let mut line = String::new();
        BufReader::new(sim.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .to_string();
        // Encrypted captures of 4111111111111111 (keyboard ID TECH, iDynamo), decrypted by the sim.
        let enc1 = fixture("captures/idtech-securemag-kb.capture");
        let enc2 = fixture("captures/magtek-idynamo-kb.capture");
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
            ],
        );
        check_output("replay --gateway", &replay);
        assert!(
            replay.status.success(),
            "{}",
            String::from_utf8_lossy(&replay.stdout)
        );
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
        check_output("queue list", &run(fmt, dir.path(), &["queue", "list"]));
        // Past the replay's short retry delays, so the flush has records due.
        std::thread::sleep(std::time::Duration::from_millis(2500));
        check_output(
            "queue flush",
            &run(fmt, dir.path(), &["queue", "flush", "--gateway", &url]),
        );
        let _ = sim.kill();
        let _ = sim.wait();
        check_output("demo", &run(fmt, dir.path(), &["demo"]));
        check_dir(dir.path());
    }
}
