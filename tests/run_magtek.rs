//! MagTek chip reads through the whole agent: `cardlane run` with two `sim:` readers (a
//! simulated DynaFlex over MMS and a simulated eDynamo over V5 feature reports, each behind the
//! fake HID transport inside the agent), kiosk captures over the local API, the pipeline,
//! queue and uploader, and the gateway simulator on 127.0.0.1 holding the ANSI test BDK: each
//! capture is saved once with the kiosk's names and the card's last 4 from the decrypted
//! container. No clear PAN in the agent's output at trace.
use std::path::{Path, PathBuf};

use cardlane::device::simulated::TEST_CARDS;
use serde_json::{json, Value};

mod common;
use common::agent::Agent;
use common::api::Api;
use common::gateway::Gateway;

const API_KEY: &str = "run-magtek-test-key";

fn write_config(dir: &Path, gateway: &str) -> PathBuf {
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
id = "flex"
device = "sim:flex"
profile = "magtek-dynaflex-hid"
activate = "on-capture"
[[readers]]
id = "dynamo"
device = "sim:dynamo"
profile = "magtek-edynamo-hid"
activate = "on-capture"
[devices]
hotplug = false
"#,
        q = dir.join("queue.db").display(),
        t = dir.join("api-token").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn saved(gateway: &Gateway, customer_id: &str) -> Value {
    let customers = gateway.customers();
    let mine: Vec<&Value> = customers
        .iter()
        .filter(|c| c["customer_id"] == customer_id)
        .collect();
    assert_eq!(mine.len(), 1, "{customer_id} saved once: {customers:?}");
    mine[0].clone()
}

#[test]
fn dynaflex_and_edynamo_chip_reads_are_saved_through_the_agent() {
    let gateway = Gateway::start_decrypting(API_KEY);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &gateway.base_url);
    let mut agent = Agent::start(&config, API_KEY, "trace");
    let api = Api::new(&agent.api, &dir.path().join("api-token"));

    for (reader, protocol) in [("flex", "mms"), ("dynamo", "magtek-v5")] {
        api.wait_for("reader idle", |a| a.reader(reader)["state"] == "idle");
        assert_eq!(api.reader(reader)["protocol"], protocol);
    }
    // Each simulated reader presents the first test card on its first transaction.
    let (pan, _) = TEST_CARDS[0];
    let last4 = &pan[pan.len() - 4..];
    let masked = format!("{}{}{last4}", &pan[..6], "*".repeat(pan.len() - 10));
    for (reader, first) in [("flex", "Ada"), ("dynamo", "Alan")] {
        let cap = api.capture_until_done(json!({
            "reader": reader, "timeout_s": 20,
            "customer": {"first_name": first, "last_name": "Tester", "zip": "94107"}}));
        assert_eq!(cap["state"], "saved", "{reader}: {cap}");
        assert_eq!(cap["masked_pan"], masked.as_str(), "{cap}");
        let c = saved(&gateway, cap["customer_id"].as_str().unwrap());
        assert_eq!(c["first_name"], first, "{c}");
        // The simulator's last 4 come from the container it decrypted (DFDF59, data key).
        assert_eq!(c["account_last_4"], last4, "{c}");
    }
    assert_eq!(gateway.customers().len(), 2);

    assert!(agent.terminate().success());
    let out = agent.output();
    assert!(out.contains("TRACE"), "trace was on");
    for (pan, _) in TEST_CARDS {
        assert!(!out.contains(pan), "clear PAN in the agent's output");
    }
}

#[test]
fn a_sim_reader_needs_a_magtek_profile() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cardlane.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nbase_url = \"http://127.0.0.1:9\"\n[queue]\npath = \"{}\"\n\
             [[readers]]\nid = \"x\"\ndevice = \"sim:\"\nprofile = \"idtech-neo2-serial\"\n",
            dir.path().join("q.db").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--check", "--config"])
        .arg(&config)
        .env("CARDLANE_API_KEY", API_KEY)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("sim:"), "{err}");
}
