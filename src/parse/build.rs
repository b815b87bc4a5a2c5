//! Frame builders, the inverse of each decoder: for the synthesizer and round-trip tests.
//! Sans-io. Callers supply clear tracks (sentinel through end sentinel, no LRC) and, for
//! encrypting formats, ciphertext they made themselves; builders compute lengths, LRC,
//! checksums, CRC and masking as the readers do.
use super::tracks::lrc;
use super::vivo::crc16;
use crate::card::{CipherKind, Ksn};

/// Track text plus its LRC character.
pub fn with_lrc(track: u8, text: &str) -> String {
    let mut s = text.to_string();
    s.push(char::from(lrc(track, text.as_bytes())));
    s
}

/// Plain wedge text: the tracks back to back (optionally each with its LRC), then CR.
pub fn plain_tracks(tracks: &[Option<&str>; 3], lrcs: bool) -> String {
    let mut s = String::new();
    for (i, t) in tracks.iter().enumerate() {
        if let Some(t) = t {
            if lrcs {
                s.push_str(&with_lrc(i as u8 + 1, t));
            } else {
                s.push_str(t);
            }
        }
    }
    s.push('\r');
    s
}

/// MagTek security level 2 output: `%…?;…?+…?` and CR, no LRC.
pub fn magtek_sl2(tracks: &[Option<&str>; 3]) -> String {
    plain_tracks(tracks, false)
}

fn mask_pan(pan: &str, head: usize, mask: char) -> String {
    let n = pan.len();
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < head || i + 4 >= n { c } else { mask })
        .collect()
}

/// ID TECH masking: PAN first 4 / last 4, format code, expiry and discretionary as `*`, name
/// kept, and the LRC position `*` (rule 2).
pub fn idtech_mask(track: u8, text: &str) -> String {
    let body = text.get(1..).unwrap_or("");
    let ss = text.get(..1).unwrap_or("");
    let body = body.strip_suffix('?').unwrap_or(body);
    let stars = |s: &str| "*".repeat(s.len());
    let out = if track == 1 {
        let rest = body.get(1..).unwrap_or("");
        let mut p = rest.splitn(3, '^');
        let pan = p.next().unwrap_or("");
        match (p.next(), p.next()) {
            (Some(name), Some(tail)) => {
                format!("%*{}^{name}^{}", mask_pan(pan, 4, '*'), stars(tail))
            }
            _ => format!("%*{}", stars(rest)),
        }
    } else {
        match body.split_once('=') {
            Some((pan, tail)) => format!("{ss}{}={}", mask_pan(pan, 4, '*'), stars(tail)),
            None => format!("{ss}{}", stars(body)),
        }
    };
    format!("{out}?*")
}

/// MagTek masking: PAN first 6 / last 4 with `0`, expiry in clear, the rest `0`, no LRC.
pub fn magtek_mask(track: u8, text: &str) -> String {
    let ss = text.get(..1).unwrap_or("");
    let body = text.get(1..).unwrap_or("");
    let body = body.strip_suffix('?').unwrap_or(body);
    let zeros = |s: &str| "0".repeat(s.len());
    let keep_expiry = |tail: &str| {
        let e = tail.get(..4).unwrap_or(tail);
        format!("{e}{}", zeros(tail.get(e.len()..).unwrap_or("")))
    };
    let out = if track == 1 {
        let fc = body.get(..1).unwrap_or("");
        let rest = body.get(1..).unwrap_or("");
        let mut p = rest.splitn(3, '^');
        let pan = p.next().unwrap_or("");
        match (p.next(), p.next()) {
            (Some(name), Some(tail)) => {
                format!(
                    "%{fc}{}^{name}^{}",
                    mask_pan(pan, 6, '0'),
                    keep_expiry(tail)
                )
            }
            _ => format!("%{fc}{}", zeros(rest)),
        }
    } else {
        match body.split_once('=') {
            Some((pan, tail)) => format!("{ss}{}={}", mask_pan(pan, 6, '0'), keep_expiry(tail)),
            None => format!("{ss}{}", zeros(body)),
        }
    };
    format!("{out}?")
}

