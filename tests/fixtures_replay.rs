//! Every capture under fixtures/captures/ goes through `capture::frames` (the live framer),
//! `parse::decode_frame` and DUKPT decryption, and must give what `expected.json` says. That
//! file is written by `fixtures/captures/make.sh` from the same inputs as the captures (PAN,
//! name, expiry), not from decoder output.
use std::path::{Path, PathBuf};

use cardlane::capture::{self, Capture};
use cardlane::card::{CardRead, TrackStatus};
use cardlane::crypto::BdkDecryptor;
use cardlane::device::Profiles;
use cardlane::parse::{self, ParseError};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures")
}

fn expected() -> Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn decode(frame: &[u8], dec: &BdkDecryptor) -> Result<CardRead, ParseError> {
    let r = parse::decode_frame(frame)?;
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

    let mut gaps = Vec::new();
    for e in entries {
        let file = e["file"].as_str().unwrap();
        let text = std::fs::read_to_string(dir().join(file)).unwrap();
        let cap = Capture::parse(&text).unwrap();
        assert_eq!(cap.headers.profile.as_deref(), e["profile"].as_str());
        let frames = capture::frames(&cap, &profiles).unwrap();
        let want = e["frames"].as_array().unwrap();
        let results: Vec<_> = frames.iter().map(|f| decode(&f.bytes, &dec)).collect();

        if let Some(why) = e.get("known_gap").and_then(Value::as_str) {
            // A decoder gap, documented in fixtures/README.md: either it is closed (then the
            // values must match) or the frame is still refused with a typed error.
            assert_eq!(frames.len(), want.len(), "{file}: frames");
            for (n, (got, w)) in results.iter().zip(want).enumerate() {
                match got {
                    Ok(_) => check_frame(file, n, got, w),
                    Err(err) => gaps.push(format!("{file}: {} ({why})", err.code())),
                }
            }
            continue;
        }
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
    for g in gaps {
        eprintln!("known gap: {g}");
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
    let e = decode(&frames[0].bytes, &dec).unwrap_err();
    assert_eq!(e.code(), "decrypt-failed");
}
