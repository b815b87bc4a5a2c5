//! One entry point per operation for both schemes: the scheme follows the KSN's length
//! (10 bytes TDES X9.24-1, 12 bytes AES X9.24-3). This is what the CLI and the gateway
//! simulator call.
use rand::RngCore;
use zeroize::Zeroizing;

use super::aes_dukpt::{self, AesKsn, AesUsage, KeyType};
use super::error::CryptoError;
use super::mac;
use super::modes::{self, AesAny};
use super::pinblock::{self, PinFormat};
use super::secret::SecretKey;
use super::tdes_dukpt::{self, TdesKsn, TdesVariant};

/// A KSN, typed by scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ksn {
    Tdes(TdesKsn),
    Aes(AesKsn),
}

impl Ksn {
    pub fn from_slice(b: &[u8]) -> Result<Self, CryptoError> {
        match b.len() {
            10 => Ok(Ksn::Tdes(TdesKsn::from_slice(b)?)),
            12 => Ok(Ksn::Aes(AesKsn::from_slice(b)?)),
            got => Err(CryptoError::BadKsnLength {
                expected: "10 (TDES) or 12 (AES)",
                got,
            }),
        }
    }

    /// Whether a reader could have sent this KSN with a transaction. Counter 0 names the initial
    /// key itself, which no transaction uses; a counter with more one-bits than a device uses
    /// (10 TDES, 16 AES) lies past the device's last key. The host can derive either, so the
    /// derivations accept them; the lab tools ask this first, so a mistyped KSN is reported
    /// rather than answered with a key no reader will ever match.
    pub fn check_transaction_counter(&self) -> Result<(), CryptoError> {
        let (counter, max) = match self {
            Ksn::Tdes(k) => (k.counter(), super::tdes_dukpt::MAX_DEVICE_BITS),
            Ksn::Aes(k) => (k.counter(), super::aes_dukpt::MAX_DEVICE_BITS),
        };
        if counter == 0 {
            return Err(CryptoError::ZeroCounter);
        }
        let bits = counter.count_ones();
        if bits > max {
            return Err(CryptoError::CounterExhausted { bits, max });
        }
        Ok(())
    }
}

/// Which key to derive. The AES-only usages (`MacBoth`, `DataBoth`, `Kek`) fail for TDES.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// IPEK (TDES) or IK (AES).
    Initial,
    Transaction,
    Pin,
    MacRequest,
    MacResponse,
    DataRequest,
    DataResponse,
    MacBoth,
    DataBoth,
    Kek,
}

/// Which block cipher encrypts the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCipher {
    Tdes,
    /// AES-CBC; with a TDES KSN the ID TECH option, AES-128 under the 16-byte TDES key.
    Aes,
}

fn tdes_variant(u: Usage) -> Result<TdesVariant, CryptoError> {
    Ok(match u {
        Usage::Pin => TdesVariant::Pin,
        Usage::MacRequest => TdesVariant::MacRequest,
        Usage::MacResponse => TdesVariant::MacResponse,
        Usage::DataRequest => TdesVariant::DataRequest,
        Usage::DataResponse => TdesVariant::DataResponse,
        _ => {
            return Err(CryptoError::Unsupported(
                "this key usage exists only in AES DUKPT",
            ))
        }
    })
}

fn aes_usage(u: Usage) -> Option<AesUsage> {
    Some(match u {
        Usage::Pin => AesUsage::Pin,
        Usage::MacRequest => AesUsage::MacGenerate,
        Usage::MacResponse => AesUsage::MacVerify,
        Usage::MacBoth => AesUsage::MacBoth,
        Usage::DataRequest => AesUsage::DataEncrypt,
        Usage::DataResponse => AesUsage::DataDecrypt,
        Usage::DataBoth => AesUsage::DataBoth,
        Usage::Kek => AesUsage::Kek,
        Usage::Initial | Usage::Transaction => return None,
    })
}

/// The working key type actually used: the requested one, or the BDK's own AES size.
pub fn effective_key_type(
    bdk: &[u8],
    ksn: &Ksn,
    kt: Option<KeyType>,
) -> Result<KeyType, CryptoError> {
    match ksn {
        Ksn::Tdes(_) => match kt {
            None | Some(KeyType::Tdes2) => Ok(KeyType::Tdes2),
            Some(_) => Err(CryptoError::Unsupported(
                "--key-type applies to AES DUKPT only",
            )),
        },
        Ksn::Aes(_) => match kt {
            Some(k) => Ok(k),
            None => KeyType::aes_for_len(bdk.len()),
        },
    }
}

