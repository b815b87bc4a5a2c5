//! An eDynamo (MagneSafe V5) driven end to end: the driver runs the V5 session over the fake HID
//! transport (commands and results as feature reports, notifications as input report 2) to a
//! simulated eDynamo, which presents a test card as an ARQC container; the read goes through
//! the agent pipeline (`cardlane replay --gateway`, with the reader's profile) to
//! `cardlane gateway-sim` on loopback, which decrypts it and saves the customer once. Also: a
//! cancel the reader refuses because the card is in (the card's data still ends the
//! transaction), and a reader that takes no feature report (unresponsive, then ready again
//! with its clock set anew after a power-up). Every wait has a 30 s bound that fails.
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use cardlane::device::fake_hid::{FakeHidPort, FakeLine};
use cardlane::device::session::{DrivenReader, DriverConfig, DriverEvent, Port};
use cardlane::device::transport::Duplex;
use cardlane::device::Profiles;
use cardlane::protocol::magtek_v5::sim::SimEdynamo;
use cardlane::protocol::mms::sim::SimCard;
use cardlane::protocol::neo2::{Activate, Event, Interfaces, SessionConfig, State, Status};
use zeroize::Zeroizing;

mod common;
use common::driven_hid::{
    assert_requests, capture_text, read, reader_sim_two_cards, ready, replay_to_gateway_sim,
    wait_for, Replayed,
};
use common::OutputWithin;

const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const KEY: &str = "test-api-key-0001";

type Line = Arc<Mutex<FakeLine<SimEdynamo>>>;

/// The capture header's provenance line for a read made here.
fn source(what: &str) -> String {
    format!("synthetic: protocol::magtek_v5::sim over the fake HID transport (tests/edynamo_driven.rs, WRITE_V5_CAPTURES=DIR); {what}; ANSI test BDK 0123456789ABCDEFFEDCBA9876543210, KSN FFFF9876543210E00001, data key (OWF)")
}

fn sim_with(pans: &[String], contactless: bool) -> SimEdynamo {
    let cards = pans
        .iter()
        .map(|p| SimCard {
            pan: Zeroizing::new(p.clone()),
            expiry: "2512".into(),
            contactless,
        })
        .collect();
    SimEdynamo::new(
        &hex::decode(BDK).unwrap(),
        &hex::decode("FFFF9876543210E00000").unwrap(),
        cards,
    )
    .unwrap()
}

/// The driver with `profile`'s settings (protocol, feature report id, card types).
fn reader(line: Line, profile: &str) -> (DrivenReader, mpsc::Receiver<DriverEvent>) {
    let profiles = Profiles::embedded().unwrap();
    let p = profiles.get(profile).unwrap().clone();
    line.lock().unwrap().feature_id = p.magtek_v5.as_ref().unwrap().feature_report_id;
    let (tx, rx) = mpsc::channel();
    let connect = move || {
        Ok(Port {
            io: Box::new(FakeHidPort::new(line.clone())) as Box<dyn Duplex>,
            hid: true,
        })
    };
    let mut config = DriverConfig {
        session: SessionConfig {
            response_timeout: Duration::from_millis(500),
            ..SessionConfig::default()
        },
        backoff_min: Duration::from_millis(20),
        ..DriverConfig::default()
    };
    config.apply_profile(Some(&p));
    let r = DrivenReader::spawn_with(connect, config, move |e| {
        let _ = tx.send(e);
    });
    (r, rx)
}

fn activate(r: &DrivenReader) {
    r.activate(Activate {
        interfaces: Interfaces::ALL,
        timeout: Duration::from_secs(20),
    })
    .unwrap();
}

