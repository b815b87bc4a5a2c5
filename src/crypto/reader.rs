//! Reader data: the key a reader used and the cipher, as decoders and the simulator see them.
//! The TDES path stays on `Key16`/fast DES end to end because it is the hot path of the host.
use zeroize::Zeroizing;

use super::aes_dukpt::{self, AesUsage, KeyType};
use super::des_fast::Tdes;
use super::dukpt::{cbc_with_key, DataCipher, Ksn};
use super::error::CryptoError;
use super::modes::{self, AesAny};
use super::secret::{Key16, SecretKey};
use super::tdes_dukpt::{self, TdesVariant};

/// Which key the reader encrypted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReaderKey {
    /// Data (request) key with the one-way function (ID TECH "Data Key").
    Data,
    /// Bare data (request) variant, no one-way function.
    DataVariant,
    /// PIN variant (MagTek MagneSafe default).
    Pin,
}

/// The reader's cipher: TDES-CBC, or AES-CBC (with a TDES KSN: AES-128 under the 16-byte key).
pub type ReaderCipher = DataCipher;

/// The TDES reader key from an IPEK.
pub(crate) fn tdes_reader_key(ipek: &Key16, ksn: &tdes_dukpt::TdesKsn, key: ReaderKey) -> Key16 {
    let cur = tdes_dukpt::current_key_fast(ipek, ksn);
    match key {
        ReaderKey::Data => {
            tdes_dukpt::owf_fast(&tdes_dukpt::variant_fast(&cur, TdesVariant::DataRequest))
        }
        ReaderKey::DataVariant => tdes_dukpt::variant_fast(&cur, TdesVariant::DataRequest),
        ReaderKey::Pin => tdes_dukpt::variant_fast(&cur, TdesVariant::Pin),
    }
}

/// CBC under a 16-byte TDES DUKPT key, either as TDES-EDE2 or as AES-128.
pub(crate) fn cbc_key16(
    key: &Key16,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    match cipher {
        DataCipher::Tdes => {
            let t = Tdes::from_halves(key.l, key.r);
            if encrypt {
                modes::tdes_cbc_encrypt(&t, iv, data)
            } else {
                modes::tdes_cbc_decrypt(&t, iv, data)
            }
        }
        DataCipher::Aes => {
            let k = key.to_secret();
            let c = AesAny::new(k.as_bytes())?;
            if encrypt {
                modes::aes_cbc_encrypt(&c, iv, data)
            } else {
                modes::aes_cbc_decrypt(&c, iv, data)
            }
        }
    }
}

/// The AES DUKPT reader key: data keys are "data encrypt" (device → host), the BDK's AES size.
pub(crate) fn aes_reader_key(
    ik: &[u8],
    ksn: &aes_dukpt::AesKsn,
    key: ReaderKey,
) -> Result<super::SecretKey, CryptoError> {
    let usage = match key {
        ReaderKey::Data | ReaderKey::DataVariant => AesUsage::DataEncrypt,
        ReaderKey::Pin => AesUsage::Pin,
    };
    let txn = aes_dukpt::transaction_key_from_ik(ik, ksn)?;
    aes_dukpt::working_key(txn.as_bytes(), ksn, usage, KeyType::aes_for_len(ik.len())?)
}

fn run(
    bdk: &[u8],
    ksn: &[u8],
    key: ReaderKey,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    run_with(
        ksn,
        key,
        cipher,
        iv,
        data,
        encrypt,
        |k| Ok(tdes_dukpt::ipek_fast(&tdes_dukpt::key16(bdk)?, k)),
        |k| aes_dukpt::initial_key(bdk, k),
    )
}

/// The reader-data cipher for a KSN's scheme, with the initial key (IPEK or IK) supplied by the
/// caller: derived on the spot here, cached by [`super::cache::DukptHost`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_with(
    ksn: &[u8],
    key: ReaderKey,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    data: &mut [u8],
    encrypt: bool,
    tdes_ipek: impl FnOnce(&tdes_dukpt::TdesKsn) -> Result<Key16, CryptoError>,
    aes_ik: impl FnOnce(&aes_dukpt::AesKsn) -> Result<SecretKey, CryptoError>,
) -> Result<(), CryptoError> {
    match Ksn::from_slice(ksn)? {
        Ksn::Tdes(k) => {
            let ipek = tdes_ipek(&k)?;
            cbc_key16(&tdes_reader_key(&ipek, &k, key), cipher, iv, data, encrypt)
        }
        Ksn::Aes(k) => {
            if cipher == DataCipher::Tdes {
                return Err(CryptoError::Unsupported("AES DUKPT reader data is AES-CBC"));
            }
            let ik = aes_ik(&k)?;
            let wk = aes_reader_key(ik.as_bytes(), &k, key)?;
            cbc_with_key(wk.as_bytes(), DataCipher::Aes, iv, data, encrypt)
        }
    }
}

/// Decrypts reader ciphertext (whole blocks; padding kept) for the KSN's scheme.
pub fn decrypt_reader_data(
    bdk: &[u8],
    ksn: &[u8],
    key: ReaderKey,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let mut buf = Zeroizing::new(ct.to_vec());
    run(bdk, ksn, key, cipher, iv, &mut buf, false)?;
    Ok(buf)
}

/// Encrypts as a reader would: zero padding to the block size, CBC.
pub fn encrypt_reader_data(
    bdk: &[u8],
    ksn: &[u8],
    key: ReaderKey,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    pt: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let block = if cipher == DataCipher::Aes { 16 } else { 8 };
    let mut buf = Zeroizing::new(modes::zero_pad(pt, block));
    run(bdk, ksn, key, cipher, iv, &mut buf, true)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reader_round_trips(bdk: [u8; 32], ksn: [u8; 12], iv: [u8; 16], pt in proptest::collection::vec(any::<u8>(), 0..100), sel in 0usize..12) {
            let keys = [ReaderKey::Data, ReaderKey::DataVariant, ReaderKey::Pin];
            let rk = keys[sel % 3];
            let aes = sel % 2 == 0;
            let cipher = if aes { DataCipher::Aes } else { DataCipher::Tdes };
            let block = if aes { 16 } else { 8 };
            // TDES KSN (10 bytes, 16-byte BDK) always; AES KSN only with the AES cipher.
            let mut cases = vec![(&bdk[..16], &ksn[..10])];
            if aes {
                cases.push((&bdk[..], &ksn[..]));
            }
            for (b, k) in cases {
                let iv = Some(&iv[..block]);
                let ct = encrypt_reader_data(b, k, rk, cipher, iv, &pt).unwrap();
                prop_assert_eq!(ct.len() % block, 0);
                let back = decrypt_reader_data(b, k, rk, cipher, iv, &ct).unwrap();
                prop_assert_eq!(&back[..], &modes::zero_pad(&pt, block)[..]);
            }
        }

        #[test]
        fn never_panics_on_any_lengths(bdk in proptest::collection::vec(any::<u8>(), 0..40), ksn in proptest::collection::vec(any::<u8>(), 0..14), ct in proptest::collection::vec(any::<u8>(), 0..40), aes: bool) {
            let c = if aes { DataCipher::Aes } else { DataCipher::Tdes };
            let _ = decrypt_reader_data(&bdk, &ksn, ReaderKey::Data, c, None, &ct);
        }
    }
}
