//! Constant-time single DES and the TDES DUKPT steps on it, for keys that are not test keys.
//!
//! Why: [`super::des_fast`] (and the RustCrypto `des` crate) index tables with key and data
//! bits, so which cache lines a block touches depends on the key: a cache-timing channel on a
//! shared host. Here nothing secret picks an address or a branch. Permutations move bits by
//! public positions (shifts by constants), and every S-box lookup reads all 64 entries and keeps
//! the wanted one with a mask computed arithmetically. The price is speed (see BENCHMARKS.md):
//! the fast core serves test and lab keys, this one real BDKs ([`super::DesCore`]).
//!
//! Bit numbering as FIPS 46-3 (bit 1 = most significant). Tables come from des_fast, which is
//! verified against the standard vectors; this core is checked against both below.
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::des_fast::{P, PC1, PC2, SBOX, SHIFTS};
use super::error::CryptoError;
use super::secret::Key16;
use super::tdes_dukpt::{TdesKsn, TdesVariant};

const IP: [u8; 64] = [
    58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
    64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3, 61,
    53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7,
];

/// The final permutation is the inverse of IP.
const FP: [u8; 64] = invert(&IP);

const E: [u8; 48] = [
    32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17, 16, 17, 18,
    19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1,
];

const fn invert(t: &[u8; 64]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        out[t[i] as usize - 1] = (i + 1) as u8;
        i += 1;
    }
    out
}

/// S-boxes re-indexed by the whole 6-bit input (row = b1 b6, column = b2..b5), so a lookup is
/// one pass over 64 entries.
const SB: [[u8; 64]; 8] = by_input();

const fn by_input() -> [[u8; 64]; 8] {
    let mut t = [[0u8; 64]; 8];
    let mut j = 0;
    while j < 8 {
        let mut x = 0;
        while x < 64 {
            let row = ((x >> 4) & 2) | (x & 1);
            let col = (x >> 1) & 0xF;
            t[j][x] = SBOX[j][row * 16 + col];
            x += 1;
        }
        j += 1;
    }
    t
}

/// Output bit i (MSB first, `table.len()` bits) = input bit `table[i]` of a `width`-bit input.
/// Shift amounts are table constants: no secret-dependent address or branch.
#[inline]
fn permute(x: u64, width: u32, table: &[u8]) -> u64 {
    let n = table.len() as u32;
    let mut out = 0u64;
    for (i, &src) in table.iter().enumerate() {
        let bit = (x >> (width - u32::from(src))) & 1;
        out |= bit << (n - 1 - i as u32);
    }
    out
}

/// S-box `j` at the secret 6-bit `x`: every entry is read; the one at `x` survives a mask that
/// is all ones exactly when the entry's index equals `x`.
#[inline]
fn sbox(j: usize, x: u32) -> u32 {
    let mut acc = 0u32;
    for (e, &v) in SB.get(j).unwrap_or(&[0; 64]).iter().enumerate() {
        let d = x ^ e as u32; // < 64
        let hit = (d.wrapping_sub(1) >> 31) & 1; // 1 only for d == 0 (a borrow into bit 31)
        acc |= u32::from(v) & hit.wrapping_neg();
    }
    acc
}

fn f(r: u32, k: u64) -> u32 {
    let t = permute(u64::from(r), 32, &E) ^ k;
    let mut s = 0u32;
    for j in 0..8 {
        let x = ((t >> (42 - 6 * j)) & 0x3F) as u32;
        s |= sbox(j, x) << (28 - 4 * j);
    }
    permute(u64::from(s), 32, &P) as u32
}

/// A single-DES key schedule for the constant-time core. Zeroed on drop; `Debug` prints nothing.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CtDes {
    subkeys: [u64; 16],
}

impl std::fmt::Debug for CtDes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CtDes(***)")
    }
}

impl CtDes {
    pub fn new(key: u64) -> CtDes {
        let cd = permute(key, 64, &PC1);
        let (mut c, mut d) = ((cd >> 28) as u32, (cd & 0x0FFF_FFFF) as u32);
        let mut subkeys = [0u64; 16];
        for (k, &s) in subkeys.iter_mut().zip(SHIFTS.iter()) {
            let s = u32::from(s);
            c = ((c << s) | (c >> (28 - s))) & 0x0FFF_FFFF;
            d = ((d << s) | (d >> (28 - s))) & 0x0FFF_FFFF;
            *k = permute((u64::from(c) << 28) | u64::from(d), 56, &PC2);
        }
        CtDes { subkeys }
    }

    fn rounds(&self, block: u64, decrypt: bool) -> u64 {
        let x = permute(block, 64, &IP);
        let (mut l, mut r) = ((x >> 32) as u32, x as u32);
        for i in 0..16 {
            // The order of round keys is public (the direction), never data-dependent.
            let k = if decrypt {
                self.subkeys[15 - i]
            } else {
                self.subkeys[i]
            };
            let next = l ^ f(r, k);
            l = r;
            r = next;
        }
        permute((u64::from(r) << 32) | u64::from(l), 64, &FP)
    }

