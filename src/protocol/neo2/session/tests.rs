//! The session against scripted readers: each test plays the reader by hand, answering the
//! frames the session wrote with frames written from the spec.
use std::time::{Duration, Instant};

use super::*;
use crate::parse::build::tlv;
use crate::protocol::neo2::frame::decode_command;
use crate::protocol::neo2::Interfaces;

struct Rig {
    s: Session,
    now: Instant,
}

const FIRMWARE: &str = "NEO v1.01.090";

impl Rig {
    fn new() -> Rig {
        let now = Instant::now();
        Rig {
            s: Session::new(SessionConfig::default(), now),
            now,
        }
    }

    /// Commands the session wrote since the last call, as "CC-SS" names.
    fn sent(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(b) = self.s.poll_transmit() {
            out.push(
                decode_command(&b)
                    .expect("session writes valid command frames")
                    .name(),
            );
        }
        out
    }

    fn sent_raw(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.s.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    fn outcomes(&mut self) -> Vec<Outcome> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Outcome(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    fn reply(&mut self, command: u8, status: u8, data: &[u8]) {
        let bytes = Response::new(command, Status::from_byte(status), data)
            .encode()
            .unwrap();
        self.s.handle_bytes(self.now, &bytes);
    }

    fn prompt(&mut self, text: &str) {
        let bytes = Command::new(0x61, 0x01, text.as_bytes()).encode().unwrap();
        self.s.handle_bytes(self.now, &bytes);
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.s.handle_timeout(self.now);
    }

    /// Opens and answers the open sequence; leaves the rig idle with no pending output.
    fn opened() -> Rig {
        let mut r = Rig::new();
        r.s.open(r.now);
        assert_eq!(r.sent(), ["18-01"]);
        r.reply(0x18, 0x00, &[]);
        assert_eq!(r.sent(), ["29-00"]);
        r.reply(0x29, 0x00, FIRMWARE.as_bytes());
        assert_eq!(r.sent(), ["01-01"]);
        r.reply(0x01, 0x00, &[]);
        assert_eq!(r.sent(), ["04-00"]);
        r.reply(0x04, 0x00, &[]);
        assert!(r.sent().is_empty());
        assert_eq!(r.s.state(), State::Idle);
        r.events();
        r
    }

    fn activate(&mut self, secs: u64) {
        self.s
            .activate(
                self.now,
                Activate {
                    interfaces: Interfaces::ALL,
                    timeout: Duration::from_secs(secs),
                },
            )
            .unwrap();
    }
}

const KSN: &str = "62994900000000000003";

/// A contactless read as a VP3300 answers (reader-formats.md §2.7): attribution 0x41 (encrypted,
/// contactless EMV), 57 masked (A1) and "ciphertext" (C1; not decrypted here), DFEE12 KSN,
/// DFEE25 result, 9F39 07.
fn card_data(result: [u8; 2]) -> Vec<u8> {
    let masked = hex::decode("4111CCCCCCCC1111D29121010000012300000F").unwrap();
    let mut d = vec![0x41, 0x57, 0xA1, masked.len() as u8];
    d.extend_from_slice(&masked);
    d.extend_from_slice(&[0x57, 0xC1, 0x18]);
    d.extend_from_slice(&[0x5Au8; 0x18]);
    d.extend(tlv(0xDFEE12, &hex::decode(KSN).unwrap()));
    d.extend(tlv(0xDFEE25, &result));
    d.extend(tlv(0x9F39, &[0x07]));
    d
}

#[test]
fn open_sends_one_command_at_a_time_and_reports_firmware() {
    let mut r = Rig::new();
    r.s.open(r.now);
    assert_eq!(r.s.state(), State::Opening);
    // Exactly the ping of §1.5, and nothing else until it is answered.
    assert_eq!(
        r.sent_raw(),
        vec![hex::decode("5669564F74656368320018010000B3CD").unwrap()]
    );
    r.advance(Duration::from_millis(500));
    assert!(r.sent().is_empty());
    r.reply(0x18, 0x00, &[]);
    assert_eq!(r.sent(), ["29-00"]);
    r.reply(0x29, 0x00, FIRMWARE.as_bytes());
    let poll = r.sent_raw();
    assert_eq!(
        poll,
        vec![hex::decode("5669564F7465636832000101000101D734").unwrap()]
    );
    r.reply(0x01, 0x00, &[]);
    let burst = r.sent_raw();
    assert_eq!(
        decode_command(&burst[0]).unwrap().data.as_slice(),
        &[0xDF, 0xEE, 0x7E, 0x01, 0x00]
    );
    r.reply(0x04, 0x00, &[]);
    let ev = r.events();
    assert!(ev.contains(&Event::Ready {
        firmware: Some(FIRMWARE.to_string())
    }));
    assert!(ev.contains(&Event::State(State::Idle)));
    assert_eq!(r.s.firmware(), Some(FIRMWARE));
}

#[test]
fn first_response_then_prompts_then_data() {
    let mut r = Rig::opened();
    r.activate(30);
    let start = r.sent_raw();
    assert_eq!(start.len(), 1);
    let c = decode_command(&start[0]).unwrap();
    // Reader time-out 30 + 2 s margin = 0x20; amount zero, purchase, all interfaces.
    assert_eq!(
        hex::encode_upper(c.data.as_slice()),
        "209F02060000000000009C0100DFEF370107"
    );
    assert_eq!(r.s.state(), State::WaitingForCard);
    r.reply(0x02, 0x63, &[]);
    r.prompt("PRESENT CARD");
    r.prompt("PROCESSING");
    let ev = r.events();
    assert!(ev.contains(&Event::Prompt("PRESENT CARD".into())));
    assert!(ev.contains(&Event::Prompt("PROCESSING".into())));
    assert!(!ev.iter().any(|e| matches!(e, Event::Outcome(_))));
    r.reply(0x02, 0x00, &card_data([0x00, 0x10]));
    let ev = r.events();
    let outcome = ev.iter().find_map(|e| match e {
        Event::Outcome(o) => Some(o.clone()),
        _ => None,
    });
    let Some(Outcome::Read { read, frame }) = outcome else {
        panic!("expected a read, got {ev:?}");
    };
    assert_eq!(read.last4.as_deref(), Some("1111"));
    assert_eq!(read.entry_mode.map(|m| m.code()).as_deref(), Some("07"));
    assert_eq!(read.ksn.as_ref().map(|k| k.to_hex()).as_deref(), Some(KSN));
    assert_eq!(&frame[..10], b"ViVOtech2\0");
    // DFEE25 0010: card data without a cryptogram; the session ends it with a cancel.
    assert_eq!(r.sent(), ["05-01"]);
    assert_eq!(r.s.state(), State::Cancelling);
    r.reply(0x05, 0x00, &[]);
    assert_eq!(r.s.state(), State::Idle);
    assert!(r.outcomes().is_empty(), "one outcome per transaction");
}

#[test]
fn go_online_read_needs_no_cancel() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x23, &card_data([0x00, 0x04]));
    assert!(matches!(r.outcomes().as_slice(), [Outcome::Read { .. }]));
    assert!(r.sent().is_empty());
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn refused_start_is_cancelled_then_retried_once_after_a_pause() {
    let mut r = Rig::opened();
    r.activate(30);
    assert_eq!(r.sent(), ["02-40"]);
    r.reply(0x02, 0x0B, &[]);
    assert_eq!(r.sent(), ["05-01"]);
    r.reply(0x05, 0x00, &[]);
    assert!(r.sent().is_empty());
    r.advance(Duration::from_millis(200));
    assert!(r.sent().is_empty(), "not before the pause");
    r.advance(Duration::from_millis(60));
    assert_eq!(r.sent(), ["02-40"]);
    r.reply(0x02, 0x0B, &[]);
    assert_eq!(
        r.outcomes(),
        vec![Outcome::ReaderError {
            status: Status::CommandNotAllowed
        }]
    );
    assert_eq!(r.s.state(), State::Idle);
    r.advance(Duration::from_secs(1));
    assert!(r.sent().is_empty(), "no second retry");
}

#[test]
fn refused_once_then_read() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x0C, &[]);
    assert_eq!(r.sent(), ["05-01"]);
    r.reply(0x05, 0x00, &[]);
    r.advance(Duration::from_millis(250));
    assert_eq!(r.sent(), ["02-40"]);
    r.reply(0x02, 0x63, &[]);
    r.reply(0x02, 0x23, &card_data([0x00, 0x04]));
    assert!(matches!(r.outcomes().as_slice(), [Outcome::Read { .. }]));
}

