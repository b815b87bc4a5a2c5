//! ID TECH encrypted MSR output: original and enhanced formats, as binary frames
//! (`STX LenL LenH data LRC SUM ETX`) and as keyboard text (rule 3: binary fields as hex,
//! masked tracks as raw ASCII, length/LRC/sum over the ASCII characters as sent).
use nom::number::complete::{le_u16, u8 as nom_u8};
use nom::sequence::tuple;
use nom::IResult;
use zeroize::Zeroizing;

use super::tracks::{mask_track, masked_ref, MaskedRef};
use super::ParseError;
use crate::card::{
    CardRead, CipherKind, CompactString, EncBlock, EncTarget, EntryMode, Format, KeyVariant, Ksn,
    SecretText, TrackInfo, TrackStatus,
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
    /// Fills `out` from a binary field (2 hex digits per byte in keyboard text).
    fn bin_into(&mut self, out: &mut [u8]) -> Result<(), ParseError> {
        if self.text {
            let h = self.raw(out.len().checked_mul(2).ok_or(PAST_END)?)?;
            for (o, pair) in out.iter_mut().zip(h.chunks_exact(2)) {
                *o = hex_pair(pair)?;
            }
        } else {
            out.copy_from_slice(self.raw(out.len())?);
        }
        Ok(())
    }
    /// A binary field of `n` bytes, owned (ciphertext blocks the read keeps).
    fn bin(&mut self, n: usize) -> Result<Vec<u8>, ParseError> {
        if self.text {
            let h = self.raw(n.checked_mul(2).ok_or(PAST_END)?)?;
            h.chunks_exact(2).map(hex_pair).collect()
        } else {
            Ok(self.raw(n)?.to_vec())
        }
    }
    /// A fixed-size binary field, on the stack.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ParseError> {
        let mut a = [0u8; N];
        self.bin_into(&mut a)?;
        Ok(a)
    }
    /// Steps over a binary field the read does not keep (hex still checked in text).
    fn skip_bin(&mut self, n: usize) -> Result<(), ParseError> {
        if self.text {
            let h = self.raw(n.checked_mul(2).ok_or(PAST_END)?)?;
            if !h.iter().all(u8::is_ascii_hexdigit) {
                return Err(ParseError::BadHex);
            }
        } else {
            self.raw(n)?;
        }
        Ok(())
    }
    fn byte(&mut self) -> Result<u8, ParseError> {
        let [b] = self.array::<1>()?;
        Ok(b)
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
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn nonzero_hash(h: [u8; 20]) -> Option<[u8; 20]> {
    h.iter().any(|&b| b != 0).then_some(h)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Two hex digits (either case) to a byte.
fn hex_pair(p: &[u8]) -> Result<u8, ParseError> {
    match p {
        [h, l] => Ok(hex_digit(*h).ok_or(ParseError::BadHex)? << 4
            | hex_digit(*l).ok_or(ParseError::BadHex)?),
        _ => Err(ParseError::BadHex),
    }
}

/// The serial number field: 10 ASCII bytes, sent raw or (keyboard mode, some firmware) as hex.
fn serial_field(s: &mut Src<'_>, serial_hex: bool) -> Result<[u8; 10], ParseError> {
    if serial_hex {
        s.array::<10>()
    } else {
        let mut a = [0u8; 10];
        a.copy_from_slice(s.ascii(10)?);
        Ok(a)
    }
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
    serial: Option<[u8; 10]>,
    ksn: Option<Ksn>,
    cipher: CipherKind,
    variant: KeyVariant,
}

fn build_read(f: Fields) -> CardRead {
    let Fields {
        format,
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
        variant,
    } = f;
    let mut r = CardRead::new(format);
    r.entry_mode = Some(EntryMode::Swipe);
    r.encrypted = !enc.is_empty();
    r.plain_has_lrc = true;
    if r.encrypted {
        r.cipher = Some(cipher);
        r.key_variant = Some(variant);
        r.ksn = ksn;
    }
    r.device_serial = serial.and_then(|b| {
        // NUL and space are trimmed as bytes: as ASCII they never join a UTF-8 sequence, so
        // this is the same as trimming after the lossy conversion, without its cost.
        let keep = |c: &u8| !matches!(c, 0 | b' ');
        let start = b.iter().position(keep)?;
        let end = b.iter().rposition(keep).map_or(start, |p| p + 1);
        let t = b.get(start..end)?;
        Some(match std::str::from_utf8(t) {
            Ok(s) => CompactString::from(s),
            Err(_) => CompactString::from(String::from_utf8_lossy(t)),
        })
    });
    // PAN, name, expiry from what the reader left readable (Track 2 wins for shared fields).
    let info1 = masked[0].as_deref().map(|m| masked_ref(1, m));
    let info2 = masked[1].as_deref().map(|m| masked_ref(2, m));
    let pick = |f: fn(MaskedRef<'_>) -> Option<&str>| info2.and_then(f).or(info1.and_then(f));
    if let Some(name) = info1.as_ref().and_then(|i| i.name) {
        r.cardholder_name = Some(name.into());
    }
    if let Some(pan) = pick(|i| i.pan) {
        r.set_pan_text(pan);
    }
    r.expiry = pick(|i| i.expiry).map(Into::into);
    r.service_code = pick(|i| i.service_code).map(Into::into);
    let mut clear: [Option<SecretText>; 3] = Default::default();
    for (i, m) in masked.into_iter().enumerate() {
        let (Some(&len), Some(&present), Some(info), Some(slot)) = (
            lens.get(i),
            present.get(i),
            r.tracks.get_mut(i),
            clear.get_mut(i),
        ) else {
            continue;
        };
        let ok = status & (1 << i) != 0;
        let sampled = status & (8 << i) != 0;
        let status = if present {
            if ok || len > 0 && m.is_some() {
                TrackStatus::Ok
            } else {
                TrackStatus::Error
            }
        } else if sampled && !ok {
            TrackStatus::Error
        } else {
            TrackStatus::Absent
        };
        // With encryption off the "masked" field carries the clear track.
        let shown = match m {
            Some(m) if !r.encrypted && !m.contains('*') && m.contains('?') => {
                let m = Zeroizing::new(m);
                *slot = Some(SecretText::new(strip_lrc(&m)));
                Some(mask_track(strip_lrc(&m)))
            }
            m => m,
        };
        *info = TrackInfo {
            status,
            masked: shown,
        };
    }
    if clear.iter().any(Option::is_some) {
        r.fill_from_clear(&clear);
        r.clear = clear;
    }
    r.enc_blocks = enc;
    r.plain_lens = plain_lens;
    r.hashes = hashes;
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
        s.skip_bin(usize::from(n))?;
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
    let mut enc = Vec::with_capacity((f9 & 7).count_ones() as usize);
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
        s.skip_bin(8)?;
    }
    let mut hashes = [None; 3];
    for (i, h) in hashes.iter_mut().enumerate() {
        if f9 & (8 << i) != 0 {
            *h = nonzero_hash(s.array()?);
        }
    }
    let serial = if f8 & 0x80 != 0 {
        Some(serial_field(&mut s, serial_hex)?)
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
        let mut k = [0u8; 12];
        let k = k.get_mut(..n).ok_or(PAST_END)?;
        s.bin_into(k)?;
        // Fixed-key mode puts serial + NULs here instead of a KSN.
        if f8 & 0x08 == 0 {
            ksn = Ksn::from_bytes(k);
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
    Option<[u8; 10]>,
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
            *h = nonzero_hash(t.array()?);
        }
    }
    if lay.serial {
        serial = Some(serial_field(t, serial_hex)?);
    }
    ksn = Ksn::from_bytes(&t.array::<10>()?);
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
    body(Src {
        rest: data,
        text: false,
    })
}

fn hex_byte(b: &[u8]) -> Result<u8, ParseError> {
    hex_pair(b)
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
            Ok(r) => return Ok(r),
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
    // The length counts ASCII characters as sent (reader-formats.md rule 3), and the trailer
    // must sit exactly where it says: the LRC and sum cover the card data only, so a trailer
    // found anywhere else (a changed length character, a later `02` taken for the start)
    // could frame another card's bytes.
    let end = 6 + declared;
    let trailer = t
        .get(end..end + 6)
        .ok_or(ParseError::Truncated("frame shorter than its length"))?;
    if trailer.get(4..6) != Some(b"03") {
        return Err(ParseError::BadLength("no ETX where the length says"));
    }
    let card = t.get(6..end).unwrap_or_default();
    let lrc = hex_byte(trailer.get(0..2).unwrap_or_default())?;
    let sum = hex_byte(trailer.get(2..4).unwrap_or_default())?;
    let (x, s) = xor_sum(card);
    if x != lrc {
        return Err(ParseError::BadLrc("frame"));
    }
    if s != sum {
        return Err(ParseError::BadChecksum("frame"));
    }
    body(Src {
        rest: card,
        text: true,
    })
    .map(|mut r| {
        r.format = match r.format {
            Format::IdtechOriginal => Format::IdtechOriginal,
            _ => Format::IdtechEnhanced,
        };
        r
    })
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