/// Derives the key of `usage` for `ksn` from the BDK. TDES data keys include the one-way
/// function when `owf`; `key_type` picks the AES DUKPT working-key type.
pub fn derive_key(
    bdk: &[u8],
    ksn: &Ksn,
    usage: Usage,
    key_type: Option<KeyType>,
    owf: bool,
) -> Result<SecretKey, CryptoError> {
    let kt = effective_key_type(bdk, ksn, key_type)?;
    match ksn {
        Ksn::Tdes(k) => match usage {
            Usage::Initial => tdes_dukpt::ipek(bdk, k),
            Usage::Transaction => tdes_dukpt::transaction_key(bdk, k),
            u => {
                let v = tdes_variant(u)?;
                let txn = tdes_dukpt::transaction_key(bdk, k)?;
                tdes_dukpt::variant_key(txn.as_bytes(), v, owf)
            }
        },
        Ksn::Aes(k) => match aes_usage(usage) {
            None if usage == Usage::Initial => aes_dukpt::initial_key(bdk, k),
            None => aes_dukpt::transaction_key(bdk, k),
            Some(u) => {
                let txn = aes_dukpt::transaction_key(bdk, k)?;
                aes_dukpt::working_key(txn.as_bytes(), k, u, kt)
            }
        },
    }
}

/// Default cipher for a key: TDES for TDES DUKPT and TDES-type working keys, AES otherwise.
fn pick_cipher(ksn: &Ksn, kt: KeyType, usage: Usage, cipher: Option<DataCipher>) -> DataCipher {
    cipher.unwrap_or(match ksn {
        Ksn::Tdes(_) => DataCipher::Tdes,
        Ksn::Aes(_) if matches!(usage, Usage::Initial | Usage::Transaction) || kt.is_aes() => {
            DataCipher::Aes
        }
        Ksn::Aes(_) => DataCipher::Tdes,
    })
}

/// CBC with `key` under `cipher`, in place; `data` must be whole blocks.
pub fn cbc_with_key(
    key: &[u8],
    cipher: DataCipher,
    iv: Option<&[u8]>,
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    match cipher {
        DataCipher::Tdes => {
            let t = modes::tdes_from_key(key)?;
            if encrypt {
                modes::tdes_cbc_encrypt(&t, iv, data)
            } else {
                modes::tdes_cbc_decrypt(&t, iv, data)
            }
        }
        DataCipher::Aes => {
            let c = AesAny::new(key)?;
            if encrypt {
                modes::aes_cbc_encrypt(&c, iv, data)
            } else {
                modes::aes_cbc_decrypt(&c, iv, data)
            }
        }
    }
}

fn block_size(c: DataCipher) -> usize {
    match c {
        DataCipher::Tdes => 8,
        DataCipher::Aes => 16,
    }
}

/// Encrypts `data` (zero-padded to the block size) under the derived key, CBC.
#[allow(clippy::too_many_arguments)]
pub fn encrypt_data(
    bdk: &[u8],
    ksn: &Ksn,
    usage: Usage,
    key_type: Option<KeyType>,
    cipher: Option<DataCipher>,
    iv: Option<&[u8]>,
    owf: bool,
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let kt = effective_key_type(bdk, ksn, key_type)?;
    let c = pick_cipher(ksn, kt, usage, cipher);
    let key = derive_key(bdk, ksn, usage, key_type, owf)?;
    let mut buf = modes::zero_pad(data, block_size(c));
    cbc_with_key(key.as_bytes(), c, iv, &mut buf, true)?;
    Ok(buf)
}

/// Decrypts whole CBC blocks under the derived key; the padding stays in the output.
#[allow(clippy::too_many_arguments)]
pub fn decrypt_data(
    bdk: &[u8],
    ksn: &Ksn,
    usage: Usage,
    key_type: Option<KeyType>,
    cipher: Option<DataCipher>,
    iv: Option<&[u8]>,
    owf: bool,
    data: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let kt = effective_key_type(bdk, ksn, key_type)?;
    let c = pick_cipher(ksn, kt, usage, cipher);
    let key = derive_key(bdk, ksn, usage, key_type, owf)?;
    let mut buf = Zeroizing::new(data.to_vec());
    cbc_with_key(key.as_bytes(), c, iv, &mut buf, false)?;
    Ok(buf)
}

/// TDES: X9.19 retail MAC (8 bytes) under the MAC request/response variant. AES: AES-CMAC
/// (16 bytes) under the MAC working key (generate = request, verify = response, or both).
pub fn mac(
    bdk: &[u8],
    ksn: &Ksn,
    usage: Usage,
    key_type: Option<KeyType>,
    data: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    if !matches!(
        usage,
        Usage::MacRequest | Usage::MacResponse | Usage::MacBoth
    ) {
        return Err(CryptoError::Unsupported(
            "a MAC needs a mac-request or mac-response key",
        ));
    }
    let key = derive_key(bdk, ksn, usage, key_type, false)?;
    match ksn {
        Ksn::Tdes(_) => Ok(mac::retail_mac(key.as_bytes(), data)?.to_vec()),
        Ksn::Aes(_) => {
            if !effective_key_type(bdk, ksn, key_type)?.is_aes() {
                return Err(CryptoError::Unsupported(
                    "AES-CMAC needs an AES working key",
                ));
            }
            Ok(mac::aes_cmac(key.as_bytes(), data)?.to_vec())
        }
    }
}