    pub fn encrypt(&self, block: u64) -> u64 {
        self.rounds(block, false)
    }

    pub fn decrypt(&self, block: u64) -> u64 {
        self.rounds(block, true)
    }
}

/// Two-key TDES (EDE) on the constant-time core.
#[derive(Clone, Debug)]
pub struct CtTdes {
    k1: CtDes,
    k2: CtDes,
}

impl CtTdes {
    pub(crate) fn new(key: &Key16) -> CtTdes {
        CtTdes {
            k1: CtDes::new(key.l),
            k2: CtDes::new(key.r),
        }
    }

    pub fn encrypt(&self, b: u64) -> u64 {
        self.k1.encrypt(self.k2.decrypt(self.k1.encrypt(b)))
    }

    pub fn decrypt(&self, b: u64) -> u64 {
        self.k1.decrypt(self.k2.encrypt(self.k1.decrypt(b)))
    }
}

/// The mask X9.24-1 XORs into a key for the left half of IPEK and of each new key.
const C0: Key16 = Key16 {
    l: 0xC0C0_C0C0_0000_0000,
    r: 0xC0C0_C0C0_0000_0000,
};

/// IPEK (dukpt.md: both halves from the KSN's first 8 bytes, counter bits cleared).
pub(crate) fn ipek(bdk: &Key16, ksn: &TdesKsn) -> Key16 {
    let x = ksn.high64() & !0x1F;
    Key16 {
        l: CtTdes::new(bdk).encrypt(x),
        r: CtTdes::new(&bdk.xor(&C0)).encrypt(x),
    }
}

/// One current-key step: R(k) = k.r XOR DES(k.l, k.r XOR reg); new key = R(k ^ C0) ‖ R(k).
fn nrkgp(key: &Key16, reg: u64) -> Key16 {
    let half = |k: &Key16| k.r ^ CtDes::new(k.l).encrypt(k.r ^ reg);
    Key16 {
        l: half(&key.xor(&C0)),
        r: half(key),
    }
}

