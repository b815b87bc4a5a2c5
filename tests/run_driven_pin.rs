//! PIN blocks through the real agent (issue 17): `cardlane run` drives `cardlane reader-sim`
//! keypad readers on PTYs, with `cardlane gateway-sim` on loopback, all real processes.
//!
//! - `"pin":"required"`: the reader is asked for the PIN after the read (62-01, its own PAN),
//!   `/v1/readers` shows `waiting-for-pin`, and the customer is saved at the simulator, which
//!   verifies the PIN block under `card.ksn` against the PAN it decrypted from `track_data`; the
//!   reader's PIN key and data key have different KSNs, so a record with the card data's KSN in
//!   `card.ksn` would not verify.
//! - A customer who cancels or never types: `failed` with `pin-cancelled` / `pin-timed-out`,
//!   nothing saved; `"optional"` + cancel: saved without a PIN, `pin: "skipped"`.
//! - A kiosk's own PIN pad block (`"pin_block"`, formats 0 and 4, built here with the crypto
//!   module) is verified at the simulator; one made for another PAN is refused there.
//! - The gateway gone: `failed` with `pin-needs-online`, nothing in the queue file.
use reqwest::StatusCode;
use serde_json::{json, Value};

mod common;
mod driven_pin;
use driven_pin::*;

/// Test PANs (Visa, Mastercard).
const VISA: &str = "4761739001010119";
const MC: &str = "5413330089010608";
const PIN: &str = "4321";
/// A TDES PIN pad's own key (another initial KSN under the test BDK) and an AES one (X9.24-3).
const PAD_TDES_KSN: &str = "FFFF9876543212E00003";
const PAD_AES_KSN: &str = "123456789012345600000002";

fn card(pan: &str) -> String {
    format!("{pan}:2812")
}

/// Only CRC-correct commands, and nothing but a cancel while a transaction or PIN entry runs.
fn check_protocol_rules(sim: &Proc) {
    let cmds = sim_commands(sim);
    assert!(!cmds.is_empty(), "no commands logged");
    for v in &cmds {
        assert_eq!(v["crc"], "ok", "bad CRC: {v}");
        if v["in_transaction"] == true {
            assert_eq!(v["cmd"], "05-01", "only a cancel during a transaction: {v}");
        }
    }
}

fn refused(api: &Api, body: Value, field: &str, code: &str) {
    let (s, b) = api.post("/v1/captures", &body);
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
    assert_eq!(b["error"]["code"], code, "{body}: {b}");
    assert_eq!(b["error"]["field"], field, "{body}: {b}");
}

