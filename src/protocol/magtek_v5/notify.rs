//! Notifications on input report `02`: `02 <code> <part len> <offset 2> <notification id 2>
//! <total len 2> <part>`, a long notification in several reports (offsets counting up), as
//! MagTek's public V5 code reads them. `0300` transaction status (event byte, then the EMV
//! status), `0301` display message (ASCII), `0303` ARQC data (a container), `0304` transaction
//! result (signature-required byte, then batch data).
use zeroize::Zeroizing;

use crate::protocol::mms::notify::find_container;

pub const REPORT_ID: u8 = 0x02;
pub const STATUS: u16 = 0x0300;
pub const DISPLAY: u16 = 0x0301;
pub const ARQC: u16 = 0x0303;
pub const RESULT: u16 = 0x0304;
/// Status events (first byte of `0300`).
pub const EVENT_TIMED_OUT: u8 = 0x05;
pub const EVENT_END: u8 = 0x06;
pub const EVENT_HOST_CANCELLED: u8 = 0x07;

/// One notification, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V5Notice {
    Status {
        event: u8,
        detail: u8,
    },
    Display(String),
    /// ARQC (`batch` false) or transaction result (`batch` true) with its container.
    CardData {
        batch: bool,
        container: Zeroizing<Vec<u8>>,
    },
    Other {
        id: u16,
    },
}

/// Joins input report `02` parts. Reports with another id are not notifications: `None`.
#[derive(Default)]
pub struct NoticeAssembler {
    id: u16,
    data: Zeroizing<Vec<u8>>,
}

impl NoticeAssembler {
    pub fn new() -> NoticeAssembler {
        NoticeAssembler::default()
    }

    /// One input report, report id first. Returns `(id, data)` of a complete notification.
    /// A part that does not follow the previous one starts afresh (or is dropped).
    pub fn push(&mut self, r: &[u8]) -> Option<(u16, Zeroizing<Vec<u8>>)> {
        if r.first() != Some(&REPORT_ID) {
            return None;
        }
        let head = r.get(1..9)?;
        let part_len = usize::from(head[1]);
        let offset = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let id = u16::from_be_bytes([head[4], head[5]]);
        let total = usize::from(u16::from_be_bytes([head[6], head[7]]));
        let part = r.get(9..9 + part_len)?;
        if offset == 0 {
            self.id = id;
            self.data = Zeroizing::new(Vec::with_capacity(total));
        } else if offset != self.data.len() || id != self.id {
            self.data = Zeroizing::new(Vec::new());
            return None;
        }
        self.data.extend_from_slice(part);
        if self.data.len() > total {
            self.data = Zeroizing::new(Vec::new());
            return None;
        }
        (self.data.len() == total).then(|| (id, std::mem::take(&mut self.data)))
    }
}

pub fn classify(id: u16, data: &[u8]) -> V5Notice {
    match id {
        STATUS => V5Notice::Status {
            event: data.first().copied().unwrap_or(0),
            detail: data.get(2).copied().unwrap_or(0),
        },
        DISPLAY => V5Notice::Display(
            String::from_utf8_lossy(data)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string(),
        ),
        ARQC | RESULT => {
            let body = if id == RESULT {
                data.get(1..).unwrap_or_default()
            } else {
                data
            };
            match find_container(body) {
                Some(c) => V5Notice::CardData {
                    batch: id == RESULT,
                    container: Zeroizing::new(c.to_vec()),
                },
                None => V5Notice::Other { id },
            }
        }
        id => V5Notice::Other { id },
    }
}

/// The input reports a reader sends for one notification (for simulators and tests), parts of
/// at most `part_max` bytes, each report `report_len` bytes with the id first.
pub fn reports(id: u16, data: &[u8], part_max: usize, report_len: usize) -> Vec<Vec<u8>> {
    let part_max = part_max.clamp(1, 255);
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        let end = (offset + part_max).min(data.len());
        let part = data.get(offset..end).unwrap_or_default();
        let mut r = vec![REPORT_ID, 0x00, part.len() as u8];
        r.extend((offset as u16).to_be_bytes());
        r.extend(id.to_be_bytes());
        r.extend((data.len() as u16).to_be_bytes());
        r.extend_from_slice(part);
        if r.len() < report_len {
            r.resize(report_len, 0);
        }
        out.push(r);
        offset = end;
        if offset >= data.len() {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_and_display_by_hand() {
        let mut a = NoticeAssembler::new();
        // 0300, 3 bytes: event 05 (timed out), 00, detail 01.
        let (id, d) = a
            .push(&hex::decode("02 00 03 0000 0300 0003 050001".replace(' ', "")).unwrap())
            .unwrap();
        assert_eq!(
            classify(id, &d),
            V5Notice::Status {
                event: 5,
                detail: 1
            }
        );
        let (id, d) = a
            .push(
                &hex::decode("02 00 0C 0000 0301 000C 50524553454E542043415244".replace(' ', ""))
                    .unwrap(),
            )
            .unwrap();
        assert_eq!(classify(id, &d), V5Notice::Display("PRESENT CARD".into()));
        // Another report id is no notification.
        assert_eq!(a.push(&[0x01, 0, 0, 0]), None);
    }

    proptest! {
        #[test]
        fn parts_round_trip(data in prop::collection::vec(any::<u8>(), 0..600), part in 1usize..60, id: u16) {
            let mut a = NoticeAssembler::new();
            let mut got = Vec::new();
            for r in reports(id, &data, part, 64) {
                if let Some(x) = a.push(&r) {
                    got.push(x);
                }
            }
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].0, id);
            prop_assert_eq!(got[0].1.as_slice(), &data[..]);
        }

        #[test]
        fn arbitrary_reports_never_panic(rs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..70), 0..10)) {
            let mut a = NoticeAssembler::new();
            for r in &rs {
                if let Some((id, d)) = a.push(r) {
                    let _ = classify(id, &d);
                }
            }
        }
    }
}
