//! The simulator's `CardReader` that decrypts reader output with the configured BDKs (design.md
//! §3 `gateway-sim`): whole reader frames as hex decode as `cardlane decode --bdk` would, bare
//! track ciphertext with `ksn` is tried under the key the `device_code` names (or every key),
//! clear track text reads as before, and a `pin_block` must decrypt under the PIN key of
//! `card.ksn` (the PIN key's KSN, which may differ from the KSN inside a whole reader frame) to
//! a valid ISO 9564 block (format 0, 1, 3 or 4) for the PAN decrypted from `track_data`. When it
//! does not, the reply names `card.ksn` if the block verifies under the frame's own KSN or a
//! neighbouring counter (the KSN is what is wrong), else `card.pin_block`.
//!
//! Nothing here logs, and errors are the seam's `CardReadError`, which holds no input bytes.
use zeroize::Zeroizing;

use super::reader::{read_clear_tracks, Bdk, CardFacts, CardReadError, CardReader, ReadContext};
use crate::card::{self, CardRead, CipherKind, KeyVariant, SecretText};
use crate::crypto::{self, DataCipher, ReaderKey};
use crate::gateway::record::CardRequest;
use crate::parse::{self, DecryptError, TrackDecryptor};

/// Decrypts `track_data` and checks `pin_block` with the BDKs of the `ReadContext`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DecryptingReader;

/// What reading the track data gave, plus what the PIN check needs from it.
struct TrackResult {
    facts: CardFacts,
    /// The BDK that decrypted the data; `None` for clear data.
    bdk: Option<usize>,
    /// The KSN the reader frame carried (used for the PIN block when the request has none).
    frame_ksn: Option<Vec<u8>>,
}

impl CardReader for DecryptingReader {
    fn read_card(&self, card: &CardRequest, ctx: &ReadContext) -> Result<CardFacts, CardReadError> {
        // Track data wins over a keyed number: it is what the reader saw, with name and expiry.
        let found = if let Some(track) = &card.track_data {
            read_track_data(track.expose(), card.ksn.as_deref(), ctx)?
        } else if let Some(number) = &card.number {
            TrackResult {
                facts: CardFacts {
                    pan: number.clone(),
                    expiry_mmyy: None,
                    cardholder_name: None,
                },
                bdk: None,
                frame_ksn: None,
            }
        } else {
            return Err(CardReadError::BadTrack);
        };
        let TrackResult {
            mut facts,
            bdk,
            frame_ksn,
        } = found;
        if let Some(block) = &card.pin_block {
            let given = card.ksn.is_some();
            let ksn = match card.ksn.as_deref() {
                Some(k) => hex::decode(k).map_err(|_| CardReadError::BadPinKsn)?,
                None => frame_ksn.clone().ok_or(CardReadError::BadPinBlock)?,
            };
            let pin = PinCheck {
                block_hex: block.expose(),
                pan: facts.pan.expose(),
                bdk,
                bdks: ctx.bdks,
            };
            match pin.check(&ksn) {
                Err(CardReadError::BadPinBlock) if given => {
                    return Err(pin.blame(&ksn, frame_ksn.as_deref()))
                }
                r => r?,
            }
        }
        if facts.expiry_mmyy.is_none() {
            facts.expiry_mmyy = card.expiration_date.clone();
        }
        Ok(facts)
    }
}

