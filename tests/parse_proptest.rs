//! Property tests: no decoder panics or loops on arbitrary bytes, and every builder round-trips
//! through detection and decoding.
use cardlane::card::{CipherKind, Format, KeyVariant, Ksn, TrackStatus};
use cardlane::parse::build::{self, IdtechSpec, MagtekSpec};
use cardlane::parse::{
    decode_frame, decrypt_read, emv, idtech, magtek, split_frames, tlv, tracks, vivo, DecryptError,
    TrackDecryptor,
};
use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use proptest::prelude::*;
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

const KEY: [u8; 16] = *b"cardlane-testkey";

struct FixedKey;
impl TrackDecryptor for FixedKey {
    fn decrypt(
        &self,
        _: &Ksn,
        _: KeyVariant,
        _: CipherKind,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        let mut b = Zeroizing::new(ct.to_vec());
        cbc::Decryptor::<des::TdesEde2>::new(&KEY.into(), &[0u8; 8].into())
            .decrypt_padded_mut::<NoPadding>(&mut b)
            .map_err(|_| DecryptError::BadLength)?;
        Ok(b)
    }
}

fn enc(plain: &[u8]) -> Vec<u8> {
    let mut b = plain.to_vec();
    b.resize(plain.len().div_ceil(8) * 8, 0);
    let n = b.len();
    cbc::Encryptor::<des::TdesEde2>::new(&KEY.into(), &[0u8; 8].into())
        .encrypt_padded_mut::<NoPadding>(&mut b, n)
        .unwrap();
    b
}

/// Garbage decryptor: returns its input, so decrypt_read sees arbitrary plaintext.
struct Echo;
impl TrackDecryptor for Echo {
    fn decrypt(
        &self,
        _: &Ksn,
        _: KeyVariant,
        _: CipherKind,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        Ok(Zeroizing::new(ct.to_vec()))
    }
}

fn run_all(b: &[u8]) {
    for f in split_frames(b) {
        if let Ok(r) = decode_frame(f) {
            let _ = r.to_json();
            let _ = decrypt_read(&r, &Echo, None);
        }
    }
    let _ = idtech::decode_binary(b);
    let _ = idtech::decode_keyboard(b);
    let _ = magtek::decode_hid(b);
    let _ = magtek::decode_kb(b);
    let _ = vivo::decode(b);
    let _ = emv::decode_bare(b);
    let _ = tracks::decode_tracks(b);
    let _ = tlv::parse(b);
    let _ = tracks::unpack_nibbles(b);
    let _ = tracks::chip_track2(b, true);
    let _ = tracks::chip_track1(b);
}

#[derive(Debug, Clone)]
struct Card {
    pan: String,
    name: String,
    expiry: String,
    service: String,
    d1: String,
    d2: String,
}

impl Card {
    fn t1(&self) -> String {
        format!(
            "%B{}^{}^{}{}{}?",
            self.pan, self.name, self.expiry, self.service, self.d1
        )
    }
    fn t2(&self) -> String {
        format!(";{}={}{}{}?", self.pan, self.expiry, self.service, self.d2)
    }
}

fn card() -> impl Strategy<Value = Card> {
    (
        "[3-6][0-9]{12,18}",
        "[A-Z]{1,10}/[A-Z]{1,10}",
        "[0-9]{2}(0[1-9]|1[0-2])",
        "[125679][0-9]{2}",
        "[0-9]{0,12}",
        "[0-9]{0,8}",
    )
        .prop_map(|(pan, name, expiry, service, d1, d2)| Card {
            pan,
            name,
            expiry,
            service,
            d1,
            d2,
        })
}

fn ksn() -> impl Strategy<Value = Ksn> {
    proptest::collection::vec(any::<u8>(), 10).prop_map(|b| Ksn::from_bytes(&b).unwrap())
}