/// What an ID TECH frame carries. `tracks` are clear (no LRC); the frame's lengths include
/// the LRC. `enc` are whole ciphertext blocks (enhanced: per track; original: `enc[0]` holds
/// the joined chain). Hashes are put in as given.
#[derive(Clone, Debug, Default)]
pub struct IdtechSpec<'a> {
    pub tracks: [Option<&'a str>; 3],
    pub enc: [Option<Vec<u8>>; 3],
    pub hashes: [Option<[u8; 20]>; 3],
    pub serial: Option<&'a str>,
    pub ksn: Option<Ksn>,
    pub aes: bool,
    pub pin_key: bool,
    /// Tracks the reader failed to read (status bit clear, sampling bit set).
    pub errors: [bool; 3],
}

fn track_len(t: &Option<&str>) -> u8 {
    t.map_or(0, |t| u8::try_from(t.len() + 1).unwrap_or(u8::MAX))
}

/// The card-data fields of an enhanced frame, in order: (is_ascii, bytes).
fn enhanced_fields(s: &IdtechSpec<'_>) -> Vec<(bool, Vec<u8>)> {
    let mut ok = 0u8;
    let mut f8 = 0x00u8;
    let mut f9 = 0x00u8;
    for i in 0..3 {
        if s.tracks[i].is_some() {
            ok |= 1 << i;
            f8 |= 1 << i;
        }
        if s.errors[i] {
            ok |= 8 << i;
        }
        if s.enc[i].is_some() {
            f9 |= 1 << i;
        }
        if s.hashes[i].is_some() {
            f9 |= 8 << i;
        }
    }
    let status = (ok & 0x07) | ((ok & 0x07) << 3) | (ok & 0x38);
    if s.aes {
        f8 |= 0x10;
    }
    if s.pin_key {
        f8 |= 0x40;
    }
    if s.serial.is_some() {
        f8 |= 0x80;
    }
    if s.ksn.is_some() {
        f9 |= 0x80;
    }
    let lens = [0, 1, 2].map(|i| track_len(&s.tracks[i]));
    let mut out = vec![(false, vec![0x80, status, lens[0], lens[1], lens[2], f8, f9])];
    for (i, t) in s.tracks.iter().enumerate() {
        if let Some(t) = t {
            out.push((true, idtech_mask(i as u8 + 1, t).into_bytes()));
        }
    }
    for e in s.enc.iter().flatten() {
        out.push((false, e.clone()));
    }
    for h in s.hashes.iter().flatten() {
        out.push((false, h.to_vec()));
    }
    if let Some(sn) = s.serial {
        let mut b = sn.as_bytes().to_vec();
        b.resize(10, 0);
        out.push((true, b));
    }
    if let Some(k) = &s.ksn {
        out.push((false, k.as_bytes().to_vec()));
    }
    out
}

fn original_fields(s: &IdtechSpec<'_>) -> Vec<(bool, Vec<u8>)> {
    let ok = (0..3).fold(0u8, |a, i| {
        a | if s.tracks[i].is_some() { 1 << i } else { 0 }
    });
    let lens = [0, 1, 2].map(|i| track_len(&s.tracks[i]));
    let mut out = vec![(false, vec![0x00, ok, lens[0], lens[1], lens[2]])];
    for (i, t) in s.tracks.iter().enumerate() {
        if let Some(t) = t {
            out.push((true, idtech_mask(i as u8 + 1, t).into_bytes()));
        }
    }
    if let Some(e) = &s.enc[0] {
        out.push((false, e.clone()));
        for (i, t) in s.tracks.iter().enumerate().take(2) {
            if t.is_some() {
                out.push((false, s.hashes[i].unwrap_or([0; 20]).to_vec()));
            }
        }
        if let Some(k) = &s.ksn {
            out.push((false, k.as_bytes().to_vec()));
        }
    }
    out
}

fn binary_frame(fields: &[(bool, Vec<u8>)]) -> Vec<u8> {
    let data: Vec<u8> = fields.iter().flat_map(|(_, b)| b.iter().copied()).collect();
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX).to_le_bytes();
    let (x, s) = data
        .iter()
        .fold((0u8, 0u8), |(x, s), &b| (x ^ b, s.wrapping_add(b)));
    let mut f = vec![0x02, len[0], len[1]];
    f.extend_from_slice(&data);
    f.extend_from_slice(&[x, s, 0x03]);
    f
}

