//! Block-cipher modes on whole blocks: TDES and AES in ECB and CBC. Callers pad; a partial
//! block is a typed error, never silently padded or truncated.
use aes::cipher::{generic_array::GenericArray, BlockDecrypt, BlockEncrypt, KeyInit};

use super::des_fast::{DesKey, Tdes};
use super::error::CryptoError;

fn be64(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(c);
    u64::from_be_bytes(b)
}

fn whole_blocks(data: &[u8], block: usize) -> Result<(), CryptoError> {
    if data.len() % block != 0 {
        return Err(CryptoError::PartialBlock {
            block,
            got: data.len(),
        });
    }
    Ok(())
}

/// TDES from a 16-byte (EDE2) or 24-byte (EDE3) key. Built from single-DES schedules, so keys
/// with equal halves work (a BDK or derived key can have them).
pub fn tdes_from_key(key: &[u8]) -> Result<Tdes, CryptoError> {
    match key.len() {
        16 => Ok(Tdes::from_halves(be64(&key[..8]), be64(&key[8..]))),
        24 => Ok(Tdes::new3(
            DesKey::new(be64(&key[..8])),
            DesKey::new(be64(&key[8..16])),
            DesKey::new(be64(&key[16..])),
        )),
        n => Err(CryptoError::BadKeyLength {
            expected: "16 or 24",
            got: n,
        }),
    }
}

fn iv_block(iv: Option<&[u8]>, size: usize) -> Result<Vec<u8>, CryptoError> {
    match iv {
        None => Ok(vec![0u8; size]),
        Some(v) if v.len() == size => Ok(v.to_vec()),
        Some(v) => Err(CryptoError::BadIvLength {
            expected: size,
            got: v.len(),
        }),
    }
}

pub fn tdes_cbc_encrypt(t: &Tdes, iv: Option<&[u8]>, data: &mut [u8]) -> Result<(), CryptoError> {
    whole_blocks(data, 8)?;
    let mut prev = be64(&iv_block(iv, 8)?);
    for chunk in data.chunks_exact_mut(8) {
        prev = t.encrypt(be64(chunk) ^ prev);
        chunk.copy_from_slice(&prev.to_be_bytes());
    }
    Ok(())
}

pub fn tdes_cbc_decrypt(t: &Tdes, iv: Option<&[u8]>, data: &mut [u8]) -> Result<(), CryptoError> {
    whole_blocks(data, 8)?;
    let mut prev = be64(&iv_block(iv, 8)?);
    // CBC decryption has no chain between blocks: four at a time keeps the DES core busy.
    let mut quads = data.chunks_exact_mut(32);
    for quad in &mut quads {
        let c: [u64; 4] =
            std::array::from_fn(|i| be64(quad.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8])));
        let p = t.decrypt_n(c);
        let chain = [prev, c[0], c[1], c[2]];
        for ((out, p), x) in quad.chunks_exact_mut(8).zip(p).zip(chain) {
            out.copy_from_slice(&(p ^ x).to_be_bytes());
        }
        prev = c[3];
    }
    let mut pairs = quads.into_remainder().chunks_exact_mut(16);
    for pair in &mut pairs {
        let c: [u64; 2] =
            std::array::from_fn(|i| be64(pair.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8])));
        let p = t.decrypt_n(c);
        for ((out, p), x) in pair.chunks_exact_mut(8).zip(p).zip([prev, c[0]]) {
            out.copy_from_slice(&(p ^ x).to_be_bytes());
        }
        prev = c[1];
    }
    for chunk in pairs.into_remainder().chunks_exact_mut(8) {
        let c = be64(chunk);
        chunk.copy_from_slice(&(t.decrypt(c) ^ prev).to_be_bytes());
        prev = c;
    }
    Ok(())
}

pub fn tdes_ecb_encrypt(t: &Tdes, data: &mut [u8]) -> Result<(), CryptoError> {
    whole_blocks(data, 8)?;
    for chunk in data.chunks_exact_mut(8) {
        chunk.copy_from_slice(&t.encrypt(be64(chunk)).to_be_bytes());
    }
    Ok(())
}

pub fn tdes_ecb_decrypt(t: &Tdes, data: &mut [u8]) -> Result<(), CryptoError> {
    whole_blocks(data, 8)?;
    for chunk in data.chunks_exact_mut(8) {
        chunk.copy_from_slice(&t.decrypt(be64(chunk)).to_be_bytes());
    }
    Ok(())
}

/// An AES key of any standard size; the `aes` crate zeroes its schedules on drop
/// only with a feature we do not rely on, so keep these short-lived.
pub enum AesAny {
    A128(aes::Aes128),
    A192(aes::Aes192),
    A256(aes::Aes256),
}