/// Hex without separators is reader output (a frame or bare ciphertext); other text is a
/// keyboard-mode frame or clear tracks.
fn read_track_data(
    text: &str,
    ksn_hex: Option<&str>,
    ctx: &ReadContext,
) -> Result<TrackResult, CardReadError> {
    let compact: Zeroizing<String> =
        Zeroizing::new(text.chars().filter(|c| !c.is_whitespace()).collect());
    let is_hex = !compact.is_empty() && compact.bytes().all(|b| b.is_ascii_hexdigit());
    // An odd digit count is keyboard output that lost characters, not a hex dump.
    if !is_hex || compact.len() % 2 == 1 {
        // Keyboard-mode frames (ID TECH, MagTek) carry their ciphertext inside the text.
        if let Ok(read) = parse::decode_frame(text.trim().as_bytes()) {
            if !read.enc_blocks.is_empty() {
                return decrypt_frame(&read, ctx);
            }
        }
        return clear(read_clear_tracks(text)?);
    }
    let bytes = Zeroizing::new(hex::decode(compact.as_str()).map_err(|_| CardReadError::BadTrack)?);
    let mut failure = CardReadError::BadTrack;
    if let Ok(read) = parse::decode_frame(&bytes) {
        if read.enc_blocks.is_empty() {
            if let Some(text) = clear_text(&read.clear) {
                if let Ok(facts) = read_clear_tracks(&text) {
                    return clear(facts);
                }
            }
        } else {
            match decrypt_frame(&read, ctx) {
                Ok(r) => return Ok(r),
                Err(e) => failure = e,
            }
        }
    }
    // Not a frame (or one that would not decrypt): bare track ciphertext under the request's KSN.
    if let Some(ksn_hex) = ksn_hex {
        let ksn = hex::decode(ksn_hex).map_err(|_| CardReadError::DecryptFailed)?;
        if ctx.bdks.is_empty() {
            return Err(CardReadError::NoDecoder);
        }
        return decrypt_bare(&bytes, &ksn, ctx);
    }
    Err(failure)
}

fn clear(facts: CardFacts) -> Result<TrackResult, CardReadError> {
    Ok(TrackResult {
        facts,
        bdk: None,
        frame_ksn: None,
    })
}

/// Track 1 then Track 2 text joined, for `read_clear_tracks`.
fn clear_text(tracks: &[Option<SecretText>; 3]) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    for t in tracks.iter().take(2).flatten() {
        out.push_str(t.expose());
    }
    (!out.is_empty()).then_some(out)
}

/// A decoded frame's blocks under each BDK in turn, with the key variant the frame names.
fn decrypt_frame(read: &CardRead, ctx: &ReadContext) -> Result<TrackResult, CardReadError> {
    if ctx.bdks.is_empty() {
        return Err(CardReadError::NoDecoder);
    }
    for (i, bdk) in ctx.bdks.iter().enumerate() {
        let Ok(done) = parse::decrypt_read(read, &DukptDecryptor { bdk }, None) else {
            continue;
        };
        let Some(text) = done.decrypted.as_ref().and_then(clear_text) else {
            continue;
        };
        if let Ok(facts) = read_clear_tracks(&text) {
            return Ok(TrackResult {
                facts,
                bdk: Some(i),
                frame_ksn: read.ksn.as_ref().map(|k| k.as_bytes().to_vec()),
            });
        }
    }
    Err(CardReadError::DecryptFailed)
}

/// Which reader keys `device_code` allows: MagTek readers use the PIN variant, ID TECH the data
/// key; an unknown or absent code means "whichever yields a track".
fn keys_for(device_code: Option<&str>) -> &'static [ReaderKey] {
    let code = device_code.map(|c| c.trim().to_ascii_uppercase());
    match code.as_deref() {
        Some("MAGTEK" | "38") => &[ReaderKey::Pin],
        Some("IDTECH" | "2") => &[ReaderKey::Data],
        _ => &[ReaderKey::Pin, ReaderKey::Data, ReaderKey::DataVariant],
    }
}

/// Bare ciphertext of one track (MagTek style): every allowed key, cipher and BDK until the
/// plaintext is a well-formed track.
fn decrypt_bare(ct: &[u8], ksn: &[u8], ctx: &ReadContext) -> Result<TrackResult, CardReadError> {
    // A TDES KSN may still carry AES-128 data (the ID TECH option); an AES KSN means AES.
    let ciphers: &[DataCipher] = match ksn.len() {
        10 if ct.len() % 16 == 0 => &[DataCipher::Tdes, DataCipher::Aes],
        10 => &[DataCipher::Tdes],
        _ => &[DataCipher::Aes],
    };
    for (i, bdk) in ctx.bdks.iter().enumerate() {
        for &key in keys_for(ctx.device_code) {
            for &cipher in ciphers {
                let Ok(pt) = crypto::decrypt_reader_data_on(
                    bdk.des_core(),
                    bdk.bytes(),
                    ksn,
                    key,
                    cipher,
                    None,
                    ct,
                ) else {
                    continue;
                };
                let Some(text) = track_plaintext(&pt) else {
                    continue;
                };
                if let Ok(facts) = read_clear_tracks(&text) {
                    return Ok(TrackResult {
                        facts,
                        bdk: Some(i),
                        frame_ksn: None,
                    });
                }
            }
        }
    }
    Err(CardReadError::DecryptFailed)
}

