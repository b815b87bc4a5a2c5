//! TDES DUKPT, ANSI X9.24-1:2009 annex A: KSN, IPEK, current (transaction) key, variants,
//! data keys, and the device-side next KSN. Keys are handled as pairs of `u64` so the fast DES
//! core ([`super::des_fast`]) runs without byte shuffling.
use super::des_fast::{self, DesKey};
use super::error::CryptoError;
use super::secret::{Key16, SecretKey};

/// The C0C0… mask X9.24-1 XORs into a key for the left half of IPEK and of each new key.
const C0_HALF: u64 = 0xC0C0_C0C0_0000_0000;
/// Counter: low 21 bits of the KSN.
const COUNTER_MASK: u64 = 0x1F_FFFF;
/// A device uses counters with at most ten one-bits.
pub const MAX_DEVICE_BITS: u32 = 10;

/// A 10-byte TDES KSN. Kept as bytes: no integer or hex arithmetic beyond the counter.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TdesKsn([u8; 10]);

impl TdesKsn {
    pub fn from_slice(b: &[u8]) -> Result<Self, CryptoError> {
        let a: [u8; 10] = b.try_into().map_err(|_| CryptoError::BadKsnLength {
            expected: "10",
            got: b.len(),
        })?;
        Ok(TdesKsn(a))
    }

    pub fn as_bytes(&self) -> &[u8; 10] {
        &self.0
    }

    /// The low 64 bits (bytes 2..10), the form the key derivation works on.
    pub(crate) fn low64(&self) -> u64 {
        let [_, _, b @ ..] = self.0;
        u64::from_be_bytes(b)
    }

    /// Bytes 0..8, the form the IPEK derivation works on.
    pub(crate) fn high64(&self) -> u64 {
        let [b @ .., _, _] = self.0;
        u64::from_be_bytes(b)
    }

    pub fn counter(&self) -> u32 {
        (self.low64() & COUNTER_MASK) as u32
    }

    /// Same KSN with its counter replaced (bits above 21 are dropped).
    pub fn with_counter(&self, counter: u32) -> Self {
        let low = (self.low64() & !COUNTER_MASK) | (counter as u64 & COUNTER_MASK);
        let mut b = self.0;
        let [_, _, tail @ ..] = &mut b;
        *tail = low.to_be_bytes();
        TdesKsn(b)
    }

    /// The initial KSN: counter cleared.
    pub fn initial(&self) -> Self {
        self.with_counter(0)
    }
}

/// Which variant of the transaction key (X9.24-1 table A-1 masks).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TdesVariant {
    Pin,
    MacRequest,
    MacResponse,
    DataRequest,
    DataResponse,
}

impl TdesVariant {
    fn mask(self) -> Key16 {
        let byte = match self {
            TdesVariant::Pin => 0xFFu64,
            TdesVariant::MacRequest => 0xFF << 8,
            TdesVariant::MacResponse => 0xFF << 24,
            TdesVariant::DataRequest => 0xFF << 16,
            TdesVariant::DataResponse => 0xFF << 32,
        };
        Key16 { l: byte, r: byte }
    }
}

pub(crate) fn key16(bdk: &[u8]) -> Result<Key16, CryptoError> {
    let a: &[u8; 16] = bdk.try_into().map_err(|_| CryptoError::BadKeyLength {
        expected: "16",
        got: bdk.len(),
    })?;
    Ok(Key16::from_bytes(a))
}

/// Schedules of the mask halves, computed once: the key schedule is linear, so the schedule of
/// `k ^ C0C0C0C000000000` is `schedule(k) ^ schedule(C0C0C0C000000000)`.
fn c0_schedule() -> &'static DesKey {
    static S: std::sync::OnceLock<DesKey> = std::sync::OnceLock::new();
    S.get_or_init(|| DesKey::new(C0_HALF))
}

/// IPEK from a BDK (16 bytes) and any KSN of the device (its counter is ignored).
pub(crate) fn ipek_fast(bdk: &Key16, ksn: &TdesKsn) -> Key16 {
    // Clear the counter bits that fall in bytes 0..8 (low 5 bits of byte 7) for both halves.
    let x = ksn.high64() & !0x1F;
    let (l, r) = des_fast::tdes2_pair_fresh(bdk.l, bdk.r, Some(c0_schedule()), x, x);
    Key16 { l, r }
}

/// Non-reversible key generation process: one step of the current-key derivation.
#[inline]
fn nrkgp(key: &Key16, reg: u64) -> Key16 {
    let mr = key.r ^ C0_HALF;
    let (p, m) = des_fast::des_pair_fresh(key.l, c0_schedule(), key.r ^ reg, mr ^ reg);
    Key16 {
        l: mr ^ m,
        r: key.r ^ p,
    }
}

