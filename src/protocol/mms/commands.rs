//! The requests a card-on-file host sends a DynaFlex: start transaction (`1001`), cancel
//! (`1008`), close (`1009`). The start parameters are laid out as MagTek's public demo commands
//! show them: `82` timeout (seconds), `A3 { 81 MSR, 82 contact, 83 contactless }` (01 on, 00
//! off), `84` transaction options (2 bytes), `86 { EMV tags: 9C, 9F02, 9F03, 5F2A }`.
use super::message::Message;
use crate::protocol::neo2::Interfaces;

pub const START: u16 = 0x1001;
pub const CANCEL: u16 = 0x1008;
pub const CLOSE: u16 = 0x1009;
/// Notifications (reader → host).
pub const TRANSACTION_UPDATE: u16 = 0x0101;
pub const OPERATION_COMPLETE: u16 = 0x0105;

/// A start-transaction request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub timeout_s: u8,
    pub interfaces: Interfaces,
    /// The `84` transaction options; the demo commands send `0003`, kept as the default
    /// (configurable: their meaning is not in the spec).
    pub options: [u8; 2],
    /// Amount in minor units (n12); a card-on-file save uses zero.
    pub amount: u64,
    pub other_amount: u64,
    /// `9C`: `00` purchase.
    pub tx_type: u8,
    /// `5F2A`: ISO 4217 numeric, e.g. 840.
    pub currency: u16,
}

impl Default for Start {
    fn default() -> Self {
        Start {
            timeout_s: 60,
            interfaces: Interfaces::ALL,
            options: [0x00, 0x03],
            amount: 0,
            other_amount: 0,
            tx_type: 0x00,
            currency: 840,
        }
    }
}

/// n12 amount as 6 BCD bytes (values above 999,999,999,999 are capped).
fn bcd12(v: u64) -> [u8; 6] {
    let mut out = [0u8; 6];
    let mut v = v.min(999_999_999_999);
    for b in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *b = hi << 4 | lo;
    }
    out
}

/// n4 currency as 2 BCD bytes.
fn bcd4(v: u16) -> [u8; 2] {
    let b = bcd12(u64::from(v.min(9999)));
    [b[4], b[5]]
}

fn tlv(out: &mut Vec<u8>, tag: &[u8], value: &[u8]) {
    out.extend_from_slice(tag);
    out.push(value.len() as u8);
    out.extend_from_slice(value);
}

impl Start {
    /// The parameters after the command id.
    pub fn params(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(48);
        tlv(&mut p, &[0x82], &[self.timeout_s]);
        let mut a3 = Vec::with_capacity(9);
        tlv(&mut a3, &[0x81], &[u8::from(self.interfaces.msr)]);
        tlv(&mut a3, &[0x82], &[u8::from(self.interfaces.contact)]);
        tlv(&mut a3, &[0x83], &[u8::from(self.interfaces.contactless)]);
        tlv(&mut p, &[0xA3], &a3);
        tlv(&mut p, &[0x84], &self.options);
        let mut emv = Vec::with_capacity(26);
        tlv(&mut emv, &[0x9C], &[self.tx_type]);
        tlv(&mut emv, &[0x9F, 0x02], &bcd12(self.amount));
        tlv(&mut emv, &[0x9F, 0x03], &bcd12(self.other_amount));
        tlv(&mut emv, &[0x5F, 0x2A], &bcd4(self.currency));
        tlv(&mut p, &[0x86], &emv);
        p
    }

    pub fn message(&self, msg_ref: u8) -> Message {
        Message::request(msg_ref, START, &self.params())
    }
}

pub fn cancel(msg_ref: u8) -> Message {
    Message::request(msg_ref, CANCEL, &[])
}

pub fn close(msg_ref: u8) -> Message {
    Message::request(msg_ref, CLOSE, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn start_matches_magteks_public_demo_command() {
        // MagTek's WebHID demo "START EMV": 10 s, all interfaces, amount 1.00 USD, purchase.
        let want = h(
            "AA00 8104 0100 1001 8430 1001 82010A A309 810101 820101 830101 84020003 \
                      861A 9C0100 9F0206000000000100 9F0306000000000000 5F2A020840",
        );
        let s = Start {
            timeout_s: 10,
            amount: 100,
            ..Start::default()
        };
        assert_eq!(s.message(0x00).encode(), want);
        // Its contactless-only variant: A3 { 81 00, 82 00, 83 01 }.
        let want = h(
            "AA00 8104 0100 1001 8430 1001 82010A A309 810100 820100 830101 84020003 \
                      861A 9C0100 9F0206000000000100 9F0306000000000000 5F2A020840",
        );
        let s = Start {
            timeout_s: 10,
            amount: 100,
            interfaces: Interfaces {
                msr: false,
                contact: false,
                contactless: true,
            },
            ..Start::default()
        };
        assert_eq!(s.message(0x00).encode(), want);
    }

    #[test]
    fn cancel_and_close_carry_their_command_id_only() {
        assert_eq!(cancel(3).encode(), h("AA00 8104 0103 1008 8402 1008"));
        assert_eq!(close(4).encode(), h("AA00 8104 0104 1009 8402 1009"));
        assert_eq!(bcd12(123_456_789_012), [0x12, 0x34, 0x56, 0x78, 0x90, 0x12]);
        assert_eq!(bcd4(978), [0x09, 0x78]);
    }
}
