//! `cardlane run` as a real process: a serial reader played by a PTY, the gateway simulator on
//! 127.0.0.1:0, the local API over real HTTP, SIGTERM and a clean restart.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use serialport::{SerialPort, TTYPort};

mod common;
use common::agent::Agent;
use common::api::Api;
use common::gateway::Gateway;
use common::OutputWithin;

const API_KEY: &str = "run-test-key";

/// A PTY pair; the slave end is closed again so the agent opens it by path.
fn far_end() -> (TTYPort, String) {
    let (master, slave) = TTYPort::pair().expect("openpty");
    let name = slave.name().expect("pty name");
    drop(slave);
    (master, name)
}

fn write_config(dir: &Path, gateway: &str, reader: &str, extra: &str) -> PathBuf {
    let path = dir.join("cardlane.toml");
    let text = format!(
        r#"
[gateway]
base_url = "{gateway}"
[gateway.retry]
initial_backoff = "100ms"
max_backoff = "1s"
[queue]
path = "{q}"
[api]
listen = "127.0.0.1:0"
token_file = "{t}"
capture_timeout = "30s"
[[readers]]
id = "front"
device = "{reader}"
[devices]
hotplug = false
{extra}
"#,
        q = dir.join("queue.db").display(),
        t = dir.join("api-token").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn reader_state(api: &Api, id: &str) -> Option<String> {
    let v = api.json("/v1/readers");
    v["readers"]
        .as_array()?
        .iter()
        .find(|r| r["id"] == id)
        .and_then(|r| r["state"].as_str().map(str::to_string))
}

/// One PTY reader `front` (with `profile`, if given) in a lane with `extra` configuration: the
/// agent started and the reader connected.
struct PtyLane {
    dir: tempfile::TempDir,
    master: TTYPort,
    agent: Agent,
    api: Api,
}

fn pty_lane(gateway: &Gateway, profile: Option<&str>, extra: &str) -> PtyLane {
    let dir = tempfile::tempdir().unwrap();
    let (master, pts) = far_end();
    let config = write_config(
        dir.path(),
        &gateway.base_url,
        &format!("serial:{pts}@9600"),
        extra,
    );
    if let Some(profile) = profile {
        let text = std::fs::read_to_string(&config).unwrap().replace(
            "id = \"front\"\n",
            &format!("id = \"front\"\nprofile = \"{profile}\"\n"),
        );
        std::fs::write(&config, text).unwrap();
    }
    let agent = Agent::start(&config, API_KEY, "cardlane=debug");
    let api = Api::new(&agent.api, &dir.path().join("api-token"));
    api.wait_for("reader connected", |a| {
        reader_state(a, "front").as_deref() == Some("connected")
    });
    PtyLane {
        dir,
        master,
        agent,
        api,
    }
}

#[test]
fn serves_the_api_with_a_pty_reader_and_restarts_cleanly() {
    let gateway = Gateway::start(API_KEY);
    let dir = tempfile::tempdir().unwrap();
    let (_master, pts) = far_end();
    let config = write_config(
        dir.path(),
        &gateway.base_url,
        &format!("serial:{pts}@9600"),
        "",
    );
    let mut agent = Agent::start(&config, API_KEY, "cardlane=debug");

    // The token file: created private with a random token.
    let token_file = dir.path().join("api-token");
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let api = Api::new(&agent.api, &token_file);
    assert!(api.token.len() >= 32);

    // 401 without a token and with a wrong one, on every kind of route.
    for path in ["/v1/health", "/metrics", "/v1/openapi.json", "/v1/readers"] {
        let url = format!("{}{path}", api.base);
        let (s, _) = api.send(api.http.get(&url));
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} without token");
        let (s, _) = api.send(api.http.get(&url).bearer_auth("not-the-token"));
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path} with a wrong token");
    }

    // The PTY reader attaches; health shows it, the empty queue and the reachable simulator.
    api.wait_for("reader connected", |a| {
        reader_state(a, "front").as_deref() == Some("connected")
    });
    api.wait_for("gateway reachable", |a| {
        a.json("/v1/health")["gateway"] == "reachable"
    });
    let health = api.json("/v1/health");
    assert_eq!(health["queue"]["held"], 0);
    let readers = health["readers"].as_array().unwrap();
    assert_eq!(readers.len(), 1);
    assert_eq!(readers[0]["device"], format!("serial:{pts}@9600"));
    assert_eq!(readers[0]["configured"], true);

    // 413 for a 1 MiB body; 400 naming `zip`.
    let big = "x".repeat(1 << 20);
    let (s, _) = api.send(
        api.http
            .post(format!("{}/v1/captures", api.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body(big),
    );
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, body) = api.post(
        "/v1/captures",
        &json!({"customer": {"first_name": "Ada", "zip": "12"}}),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "zip", "{body}");
    // No such reader: a bad field (design.md §3), named, with its own code.
    let (s, body) = api.post("/v1/captures", &json!({"reader": "nope", "customer": {}}));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unknown-reader", "{body}");
    assert_eq!(body["error"]["field"], "reader", "{body}");

    // A capture armed on the reader by its id, then cancelled.
    let (s, body) = api.post(
        "/v1/captures",
        &json!({"reader": "front", "customer": {"first_name": "Ada", "zip": "94107"}, "timeout_s": 20}),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "waiting");
    let id = body["id"].as_str().unwrap().to_string();
    let (s, text) = api.send(
        api.http
            .delete(format!("{}/v1/captures/{id}", api.base))
            .bearer_auth(&api.token),
    );
    assert_eq!(s, StatusCode::OK, "{text}");
    assert_eq!(
        api.json(&format!("/v1/captures/{id}"))["state"],
        "cancelled"
    );

    // Metrics and the OpenAPI document.
    let (s, metrics) = api.get("/metrics");
    assert_eq!(s, StatusCode::OK);
    assert!(
        metrics.contains("cardlane_reader_connected{reader=\"front\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("cardlane_queue_depth 0"), "{metrics}");
    let doc = api.json("/v1/openapi.json");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/v1/captures"].is_object());

    // SIGTERM: exit 0, then the same configuration starts again with the same token.
    let status = agent.terminate();
    assert!(status.success(), "{status:?}: {}", agent.output());
    assert!(
        agent.output().contains("stopped (SIGTERM)"),
        "{}",
        agent.output()
    );
    let token_before = api.token.clone();
    let mut again = Agent::start(&config, API_KEY, "cardlane=debug");
    let api2 = Api::new(&again.api, &token_file);
    assert_eq!(api2.token, token_before);
    // Health is `down` (503) until the reader has reopened, then `ok`.
    api2.wait_for("health ok", |a| {
        let (_, body) = a.get("/v1/health");
        serde_json::from_str::<Value>(&body).is_ok_and(|h| h["status"] == "ok")
    });
    assert!(again.terminate().success());
    drop(gateway);
}

#[test]
fn a_reader_arriving_later_is_reported_as_an_event() {
    let gateway = Gateway::start(API_KEY);
    let dir = tempfile::tempdir().unwrap();
    // The configured device does not exist yet, like a reader not plugged in at boot.
    let link = dir.path().join("ttyREADER");
    let config = write_config(
        dir.path(),
        &gateway.base_url,
        &format!("serial:{}", link.display()),
        "",
    );
    let agent = Agent::start(&config, API_KEY, "cardlane=debug");
    let api = Api::new(&agent.api, &dir.path().join("api-token"));
    assert_ne!(reader_state(&api, "front").as_deref(), Some("connected"));

    // Open the event stream, then plug the reader in.
    let rt = &api.rt;
    let mut resp = rt.block_on(async {
        api.http
            .get(format!("{}/v1/events", api.base))
            .bearer_auth(&api.token)
            .send()
            .await
            .unwrap()
    });
    assert_eq!(resp.status(), StatusCode::OK);
    let (_master, pts) = far_end();
    std::os::unix::fs::symlink(&pts, &link).unwrap();
    let text = rt.block_on(async {
        let mut text = String::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(15);
        while !text.contains("event: reader-attached") {
            match tokio::time::timeout_at(end, resp.chunk()).await {
                Ok(Ok(Some(c))) => text.push_str(&String::from_utf8_lossy(&c)),
                _ => break,
            }
        }
        text
    });
    assert!(text.contains("event: reader-attached"), "{text}");
    assert!(text.contains("\"reader\":\"front\""), "{text}");
    assert_eq!(reader_state(&api, "front").as_deref(), Some("connected"));
    drop(agent);
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[gateway]\nbse_url = \"http://127.0.0.1:1\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--config"])
        .arg(&path)
        .output_within();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gateway.bse_url"), "{err}");

    // A good file passes --check; a missing API key stops the agent before it listens.
    let (_m, pts) = far_end();
    let good = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        &format!("serial:{pts}"),
        "",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--check", "--config"])
        .arg(&good)
        .env("CARDLANE_API_KEY", API_KEY)
        .output_within();
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--config"])
        .arg(&good)
        .env_remove("CARDLANE_API_KEY")
        .output_within();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("CARDLANE_API_KEY"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("ready:"));
}

/// Clear ISO 7813 tracks as a keyboard-wedge head types them (CR-terminated), test PANs only.
const ARMED_SWIPE: &str =
    "%B4111111111111111^DOE/JANE^2912101000000000000?;4111111111111111=29121010000000000000?\r";
const UNARMED_SWIPE: &str =
    "%B5454545454545454^PUBLIC/JOHN^2811101000000000000?;5454545454545454=28111010000000000000?\r";

fn capture_state(api: &Api, id: &str) -> Value {
    api.json(&format!("/v1/captures/{id}"))
}

#[test]
fn a_capture_joins_the_kiosk_fields_and_an_unarmed_swipe_is_saved_by_name() {
    let gateway = Gateway::start(API_KEY);
    // A clear-text head on the serial line (typed tracks), allowed explicitly for the test.
    let PtyLane {
        dir: _dir,
        mut master,
        mut agent,
        api,
    } = pty_lane(
        &gateway,
        Some("generic-keyboard-wedge"),
        "[lane]\non_swipe = \"save\"\nallow_clear_text = true\n",
    );

    // The kiosk arms the next swipe with its visitor's fields; the card is swiped.
    let (s, body) = api.post(
        "/v1/captures",
        &json!({"reader": "front", "timeout_s": 30,
                "customer": {"first_name": "Ada", "last_name": "Lovelace", "zip": "94107",
                             "city": "Springfield", "phone_number": "4155550100"}}),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    master.write_all(ARMED_SWIPE.as_bytes()).unwrap();
    master.flush().unwrap();
    api.wait_for("capture outcome", |a| {
        !matches!(
            capture_state(a, &id)["state"].as_str(),
            Some("waiting" | "queued")
        )
    });
    let cap = capture_state(&api, &id);
    assert_eq!(cap["state"], "saved", "{cap}");
    assert!(
        cap["token"].as_str().is_some_and(|t| !t.is_empty()),
        "{cap}"
    );
    assert_eq!(cap["masked_pan"], "411111******1111", "{cap}");
    let customer_id = cap["customer_id"].as_str().unwrap().to_string();

    // At the gateway: the kiosk's names beside the card's last 4, under the agent's id.
    let customers = gateway.customers();
    let saved = customers
        .iter()
        .find(|c| c["customer_id"] == customer_id.as_str())
        .unwrap_or_else(|| panic!("{customer_id} not at the gateway: {customers:?}"));
    assert_eq!(saved["first_name"], "Ada", "{saved}");
    assert_eq!(saved["last_name"], "Lovelace", "{saved}");
    assert_eq!(saved["account_last_4"], "1111", "{saved}");
    assert_eq!(saved["token"], cap["token"], "{saved}");

    // Nothing armed: the swipe is saved under the Track 1 name.
    master.write_all(UNARMED_SWIPE.as_bytes()).unwrap();
    master.flush().unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    let second = loop {
        let list = gateway.customers();
        if let Some(c) = list.iter().find(|c| c["account_last_4"] == "5454") {
            break c.clone();
        }
        assert!(Instant::now() < end, "unarmed swipe not saved: {list:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(second["last_name"], "PUBLIC", "{second}");
    assert_eq!(second["first_name"], "JOHN", "{second}");
    assert_eq!(gateway.customers().len(), 2);

    // Metrics followed; the queue is empty again. The uploader counts a record saved after
    // it deleted the row, so the wait is on the count itself (an empty queue came first once
    // on a loaded machine, and the count read then was 1).
    api.wait_for("queue drained", |a| {
        a.json("/v1/health")["queue"]["held"] == 0
    });
    api.wait_for("both saved in the metrics", |a| {
        a.get("/metrics")
            .1
            .contains("cardlane_records_total{outcome=\"saved\"} 2")
    });
    let (_, metrics) = api.get("/metrics");
    assert!(
        metrics.contains("cardlane_swipes_total{format=\"tracks\",reader=\"front\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cardlane_records_total{outcome=\"saved\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cardlane_gateway_latency_seconds_count 2"),
        "{metrics}"
    );

    // No PAN anywhere in what the agent printed (debug logging on).
    assert!(agent.terminate().success());
    let out = agent.output();
    for pan in ["4111111111111111", "5454545454545454"] {
        assert!(!out.contains(pan), "PAN in the agent's output");
    }
    assert!(
        !out.contains("DOE/JANE"),
        "clear track text in the agent's output"
    );
}

#[test]
fn an_encrypted_reader_frame_is_saved_with_the_kiosk_fields() {
    // The simulator decrypts with the ANSI X9.24 test BDK, as a gateway holding the key would.
    let gateway = Gateway::start_decrypting(API_KEY);
    let PtyLane {
        dir: _dir,
        mut master,
        mut agent,
        api,
    } = pty_lane(&gateway, Some("idtech-serial"), "");
    let (s, body) = api.post(
        "/v1/captures",
        &json!({"customer": {"first_name": "Grace", "last_name": "Hopper", "zip": "021390000"}}),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    // A synthetic ID TECH enhanced frame (fixtures/README.md: test BDK, KSN FFFF9876543210E00001),
    // written in two pieces as a serial line delivers it.
    let hex_text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/decode/good/idtech_enhanced_tdes.hex"
    ))
    .unwrap();
    // `#` lines are provenance comments.
    let digits: String = hex_text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .collect();
    let frame = hex::decode(digits).unwrap();
    let (a, b) = frame.split_at(frame.len() / 2);
    master.write_all(a).unwrap();
    master.flush().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    master.write_all(b).unwrap();
    master.flush().unwrap();
    api.wait_for("capture outcome", |a| {
        !matches!(
            capture_state(a, &id)["state"].as_str(),
            Some("waiting" | "queued")
        )
    });
    let cap = capture_state(&api, &id);
    assert_eq!(cap["state"], "saved", "{cap}");
    let customer_id = cap["customer_id"].as_str().unwrap();
    let customers = gateway.customers();
    let saved = customers
        .iter()
        .find(|c| c["customer_id"] == customer_id)
        .unwrap_or_else(|| panic!("{customer_id} not at the gateway: {customers:?}"));
    assert_eq!(saved["first_name"], "Grace");
    assert_eq!(saved["last_name"], "Hopper");
    // Last 4 as `cardlane decode --hex --bdk 0123456789ABCDEFFEDCBA9876543210` gives them for
    // this fixture (run once by hand): 476173******0119.
    assert_eq!(saved["account_last_4"], "0119", "{saved}");
    // The agent holds no BDK: its masked PAN is the reader's own clear mask (first 4 / last 4).
    assert_eq!(cap["masked_pan"], "4761********0119");
    assert!(agent.terminate().success());
    assert!(!agent.output().contains("TEST/CARD 19"));
}

/// The MagTek manual's MICR line (micr.md §2) as `magtek-micr-serial` sends it (data CR LF):
/// routing 122000218, account 123456789, check 1321, personal.
const CHECK_LINE: &str = "T122000218T 1234 5678 9U 1321\r\n";
/// The same line with a routing digit the reader could not read (`?`).
const UNREADABLE_CHECK: &str = "T12200?218T 1234 5678 9U 1321\r\n";

/// The account number of a set-00 line, worked out here from the line itself: the digits
/// between the second transit symbol and the on-us symbol (spaces are not part of it).
fn account_of(line: &str, transit: char, on_us: char) -> String {
    let after_transit = line.split(transit).nth(2).expect("two transit symbols");
    let on_us_field = after_transit.split(on_us).next().unwrap_or_default();
    on_us_field.chars().filter(char::is_ascii_digit).collect()
}

/// The masked account every check output must show: `*` and the account's last 4, no other
/// digit, and never the account itself (`json` is the whole object or event).
fn assert_masked_account(json: &Value, account: &str) {
    let masked = json["masked_account"]
        .as_str()
        .unwrap_or_else(|| panic!("{json}"));
    let last4 = &account[account.len() - 4..];
    assert!(masked.ends_with(last4), "{json}");
    assert_eq!(masked.len(), account.len(), "{json}");
    assert!(
        masked[..masked.len() - 4].bytes().all(|b| b == b'*'),
        "{json}"
    );
    assert!(json["masked_pan"].is_null(), "{json}");
    assert!(!json.to_string().contains(account), "{json}");
}

#[test]
fn a_kiosk_check_capture_is_saved_and_unarmed_or_unreadable_checks_are_not() {
    let gateway = Gateway::start(API_KEY);
    let PtyLane {
        dir,
        mut master,
        mut agent,
        api,
    } = pty_lane(
        &gateway,
        Some("magtek-micr-serial"),
        "[lane]\non_swipe = \"save\"\n",
    );

    // A bad `check` object is refused naming the field.
    let (s, body) = api.post(
        "/v1/captures",
        &json!({"kind": "check", "check": {"sec_code": "POP"}}),
    );
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("check.sec_code"), "{body}");

    let (s, body) = api.post(
        "/v1/captures",
        &json!({"reader": "front", "kind": "check", "timeout_s": 30,
                "check": {"account_type": "checking", "sec_code": "PPD"},
                "customer": {"first_name": "Pat", "last_name": "Check"}}),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    master.write_all(CHECK_LINE.as_bytes()).unwrap();
    master.flush().unwrap();
    api.wait_for("check capture outcome", |a| {
        !matches!(
            capture_state(a, &id)["state"].as_str(),
            Some("waiting" | "queued")
        )
    });
    let cap = capture_state(&api, &id);
    assert_eq!(cap["state"], "saved", "{cap}");
    let customer_id = cap["customer_id"].as_str().unwrap().to_string();
    let customers = gateway.customers();
    let saved = customers
        .iter()
        .find(|c| c["customer_id"] == customer_id.as_str())
        .unwrap_or_else(|| panic!("{customer_id} not at the gateway: {customers:?}"));
    assert_eq!(saved["aba_code"], "122000218", "{saved}");
    assert_eq!(saved["account_last_4"], "6789", "{saved}");
    assert_eq!(saved["last_name"], "Check", "{saved}");
    assert_eq!(saved["token"], cap["token"], "{saved}");
    // The capture, its events and the last reads show the account masked to its last 4.
    let account = account_of(CHECK_LINE, 'T', 'U');
    assert_eq!(saved["account_last_4"], &account[account.len() - 4..]);
    assert_masked_account(&cap, &account);
    let reads = api.json("/v1/reads");
    for kind in ["swipe", "saved"] {
        let ev = reads["reads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == kind && e["capture_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no {kind} event: {reads}"));
        assert_masked_account(ev, &account);
    }

    // No capture armed: a check needs a name, so on_swipe = "save" does nothing with it. An
    // unreadable routing digit is reported by its code. Neither reaches the gateway.
    master.write_all(CHECK_LINE.as_bytes()).unwrap();
    master.write_all(UNREADABLE_CHECK.as_bytes()).unwrap();
    master.flush().unwrap();
    api.wait_for("both checks decoded or refused", |a| {
        let (_, m) = a.get("/metrics");
        m.contains("cardlane_swipes_total{format=\"micr\",reader=\"front\"} 2")
            && m.contains("cardlane_decode_errors_total{code=\"micr-unreadable\"} 1")
    });
    assert_eq!(gateway.customers().len(), 1);
    api.wait_for("queue drained", |a| {
        a.json("/v1/health")["queue"]["held"] == 0
    });

    // The account number is in no output and not in the queue files.
    assert!(agent.terminate().success());
    let out = agent.output();
    assert!(
        out.lines()
            .any(|l| l.contains("swipe decoded") && l.contains("micr")),
        "the agent logged the check reads"
    );
    assert!(
        !out.contains(&account),
        "account number in the agent's output"
    );
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("queue")
        {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(&account),
                "{}",
                p.display()
            );
        }
    }
}

/// The MagTek manual's check (micr.md §2) as `epson-micr-serial` reads it, in the profile's
/// characters for the symbols (A transit, C on-us).
const EPSON_LINE: &str = "A122000218A 1234 5678 9C 1321";
/// ESC/POS `FS a 0` (micr.md §2: `1C 61 n`).
const FS_A: [u8; 3] = [0x1C, 0x61, 0x00];

/// Reads from the fake printer's side until the agent has written `FS a`; everything read.
fn expect_fs_a(master: &mut TTYPort, within: Duration) -> Vec<u8> {
    let end = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while !got.windows(3).any(|w| w == FS_A) {
        assert!(
            Instant::now() < end,
            "the agent did not write FS a; got {got:02X?}"
        );
        master.set_timeout(Duration::from_millis(100)).unwrap();
        match master.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("pty read: {e}"),
        }
    }
    got
}

/// Nothing written by the agent for a while.
fn expect_silence(master: &mut TTYPort, for_: Duration) {
    master.set_timeout(for_).unwrap();
    let mut buf = [0u8; 64];
    match master.read(&mut buf) {
        Ok(n) => panic!("the agent wrote {:02X?}", &buf[..n]),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}"),
    }
}