/// Current key for `ksn`'s counter from the IPEK (host side: any counter).
pub(crate) fn current_key_fast(ipek: &Key16, ksn: &TdesKsn) -> Key16 {
    let counter = ksn.low64() & COUNTER_MASK;
    let mut reg = ksn.low64() & !COUNTER_MASK;
    let mut key = ipek.clone();
    let mut bit = 1u64 << 20;
    while bit != 0 {
        if counter & bit != 0 {
            reg |= bit;
            key = nrkgp(&key, reg);
        }
        bit >>= 1;
    }
    key
}

pub(crate) fn variant_fast(key: &Key16, v: TdesVariant) -> Key16 {
    key.xor(&v.mask())
}

/// X9.24-1 fig. A-2 one-way function: each half of the variant encrypted under the variant.
pub(crate) fn owf_fast(v: &Key16) -> Key16 {
    let (l, r) = des_fast::tdes2_pair_fresh(v.l, v.r, None, v.l, v.r);
    Key16 { l, r }
}

/// IPEK (initial key) for the BDK and the device's KSN.
pub fn ipek(bdk: &[u8], ksn: &TdesKsn) -> Result<SecretKey, CryptoError> {
    Ok(ipek_fast(&key16(bdk)?, ksn).to_secret())
}

/// The transaction (current) key for `ksn`, derived from the BDK.
pub fn transaction_key(bdk: &[u8], ksn: &TdesKsn) -> Result<SecretKey, CryptoError> {
    let ipek = ipek_fast(&key16(bdk)?, ksn);
    Ok(current_key_fast(&ipek, ksn).to_secret())
}

/// The transaction key for `ksn`, derived from an IPEK (16 bytes).
pub fn transaction_key_from_ipek(ipek: &[u8], ksn: &TdesKsn) -> Result<SecretKey, CryptoError> {
    Ok(current_key_fast(&key16(ipek)?, ksn).to_secret())
}

/// A variant of a transaction key; with `owf` the data variants go through the one-way function
/// (the "data key"). `owf` is ignored for PIN and MAC variants, which never use it.
pub fn variant_key(
    txn_key: &[u8],
    variant: TdesVariant,
    owf: bool,
) -> Result<SecretKey, CryptoError> {
    let v = variant_fast(&key16(txn_key)?, variant);
    let data = matches!(
        variant,
        TdesVariant::DataRequest | TdesVariant::DataResponse
    );
    Ok(if owf && data { owf_fast(&v) } else { v }.to_secret())
}

