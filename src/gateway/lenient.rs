//! Tolerant JSON reading: the gateway (and clients of the simulator) send scalars as strings or
//! numbers, keys in any case, and sometimes a JSON document wrapped in a JSON string.
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// How many string layers are peeled at most; real bodies have one, more is abuse.
const MAX_ENCODING_LAYERS: usize = 3;

/// Parses `body` as JSON, unwrapping a double-encoded document (a JSON string holding JSON).
pub fn parse_json_layers(body: &[u8]) -> Result<Value, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(body)?;
    for _ in 0..MAX_ENCODING_LAYERS {
        match value {
            Value::String(ref s) => {
                let trimmed = s.trim_start();
                if trimmed.starts_with('{') || trimmed.starts_with('[') || trimmed.starts_with('"')
                {
                    value = serde_json::from_str(s)?;
                } else {
                    break;
                }
            }
            _ => break,
        }
    }
    Ok(value)
}

/// Lower-cases every object key, recursively, so `Customer`/`CUSTOMER_ID` read as `customer`.
/// When two keys collide after folding, the first one seen is kept.
pub fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                let key = k.to_ascii_lowercase();
                if !out.contains_key(&key) {
                    out.insert(key, lowercase_keys(v));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// A scalar as text: strings as they are, numbers and booleans printed, null as absent.
/// Objects and arrays are not scalars and read as absent (validation then names the field).
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "1".into() } else { "0".into() }),
        _ => None,
    }
}

/// `deserialize_with` for optional scalar fields into any `From<String>` type. An empty string
/// counts as absent, as clients often send `""` for unused fields.
pub fn opt_scalar<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let value = Value::deserialize(d)?;
    Ok(scalar_text(&value).filter(|s| !s.is_empty()).map(T::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unwraps_double_encoding() {
        let inner = r#"{"a":1}"#;
        let outer = serde_json::to_string(inner).unwrap();
        assert_eq!(parse_json_layers(outer.as_bytes()).unwrap(), json!({"a":1}));
        assert_eq!(parse_json_layers(inner.as_bytes()).unwrap(), json!({"a":1}));
        // A plain string that is not JSON stays a string.
        assert_eq!(parse_json_layers(b"\"hello\"").unwrap(), json!("hello"));
    }

    #[test]
    fn folds_key_case() {
        let v = lowercase_keys(json!({"Customer": {"First_Name": "A"}, "X": [{"Y": 1}]}));
        assert_eq!(v, json!({"customer": {"first_name": "A"}, "x": [{"y": 1}]}));
    }

    #[test]
    fn scalars() {
        assert_eq!(scalar_text(&json!(1)), Some("1".into()));
        assert_eq!(scalar_text(&json!("1")), Some("1".into()));
        assert_eq!(scalar_text(&json!(null)), None);
        assert_eq!(scalar_text(&json!({})), None);
    }
}
