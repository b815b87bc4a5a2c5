//! The DUKPT side of `parse::decrypt_read`: a [`TrackDecryptor`] that derives each reader key
//! from a BDK and the frame's KSN. Sans-io; used by `cardlane decode --bdk` and tests.
use zeroize::Zeroizing;

use super::dukpt::DataCipher;
use super::error::CryptoError;
use super::reader::{decrypt_reader_data, ReaderKey};
use super::secret::SecretKey;
use crate::card::{CipherKind, KeyVariant, Ksn};
use crate::parse::{DecryptError, TrackDecryptor};

/// Decrypts reader ciphertext under DUKPT keys from one BDK (TDES or AES, by the KSN's length).
/// Holds the BDK zeroed on drop; `Debug` shows only its length.
#[derive(Clone, Debug)]
pub struct BdkDecryptor {
    bdk: SecretKey,
}

impl BdkDecryptor {
    /// Accepts a 16-byte TDES BDK or a 16/24/32-byte AES BDK; the KSN of each frame picks
    /// the scheme later.
    pub fn new(bdk: &[u8]) -> Result<BdkDecryptor, CryptoError> {
        if !matches!(bdk.len(), 16 | 24 | 32) {
            return Err(CryptoError::BadKeyLength {
                expected: "16, 24 or 32",
                got: bdk.len(),
            });
        }
        Ok(BdkDecryptor {
            bdk: SecretKey::from_slice(bdk),
        })
    }
}

/// The crypto module's name for a frame's key variant.
pub fn reader_key(v: KeyVariant) -> ReaderKey {
    match v {
        KeyVariant::Data => ReaderKey::Data,
        KeyVariant::DataVariant => ReaderKey::DataVariant,
        KeyVariant::Pin => ReaderKey::Pin,
    }
}

/// The crypto module's name for a frame's cipher.
pub fn reader_cipher(c: CipherKind) -> DataCipher {
    match c {
        CipherKind::Tdes => DataCipher::Tdes,
        CipherKind::Aes => DataCipher::Aes,
    }
}

fn decrypt_error(e: CryptoError) -> DecryptError {
    match e {
        CryptoError::PartialBlock { .. } => DecryptError::BadLength,
        CryptoError::BadKeyLength { .. } => DecryptError::Other("BDK length does not suit the KSN"),
        CryptoError::BadKsnLength { .. } => DecryptError::Other("KSN length is not 10 or 12 bytes"),
        CryptoError::Unsupported(why) => DecryptError::Other(why),
        _ => DecryptError::Other("DUKPT key derivation failed"),
    }
}

impl TrackDecryptor for BdkDecryptor {
    fn decrypt(
        &self,
        ksn: &Ksn,
        variant: KeyVariant,
        cipher: CipherKind,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        decrypt_reader_data(
            self.bdk.as_bytes(),
            ksn.as_bytes(),
            reader_key(variant),
            reader_cipher(cipher),
            None,
            ciphertext,
        )
        .map_err(decrypt_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{decode_frame, decrypt_read};

    const ANSI_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
    // /work/shared/samples/04_idtech_unimag2_enhanced.txt (ID TECH UniMag II manual sample).
    const SAMPLE04: &str = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";

    fn bdk() -> BdkDecryptor {
        BdkDecryptor::new(&hex::decode(ANSI_BDK).unwrap()).unwrap()
    }

    #[test]
    fn sample_04_decrypts_under_the_ansi_test_bdk() {
        // Expected plaintexts: the sample file's published clear tracks.
        let r = decode_frame(&hex::decode(SAMPLE04).unwrap()).unwrap();
        let d = decrypt_read(&r, &bdk(), None).unwrap();
        let t = d.decrypted.unwrap();
        assert_eq!(
            t[0].as_ref().unwrap().expose(),
            "%B5150710200107861^PAYPASS/MASTERCARD^090910140000202?"
        );
        assert_eq!(
            t[1].as_ref().unwrap().expose(),
            ";5150710200107861=090910140000202?"
        );
        // The PIN variant is a different key: the same frame no longer decrypts.
        let e = decrypt_read(&r, &bdk(), Some(KeyVariant::Pin)).unwrap_err();
        assert_eq!(e.code(), "decrypt-failed");
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        assert!(BdkDecryptor::new(&[0; 15]).is_err());
        let ksn = Ksn::from_hex("FFFF9876543210E0004A").unwrap();
        let e = bdk()
            .decrypt(&ksn, KeyVariant::Data, CipherKind::Tdes, &[0; 7])
            .unwrap_err();
        assert_eq!(e, DecryptError::BadLength);
        // A 24-byte BDK with a TDES KSN: refused, never a panic.
        let b = BdkDecryptor::new(&[1; 24]).unwrap();
        assert!(b
            .decrypt(&ksn, KeyVariant::Data, CipherKind::Tdes, &[0; 8])
            .is_err());
    }

    #[test]
    fn debug_hides_the_bdk() {
        let s = format!("{:?}", bdk());
        assert!(!s.to_uppercase().contains("0123456789ABCDEF"));
        assert!(!s.contains("[1, 35"));
    }
}
