//! Tolerant reading of a Customer reply: an object or a double-encoded string, keys in any case,
//! `result_code` as number or string, `customer_response` at the top or inside `customer`, the
//! `customer` echo beside or inside `customer_response`.
use serde_json::{Map, Value};

use super::lenient::{lowercase_keys, parse_json_layers, scalar_text};
use super::record::{CustomerFields, CustomerReply, CustomerResponse};

/// Why a body is not a Customer reply. Never holds the body (it may echo card data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response is not JSON")]
    NotJson,
    #[error("response has no customer_response object")]
    NoCustomerResponse,
    #[error("response has no usable result_code")]
    BadResultCode,
}

impl ResponseError {
    pub fn code(&self) -> &'static str {
        match self {
            ResponseError::NotJson => "not-json",
            ResponseError::NoCustomerResponse => "no-customer-response",
            ResponseError::BadResultCode => "bad-result-code",
        }
    }
}

pub fn parse_reply(body: &[u8]) -> Result<CustomerReply, ResponseError> {
    let value = parse_json_layers(body).map_err(|_| ResponseError::NotJson)?;
    let value = lowercase_keys(value);
    let top = value.as_object().ok_or(ResponseError::NoCustomerResponse)?;
    let nested_customer = top.get("customer").and_then(Value::as_object);

    let response = top
        .get("customer_response")
        .and_then(Value::as_object)
        .or_else(|| nested_customer.and_then(|c| c.get("customer_response")?.as_object()))
        // A flat reply (result_code at the top) is read as the response itself.
        .or_else(|| top.contains_key("result_code").then_some(top))
        .ok_or(ResponseError::NoCustomerResponse)?;

    let result_code = response
        .get("result_code")
        .and_then(scalar_text)
        .and_then(|s| s.trim().parse::<u8>().ok())
        .ok_or(ResponseError::BadResultCode)?;

    let echo = nested_customer
        .or_else(|| response.get("customer").and_then(Value::as_object))
        .and_then(|c| {
            // Drop the nested response so it is not mistaken for a field.
            let mut c = c.clone();
            c.remove("customer_response");
            serde_json::from_value::<CustomerFields>(Value::Object(c)).ok()
        });

    Ok(CustomerReply {
        customer_response: CustomerResponse {
            result_code,
            result_sub_code: text(response, "result_sub_code"),
            result_text: text(response, "result_text"),
            transaction_datetime: text(response, "transaction_datetime"),
            token: text(response, "token"),
            account_type: text(response, "account_type"),
            account_last_4: text(response, "account_last_4"),
            expiration_date: text(response, "expiration_date"),
        },
        customer: echo,
    })
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(scalar_text).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"customer_response":{"result_code":1,"result_sub_code":"000","result_text":"SUCCESS","transaction_datetime":"20190318T145608Z","token":"1234567890124242","account_type":"VI","account_last_4":"4242","expiration_date":"1229"},"customer":{"customer_id":"CID001","first_name":"Oscar"}}"#;

    fn check_sample(reply: &CustomerReply) {
        assert_eq!(reply.customer_response.result_code, 1);
        assert_eq!(
            reply.customer_response.token.as_deref(),
            Some("1234567890124242")
        );
        assert_eq!(
            reply.customer_response.account_last_4.as_deref(),
            Some("4242")
        );
        let c = reply.customer.as_ref().unwrap();
        assert_eq!(c.customer_id.as_deref(), Some("CID001"));
        assert_eq!(c.first_name.as_deref(), Some("Oscar"));
    }

    #[test]
    fn plain_object() {
        check_sample(&parse_reply(SAMPLE.as_bytes()).unwrap());
    }

    #[test]
    fn double_encoded() {
        let body = serde_json::to_string(SAMPLE).unwrap();
        assert!(body.starts_with('"'));
        check_sample(&parse_reply(body.as_bytes()).unwrap());
    }

    #[test]
    fn odd_case_string_code_and_nesting() {
        let body = r#"{"Customer":{"Customer_ID":"CID001","First_Name":"Oscar","CUSTOMER_RESPONSE":{"Result_Code":"1","TOKEN":"1234567890124242","Account_Last_4":"4242"}}}"#;
        check_sample(&parse_reply(body.as_bytes()).unwrap());
        // customer inside customer_response
        let body = r#"{"customer_response":{"result_code":"1","token":1234567890124242,"account_last_4":"4242","customer":{"customer_id":"CID001","first_name":"Oscar"}}}"#;
        check_sample(&parse_reply(body.as_bytes()).unwrap());
    }

    #[test]
    fn broken_bodies() {
        assert_eq!(parse_reply(b"<html>").unwrap_err(), ResponseError::NotJson);
        assert_eq!(parse_reply(b"").unwrap_err(), ResponseError::NotJson);
        assert_eq!(
            parse_reply(b"[]").unwrap_err(),
            ResponseError::NoCustomerResponse
        );
        assert_eq!(
            parse_reply(b"{}").unwrap_err(),
            ResponseError::NoCustomerResponse
        );
        assert_eq!(
            parse_reply(br#"{"customer_response":{"result_code":"x"}}"#).unwrap_err(),
            ResponseError::BadResultCode
        );
        assert_eq!(
            parse_reply(br#"{"customer_response":{"result_code":null}}"#).unwrap_err(),
            ResponseError::BadResultCode
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_reply(&bytes);
        }

        #[test]
        fn round_trips(code in 1u8..=3, token in "[0-9]{1,16}", text in "[A-Z ]{0,20}") {
            let reply = CustomerReply {
                customer_response: CustomerResponse {
                    result_code: code,
                    result_text: Some(text.clone()).filter(|t| !t.is_empty()),
                    token: Some(token),
                    ..Default::default()
                },
                customer: Some(CustomerFields { customer_id: Some("C1".into()), ..Default::default() }),
            };
            let plain = serde_json::to_vec(&reply).unwrap();
            proptest::prop_assert_eq!(parse_reply(&plain).unwrap(), reply.clone());
            let double = serde_json::to_vec(&serde_json::to_string(&reply).unwrap()).unwrap();
            proptest::prop_assert_eq!(parse_reply(&double).unwrap(), reply);
        }
    }
}
