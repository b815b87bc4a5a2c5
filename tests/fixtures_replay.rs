//! Every capture under fixtures/captures/ goes through `capture::frames` (the live framer),
//! `parse::decode_frame` and DUKPT decryption, and must give what `expected.json` says. That
//! file is written by `fixtures/captures/make.sh` from the same inputs as the captures (PAN,
//! name, expiry), not from decoder output.
use std::path::{Path, PathBuf};

use cardlane::capture::{self, Capture};
use cardlane::card::{CardRead, TrackStatus};
use cardlane::crypto::BdkDecryptor;
use cardlane::device::Profiles;
use cardlane::parse::micr::SymbolSet;
use cardlane::parse::{self, ParseError};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// By detection, as `decode` does; an Epson reply, which only its profile tells apart, in the
/// profile's symbol set (as `replay` decodes it).
fn decode(
    frame: &[u8],
    dec: &BdkDecryptor,
    micr: Option<(SymbolSet, bool)>,
) -> Result<CardRead, ParseError> {
    let r = parse::decode_frame_as(frame, micr)?;
    parse::decrypt_read(&r, dec, None)
}

fn check_frame(file: &str, n: usize, got: &Result<CardRead, ParseError>, want: &Value) {
    if let Some(code) = want.get("error").and_then(Value::as_str) {
        let e = got
            .as_ref()
            .expect_err(&format!("{file} frame {n}: want {code}"));
        assert_eq!(e.code(), code, "{file} frame {n}");
        return;
    }
    let r = match got {
        Ok(r) => r,
        Err(e) => panic!("{file} frame {n}: {} ({e})", e.code()),
    };
    // A check reader's frame: the check's fields, as make.sh built the line from.
    if let Some(aba) = want.get("aba_code").and_then(Value::as_str) {
        let c = r.check.as_ref().expect("a check read");
        assert_eq!(c.aba_code, aba, "{file} frame {n} aba_code");
        assert_eq!(
            c.account.last4().as_deref(),
            want["account_last4"].as_str(),
            "{file} frame {n} account_last4"
        );
        assert_eq!(
            c.check_number.as_deref(),
            want["check_number"].as_str(),
            "{file} frame {n} check_number"
        );
        assert_eq!(
            c.check_type.as_str(),
            want["type"].as_str().unwrap(),
            "{file} frame {n}"
        );
        return;
    }
    assert_eq!(
        r.last4.as_deref(),
        want["last4"].as_str(),
        "{file} frame {n} last4"
    );
    assert_eq!(
        r.expiry.as_deref(),
        want["expiry"].as_str(),
        "{file} frame {n} expiry"
    );
    assert_eq!(
        r.cardholder_name.as_deref(),
        want["name"].as_str(),
        "{file} frame {n} name"
    );
    if want.get("track1").and_then(Value::as_str) == Some("error") {
        assert_eq!(r.tracks[0].status, TrackStatus::Error, "{file} frame {n}");
    }
    // Encrypted reads must really have been decrypted, not only read from the masked tracks.
    if r.encrypted {
        let d = r.decrypted.as_ref().expect("decrypted tracks");
        let t2 = d[1]
            .as_ref()
            .map(|t| t.expose().to_string())
            .unwrap_or_default();
        let last4 = want["last4"].as_str().unwrap();
        assert!(
            t2.contains(&format!("{last4}=")),
            "{file} frame {n}: clear Track 2"
        );
    }
}