/// Plaintext as track text when it is one: a nibble-packed Track 2, or ISO 7813 characters from
/// a start sentinel at the very first byte (a wrong key would give noise there) through the end
/// sentinel, optional LRC, zero padding.
fn track_plaintext(pt: &[u8]) -> Option<Zeroizing<String>> {
    let end = pt.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let pt = pt.get(..end)?;
    if pt.first().is_some_and(|b| b >> 4 == 0x0B) {
        return parse::tracks::unpack_nibbles(pt);
    }
    if !matches!(pt.first(), Some(b'%' | b';')) {
        return None;
    }
    let tracks = parse::tracks::scan_tracks(pt).ok()?;
    let mut out = Zeroizing::new(String::new());
    for t in tracks.iter().filter(|t| !t.error && t.number < 3) {
        out.push_str(t.text.expose());
    }
    (!out.is_empty()).then_some(out)
}

/// A PIN block to check, with the PAN it must be for and the simulator's keys.
struct PinCheck<'a> {
    block_hex: &'a str,
    pan: &'a str,
    /// The BDK that decrypted the card data (tried first), if any.
    bdk: Option<usize>,
    bdks: &'a [Bdk],
}

impl PinCheck<'_> {
    /// The block under the PIN key of `ksn`: the card data's BDK first, then any configured
    /// BDK (a PIN pad may hold another key). TDES keys accept formats 0, 1, 3; AES keys 4.
    fn check(&self, ksn: &[u8]) -> Result<(), CardReadError> {
        if self.bdks.is_empty() {
            return Err(CardReadError::PinUnchecked);
        }
        let block =
            Zeroizing::new(hex::decode(self.block_hex).map_err(|_| CardReadError::BadPinBlock)?);
        let ksn = crypto::Ksn::from_slice(ksn).map_err(|_| CardReadError::BadPinKsn)?;
        let first = self.bdk.and_then(|i| self.bdks.get(i));
        let valid = first.into_iter().chain(self.bdks.iter()).any(|b| {
            crypto::pin_block_decrypt_on(b.des_core(), b.bytes(), &ksn, self.pan, &block, None)
                .is_ok()
        });
        if valid {
            Ok(())
        } else {
            Err(CardReadError::BadPinBlock)
        }
    }

    /// The block failed under `card.ksn`: if it verifies under the card data's own KSN or a
    /// counter a few steps away, the KSN is what is wrong; otherwise the block is.
    fn blame(&self, given: &[u8], frame_ksn: Option<&[u8]>) -> CardReadError {
        let others = frame_ksn
            .filter(|f| *f != given)
            .map(<[u8]>::to_vec)
            .into_iter()
            .chain(neighbour_ksns(given));
        for k in others {
            if self.check(&k).is_ok() {
                return CardReadError::BadPinKsn;
            }
        }
        CardReadError::BadPinBlock
    }
}

/// How many counter steps either way `blame` looks at.
const KSN_NEIGHBOURS: u32 = 8;

/// KSNs whose transaction counter is within `KSN_NEIGHBOURS` of `ksn`'s (TDES: the low 21 bits;
/// AES: the last 4 bytes).
fn neighbour_ksns(ksn: &[u8]) -> Vec<Vec<u8>> {
    let (tail, mask) = match ksn.len() {
        10 => (7, 0x1F_FFFFu32),
        12 => (8, u32::MAX),
        _ => return Vec::new(),
    };
    let Some(t) = ksn.get(tail..) else {
        return Vec::new();
    };
    let mut word = [0u8; 4];
    word[4 - t.len()..].copy_from_slice(t);
    let whole = u32::from_be_bytes(word);
    let counter = whole & mask;
    let mut out = Vec::new();
    for d in 1..=KSN_NEIGHBOURS {
        for c in [counter.checked_add(d), counter.checked_sub(d)]
            .into_iter()
            .flatten()
        {
            if c & !mask != 0 {
                continue;
            }
            let mut k = ksn.to_vec();
            let b = ((whole & !mask) | c).to_be_bytes();
            if let Some(dst) = k.get_mut(tail..) {
                dst.copy_from_slice(&b[4 - t.len()..]);
            }
            out.push(k);
        }
    }
    out
}