/// The PIN key and whether it is AES (format 4) or TDES (formats 0, 1, 3).
fn pin_key(
    bdk: &[u8],
    ksn: &Ksn,
    key_type: Option<KeyType>,
) -> Result<(SecretKey, bool), CryptoError> {
    let kt = effective_key_type(bdk, ksn, key_type)?;
    if matches!(kt, KeyType::Hmac128) {
        return Err(CryptoError::Unsupported("a PIN key cannot be an HMAC key"));
    }
    Ok((
        derive_key(bdk, ksn, Usage::Pin, key_type, false)?,
        kt.is_aes(),
    ))
}

/// Encrypts a PIN block under the DUKPT PIN key. Default format: 0 for TDES keys, 4 for AES.
pub fn pin_block_encrypt_with_rng(
    bdk: &[u8],
    ksn: &Ksn,
    pin: &str,
    pan: &str,
    format: Option<PinFormat>,
    key_type: Option<KeyType>,
    rng: &mut impl RngCore,
) -> Result<Vec<u8>, CryptoError> {
    let (key, aes) = pin_key(bdk, ksn, key_type)?;
    let format = format.unwrap_or(if aes {
        PinFormat::Iso4
    } else {
        PinFormat::Iso0
    });
    match (aes, format) {
        (true, PinFormat::Iso4) => {
            let mut r = Zeroizing::new([0u8; 8]);
            rng.fill_bytes(&mut r[..]);
            let field = pinblock::pin_field_iso4(pin, &r)?;
            let c = AesAny::new(key.as_bytes())?;
            Ok(pinblock::encipher_iso4(&c, &field, pan)?.to_vec())
        }
        (false, PinFormat::Iso0 | PinFormat::Iso1 | PinFormat::Iso3) => {
            let fill = pinblock::random_fill(format, rng);
            let clear = pinblock::clear_block_8(format, pin, pan, &fill)?;
            let mut buf = clear.to_vec();
            modes::tdes_ecb_encrypt(&modes::tdes_from_key(key.as_bytes())?, &mut buf)?;
            Ok(buf)
        }
        (true, _) => Err(CryptoError::Unsupported(
            "an AES PIN key takes format 4 only",
        )),
        (false, _) => Err(CryptoError::Unsupported("format 4 needs an AES PIN key")),
    }
}

pub fn pin_block_encrypt(
    bdk: &[u8],
    ksn: &Ksn,
    pin: &str,
    pan: &str,
    format: Option<PinFormat>,
    key_type: Option<KeyType>,
) -> Result<Vec<u8>, CryptoError> {
    pin_block_encrypt_with_rng(
        bdk,
        ksn,
        pin,
        pan,
        format,
        key_type,
        &mut rand::thread_rng(),
    )
}

/// Decrypts and validates a PIN block; returns the PIN's digits.
/// [`pin_block_decrypt`] on the given DES core (AES keys never use DES).
pub fn pin_block_decrypt_on(
    core: super::reader::DesCore,
    bdk: &[u8],
    ksn: &Ksn,
    pan: &str,
    block: &[u8],
    key_type: Option<KeyType>,
) -> Result<Zeroizing<String>, CryptoError> {
    use super::des_ct;
    match (core, ksn) {
        (super::reader::DesCore::ConstantTime, Ksn::Tdes(k)) => {
            let ipek = des_ct::ipek(&super::tdes_dukpt::key16(bdk)?, k);
            let key = des_ct::variant(&des_ct::current_key(&ipek, k), TdesVariant::Pin, false);
            let mut buf = Zeroizing::new(block.to_vec());
            if buf.len() != 8 {
                return Err(CryptoError::BadPinBlock(
                    super::error::PinBlockFault::Size { expected: 8 },
                ));
            }
            des_ct::ecb_decrypt(&key, &mut buf)?;
            pinblock::decode_block_8(&buf, pan)
        }
        _ => pin_block_decrypt(bdk, ksn, pan, block, key_type),
    }
}

pub fn pin_block_decrypt(
    bdk: &[u8],
    ksn: &Ksn,
    pan: &str,
    block: &[u8],
    key_type: Option<KeyType>,
) -> Result<Zeroizing<String>, CryptoError> {
    let (key, aes) = pin_key(bdk, ksn, key_type)?;
    if aes {
        let c = AesAny::new(key.as_bytes())?;
        pinblock::decipher_iso4(&c, block, pan)
    } else {
        let mut buf = Zeroizing::new(block.to_vec());
        if buf.len() != 8 {
            return Err(CryptoError::BadPinBlock(
                super::error::PinBlockFault::Size { expected: 8 },
            ));
        }
        modes::tdes_ecb_decrypt(&modes::tdes_from_key(key.as_bytes())?, &mut buf)?;
        pinblock::decode_block_8(&buf, pan)
    }
}