#[test]
fn nothing_but_a_cancel_while_a_transaction_runs() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x63, &[]);
    assert_eq!(
        r.s.ping(r.now),
        Err(SessionError::Busy(State::WaitingForCard))
    );
    let again = Activate {
        interfaces: Interfaces::ALL,
        timeout: Duration::from_secs(5),
    };
    assert_eq!(
        r.s.activate(r.now, again),
        Err(SessionError::Busy(State::WaitingForCard))
    );
    // The watchdog does not ping during a transaction either.
    r.advance(Duration::from_secs(20));
    assert!(r.sent().is_empty());
    r.s.cancel(r.now).unwrap();
    assert_eq!(r.sent(), ["05-01"]);
    // Until the cancel is answered, nothing else goes out.
    assert_eq!(r.s.ping(r.now), Err(SessionError::Busy(State::Cancelling)));
    assert_eq!(
        r.s.activate(r.now, again),
        Err(SessionError::Busy(State::Cancelling))
    );
    r.s.cancel(r.now).unwrap();
    r.advance(Duration::from_secs(1));
    assert!(r.sent().is_empty());
    r.reply(0x05, 0x00, &[]);
    assert_eq!(r.outcomes(), vec![Outcome::Cancelled]);
    assert_eq!(r.s.state(), State::Idle);
    r.s.ping(r.now).unwrap();
    assert_eq!(r.sent(), ["18-01"]);
}

