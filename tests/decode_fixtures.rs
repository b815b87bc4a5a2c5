//! Replays fixtures/decode: good captures must decode to the values in their `# expect:` lines,
//! broken ones must fail with the code in their first line (`# expect-error: CODE`). Also runs
//! the `cardlane decode` binary on them.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cardlane::parse::{decode_frame, split_frames, validate_at, ParseError};
use serde_json::Value;

mod common;

fn dir(sub: &str) -> Vec<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/decode")
        .join(sub);
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

fn payload(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decodes a fixture as `decode` would: hex files as hex, others as raw bytes.
fn decode_file(p: &Path) -> Vec<Result<Value, ParseError>> {
    let text = std::fs::read_to_string(p).unwrap();
    let body = payload(&text);
    let bytes = if p.extension().is_some_and(|e| e == "hex") {
        let clean: String = body.split_whitespace().collect();
        match hex::decode(clean) {
            Ok(b) => b,
            Err(_) => return vec![Err(ParseError::BadHex)],
        }
    } else {
        body.into_bytes()
    };
    split_frames(&bytes)
        .into_iter()
        .map(|f| {
            decode_frame(f).map(|mut r| {
                validate_at(&mut r, 2612);
                r.to_json()
            })
        })
        .collect()
}

fn field<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

#[test]
fn good_fixtures_decode_to_their_expected_values() {
    for p in dir("good") {
        let text = std::fs::read_to_string(&p).unwrap();
        let results = decode_file(&p);
        assert_eq!(results.len(), 1, "{}", p.display());
        let v = results[0]
            .as_ref()
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let mut checked = 0;
        for line in text.lines() {
            let Some(kv) = line.strip_prefix("# expect: ") else {
                continue;
            };
            let (k, want) = kv.split_once('=').unwrap();
            let got = field(v, k);
            if k == "warnings" {
                assert!(
                    got.as_array().unwrap().iter().any(|w| w == want),
                    "{}: {k}",
                    p.display()
                );
            } else {
                assert_eq!(got.as_str(), Some(want), "{}: {k}", p.display());
            }
            checked += 1;
        }
        assert!(checked >= 3, "{} has too few expectations", p.display());
        // Card data never leaks into the JSON: no PAN of the corpus, masked text only, and
        // the masked PAN is the mask of one of them (so the list covers this card).
        let s = v.to_string();
        let pans = corpus_pans();
        for pan in &pans {
            assert!(
                !s.contains(pan.as_str()),
                "{}: PAN in the JSON",
                p.display()
            );
        }
        if let Some(m) = v["masked_pan"].as_str() {
            assert!(
                pans.iter().any(|pan| masks(m, pan)),
                "{}: {m} is no corpus PAN",
                p.display()
            );
        }
        // Nor a check's account number (the MICR fixtures' accounts).
        if v["format"] == "micr" {
            for acct in ["123456789", "1234567890", "246801357"] {
                assert!(!s.contains(acct), "{}", p.display());
            }
        }
    }
}

/// Whether `masked` (digits and `*`) is a mask of `pan`: same length, shown digits equal.
fn masks(masked: &str, pan: &str) -> bool {
    masked.len() == pan.len()
        && masked
            .bytes()
            .zip(pan.bytes())
            .all(|(m, d)| m == b'*' || m == d)
}

/// Runs of 13-19 digits right after a track's start (`%B`, `;`, `+`): the PANs `text` holds
/// in the clear. No Luhn filter: vendor samples such as sample 09's 5452300551227189 fail the
/// check digit.
fn pans_in(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    for (i, &c) in b.iter().enumerate() {
        if !matches!(c, b'B' | b';' | b'+') {
            continue;
        }
        let run: String = text[i + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        // MagTek's masked tracks keep the first 6 and last 4 and send '0' between: a mask as
        // the reader sent it, not a PAN.
        let zero_masked = run.len() > 10 && run[6..run.len() - 4].bytes().all(|d| d == b'0');
        if (13..=19).contains(&run.len()) && !zero_masked {
            out.push(run);
        }
    }
    out
}

/// Every PAN the decode fixtures hold in the clear: in their provenance comments (`# clear:`),
/// in clear track text, and in the ASCII of hex payloads (masked and clear track fields).
fn corpus_pans() -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for p in dir("good").into_iter().chain(dir("broken")) {
        let text = std::fs::read_to_string(&p).unwrap();
        out.extend(pans_in(&text));
        if p.extension().is_some_and(|e| e == "hex") {
            let clean: String = payload(&text).split_whitespace().collect();
            if let Ok(bytes) = hex::decode(clean) {
                out.extend(pans_in(&String::from_utf8_lossy(&bytes)));
            }
        }
    }
    // The cards the fixtures are made from (fixtures/README.md), at least.
    for pan in [
        "4761739001010119",
        "5413330089020011",
        "5452300551227189",
        "5150710200107861",
    ] {
        assert!(out.contains(pan), "{pan} not found in the corpus");
    }
    out
}

/// `cardlane decode` itself (stdout and stderr, at trace level) on every good fixture:
/// no PAN of the corpus.
#[test]
fn cli_decode_of_every_fixture_holds_no_pan() {
    let pans = corpus_pans();
    for p in dir("good") {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardlane"));
        cmd.arg("decode").env("CARDLANE_LOG", "trace");
        if p.extension().is_some_and(|e| e == "hex") {
            cmd.arg("--hex");
        }
        let out = common::OutputWithin::output_within(cmd.arg(&p));
        assert!(out.status.success(), "{}", p.display());
        let all = [out.stdout, out.stderr].concat();
        let text = String::from_utf8_lossy(&all);
        for pan in &pans {
            assert!(
                !text.contains(pan.as_str()),
                "{}: PAN in the output",
                p.display()
            );
        }
    }
}

#[test]
fn broken_fixtures_give_their_error_code() {
    for p in dir("broken") {
        let text = std::fs::read_to_string(&p).unwrap();
        let want = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-error: "))
            .unwrap_or_else(|| panic!("{} lacks # expect-error", p.display()))
            .trim()
            .to_string();
        let results = decode_file(&p);
        let got: Vec<&str> = results
            .iter()
            .filter_map(|r| r.as_ref().err().map(ParseError::code))
            .collect();
        assert_eq!(got.first().copied(), Some(want.as_str()), "{}", p.display());
    }
}

fn cardlane(args: &[&str], stdin: Option<&[u8]>) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cardlane"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut i = child.stdin.take().unwrap();
        if let Some(b) = stdin {
            i.write_all(b).unwrap();
        }
    }
    let out = common::wait_output(&mut child);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/decode")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn cli_sample_04_hex() {
    let (code, out) = cardlane(
        &[
            "decode",
            "--hex",
            &fixture("good/04_idtech_unimag2_enhanced.hex"),
        ],
        None,
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["format"], "idtech-enhanced");
    assert_eq!(v["ksn"], "FFFF9876543210E0004A");
    assert_eq!(v["masked_pan"], "5150********7861");
    assert_eq!(v["last4"], "7861");
    assert_eq!(v["cardholder_name"], "PAYPASS/MASTERCARD");
    assert_eq!(v["device_serial"], "1234567890");
    assert_eq!(v["decrypted"], Value::Null);
}

