//! MagTek EMV data containers, "DynaPro format" (reader-protocols.md §3.3): the ARQC and batch
//! data that DynaFlex, eDynamo and tDynamo send for a dip or a tap.
//!
//! ```text
//! <2-byte BE length> F9 { DFDF54 MAC KSN, DFDF55 MAC type, DFDF25 device serial,
//!                         FA { 70 (ARQC) | F0 (batch) { clear tags …, [F7 { 9F39 … }],
//!                              DFDF4D masked track 2, DFDF52 card type,
//!                              F8 { DFDF59 ciphertext, DFDF56 KSN, DFDF57 key type,
//!                                   DFDF58 pad count } } } }
//! <zero padding> <4-byte CBC-MAC>
//! ```
//! Where the spec is silent this module decides, and says so:
//! - the length prefix counts the F9 object alone, as MagTek's manuals define it and real
//!   readers send it (padding and MAC follow, or are absent); a prefix that counts padding and
//!   MAC too is accepted (this crate's builder and simulators write that form); one that counts
//!   its own two bytes is not (it cannot be told from a container cut 2 short);
//! - padding is 0 to 7 zero bytes; the MAC is the last 4 bytes and is not checked by `decode`
//!   (what it covers and the DFDF55 codes are not public): [`Container::mac_input`] gives the
//!   bytes a checker would MAC;
//! - a container may also come bare, starting at F9 (as a notification payload carries it);
//! - the entry mode is 9F39 from the clear part; without it, a DFDF53 fallback indicator gives
//!   `80`, else the DFDF52 card type maps through [`CardTypes`] (MagTek's table by default);
//! - a masked Track 2 whose expiry is the mask digit (`0000`) gives no expiry.
use super::tlv::{self, Tlv};
use super::tracks::{chip_track2, masked_ref};
use super::ParseError;
use crate::card::{
    CardRead, CipherKind, EncBlock, EncTarget, EntryMode, Format, KeyVariant, Ksn, SecretText,
    TrackInfo, TrackStatus,
};
use zeroize::Zeroizing;

/// Tags of the container (MagTek private tags).
pub mod tag {
    pub const MESSAGE: u32 = 0xF9;
    pub const MAC_KSN: u32 = 0xDFDF54;
    pub const MAC_TYPE: u32 = 0xDFDF55;
    pub const SERIAL: u32 = 0xDFDF25;
    pub const GENERIC: u32 = 0xFA;
    pub const ARQC: u32 = 0x70;
    pub const BATCH: u32 = 0xF0;
    pub const MERCHANT: u32 = 0xF7;
    pub const MASKED_T2: u32 = 0xDFDF4D;
    pub const CARD_TYPE: u32 = 0xDFDF52;
    pub const FALLBACK: u32 = 0xDFDF53;
    pub const STATUS: u32 = 0xDFDF1A;
    pub const ENCRYPTION: u32 = 0xF8;
    pub const CIPHERTEXT: u32 = 0xDFDF59;
    pub const KSN: u32 = 0xDFDF56;
    pub const KEY_TYPE: u32 = 0xDFDF57;
    pub const PAD_COUNT: u32 = 0xDFDF58;
}

/// Which container: an ARQC (`70`) or batch data (`F0`, the transaction's end).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Arqc,
    Batch,
}

/// DFDF52 card type → entry mode. reader-protocols.md names no values; the default is MagTek's
/// own table (DynaFlex/DynaProx programmer's manual, "EMV ARQC (DynaPro Format) Type"; the
/// same list in the eDynamo and mDynamo manuals): `01` MSR financial, `03` manual entry, `05`
/// contact chip, `06` contactless EMV, `08` contactless MSD. `00` other, `02` AAMVA, `04`
/// unknown and `07` (MSR and contact chip together) name no single entry mode and give none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardTypes(pub Vec<(u8, EntryMode)>);