#[test]
fn cancel_racing_the_card_delivers_the_read_then_waits_for_the_answer() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x63, &[]);
    r.s.cancel(r.now).unwrap();
    assert_eq!(r.sent(), ["05-01"]);
    // The card was tapped before the reader saw the cancel.
    r.reply(0x02, 0x23, &card_data([0x00, 0x04]));
    assert!(matches!(r.outcomes().as_slice(), [Outcome::Read { .. }]));
    assert_eq!(r.s.state(), State::Cancelling);
    assert!(r.sent().is_empty());
    r.reply(0x05, 0x00, &[]);
    assert!(r.outcomes().is_empty(), "no Cancelled after the read");
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn host_time_out_cancels_and_reports_timed_out() {
    let mut r = Rig::opened();
    r.activate(2);
    r.sent();
    r.reply(0x02, 0x63, &[]);
    r.advance(Duration::from_millis(1999));
    assert!(r.sent().is_empty());
    r.advance(Duration::from_millis(1));
    assert_eq!(r.sent(), ["05-01"]);
    r.reply(0x05, 0x00, &[]);
    assert_eq!(r.outcomes(), vec![Outcome::TimedOut]);
}

#[test]
fn result_codes_map_to_outcomes() {
    let cases: [(u8, Vec<u8>, Outcome); 6] = [
        (
            0x08,
            vec![0x41, 0xDF, 0xEE, 0x25, 0x02, 0x00, 0x08],
            Outcome::TimedOut,
        ),
        (
            0x0A,
            vec![0x41, 0xDF, 0xEE, 0x25, 0x02, 0x30, 0x13],
            Outcome::TimedOut,
        ),
        (
            0x0A,
            vec![0x41, 0xDF, 0xEE, 0x25, 0x02, 0x00, 0x12],
            Outcome::Cancelled,
        ),
        (
            0x0A,
            vec![0x48, 0xDF, 0xEE, 0x25, 0x02, 0x30, 0x12],
            Outcome::Declined { code: 0x3012 },
        ),
        // FFEE1F error container holding a DFEE25-style code.
        (
            0x0A,
            vec![
                0x41, 0xFF, 0xEE, 0x1F, 0x06, 0xDF, 0xEE, 0x25, 0x02, 0x00, 0x21,
            ],
            Outcome::Declined { code: 0x0021 },
        ),
        (
            0x0A,
            vec![],
            Outcome::ReaderError {
                status: Status::Failed,
            },
        ),
    ];
    for (status, data, want) in cases {
        let mut r = Rig::opened();
        r.activate(30);
        r.sent();
        r.reply(0x02, status, &data);
        assert_eq!(r.outcomes(), vec![want.clone()], "{want:?}");
        assert_eq!(r.s.state(), State::Idle);
        assert!(r.sent().is_empty());
    }
}

