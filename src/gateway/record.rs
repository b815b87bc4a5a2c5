//! The Customer API record (spec/customer-api.md): request and response types.
//!
//! Every field is optional text on the wire: clients send strings or numbers, or `""` for unused
//! fields; reading is lenient (see `lenient`) and `validate` decides what is acceptable.
//! Card and check data live in redacting, zeroizing types.
use serde::{Deserialize, Serialize};

use super::lenient::opt_scalar;
use super::secret::{AccountString, PanString, SecretString};

/// `POST /Customer` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub client_ip: Option<String>,
    #[serde(default)]
    pub customer: CustomerFields,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckRequest>,
    /// Not in the Customer field list: a pass-through (`MAGTEK`, `IDTECH`, `38`, `2`…) that tells
    /// the gateway how to decrypt `track_data`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub device_code: Option<String>,
}

/// The `customer` object; also the `customer` echo of a response and what the local API takes.
/// Address data, not card data: plain `Debug`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerFields {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub customer_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub first_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub last_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub street_1: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub street_2: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub city: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub state: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub zip: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub country: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub phone_number: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub company: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub email: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub email_receipt: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub notes: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub action_code: Option<String>,
}

/// The `card` object. Number, code, track data and PIN block redact themselves.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CardRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub number: Option<PanString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub code: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub expiration_date: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub track_data: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub token: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub pin_block: Option<SecretString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub ksn: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub action_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub auth_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub entry_mode: Option<String>,
}

/// The `check` object. The account number redacts itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub aba_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub account_number: Option<AccountString>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub account_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub bank_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub check_number: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub sec_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub action_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "opt_scalar"
    )]
    pub token: Option<String>,
}

/// `result_code` values.
pub const RESULT_APPROVED: u8 = 1;
pub const RESULT_DECLINED: u8 = 2;
pub const RESULT_ERROR: u8 = 3;

/// The `customer_response` object. No card data: the token and last 4 only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerResponse {
    pub result_code: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_sub_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_datetime: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub account_last_4: Option<String>,
    #[serde(default)]
    pub expiration_date: Option<String>,
}

/// A whole Customer reply: `customer_response` and the `customer` echo beside it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerReply {
    pub customer_response: CustomerResponse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<CustomerFields>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_numbers_and_empty_strings() {
        let req: CustomerRequest = serde_json::from_value(json!({
            "customer": {"customer_id": "CID001", "action_code": 1, "zip": "", "phone_number": 2025550197u64},
            "card": {"number": "4005571701111111", "expiration_date": "1229", "ksn": null}
        }))
        .unwrap();
        assert_eq!(req.customer.action_code.as_deref(), Some("1"));
        assert_eq!(req.customer.zip, None);
        assert_eq!(req.customer.phone_number.as_deref(), Some("2025550197"));
        let card = req.card.unwrap();
        assert_eq!(card.ksn, None);
        assert_eq!(card.number.unwrap().expose(), "4005571701111111");
    }

    #[test]
    fn debug_redacts_card_data() {
        let card = CardRequest {
            number: Some("4005571701111111".into()),
            code: Some("123".into()),
            track_data: Some(";4005571701111111=2512101?".into()),
            pin_block: Some("0412AC89ABCDEF67".into()),
            ..Default::default()
        };
        let dbg = format!("{card:?}");
        assert!(!dbg.contains("4005571701111111"), "{dbg}");
        assert!(!dbg.contains("0412AC89"), "{dbg}");
        assert!(!dbg.contains("123\""), "{dbg}");
        let check = CheckRequest {
            account_number: Some("123456789012".into()),
            ..Default::default()
        };
        assert!(!format!("{check:?}").contains("123456789012"));
        // An account shows its last 4 at most: not the first 6 a card number may show.
        let long = CheckRequest {
            account_number: Some("987654321012345".into()),
            ..Default::default()
        };
        let dbg = format!("{long:?}");
        assert!(dbg.contains("\"***********2345\""), "{dbg}");
        assert!(!dbg.contains("987654"), "{dbg}");
    }

    #[test]
    fn serializes_without_absent_fields() {
        let req = CustomerRequest {
            customer: CustomerFields {
                customer_id: Some("CID001".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"customer": {"customer_id": "CID001"}})
        );
    }
}