/// Keyboard mode (rule 3): binary fields as hex, ASCII fields raw (the serial as hex),
/// length/LRC/sum over the characters as sent.
fn keyboard_frame(fields: &[(bool, Vec<u8>)], serial_at: Option<usize>) -> String {
    let mut card = String::new();
    for (i, (ascii, b)) in fields.iter().enumerate() {
        if *ascii && Some(i) != serial_at {
            card.push_str(&String::from_utf8_lossy(b));
        } else {
            card.push_str(&hex::encode_upper(b));
        }
    }
    let len = u16::try_from(card.len()).unwrap_or(u16::MAX).to_le_bytes();
    let (x, s) = card
        .bytes()
        .fold((0u8, 0u8), |(x, s), b| (x ^ b, s.wrapping_add(b)));
    format!(
        "02{}{card}{}03\r",
        hex::encode_upper(len),
        hex::encode_upper([x, s])
    )
}

fn serial_index(fields: &[(bool, Vec<u8>)], s: &IdtechSpec<'_>) -> Option<usize> {
    s.serial?;
    let ksn = usize::from(s.ksn.is_some());
    fields.len().checked_sub(1 + ksn)
}

pub fn idtech_enhanced(s: &IdtechSpec<'_>) -> Vec<u8> {
    binary_frame(&enhanced_fields(s))
}

pub fn idtech_enhanced_keyboard(s: &IdtechSpec<'_>) -> String {
    let f = enhanced_fields(s);
    keyboard_frame(&f, serial_index(&f, s))
}

pub fn idtech_original(s: &IdtechSpec<'_>) -> Vec<u8> {
    binary_frame(&original_fields(s))
}

pub fn idtech_original_keyboard(s: &IdtechSpec<'_>) -> String {
    keyboard_frame(&original_fields(s), None)
}

/// What a MagTek frame carries: clear tracks (masked by the builder), ciphertext per track
/// (made by the caller from the clear track, no LRC), KSN, serial.
#[derive(Clone, Debug, Default)]
pub struct MagtekSpec<'a> {
    pub tracks: [Option<&'a str>; 3],
    pub enc: [Option<Vec<u8>>; 3],
    pub errors: [bool; 3],
    pub serial: Option<&'a str>,
    pub ksn: Option<Ksn>,
}

/// A MagneSafe V5 HID input report (888 bytes, report version 1, no report ID).
pub fn magtek_hid(s: &MagtekSpec<'_>) -> Vec<u8> {
    let mut r = vec![0u8; 888];
    let mut put = |at: usize, b: &[u8]| {
        if let Some(dst) = r.get_mut(at..at + b.len()) {
            dst.copy_from_slice(b);
        }
    };
    for i in 0..3 {
        put(i, &[u8::from(s.errors[i])]);
        if let Some(e) = &s.enc[i] {
            let e = e.get(..e.len().min(112)).unwrap_or_default();
            put(3 + i, &[e.len() as u8]);
            put(7 + 112 * i, e);
        }
        if let Some(t) = s.tracks[i] {
            let m = magtek_mask(i as u8 + 1, t);
            let m = m.get(..m.len().min(112)).unwrap_or_default();
            put(505 + i, &[m.len() as u8]);
            put(508 + 112 * i, m.as_bytes());
            put(852 + i, &[t.len().min(255) as u8]);
        }
    }
    if let Some(sn) = s.serial {
        put(
            477,
            sn.as_bytes().get(..sn.len().min(15)).unwrap_or_default(),
        );
    }
    if let Some(k) = &s.ksn {
        put(493, &[0x00, 0x06]);
        put(495, k.as_bytes().get(..10).unwrap_or_default());
    }
    put(887, &[1]);
    r
}

/// MagTek keyboard/serial security level 3 text.
pub fn magtek_sl3(s: &MagtekSpec<'_>) -> String {
    let mut out = String::new();
    for (i, t) in s.tracks.iter().enumerate() {
        let ss = ["%", ";", "+"][i];
        if s.errors[i] {
            out.push_str(ss);
            out.push_str("E?");
        } else if let Some(t) = t {
            out.push_str(&magtek_mask(i as u8 + 1, t));
        }
    }
    let enc = |i: usize| {
        s.enc[i]
            .as_deref()
            .map(hex::encode_upper)
            .unwrap_or_default()
    };
    let ksn = s.ksn.as_ref().map(Ksn::to_hex).unwrap_or_default();
    out.push_str(&format!(
        "|0000|{}|{}|{}|||{}||{ksn}|||0000\r",
        enc(0),
        enc(1),
        enc(2),
        s.serial.unwrap_or("")
    ));
    out
}

