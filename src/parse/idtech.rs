//! ID TECH encrypted MSR output: original and enhanced formats, as binary frames
//! (`STX LenL LenH data LRC SUM ETX`) and as keyboard text (rule 3: binary fields as hex,
//! masked tracks as raw ASCII, length/LRC/sum over the ASCII characters as sent).
use nom::number::complete::{le_u16, u8 as nom_u8};
use nom::sequence::tuple;
use nom::IResult;

use super::tracks::{mask_track, masked_info};
use super::ParseError;
use crate::card::{
    CardRead, CipherKind, EncBlock, EncTarget, EntryMode, Format, KeyVariant, Ksn, SecretText,
    TrackInfo, TrackStatus,
};

const PAST_END: ParseError = ParseError::BadLength("a field runs past the frame's length");

/// A cursor over the card data: binary bytes, or keyboard text where binary fields are hex.
#[derive(Clone)]
struct Src<'a> {
    rest: &'a [u8],
    text: bool,
}

impl<'a> Src<'a> {
    fn raw(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let r: IResult<&[u8], &[u8]> = nom::bytes::complete::take(n)(self.rest);
        let (rest, got) = r.map_err(|_| PAST_END)?;
        self.rest = rest;
        Ok(got)
    }
    /// A binary field of `n` bytes (2n hex digits in keyboard text).
    fn bin(&mut self, n: usize) -> Result<Vec<u8>, ParseError> {
        if self.text {
            let h = self.raw(n.checked_mul(2).ok_or(PAST_END)?)?;
            hex::decode(h).map_err(|_| ParseError::BadHex)
        } else {
            Ok(self.raw(n)?.to_vec())
        }
    }
    fn byte(&mut self) -> Result<u8, ParseError> {
        self.bin(1)?.first().copied().ok_or(PAST_END)
    }
    /// An ASCII field, raw in both forms.
    fn ascii(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        self.raw(n)
    }
    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

fn round_up(n: usize, block: usize) -> usize {
    n.div_ceil(block) * block
}

fn ascii_string(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn nonzero_hash(h: Vec<u8>) -> Option<[u8; 20]> {
    let arr: [u8; 20] = h.try_into().ok()?;
    arr.iter().any(|&b| b != 0).then_some(arr)
}

/// Track text without the character after its end sentinel (ID TECH includes the LRC slot).
fn strip_lrc(t: &str) -> &str {
    match t.find('?') {
        Some(p) => t.get(..=p).unwrap_or(t),
        None => t,
    }
}

/// Everything both formats share once the fields are cut out.
struct Fields {
    format: Format,
    status: u8,
    lens: [usize; 3],
    present: [bool; 3],
    masked: [Option<String>; 3],
    enc: Vec<EncBlock>,
    plain_lens: [Option<usize>; 3],
    hashes: [Option<[u8; 20]>; 3],
    serial: Option<String>,
    ksn: Option<Ksn>,
    cipher: CipherKind,
    variant: KeyVariant,
}

fn build_read(f: Fields) -> CardRead {
    let mut r = CardRead::new(f.format);
    r.entry_mode = Some(EntryMode::Swipe);
    r.encrypted = !f.enc.is_empty();
    r.plain_has_lrc = true;
    if r.encrypted {
        r.cipher = Some(f.cipher);
        r.key_variant = Some(f.variant);
        r.ksn = f.ksn;
    }
    r.device_serial = f
        .serial
        .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_string())
        .filter(|s| !s.is_empty());
    let mut clear: [Option<SecretText>; 3] = Default::default();
    // Parallel fixed-size arrays, indices 0..3 only.
    #[allow(clippy::needless_range_loop)]
    for i in 0..3 {
        let ok = f.status & (1 << i) != 0;
        let sampled = f.status & (8 << i) != 0;
        let status = if f.present[i] {
            if ok || f.lens[i] > 0 && f.masked[i].is_some() {
                TrackStatus::Ok
            } else {
                TrackStatus::Error
            }
        } else if sampled && !ok {
            TrackStatus::Error
        } else {
            TrackStatus::Absent
        };
        let masked = f.masked[i].clone();
        // With encryption off the "masked" field carries the clear track.
        let is_clear = !r.encrypted
            && masked
                .as_deref()
                .is_some_and(|m| !m.contains('*') && m.contains('?'));
        let shown = match (&masked, is_clear) {
            (Some(m), true) => {
                clear[i] = Some(SecretText::new(strip_lrc(m)));
                Some(mask_track(strip_lrc(m)))
            }
            (m, _) => m.clone(),
        };
        r.tracks[i] = TrackInfo {
            status,
            masked: shown,
        };
    }
    // PAN, name, expiry from what the reader left readable (Track 2 first for shared fields).
    let info1 = f.masked[0].as_deref().map(|m| masked_info(1, m));
    let info2 = f.masked[1].as_deref().map(|m| masked_info(2, m));
    if let Some(name) = info1.as_ref().and_then(|i| i.name.clone()) {
        r.cardholder_name = Some(name);
    }
    for info in [&info1, &info2].into_iter().flatten() {
        if let Some(pan) = &info.pan {
            r.set_pan_text(pan);
        }
        if info.expiry.is_some() {
            r.expiry = info.expiry.clone();
        }
        if info.service_code.is_some() {
            r.service_code = info.service_code.clone();
        }
    }
    if clear.iter().any(Option::is_some) {
        r.fill_from_clear(&clear);
        r.clear = clear;
    }
    r.enc_blocks = f.enc;
    r.plain_lens = f.plain_lens;
    r.hashes = f.hashes;
    r
}

fn enhanced(mut s: Src<'_>, serial_hex: bool) -> Result<CardRead, ParseError> {
    let _encode_type = s.byte()?;
    let status = s.byte()?;
    let lens = [
        usize::from(s.byte()?),
        usize::from(s.byte()?),
        usize::from(s.byte()?),
    ];
    let f8 = s.byte()?;
    let f9 = s.byte()?;
    if status & 0x40 != 0 {
        let n = s.byte()?;
        s.bin(usize::from(n))?;
    }
    let cipher = if f8 & 0x10 != 0 {
        CipherKind::Aes
    } else {
        CipherKind::Tdes
    };
    let mut masked: [Option<String>; 3] = Default::default();
    for (i, m) in masked.iter_mut().enumerate() {
        if f8 & (1 << i) != 0 {
            *m = Some(ascii_string(s.ascii(lens[i])?));
        }
    }
    let mut enc = Vec::new();
    let mut plain_lens = [None; 3];
    for (i, pl) in plain_lens.iter_mut().enumerate() {
        if f9 & (1 << i) != 0 {
            let data = s.bin(round_up(lens[i], cipher.block_len()))?;
            *pl = Some(lens[i]);
            enc.push(EncBlock {
                target: EncTarget::Track(i as u8 + 1),
                data,
            });
        }
    }
    if f9 & 0x40 != 0 {
        s.bin(8)?;
    }
    let mut hashes = [None; 3];
    for (i, h) in hashes.iter_mut().enumerate() {
        if f9 & (8 << i) != 0 {
            *h = nonzero_hash(s.bin(20)?);
        }
    }
    let serial = if f8 & 0x80 != 0 {
        Some(if serial_hex {
            ascii_string(&s.bin(10)?)
        } else {
            ascii_string(s.ascii(10)?)
        })
    } else {
        None
    };
    let mut ksn = None;
    if f9 & 0x80 != 0 {
        let n = if s.rest.len() == if s.text { 24 } else { 12 } {
            12
        } else {
            10
        };
        let k = s.bin(n)?;
        // Fixed-key mode puts serial + NULs here instead of a KSN.
        if f8 & 0x08 == 0 {
            ksn = Ksn::from_bytes(&k);
        }
    }
    if !s.is_empty() {
        return Err(ParseError::BadLength("fields do not fill the frame"));
    }
    let present = [0, 1, 2].map(|i| (f8 | f9) & (1 << i) != 0);
    Ok(build_read(Fields {
        format: Format::IdtechEnhanced,
        status,
        lens,
        present,
        masked,
        enc,
        plain_lens,
        hashes,
        serial,
        ksn,
        cipher,
        variant: if f8 & 0x40 != 0 {
            KeyVariant::Pin
        } else {
            KeyVariant::Data
        },
    }))
}

/// One guess at the original format's optional parts; the one that fills the frame wins.
#[derive(Clone, Copy)]
struct Layout {
    encrypted: bool,
    t3_enc: bool,
    t3_hash: bool,
    serial: bool,
    block: usize,
}

const LAYOUTS: [Layout; 9] = {
    const fn l(encrypted: bool, t3_enc: bool, t3_hash: bool, serial: bool, block: usize) -> Layout {
        Layout {
            encrypted,
            t3_enc,
            t3_hash,
            serial,
            block,
        }
    }
    [
        l(true, false, false, false, 8),
        l(true, true, true, false, 8),
        l(true, true, false, false, 8),
        l(true, false, false, true, 8),
        l(true, true, true, true, 8),
        l(true, false, false, false, 16),
        l(true, true, true, false, 16),
        l(true, false, false, true, 16),
        l(false, false, false, false, 8),
    ]
};

fn original(mut s: Src<'_>, serial_hex: bool) -> Result<CardRead, ParseError> {
    let _encode_type = s.byte()?;
    let status = s.byte()?;
    let lens = [
        usize::from(s.byte()?),
        usize::from(s.byte()?),
        usize::from(s.byte()?),
    ];
    let mut masked: [Option<String>; 3] = Default::default();
    for (i, m) in masked.iter_mut().enumerate() {
        if lens[i] > 0 {
            *m = Some(ascii_string(s.ascii(lens[i])?));
        }
    }
    for lay in LAYOUTS {
        let mut t = s.clone();
        let Ok((enc, hashes, serial, ksn)) = original_tail(&mut t, lay, lens, serial_hex) else {
            continue;
        };
        if !t.is_empty() {
            continue;
        }
        let mut plain_lens = [None; 3];
        if lay.encrypted {
            plain_lens = [
                (lens[0] > 0).then_some(lens[0]),
                (lens[1] > 0).then_some(lens[1]),
                (lay.t3_enc && lens[2] > 0).then_some(lens[2]),
            ];
        }
        return Ok(build_read(Fields {
            format: Format::IdtechOriginal,
            status,
            lens,
            present: lens.map(|l| l > 0),
            masked,
            enc,
            plain_lens,
            hashes,
            serial,
            ksn,
            cipher: if lay.block == 16 {
                CipherKind::Aes
            } else {
                CipherKind::Tdes
            },
            variant: KeyVariant::Data,
        }));
    }
    Err(ParseError::BadLength("fields do not fill the frame"))
}

type Tail = (
    Vec<EncBlock>,
    [Option<[u8; 20]>; 3],
    Option<String>,
    Option<Ksn>,
);

fn original_tail(
    t: &mut Src<'_>,
    lay: Layout,
    lens: [usize; 3],
    serial_hex: bool,
) -> Result<Tail, ParseError> {
    let mut enc = Vec::new();
    let mut hashes = [None; 3];
    let (mut serial, mut ksn) = (None, None);
    if !lay.encrypted {
        return Ok((enc, hashes, serial, ksn));
    }
    let joined = lens[0] + lens[1] + if lay.t3_enc { lens[2] } else { 0 };
    if joined > 0 {
        enc.push(EncBlock {
            target: EncTarget::Joined,
            data: t.bin(round_up(joined, lay.block))?,
        });
    }
    for (i, h) in hashes.iter_mut().enumerate() {
        if lens[i] > 0 && (i < 2 || lay.t3_hash) {
            *h = nonzero_hash(t.bin(20)?);
        }
    }
    if lay.serial {
        serial = Some(if serial_hex {
            ascii_string(&t.bin(10)?)
        } else {
            ascii_string(t.ascii(10)?)
        });
    }
    ksn = Ksn::from_bytes(&t.bin(10)?);
    Ok((enc, hashes, serial, ksn))
}

fn body(s: Src<'_>) -> Result<CardRead, ParseError> {
    let first = s.clone().byte()?;
    let parse = |hex_serial| {
        if first & 0x80 != 0 {
            enhanced(s.clone(), hex_serial)
        } else {
            original(s.clone(), hex_serial)
        }
    };
    if s.text {
        // Keyboard mode: the serial may come as hex or as ASCII; the one that fits wins.
        parse(true).or_else(|e| parse(false).map_err(|_| e))
    } else {
        parse(false)
    }
}

fn envelope(i: &[u8]) -> IResult<&[u8], (u8, u16)> {
    tuple((nom_u8, le_u16))(i)
}

fn xor_sum(data: &[u8]) -> (u8, u8) {
    data.iter()
        .fold((0u8, 0u8), |(x, s), &b| (x ^ b, s.wrapping_add(b)))
}

/// A binary ID TECH frame. Zero bytes after ETX (fixed-size HID reports) are ignored.
pub fn decode_binary(input: &[u8]) -> Result<CardRead, ParseError> {
    let (_, (stx, len)) = envelope(input).map_err(|_| ParseError::Truncated("frame header"))?;
    if stx != 0x02 {
        return Err(ParseError::UnknownFormat);
    }
    let len = usize::from(len);
    let end = 3 + len;
    let (Some(data), Some(&[lrc, sum, etx])) = (input.get(3..end), input.get(end..end + 3)) else {
        // An ETX at the very end means the frame is whole and its length field is wrong.
        return Err(if input.last() == Some(&0x03) && input.len() >= 8 {
            ParseError::BadLength("length runs past the end")
        } else {
            ParseError::Truncated("frame shorter than its length")
        });
    };
    if etx != 0x03 {
        return Err(ParseError::BadLength("no ETX where the length says"));
    }
    if input
        .get(end + 3..)
        .is_some_and(|t| t.iter().any(|&b| b != 0))
    {
        return Err(ParseError::BadLength("bytes after ETX"));
    }
    let (x, s) = xor_sum(data);
    if x != lrc {
        return Err(ParseError::BadLrc("frame"));
    }
    if s != sum {
        return Err(ParseError::BadChecksum("frame"));
    }
    let mut r = body(Src {
        rest: data,
        text: false,
    })?;
    r.raw.0 = zeroize::Zeroizing::new(input.get(..end + 3).unwrap_or(input).to_vec());
    Ok(r)
}

fn hex_byte(b: &[u8]) -> Result<u8, ParseError> {
    let v = hex::decode(b).map_err(|_| ParseError::BadHex)?;
    v.first().copied().ok_or(ParseError::BadHex)
}

/// Whether text looks like an ID TECH keyboard-mode frame (starts `02` + hex length).
pub fn looks_like_keyboard(t: &[u8]) -> bool {
    t.starts_with(b"02")
        && t.get(2..8)
            .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
}

/// A keyboard-mode frame: `02` LLLL card-text LRC SUM `03` as hex text, masked tracks raw.
pub fn decode_keyboard(input: &[u8]) -> Result<CardRead, ParseError> {
    let t = trim_ascii(input);
    // A configurable prefix may come first: try each `02` near the start.
    let starts: Vec<usize> = (0..t.len().min(32))
        .filter(|&p| t.get(p..p + 2) == Some(b"02"))
        .collect();
    let mut first_err = None;
    for p in starts {
        match keyboard_at(t.get(p..).unwrap_or_default()) {
            Ok(mut r) => {
                r.raw.0 = zeroize::Zeroizing::new(input.to_vec());
                return Ok(r);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.unwrap_or(ParseError::UnknownFormat))
}

fn trim_ascii(t: &[u8]) -> &[u8] {
    let s = t
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(t.len());
    let e = t
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |p| p + 1);
    t.get(s..e).unwrap_or_default()
}

fn keyboard_at(t: &[u8]) -> Result<CardRead, ParseError> {
    let lo = hex_byte(t.get(2..4).ok_or(ParseError::Truncated("frame header"))?)?;
    let hi = hex_byte(t.get(4..6).ok_or(ParseError::Truncated("frame header"))?)?;
    let declared = usize::from(u16::from_le_bytes([lo, hi]));
    // The length counts ASCII characters as sent (rule 3); some firmware counts the binary
    // equivalent instead, so the trailer may also sit at the very end.
    let mut ends = vec![6 + declared];
    if let Some(e) = t.len().checked_sub(6) {
        if e >= 6 && e != 6 + declared {
            ends.push(e);
        }
    }
    let mut err = None;
    for end in ends {
        let Some(trailer) = t.get(end..end + 6) else {
            err.get_or_insert(ParseError::Truncated("frame shorter than its length"));
            continue;
        };
        if trailer.get(4..6) != Some(b"03") {
            err.get_or_insert(ParseError::BadLength("no ETX where the length says"));
            continue;
        }
        let card = t.get(6..end).unwrap_or_default();
        let lrc = hex_byte(trailer.get(0..2).unwrap_or_default())?;
        let sum = hex_byte(trailer.get(2..4).unwrap_or_default())?;
        let (x, s) = xor_sum(card);
        if x != lrc {
            err = Some(ParseError::BadLrc("frame"));
            continue;
        }
        if s != sum {
            err = Some(ParseError::BadChecksum("frame"));
            continue;
        }
        return body(Src {
            rest: card,
            text: true,
        })
        .map(|mut r| {
            r.format = match r.format {
                Format::IdtechOriginal => Format::IdtechOriginal,
                _ => Format::IdtechEnhanced,
            };
            r
        });
    }
    Err(err.unwrap_or(ParseError::UnknownFormat))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// ID TECH UniMag II manual sample (shared/samples/04_…), verbatim payload.
    pub const SAMPLE04: &str = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";

    #[test]
    fn sample_04_enhanced() {
        let bytes = hex::decode(SAMPLE04).unwrap();
        let r = decode_binary(&bytes).unwrap();
        assert_eq!(r.format, Format::IdtechEnhanced);
        assert_eq!(r.ksn.as_ref().unwrap().to_hex(), "FFFF9876543210E0004A");
        assert_eq!(r.masked_pan.as_ref().unwrap().as_str(), "5150********7861");
        assert_eq!(r.last4.as_deref(), Some("7861"));
        assert_eq!(r.cardholder_name.as_deref(), Some("PAYPASS/MASTERCARD"));
        assert_eq!(r.device_serial.as_deref(), Some("1234567890"));
        assert_eq!(r.key_variant, Some(KeyVariant::Data));
        assert_eq!(r.cipher, Some(CipherKind::Tdes));
        assert_eq!(r.plain_lens, [Some(55), Some(35), None]);
        assert_eq!(r.enc_blocks.len(), 2);
        assert_eq!(r.enc_blocks[0].data.len(), 56);
        assert_eq!(r.enc_blocks[1].data.len(), 40);
        assert_eq!(r.tracks[2].status, TrackStatus::Absent);
        assert_eq!(
            r.tracks[1].masked.as_deref(),
            Some(";5150********7861=***************?*")
        );
        assert_eq!(r.brand.map(|b| b.code()), Some("MC"));
    }

    #[test]
    fn sample_04_damaged() {
        let mut bytes = hex::decode(SAMPLE04).unwrap();
        let n = bytes.len();
        assert_eq!(
            decode_binary(&bytes[..n - 10]).unwrap_err().code(),
            "truncated"
        );
        bytes[20] ^= 1;
        assert_eq!(decode_binary(&bytes).unwrap_err().code(), "bad-lrc");
        bytes[20] ^= 1;
        bytes[n - 2] ^= 1;
        assert_eq!(decode_binary(&bytes).unwrap_err().code(), "bad-checksum");
        bytes[n - 2] ^= 1;
        bytes[1] = 0xFF;
        assert_eq!(decode_binary(&bytes).unwrap_err().code(), "bad-length");
    }
}
