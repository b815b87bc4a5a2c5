//! NEO 2 frames (reader-protocols.md §1.1): `ViVOtech2\0`, command, sub-command or status,
//! big-endian length, data, CRC-16/CCITT-FALSE. The CRC's byte order depends on the direction:
//! host commands (and the reader's own `61-xx` requests) send it least significant byte first,
//! responses most significant first, pass-through `2C-xx` most significant first both ways.
use std::fmt;

use zeroize::Zeroizing;

use super::Status;
use crate::parse::vivo::crc16;

pub const HEADER: &[u8; 10] = b"ViVOtech2\0";
/// Header, command, sub/status, length.
pub const HEAD_LEN: usize = 14;
/// Pass-through commands carry the CRC most significant byte first both ways.
pub const PASS_THROUGH: u8 = 0x2C;
/// Frames the reader starts by itself (user-interface requests) are command frames.
pub const READER_REQUEST: u8 = 0x61;

/// Which way a frame travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    HostToReader,
    ReaderToHost,
}

/// Whether a frame with this command byte, travelling this way, is a command frame (sub-command
/// byte) rather than a response (status byte).
pub fn is_command_frame(direction: Direction, command: u8) -> bool {
    direction == Direction::HostToReader || command == READER_REQUEST
}

/// Whether the CRC goes least significant byte first.
pub fn crc_lsb_first(direction: Direction, command: u8) -> bool {
    command != PASS_THROUGH && is_command_frame(direction, command)
}

/// A command frame: host → reader, or a reader's own `61-xx` request. Data may hold card data:
/// zeroed on drop, Debug shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    pub command: u8,
    pub sub: u8,
    pub data: Zeroizing<Vec<u8>>,
}

/// A response frame, reader → host.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    pub command: u8,
    pub status: Status,
    pub data: Zeroizing<Vec<u8>>,
}

/// A frame the host receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    Response(Response),
    /// A `61-xx` frame the reader started (prompts).
    ReaderRequest(Command),
}

impl Command {
    pub fn new(command: u8, sub: u8, data: &[u8]) -> Command {
        Command {
            command,
            sub,
            data: Zeroizing::new(data.to_vec()),
        }
    }

    /// `"02-40"`: how logs name a command.
    pub fn name(&self) -> String {
        format!("{:02X}-{:02X}", self.command, self.sub)
    }

    /// The bytes of the frame as its sender writes them.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        // A reader request travels reader → host, a host command the other way; both are
        // command frames with the same CRC order, so the direction only matters for 2C.
        let lsb = self.command != PASS_THROUGH;
        encode(self.command, self.sub, &self.data, lsb)
    }
}

impl Response {
    pub fn new(command: u8, status: Status, data: &[u8]) -> Response {
        Response {
            command,
            status,
            data: Zeroizing::new(data.to_vec()),
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        encode(self.command, self.status.to_byte(), &self.data, false)
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("command", &format_args!("{:02X}", self.command))
            .field("sub", &format_args!("{:02X}", self.sub))
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("command", &format_args!("{:02X}", self.command))
            .field("status", &self.status)
            .field("data_len", &self.data.len())
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame data of {0} bytes does not fit the 2-byte length")]
    TooLong(usize),
    #[error("frame does not start with the ViVOtech2 header")]
    BadHeader,
    #[error("frame shorter than its header and length say")]
    Truncated,
    #[error("bytes after the frame's CRC")]
    TrailingBytes,
    #[error("CRC mismatch on a {command:02X} frame")]
    BadCrc { command: u8 },
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLong(_) => "bad-length",
            FrameError::BadHeader => "bad-header",
            FrameError::Truncated => "truncated",
            FrameError::TrailingBytes => "bad-length",
            FrameError::BadCrc { .. } => "bad-crc",
        }
    }
}

fn encode(command: u8, code: u8, data: &[u8], crc_lsb: bool) -> Result<Vec<u8>, FrameError> {
    let len = u16::try_from(data.len()).map_err(|_| FrameError::TooLong(data.len()))?;
    let mut f = Vec::with_capacity(HEAD_LEN + data.len() + 2);
    f.extend_from_slice(HEADER);
    f.push(command);
    f.push(code);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(data);
    let crc = crc16(&f);
    if crc_lsb {
        f.extend_from_slice(&crc.to_le_bytes());
    } else {
        f.extend_from_slice(&crc.to_be_bytes());
    }
    Ok(f)
}