impl Default for CardTypes {
    fn default() -> Self {
        use EntryMode::*;
        CardTypes(vec![
            (0x01, Swipe),
            (0x03, Manual),
            (0x05, Chip),
            (0x06, ContactlessChip),
            (0x08, ContactlessMsd),
        ])
    }
}

impl CardTypes {
    pub fn entry_mode(&self, card_type: u8) -> Option<EntryMode> {
        self.0
            .iter()
            .find(|(c, _)| *c == card_type)
            .map(|&(_, m)| m)
    }
}

/// A container taken apart (no decryption). Borrowed from the input; holds no clear card data
/// (the clear part carries masked data only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container<'a> {
    /// The bytes from the length prefix (if any) through the F9 object.
    pub message: &'a [u8],
    pub kind: Kind,
    pub mac_ksn: Option<&'a [u8]>,
    pub mac_type: Option<u8>,
    pub serial: Option<&'a [u8]>,
    /// The clear tags (everything under `70`/`F0` but `F8`), nested ones included.
    pub clear: Vec<Tlv<'a>>,
    pub ciphertext: &'a [u8],
    pub ksn: &'a [u8],
    pub key_type: Option<u8>,
    pub pad_count: u8,
    /// Zero bytes between the F9 object and the MAC.
    pub padding: usize,
    pub mac: Option<[u8; 4]>,
}

impl<'a> Container<'a> {
    /// A clear tag's value (first found, depth first).
    pub fn clear_tag(&self, t: u32) -> Option<&'a [u8]> {
        let mut all = Vec::new();
        tlv::flatten(&self.clear, &mut all);
        all.iter().find(|x| x.tag == t).map(|x| x.value)
    }

    /// The batch status byte (DFDF1A), when present.
    pub fn status(&self) -> Option<u8> {
        self.clear_tag(tag::STATUS).and_then(|v| v.first().copied())
    }
}

const MAC_LEN: usize = 4;

/// Whether `b` starts like a container: a length prefix then F9, or F9 itself.
pub fn looks_like_container(b: &[u8]) -> bool {
    match b {
        [_, _, 0xF9, ..] => true,
        [0xF9, ..] => b.len() > 2 && matches!(tlv::first_tag(b), Some(tag::MESSAGE)),
        _ => false,
    }
}

/// Length of the container at the start of `b` (for splitting back-to-back frames), when its
/// prefix says.
///
/// A prefix that counts more than the F9 object counts padding and MAC too. One that counts the
/// F9 object alone (MagTek's manuals: "message length excluding padding and CBC-MAC", as real
/// readers send it) is followed by 0-7 zero bytes and the MAC: the frame runs to the end of
/// `b` when that is all that is left, else to where the next container starts (padding to a
/// multiple of 8 from the prefix tried first), else over the zero run and 4 bytes. Real
/// containers do not all pad to a multiple of 8, hence the search.
pub fn frame_len(b: &[u8]) -> Option<usize> {
    let [hi, lo, 0xF9, ..] = b else {
        return None;
    };
    let n = usize::from(u16::from_be_bytes([*hi, *lo]));
    let after = 2 + n;
    if header_len(&b[2..]).map(|(h, v)| h + v) != Some(n) {
        return Some(after);
    }
    let tail = b.get(after..).unwrap_or_default();
    let zeros = |pad: usize| tail.get(..pad).is_some_and(|p| p.iter().all(|&x| x == 0));
    let max_tail = 7 + MAC_LEN;
    if (MAC_LEN..=max_tail).contains(&tail.len()) && zeros(tail.len() - MAC_LEN) {
        return Some(b.len());
    }
    let aligned = (8 - after % 8) % 8;
    let next_starts = |pad: usize| {
        zeros(pad)
            && tail
                .get(pad + MAC_LEN..)
                .is_some_and(|t| matches!(t, [_, _, 0xF9, ..]))
    };
    if let Some(pad) = std::iter::once(aligned)
        .chain(0..=7)
        .find(|&pad| next_starts(pad))
    {
        return Some(after + pad + MAC_LEN);
    }
    if matches!(tail, [_, _, 0xF9, ..]) {
        // No padding and no MAC before the next container.
        return Some(after);
    }
    let run = tail.iter().take(7).take_while(|&&x| x == 0).count();
    Some((after + run + MAC_LEN).min(b.len()))
}