/// Current key for the KSN's counter. The counter travels in clear with the data, so branching
/// on its bits leaks nothing.
pub(crate) fn current_key(ipek: &Key16, ksn: &TdesKsn) -> Key16 {
    let counter = u64::from(ksn.counter());
    let mut reg = ksn.low64() & !0x1F_FFFF;
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

/// The one-way function of the data key: each half of the variant encrypted under the variant.
pub(crate) fn owf(v: &Key16) -> Key16 {
    let t = CtTdes::new(v);
    Key16 {
        l: t.encrypt(v.l),
        r: t.encrypt(v.r),
    }
}

/// A variant of the current key (a public mask XORed in), through the one-way function for
/// data keys when `owf_data` is set.
pub(crate) fn variant(cur: &Key16, v: TdesVariant, owf_data: bool) -> Key16 {
    let k = super::tdes_dukpt::variant_fast(cur, v);
    let data = matches!(v, TdesVariant::DataRequest | TdesVariant::DataResponse);
    if owf_data && data {
        owf(&k)
    } else {
        k
    }
}

fn blocks(data: &[u8]) -> Result<(), CryptoError> {
    if data.len() % 8 != 0 {
        return Err(CryptoError::PartialBlock {
            block: 8,
            got: data.len(),
        });
    }
    Ok(())
}

fn iv64(iv: Option<&[u8]>) -> Result<u64, CryptoError> {
    match iv {
        None => Ok(0),
        Some(v) => {
            let a: [u8; 8] = v.try_into().map_err(|_| CryptoError::BadIvLength {
                expected: 8,
                got: v.len(),
            })?;
            Ok(u64::from_be_bytes(a))
        }
    }
}

/// TDES-CBC in place (whole 8-byte blocks) on the constant-time core.
pub(crate) fn cbc(
    key: &Key16,
    iv: Option<&[u8]>,
    data: &mut [u8],
    encrypt: bool,
) -> Result<(), CryptoError> {
    blocks(data)?;
    let t = CtTdes::new(key);
    let mut chain = iv64(iv)?;
    for chunk in data.chunks_exact_mut(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        let x = u64::from_be_bytes(b);
        let y = if encrypt {
            chain = t.encrypt(x ^ chain);
            chain
        } else {
            let p = t.decrypt(x) ^ chain;
            chain = x;
            p
        };
        chunk.copy_from_slice(&y.to_be_bytes());
        b.zeroize();
    }
    Ok(())
}

/// TDES-ECB decryption of whole blocks in place (PIN blocks).
pub(crate) fn ecb_decrypt(key: &Key16, data: &mut [u8]) -> Result<(), CryptoError> {
    blocks(data)?;
    let t = CtTdes::new(key);
    for chunk in data.chunks_exact_mut(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        chunk.copy_from_slice(&t.decrypt(u64::from_be_bytes(b)).to_be_bytes());
        b.zeroize();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::des_fast::{DesKey, Tdes};
    use crate::crypto::tdes_dukpt;
    use proptest::prelude::*;

    fn h(s: &str) -> u64 {
        u64::from_str_radix(s, 16).unwrap()
    }

    /// FIPS 81 / the classic DES examples, written out by hand.
    #[test]
    fn known_answers() {
        for (k, p, c) in [
            ("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405"),
            ("0123456789ABCDEF", "4E6F772069732074", "3FA40E8A984D4815"),
            ("0E329232EA6D0D73", "8787878787878787", "0000000000000000"),
            ("0101010101010101", "95F8A5E5DD31D900", "8000000000000000"),
        ] {
            let d = CtDes::new(h(k));
            assert_eq!(d.encrypt(h(p)), h(c), "{k} {p}");
            assert_eq!(d.decrypt(h(c)), h(p), "{k} {c}");
        }
    }

    fn k16(s: &str) -> Key16 {
        Key16 {
            l: h(&s[..16]),
            r: h(&s[16..]),
        }
    }

    /// Every KSN of X9.24-1 annex A (tests/vectors): IPEK, PIN key, data keys with the one-way
    /// function, and the encrypted request data, all on this core.
    #[test]
    fn x9_24_vectors() {
        let v: serde_json::Value = serde_json::from_str(include_str!(
            "../../tests/vectors/tdes_dukpt_x9_24_1_2009.json"
        ))
        .unwrap();
        let bdk = k16(v["bdk"].as_str().unwrap());
        let data = hex::decode(v["transaction_data_padded_hex"].as_str().unwrap()).unwrap();
        let mut n = 0;
        for seq in ["initial_sequence", "rollover_sequence"] {
            for e in v[seq].as_array().unwrap() {
                let ksn =
                    TdesKsn::from_slice(&hex::decode(e["ksn"].as_str().unwrap()).unwrap()).unwrap();
                let ik = ipek(&bdk, &ksn);
                let want = k16(v["ipek"].as_str().unwrap());
                assert_eq!((ik.l, ik.r), (want.l, want.r));
                let cur = current_key(&ik, &ksn);
                for (field, var) in [
                    ("pin_key", TdesVariant::Pin),
                    ("data_request_key_owf", TdesVariant::DataRequest),
                    ("data_response_key_owf", TdesVariant::DataResponse),
                ] {
                    let got = variant(&cur, var, true);
                    let want = k16(e[field].as_str().unwrap());
                    assert_eq!((got.l, got.r), (want.l, want.r), "{} {field}", e["ksn"]);
                }
                let mut buf = data.clone();
                cbc(
                    &variant(&cur, TdesVariant::DataRequest, true),
                    None,
                    &mut buf,
                    true,
                )
                .unwrap();
                assert_eq!(
                    hex::encode_upper(&buf),
                    e["enc_data_request"].as_str().unwrap(),
                    "{}",
                    e["ksn"]
                );
                cbc(
                    &variant(&cur, TdesVariant::DataRequest, true),
                    None,
                    &mut buf,
                    false,
                )
                .unwrap();
                assert_eq!(buf, data);
                // The PIN block of the vector, deciphered on this core.
                let block = hex::decode(e["enc_pinblock"].as_str().unwrap()).unwrap();
                let pin = crate::crypto::pin_block_decrypt_on(
                    crate::crypto::DesCore::ConstantTime,
                    &hex::decode(v["bdk"].as_str().unwrap()).unwrap(),
                    &crate::crypto::Ksn::Tdes(ksn),
                    v["pan"].as_str().unwrap(),
                    &block,
                    None,
                )
                .unwrap();
                assert_eq!(pin.as_str(), v["pin"].as_str().unwrap());
                n += 1;
            }
        }
        assert_eq!(n, 34);
    }

    proptest! {
        /// Block for block the same as the fast core, both ways.
        #[test]
        fn same_as_the_fast_core(k: u64, b: u64, k2: u64) {
            let ct = CtDes::new(k);
            let fast = DesKey::new(k);
            prop_assert_eq!(ct.encrypt(b), fast.encrypt(b));
            prop_assert_eq!(ct.decrypt(b), fast.decrypt(b));
            let key = Key16 { l: k, r: k2 };
            let t = Tdes::from_halves(k, k2);
            prop_assert_eq!(CtTdes::new(&key).encrypt(b), t.encrypt(b));
            prop_assert_eq!(CtTdes::new(&key).decrypt(b), t.decrypt(b));
        }

        /// The DUKPT chain gives the fast path's keys for any BDK and counter.
        #[test]
        fn dukpt_same_as_the_fast_path(l: u64, r: u64, ksn: [u8; 10]) {
            let bdk = Key16 { l, r };
            let ksn = TdesKsn::from_slice(&ksn).unwrap();
            let a = current_key(&ipek(&bdk, &ksn), &ksn);
            let b = tdes_dukpt::current_key_fast(&tdes_dukpt::ipek_fast(&bdk, &ksn), &ksn);
            prop_assert_eq!((a.l, a.r), (b.l, b.r));
            let d = variant(&a, TdesVariant::DataRequest, true);
            let e = tdes_dukpt::owf_fast(&tdes_dukpt::variant_fast(&b, TdesVariant::DataRequest));
            prop_assert_eq!((d.l, d.r), (e.l, e.r));
        }
    }
}
