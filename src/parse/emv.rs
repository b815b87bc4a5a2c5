//! Chip and contactless data as BER-TLV (§2.7): bare (`emv-tlv`) or inside a ViVOtech2 frame,
//! with ID TECH's three ways of sending sensitive tags, KSN in DFEE12/FFEE12, the inner MSR
//! frame DFEE23, and the entry mode from 9F39 or the source tags.
use super::tlv::{self, LenFlag, Tlv};
use super::tracks::{chip_track1, chip_track2, mask_track, masked_ref, scan_tracks};
use super::{idtech, ParseError};
use crate::card::{
    CardRead, CipherKind, EncBlock, EncTarget, EntryMode, Format, KeyVariant, Ksn, SecretText,
    TrackInfo, TrackStatus,
};

const SENSITIVE: [u32; 5] = [0x57, 0x5A, 0x56, 0x9F6B, 0xDFEF4D];

/// Masked-copy tags Augusta keyboard mode uses: (masked tag, the tag it masks).
const MASKED_TAGS: [(u32, u32); 3] = [(0xDFEF5D, 0x57), (0xDFEF5B, 0x5A), (0xDFEF5E, 0x9F6B)];

/// Attribution byte → entry mode (b4/b3/b0 captured type).
fn mode_from_attribution(a: u8) -> EntryMode {
    let ty = ((a >> 4) & 1) << 2 | ((a >> 3) & 1) << 1 | (a & 1);
    match ty {
        0b000 => EntryMode::Chip,
        0b001 => EntryMode::ContactlessChip,
        0b101 => EntryMode::ContactlessMsd,
        0b010 | 0b011 => EntryMode::Swipe,
        _ => EntryMode::Other(a),
    }
}

fn cipher_from_bits(a: u8) -> CipherKind {
    if (a >> 1) & 3 == 1 {
        CipherKind::Aes
    } else {
        CipherKind::Tdes
    }
}

/// Whether the first byte of `data` is an attribution byte rather than a tag: parse both ways
/// and keep the one that yields known tags. A TLV error is reported only when the data starts
/// like TLV (a known tag); anything else is `unknown-format`.
pub fn split_attribution(data: &[u8]) -> Result<(Option<u8>, Vec<Tlv<'_>>), ParseError> {
    let known = |t: &Vec<Tlv>| {
        let mut all = Vec::new();
        tlv::flatten(t, &mut all);
        all.iter().any(|x| tlv::tag_name(x.tag).is_some())
    };
    let rest = data.get(1..).unwrap_or_default();
    let with = tlv::parse(rest);
    let without = tlv::parse(data);
    let starts_known = |d: &[u8]| tlv::first_tag(d).and_then(tlv::tag_name).is_some();
    match (&with, &without) {
        (Ok(w), Ok(wo)) if known(w) && known(wo) => {
            if starts_known(data) && !starts_known(rest) {
                Ok((None, wo.clone()))
            } else {
                Ok((data.first().copied(), w.clone()))
            }
        }
        (Ok(w), _) if known(w) => Ok((data.first().copied(), w.clone())),
        (_, Ok(wo)) if known(wo) => Ok((None, wo.clone())),
        (_, Err(e)) if starts_known(data) => Err(e.clone()),
        (Err(e), _) if starts_known(rest) => Err(e.clone()),
        _ => Err(ParseError::UnknownFormat),
    }
}

/// A bare TLV read (`emv-tlv`). A stream cut short inside a trailing object that holds no
/// card data still yields what was read, with a `truncated` warning; a cut inside card data
/// (or a container that may hold it) stays an error.
pub fn decode_bare(input: &[u8]) -> Result<CardRead, ParseError> {
    let strict = match split_attribution(input) {
        Ok((attr, tlvs)) => {
            let r = from_tlv(&tlvs, attr, Format::EmvTlv)?;
            // Bytes that happen to parse as TLV with one known tag (an ID TECH frame whose STX
            // was changed) are no card read unless something in them names a card.
            return if names_a_card(&r) {
                Ok(r)
            } else {
                Err(ParseError::UnknownFormat)
            };
        }
        Err(e) => e,
    };
    if !matches!(strict, ParseError::Truncated(_) | ParseError::BadLength(_)) {
        return Err(strict);
    }
    let rest = input.get(1..).unwrap_or_default();
    // Same preference as split_attribution: without the attribution byte when the data starts
    // with a known tag, with it otherwise.
    let tries: [(Option<u8>, &[u8]); 2] = if tlv::first_tag(input).and_then(tlv::tag_name).is_some()
    {
        [(None, input), (input.first().copied(), rest)]
    } else {
        [(input.first().copied(), rest), (None, input)]
    };
    for (attr, data) in tries {
        let Ok((tlvs, Some(cut))) = tlv::parse_cut_short(data) else {
            continue;
        };
        let mut all = Vec::new();
        tlv::flatten(&tlvs, &mut all);
        if !all.iter().any(|x| tlv::tag_name(x.tag).is_some()) {
            continue;
        }
        if cut_holds_card_data(cut) {
            return Err(strict);
        }
        let mut r = from_tlv(&tlvs, attr, Format::EmvTlv)?;
        // A cut read must still name its card (a masked PAN of 12-19 digits): bytes that are
        // no TLV at all (a frame with its first byte changed) can also end inside an object.
        if r.masked_pan.is_none() {
            return Err(strict);
        }
        r.warnings.push("truncated".to_string());
        return Ok(r);
    }
    Err(strict)
}