/// One object at the start of `b`: (tag, value, bytes it spans).
fn object(b: &[u8]) -> Result<(u32, &[u8], usize), ParseError> {
    let Some(first) = tlv::first_tag(b) else {
        return Err(ParseError::Truncated("MagTek container tag"));
    };
    // The object's end: parse it alone through the generic walker's rules.
    let header = header_len(b).ok_or(ParseError::Truncated("MagTek container length"))?;
    let (hlen, vlen) = header;
    let end = hlen
        .checked_add(vlen)
        .ok_or(ParseError::BadLength("MagTek container length"))?;
    let value = b.get(hlen..end).ok_or(ParseError::Truncated(
        "MagTek container shorter than F9 says",
    ))?;
    Ok((first, value, end))
}

/// (header length, value length) of the BER object at the start of `b`, plain lengths only.
fn header_len(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 1usize;
    if b.first()? & 0x1F == 0x1F {
        while b.get(i)? & 0x80 != 0 {
            i += 1;
            if i > 3 {
                return None;
            }
        }
        i += 1;
    }
    let l = *b.get(i)?;
    i += 1;
    if l < 0x80 {
        return Some((i, usize::from(l)));
    }
    let n = usize::from(l & 0x7F);
    if !(1..=3).contains(&n) {
        return None;
    }
    let bytes = b.get(i..i + n)?;
    let len = bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    Some((i + n, len))
}

