//! The DynaFlex session (sans-io) against the simulated DynaFlex: open, a chip read ended with
//! a cancel, host time-out, user cancel, a refused start retried once, a refused cancel, and a
//! reader that ignores what it is sent (unresponsive, with its reason code). Time is passed in
//! explicitly: no sleeps.
use std::time::{Duration, Instant};

use cardlane::crypto::BdkDecryptor;
use cardlane::parse::decrypt_read;
use cardlane::protocol::mms::message::{Message, MsgType, Status as MmsStatus};
use cardlane::protocol::mms::session::{MmsConfig, Session};
use cardlane::protocol::mms::sim::{SimCard, SimDynaflex};
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome, State};
use zeroize::Zeroizing;

const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

fn sim(cards: &[&str]) -> SimDynaflex {
    let cards = cards
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

/// Moves every message between the two until both are quiet; returns the session's events.
fn exchange(s: &mut Session, r: &mut SimDynaflex, now: Instant) -> Vec<Event> {
    let mut events = Vec::new();
    for _ in 0..20 {
        let mut moved = false;
        while let Some(m) = s.poll_transmit() {
            moved = true;
            for reply in r.handle(&m) {
                s.handle_bytes(now, &reply);
            }
        }
        while let Some(e) = s.poll_event() {
            events.push(e);
        }
        if !moved {
            break;
        }
    }
    events
}

fn outcomes(ev: &[Event]) -> Vec<&Outcome> {
    ev.iter()
        .filter_map(|e| match e {
            Event::Outcome(o) => Some(o),
            _ => None,
        })
        .collect()
}

fn ready(now: Instant, r: &mut SimDynaflex) -> Session {
    let mut s = Session::new(MmsConfig::default(), now);
    s.open(now);
    let ev = exchange(&mut s, r, now);
    assert!(ev.contains(&Event::Ready { firmware: None }), "{ev:?}");
    assert_eq!(s.state(), State::Idle);
    s
}

fn activate(timeout_s: u64) -> Activate {
    Activate {
        interfaces: Interfaces::ALL,
        timeout: Duration::from_secs(timeout_s),
    }
}

#[test]
fn chip_read_then_cancel_back_to_idle() {
    let now = Instant::now();
    let mut r = sim(&["5413330089020011"]);
    let mut s = ready(now, &mut r);
    s.activate(now, activate(30)).unwrap();
    exchange(&mut s, &mut r, now);
    assert_eq!(s.state(), State::WaitingForCard);
    assert!(r.running());
    // Only a cancel may be asked for now.
    assert_eq!(s.activate(now, activate(30)).unwrap_err().code(), "busy");
    for m in r.present().unwrap() {
        s.handle_bytes(now, &m);
    }
    let ev = exchange(&mut s, &mut r, now);
    let outs = outcomes(&ev);
    assert_eq!(outs.len(), 1, "{ev:?}");
    let Outcome::Read { read, frame } = outs[0] else {
        panic!("{outs:?}")
    };
    assert_eq!(read.last4.as_deref(), Some("0011"));
    assert_eq!(read.entry_mode.map(|m| m.code()).as_deref(), Some("05"));
    // The frame is the container: it decodes and decrypts to the card (KSN …E00001).
    let d = decrypt_read(
        read,
        &BdkDecryptor::new(&hex::decode(BDK).unwrap()).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(
        d.decrypted.unwrap()[1].as_ref().unwrap().expose(),
        ";5413330089020011=29122010000000?"
    );
    assert_eq!(read.ksn.as_ref().unwrap().to_hex(), "FFFF9876543210E00001");
    assert!(!frame.is_empty());
    // The session ended the transaction with a cancel and is idle again.
    assert_eq!(s.state(), State::Idle);
    assert!(!r.running());
    assert_eq!(r.log, ["DF01", "1001", "1008"]);
}

#[test]
fn host_timeout_and_user_cancel() {
    let now = Instant::now();
    let mut r = sim(&[]);
    let mut s = ready(now, &mut r);
    s.activate(now, activate(5)).unwrap();
    exchange(&mut s, &mut r, now);
    let deadline = s.poll_timeout().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(5));
    s.handle_timeout(deadline);
    let ev = exchange(&mut s, &mut r, deadline);
    assert_eq!(outcomes(&ev), [&Outcome::TimedOut]);
    assert_eq!(s.state(), State::Idle);
    s.activate(deadline, activate(30)).unwrap();
    exchange(&mut s, &mut r, deadline);
    s.cancel(deadline).unwrap();
    let ev = exchange(&mut s, &mut r, deadline);
    assert_eq!(outcomes(&ev), [&Outcome::Cancelled]);
    assert_eq!(r.log, ["DF01", "1001", "1008", "1001", "1008"]);
}

#[test]
fn a_refused_start_is_cancelled_and_retried_once() {
    let now = Instant::now();
    let mut r = sim(&["4761739001010119"]);
    let mut s = ready(now, &mut r);
    // Another host left a transaction running on the reader.
    r.handle(&Message::request(9, 0x1001, &[]).encode());
    s.activate(now, activate(30)).unwrap();
    exchange(&mut s, &mut r, now);
    // Refused (80 020308), cancelled; the retry waits for its pause.
    assert_eq!(r.log, ["DF01", "1001", "1001", "1008"]);
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    exchange(&mut s, &mut r, at);
    assert_eq!(r.log.last().map(String::as_str), Some("1001"));
    assert!(r.running());
    assert_eq!(s.state(), State::WaitingForCard);
}

#[test]
fn a_refused_cancel_waits_for_the_card_data() {
    let now = Instant::now();
    let mut r = sim(&["5413330089020011"]);
    let mut s = ready(now, &mut r);
    s.activate(now, activate(30)).unwrap();
    exchange(&mut s, &mut r, now);
    s.cancel(now).unwrap();
    // The reader answers "failed, cannot cancel" (81 020305): a card is being read.
    let sent = Message::decode(&s.poll_transmit().unwrap()).unwrap();
    assert_eq!(sent.command, 0x1008);
    let refusal = Message {
        kind: MsgType::ResponseFromDevice,
        msg_ref: sent.msg_ref,
        command: 0x1008,
        status: Some(MmsStatus([0x81, 0x02, 0x03, 0x05])),
        payload: Zeroizing::new(Vec::new()),
    };
    s.handle_bytes(now, &refusal.encode());
    let ev = exchange(&mut s, &mut r, now);
    assert!(outcomes(&ev).is_empty(), "{ev:?}");
    assert_eq!(s.state(), State::Cancelling);
    for m in r.present().unwrap() {
        s.handle_bytes(now, &m);
    }
    let ev = exchange(&mut s, &mut r, now);
    assert!(
        matches!(outcomes(&ev)[..], [Outcome::Read { .. }]),
        "{ev:?}"
    );
    assert_eq!(s.state(), State::Idle);
}

#[test]
fn a_reader_that_ignores_its_messages_is_unresponsive() {
    let now = Instant::now();
    let mut s = Session::new(MmsConfig::default(), now);
    s.open(now);
    // The echo goes out; nothing comes back (a DynaFlex drops what it cannot parse).
    assert!(s.poll_transmit().is_some());
    let at = s.poll_timeout().unwrap();
    assert_eq!(at, now + Duration::from_secs(3));
    s.handle_timeout(at);
    assert_eq!(s.state(), State::Unresponsive);
    assert_eq!(s.state().as_str(), "unresponsive");
    // During a transaction: the start unanswered ends it `disconnected`.
    let mut r = sim(&[]);
    let mut s = ready(now, &mut r);
    s.activate(now, activate(30)).unwrap();
    assert!(s.poll_transmit().is_some());
    let at = s.poll_timeout().unwrap();
    s.handle_timeout(at);
    let mut ev = Vec::new();
    while let Some(e) = s.poll_event() {
        ev.push(e);
    }
    assert_eq!(outcomes(&ev), [&Outcome::Disconnected]);
    assert_eq!(outcomes(&ev)[0].code(), "disconnected");
    assert_eq!(s.state(), State::Unresponsive);
    // Garbage and foreign messages from the reader are dropped without an answer.
    let mut r = sim(&[]);
    assert!(r.handle(b"\x02garbage").is_empty());
    assert!(r
        .handle(&hex::decode("AA0081048300010182040000000084020101").unwrap())
        .is_empty());
}

#[test]
fn the_idle_watchdog_is_an_echo() {
    let now = Instant::now();
    let mut r = sim(&[]);
    let mut s = ready(now, &mut r);
    let at = s.poll_timeout().unwrap();
    assert_eq!(at, now + Duration::from_secs(15));
    s.handle_timeout(at);
    let ev = exchange(&mut s, &mut r, at);
    assert!(ev.contains(&Event::Pong), "{ev:?}");
    assert_eq!(r.log, ["DF01", "DF01"]);
}
