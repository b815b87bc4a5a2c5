//! Key serial number: 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT). Not secret.

/// A DUKPT key serial number.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ksn(Vec<u8>);

impl Ksn {
    /// Accepts exactly 10 or 12 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Ksn> {
        matches!(b.len(), 10 | 12).then(|| Ksn(b.to_vec()))
    }
    /// Accepts 20 or 24 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Ksn> {
        hex::decode(s.trim()).ok().and_then(|b| Ksn::from_bytes(&b))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// Upper-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(&self.0)
    }
    /// AES DUKPT KSNs are 12 bytes.
    pub fn is_aes(&self) -> bool {
        self.0.len() == 12
    }
    /// An all-zero KSN means "no keys loaded" (MagTek).
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
    }
}

impl std::fmt::Debug for Ksn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ksn({})", self.to_hex())
    }
}

impl std::fmt::Display for Ksn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn lengths_and_hex() {
        let k = Ksn::from_hex("ffff9876543210e0004a").unwrap();
        assert_eq!(k.to_hex(), "FFFF9876543210E0004A");
        assert!(!k.is_aes());
        assert!(Ksn::from_bytes(&[0; 12]).unwrap().is_aes());
        assert!(Ksn::from_bytes(&[0; 11]).is_none());
        assert!(Ksn::from_hex("zz").is_none());
    }
}
