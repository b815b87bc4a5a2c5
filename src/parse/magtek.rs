//! MagTek MagneSafe V5 output: the HID input report (§3.1) and keyboard/serial text at
//! security level 3/4 (§3.2). Level 2 is plain track text (see `tracks`). MagTek encrypts from
//! start to end sentinel without LRC, under the PIN variant by default.
use super::tracks::{mask_track, masked_ref, scan_tracks};
use super::ParseError;
use crate::card::{
    CardRead, CipherKind, EncBlock, EncTarget, EntryMode, Format, KeyVariant, Ksn, SecretText,
    TrackInfo, TrackStatus,
};

/// Bytes of the report up to and including the absolute track lengths.
pub const HID_MIN_LEN: usize = 856;
const FIELD: usize = 112;

fn field(r: &[u8], at: usize, len: usize) -> Result<&[u8], ParseError> {
    r.get(at..at + len)
        .ok_or(ParseError::Truncated("MagTek report field"))
}

fn nul_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(b.get(..end).unwrap_or_default())
        .trim()
        .to_string()
}

/// Clear track text in a field that should hold ciphertext (encryption off).
fn clear_text(b: &[u8]) -> Option<String> {
    let first = *b.first()?;
    if !matches!(first, b'%' | b';' | b'+') {
        return None;
    }
    let es = b.iter().position(|&c| c == b'?')?;
    let t = b.get(..=es)?;
    t.iter()
        .all(|c| (0x20..0x60).contains(c))
        .then(|| String::from_utf8_lossy(t).into_owned())
}

/// Masked PAN, name, expiry into the read (Track 2 first for the shared fields).
fn apply_masked(r: &mut CardRead, masked: &[Option<String>; 3]) {
    let i1 = masked[0].as_deref().map(|m| masked_ref(1, m));
    let i2 = masked[1].as_deref().map(|m| masked_ref(2, m));
    if let Some(n) = i1.and_then(|i| i.name) {
        r.cardholder_name = Some(n.into());
    }
    for info in [i1, i2].into_iter().flatten() {
        if let Some(p) = info.pan {
            r.set_pan_text(p);
        }
        if let Some(e) = info.expiry {
            r.expiry = Some(e.into());
        }
        if let Some(sc) = info.service_code {
            r.service_code = Some(sc.into());
        }
    }
}

/// Whether `b` starts like a MagneSafe V5 report: three decode statuses (0/1), three track
/// lengths up to 112, a card encode type up to 7.
pub fn looks_like_hid_start(b: &[u8]) -> bool {
    let b = if b.first() == Some(&0x01) && b.len() > 7 && b.get(7).is_some_and(|&t| t <= 7) {
        b.get(1..).unwrap_or_default()
    } else {
        b
    };
    b.len() >= 7
        && b.iter().take(3).all(|&s| s <= 1)
        && b.iter().skip(3).take(3).all(|&l| usize::from(l) <= FIELD)
        && b.get(6).is_some_and(|&t| t <= 7)
}

/// A MagneSafe V5 HID input report (report ID byte optional).
pub fn decode_hid(input: &[u8]) -> Result<CardRead, ParseError> {
    let rep = if input.len() >= 889 && input.first() == Some(&0x01) {
        input.get(1..).unwrap_or_default()
    } else {
        input
    };
    if rep.len() < HID_MIN_LEN {
        return Err(ParseError::Truncated("MagTek HID report"));
    }
    let b = |i: usize| rep.get(i).copied().unwrap_or(0);
    let mut r = CardRead::new(Format::MagtekHid);
    r.entry_mode = Some(EntryMode::Swipe);
    r.device_serial = Some(nul_string(field(rep, 477, 16)?))
        .filter(|s| !s.is_empty())
        .map(Into::into);
    let ksn = Ksn::from_bytes(field(rep, 495, 10)?).filter(|k| !k.is_zero());
    let mut masked: [Option<String>; 3] = Default::default();
    let mut clear: [Option<SecretText>; 3] = Default::default();
    #[allow(clippy::needless_range_loop)] // parallel fixed-size arrays
    for i in 0..3 {
        let enc_len = usize::from(b(3 + i));
        let m_len = usize::from(b(505 + i));
        let abs_len = usize::from(b(852 + i));
        if enc_len > FIELD || m_len > FIELD {
            return Err(ParseError::BadLength("MagTek track length over 112"));
        }
        let enc = field(rep, 7 + FIELD * i, enc_len)?;
        let m = field(rep, 508 + FIELD * i, m_len)?;
        let mtext = (m_len > 0).then(|| String::from_utf8_lossy(m).into_owned());
        let status = if b(i) & 1 != 0 {
            TrackStatus::Error
        } else if enc_len > 0 || m_len > 0 {
            TrackStatus::Ok
        } else {
            TrackStatus::Absent
        };
        let mut shown = mtext.clone();
        if status == TrackStatus::Ok && enc_len > 0 {
            match clear_text(enc) {
                // Encryption off: the "encrypted" field holds the clear track.
                Some(t) if ksn.is_none() || !mtext.as_deref().is_some_and(|m| m != t) => {
                    shown = Some(mask_track(&t));
                    clear[i] = Some(SecretText::new(t));
                }
                _ => {
                    r.enc_blocks.push(EncBlock {
                        target: EncTarget::Track(i as u8 + 1),
                        data: enc.to_vec(),
                    });
                    r.plain_lens[i] = (abs_len > 0).then_some(abs_len);
                }
            }
        }
        if let Some(sl) = masked.get_mut(i) {
            *sl = mtext;
        }
        r.tracks[i] = TrackInfo {
            status,
            masked: shown,
        };
    }
    apply_masked(&mut r, &masked);
    finish(&mut r, ksn, clear);
    Ok(r)
}

