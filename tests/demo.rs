//! `cardlane demo` as a process: exits 0, every bundled swipe saved, masked PANs only, and the
//! table's last 4 digits are the ones fixtures/captures/expected.json lists.
use std::process::Command;

mod common;
use common::OutputWithin;

#[test]
fn demo_saves_every_bundled_swipe() {
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .arg("demo")
        .env_remove("CARDLANE_API_KEY")
        .output_within();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.starts_with("gateway simulator on http://127.0.0.1:"),
        "{text}"
    );
    let rows: Vec<&str> = text.lines().filter(|l| l.contains(".capture")).collect();
    assert_eq!(rows.len(), 28, "{text}");
    assert!(rows.iter().all(|r| r.contains(" saved ")), "{text}");
    assert!(text.contains("28 of 28 swipes saved"));
    // Every row's masked PAN ends in a last 4 the capture's expected frames list.
    let expected: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/captures/expected.json")).unwrap();
    for row in rows {
        let file = row.split_whitespace().next().unwrap();
        let masked = row.split_whitespace().nth(2).unwrap();
        assert!(masked.contains("****"), "{row}");
        let cap = expected["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["file"] == file)
            .unwrap();
        let last4 = &masked[masked.len() - 4..];
        assert!(
            cap["frames"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["last4"] == last4),
            "{row}"
        );
    }
}
