//! AES DUKPT, ANSI X9.24-3-2017: 12-byte KSN, initial key (IK), transaction keys, and working
//! keys of every usage and key type. Derivation is AES-ECB of a 16-byte derivation-data block
//! under the parent key, one block per 128 bits of output.
use super::error::CryptoError;
use super::modes::AesAny;
use super::secret::SecretKey;

/// A device uses counters with at most sixteen one-bits.
pub const MAX_DEVICE_BITS: u32 = 16;

/// A 12-byte AES DUKPT KSN: BDK ID (4) ‖ derivation ID (4) ‖ counter (4, big-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AesKsn([u8; 12]);

impl AesKsn {
    pub fn from_slice(b: &[u8]) -> Result<Self, CryptoError> {
        let a: [u8; 12] = b.try_into().map_err(|_| CryptoError::BadKsnLength {
            expected: "12",
            got: b.len(),
        })?;
        Ok(AesKsn(a))
    }

    pub fn as_bytes(&self) -> &[u8; 12] {
        &self.0
    }

    /// The initial key ID: the first 8 bytes.
    pub fn initial_key_id(&self) -> [u8; 8] {
        let [b @ .., _, _, _, _] = self.0;
        b
    }

    pub fn counter(&self) -> u32 {
        let [.., a, b, c, d] = self.0;
        u32::from_be_bytes([a, b, c, d])
    }

    pub fn with_counter(&self, counter: u32) -> Self {
        let mut b = self.0;
        let [.., a, bb, c, d] = &mut b;
        [*a, *bb, *c, *d] = counter.to_be_bytes();
        AesKsn(b)
    }

    /// Derivation ID ‖ counter: the KSN data of every derivation but the IK's.
    fn low64(&self) -> u64 {
        let [_, _, _, _, b @ ..] = self.0;
        u64::from_be_bytes(b)
    }
}

/// Key types (X9.24-3 algorithm indicator and key length in bits).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyType {
    Tdes2,
    Tdes3,
    Aes128,
    Aes192,
    Aes256,
    /// HMAC key of 128 bits (algorithm 0005).
    Hmac128,
}

impl KeyType {
    fn algorithm(self) -> u16 {
        match self {
            KeyType::Tdes2 => 0,
            KeyType::Tdes3 => 1,
            KeyType::Aes128 => 2,
            KeyType::Aes192 => 3,
            KeyType::Aes256 => 4,
            KeyType::Hmac128 => 5,
        }
    }

    pub fn bits(self) -> u16 {
        match self {
            KeyType::Tdes2 | KeyType::Aes128 | KeyType::Hmac128 => 128,
            KeyType::Tdes3 | KeyType::Aes192 => 192,
            KeyType::Aes256 => 256,
        }
    }

    pub fn is_aes(self) -> bool {
        matches!(self, KeyType::Aes128 | KeyType::Aes192 | KeyType::Aes256)
    }

    /// The AES type of a key of this many bytes (BDK, IK, transaction key).
    pub fn aes_for_len(len: usize) -> Result<KeyType, CryptoError> {
        match len {
            16 => Ok(KeyType::Aes128),
            24 => Ok(KeyType::Aes192),
            32 => Ok(KeyType::Aes256),
            got => Err(CryptoError::BadKeyLength {
                expected: "16, 24 or 32",
                got,
            }),
        }
    }
}

/// Key usage indicators.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AesUsage {
    Kek,
    Pin,
    MacGenerate,
    MacVerify,
    MacBoth,
    DataEncrypt,
    DataDecrypt,
    DataBoth,
    KeyDerivation,
    InitialKey,
}

impl AesUsage {
    fn code(self) -> u16 {
        match self {
            AesUsage::Kek => 0x0002,
            AesUsage::Pin => 0x1000,
            AesUsage::MacGenerate => 0x2000,
            AesUsage::MacVerify => 0x2001,
            AesUsage::MacBoth => 0x2002,
            AesUsage::DataEncrypt => 0x3000,
            AesUsage::DataDecrypt => 0x3001,
            AesUsage::DataBoth => 0x3002,
            AesUsage::KeyDerivation => 0x8000,
            AesUsage::InitialKey => 0x8001,
        }
    }
}