/// An Epson printer's MICR reader on a PTY: the agent writes `FS a` only once a kiosk arms a
/// check capture; the fake printer's abnormal end (status bit 5) is reported with its code and
/// the agent asks again; the printer's reply to that is saved at the simulator, masked.
#[test]
fn an_epson_micr_reader_is_asked_for_the_check_and_its_reply_is_saved() {
    let gateway = Gateway::start(API_KEY);
    let PtyLane {
        dir: _dir,
        mut master,
        mut agent,
        api,
    } = pty_lane(&gateway, Some("epson-micr-serial"), "");
    // No check capture, no read command (a card capture does not ask either).
    let (s, body) = api.post(
        "/v1/captures",
        &json!({"reader": "front", "timeout_s": 30, "customer": {"first_name": "Card"}}),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    expect_silence(&mut master, Duration::from_millis(700));

    let (s, body) = api.post(
        "/v1/captures",
        &json!({"reader": "front", "kind": "check", "timeout_s": 30,
                "check": {"account_type": "checking", "sec_code": "PPD"},
                "customer": {"first_name": "Eve", "last_name": "Epson"}}),
    );
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    expect_fs_a(&mut master, Duration::from_secs(10));

    // The printer ends the read abnormally: reported by code, the capture still waits, and
    // the agent asks for the check again.
    master.write_all(&[0x5F, 0x20, 0x00]).unwrap();
    master.flush().unwrap();
    api.wait_for("the abnormal end reported", |a| {
        a.json("/v1/reads")["reads"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "swipe" && e["error_code"] == "micr-abnormal-end")
    });
    assert_eq!(capture_state(&api, &id)["state"], "waiting");
    expect_fs_a(&mut master, Duration::from_secs(10));

    // The reply: header, status 0, the line, NUL (in serial reads split mid-line).
    let mut reply = vec![0x5F, 0x00];
    reply.extend_from_slice(EPSON_LINE.as_bytes());
    reply.push(0);
    for piece in reply.chunks(7) {
        master.write_all(piece).unwrap();
        master.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    api.wait_for("check capture outcome", |a| {
        !matches!(
            capture_state(a, &id)["state"].as_str(),
            Some("waiting" | "queued")
        )
    });
    let cap = capture_state(&api, &id);
    assert_eq!(cap["state"], "saved", "{cap}");
    let account = account_of(EPSON_LINE, 'A', 'C');
    assert_masked_account(&cap, &account);
    let customers = gateway.customers();
    let saved = customers
        .iter()
        .find(|c| c["customer_id"] == cap["customer_id"])
        .unwrap_or_else(|| panic!("not at the gateway: {customers:?}"));
    assert_eq!(saved["aba_code"], "122000218", "{saved}");
    assert_eq!(
        saved["account_last_4"],
        &account[account.len() - 4..],
        "{saved}"
    );
    assert_eq!(saved["last_name"], "Epson", "{saved}");
    // The check served, only the card capture waits: nothing more is asked of the printer.
    expect_silence(&mut master, Duration::from_millis(700));

    assert!(agent.terminate().success());
    let out = agent.output();
    assert!(
        !out.contains(&account),
        "account number in the agent's output"
    );
    assert!(
        out.contains("micr-abnormal-end"),
        "the abnormal end is logged by code"
    );
}
