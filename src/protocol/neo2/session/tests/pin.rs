//! PIN entry (`62-01`, reader-protocols.md §1.6) against scripted keypad readers. The reader's
//! answers are written out by hand from §1.6, with their CRC computed here bit by bit.
use super::*;
use crate::protocol::neo2::pin::PinRequest;
use crate::protocol::neo2::PinOutcome;

const PIN_KSN: &str = "FFFF9876543210E00008";
const BLOCK: &str = "1B9C1845EB993A7A";

/// CRC-16/CCITT-FALSE, bit by bit (independent of the codec's table).
fn crc(bytes: &[u8]) -> u16 {
    let mut c: u16 = 0xFFFF;
    for b in bytes {
        c ^= u16::from(*b) << 8;
        for _ in 0..8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x1021
            } else {
                c << 1
            };
        }
    }
    c
}

/// A response frame from hex text: header, command, status, length, data, CRC most significant
/// byte first (a response).
fn answer(body_hex: &str) -> Vec<u8> {
    let mut f = hex::decode(body_hex.replace(' ', "")).unwrap();
    f.extend_from_slice(&crc(&f).to_be_bytes());
    f
}

/// First answer: `62`, status `00`, no data.
fn ack() -> Vec<u8> {
    answer("5669564F746563683200 62 00 0000")
}

/// PIN answer, state 00: KSN (20 ASCII) and block (16 ASCII hex), 37 bytes of data.
fn pin_ok() -> Vec<u8> {
    let ascii = hex::encode_upper(format!("{PIN_KSN}{BLOCK}"));
    answer(&format!("5669564F746563683200 62 00 0025 00 {ascii}"))
}

fn state(s: u8) -> Vec<u8> {
    answer(&format!("5669564F746563683200 62 00 0001 {s:02X}"))
}

fn req() -> PinRequest {
    PinRequest::new(4, 12, "ENTER PIN", Duration::from_secs(30)).unwrap()
}

impl Rig {
    fn feed(&mut self, bytes: &[u8]) {
        self.s.handle_bytes(self.now, bytes);
    }

    fn pins(&mut self) -> Vec<PinOutcome> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Pin(o) => Some(o),
                _ => None,
            })
            .collect()
    }

    /// A contactless read that needs no cancel; leaves the session idle.
    fn read_card(&mut self) {
        self.activate(30);
        self.sent();
        self.reply(0x02, 0x63, &[]);
        self.reply(0x02, 0x23, &card_data([0x00, 0x04]));
        assert_eq!(self.s.state(), State::Idle);
        assert_eq!(self.outcomes().len(), 1);
    }
}

#[test]
fn hand_written_answers_match_the_codec() {
    // The frames above agree with the codec's encoding (so the CRC byte order is checked too).
    let enc = |st: u8, d: &[u8]| {
        Response::new(0x62, Status::from_byte(st), d)
            .encode()
            .unwrap()
    };
    assert_eq!(ack(), enc(0x00, &[]));
    assert_eq!(
        pin_ok(),
        enc(0x00, format!("\u{0}{PIN_KSN}{BLOCK}").as_bytes())
    );
}

#[test]
fn pin_after_a_read_gives_ksn_and_block() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    let sent = r.sent_raw();
    assert_eq!(sent.len(), 1);
    let c = decode_command(&sent[0]).unwrap();
    assert_eq!(c.name(), "62-01");
    // Key type 01 (DUKPT, reader's PAN), PAN length 00, max 12, min 4, "ENTER PIN", 30 s.
    assert_eq!(
        hex::encode_upper(c.data.as_slice()),
        "01000C0409454E5445522050494E1E"
    );
    assert_eq!(r.s.state(), State::WaitingForPin);
    r.feed(&ack());
    assert!(r.pins().is_empty());
    // Only a cancel between the two answers: everything else is refused.
    assert!(matches!(
        r.s.ping(r.now),
        Err(SessionError::Busy(State::WaitingForPin))
    ));
    assert!(r
        .s
        .activate(
            r.now,
            Activate {
                interfaces: Interfaces::ALL,
                timeout: Duration::from_secs(5)
            }
        )
        .is_err());
    assert!(r.s.request_pin(r.now, req()).is_err());
    assert!(r.sent().is_empty());
    r.feed(&pin_ok());
    let pins = r.pins();
    let [PinOutcome::Pin { ksn, block }] = pins.as_slice() else {
        panic!("expected one PIN outcome, got {pins:?}");
    };
    assert_eq!(ksn.to_hex(), PIN_KSN);
    assert_eq!(block.to_hex().as_str(), BLOCK);
    assert_eq!(r.s.state(), State::Idle);
    assert!(!r.s.in_transaction());
    assert!(r.sent().is_empty());
}

