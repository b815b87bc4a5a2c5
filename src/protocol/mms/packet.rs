//! MMS over USB-HID: 64-byte reports (report id 0, not counted here), the first byte a packet
//! type. `00` single: length (1 byte) and the whole message; `01` head: the message's total
//! length (4 bytes, big-endian) and its first bytes; `02` middle: packet number (2 bytes,
//! big-endian; the head is packet 0) and the next bytes; `03` tail: length (1 byte) and the last
//! bytes; `04` cancel: drop the message in progress. Reports are zero filled. The same scheme
//! both ways (reader-protocols.md §3.1; numbering and fill as MagTek's public WebHID code does).
use zeroize::Zeroizing;

use super::message::MAX_LEN;

pub const REPORT_LEN: usize = 64;
pub const SINGLE: u8 = 0x00;
pub const HEAD: u8 = 0x01;
pub const MIDDLE: u8 = 0x02;
pub const TAIL: u8 = 0x03;
pub const CANCEL: u8 = 0x04;

/// Why a report could not be taken. Never holds the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("HID packet shorter than its header")]
    Short,
    #[error("unknown HID packet type {0:#04x}")]
    UnknownType(u8),
    #[error("packet length {0} larger than the report")]
    BadLength(usize),
    #[error("middle or tail packet without a head")]
    NoHead,
    #[error("middle packet {got} where {want} was due")]
    OutOfOrder { got: u16, want: u16 },
    #[error("message of {got} bytes where the head announced {want}")]
    LengthMismatch { got: usize, want: usize },
    #[error("announced message length {0} too long")]
    TooLong(usize),
}

fn report(kind: u8, head: &[u8], data: &[u8], len: usize) -> Vec<u8> {
    let mut r = Vec::with_capacity(len);
    r.push(kind);
    r.extend_from_slice(head);
    r.extend_from_slice(data);
    r.resize(len, 0);
    r
}

/// Splits a message into reports of `report_len` bytes (64 on a DynaFlex).
pub fn segment(msg: &[u8], report_len: usize) -> Vec<Vec<u8>> {
    let single_max = report_len.saturating_sub(2).max(1);
    if msg.len() <= single_max {
        return vec![report(SINGLE, &[msg.len() as u8], msg, report_len)];
    }
    let head_max = report_len.saturating_sub(5).max(1);
    let middle_max = report_len.saturating_sub(3).max(1);
    let (first, mut rest) = msg.split_at(head_max.min(msg.len()));
    let total = u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes();
    let mut out = vec![report(HEAD, &total, first, report_len)];
    let mut number: u16 = 1;
    while rest.len() > single_max {
        let (chunk, r) = rest.split_at(middle_max);
        out.push(report(MIDDLE, &number.to_be_bytes(), chunk, report_len));
        number = number.wrapping_add(1);
        rest = r;
    }
    out.push(report(TAIL, &[rest.len() as u8], rest, report_len));
    out
}

/// A cancel packet: the receiver drops the message it was assembling.
pub fn cancel(report_len: usize) -> Vec<u8> {
    report(CANCEL, &[], &[], report_len)
}

/// Joins reports back into messages.
#[derive(Default)]
pub struct Reassembler {
    partial: Option<Partial>,
}

