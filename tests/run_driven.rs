//! `cardlane run` driving `cardlane reader-sim` (a simulated NEO 2 reader on a PTY), both as
//! real processes, with the gateway simulator on 127.0.0.1:0. `activate = "on-capture"`: a
//! kiosk capture saves a dipped card with the kiosk's names; a capture with no card times out
//! and the transaction is cancelled on the reader (05-01 answered); after the reader is swapped
//! for one that taps, a tap is saved. The simulators' command logs show correct CRCs and
//! nothing but a cancel during a transaction; no clear PAN anywhere.

mod common;
use common::agent::Agent;
use common::api::Api;
use common::gateway::Gateway;
use common::reader_sim::ReaderSim;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

const API_KEY: &str = "run-driven-test-key";
/// Test PANs (Visa, Mastercard); neither may appear in any output.
const DIP_PAN: &str = "4761739001010119";
const TAP_PAN: &str = "5413330089010608";
const FIRMWARE: &str = "NEO2 RUN TEST 1.2";

/// What every NEO 2 command log of these tests must show.
trait NeoSim {
    fn check_protocol_rules(&self);
}

/// reader-sim with this file's firmware and card delay.
fn reader_sim(link: &Path, extra: &[&str]) -> ReaderSim {
    let mut args = vec!["--firmware", FIRMWARE, "--present-after", "300"];
    args.extend_from_slice(extra);
    ReaderSim::start("idtech-neo2-serial", link, &args)
}

impl NeoSim for ReaderSim {
    /// Correct CRCs, only a cancel during a transaction, no clear PAN.
    fn check_protocol_rules(&self) {
        let log = self.log();
        assert!(
            log.iter().any(|v| v.get("cmd").is_some()),
            "no commands logged"
        );
        for v in log.iter().filter(|v| v.get("cmd").is_some()) {
            assert_eq!(v["crc"], "ok", "bad CRC: {v}");
            if v["in_transaction"] == true {
                assert_eq!(v["cmd"], "05-01", "only a cancel during a transaction: {v}");
            }
        }
        let raw = self.raw_log();
        assert!(
            !raw.contains(DIP_PAN) && !raw.contains(TAP_PAN),
            "clear PAN in the sim log"
        );
    }
}

fn write_config(dir: &Path, gateway: &str, link: &Path) -> PathBuf {
    write_config_with(dir, gateway, link, "on-capture", "ignore")
}

