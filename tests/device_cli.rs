//! `cardlane devices` and `cardlane capture` from standard input, run as processes.

use std::io::Write;
use std::process::{Command, Stdio};

use cardlane::capture::{frames, Capture};
use cardlane::device::Profiles;

mod common;
use common::OutputWithin;

fn cardlane() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cardlane"))
}

#[test]
fn devices_json_is_an_array_and_exits_zero() {
    let out = cardlane().args(["devices", "--json"]).output_within();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().expect("a JSON array");
    if list.is_empty() {
        // No reader attached (CI): exactly an empty array, nothing else on stdout.
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    }
    // Where one is attached it must carry a profile.
    for d in list {
        assert!(d["profile"].is_string(), "{d}");
        assert!(d["selector"].is_string(), "{d}");
    }
}

/// What `devices --json` prints for each reader (the CLI serializes `DeviceInfo`): a reader
/// in a known state, its JSON written out by hand from the contract (profile matched,
/// transport/mode, the permission problem and its fix). The CI machine has no readers, so the
/// process test above sees only `[]`.
#[test]
fn devices_json_entry_shape() {
    use cardlane::device::enumerate::DeviceInfo;
    let d = DeviceInfo {
        selector: "hidraw:/dev/hidraw3".into(),
        profile: Some("idtech-securemag-hid".into()),
        name: "ID TECH SecureMag".into(),
        transport: "hid".into(),
        vid: "0ACD".into(),
        pid: "2010".into(),
        path: "/dev/hidraw3".into(),
        problem: Some("permission-denied".into()),
        hint: Some("install devices/99-cardlane.rules".into()),
    };
    let want = serde_json::json!({
        "selector": "hidraw:/dev/hidraw3",
        "profile": "idtech-securemag-hid",
        "name": "ID TECH SecureMag",
        "transport": "hid",
        "vid": "0ACD",
        "pid": "2010",
        "path": "/dev/hidraw3",
        "problem": "permission-denied",
        "hint": "install devices/99-cardlane.rules"
    });
    assert_eq!(
        serde_json::to_value(vec![d]).unwrap(),
        serde_json::json!([want])
    );
}

#[test]
fn capture_from_stdin_records_text_chunks_and_frames() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kb.capture");
    let mut child = cardlane()
        .args(["capture", "--device", "stdin", "--allow-clear", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Test-card track text (Luhn-valid 4111… test PAN), then a bad read.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"%B4111111111111111^TEST/CARD^2912101?;4111111111111111=2912101?\r%E?;E?\r")
        .unwrap();
    let res = common::wait_output(&mut child);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let cap = Capture::parse(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        cap.headers.profile.as_deref(),
        Some("generic-keyboard-wedge")
    );
    assert_eq!(cap.headers.transport.as_deref(), Some("stdin"));
    let f = frames(&cap, &Profiles::embedded().unwrap()).unwrap();
    assert_eq!(f.len(), 2);
    assert_eq!(f[1].bytes.as_slice(), b"%E?;E?");
}

#[test]
fn capture_refuses_clear_reader_without_flag_and_bad_selector() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.capture");
    let res = cardlane()
        .args(["capture", "--device", "stdin", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .output_within();
    assert_eq!(res.status.code(), Some(2));
    assert!(!out.exists(), "nothing written");
    let res = cardlane()
        .args(["capture", "--device", "usb:1:2", "--out"])
        .arg(&out)
        .output_within();
    assert_eq!(res.status.code(), Some(2));
    // A reader that is not there: exit 1 with a hint.
    let res = cardlane()
        .args(["capture", "--device", "hidraw:/dev/hidraw-none", "--out"])
        .arg(&out)
        .output_within();
    assert_eq!(res.status.code(), Some(1));
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(err.contains("not found"), "{err}");
}
