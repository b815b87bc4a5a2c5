//! A DynaFlex (MMS) chip read end to end: the driver runs the MMS session over the fake HID
//! transport (64-byte packets both ways) to a simulated DynaFlex, which presents a test card
//! as an ARQC container; the read goes through the agent pipeline (`cardlane replay --gateway`,
//! with the reader's profile) to `cardlane gateway-sim` on loopback, which decrypts it and
//! saves the customer once. Also: a reader that ignores every message is reported unresponsive.
//! Every wait has a 30 s bound that fails.
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use cardlane::device::fake_hid::{FakeDynaflexPort, FakeLine};
use cardlane::device::session::{DrivenProtocol, DrivenReader, DriverConfig, DriverEvent, Port};
use cardlane::device::transport::Duplex;
use cardlane::protocol::mms::sim::{SimCard, SimDynaflex};
use cardlane::protocol::neo2::{Activate, Event, Interfaces, SessionConfig, State};
use serde_json::Value;
use zeroize::Zeroizing;

mod common;
use common::driven_hid::{capture_text, read, ready, replay_to_gateway_sim, wait_for, Replayed};
use common::OutputWithin;

const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const KEY: &str = "test-api-key-0001";

fn reader(
    line: std::sync::Arc<std::sync::Mutex<FakeLine>>,
) -> (DrivenReader, mpsc::Receiver<DriverEvent>) {
    let (tx, rx) = mpsc::channel();
    let connect = move || {
        Ok(Port {
            io: Box::new(FakeDynaflexPort::new(line.clone())) as Box<dyn Duplex>,
            hid: true,
        })
    };
    let config = DriverConfig {
        session: SessionConfig {
            response_timeout: Duration::from_millis(500),
            ..SessionConfig::default()
        },
        backoff_min: Duration::from_millis(20),
        protocol: DrivenProtocol::Mms,
        ..DriverConfig::default()
    };
    let r = DrivenReader::spawn_with(connect, config, move |e| {
        let _ = tx.send(e);
    });
    (r, rx)
}

fn sim_with(pans: &[&str]) -> SimDynaflex {
    let cards = pans
        .iter()
        .map(|p| SimCard {
            pan: Zeroizing::new(p.to_string()),
            expiry: "2912".into(),
            contactless: false,
        })
        .collect();
    SimDynaflex::new(
        &hex::decode(BDK).unwrap(),
        &hex::decode("FFFF9876543210E00000").unwrap(),
        cards,
    )
    .unwrap()
}

#[test]
fn dynaflex_chip_read_through_the_fake_hid_transport_is_saved_once() {
    // 1. The read, through the driver and the fake HID line.
    let line = FakeLine::new(
        sim_with(&["5413330089020011"]),
        Some(Duration::from_millis(50)),
    );
    let (r, rx) = reader(line.clone());
    ready(&rx);
    r.activate(Activate {
        interfaces: Interfaces::ALL,
        timeout: Duration::from_secs(20),
    })
    .unwrap();
    let (last4, frame) = read(&rx);
    assert_eq!(last4, "0011");
    wait_for(&rx, "idle after the read's cancel", |e| {
        (*e == Event::State(State::Idle)).then_some(())
    });
    r.shutdown();
    let log = line.lock().unwrap().reader.log.clone();
    assert_eq!(log, ["DF01", "1001", "1008"]);

    // 2. The pipeline and the gateway simulator: every input report the reader sent, as a
    // capture of the DynaFlex profile; its framer finds the container in the card-data update.
    let reports = line.lock().unwrap().delivered.clone();
    assert!(reports.iter().all(|r| r.len() == 64));
    let text = capture_text(
        "magtek-dynaflex-hid",
        "synthetic: protocol::mms::sim over the fake HID transport (tests/magtek_driven.rs, WRITE_DYNAFLEX_CAPTURE=FILE); ANSI test BDK 0123456789ABCDEFFEDCBA9876543210, KSN FFFF9876543210E00001, data key (OWF)",
        &reports,
    );
    let profiles = cardlane::device::Profiles::embedded().unwrap();
    let cap = cardlane::capture::Capture::parse(&text).unwrap();
    let frames = cardlane::capture::frames(&cap, &profiles).unwrap();
    assert_eq!(
        frames.len(),
        1,
        "one card-data frame among {} reports",
        reports.len()
    );
    assert_eq!(frames[0].bytes.as_slice(), &frame[..]);
    if let Ok(path) = std::env::var("WRITE_DYNAFLEX_CAPTURE") {
        // How fixtures/captures/magtek-dynaflex-hid.capture was made.
        std::fs::write(path, &text).unwrap();
    }
    let Replayed {
        stdout,
        lines,
        customers,
    } = replay_to_gateway_sim(&text, BDK, KEY);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["outcome"], "saved", "{stdout}");
    assert_eq!(lines[0]["masked_pan"], "541333******0011");
    assert!(!stdout.contains("5413330089020011"));
    assert_eq!(customers.len(), 1, "{customers:?}");
    assert_eq!(customers[0]["account_last_4"], "0011");
    assert_eq!(customers[0]["expiration_date"], "1229");
    assert_eq!(customers[0]["updated_count"], 0);
}

#[test]
fn a_dynaflex_that_ignores_every_message_is_unresponsive() {
    let line = FakeLine::new(sim_with(&[]), None);
    line.lock().unwrap().deaf = true;
    let (r, rx) = reader(line.clone());
    wait_for(&rx, "unresponsive", |e| {
        (*e == Event::State(State::Unresponsive)).then_some(())
    });
    // It answers again: the reopened port gets ready.
    line.lock().unwrap().deaf = false;
    ready(&rx);
    r.shutdown();
}

/// `reader-sim` with a DynaFlex profile: in-process over the fake HID transport, one read per
/// `--card`, KSN counting up, the reader's received requests on standard error.
#[test]
fn reader_sim_magtek_mode_reads_each_card() {
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args([
            "reader-sim",
            "--profile",
            "magtek-dynaflex-hid",
            "--interface",
            "contact",
        ])
        .args([
            "--card",
            "5413330089020011:2912",
            "--card",
            "4761739001010119:2512",
        ])
        .args(["--present-after", "20"])
        .output_within();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}");
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["ready"], true);
    for (l, last4, ksn) in [
        (&lines[1], "0011", "FFFF9876543210E00001"),
        (&lines[2], "0119", "FFFF9876543210E00002"),
    ] {
        assert_eq!(l["format"], "magtek-emv");
        assert_eq!(l["last4"], last4);
        assert_eq!(l["ksn"], ksn);
        assert_eq!(l["entry_mode"], "05");
    }
    assert!(!stdout.contains("5413330089020011") && !stdout.contains("4761739001010119"));
    let received: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["received"].as_str().map(str::to_string))
        .collect();
    // The open's echo first; the idle watchdog may add echoes between transactions on a slow
    // machine, so the transactions are compared without them.
    assert_eq!(received.first().map(String::as_str), Some("DF01"));
    let transactions: Vec<&String> = received.iter().filter(|r| *r != "DF01").collect();
    assert_eq!(transactions, ["1001", "1008", "1001", "1008"]);
}