#[test]
fn edynamo_chip_read_through_feature_reports_is_saved_once() {
    let pan = common::with_check_digit("476173900101011");
    let last4 = pan[pan.len() - 4..].to_string();
    // 1. The read, through the driver and the fake HID line.
    let line = FakeLine::new(
        sim_with(std::slice::from_ref(&pan), false),
        Some(Duration::from_millis(50)),
    );
    let (r, rx) = reader(line.clone(), "magtek-edynamo-hid");
    ready(&rx);
    activate(&r);
    let (got4, frame) = read(&rx);
    assert_eq!(got4, last4);
    wait_for(&rx, "idle after the read's cancel", |e| {
        (*e == Event::State(State::Idle)).then_some(())
    });
    r.shutdown();
    // The clock before the start (the simulator refuses a start without it), the read's cancel.
    let log = line.lock().unwrap().reader.log.clone();
    assert_eq!(log, ["030C", "0300", "0304"]);
    // The profile's card types: MSR 01 and contact 02, no contactless on an eDynamo.
    assert_eq!(line.lock().unwrap().reader.card_types, Some(0x03));

    // 2. The pipeline and the gateway simulator: every input report the reader sent, as a
    // capture of the eDynamo profile; its framer finds the container in the ARQC notification.
    let reports = line.lock().unwrap().delivered.clone();
    assert!(reports.iter().all(|r| r.len() == 64 && r[0] == 0x02));
    let text = capture_text(
        "magtek-edynamo-hid",
        &source("an eDynamo chip read"),
        &reports,
    );
    let profiles = Profiles::embedded().unwrap();
    let cap = cardlane::capture::Capture::parse(&text).unwrap();
    let frames = cardlane::capture::frames(&cap, &profiles).unwrap();
    assert_eq!(
        frames.len(),
        1,
        "one card-data frame among {}",
        reports.len()
    );
    assert_eq!(frames[0].bytes.as_slice(), &frame[..]);
    if let Ok(dir) = std::env::var("WRITE_V5_CAPTURES") {
        // How fixtures/captures/chip-magtek-edynamo-hid.capture was made.
        std::fs::write(
            std::path::Path::new(&dir).join("chip-magtek-edynamo-hid.capture"),
            &text,
        )
        .unwrap();
    }
    let Replayed {
        stdout,
        lines,
        customers,
    } = replay_to_gateway_sim(&text, BDK, KEY);
    assert_eq!(lines.len(), 1, "{stdout}");
    assert_eq!(lines[0]["outcome"], "saved", "{stdout}");
    let masked = format!("{}{}{last4}", &pan[..6], "*".repeat(pan.len() - 10));
    assert_eq!(lines[0]["masked_pan"], masked.as_str());
    assert!(!stdout.contains(&pan));
    assert_eq!(customers.len(), 1, "{customers:?}");
    // The simulator's last 4 come from the decrypted container (DFDF59 under the data key).
    assert_eq!(customers[0]["account_last_4"], last4.as_str());
    assert_eq!(customers[0]["expiration_date"], "1225");
    assert_eq!(customers[0]["updated_count"], 0);
}

#[test]
fn tdynamo_contactless_read_uses_its_card_types() {
    let pan = common::with_check_digit("541333008902001");
    let line = FakeLine::new(
        sim_with(std::slice::from_ref(&pan), true),
        Some(Duration::from_millis(30)),
    );
    let (r, rx) = reader(line.clone(), "magtek-tdynamo-hid");
    ready(&rx);
    activate(&r);
    let (got4, _) = read(&rx);
    assert_eq!(got4, pan[pan.len() - 4..]);
    wait_for(&rx, "idle", |e| {
        (*e == Event::State(State::Idle)).then_some(())
    });
    r.shutdown();
    // MSR, contact and the tDynamo profile's contactless bit.
    assert_eq!(line.lock().unwrap().reader.card_types, Some(0x07));
    let reports = line.lock().unwrap().delivered.clone();
    let text = capture_text(
        "magtek-tdynamo-hid",
        &source("a tDynamo contactless read"),
        &reports,
    );
    if let Ok(dir) = std::env::var("WRITE_V5_CAPTURES") {
        // How fixtures/captures/magtek-tdynamo-hid.capture was made.
        std::fs::write(
            std::path::Path::new(&dir).join("magtek-tdynamo-hid.capture"),
            &text,
        )
        .unwrap();
    }
    let profiles = Profiles::embedded().unwrap();
    let cap = cardlane::capture::Capture::parse(&text).unwrap();
    let frames = cardlane::capture::frames(&cap, &profiles).unwrap();
    let read = cardlane::parse::decode_frame(&frames[0].bytes).unwrap();
    // Contactless: entry mode 07 from the container's 9F39.
    assert_eq!(read.to_json()["entry_mode"], "07");
}

