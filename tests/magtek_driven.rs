//! A DynaFlex (MMS) chip read end to end: the driver runs the MMS session over the fake HID
//! transport (64-byte packets both ways) to a simulated DynaFlex, which presents a test card
//! as an ARQC container; the read goes through the agent pipeline (`cardlane replay --gateway`,
//! with the reader's profile) to `cardlane gateway-sim` on loopback, which decrypts it and
//! saves the customer once. Also: a reader that ignores every message is reported unresponsive.
//! Every wait has a 30 s bound that fails.
use std::sync::mpsc;
use std::time::Duration;

use cardlane::device::fake_hid::{FakeDynaflexPort, FakeLine};
use cardlane::device::session::{DrivenProtocol, DrivenReader, DriverConfig, DriverEvent, Port};
use cardlane::device::transport::Duplex;
use cardlane::protocol::mms::sim::{SimCard, SimDynaflex};
use cardlane::protocol::neo2::{Activate, Event, Interfaces, SessionConfig, State};
use zeroize::Zeroizing;

mod common;
use common::driven_hid::{
    assert_requests, capture_text, read, reader_sim_two_cards, ready, replay_to_gateway_sim,
    wait_for, Replayed,
};

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
    let (_, received) = reader_sim_two_cards("magtek-dynaflex-hid");
    // The open's echo first; the idle watchdog may add echoes on a slow machine.
    assert_requests(&received, "DF01", &["1001", "1008", "1001", "1008"]);
}
