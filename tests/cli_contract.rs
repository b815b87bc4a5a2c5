//! Exit codes and reason codes of the command line against design.md §3 (0 success, 1 the input
//! or the remote side was bad, 2 usage error), for the cases issue 13 point 19 found wrong.
use std::process::Command;

mod common;
use common::OutputWithin;

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(args)
        .output_within();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn replay_refuses_a_capture_of_an_unknown_version_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.capture");
    // A well-formed v1 body under a v2 first line: it must not be decoded as reader bytes.
    std::fs::write(
        &path,
        "# cardlane capture v2\n# profile: magtek-kb\n+0ms text %B4111111111111111^TEST/CARD^2912101?\\r\n",
    )
    .unwrap();
    let (code, out, err) = run(&["replay", path.to_str().unwrap()]);
    assert_eq!(code, 1, "{out} {err}");
    let line: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(line["error"]["code"], "capture-version", "{out}");
    let msg = line["error"]["message"].as_str().unwrap();
    assert!(msg.contains("`v2`") && msg.contains("v1"), "{msg}");
    assert!(!out.contains("4111111111111111"), "{out}");
}

#[test]
fn a_bad_profile_file_is_bad_input_not_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.toml"), "id = \"x\"\nbogus = [\n").unwrap();
    let profiles = dir.path().to_str().unwrap();
    let out = dir.path().join("out.capture");
    for args in [
        vec!["devices", "--profiles", profiles],
        vec![
            "capture",
            "--device",
            "serial:/dev/cardlane-test-absent",
            "--profiles",
            profiles,
            "--out",
            out.to_str().unwrap(),
        ],
        vec![
            "reader",
            "info",
            "--device",
            "serial:/dev/cardlane-test-absent",
            "--profiles",
            profiles,
        ],
    ] {
        let (code, stdout, err) = run(&args);
        assert_eq!(code, 1, "{args:?}: {stdout} {err}");
        assert!(
            err.contains("profile-parse") && err.contains("broken.toml"),
            "{args:?}: {err}"
        );
    }
    // An unknown profile id on the command line stays a usage error.
    let (code, _, err) = run(&[
        "capture",
        "--device",
        "serial:/dev/cardlane-test-absent",
        "--profile",
        "no-such-profile",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn an_error_names_its_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sim.db");
    std::fs::write(&db, vec![b'x'; 4096]).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["gateway-sim", "--test-bdk", "--db", db.to_str().unwrap()])
        .env("CARDLANE_API_KEY", "test-key-for-the-contract")
        .output_within();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    // rusqlite's message, once (it was printed by the wrapper and again as its source).
    assert_eq!(err.matches("file is not a database").count(), 1, "{err}");
    assert!(!err.contains("error: error"), "{err}");
}
