//! The card data a NEO 2 reader sends for a read (reader-protocols.md §1.4, reader-formats.md
//! §2.7): attribution byte, then BER-TLV with each sensitive tag twice (masked `A1`, ciphertext
//! `C1` of the whole TLV, zero padded, TDES under the DUKPT data key), DFEE12 KSN, DFEE26,
//! DFEE25 result code, 9F39 entry mode, FFEE01 { DFEE30 source }. Swipes carry the enhanced MSR
//! frame in DFEE23 instead. Test PANs and test keys only.
use cardlane::card::{CipherKind, KeyVariant, Ksn};
use cardlane::crypto::reader_decryptor::{reader_cipher, reader_key};
use cardlane::crypto::{encrypt_reader_data, SecretKey};
use cardlane::parse::build::{self, tlv, IdtechSpec};
use sha1::{Digest, Sha1};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Interface {
    Contact,
    Contactless,
    Msr,
}

/// A test card: PAN digits and expiry YYMM. Zeroed on drop.
pub struct Card {
    pub pan: Zeroizing<String>,
    pub expiry: String,
}

impl std::str::FromStr for Card {
    type Err = String;

    /// `PAN[:YYMM]`; the message never repeats the PAN.
    fn from_str(s: &str) -> Result<Card, String> {
        let (pan, exp) = s.split_once(':').unwrap_or((s, "3012"));
        if !(12..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
            return Err(String::from("--card: the PAN must be 12-19 digits"));
        }
        if exp.len() != 4 || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(String::from("--card: the expiry must be YYMM"));
        }
        Ok(Card {
            pan: Zeroizing::new(pan.to_string()),
            expiry: exp.to_string(),
        })
    }
}

impl Clone for Card {
    fn clone(&self) -> Self {
        Card {
            pan: self.pan.clone(),
            expiry: self.expiry.clone(),
        }
    }
}

impl std::fmt::Debug for Card {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Card(***)")
    }
}

pub struct Keys {
    pub bdk: SecretKey,
    pub ksn: Ksn,
}

impl Keys {
    fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, String> {
        encrypt_reader_data(
            self.bdk.as_bytes(),
            self.ksn.as_bytes(),
            reader_key(KeyVariant::Data),
            reader_cipher(CipherKind::Tdes),
            None,
            plain,
        )
        .map(|c| c.to_vec())
        .map_err(|e| format!("encryption failed: {e}"))
    }
}

/// The `n`-th KSN after `base`: the 21-bit transaction counter counts up.
pub fn ksn_after(base: &Ksn, n: u32) -> Ksn {
    let mut b = base.as_bytes().to_vec();
    let len = b.len();
    let tail = len.saturating_sub(3);
    let mut counter = b
        .get(tail..)
        .map(|t| u32::from_be_bytes([0, t[0], t[1], t[2]]))
        .unwrap_or(0);
    let top = counter & !0x1F_FFFF;
    counter = top | ((counter & 0x1F_FFFF).wrapping_add(n) & 0x1F_FFFF);
    let c = counter.to_be_bytes();
    if let Some(t) = b.get_mut(tail..) {
        t.copy_from_slice(&c[1..]);
    }
    Ksn::from_bytes(&b).unwrap_or_else(|| base.clone())
}

