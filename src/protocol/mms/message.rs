//! MMS messages: `AA 00`, then `81 04 <type> <ref> <cmd hi> <cmd lo>`, `82 04 <status> <3
//! detail bytes>` (responses and notifications), `84 <BER length> <payload>`. A payload starts
//! with the command id again, then the command's TLV parameters (as the spec's echo example and
//! MagTek's public demo commands show).
use std::fmt;

use zeroize::Zeroizing;

/// Message header: `AA`, then the schema version `00`.
pub const HEADER: [u8; 2] = [0xAA, 0x00];
const TAG_INFO: u8 = 0x81;
const TAG_STATUS: u8 = 0x82;
const TAG_PAYLOAD: u8 = 0x84;
/// Messages longer than this are refused (a reader's biggest, a firmware file, is not ours).
pub const MAX_LEN: usize = 64 * 1024;

/// Who sent a message and what it is (the `81` type byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    RequestFromHost,
    ResponseFromHost,
    NotificationFromHost,
    FileFromHost,
    RequestFromDevice,
    ResponseFromDevice,
    NotificationFromDevice,
    FileFromDevice,
    Other(u8),
}

impl MsgType {
    pub fn from_byte(b: u8) -> MsgType {
        use MsgType::*;
        match b {
            0x01 => RequestFromHost,
            0x02 => ResponseFromHost,
            0x03 => NotificationFromHost,
            0x04 => FileFromHost,
            0x81 => RequestFromDevice,
            0x82 => ResponseFromDevice,
            0x83 => NotificationFromDevice,
            0x84 => FileFromDevice,
            o => Other(o),
        }
    }
    pub fn to_byte(self) -> u8 {
        use MsgType::*;
        match self {
            RequestFromHost => 0x01,
            ResponseFromHost => 0x02,
            NotificationFromHost => 0x03,
            FileFromHost => 0x04,
            RequestFromDevice => 0x81,
            ResponseFromDevice => 0x82,
            NotificationFromDevice => 0x83,
            FileFromDevice => 0x84,
            Other(o) => o,
        }
    }
}

/// The `82` status: the operation status byte and three detail bytes (for notifications the
/// first byte names the technology and the detail the event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub [u8; 4]);

impl Status {
    pub const OK: Status = Status([0, 0, 0, 0]);
    pub fn code(self) -> u8 {
        self.0[0]
    }
    pub fn detail(self) -> [u8; 3] {
        [self.0[1], self.0[2], self.0[3]]
    }
    /// `00` OK, `01` started, `40`/`41` the same with warnings.
    pub fn is_ok(self) -> bool {
        matches!(self.code(), 0x00 | 0x01 | 0x40 | 0x41)
    }
    /// `80` failed to start, `81` failed.
    pub fn is_failure(self) -> bool {
        self.code() & 0x80 != 0
    }
    /// `XX-YYYYYY` for logs and error messages.
    pub fn text(self) -> String {
        let d = self.detail();
        format!("{:02X}-{:02X}{:02X}{:02X}", self.0[0], d[0], d[1], d[2])
    }
}

/// One MMS message. The payload may hold card data: zeroed on drop, Debug shows its length.
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: MsgType,
    pub msg_ref: u8,
    pub command: u16,
    pub status: Option<Status>,
    pub payload: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("kind", &self.kind)
            .field("msg_ref", &self.msg_ref)
            .field("command", &format_args!("{:04X}", self.command))
            .field("status", &self.status.map(Status::text))
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Why bytes are not an MMS message. Never holds the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("MMS message ends early ({0})")]
    Truncated(&'static str),
    #[error("not an MMS message (header is not AA 00)")]
    BadHeader,
    #[error("MMS message malformed ({0})")]
    Malformed(&'static str),
    #[error("MMS message longer than {MAX_LEN} bytes")]
    TooLong,
}

impl MessageError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            MessageError::Truncated(_) => "truncated",
            MessageError::BadHeader => "bad-header",
            MessageError::Malformed(_) => "bad-length",
            MessageError::TooLong => "bad-length",
        }
    }
}

/// BER definite length: short form, or `81`/`82`/`83` and 1-3 bytes.
fn push_len(out: &mut Vec<u8>, n: usize) {
    match n {
        0..=0x7F => out.push(n as u8),
        0x80..=0xFF => out.extend([0x81, n as u8]),
        0x100..=0xFFFF => out.extend([0x82, (n >> 8) as u8, n as u8]),
        _ => out.extend([0x83, (n >> 16) as u8, (n >> 8) as u8, n as u8]),
    }
}

fn read_len(b: &[u8]) -> Result<(usize, &[u8]), MessageError> {
    let (&first, rest) = b.split_first().ok_or(MessageError::Truncated("length"))?;
    if first < 0x80 {
        return Ok((usize::from(first), rest));
    }
    let n = usize::from(first & 0x7F);
    if !(1..=3).contains(&n) {
        return Err(MessageError::Malformed("length form"));
    }
    let bytes = rest.get(..n).ok_or(MessageError::Truncated("length"))?;
    let len = bytes.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x));
    Ok((len, rest.get(n..).unwrap_or_default()))
}

impl Message {
    /// A host request: `payload` is the command's parameters (TLV), after the command id.
    pub fn request(msg_ref: u8, command: u16, params: &[u8]) -> Message {
        let mut payload = Zeroizing::new(Vec::with_capacity(params.len() + 2));
        payload.extend_from_slice(&command.to_be_bytes());
        payload.extend_from_slice(params);
        Message {
            kind: MsgType::RequestFromHost,
            msg_ref,
            command,
            status: None,
            payload,
        }
    }

