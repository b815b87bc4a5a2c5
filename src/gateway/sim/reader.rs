//! The seam between the simulator and card decoding. The simulator asks a `CardReader` what card
//! a request's `card` object holds; the default `ClearCardReader` understands clear numbers and
//! clear track text only. Decrypting reader output and checking PIN blocks plug in here.
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::gateway::record::CardRequest;
use crate::gateway::secret::PanString;

/// A base derivation key for the simulator. `Debug` prints `***`; zeroed on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Bdk(Vec<u8>);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BdkError {
    #[error("BDK must be hex")]
    NotHex,
    #[error("BDK must be 16, 24 or 32 bytes")]
    BadLength,
}

impl Bdk {
    pub fn from_hex(hex_text: &str) -> Result<Self, BdkError> {
        let bytes = hex::decode(hex_text.trim()).map_err(|_| BdkError::NotHex)?;
        if !matches!(bytes.len(), 16 | 24 | 32) {
            return Err(BdkError::BadLength);
        }
        Ok(Self(bytes))
    }
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
    /// The DES core for this key: the fast one only for the public ANSI test BDK; any other
    /// (a real key) derives and deciphers in constant time (issue 13 point 20).
    pub fn des_core(&self) -> crate::crypto::DesCore {
        crate::crypto::DesCore::for_bdk(&self.0)
    }
}

impl std::fmt::Debug for Bdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bdk(***)")
    }
}

/// What the reader needs beyond the `card` object.
#[derive(Debug)]
pub struct ReadContext<'a> {
    /// The request's `device_code` (`MAGTEK`, `38`, `IDTECH`, `2`…), which picks the key usage.
    pub device_code: Option<&'a str>,
    /// The simulator's configured BDKs, to try in order.
    pub bdks: &'a [Bdk],
}

/// What the simulator stores and answers with. The PAN is kept only long enough to derive the
/// token and brand; it is never written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardFacts {
    pub pan: PanString,
    /// MMYY, when the card data carried one.
    pub expiry_mmyy: Option<String>,
    pub cardholder_name: Option<String>,
}

/// Why the card data could not be read. Messages hold no input bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CardReadError {
    #[error("cannot decrypt (no decoder configured)")]
    NoDecoder,
    #[error("cannot decrypt with the configured keys")]
    DecryptFailed,
    #[error("is not a readable track")]
    BadTrack,
    #[error("cannot be checked (no decoder configured)")]
    PinUnchecked,
    #[error("is not a valid ISO 9564 PIN block")]
    BadPinBlock,
    /// The PIN block verifies, but under another KSN than `card.ksn` (e.g. the card data's,
    /// or a neighbouring counter), or `card.ksn` is not a KSN at all.
    #[error("is not the KSN of the PIN block's key")]
    BadPinKsn,
}

impl CardReadError {
    /// The request field the error is about, for the `result_text`.
    pub fn field(&self) -> &'static str {
        match self {
            CardReadError::PinUnchecked | CardReadError::BadPinBlock => "card.pin_block",
            CardReadError::BadPinKsn => "card.ksn",
            _ => "card.track_data",
        }
    }
    pub fn code(&self) -> &'static str {
        match self {
            CardReadError::NoDecoder => "no-decoder",
            CardReadError::DecryptFailed => "decrypt-failed",
            CardReadError::BadTrack => "bad-track",
            CardReadError::PinUnchecked => "pin-unchecked",
            CardReadError::BadPinBlock => "bad-pin-block",
            CardReadError::BadPinKsn => "bad-pin-ksn",
        }
    }
}

/// Reads the card a request carries. Called only when the card has a `number` or `track_data`.
pub trait CardReader: Send + Sync {
    fn read_card(&self, card: &CardRequest, ctx: &ReadContext) -> Result<CardFacts, CardReadError>;
}

/// Clear numbers and clear ISO 7813 track text; anything that looks like ciphertext (hex) is
/// refused with `NoDecoder`, and a PIN block cannot be checked without crypto.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClearCardReader;