/// Takes a container apart: framing, padding, MAC, and the required tags.
pub fn parse(input: &[u8]) -> Result<Container<'_>, ParseError> {
    let (prefix, body) = match input {
        [hi, lo, 0xF9, ..] => (
            Some(usize::from(u16::from_be_bytes([*hi, *lo]))),
            input.get(2..).unwrap_or_default(),
        ),
        [0xF9, ..] => (None, input),
        [] | [_] | [_, _] => return Err(ParseError::Truncated("MagTek container")),
        _ => return Err(ParseError::UnknownFormat),
    };
    let (t, f9_value, f9_len) = object(body)?;
    if t != tag::MESSAGE {
        return Err(ParseError::UnknownFormat);
    }
    let start = input.len() - body.len();
    let message = input.get(..start + f9_len).unwrap_or_default();
    // What follows the F9 object and belongs to the message: padding and MAC.
    let tail = match prefix {
        Some(l) if l > f9_len => {
            let t = body.get(f9_len..l).ok_or(ParseError::Truncated(
                "MagTek container shorter than its length",
            ))?;
            if body.get(l..).is_some_and(|x| x.iter().any(|&b| b != 0)) {
                return Err(ParseError::BadLength("bytes after the MagTek container"));
            }
            t
        }
        Some(l) if l < f9_len => {
            return Err(ParseError::BadLength(
                "MagTek length prefix shorter than F9",
            ))
        }
        // The prefix counts F9 alone, or there is none: padding and MAC may follow, or a
        // fixed-size report's zero fill.
        _ => {
            let t = body.get(f9_len..).unwrap_or_default();
            if t.iter().all(|&b| b == 0) {
                &[][..]
            } else {
                t
            }
        }
    };
    let (padding, mac) = match tail.len() {
        0 => (0, None),
        n if (MAC_LEN..MAC_LEN + 8).contains(&n) => {
            let (pad, mac) = tail.split_at(n - MAC_LEN);
            if pad.iter().any(|&b| b != 0) {
                return Err(ParseError::BadLength("MagTek container padding"));
            }
            let mut m = [0u8; 4];
            m.copy_from_slice(mac);
            (pad.len(), Some(m))
        }
        n if n < MAC_LEN => return Err(ParseError::Truncated("MagTek container MAC")),
        _ => return Err(ParseError::BadLength("MagTek container padding")),
    };
    let top = tlv::parse(f9_value)?;
    let find = |tlvs: &'_ [Tlv<'_>], t: u32| tlvs.iter().position(|x| x.tag == t);
    let value_of = |t: u32| top.iter().find(|x| x.tag == t).map(|x| x.value);
    let fa = find(&top, tag::GENERIC)
        .and_then(|i| top.get(i))
        .ok_or(ParseError::BadContainer("no FA generic data"))?;
    let fa_children = tlv::parse(fa.value)?;
    let (kind, inner) = fa_children
        .iter()
        .find_map(|x| match x.tag {
            tag::ARQC => Some((Kind::Arqc, x.value)),
            tag::BATCH => Some((Kind::Batch, x.value)),
            _ => None,
        })
        .ok_or(ParseError::BadContainer("no 70 or F0 in FA"))?;
    let contents = tlv::parse(inner)?;
    let f8 = contents
        .iter()
        .find(|x| x.tag == tag::ENCRYPTION)
        .ok_or(ParseError::BadContainer("no F8 encryption container"))?;
    let enc = tlv::parse(f8.value)?;
    let enc_value = |t: u32| enc.iter().find(|x| x.tag == t).map(|x| x.value);
    let ciphertext = enc_value(tag::CIPHERTEXT)
        .filter(|v| !v.is_empty())
        .ok_or(ParseError::BadContainer("no DFDF59 encrypted data"))?;
    let ksn = enc_value(tag::KSN).ok_or(ParseError::BadContainer("no DFDF56 KSN"))?;
    if Ksn::from_bytes(ksn).is_none() {
        return Err(ParseError::BadContainer("DFDF56 KSN is not 10 or 12 bytes"));
    }
    let block = if ksn.len() == 12 { 16 } else { 8 };
    if ciphertext.len() % block != 0 {
        return Err(ParseError::BadLength(
            "DFDF59 is not a whole number of blocks",
        ));
    }
    let pad_count = match enc_value(tag::PAD_COUNT) {
        None => 0,
        Some([n]) if usize::from(*n) < block.min(ciphertext.len() + 1) => *n,
        Some(_) => return Err(ParseError::BadLength("DFDF58 pad count")),
    };
    let key_type = match enc_value(tag::KEY_TYPE) {
        None => None,
        Some([k]) => Some(*k),
        Some(_) => return Err(ParseError::BadContainer("DFDF57 key type is not one byte")),
    };
    let mac_type = match value_of(tag::MAC_TYPE) {
        None => None,
        Some([k]) => Some(*k),
        Some(_) => return Err(ParseError::BadContainer("DFDF55 MAC type is not one byte")),
    };
    let mac_ksn = value_of(tag::MAC_KSN);
    if mac_ksn.is_some_and(|k| !k.is_empty() && Ksn::from_bytes(k).is_none()) {
        return Err(ParseError::BadContainer(
            "DFDF54 MAC KSN is not 10 or 12 bytes",
        ));
    }
    let clear = contents
        .into_iter()
        .filter(|x| x.tag != tag::ENCRYPTION)
        .collect();
    Ok(Container {
        message,
        kind,
        mac_ksn,
        mac_type,
        serial: value_of(tag::SERIAL),
        clear,
        ciphertext,
        ksn,
        key_type,
        pad_count,
        padding,
        mac,
    })
}

impl Container<'_> {
    /// The bytes the CBC-MAC covers as this module assumes: the length prefix through the
    /// padding (the padding brings them to whole 8-byte blocks).
    pub fn mac_input(&self) -> Vec<u8> {
        let mut v = self.message.to_vec();
        v.resize(v.len() + self.padding, 0);
        v
    }
}