/// Whether a read names a card: a PAN (masked or last 4), clear track data, or a KSN.
/// Ciphertext without a KSN names nothing: no key decrypts it (seen: an ID TECH frame with its
/// STX changed to 42 came out as an "encrypted" read with neither PAN nor KSN).
fn names_a_card(r: &CardRead) -> bool {
    r.masked_pan.is_some()
        || r.last4.is_some()
        || r.ksn.is_some()
        || r.clear.iter().any(Option::is_some)
}

/// Whether the object a stream was cut in may hold card data. A cut inside the tag bytes hides
/// nothing that was read; a constructed object other than ID TECH's source container may.
fn cut_holds_card_data(cut: tlv::Cut) -> bool {
    let Some(tag) = cut.tag else {
        return false;
    };
    SENSITIVE.contains(&tag)
        || MASKED_TAGS.iter().any(|&(m, _)| m == tag)
        || tag == 0xDFEE23
        || (cut.constructed && !matches!(tag, 0xFFEE01 | 0xFFEE12))
}

fn ascii(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// Builds the read from parsed TLV.
pub fn from_tlv(
    tlvs: &[Tlv<'_>],
    attr: Option<u8>,
    format: Format,
) -> Result<CardRead, ParseError> {
    let mut all = Vec::new();
    tlv::flatten(tlvs, &mut all);
    let find = |tag: u32| all.iter().find(|t| t.tag == tag).map(|t| t.value);

    // The swipe or fallback: an enhanced MSR frame inside.
    let mut r = match find(0xDFEE23) {
        Some(frame) => {
            let mut inner = idtech::decode_binary(frame)?;
            inner.format = format;
            inner
        }
        None => CardRead::new(format),
    };

    let ksn = all
        .iter()
        .filter(|t| matches!(t.tag, 0xDFEE12 | 0xFFEE12))
        .find_map(|t| Ksn::from_bytes(t.value));
    let dfee26 = find(0xDFEE26).and_then(|v| v.first().copied());
    let source = find(0xDFEE30)
        .or_else(|| find(0xDF30))
        .and_then(|v| v.first().copied());

    // Sensitive tags: masked copies and ciphertexts.
    let mut masked: Vec<(u32, &[u8])> = Vec::new();
    let mut cipher_blocks: Vec<(u32, &[u8])> = Vec::new();
    let mut clear: Vec<(u32, &[u8])> = Vec::new();
    let encryption_on =
        attr.is_some_and(|a| a & 0xC0 != 0) || dfee26.is_some_and(|b| b != 0) || ksn.is_some();
    for (mt, of) in MASKED_TAGS {
        if let Some(v) = find(mt) {
            masked.push((of, v));
        }
    }
    for tag in SENSITIVE {
        let copies: Vec<&&Tlv> = all.iter().filter(|t| t.tag == tag).collect();
        let plain: Vec<&&Tlv> = copies
            .iter()
            .copied()
            .filter(|t| t.flag == LenFlag::Plain)
            .collect();
        for t in &copies {
            match t.flag {
                LenFlag::Masked => masked.push((tag, t.value)),
                LenFlag::Encrypted => cipher_blocks.push((tag, t.value)),
                LenFlag::Plain => {}
            }
        }
        match plain.as_slice() {
            [] => {}
            // Plain duplicates: masked copy first, then the ciphertext.
            [m, c, ..] => {
                masked.push((tag, m.value));
                cipher_blocks.push((tag, c.value));
            }
            [one] => {
                let has_masked = masked.iter().any(|(t, _)| *t == tag);
                if encryption_on && (has_masked || !looks_clear(tag, one.value)) {
                    cipher_blocks.push((tag, one.value));
                } else {
                    clear.push((tag, one.value));
                }
            }
        }
    }

    // Track texts from masked and clear copies.
    let mut clear_tracks: [Option<SecretText>; 3] = Default::default();
    for (tag, v) in &clear {
        match tag {
            0x57 | 0x9F6B if clear_tracks[1].is_none() => {
                clear_tracks[1] = chip_track2(v, false).map(SecretText::from);
            }
            0x56 => clear_tracks[0] = chip_track1(v).map(SecretText::from),
            // Track data with sentinels (encryption off).
            0xDFEF4D => {
                let end = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                if let Ok(found) = scan_tracks(v.get(..end).unwrap_or_default()) {
                    for t in found.into_iter().filter(|t| !t.error) {
                        let i = usize::from(t.number.clamp(1, 3) - 1);
                        if let Some(slot) = clear_tracks.get_mut(i) {
                            *slot = Some(t.text);
                        }
                    }
                }
            }
            0x5A => {
                let pan = hex::encode_upper(v);
                if let Some(p) = pan_digits(&pan) {
                    r.set_pan_text(p);
                }
            }
            _ => {}
        }
    }
    for (i, t) in clear_tracks.iter().enumerate() {
        if let Some(t) = t {
            r.tracks[i] = TrackInfo {
                status: TrackStatus::Ok,
                masked: Some(mask_track(t.expose())),
            };
        }
    }
    for (tag, v) in &masked {
        match tag {
            0x57 | 0x9F6B => {
                if let Some(m) = chip_track2(v, true) {
                    let info = masked_ref(2, &m);
                    if let Some(pan) = info.pan {
                        r.set_pan_text(pan);
                    }
                    if let Some(e) = info.expiry {
                        r.expiry = Some(e.into());
                    }
                    if let Some(sc) = info.service_code {
                        r.service_code = Some(sc.into());
                    }
                    if r.tracks[1].masked.is_none() {
                        r.tracks[1] = TrackInfo {
                            status: TrackStatus::Ok,
                            masked: Some(m.to_string()),
                        };
                    }
                }
            }
            0x56 => {
                if let Some(m) = chip_track1(v) {
                    if r.tracks[0].masked.is_none() {
                        r.tracks[0] = TrackInfo {
                            status: TrackStatus::Ok,
                            masked: Some(m.to_string()),
                        };
                    }
                }
            }
            0x5A => {
                let pan = hex::encode_upper(v).replace('C', "*");
                if let Some(p) = pan_digits(&pan) {
                    r.set_pan_text(p);
                }
            }
            _ => {}
        }
    }
    if clear_tracks.iter().any(Option::is_some) {
        r.fill_from_clear(&clear_tracks);
        r.clear = clear_tracks;
    }
    for (tag, v) in &cipher_blocks {
        let value_len = masked.iter().find(|(t, _)| t == tag).map(|(_, m)| m.len());
        let idx = match tag {
            0x56 => Some(0),
            0x57 | 0x9F6B => Some(1),
            _ => None,
        };
        if let Some(i) = idx {
            if r.tracks[i].status == TrackStatus::Absent {
                r.tracks[i].status = TrackStatus::Ok;
            }
        }
        r.enc_blocks.push(EncBlock {
            target: EncTarget::Tag {
                tag: *tag,
                value_len,
            },
            data: v.to_vec(),
        });
    }
    if !cipher_blocks.is_empty() {
        r.encrypted = true;
        r.plain_has_lrc = false;
        r.key_variant = Some(KeyVariant::Data);
        r.cipher = Some(attr.or(dfee26).map_or(CipherKind::Tdes, cipher_from_bits));
    }
    if ksn.is_some() {
        r.ksn = ksn;
    }

    // Plain fields.
    if let Some(v) = find(0x5F24) {
        let e = hex::encode_upper(v);
        if let Some(yymm) = e.get(..4).filter(|s| s.bytes().all(|b| b.is_ascii_digit())) {
            r.expiry = Some(yymm.into());
        }
    }
    if let Some(v) = find(0x5F20) {
        let n = ascii(v);
        if !n.is_empty() {
            r.cardholder_name = Some(n.into());
        }
    }

    // Entry mode: 9F39, else what the reader says the source was.
    let fallback = find(0xDFEE25).is_some() && find(0xDFEE23).is_some();
    r.entry_mode = if let Some(&m) = find(0x9F39).and_then(|v| v.first()) {
        Some(EntryMode::from_byte(m))
    } else if find(0xDFEE23).is_some() {
        Some(if fallback {
            EntryMode::Fallback
        } else {
            EntryMode::Swipe
        })
    } else if let Some(s) = source {
        Some(match s {
            0x0C => EntryMode::Swipe,
            0x01 => EntryMode::Chip,
            _ if all.iter().any(|t| t.tag == 0x9F6B) && !all.iter().any(|t| t.tag == 0x57) => {
                EntryMode::ContactlessMsd
            }
            _ => EntryMode::ContactlessChip,
        })
    } else if let Some(b) = dfee26.filter(|&b| b != 0) {
        Some(match b {
            0xC0 => EntryMode::Chip,
            0xE1 => EntryMode::ContactlessChip,
            0xD1 => EntryMode::ContactlessMsd,
            0xE8 => EntryMode::Swipe,
            o => mode_from_attribution(o),
        })
    } else {
        attr.map(mode_from_attribution)
    };
    Ok(r)
}

/// A 5A value as text (F padding dropped) when it can be a PAN: 12 to 19 digits, masked
/// digits as `*`. Anything else (a corrupted frame read as TLV) names no card.
fn pan_digits(hex_text: &str) -> Option<&str> {
    let p = hex_text.trim_end_matches('F');
    ((12..=19).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit() || b == b'*'))
        .then_some(p)
}

/// A clear 57/9F6B parses as track 2; a clear 5A is BCD digits.
fn looks_clear(tag: u32, v: &[u8]) -> bool {
    match tag {
        0x57 | 0x9F6B => chip_track2(v, false).is_some(),
        0x56 => chip_track1(v).is_some(),
        0x5A => hex::encode_upper(v)
            .trim_end_matches('F')
            .bytes()
            .all(|b| b.is_ascii_digit()),
        0xDFEF4D => matches!(v.first(), Some(b'%' | b';' | b'+')),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::build::tlv as enc_tlv;

    /// Seen in a proptest run: an ID TECH frame with its STX changed to 03 parsed as an
    /// attribution byte plus TLV holding only 9F39, and came out as an empty `07` read.
    #[test]
    fn tlv_that_names_no_card_is_no_read() {
        let mut b = vec![0x03];
        b.extend(enc_tlv(0x9F39, &[0x07]));
        assert_eq!(decode_bare(&b).unwrap_err(), ParseError::UnknownFormat);
        // The same entry mode beside a masked PAN is a read.
        b.extend(enc_tlv(0x5A, &hex::decode("4761739001010010").unwrap()));
        let r = decode_bare(&b).unwrap();
        assert_eq!(r.entry_mode, Some(EntryMode::ContactlessChip));
        assert_eq!(r.last4.as_deref(), Some("0010"));
    }

    #[test]
    fn clear_tlv_reads() {
        // Encryption off: clear 57, 5F20, DF30 contact source, no 9F39.
        let mut b = enc_tlv(
            0x57,
            &hex::decode("5413330089020011D251210100000000000F").unwrap(),
        );
        b.extend(enc_tlv(0x5F20, b"TEST/CARD"));
        b.extend(enc_tlv(0xFFEE01, &enc_tlv(0xDF30, &[0x01])));
        let r = decode_bare(&b).unwrap();
        assert_eq!(r.entry_mode, Some(EntryMode::Chip));
        assert!(!r.encrypted);
        assert_eq!(r.last4.as_deref(), Some("0011"));
        assert_eq!(r.expiry.as_deref(), Some("2512"));
        assert_eq!(r.service_code.as_deref(), Some("101"));
        assert_eq!(r.cardholder_name.as_deref(), Some("TEST/CARD"));
        assert_eq!(
            r.clear[1].as_ref().unwrap().expose(),
            ";5413330089020011=251210100000000000?"
        );
        // DFEF4D with sentinels, attribution byte 0x08 (MSR, encryption off).
        let mut b = vec![0x08];
        b.extend(enc_tlv(0xDFEF4D, b";5413330089020011=2512101?\0\0"));
        b.extend(enc_tlv(0x9F39, &[0x90]));
        let r = decode_bare(&b).unwrap();
        assert_eq!(r.entry_mode, Some(EntryMode::Swipe));
        assert_eq!(
            r.clear[1].as_ref().unwrap().expose(),
            ";5413330089020011=2512101?"
        );
    }
}

/// Chip data as host SDKs log it and as keyboard readers type it: bytes written out by hand
/// from reader-formats.md §2.7 and reader-protocols.md §1.4 (the ciphertext is the ANSI test
/// BDK encryption of the clear 57 noted below; its plaintext is checked in tests/decode_fixtures).
#[cfg(test)]
mod cut_short_tests {
    use super::*;
    use crate::parse::decode_frame;

    /// Attribution C1: encryption on (bits 7/6), TDES (bits 2/1 = 00), contactless EMV (bit 0).
    const ATTR: &str = "C1";
    /// 57 A1 12: masked copy (flag 0x20, one length byte), 18 bytes, C = masked nibble.
    const MASKED_57: &str = "57A1124761CCCCCCCC0119D251220112340001230F";
    /// 57 C1 18: encrypted copy (flag 0x40), 24 bytes of TDES-CBC over the whole clear TLV.
    const CIPHER_57: &str = "57C1187E33B0C5C313B692044500B3BA8B7C65F67925B5B9EAEE33";
    /// 9F39 01 07: contactless EMV.
    const ENTRY: &str = "9F390107";
    /// DFEE12 0A: the data key's KSN.
    const KSN_TLV: &str = "DFEE120AFFFF9876543210E00001";
    /// DFEE26 02 E1 00: capture info (contactless EMV), no card data.
    const INFO: &str = "DFEE2602E100";

    fn bytes(parts: &[&str]) -> Vec<u8> {
        hex::decode(parts.concat()).unwrap()
    }

    #[test]
    fn sdk_logged_attribution_then_tlv_is_emv_tlv() {
        let b = bytes(&[ATTR, MASKED_57, CIPHER_57, ENTRY, KSN_TLV]);
        let r = decode_frame(&b).unwrap();
        assert_eq!(r.format, Format::EmvTlv);
        assert_eq!(r.entry_mode, Some(EntryMode::ContactlessChip));
        assert_eq!(r.last4.as_deref(), Some("0119"));
        assert_eq!(
            r.ksn.as_ref().map(|k| k.to_string()).as_deref(),
            Some("FFFF9876543210E00001")
        );
        assert!(r.encrypted);
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    }

    #[test]
    fn cut_inside_a_trailing_tag_without_card_data_keeps_the_read() {
        let whole = bytes(&[ATTR, MASKED_57, CIPHER_57, ENTRY, KSN_TLV, INFO]);
        // Cut inside DFEE26's value, its length, and its tag bytes.
        for cut in [1, 3, 5] {
            let b = &whole[..whole.len() - cut];
            let r = decode_frame(b).unwrap_or_else(|e| panic!("cut {cut}: {e:?}"));
            assert_eq!(r.format, Format::EmvTlv);
            assert_eq!(r.last4.as_deref(), Some("0119"), "cut {cut}");
            assert_eq!(r.entry_mode, Some(EntryMode::ContactlessChip));
            assert_eq!(r.warnings, ["truncated"], "cut {cut}");
            assert!(!r.enc_blocks.is_empty());
        }
    }

    #[test]
    fn cut_inside_card_data_stays_an_error() {
        // The encrypted 57 last, cut one byte and ten bytes short.
        let whole = bytes(&[ATTR, ENTRY, KSN_TLV, MASKED_57, CIPHER_57]);
        for cut in [1, 10] {
            let e = decode_frame(&whole[..whole.len() - cut]).unwrap_err();
            assert!(
                matches!(e.code(), "truncated" | "bad-length"),
                "cut {cut}: {e:?}"
            );
        }
        // Cut inside the masked copy, before any ciphertext.
        let whole = bytes(&[ATTR, ENTRY, KSN_TLV, MASKED_57]);
        assert!(decode_frame(&whole[..whole.len() - 4]).is_err());
    }

    #[test]
    fn keyboard_hex_that_lost_its_last_digits_is_a_cut_read() {
        let text = [ATTR, MASKED_57, CIPHER_57, ENTRY, KSN_TLV, INFO].concat();
        // One digit lost (odd count) and three lost.
        for lost in [1, 3] {
            let t = format!("{}\r\n", &text[..text.len() - lost]);
            let r = decode_frame(t.as_bytes()).unwrap_or_else(|e| panic!("{lost}: {e:?}"));
            assert_eq!(r.format, Format::EmvTlv);
            assert_eq!(r.last4.as_deref(), Some("0119"));
            assert_eq!(r.warnings, ["truncated"]);
        }
        // A whole keyboard line decodes without the warning.
        let r = decode_frame(format!("{text}\r\n").as_bytes()).unwrap();
        assert!(r.warnings.is_empty());
        // Odd hex whose card data is what was cut stays an error.
        let text = [ATTR, ENTRY, KSN_TLV, MASKED_57, CIPHER_57].concat();
        assert!(decode_frame(&text.as_bytes()[..text.len() - 1]).is_err());
    }
}
