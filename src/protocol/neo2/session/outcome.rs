//! The outcome of a transaction's final response: `DFEE25` (or `FFEE1F`) result codes, card
//! data through the ViVOtech2 / EMV TLV decoders.
use zeroize::Zeroizing;

use super::super::{Response, Status};
use super::Outcome;
use crate::parse::{emv, tlv, vivo};

/// The outcome of a final `02` response, and its `DFEE25` result code if any.
pub(super) fn final_outcome(r: &Response) -> (Outcome, Option<u16>) {
    let result = result_code(&r.data);
    let outcome = match (result, r.status) {
        (Some(0x0008 | 0x3013), _) => Outcome::TimedOut,
        (Some(0x0012), _) => Outcome::Cancelled,
        (Some(0x0010 | 0x0004), _) => decode_read(r),
        (Some(code), _) => Outcome::Declined { code },
        (None, Status::Timeout) => Outcome::TimedOut,
        (None, Status::Ok | Status::RequestOnlineAuthorization) if !r.data.is_empty() => {
            decode_read(r)
        }
        (None, status) => Outcome::ReaderError { status },
    };
    (outcome, result)
}

fn decode_read(r: &Response) -> Outcome {
    let Ok(bytes) = r.encode() else {
        return Outcome::Unreadable { code: "bad-length" };
    };
    Outcome::of_frame(Zeroizing::new(bytes), vivo::decode)
}

/// `DFEE25`, else the first 2-byte code inside `FFEE1F`.
fn result_code(data: &[u8]) -> Option<u16> {
    let (_, tlvs) = emv::split_attribution(data).ok()?;
    let mut all = Vec::new();
    tlv::flatten(&tlvs, &mut all);
    let two = |v: &[u8]| match v {
        [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
        _ => None,
    };
    if let Some(t) = all.iter().find(|t| t.tag == 0xDFEE25) {
        return two(t.value);
    }
    let err = all.iter().find(|t| t.tag == 0xFFEE1F)?;
    match err.children.first() {
        Some(c) => two(c.value),
        None => two(err.value),
    }
}

pub(super) fn ascii(v: &[u8]) -> String {
    v.iter()
        .filter(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|&b| char::from(b))
        .collect::<String>()
        .trim()
        .to_string()
}

/// A prompt's text: the printable ASCII of its data (message ids and padding dropped).
pub(super) fn prompt_text(v: &[u8]) -> String {
    ascii(v)
}