/// Printable ASCII as text, anything else as upper-case hex (serials are ASCII in practice).
fn serial_text(v: &[u8]) -> Option<String> {
    let end = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let v = v.get(..end)?;
    if v.is_empty() {
        return None;
    }
    Some(if v.iter().all(|b| (0x20..0x7F).contains(b)) {
        String::from_utf8_lossy(v).trim().to_string()
    } else {
        hex::encode_upper(v)
    })
}

/// DFDF4D as MagTek sends it: ASCII `;PAN=YYMM…?` masked with `0`, or packed BCD.
fn masked_track2(v: &[u8]) -> Option<String> {
    let end = v
        .iter()
        .rposition(|&b| b != 0 && b != 0xFF)
        .map_or(0, |p| p + 1);
    let v = v.get(..end)?;
    if v.first() == Some(&b';') || v.first().is_some_and(u8::is_ascii_digit) {
        let text = String::from_utf8_lossy(v);
        let body = text.trim_start_matches(';');
        let body = body.split('?').next().unwrap_or("");
        let (pan, rest) = body.split_once('=')?;
        // Masked positions may be any printable character: shown as `*`.
        let star = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_ascii_digit() { c } else { '*' })
                .collect()
        };
        let ok = !pan.is_empty() && pan.len() <= 19;
        return ok.then(|| format!(";{}={}?", star(pan), star(rest)));
    }
    // Masked digits: nothing to zero.
    chip_track2(v, false).map(|t| t.as_str().to_string())
}

/// Decodes a container with the default card-type table.
pub fn decode(input: &[u8]) -> Result<CardRead, ParseError> {
    decode_with(input, &CardTypes::default())
}

/// Decodes a container: masked PAN, last 4, expiry from the clear part, KSN, entry mode from
/// 9F39 or the card type; the ciphertext goes in one block for `decrypt_read`.
pub fn decode_with(input: &[u8], card_types: &CardTypes) -> Result<CardRead, ParseError> {
    let c = parse(input)?;
    let mut r = CardRead::new(Format::MagtekEmv);
    r.device_serial = c.serial.and_then(serial_text).map(Into::into);
    if let Some(m) = c.clear_tag(tag::MASKED_T2).and_then(masked_track2) {
        let info = masked_ref(2, &m);
        if let Some(p) = info.pan {
            r.set_pan_text(p);
        }
        if let Some(e) = info.expiry {
            r.expiry = Some(e.into());
        }
        if let Some(s) = info.service_code {
            r.service_code = Some(s.into());
        }
        r.tracks[1] = TrackInfo {
            status: TrackStatus::Ok,
            masked: Some(m),
        };
    } else if let Some(pan) = c.clear_tag(0x5A) {
        let text = hex::encode_upper(pan);
        let digits = text.trim_end_matches('F');
        if (12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            r.set_pan_text(digits);
        }
    }
    if let Some(v) = c.clear_tag(0x5F24) {
        let e = hex::encode_upper(v);
        if let Some(yymm) = e.get(..4).filter(|s| s.bytes().all(|b| b.is_ascii_digit())) {
            r.expiry = Some(yymm.into());
        }
    }
    if let Some(v) = c.clear_tag(0x5F20) {
        let n = String::from_utf8_lossy(v).trim().to_string();
        if !n.is_empty() {
            r.cardholder_name = Some(n.into());
        }
    }
    let byte = |t: u32| c.clear_tag(t).and_then(|v| v.first().copied());
    r.entry_mode = match (byte(0x9F39), byte(tag::FALLBACK)) {
        (Some(m), _) => Some(EntryMode::from_byte(m)),
        // DFDF53: `01` technical fallback, `81` MSR fallback (MagTek's manuals): a chip card
        // read from its stripe.
        (None, Some(0x01 | 0x81)) => Some(EntryMode::Fallback),
        (None, _) => byte(tag::CARD_TYPE).and_then(|t| card_types.entry_mode(t)),
    };
    if r.tracks[1].status == TrackStatus::Absent {
        // The Track 2 equivalent is inside the ciphertext.
        r.tracks[1].status = TrackStatus::Ok;
    }
    let ksn = Ksn::from_bytes(c.ksn).ok_or(ParseError::BadContainer("DFDF56 KSN"))?;
    r.cipher = Some(if ksn.is_aes() {
        CipherKind::Aes
    } else {
        CipherKind::Tdes
    });
    r.ksn = Some(ksn);
    r.encrypted = true;
    r.key_variant = Some(KeyVariant::Data);
    r.plain_has_lrc = false;
    r.enc_blocks.push(EncBlock {
        target: EncTarget::MagtekTlv { pad: c.pad_count },
        data: c.ciphertext.to_vec(),
    });
    if let Some(s) = c.status().filter(|&s| s != 0) {
        r.warnings.push(format!("transaction-status-{s:02X}"));
    }
    Ok(r)
}

