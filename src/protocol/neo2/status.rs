//! NEO 2 response status codes (reader-protocols.md §1.1, IDG p.28).

/// The status byte of a response frame. Codes the guide does not list are kept as `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Ok,
    BadHeader,
    UnknownCommand,
    UnknownSubCommand,
    CrcError,
    IncorrectParameter,
    ParameterNotSupported,
    MalformattedData,
    Timeout,
    Failed,
    CommandNotAllowed,
    SubCommandNotAllowed,
    BufferOverflow,
    UserInterfaceEvent,
    RequestOnlineAuthorization,
    /// `63`: the reader took a long-running command and will answer again.
    FirstResponse,
    Other(u8),
}

impl Status {
    pub fn from_byte(b: u8) -> Status {
        match b {
            0x00 => Status::Ok,
            0x01 => Status::BadHeader,
            0x02 => Status::UnknownCommand,
            0x03 => Status::UnknownSubCommand,
            0x04 => Status::CrcError,
            0x05 => Status::IncorrectParameter,
            0x06 => Status::ParameterNotSupported,
            0x07 => Status::MalformattedData,
            0x08 => Status::Timeout,
            0x0A => Status::Failed,
            0x0B => Status::CommandNotAllowed,
            0x0C => Status::SubCommandNotAllowed,
            0x0D => Status::BufferOverflow,
            0x0E => Status::UserInterfaceEvent,
            0x23 => Status::RequestOnlineAuthorization,
            0x63 => Status::FirstResponse,
            other => Status::Other(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            Status::Ok => 0x00,
            Status::BadHeader => 0x01,
            Status::UnknownCommand => 0x02,
            Status::UnknownSubCommand => 0x03,
            Status::CrcError => 0x04,
            Status::IncorrectParameter => 0x05,
            Status::ParameterNotSupported => 0x06,
            Status::MalformattedData => 0x07,
            Status::Timeout => 0x08,
            Status::Failed => 0x0A,
            Status::CommandNotAllowed => 0x0B,
            Status::SubCommandNotAllowed => 0x0C,
            Status::BufferOverflow => 0x0D,
            Status::UserInterfaceEvent => 0x0E,
            Status::RequestOnlineAuthorization => 0x23,
            Status::FirstResponse => 0x63,
            Status::Other(b) => b,
        }
    }

    /// Stable reason code for logs and JSON.
    pub fn code(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::BadHeader => "bad-header",
            Status::UnknownCommand => "unknown-command",
            Status::UnknownSubCommand => "unknown-sub-command",
            Status::CrcError => "crc-error",
            Status::IncorrectParameter => "incorrect-parameter",
            Status::ParameterNotSupported => "parameter-not-supported",
            Status::MalformattedData => "malformatted-data",
            Status::Timeout => "timeout",
            Status::Failed => "failed",
            Status::CommandNotAllowed => "command-not-allowed",
            Status::SubCommandNotAllowed => "sub-command-not-allowed",
            Status::BufferOverflow => "buffer-overflow",
            Status::UserInterfaceEvent => "user-interface-event",
            Status::RequestOnlineAuthorization => "request-online-authorization",
            Status::FirstResponse => "first-response",
            Status::Other(_) => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_and_listed_codes_are_named() {
        for b in 0..=255u8 {
            assert_eq!(Status::from_byte(b).to_byte(), b);
        }
        // The IDG p.28 list, written out from the spec.
        let listed = [
            0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
            0x23, 0x63,
        ];
        for b in 0..=255u8 {
            let named = !matches!(Status::from_byte(b), Status::Other(_));
            assert_eq!(named, listed.contains(&b), "byte {b:02X}");
        }
        assert_eq!(Status::from_byte(0x0B), Status::CommandNotAllowed);
        assert_eq!(Status::from_byte(0x63), Status::FirstResponse);
        assert_eq!(Status::from_byte(0x09), Status::Other(0x09));
    }
}