#[test]
fn every_capture_replays_to_its_expected_decode() {
    let exp = expected();
    let bdk = hex::decode(exp["bdk"].as_str().unwrap()).unwrap();
    let dec = BdkDecryptor::new(&bdk).unwrap();
    let profiles = Profiles::embedded().unwrap();
    let entries = exp["captures"].as_array().unwrap();

    // expected.json lists every capture file, and every profile has one.
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".capture"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = entries
        .iter()
        .map(|e| e["file"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    for p in profiles.iter() {
        assert!(
            on_disk.contains(&format!("{}.capture", p.id)),
            "no capture for profile {}",
            p.id
        );
    }

    for e in entries {
        let file = e["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir().join(file)).unwrap();
        let cap = Capture::parse(&text).unwrap();
        assert_eq!(cap.headers.profile.as_deref(), e["profile"].as_str());
        let frames = capture::frames(&cap, &profiles).unwrap();
        let want = e["frames"].as_array().unwrap();
        let micr = e["profile"]
            .as_str()
            .and_then(|id| profiles.get(id))
            .and_then(|p| p.micr_decoding())
            // The other check readers' lines are found by detection, as `decode` finds them.
            .filter(|(set, _)| set.is_epson_reply());
        let results: Vec<_> = frames
            .iter()
            .map(|f| decode(&f.bytes, &dec, micr))
            .collect();
        let cut = e.get("cut_final").and_then(Value::as_bool) == Some(true);
        if cut {
            // The unplugged frame is dropped by the framer or refused as truncated.
            assert!(
                results.len() == want.len() || results.len() == want.len() + 1,
                "{file}: {} frames",
                results.len()
            );
            if let Some(last) = results.get(want.len()) {
                let code = last
                    .as_ref()
                    .map(|_| "decoded")
                    .unwrap_or_else(|e| e.code());
                assert!(
                    matches!(code, "truncated" | "bad-length"),
                    "{file}: cut frame gave {code}"
                );
            }
        } else {
            assert_eq!(results.len(), want.len(), "{file}: frames");
        }
        for (n, (got, w)) in results.iter().zip(want).enumerate() {
            check_frame(file, n, got, w);
        }
    }
}

#[test]
fn a_wrong_bdk_does_not_decrypt_the_fixtures() {
    // The same captures under another key give decrypt-failed, never a wrong clear track.
    let dec = BdkDecryptor::new(&[0x11; 16]).unwrap();
    let profiles = Profiles::embedded().unwrap();
    let text = std::fs::read_to_string(dir().join("idtech-securemag-hid.capture")).unwrap();
    let cap = Capture::parse(&text).unwrap();
    let frames = capture::frames(&cap, &profiles).unwrap();
    assert_eq!(frames.len(), 1);
    let e = decode(&frames[0].bytes, &dec, None).unwrap_err();
    assert_eq!(e.code(), "decrypt-failed");
}

/// Frames of a capture under fixtures/captures/, through the live framer.
fn replay(rel: &str) -> (Capture, Vec<cardlane::device::framer::Frame>) {
    let profiles = Profiles::embedded().unwrap();
    let text = std::fs::read_to_string(dir().join(rel)).unwrap();
    let cap = Capture::parse(&text).unwrap();
    let frames = capture::frames(&cap, &profiles).unwrap();
    (cap, frames)
}

fn clear_track(r: &CardRead, i: usize) -> Option<String> {
    r.clear[i].as_ref().map(|t| t.expose().to_string())
}

#[test]
fn magtek_sureswipe_clear_report_decodes() {
    // make.sh's inputs for this profile (card 1): PAN 5413330089020011, TEST/MASTERCARD, 2812,
    // service code 201, discretionary 0000000123 (Track 2 keeps its first 8 digits).
    let (_, frames) = replay("magtek-sureswipe-hid.capture");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].bytes.len(), 337);
    let r = parse::decode_frame(&frames[0].bytes).unwrap();
    let j = r.to_json();
    assert_eq!(j["format"], "magtek-hid");
    assert_eq!(j["encrypted"], false);
    assert_eq!(j["ksn"], Value::Null);
    assert_eq!(j["masked_pan"], "541333******0011");
    assert_eq!(j["last4"], "0011");
    assert_eq!(j["brand"], "MC");
    assert_eq!(j["expiry"], "2812");
    assert_eq!(j["service_code"], "201");
    assert_eq!(j["cardholder_name"], "TEST/MASTERCARD");
    assert_eq!(j["tracks"]["3"]["status"], "absent");
    assert_eq!(
        clear_track(&r, 0).as_deref(),
        Some("%B5413330089020011^TEST/MASTERCARD^28122010000000123?")
    );
    assert_eq!(
        clear_track(&r, 1).as_deref(),
        Some(";5413330089020011=281220100000001?")
    );
    // Clear tracks never reach the JSON.
    assert!(!j.to_string().contains("5413330089020011"));
}

#[test]
fn real_sample_04_idtech_unimag2_replays_to_its_published_values() {
    // Published values: issue 2 "How it is checked" and the sample's source (UniMag II manual).
    let (cap, frames) = replay("samples/04_idtech_unimag2_enhanced.capture");
    assert!(cap.headers.source.as_deref().unwrap().contains("UniMag II"));
    assert!(cap.chunks.len() > 1, "delivered in several serial reads");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].bytes.len(), 219);
    let r = parse::decode_frame(&frames[0].bytes).unwrap();
    let j = r.to_json();
    assert_eq!(j["format"], "idtech-enhanced");
    assert_eq!(j["ksn"], "FFFF9876543210E0004A");
    assert_eq!(j["masked_pan"], "5150********7861");
    assert_eq!(j["last4"], "7861");
    assert_eq!(j["cardholder_name"], "PAYPASS/MASTERCARD");
    assert_eq!(j["device_serial"], "1234567890");
    assert_eq!(j["encrypted"], true);
    // Decrypted with the ANSI test BDK: the tracks the sample file lists, which end in their
    // LRCs `>` and `1`; cardlane reports a track from start to end sentinel, so the published
    // text is compared without that last character.
    let dec = BdkDecryptor::new(&hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap()).unwrap();
    let d = parse::decrypt_read(&r, &dec, None).unwrap();
    let clear = d.decrypted.as_ref().unwrap();
    let t = |i: usize| clear[i].as_ref().map(|t| t.expose().to_string());
    let published = [
        "%B5150710200107861^PAYPASS/MASTERCARD^090910140000202?>",
        ";5150710200107861=090910140000202?1",
    ];
    for (i, p) in published.iter().enumerate() {
        assert_eq!(t(i).as_deref(), p.get(..p.len() - 1), "track {}", i + 1);
    }
}

#[test]
fn real_sample_09_magtek_sl2_replays_to_its_published_values() {
    // Published values: issue 2 "How it is checked" and MagTek 99875475 App. D example 4.
    let (cap, frames) = replay("samples/09_magtek_kb_sl2_sureswipe.capture");
    assert!(cap.headers.source.as_deref().unwrap().contains("99875475"));
    assert!(cap.chunks.len() > 1, "delivered as keystroke bursts");
    assert_eq!(frames.len(), 1);
    let r = parse::decode_frame(&frames[0].bytes).unwrap();
    let j = r.to_json();
    for n in ["1", "2", "3"] {
        assert_eq!(j["tracks"][n]["status"], "ok", "track {n}");
    }
    assert_eq!(j["last4"], "7189");
    assert_eq!(j["expiry"], "0804");
    assert_eq!(j["service_code"], "321");
    assert_eq!(j["cardholder_name"], "HOGAN/PAUL");
    assert_eq!(j["encrypted"], false);
    assert_eq!(
        clear_track(&r, 0).as_deref(),
        Some("%B5452300551227189^HOGAN/PAUL      ^08043210000000725000000?")
    );
    assert_eq!(
        clear_track(&r, 1).as_deref(),
        Some(";5452300551227189=080432100000007250?")
    );
    assert_eq!(
        clear_track(&r, 2).as_deref(),
        Some("+5163499080020445=000000000000?")
    );
}