/// The clear card data inside a decrypted DFDF59 (`FC { F2 { … 57 … } }`, then `pad` bytes):
/// Track 1 and Track 2 equivalents as track text.
pub fn decrypted_tracks(plain: &[u8], pad: u8) -> Result<[Option<SecretText>; 2], ParseError> {
    let failed = |why: &str| ParseError::DecryptFailed(why.to_string());
    let end = plain
        .len()
        .checked_sub(usize::from(pad))
        .ok_or_else(|| failed("pad count longer than the plaintext"))?;
    let body = plain.get(..end).unwrap_or_default();
    if tlv::first_tag(body) != Some(0xFC) {
        return Err(failed("plaintext is not the FC container"));
    }
    let tlvs = tlv::parse(body).map_err(|_| failed("plaintext is not TLV"))?;
    let mut all = Vec::new();
    tlv::flatten(&tlvs, &mut all);
    let find = |t: u32| all.iter().find(|x| x.tag == t).map(|x| x.value);
    let t2 = find(0x57)
        .or_else(|| find(0x9F6B))
        .and_then(|v| chip_track2(v, false))
        .or_else(|| {
            // No Track 2 equivalent: the PAN (5A) and expiry (5F24) as Track 2 text.
            let pan = Zeroizing::new(hex::encode_upper(find(0x5A)?));
            let pan = pan.trim_end_matches('F');
            let exp = hex::encode_upper(find(0x5F24)?);
            let yymm = exp.get(..4)?;
            ((12..=19).contains(&pan.len())
                && pan.bytes().chain(yymm.bytes()).all(|b| b.is_ascii_digit()))
            .then(|| Zeroizing::new(format!(";{pan}={yymm}?")))
        });
    let t1 = find(0x56).and_then(super::tracks::chip_track1);
    Ok([t1.map(SecretText::from), t2.map(SecretText::from)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_types_default_table() {
        let t = CardTypes::default();
        assert_eq!(t.entry_mode(0x01), Some(EntryMode::Swipe));
        assert_eq!(t.entry_mode(0x05), Some(EntryMode::Chip));
        assert_eq!(t.entry_mode(0x06), Some(EntryMode::ContactlessChip));
        assert_eq!(t.entry_mode(0x08), Some(EntryMode::ContactlessMsd));
        // AAMVA and "unknown" are not payment entry modes.
        assert_eq!(t.entry_mode(0x02), None);
        assert_eq!(t.entry_mode(0x04), None);
    }

    #[test]
    fn short_and_foreign_inputs() {
        assert_eq!(parse(&[]).unwrap_err().code(), "truncated");
        assert_eq!(parse(&[0x00, 0x10]).unwrap_err().code(), "truncated");
        assert_eq!(parse(&[0x00, 0x10, 0xF9]).unwrap_err().code(), "truncated");
        assert_eq!(
            parse(&[0x01, 0x02, 0x03]).unwrap_err().code(),
            "unknown-format"
        );
        assert!(!looks_like_container(&[0xF9]));
        assert!(looks_like_container(&[0x00, 0x05, 0xF9]));
    }
}