#[test]
fn keypad_and_pin_pad_outcomes_through_the_real_agent() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = GatewaySim::start(dir.path(), "warn");
    let link = |n: &str| dir.path().join(n);
    // The customer takes 4 s at the keypad: time to see waiting-for-pin and to DELETE during it.
    let typer = reader_sim(
        &link("typer"),
        "warn",
        &[
            "--pin",
            PIN,
            "--pin-after",
            "4000",
            "--card",
            &card(VISA),
            "--card",
            &card(VISA),
            "--card",
            &card(VISA),
            "--card",
            &card(VISA),
            "--card",
            &card(VISA),
        ],
    );
    let canceller = reader_sim(
        &link("canceller"),
        "warn",
        &["--pin-cancel", "--card", &card(MC), "--card", &card(MC)],
    );
    let sleeper = reader_sim(
        &link("sleeper"),
        "warn",
        &["--pin-never", "--card", &card(VISA)],
    );
    let mut no_keypad = ReaderEntry::neo2("no-keypad", &link("absent"));
    no_keypad.extra = "pin_entry = false";
    let config = write_config(
        dir.path(),
        &gateway.url,
        &[
            ReaderEntry::neo2("typer", &link("typer")),
            ReaderEntry::neo2("canceller", &link("canceller")),
            ReaderEntry::neo2("sleeper", &link("sleeper")),
            no_keypad,
        ],
    );
    let (mut agent, base) = agent(&config, "cardlane=debug");
    let api = Api::new(&base, &dir.path().join("api-token"));
    for id in ["typer", "canceller", "sleeper"] {
        api.wait_for("keypad readers idle", |a| a.reader(id)["state"] == "idle");
        assert_eq!(api.reader(id)["pin_entry"], true, "{}", api.reader(id));
    }
    // The profile says keypad; the reader's own setting says not.
    assert_eq!(api.reader("no-keypad")["pin_entry"], false);

    // Refusals, each naming its field with a reason code (422: the request breaks the schema).
    let block0 = pad_block(TDES_BDK, PAD_TDES_KSN, PIN, VISA, 0);
    refused(&api, json!({"pin": "required"}), "pin", "pin-not-supported");
    // Well-formed, but this reader has no keypad: a conflict with the lane, not a bad request.
    let (s, b) = api.post(
        "/v1/captures",
        &json!({"reader": "no-keypad", "pin": "required"}),
    );
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "pin-not-supported", "{b}");
    assert_eq!(b["error"]["field"], "pin", "{b}");
    refused(
        &api,
        json!({"reader": "typer", "pin": "yes"}),
        "pin",
        "bad-pin",
    );
    refused(
        &api,
        json!({"reader": "typer", "pin": "optional",
               "pin_block": {"block": block0, "ksn": PAD_TDES_KSN, "format": 0}}),
        "pin_block",
        "pin-conflict",
    );
    refused(
        &api,
        json!({"pin_block": {"block": format!("{}Z", &block0[..15]), "ksn": PAD_TDES_KSN, "format": 0}}),
        "pin_block.block",
        "bad-pin-block",
    );
    refused(
        &api,
        json!({"pin_block": {"block": "A".repeat(32), "ksn": PAD_TDES_KSN, "format": 4}}),
        "pin_block.ksn",
        "bad-pin-ksn",
    );
    refused(
        &api,
        json!({"pin_block": {"block": block0, "ksn": PAD_TDES_KSN, "format": 2}}),
        "pin_block.format",
        "bad-pin-format",
    );
    refused(
        &api,
        json!({"kind": "check", "pin_block": {"block": block0, "ksn": PAD_TDES_KSN, "format": 0}}),
        "pin_block",
        "pin-not-supported",
    );

    // Required, typed: the reader waits for the PIN, then the customer is saved (the
    // simulator verified the block against the card's PAN).
    let before = sim_commands(&typer).len();
    let id = api.arm(
        json!({"reader": "typer", "pin": "required", "timeout_s": 20,
        "customer": {"first_name": "Ada", "last_name": "Lovelace"}}),
    );
    api.wait_for("waiting-for-pin", |a| {
        a.reader("typer")["state"] == "waiting-for-pin"
    });
    let cap = api.until_done(&id);
    assert_eq!(cap["state"], "saved", "{cap}");
    assert_eq!(cap["pin"], "entered", "{cap}");
    assert_eq!(cap["masked_pan"], "476173******0119", "{cap}");
    let cid = cap["customer_id"].as_str().unwrap();
    let saved: Vec<Value> = gateway
        .customers()
        .into_iter()
        .filter(|c| c["customer_id"] == cid)
        .collect();
    assert_eq!(saved.len(), 1, "{cid} not at the gateway");
    assert_eq!(saved[0]["first_name"], "Ada");
    assert_eq!(saved[0]["account_last_4"], "0119");
    // The PIN was asked after the read, with the reader's own PAN (key type 01, no PAN).
    let cmds: Vec<String> = sim_commands(&typer)[before..]
        .iter()
        .filter_map(|v| v["cmd"].as_str().map(String::from))
        .collect();
    let start = cmds.iter().position(|c| c == "02-40").expect("a start");
    let pin_at = cmds
        .iter()
        .position(|c| c == "62-01")
        .expect("a PIN request");
    assert!(start < pin_at, "{cmds:?}");

    // The kiosk gives up during the PIN entry: its DELETE cancels the entry on the reader
    // (05-01, answered), the read is dropped, nothing saved.
    let n = gateway.customers().len();
    let before = sim_commands(&typer).len();
    let id = api.arm(json!({"reader": "typer", "pin": "required", "timeout_s": 20}));
    api.wait_for("waiting-for-pin", |a| {
        a.reader("typer")["state"] == "waiting-for-pin"
    });
    let (s, cancelled) = api.delete(&format!("/v1/captures/{id}"));
    assert_eq!(s, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    api.wait_for("the PIN entry cancelled on the reader", |_| {
        let cmds = sim_commands(&typer);
        let after = &cmds[before.min(cmds.len())..];
        let pin_at = after.iter().position(|v| v["cmd"] == "62-01");
        pin_at.is_some_and(|p| {
            after[p..]
                .iter()
                .any(|v| v["cmd"] == "05-01" && v["answer"] == "05-00")
        })
    });
    api.wait_for("reader idle", |a| a.reader("typer")["state"] == "idle");
    assert_eq!(api.capture(&id)["state"], "cancelled");
    assert_eq!(gateway.customers().len(), n);

    // Required, cancelled by the customer: failed with its code (also on the event stream),
    // nothing saved.
    let n = gateway.customers().len();
    let events = events(&api);
    let id = api.arm(json!({"reader": "canceller", "pin": "required", "timeout_s": 20}));
    let cap = api.until_done(&id);
    assert_eq!(cap["state"], "failed", "{cap}");
    assert_eq!(cap["error_code"], "pin-cancelled", "{cap}");
    events.wait_for("the failed event", |l| {
        l.starts_with("data:") && l.contains("\"pin-cancelled\"") && l.contains(&id)
    });
    assert_eq!(gateway.customers().len(), n);
    // Optional, cancelled: saved without a PIN, and the capture says so.
    let id = api.arm(
        json!({"reader": "canceller", "pin": "optional", "timeout_s": 20,
        "customer": {"first_name": "Grace", "last_name": "Hopper"}}),
    );
    let cap = api.until_done(&id);
    assert_eq!(cap["state"], "saved", "{cap}");
    assert_eq!(cap["pin"], "skipped", "{cap}");
    assert_eq!(gateway.customers().len(), n + 1);
    // Required, never typed: the PIN entry times out within the capture's time.
    let id = api.arm(json!({"reader": "sleeper", "pin": "required", "timeout_s": 6}));
    let cap = api.until_done(&id);
    assert_eq!(cap["state"], "failed", "{cap}");
    assert_eq!(cap["error_code"], "pin-timed-out", "{cap}");
    assert_eq!(gateway.customers().len(), n + 1);

    // A kiosk's own PIN pad: formats 0 (TDES) and 4 (AES), verified at the simulator under
    // the pad's KSN against the PAN of the card read with them.
    let block4 = pad_block(AES_BDK, PAD_AES_KSN, PIN, VISA, 4);
    for (block, ksn, format) in [(&block0, PAD_TDES_KSN, 0), (&block4, PAD_AES_KSN, 4)] {
        let id = api.arm(json!({"reader": "typer", "timeout_s": 20,
            "pin_block": {"block": block.to_lowercase(), "ksn": ksn, "format": format}}));
        let cap = api.until_done(&id);
        assert_eq!(cap["state"], "saved", "format {format}: {cap}");
        assert_eq!(cap["pin"], "given", "{cap}");
    }
    // A block made for another card's PAN does not verify: the simulator refuses it.
    let wrong = pad_block(TDES_BDK, PAD_TDES_KSN, PIN, MC, 0);
    let id = api.arm(json!({"reader": "typer", "timeout_s": 20,
        "pin_block": {"block": wrong, "ksn": PAD_TDES_KSN, "format": 0}}));
    let cap = api.until_done(&id);
    assert_eq!(cap["state"], "rejected", "{cap}");
    assert_eq!(gateway.customers().len(), n + 3);

    assert!(agent.terminate().success());
    for sim in [&typer, &canceller, &sleeper] {
        check_protocol_rules(sim);
    }
    let needles: Vec<String> = [&block0, &block4, &wrong]
        .iter()
        .flat_map(|b| [b.to_string(), b.to_lowercase()])
        .chain([VISA.to_string(), MC.to_string()])
        .collect();
    assert_absent("agent output", agent.all_output().as_bytes(), &needles);
    assert_absent(
        "gateway output",
        gateway.proc.all_output().as_bytes(),
        &needles,
    );
}