#[test]
fn wedged_reader_is_found_by_the_watchdog_and_reopened() {
    let mut r = Rig::opened();
    let idle = SessionConfig::default().idle_ping;
    assert_eq!(r.s.poll_timeout(), Some(r.now + idle));
    r.advance(idle);
    assert_eq!(r.sent(), ["18-01"]);
    // The reader says nothing: after the response time-out, a cancel; unanswered too, the
    // session gives up on the port.
    r.advance(Duration::from_secs(2));
    assert_eq!(r.s.state(), State::Idle);
    r.advance(Duration::from_secs(1));
    assert_eq!(r.sent(), ["05-01"]);
    assert_eq!(r.s.state(), State::Cancelling);
    r.advance(Duration::from_secs(3));
    assert_eq!(r.s.state(), State::Unresponsive);
    assert!(r.events().contains(&Event::State(State::Unresponsive)));
    assert_eq!(r.s.poll_timeout(), None);
    // The driver reopens the port: the open sequence starts again.
    r.s.open(r.now);
    assert_eq!(r.sent(), ["18-01"]);
    r.reply(0x18, 0x00, &[]);
    assert_eq!(r.sent(), ["29-00"]);
}

#[test]
fn a_ping_lost_but_the_cancel_answered_keeps_the_port() {
    let mut r = Rig::opened();
    r.advance(SessionConfig::default().idle_ping);
    assert_eq!(r.sent(), ["18-01"]);
    r.advance(Duration::from_secs(3));
    assert_eq!(r.sent(), ["05-01"]);
    r.reply(0x05, 0x00, &[]);
    assert_eq!(r.s.state(), State::Idle);
    assert!(!r.events().contains(&Event::State(State::Unresponsive)));
    assert!(r.outcomes().is_empty());
}

#[test]
fn wedged_mid_transaction_ends_disconnected() {
    let mut r = Rig::opened();
    r.activate(5);
    r.sent();
    r.advance(Duration::from_secs(5));
    assert_eq!(r.sent(), ["05-01"]);
    r.advance(Duration::from_secs(3));
    assert_eq!(r.outcomes(), vec![Outcome::Disconnected]);
    assert_eq!(r.s.state(), State::Unresponsive);
}

#[test]
fn unplug_mid_transaction() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x63, &[]);
    r.s.closed();
    assert_eq!(r.outcomes(), vec![Outcome::Disconnected]);
    assert_eq!(r.s.state(), State::Closed);
    let req = Activate {
        interfaces: Interfaces::ALL,
        timeout: Duration::from_secs(5),
    };
    assert_eq!(
        r.s.activate(r.now, req),
        Err(SessionError::NotReady(State::Closed))
    );
    // Late bytes of the old port are not taken for answers.
    r.reply(0x02, 0x23, &card_data([0x00, 0x04]));
    assert!(r.outcomes().is_empty());
}

#[test]
fn garbage_and_bad_crc_are_warnings_and_split_frames_still_arrive() {
    let mut r = Rig::opened();
    r.s.ping(r.now).unwrap();
    r.sent();
    r.s.handle_bytes(r.now, b"\x00\x00noise");
    let mut bad = Response::new(0x18, Status::Ok, &[]).encode().unwrap();
    bad[15] ^= 1;
    r.s.handle_bytes(r.now, &bad);
    let good = Response::new(0x18, Status::Ok, &[]).encode().unwrap();
    r.s.handle_bytes(r.now, &good[..7]);
    r.s.handle_bytes(r.now, &good[7..]);
    let ev = r.events();
    assert!(ev.contains(&Event::Warning(Warning::Garbage { len: 7 })));
    assert!(ev.contains(&Event::Warning(Warning::BadCrc { command: 0x18 })));
    assert_eq!(ev.iter().filter(|e| **e == Event::Pong).count(), 1);
}

#[test]
fn cancel_when_idle_resets_the_reader_and_waits_for_its_answer() {
    let mut r = Rig::opened();
    r.s.cancel(r.now).unwrap();
    assert_eq!(r.sent(), ["05-01"]);
    assert_eq!(r.s.state(), State::Cancelling);
    r.reply(0x05, 0x00, &[]);
    let ev = r.events();
    assert!(ev.contains(&Event::CancelAnswered { status: Status::Ok }));
    assert!(!ev.iter().any(|e| matches!(e, Event::Outcome(_))));
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn reader_ends_the_transaction_before_answering_the_cancel() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x63, &[]);
    r.s.cancel(r.now).unwrap();
    assert_eq!(r.sent(), ["05-01"]);
    // Some firmware answers the 02-40 first (DFEE25 0012 cancelled), then the cancel.
    r.reply(0x02, 0x0A, &[0x41, 0xDF, 0xEE, 0x25, 0x02, 0x00, 0x12]);
    assert_eq!(r.outcomes(), vec![Outcome::Cancelled]);
    assert_eq!(r.s.state(), State::Cancelling);
    assert_eq!(
        r.s.ping(r.now),
        Err(SessionError::Busy(State::Cancelling)),
        "still waiting for the cancel's answer"
    );
    r.reply(0x05, 0x00, &[]);
    assert!(r.outcomes().is_empty());
    assert_eq!(r.s.state(), State::Idle);
    assert!(r.sent().is_empty());
}

