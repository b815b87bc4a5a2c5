//! The eDynamo/tDynamo session (sans-io) against answers written from the spec: the clock set on
//! open, the spec's start and cancel reports, an ARQC notification (the ARQC fixture) read and
//! followed by a cancel, and a refused cancel that waits for the card data. No sleeps.
use std::time::{Duration, Instant};

use cardlane::protocol::magtek_v5::commands::DateTime;
use cardlane::protocol::magtek_v5::extended::answer_parts;
use cardlane::protocol::magtek_v5::notify::{reports, ARQC};
use cardlane::protocol::magtek_v5::session::{Action, Session, V5Config};
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome, State};

mod common;

fn container() -> Vec<u8> {
    common::decode_fixture_bytes("magtek_emv_arqc_contact.hex")
}

/// Answers every Set with result `code` (one 0A part); returns the sets' extended command ids.
fn answer_all(s: &mut Session, now: Instant, code: u16) -> Vec<u16> {
    let mut cmds = Vec::new();
    while let Some(a) = s.poll_action() {
        let Action::Set(r) = a else {
            panic!("unexpected get")
        };
        assert_eq!(r[0], 0x49);
        cmds.push(u16::from_be_bytes([r[4], r[5]]));
        for part in answer_parts(code, &[]) {
            s.handle_feature(now, &part);
        }
    }
    cmds
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn ready(now: Instant) -> Session {
    let mut s = Session::new(V5Config::default());
    s.open(DateTime::from_unix(1_796_408_577));
    assert_eq!(
        s.poll_action()
            .map(|a| matches!(a, Action::Set(ref r) if r[4..6] == [0x03, 0x0C])),
        Some(true)
    );
    for part in answer_parts(0, &[]) {
        s.handle_feature(now, &part);
    }
    assert!(events(&mut s).contains(&Event::Ready { firmware: None }));
    s
}

#[test]
fn arqc_read_then_cancel() {
    let now = Instant::now();
    let mut s = ready(now);
    s.activate(
        now,
        Activate {
            interfaces: Interfaces::ALL,
            timeout: Duration::from_secs(30),
        },
    )
    .unwrap();
    assert_eq!(answer_all(&mut s, now, 0), [0x0300]);
    assert_eq!(s.state(), State::WaitingForCard);
    for r in reports(ARQC, &container(), 55, 64) {
        s.handle_input(now, &r);
    }
    let ev = events(&mut s);
    let read = ev.iter().find_map(|e| match e {
        Event::Outcome(Outcome::Read { read, .. }) => Some(read.clone()),
        _ => None,
    });
    assert_eq!(read.unwrap().last4.as_deref(), Some("0011"));
    // The session ends the transaction with 0304.
    assert_eq!(answer_all(&mut s, now, 0), [0x0304]);
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn refused_cancel_waits_for_the_card_and_host_timeout() {
    let now = Instant::now();
    let mut s = ready(now);
    s.activate(
        now,
        Activate {
            interfaces: Interfaces::ALL,
            timeout: Duration::from_secs(5),
        },
    )
    .unwrap();
    answer_all(&mut s, now, 0);
    s.cancel(now).unwrap();
    // Refused (non-zero result): a card was already presented.
    assert_eq!(answer_all(&mut s, now, 0x0001), [0x0304]);
    assert!(!events(&mut s)
        .iter()
        .any(|e| matches!(e, Event::Outcome(_))));
    for r in reports(ARQC, &container(), 55, 64) {
        s.handle_input(now, &r);
    }
    assert!(events(&mut s)
        .iter()
        .any(|e| matches!(e, Event::Outcome(Outcome::Read { .. }))));
    // The reader's transaction is then ended with a cancel, as after any read.
    assert_eq!(answer_all(&mut s, now, 0), [0x0304]);
    assert_eq!(s.state(), State::Idle);
    // Host time-out: a cancel, answered, ends timed out.
    s.activate(
        now,
        Activate {
            interfaces: Interfaces::ALL,
            timeout: Duration::from_secs(5),
        },
    )
    .unwrap();
    answer_all(&mut s, now, 0);
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    assert_eq!(answer_all(&mut s, at, 0), [0x0304]);
    assert!(events(&mut s).contains(&Event::Outcome(Outcome::TimedOut)));
    // No feature result: unresponsive.
    s.feature_failed();
    assert_eq!(s.state(), State::Unresponsive);
}

/// The watchdog: after `idle_ping` of quiet the clock is set again (the wall clock moved on by
/// the time passed) and its answer is a pong; without an answer the reader is unresponsive.
#[test]
fn idle_watchdog_sets_the_clock_again() {
    let t0 = Instant::now();
    let mut s = Session::new(V5Config::default());
    s.open_at(t0, 1_796_408_577);
    assert_eq!(answer_all(&mut s, t0, 0), [0x030C]);
    events(&mut s);
    let at = s.poll_timeout().unwrap();
    assert_eq!(at, t0 + V5Config::default().session.idle_ping);
    s.handle_timeout(at);
    let Some(Action::Set(r)) = s.poll_action() else {
        panic!("no clock set")
    };
    // 15 s later: 18:23:12 → 0C 04 12 17 0C 00 12 (month, day, hour, minute, second, 00, year).
    assert_eq!(&r[4..6], &[0x03, 0x0C]);
    assert_eq!(&r[25..32], &hex::decode("0C0412170C0012").unwrap()[..]);
    for part in answer_parts(0, &[]) {
        s.handle_feature(at, &part);
    }
    assert_eq!(events(&mut s), [Event::Pong]);
    s.handle_timeout(s.poll_timeout().unwrap());
    assert!(matches!(s.poll_action(), Some(Action::Set(_))));
    s.feature_failed();
    assert_eq!(s.state(), State::Unresponsive);
}

/// A swipe during a transaction: the MagneSafe report (id 1) is the read, then a cancel.
#[test]
fn a_swipe_report_ends_the_transaction() {
    let now = Instant::now();
    let mut s = ready(now);
    s.activate(
        now,
        Activate {
            interfaces: Interfaces::ALL,
            timeout: Duration::from_secs(30),
        },
    )
    .unwrap();
    answer_all(&mut s, now, 0);
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/captures/magtek-edynamo-hid.capture");
    let text = std::fs::read_to_string(p).unwrap();
    let report: Vec<u8> = text
        .lines()
        .filter_map(|l| l.split_once(" hex "))
        .flat_map(|(_, h)| hex::decode(h.trim()).unwrap())
        .collect();
    assert_eq!(report.len(), 889);
    s.handle_input(now, &report);
    let read = events(&mut s).into_iter().find_map(|e| match e {
        Event::Outcome(Outcome::Read { read, .. }) => Some(read),
        _ => None,
    });
    // fixtures/captures/expected.json: that capture's card ends 5556.
    assert_eq!(read.unwrap().last4.as_deref(), Some("5556"));
    assert_eq!(answer_all(&mut s, now, 0), [0x0304]);
    assert_eq!(s.state(), State::Idle);
}

proptest::proptest! {
    /// Whatever input reports arrive (swipe ids, notification parts, junk), during a
    /// transaction or not, the session never panics and ends at most one transaction once.
    #[test]
    fn arbitrary_input_reports_never_panic(
        rs in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), 0..12),
    ) {
        let now = Instant::now();
        let mut s = ready(now);
        s.activate(now, Activate { interfaces: Interfaces::ALL, timeout: Duration::from_secs(5) }).unwrap();
        answer_all(&mut s, now, 0);
        for r in &rs {
            s.handle_input(now, r);
            answer_all(&mut s, now, 0);
        }
        let outcomes = events(&mut s).iter().filter(|e| matches!(e, Event::Outcome(_))).count();
        proptest::prop_assert!(outcomes <= 1);
    }
}
