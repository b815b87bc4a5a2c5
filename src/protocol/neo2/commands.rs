//! The commands a card-on-file host sends (reader-protocols.md §1.3).
use std::time::Duration;

use super::Command;
use crate::parse::build::tlv;

pub fn ping() -> Command {
    Command::new(0x18, 0x01, &[])
}

pub fn firmware_version() -> Command {
    Command::new(0x29, 0x00, &[])
}

/// `01-01 01`: the reader reports only when the host asks.
pub fn poll_on_demand() -> Command {
    Command::new(0x01, 0x01, &[0x01])
}

/// `04-00 DFEE7E 01 00`: burst mode off.
pub fn burst_off() -> Command {
    Command::new(0x04, 0x00, &[0xDF, 0xEE, 0x7E, 0x01, 0x00])
}

/// `05-01`: cancel transaction.
pub fn cancel() -> Command {
    Command::new(0x05, 0x01, &[])
}

pub const ACTIVATE: u8 = 0x02;
pub const CANCEL: u8 = 0x05;
pub const PROMPT: u8 = 0x61;

/// Which of the reader's interfaces a transaction listens on (`DFEF37` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interfaces {
    pub msr: bool,
    pub contactless: bool,
    pub contact: bool,
}

impl Interfaces {
    pub const ALL: Interfaces = Interfaces {
        msr: true,
        contactless: true,
        contact: true,
    };

    /// Bit 0 MSR, bit 1 contactless, bit 2 contact (IDG p.209).
    pub fn bits(self) -> u8 {
        u8::from(self.msr) | u8::from(self.contactless) << 1 | u8::from(self.contact) << 2
    }

    pub fn is_empty(self) -> bool {
        self.bits() == 0
    }

    /// A comma list of `msr`, `contact`, `contactless`.
    pub fn parse_list(list: &str) -> Option<Interfaces> {
        let mut i = Interfaces {
            msr: false,
            contactless: false,
            contact: false,
        };
        for part in list.split(',').map(str::trim) {
            match part {
                "msr" => i.msr = true,
                "contact" => i.contact = true,
                "contactless" => i.contactless = true,
                _ => return None,
            }
        }
        (!i.is_empty()).then_some(i)
    }
}

/// `02-40` card on file: the reader's time-out (seconds, 1-255), amount zero, purchase, the
/// interfaces asked for.
pub fn activate_card_on_file(interfaces: Interfaces, reader_timeout: Duration) -> Command {
    let secs = u8::try_from(reader_timeout.as_secs().clamp(1, 255)).unwrap_or(u8::MAX);
    let mut data = vec![secs];
    data.extend(tlv(0x9F02, &[0; 6]));
    data.extend(tlv(0x9C, &[0x00]));
    data.extend(tlv(0xDFEF37, &[interfaces.bits()]));
    Command::new(ACTIVATE, 0x40, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_cancel_commands_match_the_guide() {
        // Written out from reader-protocols.md §1.3 / §1.5.
        let hdr = "5669564F746563683200";
        let hx = |c: Command| hex::encode_upper(c.encode().unwrap());
        assert_eq!(hx(ping()), format!("{hdr}18010000B3CD"));
        assert_eq!(hx(poll_on_demand()), format!("{hdr}0101000101D734"));
        assert_eq!(hx(cancel()), format!("{hdr}0501000092EF"));
        assert_eq!(burst_off().data.as_slice(), &[0xDF, 0xEE, 0x7E, 0x01, 0x00]);
        assert_eq!(
            (firmware_version().command, firmware_version().sub),
            (0x29, 0x00)
        );
    }

    #[test]
    fn activate_card_on_file_layout() {
        let c = activate_card_on_file(Interfaces::ALL, Duration::from_secs(30));
        assert_eq!((c.command, c.sub), (0x02, 0x40));
        // 1E | 9F02 06 000000000000 | 9C 01 00 | DFEF37 01 07
        assert_eq!(
            hex::encode_upper(c.data.as_slice()),
            "1E9F02060000000000009C0100DFEF370107"
        );
        let tap = Interfaces::parse_list("contactless").unwrap();
        assert_eq!(tap.bits(), 0b010);
        assert_eq!(Interfaces::parse_list("msr,contact").unwrap().bits(), 0b101);
        assert_eq!(Interfaces::parse_list("nfc"), None);
        assert_eq!(Interfaces::parse_list(""), None);
        let c = activate_card_on_file(tap, Duration::from_secs(999));
        assert_eq!(c.data[0], 0xFF);
    }
}
