//! NEO 2 frames over USB-HID (reader-protocols.md §1.2, IDG p.41-42): 64-byte reports, a report
//! id then 63 bytes. Id 1 holds a whole frame of at most 63 bytes; longer frames go as id 2
//! (first 63 bytes), id 3 (each full middle chunk), id 4 (the last chunk, zero padded). The same
//! scheme both ways.
use zeroize::Zeroizing;

use super::frame;

pub const REPORT_LEN: usize = 64;
pub const PAYLOAD_LEN: usize = REPORT_LEN - 1;

pub const ID_WHOLE: u8 = 1;
pub const ID_FIRST: u8 = 2;
pub const ID_MIDDLE: u8 = 3;
pub const ID_LAST: u8 = 4;

/// Splits one frame into output reports (report id first, zero padded).
pub fn segment(frame: &[u8]) -> Vec<[u8; REPORT_LEN]> {
    let report = |id: u8, chunk: &[u8]| {
        let mut r = [0u8; REPORT_LEN];
        r[0] = id;
        for (dst, src) in r.iter_mut().skip(1).zip(chunk) {
            *dst = *src;
        }
        r
    };
    if frame.len() <= PAYLOAD_LEN {
        return vec![report(ID_WHOLE, frame)];
    }
    let chunks: Vec<&[u8]> = frame.chunks(PAYLOAD_LEN).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let id = match i {
                0 => ID_FIRST,
                i if i == last => ID_LAST,
                _ => ID_MIDDLE,
            };
            report(id, c)
        })
        .collect()
}

/// Joins input reports back into frame bytes, cutting the zero padding where the frame's length
/// field says it ends (bytes without a readable header are passed on whole, for the deframer).
#[derive(Default)]
pub struct Reassembler {
    partial: Option<Zeroizing<Vec<u8>>>,
}

impl Reassembler {
    pub fn new() -> Reassembler {
        Reassembler::default()
    }

    /// One report as read (id first). Returns the bytes of a completed frame.
    pub fn push(&mut self, report: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&id, payload) = report.split_first()?;
        match id {
            ID_WHOLE => {
                self.partial = None;
                Some(trim(payload))
            }
            ID_FIRST => {
                self.partial = Some(Zeroizing::new(payload.to_vec()));
                None
            }
            ID_MIDDLE => {
                // A middle chunk without a first one is ignored (§1.2).
                if let Some(p) = self.partial.as_mut() {
                    p.extend_from_slice(payload);
                }
                None
            }
            ID_LAST => {
                let mut p = self.partial.take()?;
                p.extend_from_slice(payload);
                Some(trim(&p))
            }
            _ => None,
        }
    }
}

fn trim(bytes: &[u8]) -> Zeroizing<Vec<u8>> {
    let keep = match frame::frame_len(bytes) {
        Some(n) if bytes.starts_with(frame::HEADER) => n.min(bytes.len()),
        _ => bytes.len(),
    };
    Zeroizing::new(bytes.get(..keep).unwrap_or(bytes).to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::neo2::{Command, Response, Status};
    use proptest::prelude::*;

    #[test]
    fn short_frame_is_one_padded_report() {
        // The ping of §1.5, 16 bytes: id 1, the frame, 47 zero bytes.
        let ping = hex::decode("5669564F74656368320018010000B3CD").unwrap();
        let reports = segment(&ping);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0][0], 1);
        assert_eq!(&reports[0][1..17], ping.as_slice());
        assert!(reports[0][17..].iter().all(|&b| b == 0));
        let mut r = Reassembler::new();
        assert_eq!(r.push(&reports[0]).unwrap().as_slice(), ping.as_slice());
    }

    #[test]
    fn continuation_without_first_is_ignored() {
        let mut r = Reassembler::new();
        assert_eq!(r.push(&[3; 64]), None);
        assert_eq!(r.push(&[4; 64]), None);
        assert_eq!(r.push(&[]), None);
        assert_eq!(r.push(&[9, 1, 2]), None);
    }

    #[test]
    fn exactly_two_full_reports() {
        // 126 bytes: id 2 then id 4, the last chunk full (no padding to strip).
        let f = Response::new(0x02, Status::Ok, &[0xAB; 110])
            .encode()
            .unwrap();
        assert_eq!(f.len(), 126);
        let reports = segment(&f);
        let ids: Vec<u8> = reports.iter().map(|r| r[0]).collect();
        assert_eq!(ids, vec![2, 4]);
        let mut r = Reassembler::new();
        assert_eq!(r.push(&reports[0]), None);
        assert_eq!(r.push(&reports[1]).unwrap().as_slice(), f.as_slice());
    }

    proptest! {
        #[test]
        fn segmentation_round_trip(len in 0usize..1200, fill in any::<u8>(), command in any::<bool>()) {
            let data = vec![fill; len];
            let f = if command {
                Command::new(0x02, 0x40, &data).encode().unwrap()
            } else {
                Response::new(0x02, Status::Ok, &data).encode().unwrap()
            };
            let reports = segment(&f);
            // As many reports as 63-byte pieces, ids 1 or 2,3..,4.
            prop_assert_eq!(reports.len(), f.len().div_ceil(PAYLOAD_LEN));
            if reports.len() == 1 {
                prop_assert_eq!(reports[0][0], ID_WHOLE);
            } else {
                prop_assert_eq!(reports[0][0], ID_FIRST);
                prop_assert_eq!(reports[reports.len() - 1][0], ID_LAST);
                prop_assert!(reports[1..reports.len() - 1].iter().all(|r| r[0] == ID_MIDDLE));
            }
            let mut r = Reassembler::new();
            let mut out = Vec::new();
            for rep in &reports {
                if let Some(done) = r.push(rep) {
                    out.push(done);
                }
            }
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(out[0].as_slice(), f.as_slice());
        }
    }
}