#[test]
fn cli_sample_09_from_stdin_raw() {
    let text = std::fs::read_to_string(fixture("good/09_magtek_kb_sl2_sureswipe.txt")).unwrap();
    let (code, out) = cardlane(&["decode"], Some(payload(&text).as_bytes()));
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for n in ["1", "2", "3"] {
        assert_eq!(v["tracks"][n]["status"], "ok");
    }
    assert_eq!(v["last4"], "7189");
    assert_eq!(v["expiry"], "0804");
    assert_eq!(v["service_code"], "321");
    assert_eq!(v["cardholder_name"], "HOGAN/PAUL");
    assert!(!out.contains("5452300551227189"));
}

#[test]
fn cli_several_frames_and_a_bad_one() {
    // Two swipes and a garbled one, one per line: two objects, one error, exit 1.
    let input = b"%B4111111111111111^TEST/CARD^2912101?;4111111111111111=2912101?\r\n;4111111111111111=2912101?7\n;5413330089020011=2512101000000000?\n";
    let (code, out) = cardlane(&["decode"], Some(input));
    assert_eq!(code, 1);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["last4"], "1111");
    assert_eq!(lines[1]["error"]["code"], "bad-lrc");
    assert!(lines[1]["error"]["message"].is_string());
    assert_eq!(lines[2]["brand"], "MC");
}