impl CardReader for ClearCardReader {
    fn read_card(
        &self,
        card: &CardRequest,
        _ctx: &ReadContext,
    ) -> Result<CardFacts, CardReadError> {
        let mut facts = if let Some(number) = &card.number {
            CardFacts {
                pan: number.clone(),
                expiry_mmyy: None,
                cardholder_name: None,
            }
        } else if let Some(track) = &card.track_data {
            read_clear_tracks(track.expose())?
        } else {
            return Err(CardReadError::BadTrack);
        };
        if card.pin_block.is_some() {
            return Err(CardReadError::PinUnchecked);
        }
        if let Some(exp) = &card.expiration_date {
            facts.expiry_mmyy = Some(exp.clone());
        }
        Ok(facts)
    }
}

/// Track 2 (`;PAN=YYMM…?`) is preferred, then Track 1 (`%BPAN^NAME^YYMM…?`), which also gives
/// the name. Hex text without track separators is reader ciphertext.
pub fn read_clear_tracks(text: &str) -> Result<CardFacts, CardReadError> {
    let text = text.trim();
    let has_separators = text.contains('=') || text.contains('^');
    if !has_separators {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit() || b == b' ') {
            return Err(CardReadError::NoDecoder);
        }
        return Err(CardReadError::BadTrack);
    }
    let track1 = track1_fields(text);
    let track2 = track2_fields(text);
    let (pan, yymm) = match (&track2, &track1) {
        (Some((pan, yymm)), _) => (pan.clone(), yymm.clone()),
        (None, Some((pan, _, yymm))) => (pan.clone(), yymm.clone()),
        (None, None) => return Err(CardReadError::BadTrack),
    };
    let expiry_mmyy = yymm.and_then(|y| Some(format!("{}{}", y.get(2..4)?, y.get(0..2)?)));
    Ok(CardFacts {
        pan: PanString::new(pan),
        expiry_mmyy,
        cardholder_name: track1.and_then(|(_, name, _)| name),
    })
}

fn valid_pan(pan: &str) -> bool {
    (13..=19).contains(&pan.len()) && pan.bytes().all(|b| b.is_ascii_digit())
}

fn yymm_of(s: &str) -> Option<String> {
    let y = s.get(0..4)?;
    let month: u8 = y.get(2..4)?.parse().ok()?;
    (y.bytes().all(|b| b.is_ascii_digit()) && (1..=12).contains(&month)).then(|| y.to_owned())
}

/// `;PAN=YYMM…` (the `;` optional, so bare `PAN=YYMM…` also reads).
fn track2_fields(text: &str) -> Option<(String, Option<String>)> {
    let start = text.find(';').map(|i| i + 1).unwrap_or(0);
    let rest = text.get(start..)?;
    let (pan, after) = rest.split_once('=')?;
    let pan = pan.trim();
    valid_pan(pan).then(|| (pan.to_owned(), yymm_of(after)))
}

/// `%B` PAN `^` NAME `^` YYMM…
fn track1_fields(text: &str) -> Option<(String, Option<String>, Option<String>)> {
    let start = text.find("%B").map(|i| i + 2)?;
    let rest = text.get(start..)?;
    let mut parts = rest.splitn(3, '^');
    let pan = parts.next()?.trim();
    let name = parts.next()?.trim();
    let after = parts.next().unwrap_or("");
    if !valid_pan(pan) {
        return None;
    }
    let name = (!name.is_empty()).then(|| name.to_owned());
    Some((pan.to_owned(), name, yymm_of(after)))
}

