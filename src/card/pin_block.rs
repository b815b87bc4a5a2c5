//! An encrypted PIN block as a reader or PIN pad hands it over. Not the PIN, but card data all
//! the same (design.md §2): Debug shows only its length, memory is zeroed on drop, and the hex
//! form is itself zeroizing.
use zeroize::Zeroizing;

#[derive(Clone, PartialEq, Eq)]
pub struct PinBlock(Zeroizing<Vec<u8>>);

impl PinBlock {
    /// Accepts an 8-byte (TDES) or 16-byte (AES) block.
    pub fn from_bytes(b: &[u8]) -> Option<PinBlock> {
        matches!(b.len(), 8 | 16).then(|| PinBlock(Zeroizing::new(b.to_vec())))
    }

    /// Accepts 16 or 32 hex digits (either case).
    pub fn from_hex(s: &str) -> Option<PinBlock> {
        let b = Zeroizing::new(hex::decode(s).ok()?);
        PinBlock::from_bytes(&b)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Upper-case hex, for the gateway's `card.pin_block` only.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode_upper(self.0.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinBlock({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_hex_and_redaction() {
        let b = PinBlock::from_hex("1b9c1845eb993a7a").unwrap();
        assert_eq!(
            b.as_bytes(),
            &[0x1B, 0x9C, 0x18, 0x45, 0xEB, 0x99, 0x3A, 0x7A]
        );
        assert_eq!(b.to_hex().as_str(), "1B9C1845EB993A7A");
        assert_eq!(format!("{b:?}"), "PinBlock(8 bytes)");
        assert_eq!(PinBlock::from_bytes(&[7; 16]).unwrap().len(), 16);
        assert!(PinBlock::from_bytes(&[7; 12]).is_none());
        assert!(PinBlock::from_hex("1B9C1845EB993A7").is_none());
        assert!(PinBlock::from_hex("ZZ9C1845EB993A7A").is_none());
    }
}
