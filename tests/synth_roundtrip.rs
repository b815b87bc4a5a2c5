//! `cardlane synth` through the binary: random valid tracks → synth → decode with the BDK
//! (library) → the decrypted tracks equal the input, for every format and both ciphers where
//! the format can carry AES. Plus the command's error exits.
use std::process::{Command, Output};

use cardlane::card::CardRead;
use cardlane::crypto::BdkDecryptor;
use cardlane::parse;
use proptest::prelude::*;

mod common;
use common::OutputWithin;

const BIN: &str = env!("CARGO_BIN_EXE_cardlane");

fn synth(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("synth")
        .args(args)
        .env_remove("CARDLANE_BDK")
        .output_within()
}

#[derive(Debug, Clone)]
struct Card {
    t1: String,
    t2: String,
    t3: Option<String>,
    last4: String,
}

fn card() -> impl Strategy<Value = Card> {
    (
        "[1-9][0-9]{11,17}",
        "[A-Z]{1,10}( [A-Z]{1,4})?/[A-Z]{1,8}",
        (0u8..100, 1u8..=12),
        "[0-9]{3}",
        "[0-9]{0,20}",
        proptest::option::of("[0-9]{1,40}=[0-9]{0,30}"),
    )
        .prop_map(|(body, name, (yy, mm), svc, disc, t3)| {
            let pan = common::with_check_digit(&body);
            let exp = format!("{yy:02}{mm:02}");
            // Keep Track 1 within 78 and Track 2 within 39 characters (LRC excluded).
            let room1 = 78usize.saturating_sub(2 + pan.len() + 1 + name.len() + 1 + 7 + 1);
            let room2 = 39usize.saturating_sub(1 + pan.len() + 1 + 7 + 1);
            let d1 = &disc[..disc.len().min(room1)];
            let d2 = &disc[..disc.len().min(room2)];
            Card {
                t1: format!("%B{pan}^{name}^{exp}{svc}{d1}?"),
                t2: format!(";{pan}={exp}{svc}{d2}?"),
                t3: t3.map(|b| format!("{b}?")),
                last4: pan[pan.len() - 4..].to_string(),
            }
        })
}

/// (format, cipher, is text, carries track 3, Track 3 start sentinel, encrypting)
const FORMATS: &[(&str, &str, bool, bool, &str, bool)] = &[
    ("idtech-enhanced", "tdes", false, true, ";", true),
    ("idtech-enhanced", "aes", false, true, ";", true),
    ("idtech-enhanced-kb", "tdes", true, true, ";", true),
    ("idtech-enhanced-kb", "aes", true, true, ";", true),
    ("vivotech2", "tdes", false, true, ";", true),
    ("vivotech2", "aes", false, true, ";", true),
    ("idtech-original", "tdes", false, false, ";", true),
    ("idtech-original-kb", "tdes", true, false, ";", true),
    ("magtek-hid", "tdes", false, true, "+", true),
    ("magtek-sl3", "tdes", true, true, "+", true),
    ("magtek-sl2", "tdes", true, true, "+", false),
    ("tracks", "tdes", true, true, "+", false),
];

fn decode(out: &[u8], text: bool, dec: &BdkDecryptor) -> CardRead {
    let bytes = if text {
        out.to_vec()
    } else {
        hex::decode(String::from_utf8_lossy(out).trim()).unwrap()
    };
    let r = parse::decode_frame(&bytes).unwrap();
    parse::decrypt_read(&r, dec, None).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn synth_then_decode_gives_back_the_tracks(c in card(), bdk: [u8; 16], ksn: [u8; 10]) {
        let bdk_hex = hex::encode_upper(bdk);
        let ksn_hex = hex::encode_upper(ksn);
        let dec = BdkDecryptor::new(&bdk).unwrap();
        for &(format, cipher, text, has_t3, ss3, encrypting) in FORMATS {
            let t3 = c.t3.as_ref().filter(|_| has_t3).map(|t| format!("{ss3}{t}"));
            let mut args = vec!["--format", format, "--hex", "--track1", &c.t1, "--track2", &c.t2];
            if let Some(t3) = &t3 {
                args.extend(["--track3", t3.as_str()]);
            }
            if encrypting {
                args.extend(["--bdk", &bdk_hex, "--ksn", &ksn_hex, "--cipher", cipher]);
            }
            let out = synth(&args);
            prop_assert!(out.status.success(), "{format} {cipher}: {}", String::from_utf8_lossy(&out.stderr));
            let r = decode(&out.stdout, text, &dec);
            let got = if encrypting { r.decrypted.clone().unwrap() } else { r.clear.clone() };
            let got: Vec<Option<String>> =
                got.iter().map(|t| t.as_ref().map(|t| t.expose().to_string())).collect();
            prop_assert_eq!(got[0].as_deref(), Some(c.t1.as_str()), "{} {}", format, cipher);
            prop_assert_eq!(got[1].as_deref(), Some(c.t2.as_str()), "{} {}", format, cipher);
            prop_assert_eq!(got[2].as_deref(), t3.as_deref(), "{} {}", format, cipher);
            prop_assert_eq!(r.last4.as_deref(), Some(c.last4.as_str()));
        }
    }
}