/// Device side: the KSN a device uses after `ksn`. A device only uses counters with at most ten
/// one-bits, so from counter `c` it moves to `c + 1` if that is valid, else adds the lowest set bit.
pub fn next_ksn(ksn: &TdesKsn) -> Result<TdesKsn, CryptoError> {
    let c = ksn.counter();
    let bits = c.count_ones();
    if bits > MAX_DEVICE_BITS {
        return Err(CryptoError::InvalidCounter {
            bits,
            max: MAX_DEVICE_BITS,
        });
    }
    let next = if bits < MAX_DEVICE_BITS {
        c + 1
    } else {
        c + (c & c.wrapping_neg())
    };
    if next > COUNTER_MASK as u32 {
        return Err(CryptoError::KsnExhausted);
    }
    Ok(ksn.with_counter(next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straightforward derivation on the `des` crate (single DES only, as the spec warns the
    /// crate's TDES rejects equal halves), used as the slow reference.
    mod slow {
        use des::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};

        pub fn des(k: [u8; 8], b: [u8; 8]) -> [u8; 8] {
            let c = des::Des::new_from_slice(&k).unwrap();
            let mut blk = GenericArray::clone_from_slice(&b);
            c.encrypt_block(&mut blk);
            blk.into()
        }
        pub fn des_d(k: [u8; 8], b: [u8; 8]) -> [u8; 8] {
            use des::cipher::BlockDecrypt;
            let c = des::Des::new_from_slice(&k).unwrap();
            let mut blk = GenericArray::clone_from_slice(&b);
            c.decrypt_block(&mut blk);
            blk.into()
        }
        pub fn ede2(k: [u8; 16], b: [u8; 8]) -> [u8; 8] {
            let (l, r) = split(k);
            des(l, des_d(r, des(l, b)))
        }
        pub fn split(k: [u8; 16]) -> ([u8; 8], [u8; 8]) {
            let mut l = [0u8; 8];
            let mut r = [0u8; 8];
            l.copy_from_slice(&k[..8]);
            r.copy_from_slice(&k[8..]);
            (l, r)
        }
        fn xor8(a: [u8; 8], b: [u8; 8]) -> [u8; 8] {
            std::array::from_fn(|i| a[i] ^ b[i])
        }
        fn xor16(a: [u8; 16], b: [u8; 16]) -> [u8; 16] {
            std::array::from_fn(|i| a[i] ^ b[i])
        }
        const M: [u8; 16] = [
            0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0, 0xC0, 0xC0, 0xC0, 0xC0, 0, 0, 0, 0,
        ];
        pub fn ipek(bdk: [u8; 16], ksn: [u8; 10]) -> [u8; 16] {
            let mut x = [0u8; 8];
            x.copy_from_slice(&ksn[..8]);
            x[7] &= 0xE0;
            let l = ede2(bdk, x);
            let r = ede2(xor16(bdk, M), x);
            let mut o = [0u8; 16];
            o[..8].copy_from_slice(&l);
            o[8..].copy_from_slice(&r);
            o
        }
        fn nrkgp(key: [u8; 16], reg: [u8; 8]) -> [u8; 16] {
            let half = |k: [u8; 16]| {
                let (l, r) = split(k);
                xor8(r, des(l, xor8(r, reg)))
            };
            let mut o = [0u8; 16];
            o[..8].copy_from_slice(&half(xor16(key, M)));
            o[8..].copy_from_slice(&half(key));
            o
        }
        pub fn current(bdk: [u8; 16], ksn: [u8; 10]) -> [u8; 16] {
            let mut key = ipek(bdk, ksn);
            let counter = u32::from_be_bytes([0, ksn[7] & 0x1F, ksn[8], ksn[9]]);
            let mut reg = [0u8; 8];
            reg.copy_from_slice(&ksn[2..]);
            reg[5] &= 0xE0;
            reg[6] = 0;
            reg[7] = 0;
            for b in (0..21).rev() {
                if counter & (1 << b) != 0 {
                    let bit = (1u64 << b).to_be_bytes();
                    reg = std::array::from_fn(|i| reg[i] | bit[i]);
                    key = nrkgp(key, reg);
                }
            }
            key
        }
    }

    fn ksn(h: &str) -> TdesKsn {
        TdesKsn::from_slice(&hex::decode(h).unwrap()).unwrap()
    }

    #[test]
    fn ansi_ipek() {
        let bdk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let k = ipek(&bdk, &ksn("FFFF9876543210E00008")).unwrap();
        assert_eq!(
            hex::encode_upper(k.as_bytes()),
            "6AC292FAA1315B4D858AB3A3D7D5933A"
        );
    }

    #[test]
    fn next_ksn_walks_device_sequence() {
        // From A.4.3: after 0x0FFC00 (10 bits) the device jumps to 0x100000.
        assert_eq!(
            next_ksn(&ksn("FFFF9876543210EFFC00")).unwrap(),
            ksn("FFFF9876543210F00000")
        );
        assert_eq!(
            next_ksn(&ksn("FFFF9876543210E00001")).unwrap(),
            ksn("FFFF9876543210E00002")
        );
        assert_eq!(
            next_ksn(&ksn("FFFF9876543210FFF800")),
            Err(CryptoError::KsnExhausted)
        );
        assert!(matches!(
            next_ksn(&ksn("FFFF9876543210E007FF")),
            Err(CryptoError::InvalidCounter { bits: 11, .. })
        ));
    }

    proptest! {
        #[test]
        fn fast_matches_slow(bdk: [u8; 16], ksn_b: [u8; 10], pick in 0usize..6) {
            // Include the edge counters and equal-halves BDKs.
            let mut ksn_b = ksn_b;
            let mut bdk = bdk;
            let edge = [0x1FF800u32, 0x100000, 0x1FFFFF, 0, 1];
            if let Some(&c) = edge.get(pick) {
                let k = TdesKsn(ksn_b).with_counter(c);
                ksn_b = *k.as_bytes();
            }
            if pick == 5 {
                let (l, _) = bdk.split_at_mut(8);
                let l: [u8; 8] = l.try_into().unwrap();
                bdk[8..].copy_from_slice(&l);
            }
            let k = TdesKsn(ksn_b);
            let got_ipek = ipek(&bdk, &k).unwrap();
            prop_assert_eq!(got_ipek.as_bytes(), &slow::ipek(bdk, ksn_b)[..]);
            let got_txn = transaction_key(&bdk, &k).unwrap();
            prop_assert_eq!(got_txn.as_bytes(), &slow::current(bdk, ksn_b)[..]);
        }

        #[test]
        fn next_ksn_properties(ksn_b: [u8; 10], c in 0u32..0x200000) {
            let k = TdesKsn(ksn_b).with_counter(c);
            match next_ksn(&k) {
                Ok(n) => {
                    prop_assert!(n.counter() > c);
                    prop_assert!(n.counter().count_ones() <= MAX_DEVICE_BITS);
                    prop_assert_eq!(n.initial(), k.initial());
                    // No valid counter is skipped in between.
                    for skipped in (c + 1)..n.counter().min(c + 4096) {
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