mod wire_rules {
    //! Any interleaving of user calls, reader frames and time keeps the wire rules: nothing but
    //! a cancel while a transaction runs on the reader, and nothing after a cancel until its
    //! answer. The rules are tracked from the frames on the wire, not the session's state.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Step {
        Activate(u8),
        Cancel,
        Ping,
        Reply { command: u8, status: u8, card: bool },
        Prompt,
        Advance(u16),
        Reopen,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (1u8..10).prop_map(Step::Activate),
            2 => Just(Step::Cancel),
            2 => Just(Step::Ping),
            4 => (
                prop::sample::select(vec![0x02u8, 0x02, 0x05, 0x05, 0x18, 0x29, 0x7F]),
                prop::sample::select(vec![0x00u8, 0x0B, 0x0C, 0x63, 0x0A, 0x08, 0x23, 0x0E]),
                any::<bool>()
            )
                .prop_map(|(command, status, card)| Step::Reply {
                    command,
                    status,
                    card
                }),
            1 => Just(Step::Prompt),
            3 => (0u16..4000).prop_map(Step::Advance),
            1 => Just(Step::Reopen),
        ]
    }

    #[derive(Default)]
    struct Wire {
        tx_running: bool,
        cancel_pending: bool,
    }

    impl Wire {
        fn sent(&mut self, name: &str) -> Result<(), String> {
            if self.cancel_pending {
                return Err(format!("{name} sent before the cancel's answer"));
            }
            if self.tx_running && name != "05-01" {
                return Err(format!("{name} sent during a transaction"));
            }
            match name {
                "05-01" => self.cancel_pending = true,
                "02-40" => self.tx_running = true,
                _ => {}
            }
            Ok(())
        }

        fn received(&mut self, command: u8, status: u8) {
            match command {
                0x05 => {
                    self.cancel_pending = false;
                    self.tx_running = false;
                }
                0x02 if status != 0x63 && status != 0x0E => self.tx_running = false,
                _ => {}
            }
        }
    }

    proptest! {
        #[test]
        fn any_interleaving_keeps_the_wire_rules(steps in proptest::collection::vec(step(), 1..60)) {
            // From an opened reader, so that most sequences reach transactions.
            let mut r = Rig::opened();
            let mut wire = Wire::default();
            for step in steps {
                match step {
                    Step::Activate(secs) => {
                        let _ = r.s.activate(r.now, Activate {
                            interfaces: Interfaces::ALL,
                            timeout: Duration::from_secs(u64::from(secs)),
                        });
                    }
                    Step::Cancel => { let _ = r.s.cancel(r.now); }
                    Step::Ping => { let _ = r.s.ping(r.now); }
                    Step::Reply { command, status, card } => {
                        wire.received(command, status);
                        let data = if card { card_data([0x00, 0x10]) } else { Vec::new() };
                        r.reply(command, status, &data);
                    }
                    Step::Prompt => r.prompt("PRESENT CARD"),
                    Step::Advance(ms) => r.advance(Duration::from_millis(u64::from(ms))),
                    Step::Reopen => {
                        // A new port: the reader side starts afresh.
                        let now = r.now;
                        r = Rig::opened();
                        r.now = now;
                        wire = Wire::default();
                    }
                }
                for name in r.sent() {
                    if let Err(e) = wire.sent(&name) {
                        prop_assert!(false, "{}", e);
                    }
                }
                // One outcome per transaction at most, and never a transaction without a state.
                prop_assert!(r.outcomes().len() <= 1);
                if r.s.in_transaction() {
                    prop_assert!(matches!(r.s.state(), State::WaitingForCard | State::Cancelling));
                }
            }
        }
    }
}
mod pin;
