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

/// Which DES core derives TDES DUKPT keys and deciphers with them. AES DUKPT never uses DES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DesCore {
    /// [`super::des_fast`]: table lookups indexed by key and data bits (a cache-timing channel),
    /// many times faster. For public test keys and lab tools.
    Fast,
    /// [`super::des_ct`]: no secret-dependent address or branch. For real keys.
    ConstantTime,
}

/// The published X9.24-1 test BDK: everyone knows it, so timing can reveal nothing about it.
const ANSI_TEST_BDK: [u8; 16] = [
    0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10,
];

impl DesCore {
    /// The fast core for the ANSI X9.24 test BDK (the simulator's `--test-bdk`, fixtures,
    /// demo), the constant-time core for any other BDK. The comparison itself runs over every
    /// byte: it must not leak how much of a real key matches the test key.
    pub fn for_bdk(bdk: &[u8]) -> DesCore {
        let diff = if bdk.len() == ANSI_TEST_BDK.len() {
            bdk.iter()
                .zip(ANSI_TEST_BDK.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        } else {
            1
        };
        if diff == 0 {
            DesCore::Fast
        } else {
            DesCore::ConstantTime
        }
    }
}

/// The TDES reader key and CBC on the constant-time core ([`super::des_ct`]).
fn run_ct(
    bdk: &[u8],
    ksn: &tdes_dukpt::TdesKsn,
    key: ReaderKey,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    use super::des_ct;
    let cur = des_ct::current_key(&des_ct::ipek(&tdes_dukpt::key16(bdk)?, ksn), ksn);
    let rk = match key {
        ReaderKey::Data => des_ct::variant(&cur, TdesVariant::DataRequest, true),
        ReaderKey::DataVariant => des_ct::variant(&cur, TdesVariant::DataRequest, false),
        ReaderKey::Pin => des_ct::variant(&cur, TdesVariant::Pin, false),
    };
    match cipher {
        DataCipher::Tdes => des_ct::cbc(&rk, iv, data, encrypt),
        // The ID TECH option: AES-128 under the 16-byte key; no DES left in it.
        DataCipher::Aes => cbc_key16(&rk, cipher, iv, data, encrypt),
    }
}

/// [`decrypt_reader_data`] on the given DES core (the result is the same on both).
pub fn decrypt_reader_data_on(
    core: DesCore,
    bdk: &[u8],
    ksn: &[u8],
    key: ReaderKey,
    cipher: ReaderCipher,
    iv: Option<&[u8]>,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    match (core, Ksn::from_slice(ksn)?) {
        (DesCore::ConstantTime, Ksn::Tdes(k)) => {
            let mut buf = Zeroizing::new(ct.to_vec());
            run_ct(bdk, &k, key, cipher, iv, &mut buf, false)?;
            Ok(buf)
        }
        _ => decrypt_reader_data(bdk, ksn, key, cipher, iv, ct),
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

    #[test]
    fn the_test_bdk_alone_takes_the_fast_core() {
        let ansi = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(DesCore::for_bdk(&ansi), DesCore::Fast);
        let mut other = ansi.clone();
        other[15] ^= 1;
        assert_eq!(DesCore::for_bdk(&other), DesCore::ConstantTime);
        assert_eq!(DesCore::for_bdk(&ansi[..8]), DesCore::ConstantTime);
        assert_eq!(DesCore::for_bdk(&[0u8; 32]), DesCore::ConstantTime);
    }

    proptest! {
        /// Both cores decrypt reader data alike, for every key usage and both ciphers.
        #[test]
        fn both_cores_decrypt_alike(bdk: [u8; 16], ksn: [u8; 10], pt in proptest::collection::vec(any::<u8>(), 1..64), sel in 0usize..6) {
            let rk = [ReaderKey::Data, ReaderKey::DataVariant, ReaderKey::Pin][sel % 3];
            let cipher = if sel < 3 { DataCipher::Tdes } else { DataCipher::Aes };
            let ct = encrypt_reader_data(&bdk, &ksn, rk, cipher, None, &pt).unwrap();
            let fast = decrypt_reader_data_on(DesCore::Fast, &bdk, &ksn, rk, cipher, None, &ct).unwrap();
            let slow = decrypt_reader_data_on(DesCore::ConstantTime, &bdk, &ksn, rk, cipher, None, &ct).unwrap();
            prop_assert_eq!(&fast[..], &slow[..]);
            let block = if sel < 3 { 8 } else { 16 };
            prop_assert_eq!(&slow[..], &modes::zero_pad(&pt, block)[..]);
        }

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
