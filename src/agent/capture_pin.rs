//! PINs on kiosk captures (issue 17, design.md §3 "PIN blocks"): `"pin":"required"|"optional"`
//! asks a keypad reader for the PIN after the read; `"pin_block":{…}` hands over a block from the
//! kiosk's own PIN pad. Both are checked here, before a capture is armed, with errors that name
//! the field and never quote its value.

use serde::Serialize;

use crate::card::{Ksn, PinBlock};

/// `"pin"` on a capture: whether the customer must enter the PIN on the reader's keypad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinPolicy {
    /// No PIN, no record: a cancel or time-out fails the capture.
    Required,
    /// The customer may skip it: the record is saved without a PIN block.
    Optional,
}

impl PinPolicy {
    pub fn parse(s: &str) -> Option<PinPolicy> {
        match s {
            "required" => Some(PinPolicy::Required),
            "optional" => Some(PinPolicy::Optional),
            _ => None,
        }
    }
}

/// What became of a capture's PIN, as `GET /v1/captures/{id}` shows it (`pin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PinNote {
    /// The customer entered it on the reader: the record carries the block.
    Entered,
    /// `"pin":"optional"` and no PIN came (cancel, time-out, reader error): saved without one.
    Skipped,
    /// The kiosk's PIN pad gave the block with the capture.
    Given,
}

/// A PIN block from the kiosk's own PIN pad: the block (zeroed on drop, never printed), the
/// KSN of the PIN pad's key, and the ISO 9564 format the kiosk says it is in.
#[derive(Clone, PartialEq, Eq)]
pub struct KioskPin {
    pub block: PinBlock,
    pub ksn: Ksn,
    pub format: u8,
}

impl std::fmt::Debug for KioskPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KioskPin")
            .field("block", &self.block)
            .field("ksn", &self.ksn)
            .field("format", &self.format)
            .finish()
    }
}

/// A `pin` or `pin_block` the agent refuses: the field at fault, a stable code, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinFieldError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

