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
fn track_text(track: u8, pt: &[u8]) -> Option<SecretText> {
    if pt.first().is_some_and(|b| b >> 4 == 0x0B) {
        return unpack_nibbles(pt).map(SecretText::from);
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
    // In the track's character set, so ASCII: one exact copy, straight into a zeroizing type.
    let text = std::str::from_utf8(body).ok()?;
    (ok_start && in_set).then(|| SecretText::new(text))
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
fn one_track(read: &CardRead, idx: usize, pt: &[u8]) -> Result<Option<SecretText>, ParseError> {
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
/// The value is clear card data (a PAN, a Track 2 equivalent): zeroed on drop.
fn chip_value(tag: u32, value_len: Option<usize>, pt: &[u8]) -> Zeroizing<Vec<u8>> {
    let tag_bytes: Vec<u8> = tag
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    if let Some(rest) = pt.strip_prefix(tag_bytes.as_slice()) {
        if let Some((&l, v)) = rest.split_first() {
            if l < 0x80 {
                if let Some(val) = v.get(..usize::from(l)) {
                    return Zeroizing::new(val.to_vec());
                }
            }
        }
    }
    Zeroizing::new(match value_len.and_then(|n| pt.get(..n)) {
        Some(v) => v.to_vec(),
        None => pt.to_vec(),
    })
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
    let mut tracks: [Option<SecretText>; 3] = Default::default();
    let mut used = variant;
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
            EncTarget::MagtekTlv { pad } => {
                let mut got = super::magtek_emv::decrypted_tracks(&pt, pad);
                // The spec names the data key; a reader set otherwise (bare variant, PIN
                // variant) still decrypts, and the JSON says which key did.
                if got.is_err() && variant_override.is_none() {
                    for v in [KeyVariant::DataVariant, KeyVariant::Pin] {
                        let Ok(pt2) = dec.decrypt(ksn, v, cipher, &block.data) else {
                            continue;
                        };
                        if let Ok(t) = super::magtek_emv::decrypted_tracks(&pt2, pad) {
                            got = Ok(t);
                            used = v;
                            break;
                        }
                    }
                }
                let [t1, t2] = got?;
                tracks[0] = t1;
                tracks[1] = t2;
            }
            EncTarget::Tag { tag, value_len } => {
                let v = chip_value(tag, value_len, &pt);
                match tag {
                    0x57 | 0x9F6B => tracks[1] = chip_track2(&v, false).map(SecretText::from),
                    0x56 => tracks[0] = chip_track1(&v).map(SecretText::from),
                    0xDFEF4D => {
                        let end = v.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
                        if let Ok(found) = scan_tracks(v.get(..end).unwrap_or_default()) {
                            for t in found.into_iter().filter(|t| !t.error) {
                                let idx = usize::from(t.number.clamp(1, 3) - 1);
                                tracks[idx] = Some(t.text);
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
    let secret = tracks;
    out.fill_from_clear(&secret);
    out.decrypted = Some(secret);
    out.key_variant = Some(used);
    // Shown tracks now come from the clear, under the same rule as masked_pan.
    super::tracks::remask_shown(&mut out);
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::card::{Format, TrackStatus};
    use crate::parse::build::{self, IdtechSpec, MagtekSpec};
    use crate::parse::{decode_frame, idtech};
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
    use std::cell::Cell;

    /// Plain TDES-CBC (IV zero) under one fixed key, ignoring the KSN; insists on a variant.
    pub(crate) struct FixedKey {
        pub key: [u8; 16],
        pub want: Option<KeyVariant>,
        pub calls: Cell<usize>,
    }

    impl FixedKey {
        pub fn new(key: [u8; 16]) -> Self {
            FixedKey {
                key,
                want: None,
                calls: Cell::new(0),
            }
        }
    }

    impl TrackDecryptor for FixedKey {
        fn decrypt(
            &self,
            _ksn: &Ksn,
            variant: KeyVariant,
            _cipher: CipherKind,
            ct: &[u8],
        ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
            self.calls.set(self.calls.get() + 1);
            if self.want.is_some_and(|w| w != variant) {
                return Err(DecryptError::NoKey);
            }
            let mut buf = Zeroizing::new(ct.to_vec());
            cbc::Decryptor::<des::TdesEde2>::new(&self.key.into(), &[0u8; 8].into())
                .decrypt_padded_mut::<NoPadding>(&mut buf)
                .map_err(|_| DecryptError::BadLength)?;
            Ok(buf)
        }
    }

    pub(crate) fn tdes_encrypt(key: &[u8; 16], plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(plain.len().div_ceil(8) * 8, 0);
        let n = buf.len();
        cbc::Encryptor::<des::TdesEde2>::new(key.into(), &[0u8; 8].into())
            .encrypt_padded_mut::<NoPadding>(&mut buf, n)
            .unwrap();
        buf
    }

    const KEY: [u8; 16] = *b"0123456789ABCDEF";
    const T1: &str = "%B4111111111111111^SMITH/JOHN Q.DR^29121010000000123000000?";
    const T2: &str = ";4111111111111111=29121010000012300000?";

    fn ksn() -> Ksn {
        Ksn::from_hex("FFFF9876543210E00001").unwrap()
    }

    /// Clear chip values and track texts are held in zeroizing types from the moment they are
    /// cut out of the plaintext (the annotations are the check: a plain Vec/String will not do).
    #[test]
    fn clear_values_are_held_zeroizing() {
        let v: Zeroizing<Vec<u8>> = chip_value(0x57, None, &[0x57, 0x03, 0x41, 0x11, 0xD2]);
        assert_eq!(v.as_slice(), &[0x41, 0x11, 0xD2]);
        let v: Zeroizing<Vec<u8>> = chip_value(0x5A, Some(2), &[0x41, 0x11, 0x00]);
        assert_eq!(v.as_slice(), &[0x41, 0x11]);
        let t: Option<SecretText> = track_text(2, b";4111=2912?\x00");
        assert_eq!(t.as_ref().map(SecretText::expose), Some(";4111=2912?"));
        let t: Option<SecretText> = track_text(2, &[0xB4, 0x11, 0x1D, 0x29, 0x12, 0xF3]);
        assert_eq!(t.as_ref().map(SecretText::expose), Some(";4111=2912?"));
        assert!(track_text(1, b";4111=2912?").is_none());
    }

    #[test]
    fn sample_04_decrypts_with_its_published_data_key() {
        // Data key for KSN FFFF9876543210E0004A as the sample's source quotes it
        // (camcima/dukpt-php#2, EncryptionKey), expected plaintexts from the sample file.
        let key: [u8; 16] = hex::decode("6220B23D0B06787F73C17FB6FD9590E0")
            .unwrap()
            .try_into()
            .unwrap();
        let bytes = hex::decode(idtech::tests::SAMPLE04).unwrap();
        let r = decode_frame(&bytes).unwrap();
        let mut dec = FixedKey::new(key);
        dec.want = Some(KeyVariant::Data);
        let d = decrypt_read(&r, &dec, None).unwrap();
        let t = d.decrypted.as_ref().unwrap();
        assert_eq!(
            t[0].as_ref().unwrap().expose(),
            "%B5150710200107861^PAYPASS/MASTERCARD^090910140000202?"
        );
        assert_eq!(
            t[1].as_ref().unwrap().expose(),
            ";5150710200107861=090910140000202?"
        );
        assert!(t[2].is_none());
        assert_eq!(d.expiry.as_deref(), Some("0909"));
        assert_eq!(d.service_code.as_deref(), Some("101"));
        assert_eq!(d.last4.as_deref(), Some("7861"));
        let j = d.to_json();
        assert_eq!(j["decrypted"]["3"], serde_json::Value::Null);
    }

    fn enhanced_spec<'a>(hash_ok: bool) -> IdtechSpec<'a> {
        let p1 = build::with_lrc(1, T1);
        let p2 = build::with_lrc(2, T2);
        let mut h2: [u8; 20] = Sha1::digest(p2.as_bytes()).into();
        if !hash_ok {
            h2[0] ^= 1;
        }
        IdtechSpec {
            tracks: [Some(T1), Some(T2), None],
            enc: [
                Some(tdes_encrypt(&KEY, p1.as_bytes())),
                Some(tdes_encrypt(&KEY, p2.as_bytes())),
                None,
            ],
            hashes: [Some(Sha1::digest(p1.as_bytes()).into()), Some(h2), None],
            serial: Some("716T494010"),
            ksn: Some(ksn()),
            ..Default::default()
        }
    }

    #[test]
    fn enhanced_per_track_chains_and_hashes() {
        let frame = build::idtech_enhanced(&enhanced_spec(true));
        let r = decode_frame(&frame).unwrap();
        assert_eq!(r.format, Format::IdtechEnhanced);
        let d = decrypt_read(&r, &FixedKey::new(KEY), None).unwrap();
        let t = d.decrypted.as_ref().unwrap();
        assert_eq!(t[0].as_ref().unwrap().expose(), T1);
        assert_eq!(t[1].as_ref().unwrap().expose(), T2);
        assert_eq!(d.cardholder_name.as_deref(), Some("SMITH/JOHN Q.DR"));
        assert_eq!(d.expiry.as_deref(), Some("2912"));
        // Keyboard text of the same frame decrypts the same.
        let kb = build::idtech_enhanced_keyboard(&enhanced_spec(true));
        let r2 = decode_frame(kb.as_bytes()).unwrap();
        let d2 = decrypt_read(&r2, &FixedKey::new(KEY), None).unwrap();
        assert_eq!(d2.decrypted, d.decrypted);
        // A hash that does not match → decrypt-failed.
        let bad = build::idtech_enhanced(&enhanced_spec(false));
        let r = decode_frame(&bad).unwrap();
        let e = decrypt_read(&r, &FixedKey::new(KEY), None).unwrap_err();
        assert_eq!(e.code(), "decrypt-failed");
        // Wrong key: garbage is not track data.
        let e = decrypt_read(
            &decode_frame(&frame).unwrap(),
            &FixedKey::new([7; 16]),
            None,
        );
        assert_eq!(e.unwrap_err().code(), "decrypt-failed");
    }

    #[test]
    fn original_one_chain_split_by_lengths() {
        let joined = format!("{}{}", build::with_lrc(1, T1), build::with_lrc(2, T2));
        let spec = IdtechSpec {
            tracks: [Some(T1), Some(T2), None],
            enc: [Some(tdes_encrypt(&KEY, joined.as_bytes())), None, None],
            ksn: Some(ksn()),
            ..Default::default()
        };
        let r = decode_frame(&build::idtech_original(&spec)).unwrap();
        assert_eq!(r.format, Format::IdtechOriginal);
        assert_eq!(r.enc_blocks[0].target, EncTarget::Joined);
        let d = decrypt_read(&r, &FixedKey::new(KEY), None).unwrap();
        let t = d.decrypted.unwrap();
        assert_eq!(t[1].as_ref().unwrap().expose(), T2);
        assert_eq!(t[0].as_ref().unwrap().expose(), T1);
    }

    #[test]
    fn field8_bit6_selects_the_pin_key_and_override_wins() {
        let mut spec = enhanced_spec(true);
        spec.pin_key = true;
        let r = decode_frame(&build::idtech_enhanced(&spec)).unwrap();
        assert_eq!(r.key_variant, Some(KeyVariant::Pin));
        let mut dec = FixedKey::new(KEY);
        dec.want = Some(KeyVariant::Pin);
        let tracks = |d: crate::card::CardRead| {
            let t = d.decrypted.unwrap();
            [0, 1].map(|i| t[i].as_ref().unwrap().expose().to_string())
        };
        assert_eq!(tracks(decrypt_read(&r, &dec, None).unwrap()), [T1, T2]);
        dec.want = Some(KeyVariant::DataVariant);
        assert_eq!(
            decrypt_read(&r, &dec, None).unwrap_err().code(),
            "decrypt-failed"
        );
        let d = decrypt_read(&r, &dec, Some(KeyVariant::DataVariant)).unwrap();
        assert_eq!(tracks(d), [T1, T2]);
    }

    #[test]
    fn magtek_pin_variant_no_lrc_and_packed_track2() {
        let packed = [
            0xB4, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x1D, 0x29, 0x12, 0x10, 0x1F,
        ];
        let spec = MagtekSpec {
            tracks: [Some(T1), Some(T2), None],
            enc: [
                Some(tdes_encrypt(&KEY, T1.as_bytes())),
                Some(tdes_encrypt(&KEY, &packed)),
                None,
            ],
            serial: Some("B1234567"),
            ksn: Some(ksn()),
            ..Default::default()
        };
        let mut dec = FixedKey::new(KEY);
        dec.want = Some(KeyVariant::Pin);
        for frame in [
            build::magtek_hid(&spec),
            build::magtek_sl3(&spec).into_bytes(),
        ] {
            let r = decode_frame(&frame).unwrap();
            assert_eq!(r.key_variant, Some(KeyVariant::Pin));
            assert_eq!(r.masked_pan.as_ref().unwrap().as_str(), "411111******1111");
            let d = decrypt_read(&r, &dec, None).unwrap();
            let t = d.decrypted.unwrap();
            assert_eq!(t[0].as_ref().unwrap().expose(), T1);
            assert_eq!(
                t[1].as_ref().unwrap().expose(),
                ";4111111111111111=2912101?"
            );
        }
    }

    #[test]
    fn chip_whole_tlv_and_value_only() {
        let t2eq = hex::decode("4111111111111111D29121010000012300000F").unwrap();
        let masked = hex::decode("4111CCCCCCCC1111D29121010000012300000F").unwrap();
        // VP3300 style: ciphertext of the whole TLV, ID TECH length flags.
        let whole = build::tlv(0x57, &t2eq);
        let ct = tdes_encrypt(&KEY, &whole);
        let mut tl = vec![0x57, 0xA1, masked.len() as u8];
        tl.extend_from_slice(&masked);
        tl.extend_from_slice(&[0x57, 0xC1, ct.len() as u8]);
        tl.extend_from_slice(&ct);
        tl.extend(build::tlv(0xDFEE12, ksn().as_bytes()));
        tl.extend(build::tlv(0x9F39, &[0x07]));
        let mut data = vec![0x41];
        data.extend_from_slice(&tl);
        let frame = build::vivotech2(0x02, 0x00, &data);
        let r = decode_frame(&frame).unwrap();
        assert_eq!(r.format, Format::Vivotech2);
        assert_eq!(r.entry_mode.map(|m| m.code()).as_deref(), Some("07"));
        assert_eq!(
            r.tracks[1].masked.as_deref(),
            // Expiry, service code and discretionary data are not shown, whatever the reader
            // left clear in its masked copy.
            Some(";4111********1111=********************?")
        );
        let d = decrypt_read(&r, &FixedKey::new(KEY), None).unwrap();
        assert_eq!(
            d.decrypted.as_ref().unwrap()[1].as_ref().unwrap().expose(),
            ";4111111111111111=29121010000012300000?"
        );
        assert_eq!(d.expiry.as_deref(), Some("2912"));
        // Augusta keyboard style: value-only ciphertext, masked copy in DFEF5D, bare TLV.
        let mut bare = build::tlv(0xDFEF5D, &masked);
        bare.extend(build::tlv(0x57, &tdes_encrypt(&KEY, &t2eq)));
        bare.extend(build::tlv(0xDFEE12, ksn().as_bytes()));
        let r = decode_frame(&bare).unwrap();
        assert_eq!(r.format, Format::EmvTlv);
        assert_eq!(r.tracks[1].status, TrackStatus::Ok);
        let d = decrypt_read(&r, &FixedKey::new(KEY), None).unwrap();
        assert_eq!(
            d.decrypted.as_ref().unwrap()[1].as_ref().unwrap().expose(),
            ";4111111111111111=29121010000012300000?"
        );
    }
}
