//! The decoders' error type. Messages never embed input bytes.

/// Why a frame could not be decoded. `code()` gives the stable reason code of design.md §3.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("frame ends early ({0})")]
    Truncated(&'static str),
    #[error("frame checksum does not match ({0})")]
    BadChecksum(&'static str),
    #[error("LRC does not match ({0})")]
    BadLrc(&'static str),
    #[error("CRC does not match ({0})")]
    BadCrc(&'static str),
    #[error("length field disagrees with the data ({0})")]
    BadLength(&'static str),
    #[error("input is not valid hex text")]
    BadHex,
    #[error("input is not a known reader format")]
    UnknownFormat,
    #[error("decryption failed ({0})")]
    DecryptFailed(String),
    #[error("malformed MagTek EMV container ({0})")]
    BadContainer(&'static str),
    #[error("malformed track data ({0})")]
    BadTrack(&'static str),
    #[error("unreadable MICR character ({0})")]
    MicrUnreadable(&'static str),
    #[error("bad routing number ({0})")]
    BadRouting(&'static str),
    #[error("no account number on the check ({0})")]
    NoAccount(&'static str),
    #[error("check not supported ({0})")]
    UnsupportedCheck(&'static str),
    /// The reader itself says the read ended abnormally (Epson status bit 5): no line to
    /// judge, so not reported as a misread character.
    #[error("the MICR reader ended the read abnormally ({0})")]
    MicrAbnormalEnd(&'static str),
}

impl ParseError {
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::Truncated(_) => "truncated",
            ParseError::BadChecksum(_) => "bad-checksum",
            ParseError::BadLrc(_) => "bad-lrc",
            ParseError::BadCrc(_) => "bad-crc",
            ParseError::BadLength(_) => "bad-length",
            ParseError::BadHex => "bad-hex",
            ParseError::UnknownFormat => "unknown-format",
            ParseError::DecryptFailed(_) => "decrypt-failed",
            ParseError::BadContainer(_) => "bad-container",
            ParseError::BadTrack(_) => "bad-track",
            ParseError::MicrUnreadable(_) => "micr-unreadable",
            ParseError::BadRouting(_) => "bad-routing",
            ParseError::NoAccount(_) => "no-account",
            ParseError::UnsupportedCheck(_) => "unsupported-check",
            ParseError::MicrAbnormalEnd(_) => "micr-abnormal-end",
        }
    }
}