/// `account_type` from the BIN: VI, MC, AX, DS, JC, DC; `None` for other ranges.
pub fn brand_of(pan: &str) -> Option<&'static str> {
    let prefix = |n: usize| pan.get(..n).and_then(|p| p.parse::<u32>().ok());
    let p2 = prefix(2)?;
    let p3 = prefix(3).unwrap_or(0);
    let p4 = prefix(4).unwrap_or(0);
    let p6 = prefix(6).unwrap_or(0);
    if pan.starts_with('4') {
        Some("VI")
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        Some("MC")
    } else if p2 == 34 || p2 == 37 {
        Some("AX")
    } else if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6)
    {
        Some("DS")
    } else if (3528..=3589).contains(&p4) {
        Some("JC")
    } else if (300..=305).contains(&p3) || p4 == 3095 || p2 == 36 || p2 == 38 || p2 == 39 {
        Some("DC")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_bdk_takes_the_constant_time_core() {
        let test = Bdk::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(test.des_core(), crate::crypto::DesCore::Fast);
        let real = Bdk::from_hex("0123456789ABCDEFFEDCBA9876543211").unwrap();
        assert_eq!(real.des_core(), crate::crypto::DesCore::ConstantTime);
        let aes = Bdk::from_hex("FEDCBA9876543210F1F1F1F1F1F1F1F1").unwrap();
        assert_eq!(aes.des_core(), crate::crypto::DesCore::ConstantTime);
    }

    #[test]
    fn vendor_sample_swipe() {
        // The vendor apps' clear swipe from onepay-gateway.md.
        let f = read_clear_tracks(
            "%B4005571701111111^FDMS TEST CARD/VISA^2512101?;4005571701111111=2512101?",
        )
        .unwrap();
        assert_eq!(f.pan.expose(), "4005571701111111");
        assert_eq!(f.expiry_mmyy.as_deref(), Some("1225"));
        assert_eq!(f.cardholder_name.as_deref(), Some("FDMS TEST CARD/VISA"));
    }

    #[test]
    fn track1_alone_and_ciphertext() {
        let f = read_clear_tracks("%B379605176666666^AMEX/TEST^2901?").unwrap();
        assert_eq!(f.pan.expose(), "379605176666666");
        assert_eq!(f.expiry_mmyy.as_deref(), Some("0129"));
        assert_eq!(
            read_clear_tracks("0A1B2C3D4E5F60718293A4B5C6D7E8F9").unwrap_err(),
            CardReadError::NoDecoder
        );
        assert_eq!(
            read_clear_tracks("hello").unwrap_err(),
            CardReadError::BadTrack
        );
        assert_eq!(
            read_clear_tracks(";12=2512?").unwrap_err(),
            CardReadError::BadTrack
        );
    }

    #[test]
    fn brands() {
        for (pan, want) in [
            ("4005571701111111", Some("VI")),
            ("5413330089010434", Some("MC")),
            ("2223000048400011", Some("MC")),
            ("379605176666666", Some("AX")),
            ("6011000990139424", Some("DS")),
            ("6445644564456445", Some("DS")),
            ("3530111333300000", Some("JC")),
            ("30569309025904", Some("DC")),
            ("36227206271667", Some("DC")),
            ("9999999999999", None),
        ] {
            assert_eq!(brand_of(pan), want, "{pan}");
        }
    }

    #[test]
    fn bdk_parsing() {
        let bdk = Bdk::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(bdk.bytes().len(), 16);
        assert_eq!(format!("{bdk:?}"), "Bdk(***)");
        assert_eq!(Bdk::from_hex("0123").unwrap_err(), BdkError::BadLength);
        assert_eq!(Bdk::from_hex("zz").unwrap_err(), BdkError::NotHex);
    }
}

#[cfg(test)]
mod props {
    use super::*;

    proptest::proptest! {
        #[test]
        fn clear_track_reading_never_panics(text in ".{0,120}") {
            let _ = read_clear_tracks(&text);
            let _ = brand_of(&text);
        }

        /// Any well-formed Track 2 reads back its PAN and swaps YYMM to MMYY.
        #[test]
        fn track2_round_trip(pan in "[0-9]{13,19}", yy in 0u8..100, mm in 1u8..=12) {
            let t = format!(";{pan}={yy:02}{mm:02}101?");
            let f = read_clear_tracks(&t).unwrap();
            proptest::prop_assert_eq!(f.pan.expose(), pan.as_str());
            let want = format!("{mm:02}{yy:02}");
            proptest::prop_assert_eq!(f.expiry_mmyy.as_deref(), Some(want.as_str()));
        }
    }
}