impl AesAny {
    pub fn new(key: &[u8]) -> Result<Self, CryptoError> {
        let bad = || CryptoError::BadKeyLength {
            expected: "16, 24 or 32",
            got: key.len(),
        };
        Ok(match key.len() {
            16 => AesAny::A128(aes::Aes128::new_from_slice(key).map_err(|_| bad())?),
            24 => AesAny::A192(aes::Aes192::new_from_slice(key).map_err(|_| bad())?),
            32 => AesAny::A256(aes::Aes256::new_from_slice(key).map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }

    pub fn encrypt(&self, block: &mut [u8; 16]) {
        let b = GenericArray::from_mut_slice(block);
        match self {
            AesAny::A128(c) => c.encrypt_block(b),
            AesAny::A192(c) => c.encrypt_block(b),
            AesAny::A256(c) => c.encrypt_block(b),
        }
    }

    pub fn decrypt(&self, block: &mut [u8; 16]) {
        let b = GenericArray::from_mut_slice(block);
        match self {
            AesAny::A128(c) => c.decrypt_block(b),
            AesAny::A192(c) => c.decrypt_block(b),
            AesAny::A256(c) => c.decrypt_block(b),
        }
    }
}

impl std::fmt::Debug for AesAny {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesAny(***)")
    }
}

fn xor16(a: &mut [u8; 16], b: &[u8]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

pub fn aes_cbc_encrypt(c: &AesAny, iv: Option<&[u8]>, data: &mut [u8]) -> Result<(), CryptoError> {
    whole_blocks(data, 16)?;
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&iv_block(iv, 16)?);
    for chunk in data.chunks_exact_mut(16) {
        xor16(&mut prev, chunk);
        c.encrypt(&mut prev);
        chunk.copy_from_slice(&prev);
    }
    Ok(())
}

pub fn aes_cbc_decrypt(c: &AesAny, iv: Option<&[u8]>, data: &mut [u8]) -> Result<(), CryptoError> {
    whole_blocks(data, 16)?;
    let mut prev = [0u8; 16];
    prev.copy_from_slice(&iv_block(iv, 16)?);
    for chunk in data.chunks_exact_mut(16) {
        let mut blk = [0u8; 16];
        blk.copy_from_slice(chunk);
        let ct = blk;
        c.decrypt(&mut blk);
        xor16(&mut blk, &prev);
        chunk.copy_from_slice(&blk);
        prev = ct;
    }
    Ok(())
}

/// Zero padding to a multiple of `block` (no extra block when already aligned).
pub fn zero_pad(data: &[u8], block: usize) -> Vec<u8> {
    let mut v = data.to_vec();
    let rem = v.len() % block;
    if rem != 0 {
        v.resize(v.len() + block - rem, 0);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn aes_cbc_sp800_38a() {
        // NIST SP 800-38A F.2.1 CBC-AES128.Encrypt, first two blocks.
        let key = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        let iv = hex::decode("000102030405060708090a0b0c0d0e0f").unwrap();
        let mut d = hex::decode("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51")
            .unwrap();
        let c = AesAny::new(&key).unwrap();
        aes_cbc_encrypt(&c, Some(&iv), &mut d).unwrap();
        assert_eq!(
            hex::encode(&d),
            "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        );
    }

    #[test]
    fn partial_block_is_typed() {
        let t = tdes_from_key(&[1u8; 16]).unwrap();
        let mut d = [0u8; 7];
        assert_eq!(
            tdes_cbc_decrypt(&t, None, &mut d),
            Err(CryptoError::PartialBlock { block: 8, got: 7 })
        );
        assert!(matches!(
            tdes_from_key(&[0; 8]),
            Err(CryptoError::BadKeyLength { got: 8, .. })
        ));
    }

    proptest! {
        #[test]
        fn tdes_cbc_round_trip_and_oracle(key: [u8; 24], iv: [u8; 8], data in proptest::collection::vec(any::<u8>(), 0..64)) {
            use cbc::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
            let d = zero_pad(&data, 8);
            let t = tdes_from_key(&key).unwrap();
            let mut c = d.clone();
            tdes_cbc_encrypt(&t, Some(&iv), &mut c).unwrap();
            if let Ok(e) = cbc::Encryptor::<des::TdesEde3>::new_from_slices(&key, &iv) {
                let mut want = d.clone();
                let n = want.len();
                e.encrypt_padded_mut::<NoPadding>(&mut want, n).unwrap();
                prop_assert_eq!(&c, &want);
            }
            tdes_cbc_decrypt(&t, Some(&iv), &mut c).unwrap();
            prop_assert_eq!(c, d);
        }

        #[test]
        fn aes_cbc_round_trip(key in proptest::collection::vec(any::<u8>(), 32), iv: [u8; 16], data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let d = zero_pad(&data, 16);
            for len in [16, 24, 32] {
                let c = AesAny::new(&key[..len]).unwrap();
                let mut x = d.clone();
                aes_cbc_encrypt(&c, Some(&iv), &mut x).unwrap();
                aes_cbc_decrypt(&c, Some(&iv), &mut x).unwrap();
                prop_assert_eq!(&x, &d);
            }
        }
    }
}