/// The whole length of the frame starting at `buf` (header through CRC), once the header is in.
pub fn frame_len(buf: &[u8]) -> Option<usize> {
    let hi = *buf.get(12)?;
    let lo = *buf.get(13)?;
    Some(HEAD_LEN + usize::from(u16::from_be_bytes([hi, lo])) + 2)
}

/// Checks one whole frame (exactly its bytes) and splits it: (command, code, data).
pub fn check(direction: Direction, f: &[u8]) -> Result<(u8, u8, &[u8]), FrameError> {
    if !f.starts_with(HEADER) {
        return Err(FrameError::BadHeader);
    }
    let total = frame_len(f).ok_or(FrameError::Truncated)?;
    if f.len() < total {
        return Err(FrameError::Truncated);
    }
    if f.len() > total {
        return Err(FrameError::TrailingBytes);
    }
    let command = f.get(10).copied().ok_or(FrameError::Truncated)?;
    let code = f.get(11).copied().ok_or(FrameError::Truncated)?;
    let body = f.get(..total - 2).ok_or(FrameError::Truncated)?;
    let c0 = f.get(total - 2).copied().ok_or(FrameError::Truncated)?;
    let c1 = f.get(total - 1).copied().ok_or(FrameError::Truncated)?;
    let sent = if crc_lsb_first(direction, command) {
        u16::from_le_bytes([c0, c1])
    } else {
        u16::from_be_bytes([c0, c1])
    };
    if crc16(body) != sent {
        return Err(FrameError::BadCrc { command });
    }
    let data = body.get(HEAD_LEN..).unwrap_or_default();
    Ok((command, code, data))
}

/// Decodes a frame the host received.
pub fn decode_incoming(f: &[u8]) -> Result<Incoming, FrameError> {
    let (command, code, data) = check(Direction::ReaderToHost, f)?;
    Ok(if is_command_frame(Direction::ReaderToHost, command) {
        Incoming::ReaderRequest(Command::new(command, code, data))
    } else {
        Incoming::Response(Response::new(command, Status::from_byte(code), data))
    })
}