/// `parse::TrackDecryptor` over crypto's DUKPT reader keys, for one BDK.
struct DukptDecryptor<'a> {
    bdk: &'a Bdk,
}

impl TrackDecryptor for DukptDecryptor<'_> {
    fn decrypt(
        &self,
        ksn: &card::Ksn,
        variant: KeyVariant,
        cipher: CipherKind,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        if ciphertext.len() % cipher.block_len() != 0 {
            return Err(DecryptError::BadLength);
        }
        let key = match variant {
            KeyVariant::Data => ReaderKey::Data,
            KeyVariant::DataVariant => ReaderKey::DataVariant,
            KeyVariant::Pin => ReaderKey::Pin,
        };
        let cipher = match cipher {
            CipherKind::Tdes => DataCipher::Tdes,
            CipherKind::Aes => DataCipher::Aes,
        };
        crypto::decrypt_reader_data_on(
            self.bdk.des_core(),
            self.bdk.bytes(),
            ksn.as_bytes(),
            key,
            cipher,
            None,
            ciphertext,
        )
        .map_err(|_| DecryptError::Other("DUKPT decryption failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
    const KSN: &str = "FFFF9876543210E00001";
    const T1: &str = "%B4005571701111111^FDMS TEST CARD/VISA^2512101000000000?";
    const T2: &str = ";4005571701111111=25121010000000000?";

    #[test]
    fn neighbour_ksns_stay_inside_the_counter() {
        let hx = |v: Vec<Vec<u8>>| v.into_iter().map(hex::encode_upper).collect::<Vec<_>>();
        // TDES: 21-bit counter 1 -> 2, 0, 3..=9; the bits above it (E0 of byte 7) are kept.
        let t = hx(neighbour_ksns(
            &hex::decode("FFFF9876543210E00001").unwrap(),
        ));
        assert_eq!(t.len(), 9);
        assert_eq!(t[0], "FFFF9876543210E00002");
        assert_eq!(t[1], "FFFF9876543210E00000");
        assert_eq!(t[8], "FFFF9876543210E00009");
        // The top of the counter does not spill into the key's initial KSN.
        let top = hx(neighbour_ksns(
            &hex::decode("FFFF9876543210FFFFFF").unwrap(),
        ));
        assert_eq!(top.len(), 8);
        assert!(top.iter().all(|k| k.starts_with("FFFF9876543210F")));
        assert_eq!(top[0], "FFFF9876543210FFFFFE");
        // AES: the last 4 bytes.
        let a = hx(neighbour_ksns(
            &hex::decode("123456789012345600000100").unwrap(),
        ));
        assert_eq!(a.len(), 16);
        assert_eq!(a[0], "123456789012345600000101");
        assert_eq!(a[1], "1234567890123456000000FF");
        assert!(neighbour_ksns(&[0; 11]).is_empty());
    }

    fn ctx<'a>(bdks: &'a [Bdk], device_code: Option<&'a str>) -> ReadContext<'a> {
        ReadContext { device_code, bdks }
    }

    fn card(track: &str, ksn: Option<&str>) -> CardRequest {
        CardRequest {
            track_data: Some(track.into()),
            ksn: ksn.map(str::to_owned),
            ..Default::default()
        }
    }

    fn bare(key: ReaderKey, text: &str) -> String {
        let ct = crypto::encrypt_reader_data(
            &hex::decode(BDK).unwrap(),
            &hex::decode(KSN).unwrap(),
            key,
            DataCipher::Tdes,
            None,
            text.as_bytes(),
        )
        .unwrap();
        hex::encode_upper(&ct[..])
    }

    #[test]
    fn bare_ciphertext_follows_the_device_code() {
        let bdks = [Bdk::from_hex(BDK).unwrap()];
        let pin_ct = bare(ReaderKey::Pin, T1);
        let c = card(&pin_ct, Some(KSN));
        for code in [Some("MAGTEK"), Some("38"), None, Some("PAX")] {
            let f = DecryptingReader.read_card(&c, &ctx(&bdks, code)).unwrap();
            assert_eq!(f.pan.expose(), "4005571701111111");
            assert_eq!(f.expiry_mmyy.as_deref(), Some("1225"));
            assert_eq!(f.cardholder_name.as_deref(), Some("FDMS TEST CARD/VISA"));
        }
        // Under the data key only ID TECH (or no code) reads it.
        assert_eq!(
            DecryptingReader
                .read_card(&c, &ctx(&bdks, Some("IDTECH")))
                .unwrap_err(),
            CardReadError::DecryptFailed
        );
        let data_ct = bare(ReaderKey::Data, T2);
        let c = card(&data_ct, Some(KSN));
        for code in [Some("2"), None] {
            let f = DecryptingReader.read_card(&c, &ctx(&bdks, code)).unwrap();
            assert_eq!(f.pan.expose(), "4005571701111111", "{code:?}");
            assert_eq!(f.expiry_mmyy.as_deref(), Some("1225"), "{code:?}");
        }
        assert_eq!(
            DecryptingReader
                .read_card(&c, &ctx(&bdks, Some("MAGTEK")))
                .unwrap_err(),
            CardReadError::DecryptFailed
        );
        // No keys configured: cannot decrypt at all.
        assert_eq!(
            DecryptingReader.read_card(&c, &ctx(&[], None)).unwrap_err(),
            CardReadError::NoDecoder
        );
    }

    #[test]
    fn plaintext_shapes() {
        assert!(track_plaintext(b"%B4005571701111111^A/B^2512?\0\0\0").is_some());
        // Packed Track 2: B PAN D YYMM F.
        let packed = [
            0xB4, 0x00, 0x55, 0x71, 0x70, 0x11, 0x11, 0x11, 0x1D, 0x25, 0x12, 0xF0,
        ];
        assert_eq!(
            track_plaintext(&packed).unwrap().as_str(),
            ";4005571701111111=2512?"
        );
        assert!(track_plaintext(b"x%B4005571701111111^A/B^2512?").is_none());
        assert!(track_plaintext(&[0u8; 16]).is_none());
        assert!(track_plaintext(b";40055717\x0111111=2512?").is_none());
    }

    #[test]
    fn clear_text_and_number_still_work() {
        let f = DecryptingReader
            .read_card(&card(&format!("{T1}{T2}"), None), &ctx(&[], None))
            .unwrap();
        assert_eq!(f.pan.expose(), "4005571701111111");
        let c = CardRequest {
            number: Some("4005571701111111".into()),
            expiration_date: Some("1229".into()),
            ..Default::default()
        };
        let f = DecryptingReader.read_card(&c, &ctx(&[], None)).unwrap();
        assert_eq!(f.expiry_mmyy.as_deref(), Some("1229"));
        assert_eq!(
            DecryptingReader
                .read_card(&card("hello", None), &ctx(&[], None))
                .unwrap_err(),
            CardReadError::BadTrack
        );
    }

    proptest::proptest! {
        /// Arbitrary text, hex bytes, KSNs, device codes and PIN blocks never panic.
        #[test]
        fn never_panics(
            text in ".{0,80}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
            ksn in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..13),
            pin in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..17),
            sel in 0usize..4,
        ) {
            let bdks = [Bdk::from_hex(BDK).unwrap()];
            let code = [None, Some("MAGTEK"), Some("2"), Some("x")][sel];
            for track in [text.clone(), hex::encode(&bytes)] {
                let mut c = card(&track, Some(&hex::encode(&ksn)));
                c.pin_block = Some(hex::encode(&pin).into());
                let _ = DecryptingReader.read_card(&c, &ctx(&bdks, code));
                c.ksn = None;
                let _ = DecryptingReader.read_card(&c, &ctx(&bdks, code));
            }
            let _ = track_plaintext(&bytes);
        }
    }
}
