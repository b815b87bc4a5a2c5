//! Host-side cache of IPEKs (TDES) and IKs (AES) keyed by initial KSN, for one BDK: a host sees
//! the same devices again and again, and the IPEK is a fixed cost per device.
use std::collections::HashMap;

use zeroize::Zeroizing;

use super::aes_dukpt::{self, AesKsn};
use super::error::CryptoError;
use super::reader::{run_with, ReaderCipher, ReaderKey};
use super::secret::{Key16, SecretKey};
use super::tdes_dukpt::{self, TdesKsn};

/// Cache bounded to `capacity` devices per scheme; when full it is emptied (cheap, and a
/// host-side working set is far smaller than any sensible capacity).
pub struct DukptHost {
    bdk: SecretKey,
    tdes: HashMap<[u8; 10], Key16>,
    aes: HashMap<[u8; 8], SecretKey>,
    capacity: usize,
}

impl std::fmt::Debug for DukptHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DukptHost(bdk ***, {} + {} cached)",
            self.tdes.len(),
            self.aes.len()
        )
    }
}

impl DukptHost {
    /// A host for one BDK: 16 bytes (TDES) or 16/24/32 (AES); checked on first use per scheme.
    pub fn new(bdk: &[u8], capacity: usize) -> Self {
        DukptHost {
            bdk: SecretKey::from_slice(bdk),
            tdes: HashMap::new(),
            aes: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub(crate) fn ipek(&mut self, ksn: &TdesKsn) -> Result<Key16, CryptoError> {
        let id = *ksn.initial().as_bytes();
        if let Some(k) = self.tdes.get(&id) {
            return Ok(k.clone());
        }
        let k = tdes_dukpt::ipek_fast(&tdes_dukpt::key16(self.bdk.as_bytes())?, ksn);
        if self.tdes.len() >= self.capacity {
            self.tdes.clear();
        }
        self.tdes.insert(id, k.clone());
        Ok(k)
    }

    /// The cached IPEK for a TDES KSN.
    pub fn tdes_ipek(&mut self, ksn: &TdesKsn) -> Result<SecretKey, CryptoError> {
        Ok(self.ipek(ksn)?.to_secret())
    }

    /// The cached IK for an AES KSN.
    pub fn aes_ik(&mut self, ksn: &AesKsn) -> Result<SecretKey, CryptoError> {
        let id = ksn.initial_key_id();
        if let Some(k) = self.aes.get(&id) {
            return Ok(k.clone());
        }
        let k = aes_dukpt::initial_key(self.bdk.as_bytes(), ksn)?;
        if self.aes.len() >= self.capacity {
            self.aes.clear();
        }
        self.aes.insert(id, k.clone());
        Ok(k)
    }

    fn run(
        &mut self,
        ksn: &[u8],
        key: ReaderKey,
        cipher: ReaderCipher,
        iv: Option<&[u8]>,
        data: &mut [u8],
        encrypt: bool,
    ) -> Result<(), CryptoError> {
        // Only one of the two initial keys is asked for, so the cache is borrowed once.
        let cache = std::cell::RefCell::new(self);
        run_with(
            ksn,
            key,
            cipher,
            iv,
            data,
            encrypt,
            |k| cache.borrow_mut().ipek(k),
            |k| cache.borrow_mut().aes_ik(k),
        )
    }

    /// Same as [`super::decrypt_reader_data`], with the IPEK/IK cached.
    pub fn decrypt_reader_data(
        &mut self,
        ksn: &[u8],
        key: ReaderKey,
        cipher: ReaderCipher,
        iv: Option<&[u8]>,
        ct: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let mut buf = Zeroizing::new(ct.to_vec());
        self.run(ksn, key, cipher, iv, &mut buf, false)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::dukpt::DataCipher;

    #[test]
    fn cached_equals_uncached() {
        let bdk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap();
        let mut host = DukptHost::new(&bdk, 2);
        let ct = [0x5Au8; 32];
        for ksn in [
            "FFFF9876543210E00001",
            "FFFF9876543210E00012",
            "FFFF0000000001E00003",
            "FFFF0000000002E00003",
            "FFFF9876543210E00013",
        ] {
            let k = hex::decode(ksn).unwrap();
            for rk in [ReaderKey::Data, ReaderKey::DataVariant, ReaderKey::Pin] {
                for c in [DataCipher::Tdes, DataCipher::Aes] {
                    let a = host.decrypt_reader_data(&k, rk, c, None, &ct).unwrap();
                    let b = super::super::decrypt_reader_data(&bdk, &k, rk, c, None, &ct).unwrap();
                    assert_eq!(*a, *b);
                }
            }
        }
        assert!(!format!("{host:?}").contains("0123"));
    }
}