/// Digits as packed BCD, `F`-padded to whole bytes.
fn bcd(digits: &str) -> Vec<u8> {
    let mut s: Vec<u8> = digits
        .bytes()
        .map(|c| match c {
            b'0'..=b'9' => c - b'0',
            b'D' => 0xD,
            b'C' => 0xC,
            _ => 0xF,
        })
        .collect();
    if s.len() % 2 == 1 {
        s.push(0xF);
    }
    s.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// First 6 and last 4 shown, the middle as ID TECH's `C` nibbles.
fn mask_digits(pan: &str) -> String {
    pan.char_indices()
        .map(|(i, c)| if i < 6 || i + 4 >= pan.len() { c } else { 'C' })
        .collect()
}

/// A sensitive tag the NEO 2 way: masked copy (`A1`) then ciphertext of the whole TLV (`C1`).
fn sensitive(tag: u32, clear: &[u8], masked: &[u8], keys: &Keys) -> Result<Vec<u8>, String> {
    let whole = Zeroizing::new(tlv(tag, clear));
    let ct = keys.encrypt(&whole)?;
    let tag_bytes: Vec<u8> = tag
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    let mut out = tag_bytes.clone();
    out.push(0xA1);
    out.push(u8::try_from(masked.len()).map_err(|_| "masked value too long")?);
    out.extend_from_slice(masked);
    out.extend_from_slice(&tag_bytes);
    out.push(0xC1);
    out.push(u8::try_from(ct.len()).map_err(|_| "ciphertext too long")?);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The data of the final `02` response for a read (`DFEE25 0010`: card data read).
pub fn read_data(card: &Card, iface: Interface, keys: &Keys) -> Result<Vec<u8>, String> {
    match iface {
        Interface::Msr => swipe_data(card, keys),
        Interface::Contact | Interface::Contactless => chip_data(card, iface, keys),
    }
}

fn chip_data(card: &Card, iface: Interface, keys: &Keys) -> Result<Vec<u8>, String> {
    let contact = iface == Interface::Contact;
    // Track 2 equivalent: PAN D YYMM service code 201 (chip card), discretionary data.
    let t2 = Zeroizing::new(format!(
        "{}D{}2010000000000",
        card.pan.as_str(),
        card.expiry
    ));
    let t2_masked = format!("{}D{}2010000000000", mask_digits(&card.pan), card.expiry);
    let clear_t2 = Zeroizing::new(bcd(&t2));
    let clear_pan = Zeroizing::new(bcd(&card.pan));
    let mut d = vec![if contact { 0x40 } else { 0x41 }];
    d.extend(sensitive(0x57, &clear_t2, &bcd(&t2_masked), keys)?);
    d.extend(sensitive(
        0x5A,
        &clear_pan,
        &bcd(&mask_digits(&card.pan)),
        keys,
    )?);
    d.extend(tlv(0x5F24, &bcd(&format!("{}31", card.expiry))));
    d.extend(tlv(0xDFEE12, keys.ksn.as_bytes()));
    d.extend(tlv(0xDFEE26, &[if contact { 0xC0 } else { 0xE1 }, 0x00]));
    d.extend(tlv(0xDFEE25, &[0x00, 0x10]));
    d.extend(tlv(0x9F39, &[if contact { 0x05 } else { 0x07 }]));
    d.extend(tlv(
        0xFFEE01,
        &tlv(0xDFEE30, &[if contact { 0x01 } else { 0x00 }]),
    ));
    Ok(d)
}

fn swipe_data(card: &Card, keys: &Keys) -> Result<Vec<u8>, String> {
    let t1 = Zeroizing::new(format!(
        "%B{}^TEST/CARD^{}1010000000000?",
        card.pan.as_str(),
        card.expiry
    ));
    let t2 = Zeroizing::new(format!(
        ";{}={}1010000000000?",
        card.pan.as_str(),
        card.expiry
    ));
    let tracks: [Option<&str>; 3] = [Some(t1.as_str()), Some(t2.as_str()), None];
    let mut spec = IdtechSpec {
        tracks,
        serial: Some("SIM0000001"),
        ksn: Some(keys.ksn.clone()),
        ..Default::default()
    };
    for (i, t) in tracks.iter().enumerate() {
        if let Some(t) = t {
            // ID TECH encrypts and hashes each track with its LRC.
            let plain = Zeroizing::new(build::with_lrc(i as u8 + 1, t));
            spec.enc[i] = Some(keys.encrypt(plain.as_bytes())?);
            spec.hashes[i] = Some(Sha1::digest(plain.as_bytes()).into());
        }
    }
    let msr = build::idtech_enhanced(&spec);
    let frame = build::vivotech2_msr(&msr, Some(&keys.ksn), CipherKind::Tdes);
    // The frame's data: between the 14-byte header and the 2-byte CRC.
    let mut d = frame
        .get(14..frame.len().saturating_sub(2))
        .unwrap_or_default()
        .to_vec();
    d.extend(tlv(0xDFEE25, &[0x00, 0x10]));
    d.extend(tlv(0x9F39, &[0x90]));
    Ok(d)
}

/// The final response data when no card came (`DFEE25 0008`: time-out).
pub fn timeout_data() -> Vec<u8> {
    let mut d = vec![0x41];
    d.extend(tlv(0xDFEE25, &[0x00, 0x08]));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardlane::parse::{decode_frame, decrypt_read};
    use cardlane::protocol::neo2::{Response, Status};

    const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

    #[test]
    fn ksn_counts_up_in_the_low_21_bits() {
        let base = Ksn::from_hex("FFFF9876543210E00000").unwrap();
        assert_eq!(ksn_after(&base, 1).to_hex(), "FFFF9876543210E00001");
        let top = Ksn::from_hex("FFFF9876543210FFFFFF").unwrap();
        // The counter wraps inside its 21 bits; the device id bits above stay.
        assert_eq!(ksn_after(&top, 1).to_hex(), "FFFF9876543210E00000");
    }

    #[test]
    fn every_interface_decodes_and_decrypts_to_the_card() {
        let bdk = hex::decode(BDK).unwrap();
        let keys = Keys {
            bdk: SecretKey::from_slice(&bdk),
            ksn: Ksn::from_hex("FFFF9876543210E00001").unwrap(),
        };
        let card: Card = "4761739001010119:2812".parse().unwrap();
        let dec = cardlane::crypto::BdkDecryptor::new(&bdk).unwrap();
        for (iface, mode) in [
            (Interface::Contact, "05"),
            (Interface::Contactless, "07"),
            (Interface::Msr, "90"),
        ] {
            let data = read_data(&card, iface, &keys).unwrap();
            let frame = Response::new(0x02, Status::Ok, &data).encode().unwrap();
            let r = decode_frame(&frame).unwrap();
            assert_eq!(r.entry_mode.map(|m| m.code()).as_deref(), Some(mode));
            assert_eq!(r.last4.as_deref(), Some("0119"));
            assert_eq!(r.ksn.as_ref().unwrap().to_hex(), "FFFF9876543210E00001");
            let d = decrypt_read(&r, &dec, None).unwrap();
            let t2 = d.decrypted.unwrap()[1]
                .as_ref()
                .unwrap()
                .expose()
                .to_string();
            assert!(t2.starts_with(";4761739001010119=2812"), "{iface:?}");
        }
    }
}