/// Decodes a frame the reader received (always a command frame).
pub fn decode_command(f: &[u8]) -> Result<Command, FrameError> {
    let (command, sub, data) = check(Direction::HostToReader, f)?;
    Ok(Command::new(command, sub, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    const HDR: &str = "5669564F746563683200";

    // Every public example of reader-protocols.md §1.5, byte for byte.
    #[test]
    fn spec_examples_encode_byte_for_byte() {
        let cases: [(Command, &str); 5] = [
            (Command::new(0x18, 0x01, &[]), "18 01 0000 B3CD"),
            (Command::new(0x01, 0x01, &[0x01]), "01 01 0001 01 D734"),
            (Command::new(0x02, 0x01, &[0x0A]), "02 01 0001 0A 6E6B"),
            (Command::new(0x05, 0x01, &[]), "05 01 0000 92EF"),
            (
                Command::new(
                    0x02,
                    0x40,
                    &h("1E 9C0100 9F0206000000000100 9F0306000000000000 DFEF370107 DFEF3C03010060"),
                ),
                "02 40 0022 1E 9C0100 9F0206000000000100 9F0306000000000000 DFEF370107 DFEF3C03010060 18D1",
            ),
        ];
        for (cmd, want) in cases {
            let want = h(&format!("{HDR}{want}"));
            assert_eq!(cmd.encode().unwrap(), want, "{}", cmd.name());
            assert_eq!(decode_command(&want).unwrap(), cmd);
        }
        let answers: [(Response, &str); 3] = [
            (Response::new(0x18, Status::Ok, &[]), "18 00 0000 FA83"),
            (Response::new(0x01, Status::Ok, &[]), "01 00 0000 1253"),
            (Response::new(0x05, Status::Ok, &[]), "05 00 0000 D8A2"),
        ];
        for (resp, want) in answers {
            let want = h(&format!("{HDR}{want}"));
            assert_eq!(resp.encode().unwrap(), want);
            assert_eq!(decode_incoming(&want).unwrap(), Incoming::Response(resp));
        }
    }

    /// Frames found in public host code, beside the guide's: an activate (02-40) from an
    /// open-source WebHID driver (CRC LSB first) and a reader's pass-through answer (2C-00,
    /// MSB first) from ID TECH's own test scripts.
    #[test]
    fn frames_from_public_host_code_decode() {
        let activate = h(&format!(
            "{HDR}02 40 0016 9F0201009F030100FFEE080ADFEF1A010ADFED280103 FD1A"
        ));
        let cmd = decode_command(&activate).unwrap();
        assert_eq!((cmd.command, cmd.sub, cmd.data.len()), (0x02, 0x40, 0x16));
        assert_eq!(cmd.encode().unwrap(), activate);
        let pass_through = h(&format!("{HDR}2C 00 0000 1C9B"));
        assert_eq!(
            decode_incoming(&pass_through).unwrap(),
            Incoming::Response(Response::new(0x2C, Status::Ok, &[]))
        );
    }

    #[test]
    fn crc_order_follows_direction() {
        // The ping command's CRC is CDB3 (LSB first on the wire): read as a response it fails.
        let ping = h(&format!("{HDR}18 01 0000 B3CD"));
        assert_eq!(
            decode_incoming(&ping),
            Err(FrameError::BadCrc { command: 0x18 })
        );
        // The guide's 04-00 example with CRC 32E6 sent MSB first (reader-formats.md §2.5).
        let resp = h(&format!("{HDR}04 00 0005 DFED110100 32E6"));
        assert!(matches!(
            decode_incoming(&resp),
            Ok(Incoming::Response(Response {
                command: 0x04,
                status: Status::Ok,
                ..
            }))
        ));
        // A reader's 61-01 prompt is a command frame: CRC LSB first.
        let prompt = Command::new(0x61, 0x01, b"PRESENT CARD");
        let bytes = prompt.encode().unwrap();
        let crc = crc16(&bytes[..bytes.len() - 2]);
        assert_eq!(&bytes[bytes.len() - 2..], &crc.to_le_bytes());
        assert_eq!(
            decode_incoming(&bytes).unwrap(),
            Incoming::ReaderRequest(prompt)
        );
        // Pass-through: MSB first both ways.
        let pt = Command::new(0x2C, 0x01, &[0x01, 0x02]);
        let bytes = pt.encode().unwrap();
        let crc = crc16(&bytes[..bytes.len() - 2]);
        assert_eq!(&bytes[bytes.len() - 2..], &crc.to_be_bytes());
        assert_eq!(decode_command(&bytes).unwrap(), pt);
        let pr = Response::new(0x2C, Status::Ok, &[0x90, 0x00]);
        let bytes = pr.encode().unwrap();
        assert_eq!(
            &bytes[bytes.len() - 2..],
            &crc16(&bytes[..bytes.len() - 2]).to_be_bytes()
        );
    }

    #[test]
    fn malformed_frames_are_typed_errors() {
        assert_eq!(decode_command(b"ViVO"), Err(FrameError::BadHeader));
        assert_eq!(
            decode_command(&h(&format!("{HDR}18 01 0005 00"))),
            Err(FrameError::Truncated)
        );
        assert_eq!(
            decode_command(&h(&format!("{HDR}18 01 0000 B3CD 00"))),
            Err(FrameError::TrailingBytes)
        );
        assert_eq!(
            Command::new(1, 1, &vec![0; 70_000]).encode(),
            Err(FrameError::TooLong(70_000))
        );
    }

    proptest! {
        #[test]
        fn command_round_trip(cmd in any::<u8>(), sub in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let c = Command::new(cmd, sub, &data);
            prop_assert_eq!(decode_command(&c.encode().unwrap()).unwrap(), c);
        }

        #[test]
        fn incoming_round_trip(cmd in any::<u8>(), code in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (bytes, want) = if cmd == READER_REQUEST {
                let c = Command::new(cmd, code, &data);
                (c.encode().unwrap(), Incoming::ReaderRequest(c))
            } else {
                let r = Response::new(cmd, Status::from_byte(code), &data);
                (r.encode().unwrap(), Incoming::Response(r))
            };
            prop_assert_eq!(decode_incoming(&bytes).unwrap(), want);
        }

        #[test]
        fn decoding_any_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = decode_incoming(&data);
            let _ = decode_command(&data);
        }
    }
}
