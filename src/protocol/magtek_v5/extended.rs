//! Extended commands through command `49`: `49 <6 + n> <offset 2> <ext cmd 2> <total len 2>
//! <n data bytes, n ≤ 52>`, one feature report per chunk. The answer is read as feature
//! results `0A` (last part) or `0B` (more follow: the host reads again), each `<offset 2>
//! <result code 2> <total len 2> <data>`.
use zeroize::Zeroizing;

use super::feature;

pub const WRAPPER: u8 = 0x49;
pub const MAX_CHUNK: usize = 52;
pub const DONE: u8 = 0x0A;
pub const MORE: u8 = 0x0B;

/// The feature reports that send one extended command (at least one, also for no data).
pub fn wrap(ext_cmd: u16, data: &[u8]) -> Vec<Vec<u8>> {
    let total = u16::try_from(data.len()).unwrap_or(u16::MAX).to_be_bytes();
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        let chunk = data
            .get(offset..(offset + MAX_CHUNK).min(data.len()))
            .unwrap_or_default();
        let mut body = Vec::with_capacity(6 + chunk.len());
        body.extend((offset as u16).to_be_bytes());
        body.extend(ext_cmd.to_be_bytes());
        body.extend(total);
        body.extend_from_slice(chunk);
        out.push(feature::command(WRAPPER, &body));
        offset += chunk.len();
        if offset >= data.len() {
            return out;
        }
    }
}

/// Why an extended answer could not be taken. Never holds the data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtError {
    #[error("feature result shorter than its header")]
    Short,
    #[error("feature result {0:#04x} is not an extended answer")]
    NotExtended(u8),
    #[error("answer part at offset {got} where {want} was due")]
    OutOfOrder { got: usize, want: usize },
    #[error("answer parts add up to {got} bytes where {want} were announced")]
    LengthMismatch { got: usize, want: usize },
}

/// A complete extended answer: the result code (`0000` OK) and the data.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtAnswer {
    pub code: u16,
    pub data: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ExtAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtAnswer({:04X}, {} bytes)", self.code, self.data.len())
    }
}

impl ExtAnswer {
    pub fn is_ok(&self) -> bool {
        self.code == 0
    }
}

/// Collects `0B` parts until the `0A` one.
#[derive(Default)]
pub struct ExtAssembler {
    data: Zeroizing<Vec<u8>>,
}

impl ExtAssembler {
    pub fn new() -> ExtAssembler {
        ExtAssembler::default()
    }

    /// One feature result as got. `Ok(None)`: read again (`0B`).
    pub fn push(&mut self, report: &[u8]) -> Result<Option<ExtAnswer>, ExtError> {
        let out = self.take(report);
        if !matches!(out, Ok(None)) {
            self.data = Zeroizing::new(Vec::new());
        }
        out
    }

    fn take(&mut self, report: &[u8]) -> Result<Option<ExtAnswer>, ExtError> {
        let (code, body) = feature::result(report).ok_or(ExtError::Short)?;
        if code != DONE && code != MORE {
            return Err(ExtError::NotExtended(code));
        }
        let head = body.get(..6).ok_or(ExtError::Short)?;
        let offset = usize::from(u16::from_be_bytes([head[0], head[1]]));
        let rc = u16::from_be_bytes([head[2], head[3]]);
        let total = usize::from(u16::from_be_bytes([head[4], head[5]]));
        if offset != self.data.len() {
            return Err(ExtError::OutOfOrder {
                got: offset,
                want: self.data.len(),
            });
        }
        self.data
            .extend_from_slice(body.get(6..).unwrap_or_default());
        if self.data.len() > total {
            return Err(ExtError::LengthMismatch {
                got: self.data.len(),
                want: total,
            });
        }
        if code == MORE {
            return Ok(None);
        }
        if self.data.len() != total {
            return Err(ExtError::LengthMismatch {
                got: self.data.len(),
                want: total,
            });
        }
        Ok(Some(ExtAnswer {
            code: rc,
            data: std::mem::take(&mut self.data),
        }))
    }
}