#[test]
fn cli_binary_frames_back_to_back_and_errors() {
    let text = std::fs::read_to_string(fixture("good/04_idtech_unimag2_enhanced.hex")).unwrap();
    let one = payload(&text);
    let two = format!("{one}\n{one}\n");
    let (code, out) = cardlane(&["decode", "--hex"], Some(two.as_bytes()));
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2);
    let bin = hex::decode(one.trim()).unwrap();
    let mut raw = bin.clone();
    raw.extend_from_slice(&bin);
    let (code, out) = cardlane(&["decode"], Some(&raw));
    assert_eq!((code, out.lines().count()), (0, 2));
    let (code, out) = cardlane(
        &["decode", "--hex", &fixture("broken/vivotech2_bad_crc.hex")],
        None,
    );
    assert_eq!(code, 1);
    assert_eq!(
        out.trim(),
        r#"{"error":{"code":"bad-crc","message":"CRC does not match (ViVOtech2)"}}"#
    );
    let (code, out) = cardlane(&["decode", "--hex"], Some(b"0G"));
    assert_eq!(code, 1);
    assert!(out.contains("bad-hex"));
    let (code, _) = cardlane(&["decode", "--variant", "nonsense"], Some(b""));
    assert_eq!(code, 2);
}

/// Chip data without its frame (SDK logs) and keyboard TLV cut short in a trailing tag decrypt
/// under the ANSI test BDK to the public test card they were made from (Visa acquirer test
/// card 19, reader-formats.md §2.7's example PAN).
#[test]
fn cli_bare_chip_data_and_cut_keyboard_tlv_decrypt() {
    let bdk = "0123456789ABCDEFFEDCBA9876543210";
    let want = ";4761739001010119=251220112340001230?";
    for (args, file, warn) in [
        (
            &["decode", "--hex", "--bdk", bdk][..],
            "good/emv_tlv_sdk_log.hex",
            false,
        ),
        (
            &["decode", "--bdk", bdk][..],
            "good/emv_tlv_keyboard_cut.txt",
            true,
        ),
    ] {
        let mut a = args.to_vec();
        let f = fixture(file);
        a.push(&f);
        let (code, out) = cardlane(&a, None);
        assert_eq!(code, 0, "{file}: {out}");
        let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(v["format"], "emv-tlv", "{file}");
        assert_eq!(v["decrypted"]["2"], want, "{file}");
        let truncated = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == "truncated");
        assert_eq!(truncated, warn, "{file}");
    }
}

/// `decode --bdk` judges Luhn on the PAN it decrypted: an ID TECH enhanced frame whose masked
/// PAN hides the check digit's error (4111111111111112 fails Luhn: digit sum 31) is flagged
/// only once decrypted.
#[test]
fn cli_decode_bdk_checks_luhn_on_the_clear_pan() {
    let bdk = "0123456789ABCDEFFEDCBA9876543210";
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args([
            "synth",
            "--format",
            "idtech-enhanced",
            "--bdk",
            bdk,
            "--ksn",
            "FFFF9876543210E00001",
            "--track2",
            ";4111111111111112=2912101?",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let frame = out.stdout;
    let warnings = |args: &[&str]| -> Vec<Value> {
        let (code, out) = cardlane(args, Some(&frame));
        assert_eq!(code, 0, "{out}");
        let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        v["warnings"].as_array().unwrap().clone()
    };
    let luhn = Value::from("pan-fails-luhn");
    assert!(warnings(&["decode", "--bdk", bdk]).contains(&luhn));
    assert!(!warnings(&["decode"]).contains(&luhn));
}