const T1: &str = "%B4111111111111111^TEST/CARD^2912101?";
const T2: &str = ";4111111111111111=2912101?";
const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const KSN: &str = "FFFF9876543210E00001";

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn errors_exit_1_or_2_and_never_echo_card_data() {
    // The BDK only from the command line: the environment is not read.
    let o = Command::new(BIN)
        .args([
            "synth",
            "--format",
            "idtech-enhanced",
            "--track2",
            T2,
            "--ksn",
            KSN,
        ])
        .env("CARDLANE_BDK", BDK)
        .output_within();
    assert_eq!(code(&o), 2);
    // A malformed track is bad input (1); its text is not in the message.
    let o = synth(&[
        "--format",
        "tracks",
        "--track2",
        ";4111111111111111=29121?x",
    ]);
    assert_eq!(code(&o), 1);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("4111111111111111"));
    // A short BDK: 1, and the key is not echoed.
    let o = synth(&[
        "--format",
        "magtek-hid",
        "--track2",
        T2,
        "--bdk",
        "0123456789ABCDEF",
        "--ksn",
        KSN,
    ]);
    assert_eq!(code(&o), 1);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("0123456789ABCDEF"));
    // AES where the frame cannot say so, and a capture for a profile of the wrong transport: 2.
    let o = synth(&[
        "--format",
        "idtech-original",
        "--track1",
        T1,
        "--bdk",
        BDK,
        "--ksn",
        KSN,
        "--cipher",
        "aes",
    ]);
    assert_eq!(code(&o), 2);
    let o = synth(&[
        "--format",
        "magtek-sl3",
        "--track2",
        T2,
        "--bdk",
        BDK,
        "--ksn",
        KSN,
        "--capture",
        "--profile",
        "magtek-dynamag-hid",
    ]);
    assert_eq!(code(&o), 2);
    let o = synth(&["--capture", "--profile", "no-such-reader", "--track2", T2]);
    assert_eq!(code(&o), 2);
}

#[test]
fn capture_chunks_follow_the_profile() {
    // eDynamo: numbered reports, 888 bytes each plus the id byte → one 889-byte chunk.
    let o = synth(&[
        "--capture",
        "--profile",
        "magtek-edynamo-hid",
        "--track1",
        T1,
        "--track2",
        T2,
        "--bdk",
        BDK,
        "--ksn",
        KSN,
    ]);
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    let cap = cardlane::capture::Capture::parse(&text).unwrap();
    assert_eq!(cap.chunks.len(), 1);
    assert_eq!(cap.chunks[0].bytes.len(), 889);
    assert_eq!(cap.chunks[0].bytes[0], 1);
    assert!(cap
        .headers
        .source
        .as_deref()
        .unwrap()
        .contains("ANSI test BDK"));
    // Augusta: 64-byte reports, the last zero-filled; the frame is their concatenation.
    let o = synth(&[
        "--capture",
        "--profile",
        "idtech-augusta-hid",
        "--track1",
        T1,
        "--track2",
        T2,
        "--bdk",
        BDK,
        "--ksn",
        KSN,
    ]);
    let cap = cardlane::capture::Capture::parse(&String::from_utf8(o.stdout).unwrap()).unwrap();
    assert!(cap.chunks.len() > 1);
    assert!(cap.chunks.iter().all(|c| c.bytes.len() == 64));
    let frame = synth(&[
        "--format",
        "idtech-enhanced",
        "--track1",
        T1,
        "--track2",
        T2,
        "--bdk",
        BDK,
        "--ksn",
        KSN,
    ])
    .stdout;
    let joined: Vec<u8> = cap.chunks.iter().flat_map(|c| c.bytes.to_vec()).collect();
    assert_eq!(&joined[..frame.len()], &frame[..]);
    assert!(joined[frame.len()..].iter().all(|&b| b == 0));
    // A key other than the ANSI test BDK is not written into the capture header.
    let o = synth(&[
        "--capture",
        "--profile",
        "idtech-serial",
        "--track2",
        T2,
        "--bdk",
        "00112233445566778899AABBCCDDEEFF",
        "--ksn",
        KSN,
    ]);
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(!text.contains("00112233445566778899AABBCCDDEEFF"));
    assert!(text.lines().filter(|l| l.starts_with('+')).count() > 3);
}

#[test]
fn decode_bdk_through_the_binary_on_sample_04() {
    // /work/shared/samples/04_idtech_unimag2_enhanced.txt; expected tracks are the sample's
    // published clear tracks (ID TECH UniMag II manual), LRC excluded.
    let payload = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sample04.hex");
    std::fs::write(&file, payload).unwrap();
    let o = Command::new(BIN)
        .args(["decode", "--hex", "--bdk", BDK])
        .arg(&file)
        .output_within();
    assert_eq!(code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["decrypted"]["1"],
        "%B5150710200107861^PAYPASS/MASTERCARD^090910140000202?"
    );
    assert_eq!(v["decrypted"]["2"], ";5150710200107861=090910140000202?");
    assert_eq!(v["decrypted"]["3"], serde_json::Value::Null);
    // A BDK of the wrong length: exit 1, key not echoed.
    let o = Command::new(BIN)
        .args(["decode", "--hex", "--bdk", "0123456789ABCDEF"])
        .arg(&file)
        .output_within();
    assert_eq!(code(&o), 1);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("0123456789ABCDEF"));
}
