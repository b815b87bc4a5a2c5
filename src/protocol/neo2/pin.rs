//! PIN entry on NEO 2 readers with a keypad (reader-protocols.md §1.6, IDG p.348–350): the
//! `62-01` "Display Message and Get Encrypted PIN" command with the reader's own PAN, and its
//! second answer (state, PIN KSN, PIN block) as a typed outcome.
//!
//! Command data: key type `01` (DUKPT, internal PAN), PAN length `00` (no PAN follows), PIN
//! maximum and minimum length, then the display message (length byte + ASCII) and the time-out
//! (seconds, one byte). The order of the message and time-out fields follows §1.6's wording; their
//! exact widths are from p.348–349 as summarised there (inferred where the summary is silent).
use std::time::Duration;

use super::{Command, Status};
use crate::card::{Ksn, PinBlock};

pub const GET_PIN: u8 = 0x62;
pub const GET_PIN_SUB: u8 = 0x01;
/// Key type: DUKPT with the reader's own PAN (from the read it just made).
pub const KEY_DUKPT_INTERNAL_PAN: u8 = 0x01;
/// Longest display message accepted (the reader's display line).
pub const MAX_PROMPT: usize = 32;

/// State codes of the PIN answer ("State Code in PIN and Key Entry Commands"). `00` is given by
/// §1.6; cancel and time-out are the guide's next two codes (inferred).
pub const STATE_OK: u8 = 0x00;
pub const STATE_CANCELLED: u8 = 0x01;
pub const STATE_TIMED_OUT: u8 = 0x02;

/// A validated PIN entry request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinRequest {
    min_len: u8,
    max_len: u8,
    prompt: String,
    timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinRequestError {
    #[error("PIN lengths must satisfy 4 <= min <= max <= 12 (got min {min}, max {max})")]
    Lengths { min: u8, max: u8 },
    #[error("the prompt must be printable ASCII of at most {MAX_PROMPT} characters")]
    Prompt,
    #[error("the PIN time-out must be 1..=255 seconds")]
    Timeout,
}

impl PinRequestError {
    pub fn code(&self) -> &'static str {
        match self {
            PinRequestError::Lengths { .. } => "bad-pin-length",
            PinRequestError::Prompt => "bad-prompt",
            PinRequestError::Timeout => "bad-timeout",
        }
    }
}

