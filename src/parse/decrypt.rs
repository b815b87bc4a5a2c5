//! Decryption of a `CardRead` around a pluggable cipher: key usage from the frame, plaintext
//! lengths, SHA-1 checks, nibble-packed tracks, chip tags as track text. The cipher itself
//! (DUKPT) lives in the crypto module and comes in through [`TrackDecryptor`].
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

use super::tracks::{chip_track1, chip_track2, scan_tracks, unpack_nibbles};
use super::ParseError;
use crate::card::{CardRead, CipherKind, EncTarget, KeyVariant, Ksn, SecretText};

/// Why a decryptor could not decrypt. Never holds key or data bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("no key for this KSN")]
    NoKey,
    #[error("ciphertext length is not a whole number of blocks")]
    BadLength,
    #[error("{0}")]
    Other(&'static str),
}

/// Decrypts one CBC chain (IV zero) under the key the KSN and variant give.
pub trait TrackDecryptor {
    fn decrypt(
        &self,
        ksn: &Ksn,
        variant: KeyVariant,
        cipher: CipherKind,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError>;
}

fn failed(why: &str) -> ParseError {
    ParseError::DecryptFailed(why.to_string())
}

/// Plaintext as track text (sentinel through end sentinel, LRC excluded), ASCII or packed.
fn track_text(track: u8, pt: &[u8]) -> Option<String> {
    if pt.first().is_some_and(|b| b >> 4 == 0x0B) {
        return unpack_nibbles(pt);
    }
    let es = pt.iter().position(|&b| b == b'?')?;
    let body = pt.get(..=es)?;
    let ok_start = match track {
        1 => body.first() == Some(&b'%'),
        _ => matches!(body.first(), Some(b';' | b'+')),
    };
    let in_set = body.iter().all(|&c| {
        if track == 1 {
            (0x20..=0x5F).contains(&c)
        } else {
            (0x30..=0x3F).contains(&c) || c == b'+'
        }
    });
    (ok_start && in_set).then(|| String::from_utf8_lossy(body).into_owned())
}

fn check_hash(read: &CardRead, idx: usize, plain: &[u8]) -> Result<(), ParseError> {
    if let Some(Some(h)) = read.hashes.get(idx) {
        let got: [u8; 20] = Sha1::digest(plain).into();
        if &got != h {
            return Err(failed("track hash does not match the plaintext"));
        }
    }
    Ok(())
}

/// One track's plaintext cut to its length, hash-checked, turned into text.
fn one_track(read: &CardRead, idx: usize, pt: &[u8]) -> Result<Option<String>, ParseError> {
    let plain = match read.plain_lens.get(idx).copied().flatten() {
        Some(n) if read.plain_has_lrc || n <= pt.len() => pt
            .get(..n)
            .ok_or_else(|| failed("plaintext shorter than the track length"))?,
        _ => pt,
    };
    check_hash(read, idx, plain)?;
    let n = u8::try_from(idx + 1).unwrap_or(1);
    Ok(track_text(n, plain))
}

/// The value of a chip tag from its plaintext: VP3300/NEO 2 encrypt tag+length+value,
/// Augusta keyboard mode the value only (length from the masked copy).
fn chip_value(tag: u32, value_len: Option<usize>, pt: &[u8]) -> Vec<u8> {
    let tag_bytes: Vec<u8> = tag
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    if let Some(rest) = pt.strip_prefix(tag_bytes.as_slice()) {
        if let Some((&l, v)) = rest.split_first() {
            if l < 0x80 {
                if let Some(val) = v.get(..usize::from(l)) {
                    return val.to_vec();
                }
            }
        }
    }
    match value_len.and_then(|n| pt.get(..n)) {
        Some(v) => v.to_vec(),
        None => pt.to_vec(),
    }
}

/// Decrypts every block of `read`; `decrypted` and the clear fields are filled in the copy.
pub fn decrypt_read(
    read: &CardRead,
    dec: &dyn TrackDecryptor,
    variant_override: Option<KeyVariant>,
) -> Result<CardRead, ParseError> {
    let mut out = read.clone();
    if read.enc_blocks.is_empty() {
        return Ok(out);
    }
    let ksn = read
        .ksn
        .as_ref()
        .ok_or_else(|| failed("the frame has no KSN"))?;
    let variant = variant_override
        .or(read.key_variant)
        .unwrap_or(KeyVariant::Data);
    let cipher = read.cipher.unwrap_or(CipherKind::Tdes);
    let mut tracks: [Option<String>; 3] = Default::default();
    for block in &read.enc_blocks {
        let pt = dec
            .decrypt(ksn, variant, cipher, &block.data)
            .map_err(|e| ParseError::DecryptFailed(e.to_string()))?;
        match block.target {
            EncTarget::Track(n) => {
                let idx = usize::from(n.clamp(1, 3) - 1);
                let text = one_track(read, idx, &pt)?;
                if text.is_none() {
                    return Err(failed("plaintext is not track data"));
                }
                if let Some(slot) = tracks.get_mut(idx) {
                    *slot = text;
                }
            }
            EncTarget::Joined => {
                // One CBC chain over T1‖T2[‖T3]: cut by the length fields (rule 5).
                let mut at = 0usize;
                #[allow(clippy::needless_range_loop)] // parallel fixed-size arrays
                for idx in 0..3 {
                    let Some(n) = read.plain_lens.get(idx).copied().flatten() else {
                        continue;
                    };
                    let end = at.checked_add(n).ok_or_else(|| failed("track lengths"))?;
                    let part = pt
                        .get(at..end)
                        .ok_or_else(|| failed("plaintext shorter than the track lengths"))?;
                    check_hash(read, idx, part)?;
                    tracks[idx] = track_text(idx as u8 + 1, part);
                    at = end;
                }
            }
            EncTarget::Tag { tag, value_len } => {
                let v = chip_value(tag, value_len, &pt);
                match tag {
                    0x57 | 0x9F6B => tracks[1] = chip_track2(&v, false),
                    0x56 => tracks[0] = chip_track1(&v),
                    0xDFEF4D => {
                        let end = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                        if let Ok(found) = scan_tracks(v.get(..end).unwrap_or_default()) {
                            for t in found.into_iter().filter(|t| !t.error) {
                                let idx = usize::from(t.number.clamp(1, 3) - 1);
                                tracks[idx] = Some(t.text.expose().to_string());
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    if tracks.iter().all(Option::is_none) {
        return Err(failed("plaintext is not track data"));
    }
    let secret = tracks.map(|t| t.map(SecretText::new));
    out.fill_from_clear(&secret);
    out.decrypted = Some(secret);
    out.key_variant = Some(variant);
    Ok(out)
}
