//! The body of `POST /v1/captures`, checked against the document's `CaptureRequest` schema:
//! what is wrong here is the request's fault (400, or 422 for the PIN fields). What depends on
//! the lane (customer rules, reader names, keypads) is checked by the handler afterwards.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::ApiSettings;
use crate::agent::capture_pin::{KioskPin, PinPolicy};
use crate::gateway::check_record::CheckOptions;
use crate::protocol::neo2::Interfaces;

const FIELDS: [&str; 8] = [
    "reader",
    "customer",
    "timeout_s",
    "interfaces",
    "kind",
    "check",
    "pin",
    "pin_block",
];

/// A well-formed capture request. Absent fields have their defaults; `null` is refused like any
/// other value of the wrong type (the document gives no field a null).
#[derive(Debug)]
pub(crate) struct CaptureRequest {
    pub reader: Option<String>,
    pub customer: Map<String, Value>,
    pub timeout: Duration,
    pub interfaces: Option<Interfaces>,
    /// `Some` for `"kind":"check"`.
    pub check: Option<CheckOptions>,
    pub pin: Option<PinPolicy>,
    pub pin_block: Option<KioskPin>,
}

impl CaptureRequest {
    pub fn parse(bytes: &[u8], settings: &ApiSettings) -> Result<CaptureRequest, ApiError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| {
            // Position only: serde's message can quote the input.
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-json",
                format!(
                    "the body is not valid JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let Value::Object(mut body) = value else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-json",
                "the body must be a JSON object",
            ));
        };
        if let Some(unknown) = body.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(unknown_field(unknown));
        }
        let reader = match body.remove("reader") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(ApiError::field("reader", "`reader` must be a string")),
        };
        let customer = match body.remove("customer") {
            None => Map::new(),
            Some(Value::Object(mut m)) => {
                whole_numbers(&mut m);
                m
            }
            Some(_) => return Err(ApiError::field("customer", "`customer` must be an object")),
        };
        let timeout = timeout(body.remove("timeout_s"), settings)?;
        let interfaces = interfaces(body.remove("interfaces"))?;
        let check = check(body.remove("kind"), body.remove("check"))?;
        let (pin, pin_block) = pin(body.remove("pin"), body.remove("pin_block"))?;
        if check.is_some() && (pin.is_some() || pin_block.is_some()) {
            let field = if pin.is_some() { "pin" } else { "pin_block" };
            return Err(ApiError::unprocessable(
                field,
                "pin-not-supported",
                "a check capture takes no PIN",
            ));
        }
        if pin.is_some() && reader.is_none() {
            return Err(ApiError::unprocessable(
                "pin",
                "pin-not-supported",
                "`pin` needs `reader` naming a driven reader with a keypad (pin_entry in GET /v1/readers)",
            ));
        }
        Ok(CaptureRequest {
            reader,
            customer,
            timeout,
            interfaces,
            check,
            pin,
            pin_block,
        })
    }
}

/// Writes `2.0` as `2`: JSON (and the document's `integer`) make no difference between them,
/// and the digits-only fields are checked as text.
fn whole_numbers(m: &mut Map<String, Value>) {
    for v in m.values_mut() {
        let whole = match v {
            Value::Number(n) if !n.is_u64() && !n.is_i64() => {
                n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            }
            _ => None,
        };
        if let Some(f) = whole {
            // Exact: |f| < 2^53 and integral.
            *v = if f < 0.0 {
                Value::from(f as i64)
            } else {
                Value::from(f as u64)
            };
        }
    }
}

fn unknown_field(key: &str) -> ApiError {
    // Name the key only when it looks like one: the body is not echoed back.
    let plain = key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        ApiError::field(key, format!("unknown field `{key}`"))
    } else {
        ApiError::field(
            "body",
            format!(
                "the body has an unknown field (expected {})",
                FIELDS.join(", ")
            ),
        )
    }
}