    /// The payload's TLV after the leading command id (when it repeats the command).
    pub fn params(&self) -> &[u8] {
        match self.payload.get(..2) {
            Some(id) if id == self.command.to_be_bytes() => self.payload.get(2..).unwrap_or(&[]),
            _ => &self.payload,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.payload.len() + 20);
        out.extend(HEADER);
        out.extend([TAG_INFO, 0x04, self.kind.to_byte(), self.msg_ref]);
        out.extend(self.command.to_be_bytes());
        if let Some(s) = self.status {
            out.extend([TAG_STATUS, 0x04]);
            out.extend(s.0);
        }
        if !self.payload.is_empty() {
            out.push(TAG_PAYLOAD);
            push_len(&mut out, self.payload.len());
            out.extend_from_slice(&self.payload);
        }
        out
    }

    /// Decodes one whole message. Objects other than 81/82/84 are skipped (later schema
    /// versions may add some); zero fill after the last object is allowed.
    pub fn decode(b: &[u8]) -> Result<Message, MessageError> {
        if b.len() > MAX_LEN {
            return Err(MessageError::TooLong);
        }
        match b {
            [0xAA, 0x00, ..] => {}
            [] | [0xAA] => return Err(MessageError::Truncated("header")),
            _ => return Err(MessageError::BadHeader),
        }
        let mut rest = b.get(2..).unwrap_or_default();
        let mut info: Option<&[u8]> = None;
        let mut status = None;
        let mut payload: Option<&[u8]> = None;
        while let Some((&tag, after)) = rest.split_first() {
            if tag == 0 && after.iter().all(|&x| x == 0) {
                break;
            }
            let (len, after) = read_len(after)?;
            let value = after
                .get(..len)
                .ok_or(MessageError::Truncated("object shorter than its length"))?;
            match tag {
                TAG_INFO => info = Some(value),
                TAG_STATUS => {
                    let s: [u8; 4] = value
                        .try_into()
                        .map_err(|_| MessageError::Malformed("82 status is not 4 bytes"))?;
                    status = Some(Status(s));
                }
                TAG_PAYLOAD => payload = Some(value),
                _ => {}
            }
            rest = after.get(len..).unwrap_or_default();
        }
        let info = info.ok_or(MessageError::Malformed("no 81 message info"))?;
        let [kind, msg_ref, hi, lo] = <[u8; 4]>::try_from(info)
            .map_err(|_| MessageError::Malformed("81 info is not 4 bytes"))?;
        Ok(Message {
            kind: MsgType::from_byte(kind),
            msg_ref,
            command: u16::from_be_bytes([hi, lo]),
            status,
            payload: Zeroizing::new(payload.unwrap_or_default().to_vec()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn the_spec_echo_example_both_ways() {
        // reader-protocols.md §3.1 (DynaFlex II Go manual p.29).
        let echo = Message::request(0x01, 0xDF01, &h("8103 010203"));
        assert_eq!(echo.encode(), h("AA00 8104 0101DF01 8407 DF01 8103 010203"));
        let answer =
            Message::decode(&h("AA00 8104 8201DF01 8204 00000000 8407 DF018103010203")).unwrap();
        assert_eq!(answer.kind, MsgType::ResponseFromDevice);
        assert_eq!((answer.msg_ref, answer.command), (0x01, 0xDF01));
        assert_eq!(answer.status, Some(Status::OK));
        assert!(answer.status.unwrap().is_ok());
        assert_eq!(answer.params(), &h("8103010203")[..]);
        // And back to the same bytes.
        assert_eq!(
            answer.encode(),
            h("AA00 8104 8201DF01 8204 00000000 8407 DF018103010203")
        );
    }

    #[test]
    fn long_payload_lengths_and_broken_messages() {
        let m = Message::request(7, 0x1001, &[0x11; 300]);
        let e = m.encode();
        // 302 bytes of payload: 84 82 01 2E.
        assert_eq!(&e[8..12], &[0x84, 0x82, 0x01, 0x2E]);
        assert_eq!(Message::decode(&e).unwrap(), m);
        assert_eq!(
            Message::decode(&e[..e.len() - 1]).unwrap_err().code(),
            "truncated"
        );
        assert_eq!(
            Message::decode(&h("AB00")).unwrap_err().code(),
            "bad-header"
        );
        assert_eq!(Message::decode(&h("AA")).unwrap_err().code(), "truncated");
        assert_eq!(
            Message::decode(&h("AA00 8403 010203")).unwrap_err().code(),
            "bad-length"
        );
        assert_eq!(
            Message::decode(&h("AA00 8103 010203")).unwrap_err().code(),
            "bad-length"
        );
        assert_eq!(
            Message::decode(&h("AA00 8104 8201DF01 8203 000000"))
                .unwrap_err()
                .code(),
            "bad-length"
        );
        // Zero fill after the message is no error.
        let mut z = h("AA00 8104 8201DF01 8204 00000000");
        z.extend([0; 10]);
        assert!(Message::decode(&z).is_ok());
        // Debug shows no payload bytes.
        let dbg = format!("{:?}", Message::request(1, 0x1001, b"4111111111111111"));
        assert!(!dbg.contains("4111") && !dbg.contains("34313131"), "{dbg}");
    }
}