fn write_config_with(
    dir: &Path,
    gateway: &str,
    link: &Path,
    activate: &str,
    on_swipe: &str,
) -> PathBuf {
    let path = dir.join("cardlane.toml");
    let text = format!(
        r#"
[gateway]
base_url = "{gateway}"
[queue]
path = "{q}"
[api]
listen = "127.0.0.1:0"
token_file = "{t}"
[[readers]]
id = "kiosk"
device = "serial:{link}@115200"
profile = "idtech-neo2-serial"
activate = "{activate}"
[lane]
on_swipe = "{on_swipe}"
[devices]
hotplug = false
"#,
        q = dir.join("queue.db").display(),
        t = dir.join("api-token").display(),
        link = link.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn saved_at_gateway(gateway: &Gateway, customer_id: &str) -> Value {
    let customers = gateway.customers();
    customers
        .iter()
        .find(|c| c["customer_id"] == customer_id)
        .cloned()
        .unwrap_or_else(|| panic!("{customer_id} not at the gateway: {customers:?}"))
}

#[test]
fn on_capture_dip_then_time_out_then_tap() {
    let gateway = Gateway::start_decrypting(API_KEY);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("neo2");
    let dip_card = format!("{DIP_PAN}:2812");
    let dipper = reader_sim(&link, &["--interface", "contact", "--card", &dip_card]);
    let config = write_config(dir.path(), &gateway.base_url, &link);
    let mut agent = Agent::start(&config, API_KEY, "cardlane=debug");
    let api = Api::new(&agent.api, &dir.path().join("api-token"));

    // The reader is opened, idle, and shows what it is.
    api.wait_for("reader idle", |a| a.reader("kiosk")["state"] == "idle");
    let r = api.reader("kiosk");
    assert_eq!(r["protocol"], "neo2", "{r}");
    assert_eq!(r["firmware"], FIRMWARE, "{r}");
    assert_eq!(r["profile"], "idtech-neo2-serial", "{r}");
    // Nothing armed, nothing started: only the open sequence (and pings) so far.
    assert!(
        !dipper.log().iter().any(|v| v["cmd"] == "02-40"),
        "a transaction started without a capture:\n{}",
        dipper.raw_log()
    );

    // A kiosk capture: the dipped card is saved with the kiosk's names.
    let cap = api.capture_until_done(json!({
        "reader": "kiosk", "timeout_s": 20, "interfaces": ["contact"],
        "customer": {"first_name": "Grace", "last_name": "Hopper", "zip": "94107"}}));
    assert_eq!(cap["state"], "saved", "{cap}");
    assert_eq!(cap["masked_pan"], "476173******0119", "{cap}");
    let saved = saved_at_gateway(&gateway, cap["customer_id"].as_str().unwrap());
    assert_eq!(saved["first_name"], "Grace", "{saved}");
    assert_eq!(saved["last_name"], "Hopper", "{saved}");
    assert_eq!(
        saved["account_last_4"],
        &DIP_PAN[DIP_PAN.len() - 4..],
        "{saved}"
    );
    // The transaction asked for contact only (DFEF37 bit 2).
    dipper.wait_log("the dip's activate", |v| {
        v["cmd"] == "02-40" && v["interfaces"] == 4
    });

    // No card (the sim's cards are used up): the capture times out and the transaction is
    // cancelled on the reader, the cancel answered.
    let before = dipper.log().len();
    let cap = api.capture_until_done(json!({"reader": "kiosk", "timeout_s": 3,
        "customer": {"first_name": "No", "last_name": "Card"}}));
    assert_eq!(cap["state"], "timed-out", "{cap}");
    assert_eq!(cap["error_code"], "reader-timed-out", "{cap}");
    dipper.wait_log("the cancel answered", |v| {
        v["cmd"] == "05-01" && v["answer"] == "05-00"
    });
    let after: Vec<Value> = dipper.log()[before..].to_vec();
    let cmds: Vec<&str> = after.iter().filter_map(|v| v["cmd"].as_str()).collect();
    let start = cmds.iter().position(|c| *c == "02-40").expect("a start");
    assert_eq!(
        cmds[start + 1..].first(),
        Some(&"05-01"),
        "the cancel is the next command after the start: {cmds:?}"
    );
    api.wait_for("reader idle again", |a| {
        a.reader("kiosk")["state"] == "idle"
    });
    dipper.check_protocol_rules();

    // The reader is swapped for one that taps (same link): the agent reopens it.
    drop(dipper);
    let tap_card = format!("{TAP_PAN}:2901");
    let tapper = reader_sim(&link, &["--interface", "contactless", "--card", &tap_card]);
    api.wait_for("reader back and idle", |a| {
        let r = a.reader("kiosk");
        r["state"] == "idle" && tapper.log().iter().any(|v| v["cmd"] == "04-00")
    });
    let cap = api.capture_until_done(json!({"reader": "kiosk", "timeout_s": 20,
        "customer": {"first_name": "Alan", "last_name": "Turing"}}));
    assert_eq!(cap["state"], "saved", "{cap}");
    assert_eq!(cap["masked_pan"], "541333******0608", "{cap}");
    let saved = saved_at_gateway(&gateway, cap["customer_id"].as_str().unwrap());
    assert_eq!(saved["first_name"], "Alan", "{saved}");
    assert_eq!(
        saved["account_last_4"],
        &TAP_PAN[TAP_PAN.len() - 4..],
        "{saved}"
    );
    assert_eq!(gateway.customers().len(), 2);

    assert!(agent.terminate().success());
    tapper.check_protocol_rules();
    let out = agent.seen.join("\n");
    for pan in [DIP_PAN, TAP_PAN] {
        assert!(!out.contains(pan), "clear PAN in the agent's output");
    }
}

#[test]
fn continuous_reads_every_card_and_sigterm_cancels_the_open_transaction() {
    let gateway = Gateway::start_decrypting(API_KEY);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("neo2");
    let dip = format!("{DIP_PAN}:2812");
    let tap = format!("{TAP_PAN}:2901");
    let sim = reader_sim(
        &link,
        &["--interface", "contact", "--card", &dip, "--card", &tap],
    );
    let config = write_config_with(dir.path(), &gateway.base_url, &link, "continuous", "save");
    let mut agent = Agent::start(&config, API_KEY, "cardlane=debug");
    let api = Api::new(&agent.api, &dir.path().join("api-token"));

    // Nothing armed: the lane's transaction runs anyway and both cards are saved.
    api.wait_for("both cards at the gateway", |_| {
        gateway.customers().len() == 2
    });
    let mut last4: Vec<String> = gateway
        .customers()
        .iter()
        .map(|c| c["account_last_4"].as_str().unwrap_or_default().to_string())
        .collect();
    last4.sort();
    assert_eq!(last4, ["0119", "0608"]);
    // A third transaction runs (the sim has no card left): the reader waits for a card.
    api.wait_for("waiting for a card", |a| {
        a.reader("kiosk")["state"] == "waiting-for-card"
    });
    let starts = || sim.log().iter().filter(|v| v["cmd"] == "02-40").count();
    api.wait_for("three starts", |_| starts() >= 3);

    // SIGTERM: the open transaction is cancelled (and answered) before the port closes.
    assert!(agent.terminate().success());
    sim.wait_log("the shutdown's cancel answered", |v| {
        v["cmd"] == "05-01" && v["answer"] == "05-00"
    });
    sim.check_protocol_rules();
    let out = agent.seen.join("\n");
    for pan in [DIP_PAN, TAP_PAN] {
        assert!(!out.contains(pan), "clear PAN in the agent's output");
    }
}
