//! Key material holders: zeroed on drop, never printed.
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A key of any length (TDES, AES, HMAC). `Debug` prints the length only.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Vec<u8>);

impl SecretKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretKey(bytes)
    }

    pub fn from_slice(bytes: &[u8]) -> Self {
        SecretKey(bytes.to_vec())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Upper-case hex, for the lab CLI only (the caller decides it may be shown).
    pub fn to_hex_upper(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode_upper(&self.0))
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({} bytes, ***)", self.0.len())
    }
}

/// A double-length TDES key as two big-endian halves: the working form of TDES DUKPT.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct Key16 {
    pub l: u64,
    pub r: u64,
}

impl Key16 {
    pub fn from_bytes(b: &[u8; 16]) -> Self {
        let (l, r) = b.split_at(8);
        let mut lb = [0u8; 8];
        let mut rb = [0u8; 8];
        lb.copy_from_slice(l);
        rb.copy_from_slice(r);
        Key16 {
            l: u64::from_be_bytes(lb),
            r: u64::from_be_bytes(rb),
        }
    }

    pub fn xor(&self, m: &Key16) -> Key16 {
        Key16 {
            l: self.l ^ m.l,
            r: self.r ^ m.r,
        }
    }

    pub fn to_secret(&self) -> SecretKey {
        let mut v = Vec::with_capacity(16);
        v.extend_from_slice(&self.l.to_be_bytes());
        v.extend_from_slice(&self.r.to_be_bytes());
        SecretKey(v)
    }
}

impl std::fmt::Debug for Key16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key16(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let k = SecretKey::from_slice(&[0xAB; 16]);
        let s = format!("{k:?}");
        assert!(
            !s.contains("AB") && !s.contains("ab") && !s.contains("171"),
            "{s}"
        );
        let k = Key16::from_bytes(&[0xAB; 16]);
        assert_eq!(format!("{k:?}"), "Key16(***)");
    }
}