#[test]
fn a_cancel_refused_because_the_card_is_in_ends_with_the_cards_data() {
    let pan = common::with_check_digit("476173900101011");
    let line = FakeLine::new(
        sim_with(std::slice::from_ref(&pan), false),
        Some(Duration::from_millis(30)),
    );
    line.lock().unwrap().reader.hold_arqc = true;
    let (r, rx) = reader(line.clone(), "magtek-edynamo-hid");
    ready(&rx);
    activate(&r);
    // The card is in (the reader says so), its data not yet sent: the cancel is refused.
    wait_for(&rx, "the card-in prompt", |e| {
        (*e == Event::Prompt("PROCESSING".into())).then_some(())
    });
    r.cancel().unwrap();
    wait_for(&rx, "the refused cancel", |e| match e {
        Event::CancelAnswered { status } => {
            assert_eq!(*status, Status::Failed);
            Some(())
        }
        Event::Outcome(o) => panic!("outcome {o:?} before the card's data"),
        _ => None,
    });
    line.lock().unwrap().present_now().unwrap();
    let (got4, _) = read(&rx);
    assert_eq!(got4, pan[pan.len() - 4..]);
    wait_for(&rx, "idle", |e| {
        (*e == Event::State(State::Idle)).then_some(())
    });
    r.shutdown();
    let log = line.lock().unwrap().reader.log.clone();
    // Clock, start, the refused cancel, the cancel after the read (taken).
    assert_eq!(log, ["030C", "0300", "0304", "0304"]);
    assert!(!line.lock().unwrap().reader.running());
}

#[test]
fn a_silent_edynamo_is_unresponsive_and_its_clock_is_set_again() {
    let pan = common::with_check_digit("476173900101011");
    let line = FakeLine::new(
        sim_with(std::slice::from_ref(&pan), false),
        Some(Duration::from_millis(30)),
    );
    line.lock().unwrap().deaf = true;
    let (r, rx) = reader(line.clone(), "magtek-edynamo-hid");
    wait_for(&rx, "unresponsive", |e| {
        (*e == Event::State(State::Unresponsive)).then_some(())
    });
    {
        // It answers again, after a power cycle that lost its clock.
        let mut l = line.lock().unwrap();
        l.reader.power_up();
        l.deaf = false;
    }
    ready(&rx);
    // A start works only with the clock set since power-up: the reopened port set it.
    activate(&r);
    let (got4, _) = read(&rx);
    assert_eq!(got4, pan[pan.len() - 4..]);
    r.shutdown();
    let log = line.lock().unwrap().reader.log.clone();
    assert_eq!(log[..2], ["030C", "0300"]);
}

/// `reader-sim` with the eDynamo profile: in-process over the fake HID transport, one read per
/// `--card`, KSN counting up, the reader's received commands on standard error.
#[test]
fn reader_sim_edynamo_mode_reads_each_card() {
    let (ready, received) = reader_sim_two_cards("magtek-edynamo-hid");
    assert_eq!(ready["profile"], "magtek-edynamo-hid");
    // The open's clock first; the idle watchdog sets it again (its ping) if a slow machine
    // leaves the reader quiet long enough.
    assert_requests(&received, "030C", &["0300", "0304", "0300", "0304"]);
    // An eDynamo has no antenna: a contactless card is refused before anything runs.
    let out = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["reader-sim", "--profile", "magtek-edynamo-hid"])
        .args(["--card", "5413330089020011:2912"])
        .output_within();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interface contact"));
}