fn refuse(field: &str, code: &'static str, message: impl Into<String>) -> PinFieldError {
    PinFieldError {
        field: field.to_string(),
        code,
        message: message.into(),
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl KioskPin {
    /// As [`KioskPin::from_json`], taking the posted value and zeroing its copy of the block.
    pub fn take_json(mut v: serde_json::Value) -> Result<KioskPin, PinFieldError> {
        let parsed = KioskPin::from_json(&v);
        if let Some(serde_json::Value::String(block)) = v.get_mut("block") {
            zeroize::Zeroize::zeroize(block);
        }
        parsed
    }

    /// `{"block":HEX,"ksn":HEX,"format":0|1|3|4}`: hex only; 16 hex digits for the TDES formats
    /// 0, 1, 3 and 32 for format 4 (AES); a KSN of 20 hex digits (TDES) or 24 (AES); format 4
    /// needs an AES KSN.
    pub fn from_json(v: &serde_json::Value) -> Result<KioskPin, PinFieldError> {
        let serde_json::Value::Object(m) = v else {
            return Err(refuse(
                "pin_block",
                "bad-pin-block",
                "`pin_block` must be an object {\"block\",\"ksn\",\"format\"}",
            ));
        };
        // Not named back: a key could itself be card data.
        if m.keys()
            .any(|k| !["block", "ksn", "format"].contains(&k.as_str()))
        {
            return Err(refuse(
                "pin_block",
                "bad-pin-block",
                "`pin_block` takes only block, ksn and format",
            ));
        }
        let format = match m.get("format").and_then(serde_json::Value::as_u64) {
            Some(f @ (0 | 1 | 3 | 4)) => f as u8,
            _ => {
                return Err(refuse(
                    "pin_block.format",
                    "bad-pin-format",
                    "`pin_block.format` must be 0, 1, 3 or 4 (ISO 9564)",
                ))
            }
        };
        let ksn_text = match m.get("ksn") {
            Some(serde_json::Value::String(s)) => s.as_str(),
            _ => {
                return Err(refuse(
                    "pin_block.ksn",
                    "bad-pin-ksn",
                    "`pin_block.ksn` must be a string of hex digits",
                ))
            }
        };
        if !is_hex(ksn_text) || !matches!(ksn_text.len(), 20 | 24) {
            return Err(refuse(
                "pin_block.ksn",
                "bad-pin-ksn",
                "`pin_block.ksn` must be 20 hex digits (TDES DUKPT) or 24 (AES DUKPT)",
            ));
        }
        let ksn = Ksn::from_hex(ksn_text).ok_or_else(|| {
            refuse(
                "pin_block.ksn",
                "bad-pin-ksn",
                "`pin_block.ksn` is not a KSN",
            )
        })?;
        if format == 4 && !ksn.is_aes() {
            return Err(refuse(
                "pin_block.ksn",
                "bad-pin-ksn",
                "format 4 is an AES PIN block: `pin_block.ksn` must be an AES DUKPT KSN (24 hex digits)",
            ));
        }
        let block_text = match m.get("block") {
            Some(serde_json::Value::String(s)) => zeroize::Zeroizing::new(s.clone()),
            _ => {
                return Err(refuse(
                    "pin_block.block",
                    "bad-pin-block",
                    "`pin_block.block` must be a string of hex digits",
                ))
            }
        };
        let want = if format == 4 { 32 } else { 16 };
        if !is_hex(&block_text) || block_text.len() != want {
            return Err(refuse(
                "pin_block.block",
                "bad-pin-block",
                format!("`pin_block.block` must be {want} hex digits for format {format}"),
            ));
        }
        let block = PinBlock::from_hex(&block_text).ok_or_else(|| {
            refuse(
                "pin_block.block",
                "bad-pin-block",
                "`pin_block.block` is not a PIN block",
            )
        })?;
        Ok(KioskPin { block, ksn, format })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TDES_KSN: &str = "FFFF9876543210E00001";
    const AES_KSN: &str = "123456789012345600000001";
    /// dukpt.md's ISO 9564 format 0 example (PIN 1234, PAN 4012345678909), as a block's shape.
    const BLOCK16: &str = "041274EDCBA9876F";

    fn err(v: serde_json::Value) -> PinFieldError {
        KioskPin::from_json(&v).unwrap_err()
    }

    #[test]
    fn good_blocks_are_held_and_redacted() {
        let p = KioskPin::from_json(
            &json!({"block": BLOCK16.to_lowercase(), "ksn": TDES_KSN, "format": 0}),
        )
        .unwrap();
        assert_eq!(p.block.to_hex().as_str(), BLOCK16);
        assert_eq!(p.ksn.to_hex(), TDES_KSN);
        assert_eq!(p.format, 0);
        let shown = format!("{p:?}");
        assert!(
            !shown.contains(BLOCK16) && !shown.contains(&BLOCK16.to_lowercase()),
            "{shown}"
        );
        let aes = "A".repeat(32);
        let p = KioskPin::from_json(&json!({"block": aes, "ksn": AES_KSN, "format": 4})).unwrap();
        assert_eq!(p.block.len(), 16);
        assert!(p.ksn.is_aes());
    }

    #[test]
    fn each_bad_part_names_its_field() {
        let cases = [
            (json!("041274EDCBA9876F"), "pin_block", "bad-pin-block"),
            (
                json!({"block": BLOCK16, "ksn": TDES_KSN, "format": 2}),
                "pin_block.format",
                "bad-pin-format",
            ),
            (
                json!({"block": BLOCK16, "ksn": TDES_KSN}),
                "pin_block.format",
                "bad-pin-format",
            ),
            (
                json!({"block": BLOCK16, "ksn": TDES_KSN, "format": "0"}),
                "pin_block.format",
                "bad-pin-format",
            ),
            (
                json!({"block": "041274EDCBA9876G", "ksn": TDES_KSN, "format": 0}),
                "pin_block.block",
                "bad-pin-block",
            ),
            (
                json!({"block": "041274EDCBA987", "ksn": TDES_KSN, "format": 1}),
                "pin_block.block",
                "bad-pin-block",
            ),
            // A TDES-size block for format 4, an AES-size one for format 3.
            (
                json!({"block": BLOCK16, "ksn": AES_KSN, "format": 4}),
                "pin_block.block",
                "bad-pin-block",
            ),
            (
                json!({"block": "A".repeat(32), "ksn": TDES_KSN, "format": 3}),
                "pin_block.block",
                "bad-pin-block",
            ),
            (
                json!({"block": BLOCK16, "ksn": "FFFF9876543210E0000", "format": 0}),
                "pin_block.ksn",
                "bad-pin-ksn",
            ),
            (
                json!({"block": BLOCK16, "ksn": "FFFF9876543210E0000Z", "format": 0}),
                "pin_block.ksn",
                "bad-pin-ksn",
            ),
            (
                json!({"block": "A".repeat(32), "ksn": TDES_KSN, "format": 4}),
                "pin_block.ksn",
                "bad-pin-ksn",
            ),
            (
                json!({"block": BLOCK16, "ksn": 7, "format": 0}),
                "pin_block.ksn",
                "bad-pin-ksn",
            ),
            (
                json!({"block": BLOCK16, "ksn": TDES_KSN, "format": 0, "pan": "4012"}),
                "pin_block",
                "bad-pin-block",
            ),
        ];
        for (v, field, code) in cases {
            let e = err(v.clone());
            assert_eq!((e.field.as_str(), e.code), (field, code), "{v}");
            // The value is never echoed.
            assert!(!e.message.contains("041274EDCBA987"), "{}", e.message);
        }
    }

    #[test]
    fn take_json_reads_what_from_json_reads() {
        let good = json!({"block": BLOCK16, "ksn": TDES_KSN, "format": 0});
        let want = KioskPin::from_json(&good).unwrap();
        assert_eq!(KioskPin::take_json(good), Ok(want));
        let bad = json!({"block": BLOCK16, "ksn": TDES_KSN, "format": 2});
        assert_eq!(
            KioskPin::take_json(bad.clone()),
            Err(KioskPin::from_json(&bad).unwrap_err())
        );
    }

    #[test]
    fn policy_names() {
        assert_eq!(PinPolicy::parse("required"), Some(PinPolicy::Required));
        assert_eq!(PinPolicy::parse("optional"), Some(PinPolicy::Optional));
        assert_eq!(PinPolicy::parse("yes"), None);
        assert_eq!(
            serde_json::to_string(&PinNote::Skipped).unwrap(),
            "\"skipped\""
        );
    }
}