/// One BER-TLV object (short or long-form length).
pub fn tlv(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = tag
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n <= 0xFF {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(n.min(0xFFFF) as u16).to_be_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// A ViVOtech2 frame around `data` (CRC high byte first).
pub fn vivotech2(command: u8, status: u8, data: &[u8]) -> Vec<u8> {
    let mut f = b"ViVOtech2\0".to_vec();
    f.push(command);
    f.push(status);
    f.extend_from_slice(&(data.len().min(0xFFFF) as u16).to_be_bytes());
    f.extend_from_slice(data);
    f.extend_from_slice(&crc16(&f).to_be_bytes());
    f
}

/// A ViVOtech2 swipe response: attribution byte, DFEE23 holding the enhanced MSR frame,
/// DFEE12 KSN, DFEE26 encrypt information.
pub fn vivotech2_msr(msr_frame: &[u8], ksn: Option<&Ksn>, cipher: CipherKind) -> Vec<u8> {
    let attr = 0xC8 | if cipher == CipherKind::Aes { 0x02 } else { 0 };
    let mut data = vec![attr];
    data.extend(tlv(0xDFEE23, msr_frame));
    if let Some(k) = ksn {
        data.extend(tlv(0xDFEE12, k.as_bytes()));
    }
    data.extend(tlv(0xDFEE26, &[0xE8, 0x00]));
    vivotech2(0x02, 0x00, &data)
}

/// A MagTek EMV container (reader-protocols.md §3.3), for the simulator. `clear` are the clear
/// tags under `70`/`F0` (TLV-encoded), `ciphertext` the DFDF59 bytes the caller made (TDES-CBC
/// of `FC { F2 { … } }` padded with `pad_count` zero bytes); the MAC is supplied too. The
/// prefix counts the F9 object, the zero padding (to whole 8-byte blocks from the prefix on)
/// and the MAC.
pub struct MagtekContainer<'a> {
    pub batch: bool,
    pub serial: &'a [u8],
    pub clear: &'a [u8],
    pub ciphertext: &'a [u8],
    pub ksn: &'a [u8],
    pub pad_count: u8,
    pub mac: [u8; 4],
}

pub fn magtek_container(c: &MagtekContainer<'_>) -> Vec<u8> {
    let mut f8 = tlv(0xDFDF59, c.ciphertext);
    f8.extend(tlv(0xDFDF56, c.ksn));
    f8.extend(tlv(0xDFDF57, &[0x00]));
    f8.extend(tlv(0xDFDF58, &[c.pad_count]));
    let mut inner = c.clear.to_vec();
    inner.extend(tlv(0xF8, &f8));
    let mut f9 = tlv(0xDFDF54, c.ksn);
    f9.extend(tlv(0xDFDF55, &[0x00]));
    f9.extend(tlv(0xDFDF25, c.serial));
    f9.extend(tlv(0xFA, &tlv(if c.batch { 0xF0 } else { 0x70 }, &inner)));
    let f9 = tlv(0xF9, &f9);
    let pad = (8 - (2 + f9.len()) % 8) % 8;
    let total = f9.len() + pad + 4;
    let mut out = u16::try_from(total)
        .unwrap_or(u16::MAX)
        .to_be_bytes()
        .to_vec();
    out.extend(f9);
    out.resize(out.len() + pad, 0);
    out.extend(c.mac);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_like_the_sample() {
        // The UniMag II sample's masked tracks, from its published clear tracks.
        assert_eq!(
            idtech_mask(1, "%B5150710200107861^PAYPASS/MASTERCARD^090910140000202?"),
            "%*5150********7861^PAYPASS/MASTERCARD^***************?*"
        );
        assert_eq!(
            idtech_mask(2, ";5150710200107861=090910140000202?"),
            ";5150********7861=***************?*"
        );
        assert_eq!(
            magtek_mask(2, ";5452300551227189=080432100000007250?"),
            ";5452300000007189=080400000000000000?"
        );
    }
}