impl PinRequest {
    pub fn new(
        min_len: u8,
        max_len: u8,
        prompt: &str,
        timeout: Duration,
    ) -> Result<PinRequest, PinRequestError> {
        if !(4 <= min_len && min_len <= max_len && max_len <= 12) {
            return Err(PinRequestError::Lengths {
                min: min_len,
                max: max_len,
            });
        }
        if prompt.len() > MAX_PROMPT || !prompt.bytes().all(|b| (0x20..0x7F).contains(&b)) {
            return Err(PinRequestError::Prompt);
        }
        let secs = timeout.as_secs();
        if secs == 0 || secs > 255 || timeout.subsec_nanos() != 0 {
            return Err(PinRequestError::Timeout);
        }
        Ok(PinRequest {
            min_len,
            max_len,
            prompt: prompt.to_owned(),
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The `62-01` command.
    pub fn command(&self) -> Command {
        // Validated in `new`: the time-out fits a byte, the prompt's length too.
        let secs = u8::try_from(self.timeout.as_secs()).unwrap_or(u8::MAX);
        let msg_len = u8::try_from(self.prompt.len()).unwrap_or(0);
        let mut data = vec![
            KEY_DUKPT_INTERNAL_PAN,
            0x00,
            self.max_len,
            self.min_len,
            msg_len,
        ];
        data.extend_from_slice(
            self.prompt
                .as_bytes()
                .get(..usize::from(msg_len))
                .unwrap_or_default(),
        );
        data.push(secs);
        Command::new(GET_PIN, GET_PIN_SUB, &data)
    }
}

/// How a PIN entry ended. Exactly one per accepted request.
#[derive(Debug, Clone, PartialEq)]
pub enum PinOutcome {
    /// The PIN key's KSN (not the card data's) and the encrypted block.
    Pin { ksn: Ksn, block: PinBlock },
    /// The customer pressed cancel, or the host cancelled.
    PinCancelled,
    /// Nobody typed: the reader's (or the host's) time-out.
    PinTimedOut,
    /// Another state code of the PIN answer.
    PinError { state: u8 },
    /// The reader answered with a failing status (e.g. `0B`: no card read to take the PAN from).
    ReaderError { status: Status },
    /// A state-00 answer whose KSN or block is not of the shape §1.6 gives.
    BadAnswer,
    /// The reader went away or stopped answering during PIN entry.
    Disconnected,
}

impl PinOutcome {
    /// Stable code (`reader read --pin` error codes).
    pub fn code(&self) -> &'static str {
        match self {
            PinOutcome::Pin { .. } => "pin",
            PinOutcome::PinCancelled => "pin-cancelled",
            PinOutcome::PinTimedOut => "pin-timed-out",
            PinOutcome::PinError { .. } => "pin-error",
            PinOutcome::ReaderError { .. } => "reader-error",
            PinOutcome::BadAnswer => "bad-pin-answer",
            PinOutcome::Disconnected => "disconnected",
        }
    }
}

/// The second answer's data (status 00): state byte, then for state 00 the KSN as 20 (TDES) or
/// 24 (AES) ASCII hex characters and the block as 16 or 32.
pub fn parse_pin_answer(data: &[u8]) -> PinOutcome {
    let Some((&state, rest)) = data.split_first() else {
        return PinOutcome::BadAnswer;
    };
    match state {
        STATE_OK => {}
        STATE_CANCELLED => return PinOutcome::PinCancelled,
        STATE_TIMED_OUT => return PinOutcome::PinTimedOut,
        s => return PinOutcome::PinError { state: s },
    }
    let ksn_len = match rest.len() {
        36 => 20,
        56 => 24,
        _ => return PinOutcome::BadAnswer,
    };
    let (ksn, block) = rest.split_at(ksn_len);
    let (Ok(ksn), Ok(block)) = (std::str::from_utf8(ksn), std::str::from_utf8(block)) else {
        return PinOutcome::BadAnswer;
    };
    match (Ksn::from_hex(ksn), PinBlock::from_hex(block)) {
        (Some(ksn), Some(block)) if ksn.is_aes() == (block.len() == 16) => {
            PinOutcome::Pin { ksn, block }
        }
        _ => PinOutcome::BadAnswer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_prompt_and_timeout_are_validated() {
        let t = Duration::from_secs(30);
        assert!(PinRequest::new(4, 12, "ENTER PIN", t).is_ok());
        assert!(PinRequest::new(4, 4, "", t).is_ok());
        for (min, max) in [(3, 12), (4, 13), (6, 5), (0, 0)] {
            assert_eq!(
                PinRequest::new(min, max, "ENTER PIN", t),
                Err(PinRequestError::Lengths { min, max })
            );
        }
        assert_eq!(
            PinRequest::new(4, 12, "ENTER\nPIN", t),
            Err(PinRequestError::Prompt)
        );
        assert_eq!(
            PinRequest::new(4, 12, &"X".repeat(33), t),
            Err(PinRequestError::Prompt)
        );
        for bad in [0, 256] {
            assert_eq!(
                PinRequest::new(4, 12, "P", Duration::from_secs(bad)),
                Err(PinRequestError::Timeout)
            );
        }
    }

    #[test]
    fn command_frame_written_out() {
        let r = PinRequest::new(4, 12, "ENTER PIN", Duration::from_secs(30)).unwrap();
        let bytes = r.command().encode().unwrap();
        // 62-01, 15 bytes: key type 01, PAN length 00, max 0C, min 04, "ENTER PIN" (9), 30 s.
        let body =
            "5669564F74656368320062 01 000F 01 00 0C 04 09 454E5445522050494E 1E".replace(' ', "");
        let mut want = hex::decode(&body).unwrap();
        // CRC-16/CCITT-FALSE computed bit by bit here, least significant byte first (a command).
        let mut crc: u16 = 0xFFFF;
        for b in &want {
            crc ^= u16::from(*b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        want.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(hex::encode_upper(&bytes), hex::encode_upper(&want));
    }

    #[test]
    fn answers_by_state() {
        let ok = b"\x00FFFF9876543210E000011B9C1845EB993A7A";
        match parse_pin_answer(ok) {
            PinOutcome::Pin { ksn, block } => {
                assert_eq!(ksn.to_hex(), "FFFF9876543210E00001");
                assert_eq!(block.to_hex().as_str(), "1B9C1845EB993A7A");
            }
            other => panic!("{other:?}"),
        }
        let aes = [
            &b"\x00"[..],
            b"123456789012345600000001",
            b"0123456789ABCDEF0123456789ABCDEF",
        ]
        .concat();
        assert!(matches!(parse_pin_answer(&aes), PinOutcome::Pin { ksn, .. } if ksn.is_aes()));
        assert_eq!(parse_pin_answer(&[0x01]), PinOutcome::PinCancelled);
        assert_eq!(parse_pin_answer(&[0x02]), PinOutcome::PinTimedOut);
        assert_eq!(parse_pin_answer(&[0x07]), PinOutcome::PinError { state: 7 });
        assert_eq!(parse_pin_answer(&[]), PinOutcome::BadAnswer);
        // Short block, non-hex KSN.
        assert_eq!(parse_pin_answer(&ok[..36]), PinOutcome::BadAnswer);
        let mut bad = ok.to_vec();
        bad[3] = b'G';
        assert_eq!(parse_pin_answer(&bad), PinOutcome::BadAnswer);
        // A length that is neither TDES (20 + 16) nor AES (24 + 32).
        let odd = [&b"\x00"[..], b"FFFF9876543210E00001", &[b'A'; 20]].concat();
        assert_eq!(parse_pin_answer(&odd), PinOutcome::BadAnswer);
        // Debug never shows the block.
        assert!(!format!("{:?}", parse_pin_answer(ok)).contains("1B9C"));
    }
}