/// One derivation: `01 | block# | usage | algorithm | bits | data` encrypted under `parent`.
fn derive(parent: &AesAny, usage: AesUsage, kt: KeyType, data: [u8; 8]) -> SecretKey {
    let bits = kt.bits();
    let len = usize::from(bits / 8);
    let mut out = Vec::with_capacity(32);
    let mut n: u8 = 1;
    while out.len() < len {
        let [u1, u2] = usage.code().to_be_bytes();
        let [a1, a2] = kt.algorithm().to_be_bytes();
        let [l1, l2] = bits.to_be_bytes();
        let [d0, d1, d2, d3, d4, d5, d6, d7] = data;
        let mut block = [1, n, u1, u2, a1, a2, l1, l2, d0, d1, d2, d3, d4, d5, d6, d7];
        parent.encrypt(&mut block);
        out.extend_from_slice(&block);
        n = n.wrapping_add(1);
    }
    out.truncate(len);
    SecretKey::new(out)
}

/// The initial key (IK) for the BDK (AES-128/192/256) and the KSN's initial key ID.
pub fn initial_key(bdk: &[u8], ksn: &AesKsn) -> Result<SecretKey, CryptoError> {
    let kt = KeyType::aes_for_len(bdk.len())?;
    let c = AesAny::new(bdk)?;
    Ok(derive(&c, AesUsage::InitialKey, kt, ksn.initial_key_id()))
}

/// The transaction key for `ksn` from the IK: one derivation per set counter bit, MSB first.
pub fn transaction_key_from_ik(ik: &[u8], ksn: &AesKsn) -> Result<SecretKey, CryptoError> {
    let kt = KeyType::aes_for_len(ik.len())?;
    let counter = ksn.counter();
    let mut wtc = ksn.low64() & !0xFFFF_FFFF;
    let mut key = SecretKey::from_slice(ik);
    let mut bit = 1u32 << 31;
    while bit != 0 {
        if counter & bit != 0 {
            wtc |= u64::from(bit);
            let c = AesAny::new(key.as_bytes())?;
            key = derive(&c, AesUsage::KeyDerivation, kt, wtc.to_be_bytes());
        }
        bit >>= 1;
    }
    Ok(key)
}

pub fn transaction_key(bdk: &[u8], ksn: &AesKsn) -> Result<SecretKey, CryptoError> {
    let ik = initial_key(bdk, ksn)?;
    transaction_key_from_ik(ik.as_bytes(), ksn)
}

/// A working key of `usage` and type `kt` from a transaction key.
pub fn working_key(
    txn_key: &[u8],
    ksn: &AesKsn,
    usage: AesUsage,
    kt: KeyType,
) -> Result<SecretKey, CryptoError> {
    let c = AesAny::new(txn_key)?;
    Ok(derive(&c, usage, kt, ksn.low64().to_be_bytes()))
}

/// Device side: the next KSN with at most sixteen counter one-bits, or `KsnExhausted`.
pub fn next_ksn(ksn: &AesKsn) -> Result<AesKsn, CryptoError> {
    let c = ksn.counter();
    let bits = c.count_ones();
    if bits > MAX_DEVICE_BITS {
        return Err(CryptoError::InvalidCounter {
            bits,
            max: MAX_DEVICE_BITS,
        });
    }
    let step = if bits < MAX_DEVICE_BITS {
        1
    } else {
        c & c.wrapping_neg()
    };
    let next = c.checked_add(step).ok_or(CryptoError::KsnExhausted)?;
    Ok(ksn.with_counter(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ksn(h: &str) -> AesKsn {
        AesKsn::from_slice(&hex::decode(h).unwrap()).unwrap()
    }

    #[test]
    fn next_ksn_edges() {
        assert_eq!(
            next_ksn(&ksn("1234567890123456FFFE8000")).unwrap(),
            ksn("1234567890123456FFFF0000")
        );
        assert_eq!(
            next_ksn(&ksn("1234567890123456FFFF0000")),
            Err(CryptoError::KsnExhausted)
        );
        // 0x1FFFF has 17 bits: never used by a device; 0x1FFFE → 0x20000.
        assert_eq!(
            next_ksn(&ksn("12345678901234560001FFFE")).unwrap(),
            ksn("123456789012345600020000")
        );
    }

    proptest! {
        #[test]
        fn next_ksn_properties(b: [u8; 12], c: u32) {
            let k = AesKsn(b).with_counter(c);
            match next_ksn(&k) {
                Ok(n) => {
                    prop_assert!(n.counter() > c);
                    prop_assert!(n.counter().count_ones() <= MAX_DEVICE_BITS);
                    prop_assert_eq!(n.initial_key_id(), k.initial_key_id());
                    for skipped in (c + 1)..n.counter().min(c.saturating_add(4096)) {
                        prop_assert!(skipped.count_ones() > MAX_DEVICE_BITS);
                    }
                }
                Err(CryptoError::KsnExhausted) => prop_assert!(c.count_ones() <= MAX_DEVICE_BITS),
                Err(CryptoError::InvalidCounter { .. }) => prop_assert!(c.count_ones() > MAX_DEVICE_BITS),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }
}
