//! `cardlane demo` as a process: exits 0, every bundled swipe saved, masked PANs only, and the
//! table's last 4 digits are the ones fixtures/captures/expected.json lists; the driven
//! readers' reads (reader-sim's dip and tap over NEO 2, a `sim:` DynaFlex's dip over MMS) saved
//! with their entry modes.
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
    // 28 card swipes and 2 checks (a personal and a business one) from captures; the driven
    // readers' three reads have rows of their own (checked below).
    assert_eq!(rows.len(), 30, "{text}");
    assert!(rows.iter().all(|r| r.contains(" saved ")), "{text}");
    assert!(text.contains("33 of 33 swipes saved"), "{text}");
    // The driven readers: reader-sim (NEO 2) dips and taps the test PANs the demo gives it
    // (chip, entry mode 05; contactless chip, 07); the simulated DynaFlex dips its first test
    // card (05). All masked.
    let (dynaflex_pan, _) = cardlane::device::simulated::TEST_CARDS[0];
    let dynaflex_masked = format!("{}******{}", &dynaflex_pan[..6], &dynaflex_pan[12..]);
    for (name, masked, entry) in [
        ("reader-sim:dip", "476173******0119", "05"),
        ("reader-sim:tap", "541333******0608", "07"),
        ("sim:dynaflex-dip", dynaflex_masked.as_str(), "05"),
    ] {
        let row = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row: {text}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells[2], masked, "{row}");
        assert_eq!(cells[4], entry, "{row}");
        assert_eq!(cells[5], "saved", "{row}");
    }
    for pan in ["4761739001010119", "5413330089010608"] {
        assert!(!text.contains(pan), "clear PAN in the demo's output");
    }
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
                .any(|f| f["last4"] == last4 || f["account_last4"] == last4),
            "{row}"
        );
    }
}