/// `timeout_s`: seconds, above 0 and at most the configured maximum.
fn timeout(v: Option<Value>, settings: &ApiSettings) -> Result<Duration, ApiError> {
    let max = settings.max_capture_timeout.as_secs_f64();
    let bad = || {
        ApiError::field(
            "timeout_s",
            format!("`timeout_s` must be a number of seconds above 0 and at most {max}"),
        )
    };
    match v {
        None => Ok(settings.default_capture_timeout),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if s > 0.0 && s <= max => Ok(Duration::from_secs_f64(s)),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// `"interfaces":["msr","contact","contactless"]`: what a driven reader's transaction for the
/// capture accepts (absent: all it has).
fn interfaces(v: Option<Value>) -> Result<Option<Interfaces>, ApiError> {
    let bad = || {
        ApiError::field(
            "interfaces",
            "`interfaces` must be a non-empty list of \"msr\", \"contact\", \"contactless\"",
        )
    };
    let items = match v {
        None => return Ok(None),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad()),
    };
    let names: Vec<&str> = items
        .iter()
        .map(Value::as_str)
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    // Each name alone: a name holding a comma is no name.
    if names.iter().any(|n| n.contains(',')) {
        return Err(bad());
    }
    Interfaces::parse_list(&names.join(","))
        .map(Some)
        .ok_or_else(bad)
}

/// `"kind":"check"` arms the next check (MICR read); `check` holds what the line lacks.
fn check(kind: Option<Value>, details: Option<Value>) -> Result<Option<CheckOptions>, ApiError> {
    let is_check = match kind {
        None => false,
        Some(Value::String(k)) if k == "card" => false,
        Some(Value::String(k)) if k == "check" => true,
        Some(_) => {
            return Err(ApiError::field(
                "kind",
                "`kind` must be \"card\" or \"check\"",
            ))
        }
    };
    match (is_check, details) {
        (false, None) => Ok(None),
        (false, Some(_)) => Err(ApiError::field(
            "check",
            "`check` is given: set `kind` to \"check\"",
        )),
        (true, None) => Ok(Some(CheckOptions::default())),
        (true, Some(Value::Object(mut m))) => CheckOptions::from_json({
            whole_numbers(&mut m);
            &m
        })
        .map(Some)
        .map_err(|(field, message)| ApiError::field(&field, message)),
        (true, Some(_)) => Err(ApiError::field("check", "`check` must be an object")),
    }
}

/// `"pin":"required"|"optional"` (a keypad reader) or `"pin_block":{…}` (the kiosk's PIN pad),
/// never both: 422 with a reason code naming the field.
fn pin(
    pin: Option<Value>,
    pin_block: Option<Value>,
) -> Result<(Option<PinPolicy>, Option<KioskPin>), ApiError> {
    let pin = match pin {
        None => None,
        Some(Value::String(s)) if PinPolicy::parse(&s).is_some() => PinPolicy::parse(&s),
        Some(_) => {
            return Err(ApiError::unprocessable(
                "pin",
                "bad-pin",
                "`pin` must be \"required\" or \"optional\"",
            ))
        }
    };
    let pin_block = match pin_block {
        None => None,
        Some(v) => Some(
            KioskPin::take_json(v)
                .map_err(|e| ApiError::unprocessable(&e.field, e.code, e.message))?,
        ),
    };
    if pin.is_some() && pin_block.is_some() {
        return Err(ApiError::unprocessable(
            "pin_block",
            "pin-conflict",
            "give `pin` (the reader's keypad) or `pin_block` (the kiosk's PIN pad), not both",
        ));
    }
    Ok((pin, pin_block))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<CaptureRequest, ApiError> {
        CaptureRequest::parse(v.to_string().as_bytes(), &ApiSettings::default())
    }

    fn refused(v: Value) -> (u16, &'static str, Option<String>) {
        let e = parse(v).unwrap_err();
        (e.status.as_u16(), e.code, e.field)
    }

    #[test]
    fn null_is_no_value() {
        for field in FIELDS {
            let (status, _, named) = refused(json!({ field: null }));
            assert!(status == 400 || status == 422, "{field}");
            assert_eq!(named.as_deref(), Some(field));
        }
    }

    #[test]
    fn timeout_within_the_configured_limit() {
        // ApiConfig's default maximum: 600 s.
        assert_eq!(
            parse(json!({"timeout_s": 600})).unwrap().timeout,
            Duration::from_secs(600)
        );
        assert_eq!(
            parse(json!({"timeout_s": 0.5})).unwrap().timeout,
            Duration::from_millis(500)
        );
        for bad in [json!(0), json!(-1), json!(600.001), json!("5")] {
            assert_eq!(
                refused(json!({ "timeout_s": bad })),
                (400, "bad-field", Some("timeout_s".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn kind_and_check_go_together() {
        assert!(parse(json!({"kind": "check"})).unwrap().check.is_some());
        assert!(parse(json!({"kind": "card"})).unwrap().check.is_none());
        assert_eq!(refused(json!({"check": {}})).2.as_deref(), Some("check"));
        assert_eq!(
            refused(json!({"kind": "card", "check": {}})).2.as_deref(),
            Some("check")
        );
        assert_eq!(
            refused(json!({"kind": "cheque"})).2.as_deref(),
            Some("kind")
        );
    }

    #[test]
    fn whole_floats_are_integers() {
        let r = parse(json!({"customer": {"zip": 32503.0}, "kind": "check",
            "check": {"sec_code": 2.0}}))
        .unwrap();
        assert_eq!(r.customer["zip"], json!(32503));
        assert_eq!(r.check.unwrap().sec_code.map(|c| c.code()), Some("2"));
        assert!(parse(json!({"kind": "check", "check": {"sec_code": 2.5}})).is_err());
    }

    #[test]
    fn interfaces_are_names_from_the_list() {
        assert!(parse(json!({"interfaces": ["msr", "msr"]})).is_ok());
        for bad in [
            json!([]),
            json!(["msr,contact"]),
            json!(["nfc"]),
            json!("msr"),
        ] {
            assert_eq!(
                refused(json!({ "interfaces": bad })).2.as_deref(),
                Some("interfaces"),
                "{bad}"
            );
        }
    }

    #[test]
    fn pin_rules_that_need_no_reader_state() {
        assert_eq!(
            refused(json!({"pin": "required"})),
            (422, "pin-not-supported", Some("pin".into()))
        );
        assert_eq!(
            refused(json!({"kind": "check", "reader": "r", "pin": "optional"})),
            (422, "pin-not-supported", Some("pin".into()))
        );
        assert_eq!(
            refused(json!({"reader": "r", "pin": "yes"})),
            (422, "bad-pin", Some("pin".into()))
        );
        assert!(parse(json!({"reader": "r", "pin": "optional"})).is_ok());
    }

    #[test]
    fn unknown_fields_are_named_only_when_plain() {
        assert_eq!(
            refused(json!({"colour": 1})),
            (400, "bad-field", Some("colour".into()))
        );
        assert_eq!(
            refused(json!({"4111 1111": 1})),
            (400, "bad-field", Some("body".into()))
        );
    }
}