#[test]
fn gateway_gone_fails_pin_captures_at_once_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = GatewaySim::start(dir.path(), "warn");
    let link = dir.path().join("typer");
    let typer = reader_sim(
        &link,
        "warn",
        &["--pin", PIN, "--card", &card(VISA), "--card", &card(VISA)],
    );
    let config = write_config(
        dir.path(),
        &gateway.url,
        &[ReaderEntry::neo2("typer", &link)],
    );
    let (mut agent, base) = agent(&config, "cardlane=debug");
    let api = Api::new(&base, &dir.path().join("api-token"));
    api.wait_for("reader idle", |a| a.reader("typer")["state"] == "idle");
    api.wait_for("gateway reachable", |a| {
        a.get_any("/v1/health").1["gateway"] == "reachable"
    });
    // The gateway goes away (the agent may not have noticed yet).
    assert!(gateway.proc.terminate().success());

    let block0 = pad_block(TDES_BDK, PAD_TDES_KSN, PIN, VISA, 0);
    let events = events(&api);
    for body in [
        json!({"reader": "typer", "pin": "required", "timeout_s": 20}),
        json!({"reader": "typer", "timeout_s": 20,
               "pin_block": {"block": block0, "ksn": PAD_TDES_KSN, "format": 0}}),
    ] {
        let id = api.arm(body);
        let cap = api.until_done(&id);
        assert_eq!(cap["state"], "failed", "{cap}");
        assert_eq!(cap["error_code"], "pin-needs-online", "{cap}");
        assert!(
            cap["error"]
                .as_str()
                .unwrap_or_default()
                .contains("never queued"),
            "{cap}"
        );
        // The kiosk is told on the event stream, with the code.
        events.wait_for("the failed event", |l| {
            l.starts_with("data:") && l.contains("\"pin-needs-online\"") && l.contains(&id)
        });
    }
    // Nothing held for them.
    assert_eq!(api.json("/v1/queue")["held"], 0);
    assert!(agent.terminate().success());
    // The kiosk is told in the log too, with the code.
    agent.err.wait_for("the pin-needs-online log line", |l| {
        l.contains("pin-needs-online")
    });
    // The queue file holds no record, and no file holds the PIN block or the PAN.
    let db = rusqlite::Connection::open(dir.path().join("queue.db")).unwrap();
    let records: i64 = db
        .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(records, 0);
    drop(db);
    let needles = vec![block0.clone(), block0.to_lowercase(), VISA.to_string()];
    assert_absent_in_files(dir.path(), &needles);
    assert_absent("agent output", agent.all_output().as_bytes(), &needles);
    check_protocol_rules(&typer);
}