fn finish(r: &mut CardRead, ksn: Option<Ksn>, clear: [Option<SecretText>; 3]) {
    if clear.iter().any(Option::is_some) {
        r.fill_from_clear(&clear);
        r.clear = clear;
    }
    if !r.enc_blocks.is_empty() {
        r.encrypted = true;
        r.cipher = Some(CipherKind::Tdes);
        r.key_variant = Some(KeyVariant::Pin);
        r.ksn = ksn;
    }
}

/// Whether text is MagTek security level 3/4 output (`tracks|status|…`).
pub fn looks_like_kb(t: &[u8]) -> bool {
    t.contains(&b'|')
}

/// Keyboard/serial text at security level 3/4.
pub fn decode_kb(input: &[u8]) -> Result<CardRead, ParseError> {
    // iDynamo pads with `x`; the message ends with CR.
    let end = input
        .iter()
        .rposition(|c| !matches!(c, b'x' | b'\r' | b'\n' | b' '))
        .map_or(0, |p| p + 1);
    let t = input.get(..end).unwrap_or_default();
    let bar = t
        .iter()
        .position(|&c| c == b'|')
        .ok_or(ParseError::UnknownFormat)?;
    let (tracks_part, rest) = t.split_at(bar);
    let fields: Vec<&[u8]> = rest
        .get(1..)
        .unwrap_or_default()
        .split(|&c| c == b'|')
        .collect();
    // enc status, T1..T3 enc, MP status, MP, serial, session, KSN: at least 9 fields.
    if fields.len() < 9 {
        return Err(ParseError::Truncated("MagTek fields"));
    }
    let f = |i: usize| fields.get(i).copied().unwrap_or_default();
    let hexf = |i: usize| hex::decode(f(i)).map_err(|_| ParseError::BadHex);
    let mut r = CardRead::new(Format::MagtekKb);
    r.entry_mode = Some(EntryMode::Swipe);
    let mut masked: [Option<String>; 3] = Default::default();
    if tracks_part.iter().any(|c| matches!(c, b'%' | b';' | b'+')) {
        for st in scan_tracks(tracks_part)? {
            let i = usize::from(st.number.clamp(1, 3) - 1);
            r.tracks[i] = TrackInfo {
                status: if st.error {
                    TrackStatus::Error
                } else {
                    TrackStatus::Ok
                },
                masked: Some(st.text.expose().to_string()),
            };
            if !st.error {
                masked[i] = Some(st.text.expose().to_string());
            }
        }
    }
    #[allow(clippy::needless_range_loop)] // parallel fixed-size arrays
    for i in 0..3 {
        let enc = hexf(1 + i)?;
        if !enc.is_empty() {
            if r.tracks[i].status == TrackStatus::Absent {
                r.tracks[i].status = TrackStatus::Ok;
            }
            r.plain_lens[i] = masked[i].as_ref().map(String::len);
            r.enc_blocks.push(EncBlock {
                target: EncTarget::Track(i as u8 + 1),
                data: enc,
            });
        }
    }
    let serial = String::from_utf8_lossy(f(6));
    let serial = serial.trim();
    r.device_serial = (!serial.is_empty()).then(|| serial.into());
    let ksn = Ksn::from_bytes(&hexf(8)?).filter(|k| !k.is_zero());
    apply_masked(&mut r, &masked);
    finish(&mut r, ksn, Default::default());
    Ok(r)
}