#[test]
fn pin_asked_during_a_contact_reads_cancel_waits_for_its_answer() {
    let mut r = Rig::opened();
    r.activate(30);
    r.sent();
    r.reply(0x02, 0x00, &card_data([0x00, 0x10]));
    assert_eq!(r.sent(), ["05-01"]);
    r.s.request_pin(r.now, req()).unwrap();
    // Nothing but the cancel until it is answered.
    assert!(r.sent().is_empty());
    r.reply(0x05, 0x00, &[]);
    assert_eq!(r.sent(), ["62-01"]);
    r.feed(&ack());
    r.feed(&pin_ok());
    assert!(matches!(r.pins().as_slice(), [PinOutcome::Pin { .. }]));
}

#[test]
fn states_other_than_ok_are_typed() {
    for (s, want) in [
        (0x01, PinOutcome::PinCancelled),
        (0x02, PinOutcome::PinTimedOut),
        (0x05, PinOutcome::PinError { state: 5 }),
    ] {
        let mut r = Rig::opened();
        r.read_card();
        r.s.request_pin(r.now, req()).unwrap();
        r.sent();
        r.feed(&ack());
        r.feed(&state(s));
        assert_eq!(r.pins(), [want]);
        assert_eq!(r.s.state(), State::Idle);
    }
}

#[test]
fn refused_pin_command_is_a_reader_error() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    r.sent();
    r.feed(&answer("5669564F746563683200 62 0B 0000"));
    assert_eq!(
        r.pins(),
        [PinOutcome::ReaderError {
            status: Status::CommandNotAllowed
        }]
    );
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn user_cancel_between_the_answers_sends_only_a_cancel() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    r.sent();
    r.feed(&ack());
    r.s.cancel(r.now).unwrap();
    assert_eq!(r.sent(), ["05-01"]);
    assert_eq!(r.s.state(), State::Cancelling);
    assert!(r.pins().is_empty(), "ends only when the cancel is answered");
    r.feed(&answer("5669564F746563683200 05 00 0000"));
    assert_eq!(r.pins(), [PinOutcome::PinCancelled]);
    assert_eq!(r.s.state(), State::Idle);
}

#[test]
fn host_deadline_cancels_a_reader_that_never_answers() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    r.sent();
    r.feed(&ack());
    // The reader's own time-out is 30 s; the host waits 30 + 2 s margin before cancelling.
    r.advance(Duration::from_secs(31));
    assert!(r.sent().is_empty());
    r.advance(Duration::from_secs(1));
    assert_eq!(r.sent(), ["05-01"]);
    r.reply(0x05, 0x00, &[]);
    assert_eq!(r.pins(), [PinOutcome::PinTimedOut]);
}

#[test]
fn malformed_pin_answer_is_typed_not_a_panic() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    r.sent();
    r.feed(&ack());
    // State 00 but a 15-digit block.
    let ascii = hex::encode_upper(format!("{PIN_KSN}{}", &BLOCK[..15]));
    r.feed(&answer(&format!(
        "5669564F746563683200 62 00 0024 00 {ascii}"
    )));
    assert_eq!(r.pins(), [PinOutcome::BadAnswer]);
}

#[test]
fn unplug_during_pin_entry_is_disconnected() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    r.sent();
    r.s.closed();
    assert_eq!(r.pins(), [PinOutcome::Disconnected]);
}

#[test]
fn pin_needs_an_open_reader() {
    let mut r = Rig::new();
    assert!(matches!(
        r.s.request_pin(r.now, req()),
        Err(SessionError::NotReady(State::Closed))
    ));
}

#[test]
fn pin_answer_racing_the_cancel_is_delivered_once_and_the_cancel_still_awaited() {
    let mut r = Rig::opened();
    r.read_card();
    r.s.request_pin(r.now, req()).unwrap();
    r.sent();
    r.feed(&ack());
    r.s.cancel(r.now).unwrap();
    assert_eq!(r.sent(), ["05-01"]);
    // The customer pressed enter just before the cancel reached the reader.
    r.feed(&pin_ok());
    assert!(matches!(r.pins().as_slice(), [PinOutcome::Pin { .. }]));
    assert_eq!(r.s.state(), State::Cancelling);
    assert!(
        r.s.ping(r.now).is_err(),
        "nothing but the cancel until it is answered"
    );
    r.feed(&answer("5669564F746563683200 05 00 0000"));
    assert!(r.pins().is_empty(), "one outcome per PIN entry");
    assert_eq!(r.s.state(), State::Idle);
    assert!(!r.s.in_transaction());
}