struct Partial {
    total: usize,
    next: u16,
    data: Zeroizing<Vec<u8>>,
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// Whether a multi-packet message is being assembled.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// One report as read (packet type first). `Ok(Some(message))` when one is complete. An
    /// error drops any message in progress; the next head or single starts afresh.
    pub fn push(&mut self, r: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, PacketError> {
        let out = self.take(r);
        if out.is_err() {
            self.partial = None;
        }
        out
    }

    fn take(&mut self, r: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>, PacketError> {
        let (&kind, body) = r.split_first().ok_or(PacketError::Short)?;
        match kind {
            SINGLE => {
                self.partial = None;
                let (&n, data) = body.split_first().ok_or(PacketError::Short)?;
                let n = usize::from(n);
                let msg = data.get(..n).ok_or(PacketError::BadLength(n))?;
                Ok(Some(Zeroizing::new(msg.to_vec())))
            }
            HEAD => {
                let total = body.get(..4).ok_or(PacketError::Short)?;
                let total = u32::from_be_bytes([total[0], total[1], total[2], total[3]]);
                let total = usize::try_from(total).unwrap_or(usize::MAX);
                if total > MAX_LEN {
                    return Err(PacketError::TooLong(total));
                }
                let data = body.get(4..).unwrap_or_default();
                let mut buf = Zeroizing::new(Vec::with_capacity(total));
                buf.extend_from_slice(data.get(..total.min(data.len())).unwrap_or_default());
                self.partial = Some(Partial {
                    total,
                    next: 1,
                    data: buf,
                });
                Ok(None)
            }
            MIDDLE => {
                let p = self.partial.as_mut().ok_or(PacketError::NoHead)?;
                let num = body.get(..2).ok_or(PacketError::Short)?;
                let got = u16::from_be_bytes([num[0], num[1]]);
                if got != p.next {
                    return Err(PacketError::OutOfOrder { got, want: p.next });
                }
                p.next = p.next.wrapping_add(1);
                let data = body.get(2..).unwrap_or_default();
                if p.data.len() + data.len() > p.total {
                    return Err(PacketError::LengthMismatch {
                        got: p.data.len() + data.len(),
                        want: p.total,
                    });
                }
                p.data.extend_from_slice(data);
                Ok(None)
            }
            TAIL => {
                let mut p = self.partial.take().ok_or(PacketError::NoHead)?;
                let (&n, data) = body.split_first().ok_or(PacketError::Short)?;
                let n = usize::from(n);
                let last = data.get(..n).ok_or(PacketError::BadLength(n))?;
                p.data.extend_from_slice(last);
                if p.data.len() != p.total {
                    return Err(PacketError::LengthMismatch {
                        got: p.data.len(),
                        want: p.total,
                    });
                }
                Ok(Some(p.data))
            }
            CANCEL => {
                self.partial = None;
                Ok(None)
            }
            other => Err(PacketError::UnknownType(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_echo_fits_one_single_packet() {
        // The spec's echo (17 bytes): 00, length 11, the message, zero fill to 64.
        let echo = h("AA00 8104 0101DF01 8407 DF01 8103 010203");
        let r = segment(&echo, REPORT_LEN);
        assert_eq!(r.len(), 1);
        let mut want = h("00 11 AA00 8104 0101DF01 8407 DF01 8103 010203");
        want.resize(64, 0);
        assert_eq!(r[0], want);
        let mut asm = Reassembler::new();
        assert_eq!(asm.push(&r[0]).unwrap().unwrap().as_slice(), &echo[..]);
    }

    #[test]
    fn a_200_byte_message_written_out_by_hand() {
        // 200 bytes: head 01 000000C8 + 59 bytes; middle 02 0001 + 61 bytes (120 so far);
        // 80 left > 62, so middle 02 0002 + 61 (181); tail 03 13 + 19 bytes, zero filled.
        let msg: Vec<u8> = (0..200u16).map(|i| i as u8).collect();
        let r = segment(&msg, 64);
        assert_eq!(r.len(), 4);
        assert_eq!(&r[0][..5], &h("01 000000C8")[..]);
        assert_eq!(&r[0][5..], &msg[..59]);
        assert_eq!(&r[1][..3], &h("02 0001")[..]);
        assert_eq!(&r[1][3..], &msg[59..120]);
        assert_eq!(&r[2][..3], &h("02 0002")[..]);
        assert_eq!(&r[2][3..], &msg[120..181]);
        assert_eq!(&r[3][..2], &h("03 13")[..]);
        assert_eq!(&r[3][2..21], &msg[181..]);
        assert!(r[3][21..].iter().all(|&b| b == 0));
        assert!(r.iter().all(|x| x.len() == 64));
    }

    #[test]
    fn cancel_order_and_length_faults() {
        let msg = vec![0x5A; 150];
        let r = segment(&msg, 64);
        let mut a = Reassembler::new();
        // A cancel drops the message in progress: the tail then has no head.
        a.push(&r[0]).unwrap();
        a.push(&cancel(64)).unwrap();
        assert!(!a.in_progress());
        assert_eq!(a.push(&r[2]).unwrap_err(), PacketError::NoHead);
        // A middle packet out of order.
        a.push(&r[0]).unwrap();
        let mut skipped = r[1].clone();
        skipped[2] = 5;
        assert_eq!(
            a.push(&skipped).unwrap_err(),
            PacketError::OutOfOrder { got: 5, want: 1 }
        );
        // A tail that does not complete the announced length.
        a.push(&r[0]).unwrap();
        assert!(matches!(
            a.push(&r[2]).unwrap_err(),
            PacketError::LengthMismatch { .. }
        ));
        // Unknown types, short reports, a single longer than its report.
        assert_eq!(a.push(&[9, 1]).unwrap_err(), PacketError::UnknownType(9));
        assert_eq!(a.push(&[]).unwrap_err(), PacketError::Short);
        assert_eq!(a.push(&[0, 70, 1]).unwrap_err(), PacketError::BadLength(70));
        assert_eq!(
            a.push(&h("01 7FFFFFFF")).unwrap_err(),
            PacketError::TooLong(0x7FFF_FFFF)
        );
        // And the reassembler still works afterwards.
        for p in &r[..r.len() - 1] {
            assert_eq!(a.push(p).unwrap(), None);
        }
        assert_eq!(
            a.push(&r[r.len() - 1]).unwrap().unwrap().as_slice(),
            &msg[..]
        );
    }

    proptest! {
        #[test]
        fn chunking_round_trips(msg in prop::collection::vec(any::<u8>(), 0..2000),
                                report_len in prop::sample::select(vec![64usize, 32, 65])) {
            let reports = segment(&msg, report_len);
            prop_assert!(reports.iter().all(|r| r.len() == report_len));
            let mut a = Reassembler::new();
            let mut got = Vec::new();
            for r in &reports {
                if let Some(m) = a.push(r).unwrap() {
                    got.push(m);
                }
            }
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].as_slice(), &msg[..]);
            // Single packet exactly when the message fits.
            prop_assert_eq!(reports.len() == 1, msg.len() <= report_len - 2);
        }

        #[test]
        fn arbitrary_reports_never_panic(reports in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..20)) {
            let mut a = Reassembler::new();
            for r in &reports {
                let _ = a.push(r);
            }
        }
    }
}