fn idtech_masked_pan(pan: &str) -> String {
    let n = pan.len();
    pan.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i + 4 >= n { c } else { '*' })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..1200)) {
        run_all(&b);
    }

    #[test]
    fn arbitrary_text_never_panics(s in "[ -~\r\n]{0,300}") {
        run_all(s.as_bytes());
    }

    #[test]
    fn damaged_frames_never_panic(c in card(), k in ksn(), cut in 0usize..400, flip in 0usize..400, x in 1u8..) {
        let (t1, t2) = (c.t1(), c.t2());
        let spec = IdtechSpec {
            tracks: [Some(&t1), Some(&t2), None],
            enc: [Some(enc(build::with_lrc(1, &t1).as_bytes())), Some(enc(build::with_lrc(2, &t2).as_bytes())), None],
            ksn: Some(k.clone()),
            serial: Some("ABCDEFGHIJ"),
            ..Default::default()
        };
        let frames = [
            build::idtech_enhanced(&spec),
            build::idtech_enhanced_keyboard(&spec).into_bytes(),
            build::idtech_original(&spec),
            build::vivotech2_msr(&build::idtech_enhanced(&spec), Some(&k), CipherKind::Tdes),
            build::magtek_hid(&MagtekSpec { tracks: [Some(&t1), Some(&t2), None], enc: [Some(enc(t1.as_bytes())), None, None], ksn: Some(k.clone()), ..Default::default() }),
        ];
        for f in frames {
            let mut m = f.clone();
            if let Some(b) = m.get_mut(flip % f.len()) { *b ^= x; }
            run_all(&m);
            run_all(&f[..cut.min(f.len())]);
        }
    }

    #[test]
    fn plain_tracks_round_trip(c in card(), lrcs in any::<bool>(), with_t1 in any::<bool>()) {
        let (t1, t2) = (c.t1(), c.t2());
        let text = build::plain_tracks(&[with_t1.then_some(t1.as_str()), Some(&t2), None], lrcs);
        let r = decode_frame(text.as_bytes()).unwrap();
        prop_assert_eq!(r.format, Format::Tracks);
        prop_assert_eq!(r.clear[1].as_ref().unwrap().expose(), t2.as_str());
        if with_t1 {
            prop_assert_eq!(r.clear[0].as_ref().unwrap().expose(), t1.as_str());
            prop_assert_eq!(r.cardholder_name.as_deref(), Some(c.name.as_str()));
        }
        prop_assert_eq!(r.last4.as_deref(), Some(&c.pan[c.pan.len() - 4..]));
        prop_assert_eq!(r.expiry.as_deref(), Some(c.expiry.as_str()));
        prop_assert_eq!(r.service_code.as_deref(), Some(c.service.as_str()));
    }

    #[test]
    fn idtech_round_trip_and_decrypt(c in card(), k in ksn(), hashes in any::<bool>(), kb in any::<bool>(), original in any::<bool>()) {
        let (t1, t2) = (c.t1(), c.t2());
        let (p1, p2) = (build::with_lrc(1, &t1), build::with_lrc(2, &t2));
        let h = |p: &str| -> [u8; 20] { Sha1::digest(p.as_bytes()).into() };
        let encs = if original {
            [Some(enc(format!("{p1}{p2}").as_bytes())), None, None]
        } else {
            [Some(enc(p1.as_bytes())), Some(enc(p2.as_bytes())), None]
        };
        let spec = IdtechSpec {
            tracks: [Some(&t1), Some(&t2), None],
            enc: encs,
            hashes: if hashes || original { [Some(h(&p1)), Some(h(&p2)), None] } else { [None; 3] },
            serial: (!original).then_some("716T494010"),
            ksn: Some(k.clone()),
            ..Default::default()
        };
        let frame = match (original, kb) {
            (false, false) => build::idtech_enhanced(&spec),
            (false, true) => build::idtech_enhanced_keyboard(&spec).into_bytes(),
            (true, false) => build::idtech_original(&spec),
            (true, true) => build::idtech_original_keyboard(&spec).into_bytes(),
        };
        let r = decode_frame(&frame).unwrap();
        prop_assert_eq!(r.format, if original { Format::IdtechOriginal } else { Format::IdtechEnhanced });
        prop_assert_eq!(r.ksn.as_ref(), Some(&k));
        let masked = idtech_masked_pan(&c.pan);
        prop_assert_eq!(r.masked_pan.as_ref().unwrap().as_str(), masked.as_str());
        prop_assert_eq!(r.cardholder_name.as_deref(), Some(c.name.as_str()));
        prop_assert_eq!(r.tracks[0].status, TrackStatus::Ok);
        prop_assert_eq!(r.tracks[2].status, TrackStatus::Absent);
        if !original {
            prop_assert_eq!(r.device_serial.as_deref(), Some("716T494010"));
        }
        let d = decrypt_read(&r, &FixedKey, None).unwrap();
        let t = d.decrypted.as_ref().unwrap();
        prop_assert_eq!(t[0].as_ref().unwrap().expose(), t1.as_str());
        prop_assert_eq!(t[1].as_ref().unwrap().expose(), t2.as_str());
        prop_assert_eq!(d.expiry.as_deref(), Some(c.expiry.as_str()));
        prop_assert_eq!(d.service_code.as_deref(), Some(c.service.as_str()));
    }

    #[test]
    fn magtek_and_vivo_round_trip(c in card(), k in ksn(), hid in any::<bool>()) {
        let (t1, t2) = (c.t1(), c.t2());
        let spec = MagtekSpec {
            tracks: [Some(&t1), Some(&t2), None],
            enc: [Some(enc(t1.as_bytes())), Some(enc(t2.as_bytes())), None],
            serial: Some("B1234"),
            ksn: Some(k.clone()),
            ..Default::default()
        };
        let frame = if hid { build::magtek_hid(&spec) } else { build::magtek_sl3(&spec).into_bytes() };
        let r = decode_frame(&frame).unwrap();
        prop_assert_eq!(r.format, if hid { Format::MagtekHid } else { Format::MagtekKb });
        prop_assert_eq!(r.key_variant, Some(KeyVariant::Pin));
        prop_assert_eq!(r.expiry.as_deref(), Some(c.expiry.as_str()));
        prop_assert_eq!(r.last4.as_deref(), Some(&c.pan[c.pan.len() - 4..]));
        let d = decrypt_read(&r, &FixedKey, None).unwrap();
        prop_assert_eq!(d.decrypted.as_ref().unwrap()[1].as_ref().unwrap().expose(), t2.as_str());

        let p2 = build::with_lrc(2, &t2);
        let ispec = IdtechSpec { tracks: [None, Some(&t2), None], enc: [None, Some(enc(p2.as_bytes())), None], ksn: Some(k.clone()), ..Default::default() };
        let v = build::vivotech2_msr(&build::idtech_enhanced(&ispec), Some(&k), CipherKind::Tdes);
        let r = decode_frame(&v).unwrap();
        prop_assert_eq!(r.format, Format::Vivotech2);
        prop_assert_eq!(r.ksn.as_ref(), Some(&k));
        let d = decrypt_read(&r, &FixedKey, None).unwrap();
        prop_assert_eq!(d.decrypted.as_ref().unwrap()[1].as_ref().unwrap().expose(), t2.as_str());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// One byte changed anywhere in a binary frame that carries a check value (ID TECH LRC +
    /// checksum over the card data, with the length and STX/ETX checked; ViVOtech2 CRC-16
    /// around an ID TECH frame) is rejected: an XOR LRC, an 8-bit sum and a CRC-16 each catch
    /// every single-byte change.
    #[test]
    fn one_changed_byte_in_a_checksummed_frame_is_rejected(
        c in card(), k in ksn(), at in any::<prop::sample::Index>(), x in 1u8..,
    ) {
        let (t1, t2) = (c.t1(), c.t2());
        let spec = IdtechSpec {
            tracks: [Some(&t1), Some(&t2), None],
            enc: [Some(enc(build::with_lrc(1, &t1).as_bytes())), Some(enc(build::with_lrc(2, &t2).as_bytes())), None],
            ksn: Some(k.clone()),
            serial: Some("716T494010"),
            ..Default::default()
        };
        // The original format: one chain over both tracks, SHA-1 of each.
        let (p1, p2) = (build::with_lrc(1, &t1), build::with_lrc(2, &t2));
        let h = |p: &str| -> [u8; 20] { Sha1::digest(p.as_bytes()).into() };
        let original = IdtechSpec {
            tracks: [Some(&t1), Some(&t2), None],
            enc: [Some(enc(format!("{p1}{p2}").as_bytes())), None, None],
            hashes: [Some(h(&p1)), Some(h(&p2)), None],
            ksn: Some(k.clone()),
            ..Default::default()
        };
        let frames = [
            ("idtech-enhanced", build::idtech_enhanced(&spec)),
            ("idtech-original", build::idtech_original(&original)),
            ("vivotech2", build::vivotech2_msr(&build::idtech_enhanced(&spec), Some(&k), CipherKind::Tdes)),
        ];
        for (name, f) in frames {
            prop_assert!(decode_frame(&f).is_ok(), "{} as built", name);
            let mut m = f.clone();
            let i = at.index(m.len());
            m[i] ^= x;
            match decode_frame(&m) {
                Err(_) => {}
                // A changed "ViVOtech2\0" magic is no ViVOtech2 frame any more: detection may
                // then take the bytes for bare TLV, which must yield no card.
                Ok(r) if name == "vivotech2" && i < 10 => {
                    prop_assert!(r.masked_pan.is_none() && r.last4.is_none() && r.ksn.is_none(),
                        "byte {} ^ {:02X}: {}", i, x, r.to_json());
                }
                Ok(r) => prop_assert!(false, "{}: byte {} ^ {:02X} accepted: {}", name, i, x, r.to_json()),
            }
        }
    }

    /// ID TECH keyboard mode: one character changed after the length field never decodes to
    /// another card. It fails today (seen on repeated runs): e.g. the enhanced keyboard frame
    /// of PAN 3196146901868462952 with character 16 (field 8's hex) ^ 0x20 decodes to a
    /// masked PAN `4E515E***…3339` (the hex of Track 1 name characters).
    #[test]
    fn one_changed_char_in_idtech_keyboard_frames_never_gives_another_card(
        c in card(), k in ksn(), at in any::<prop::sample::Index>(), x in 1u8.., original in any::<bool>(),
    ) {
        let text = idtech_keyboard_frame(&c, &k, original);
        let mut m = text.into_bytes();
        // Past "02" and the 4 length characters: the decoder does not check the length field
        // (see the ignored test below), so a change there can give a wrong card today.
        let i = 6 + at.index(m.len() - 6);
        m[i] ^= x;
        let want = idtech_masked_pan(&c.pan);
        for f in split_frames(&m) {
            if let Ok(r) = decode_frame(f) {
                let got = r.masked_pan.as_ref().map(|p| p.as_str().to_string());
                prop_assert!(got.as_deref().is_none_or(|p| p == want), "byte {}: {:?}", i, got);
            }
        }
    }

    /// Clear tracks with their LRCs (keyboard wedges, MagTek SL2 with LRC on): one character
    /// changed never decodes to another card: whatever frames still decode show the same last
    /// 4 and expiry, or none.
    #[test]
    fn one_changed_char_in_lrc_tracks_never_gives_another_card(
        c in card(), at in any::<prop::sample::Index>(), x in 1u8..,
    ) {
        let (t1, t2) = (c.t1(), c.t2());
        let text = build::plain_tracks(&[Some(&t1), Some(&t2), None], true);
        let mut m = text.into_bytes();
        let i = at.index(m.len());
        m[i] ^= x;
        let last4 = &c.pan[c.pan.len() - 4..];
        for f in split_frames(&m) {
            if let Ok(r) = decode_frame(f) {
                prop_assert!(r.last4.as_deref().is_none_or(|l| l == last4), "byte {}: last4 {:?}", i, r.last4);
                prop_assert!(r.expiry.as_deref().is_none_or(|e| e == c.expiry), "byte {}: expiry {:?}", i, r.expiry);
            }
        }
    }
}

