//! Key serial number: 10 bytes (TDES DUKPT) or 12 bytes (AES DUKPT). Not secret.

/// A DUKPT key serial number. Held inline (no heap): decoders build one per frame.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ksn {
    buf: [u8; 12],
    len: u8,
}

impl Ksn {
    /// Accepts exactly 10 or 12 bytes.
    pub fn from_bytes(b: &[u8]) -> Option<Ksn> {
        let len = match b.len() {
            10 => 10u8,
            12 => 12u8,
            _ => return None,
        };
        let mut buf = [0u8; 12];
        buf.get_mut(..b.len())?.copy_from_slice(b);
        Some(Ksn { buf, len })
    }
    /// Accepts 20 or 24 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<Ksn> {
        hex::decode(s.trim()).ok().and_then(|b| Ksn::from_bytes(&b))
    }
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&self.buf)
    }
    /// Upper-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode_upper(self.as_bytes())
    }
    /// AES DUKPT KSNs are 12 bytes.
    pub fn is_aes(&self) -> bool {
        self.len == 12
    }
    /// An all-zero KSN means "no keys loaded" (MagTek).
    pub fn is_zero(&self) -> bool {
        self.as_bytes().iter().all(|&b| b == 0)
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
        let b: Vec<u8> = (1..=12).collect();
        assert_eq!(Ksn::from_bytes(&b).unwrap().as_bytes(), &b[..]);
        assert_eq!(Ksn::from_bytes(&b[..10]).unwrap().as_bytes(), &b[..10]);
        // Equality looks at the bytes held, not the unused tail.
        assert_ne!(Ksn::from_bytes(&[0; 10]), Ksn::from_bytes(&[0; 12]));
    }
}