/// The feature results a reader gives for an answer (for simulators and tests).
pub fn answer_parts(code: u16, data: &[u8]) -> Vec<Vec<u8>> {
    let total = (data.len() as u16).to_be_bytes();
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        let end = (offset + MAX_CHUNK).min(data.len());
        let chunk = data.get(offset..end).unwrap_or_default();
        let mut body = Vec::with_capacity(6 + chunk.len());
        body.extend((offset as u16).to_be_bytes());
        body.extend(code.to_be_bytes());
        body.extend(total);
        body.extend_from_slice(chunk);
        let last = end >= data.len();
        out.push(feature::command(if last { DONE } else { MORE }, &body));
        offset = end;
        if last {
            return out;
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
    fn the_spec_answer_and_a_two_part_answer_by_hand() {
        // eDynamo manual p.100 (reader-protocols.md §3.2): 0A 06 0000 0000 0000.
        let mut a = ExtAssembler::new();
        let mut r = h("0A 06 0000 0000 0000");
        r.resize(60, 0);
        let ans = a.push(&r).unwrap().unwrap();
        assert!(ans.is_ok());
        assert!(ans.data.is_empty());
        // 0B with 2 of 3 bytes, then 0A with the last; result code 0001.
        let first = h("0B 08 0000 0001 0003 AABB");
        let last = h("0A 07 0002 0001 0003 CC");
        assert_eq!(a.push(&first).unwrap(), None);
        let ans = a.push(&last).unwrap().unwrap();
        assert_eq!((ans.code, ans.data.as_slice()), (1, &h("AABBCC")[..]));
        // A part at the wrong offset, a short total, a non-extended result.
        assert_eq!(a.push(&first).unwrap(), None);
        assert_eq!(
            a.push(&h("0A 07 0003 0001 0003 CC")).unwrap_err(),
            ExtError::OutOfOrder { got: 3, want: 2 }
        );
        assert!(matches!(
            a.push(&h("0A 07 0000 0000 0009 CC")).unwrap_err(),
            ExtError::LengthMismatch { .. }
        ));
        assert_eq!(a.push(&h("00 00")).unwrap_err(), ExtError::NotExtended(0));
        assert_eq!(a.push(&h("0A 03 0000")).unwrap_err(), ExtError::Short);
    }

    proptest! {
        #[test]
        fn wrap_and_answer_round_trip(data in prop::collection::vec(any::<u8>(), 0..400), cmd: u16, code: u16) {
            // Commands: chunk offsets and lengths add up, data comes back in order.
            let reports = wrap(cmd, &data);
            let mut back = Vec::new();
            for r in &reports {
                prop_assert_eq!(r.len(), feature::FEATURE_LEN);
                prop_assert_eq!(r[0], WRAPPER);
                let n = usize::from(r[1]) - 6;
                prop_assert!(n <= MAX_CHUNK);
                prop_assert_eq!(usize::from(u16::from_be_bytes([r[2], r[3]])), back.len());
                prop_assert_eq!(u16::from_be_bytes([r[4], r[5]]), cmd);
                prop_assert_eq!(usize::from(u16::from_be_bytes([r[6], r[7]])), data.len());
                back.extend_from_slice(&r[8..8 + n]);
            }
            prop_assert_eq!(&back, &data);
            // Answers: 0B parts then one 0A.
            let mut a = ExtAssembler::new();
            let parts = answer_parts(code, &data);
            let mut done = None;
            for p in &parts {
                if let Some(x) = a.push(p).unwrap() {
                    done = Some(x);
                }
            }
            let done = done.unwrap();
            prop_assert_eq!(done.code, code);
            prop_assert_eq!(done.data.as_slice(), &data[..]);
        }
    }
}
