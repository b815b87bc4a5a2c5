//! MACs: ANSI X9.19 retail MAC (ISO 9797-1 algorithm 3, padding method 1) and AES-CMAC.
use cmac::{Cmac, Mac};

use super::des_fast::DesKey;
use super::error::CryptoError;

/// X9.19 retail MAC under a 16-byte key: single-DES CBC under the left half over the
/// zero-padded data (an empty message is one zero block), then decrypt under the right half
/// and encrypt under the left. Returns all 8 bytes; X9.24 test data prints the leftmost 4.
pub fn retail_mac(key: &[u8], data: &[u8]) -> Result<[u8; 8], CryptoError> {
    let k: &[u8; 16] = key.try_into().map_err(|_| CryptoError::BadKeyLength {
        expected: "16",
        got: key.len(),
    })?;
    let mut lb = [0u8; 8];
    let mut rb = [0u8; 8];
    lb.copy_from_slice(&k[..8]);
    rb.copy_from_slice(&k[8..]);
    let kl = DesKey::new(u64::from_be_bytes(lb));
    let kr = DesKey::new(u64::from_be_bytes(rb));
    let mut state = 0u64;
    let padded = super::modes::zero_pad(data, 8);
    let padded = if padded.is_empty() {
        vec![0u8; 8]
    } else {
        padded
    };
    for chunk in padded.chunks_exact(8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        state = kl.encrypt(state ^ u64::from_be_bytes(b));
    }
    Ok(kl.encrypt(kr.decrypt(state)).to_be_bytes())
}

/// AES-CMAC (NIST SP 800-38B) with a 16, 24 or 32-byte key; full 16-byte tag.
pub fn aes_cmac(key: &[u8], data: &[u8]) -> Result<[u8; 16], CryptoError> {
    let bad = || CryptoError::BadKeyLength {
        expected: "16, 24 or 32",
        got: key.len(),
    };
    let tag: [u8; 16] = match key.len() {
        16 => {
            let mut m = <Cmac<aes::Aes128> as Mac>::new_from_slice(key).map_err(|_| bad())?;
            m.update(data);
            m.finalize().into_bytes().into()
        }
        24 => {
            let mut m = <Cmac<aes::Aes192> as Mac>::new_from_slice(key).map_err(|_| bad())?;
            m.update(data);
            m.finalize().into_bytes().into()
        }
        32 => {
            let mut m = <Cmac<aes::Aes256> as Mac>::new_from_slice(key).map_err(|_| bad())?;
            m.update(data);
            m.finalize().into_bytes().into()
        }
        _ => return Err(bad()),
    };
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmac_rfc4493() {
        // RFC 4493 section 4, examples 1 and 2.
        let k = hex::decode("2b7e151628aed2a6abf7158809cf4f3c").unwrap();
        assert_eq!(
            hex::encode(aes_cmac(&k, &[]).unwrap()),
            "bb1d6929e95937287fa37d129b756746"
        );
        let m = hex::decode("6bc1bee22e409f96e93d7e117393172a").unwrap();
        assert_eq!(
            hex::encode(aes_cmac(&k, &m).unwrap()),
            "070a16b46b4d4144f79bdd9dd04a287c"
        );
    }

    #[test]
    fn retail_mac_equal_halves_is_des_cbc_mac() {
        // With K1 == K2 the final D/E cancels: the MAC is plain single-DES CBC-MAC. FIPS 113
        // style check: key 0123456789ABCDEF, "Now is t" → 3FA40E8A984D4815 (one block).
        let key = hex::decode("0123456789ABCDEF0123456789ABCDEF").unwrap();
        let mac = retail_mac(&key, b"Now is t").unwrap();
        assert_eq!(hex::encode_upper(mac), "3FA40E8A984D4815");
    }
}
