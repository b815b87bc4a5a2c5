//! The extended commands a card-on-file host sends: `0300` start EMV transaction, `0304` cancel,
//! `030C` set date and time (needed after every power-up).
use super::extended;
use crate::protocol::neo2::Interfaces;

pub const START_EMV: u16 = 0x0300;
pub const CANCEL: u16 = 0x0304;
pub const SET_DATE_TIME: u16 = 0x030C;

/// Card types of a start (a bit mask: `01` MSR, `02` contact, spec §3.2; `04` contactless is
/// inferred for the tDynamo, which has an antenna, and configurable through the profile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardTypes {
    pub msr: u8,
    pub contact: u8,
    pub contactless: u8,
}

impl Default for CardTypes {
    fn default() -> Self {
        CardTypes {
            msr: 0x01,
            contact: 0x02,
            contactless: 0x04,
        }
    }
}

impl CardTypes {
    pub fn mask(&self, i: Interfaces) -> u8 {
        (if i.msr { self.msr } else { 0 })
            | (if i.contact { self.contact } else { 0 })
            | (if i.contactless { self.contactless } else { 0 })
    }
}

/// Start EMV transaction data (eDynamo manual p.100): timeout, card types, options, amount
/// (n12), transaction type, cashback (n12), currency (n4), reporting option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartEmv {
    pub timeout_s: u8,
    pub card_types: u8,
    pub options: u8,
    pub amount: u64,
    pub tx_type: u8,
    pub cashback: u64,
    pub currency: u16,
    pub reporting: u8,
}

impl Default for StartEmv {
    fn default() -> Self {
        StartEmv {
            timeout_s: 60,
            card_types: 0x03,
            options: 0x00,
            amount: 0,
            tx_type: 0x00,
            cashback: 0,
            currency: 840,
            reporting: 0x02,
        }
    }
}

fn bcd(mut v: u64, out: &mut [u8]) {
    for b in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *b = hi << 4 | lo;
    }
}

impl StartEmv {
    pub fn data(&self) -> Vec<u8> {
        let mut d = vec![self.timeout_s, self.card_types, self.options];
        let mut amt = [0u8; 6];
        bcd(self.amount.min(999_999_999_999), &mut amt);
        d.extend(amt);
        d.push(self.tx_type);
        bcd(self.cashback.min(999_999_999_999), &mut amt);
        d.extend(amt);
        let mut cur = [0u8; 2];
        bcd(u64::from(self.currency.min(9999)), &mut cur);
        d.extend(cur);
        d.push(self.reporting);
        d
    }
    pub fn reports(&self) -> Vec<Vec<u8>> {
        extended::wrap(START_EMV, &self.data())
    }
}

pub fn cancel() -> Vec<Vec<u8>> {
    extended::wrap(CANCEL, &[])
}

/// A wall-clock time as the reader takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl DateTime {
    /// `030C` data: 17 zero bytes, then month, day, hour, minute, second, `00`, year − 2008
    /// (the layout of MagTek's public V5 demo code).
    pub fn data(&self) -> Vec<u8> {
        let mut d = vec![0u8; 17];
        d.extend([
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            0x00,
            self.year.saturating_sub(2008).min(255) as u8,
        ]);
        d
    }
    pub fn reports(&self) -> Vec<Vec<u8>> {
        extended::wrap(SET_DATE_TIME, &self.data())
    }

    /// From seconds since the Unix epoch (UTC), without a calendar crate in the sans-io core.
    pub fn from_unix(secs: u64) -> DateTime {
        let days = secs / 86_400;
        let rem = secs % 86_400;
        // Civil-from-days (proleptic Gregorian), shifted so March is month 0.
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u8,
            minute: (rem % 3600 / 60) as u8,
            second: (rem % 60) as u8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(s: &str) -> Vec<u8> {
        let mut r = hex::decode(s.replace(' ', "")).unwrap();
        r.resize(super::super::feature::FEATURE_LEN, 0);
        r
    }

    #[test]
    fn the_spec_start_and_cancel_byte_for_byte() {
        // eDynamo manual p.100 (reader-protocols.md §3.2): 60 s, contact, 0.15 USD, report 02.
        let s = StartEmv {
            timeout_s: 0x3C,
            card_types: 0x02,
            amount: 15,
            ..StartEmv::default()
        };
        assert_eq!(
            s.reports(),
            vec![report(
                "49 19 0000 0300 0013 3C 02 00 000000000015 00 000000000000 0840 02"
            )]
        );
        assert_eq!(cancel(), vec![report("49 06 0000 0304 0000")]);
        let i = Interfaces::ALL;
        assert_eq!(CardTypes::default().mask(i), 0x07);
    }

    #[test]
    fn set_date_time_written_out_by_hand() {
        // 2026-12-04 18:22:57 → 0C 04 12 16 39 00 12 (year 2026 - 2008 = 18 = 0x12).
        let t = DateTime::from_unix(1_796_408_577);
        assert_eq!(
            t,
            DateTime {
                year: 2026,
                month: 12,
                day: 4,
                hour: 18,
                minute: 22,
                second: 57
            }
        );
        assert_eq!(
            t.reports(),
            vec![report(
                "49 1E 0000 030C 0018 0000000000000000000000000000000000 0C 04 12 16 39 00 12"
            )]
        );
        // Leap day and the epoch.
        assert_eq!(DateTime::from_unix(951_782_400).day, 29); // 2000-02-29
        assert_eq!(DateTime::from_unix(0).year, 1970);
    }
}
