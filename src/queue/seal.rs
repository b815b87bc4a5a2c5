//! AES-256-GCM sealing of payloads: a random 96-bit nonce per row, the customer id as AAD so a
//! payload cannot be moved to another row's customer unnoticed.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use super::key::QueueKey;

pub(crate) const NONCE_LEN: usize = 12;

pub(crate) struct Sealer {
    cipher: Aes256Gcm,
}

impl Sealer {
    pub(crate) fn new(key: &QueueKey) -> Self {
        Sealer {
            cipher: Aes256Gcm::new(key.bytes().into()),
        }
    }

    /// Returns (nonce, ciphertext ‖ tag).
    pub(crate) fn seal(&self, aad: &[u8], plain: &[u8]) -> Option<([u8; NONCE_LEN], Vec<u8>)> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .ok()?;
        Some((nonce, ct))
    }

    /// `None` when the nonce is malformed or authentication fails.
    pub(crate) fn open(&self, aad: &[u8], nonce: &[u8], ct: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if nonce.len() != NONCE_LEN {
            return None;
        }
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .ok()
            .map(Zeroizing::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nist_gcm_vector() {
        // NIST GCM test case 16 (AES-256, 60-byte plaintext, 20-byte AAD) from the GCM spec
        // (McGrew & Viega, "The Galois/Counter Mode of Operation", Appendix B).
        let key = hex::decode("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308")
            .unwrap();
        let iv = hex::decode("cafebabefacedbaddecaf888").unwrap();
        let pt = hex::decode("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39").unwrap();
        let aad = hex::decode("feedfacedeadbeeffeedfacedeadbeefabaddad2").unwrap();
        let ct = hex::decode("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662").unwrap();
        let tag = hex::decode("76fc6ece0f4e1768cddf8853bb2d551b").unwrap();
        let mut k = [0u8; 32];
        k.copy_from_slice(&key);
        let s = Sealer::new(&QueueKey::from_bytes(k));
        let mut sealed = ct.clone();
        sealed.extend_from_slice(&tag);
        let opened = s.open(&aad, &iv, &sealed).unwrap();
        assert_eq!(opened.as_slice(), pt.as_slice());
        // Wrong AAD (another customer id) must fail.
        assert!(s.open(b"other", &iv, &sealed).is_none());
    }

    #[test]
    fn round_trip_fresh_nonces() {
        let s = Sealer::new(&QueueKey::from_bytes([7; 32]));
        let (n1, c1) = s.seal(b"cust-1", b"hello").unwrap();
        let (n2, c2) = s.seal(b"cust-1", b"hello").unwrap();
        assert_ne!(n1, n2);
        assert_ne!(c1, c2);
        assert_eq!(s.open(b"cust-1", &n1, &c1).unwrap().as_slice(), b"hello");
        assert!(s.open(b"cust-1", &n1[..11], &c1).is_none());
    }
}