/// An ID TECH keyboard-mode frame (rule 3 of reader-formats.md: hex fields, raw masked tracks,
/// length/LRC/sum over the ASCII as sent).
fn idtech_keyboard_frame(c: &Card, k: &Ksn, original: bool) -> String {
    let (t1, t2) = (c.t1(), c.t2());
    let (p1, p2) = (build::with_lrc(1, &t1), build::with_lrc(2, &t2));
    let h = |p: &str| -> [u8; 20] { Sha1::digest(p.as_bytes()).into() };
    let spec = IdtechSpec {
        tracks: [Some(&t1), Some(&t2), None],
        enc: if original {
            [Some(enc(format!("{p1}{p2}").as_bytes())), None, None]
        } else {
            [Some(enc(p1.as_bytes())), Some(enc(p2.as_bytes())), None]
        },
        hashes: [Some(h(&p1)), Some(h(&p2)), None],
        serial: (!original).then_some("716T494010"),
        ksn: Some(k.clone()),
        ..Default::default()
    };
    if original {
        build::idtech_original_keyboard(&spec)
    } else {
        build::idtech_enhanced_keyboard(&spec)
    }
}

/// The strict form for keyboard mode: a changed length character is rejected. It fails today:
/// the keyboard decoder does not check the frame's length field (the 4 hex characters after
/// "02"), which the LRC and checksum do not cover (they are over the card data only), so
/// `02A401…` decodes like `02A501…`, and a non-hex length can decode to another card.
#[test]
fn idtech_keyboard_frame_with_a_wrong_length_is_rejected() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/decode/good/idtech_original_keyboard.txt"
    ))
    .unwrap();
    let frame: String = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(frame.starts_with("02A501"), "{}", &frame[..6]);
    assert!(decode_frame(frame.as_bytes()).is_ok());
    // LenL 0xA5 -> 0xA4: one character of the length.
    let wrong = format!("02A401{}", &frame[6..]);
    assert!(
        decode_frame(wrong.as_bytes()).is_err(),
        "wrong length accepted"
    );
    // Not even hex: proptest found a frame whose length character ^ 0x80 decoded to a masked
    // PAN of `2A2A2A***…4245`, i.e. another card.
    let mut bad = frame.clone().into_bytes();
    bad[2] ^= 0x80;
    assert!(decode_frame(&bad).is_err(), "non-hex length accepted");
}
