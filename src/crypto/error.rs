//! The one error type of the crypto module. Messages name lengths and reasons, never bytes.

/// What went wrong, with a stable reason code ([`CryptoError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("key must be {expected} bytes, got {got}")]
    BadKeyLength { expected: &'static str, got: usize },
    #[error("KSN must be {expected} bytes, got {got}")]
    BadKsnLength { expected: &'static str, got: usize },
    #[error("IV must be {expected} bytes, got {got}")]
    BadIvLength { expected: usize, got: usize },
    #[error("data must be a whole number of {block}-byte blocks, got {got} bytes")]
    PartialBlock { block: usize, got: usize },
    #[error("KSN counter has {bits} one-bits; a device never uses more than {max}")]
    InvalidCounter { bits: u32, max: u32 },
    #[error("KSN counter exhausted: no further key for this initial KSN")]
    KsnExhausted,
    #[error("KSN counter has {bits} one-bits: a device's keys are exhausted after {max}, so no reader sends this KSN")]
    CounterExhausted { bits: u32, max: u32 },
    #[error("KSN counter is 0: that KSN names the initial key, which no transaction uses (the first transaction's counter is 1)")]
    ZeroCounter,
    #[error("PIN must be 4 to 12 digits")]
    BadPin,
    #[error("PAN must be 1 to 19 digits")]
    BadPan,
    #[error("PIN block: {0}")]
    BadPinBlock(PinBlockFault),
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Why a deciphered PIN block was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinBlockFault {
    #[error("bad control nibble (format not 0, 1, 3 or 4 as expected)")]
    ControlNibble,
    #[error("PIN length nibble outside 4..12")]
    Length,
    #[error("PIN digit outside 0-9")]
    Digit,
    #[error("fill does not follow the format's rule")]
    Fill,
    #[error("block must be {expected} bytes")]
    Size { expected: usize },
}

impl CryptoError {
    /// Stable, machine-readable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            CryptoError::BadKeyLength { .. } => "bad-key-length",
            CryptoError::BadKsnLength { .. } => "bad-ksn-length",
            CryptoError::BadIvLength { .. } => "bad-iv-length",
            CryptoError::PartialBlock { .. } => "partial-block",
            CryptoError::InvalidCounter { .. } => "invalid-counter",
            CryptoError::KsnExhausted | CryptoError::CounterExhausted { .. } => "ksn-exhausted",
            CryptoError::ZeroCounter => "zero-counter",
            CryptoError::BadPin => "bad-pin",
            CryptoError::BadPan => "bad-pan",
            CryptoError::BadPinBlock(_) => "bad-pin-block",
            CryptoError::Unsupported(_) => "unsupported",
        }
    }
}
