//! From a check read (MICR line) to a Customer record with a `check` object (design.md §3
//! Checks, customer-api.md): what a MICR line cannot carry (account type, SEC code, bank name)
//! comes from the kiosk's capture or the lane's `[lane.check]` defaults; the check number goes
//! only with BOC and ARC, fitted to the gateway's 6 digits; an account outside the gateway's
//! 8-15 digits is refused, never padded.
use serde_json::{Map, Value};

use super::record::{CheckRequest, CustomerFields, CustomerRequest};
use super::swipe::{new_customer_id, non_empty, LaneSettings, SwipeError, SwipeRecord};
use super::validate::validate;
use super::AccountString;
use crate::card::{CheckRead, CheckType};

/// `check.account_type`: Checking 0, Saving 1, Business 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountType {
    Checking,
    Saving,
    Business,
}

impl AccountType {
    /// The gateway's digit, or a name (`checking`, `saving`/`savings`, `business`).
    pub fn parse(s: &str) -> Option<AccountType> {
        match s.trim().to_ascii_lowercase().as_str() {
            "0" | "checking" => Some(AccountType::Checking),
            "1" | "saving" | "savings" => Some(AccountType::Saving),
            "2" | "business" => Some(AccountType::Business),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            AccountType::Checking => "0",
            AccountType::Saving => "1",
            AccountType::Business => "2",
        }
    }
}

/// `check.sec_code`: CCD 0, PPD 1, WEB 2, TEL 3, BOC 4, ARC 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecCode {
    Ccd,
    Ppd,
    Web,
    Tel,
    Boc,
    Arc,
}

impl SecCode {
    /// The gateway's digit or the code's name (`CCD`, `PPD`, …, any case).
    pub fn parse(s: &str) -> Option<SecCode> {
        match s.trim().to_ascii_uppercase().as_str() {
            "0" | "CCD" => Some(SecCode::Ccd),
            "1" | "PPD" => Some(SecCode::Ppd),
            "2" | "WEB" => Some(SecCode::Web),
            "3" | "TEL" => Some(SecCode::Tel),
            "4" | "BOC" => Some(SecCode::Boc),
            "5" | "ARC" => Some(SecCode::Arc),
            _ => None,
        }
    }
    pub fn code(self) -> &'static str {
        match self {
            SecCode::Ccd => "0",
            SecCode::Ppd => "1",
            SecCode::Web => "2",
            SecCode::Tel => "3",
            SecCode::Boc => "4",
            SecCode::Arc => "5",
        }
    }
    /// The gateway takes a check number only with Back Office Conversion and Accounts
    /// Receivable Check entries (customer-api.md `check_number`).
    pub fn takes_check_number(self) -> bool {
        matches!(self, SecCode::Boc | SecCode::Arc)
    }
}

/// `[lane.check]`: defaults where the capture says nothing. `None`: by the check's type
/// (business: account type Business and CCD; personal: Checking and PPD).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckDefaults {
    pub account_type: Option<AccountType>,
    pub sec_code: Option<SecCode>,
}

/// A kiosk capture's `"check":{…}`: what the MICR line cannot carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOptions {
    pub account_type: Option<AccountType>,
    pub sec_code: Option<SecCode>,
    pub bank_name: Option<String>,
}

impl CheckOptions {
    /// From the capture body's `check` object; the error names the bad field.
    pub fn from_json(v: &Map<String, Value>) -> Result<CheckOptions, (String, String)> {
        let mut o = CheckOptions::default();
        for (k, val) in v {
            let bad = |what: &str| (format!("check.{k}"), what.to_string());
            match k.as_str() {
                "account_type" => {
                    let text = code_text(val, ACCOUNT_TYPE_NAMES);
                    o.account_type = Some(
                        text.as_deref()
                            .and_then(AccountType::parse)
                            .ok_or_else(|| {
                                bad("must be 0 (checking), 1 (saving) or 2 (business)")
                            })?,
                    )
                }
                "sec_code" => {
                    let text = code_text(val, SEC_CODE_NAMES);
                    o.sec_code = Some(text.as_deref().and_then(SecCode::parse).ok_or_else(|| {
                        bad("must be one of CCD (0), PPD (1), WEB (2), TEL (3), BOC (4), ARC (5)")
                    })?)
                }
                "bank_name" => {
                    let Value::String(text) = val else {
                        return Err(bad("must be a string"));
                    };
                    if text.chars().count() > 100 {
                        return Err(bad("at most 100 characters"));
                    }
                    let t = text.trim();
                    o.bank_name = (!t.is_empty()).then(|| t.to_string());
                }
                _ => {
                    return Err((
                        "check".into(),
                        "unknown field in `check` (expected account_type, sec_code, bank_name)"
                            .into(),
                    ))
                }
            }
        }
        Ok(o)
    }
}

/// `check.account_type` as a kiosk may write it: the gateway's digit or a name, exactly.
pub const ACCOUNT_TYPE_NAMES: &[&str] =
    &["0", "1", "2", "checking", "saving", "savings", "business"];

/// `check.sec_code` as a kiosk may write it: the gateway's digit or the code, upper or lower case.
pub const SEC_CODE_NAMES: &[&str] = &[
    "0", "1", "2", "3", "4", "5", "CCD", "PPD", "WEB", "TEL", "BOC", "ARC", "ccd", "ppd", "web",
    "tel", "boc", "arc",
];

/// A code given as one of `names` or as a whole JSON number (the digit).
fn code_text(v: &Value, names: &[&str]) -> Option<String> {
    match v {
        Value::String(s) if names.contains(&s.as_str()) => Some(s.clone()),
        Value::Number(n) => n.as_u64().map(|d| d.to_string()),
        _ => None,
    }
}

/// The serial number as the gateway's 6 digits: leading zeros beyond 6 digits dropped, a
/// shorter number zero-filled; more than 6 significant digits is refused.
pub fn fit_check_number(serial: &str) -> Result<String, SwipeError> {
    let significant = serial.trim_start_matches('0');
    if significant.len() > 6 || !serial.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SwipeError::Invalid(
            "check.check_number: the check's serial number has more than the gateway's 6 digits"
                .into(),
        ));
    }
    Ok(format!("{significant:0>6}"))
}

/// Builds and validates the record for one check read taken by a kiosk capture.
pub fn build_check_record(
    check: &CheckRead,
    customer: Option<&CustomerFields>,
    lane: &LaneSettings,
    defaults: &CheckDefaults,
    options: &CheckOptions,
) -> Result<SwipeRecord, SwipeError> {
    let n = check.account.len();
    if !(8..=15).contains(&n) {
        return Err(SwipeError::Invalid(format!(
            "check.account_number: the check's account number has {n} digits; the gateway takes 8 to 15"
        )));
    }
    let business = check.check_type == CheckType::Business;
    let account_type = options
        .account_type
        .or(defaults.account_type)
        .unwrap_or(if business {
            AccountType::Business
        } else {
            AccountType::Checking
        });
    let sec = options
        .sec_code
        .or(defaults.sec_code)
        .unwrap_or(if business { SecCode::Ccd } else { SecCode::Ppd });
    let check_number = if sec.takes_check_number() {
        let serial = check.check_number.as_deref().ok_or_else(|| {
            SwipeError::Invalid(
                "check.check_number: BOC and ARC need the check number, and the MICR line has no readable one"
                    .into(),
            )
        })?;
        Some(fit_check_number(serial)?)
    } else {
        None
    };

    let mut fields = customer.cloned().unwrap_or_default();
    let (customer_id, fresh_customer_id) = match non_empty(&fields.customer_id) {
        Some(id) if !id.eq_ignore_ascii_case("AUTO") => (id, false),
        _ => (new_customer_id(&lane.customer_id_prefix), true),
    };
    fields.customer_id = Some(customer_id.clone());
    fields.action_code = Some("1".into());
    let request = CustomerRequest {
        client_ip: lane.client_ip.clone(),
        customer: fields,
        card: None,
        check: Some(CheckRequest {
            aba_code: Some(check.aba_code.to_string()),
            account_number: Some(AccountString::new(check.account.expose())),
            account_type: Some(account_type.code().into()),
            bank_name: options.bank_name.clone(),
            check_number,
            sec_code: Some(sec.code().into()),
            ..CheckRequest::default()
        }),
        device_code: None,
    };
    if let Err(errors) = validate(&request) {
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(SwipeError::Invalid(text));
    }
    Ok(SwipeRecord {
        request,
        customer_id,
        // The account's last 4 only: the queue keeps this column in clear.
        masked_pan: Some(check.account.masked().to_string()),
        has_pin_block: false,
        fresh_customer_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::AccountNumber;

    fn check(account: &str, serial: Option<&str>, t: CheckType) -> CheckRead {
        CheckRead {
            aba_code: "122000218".into(),
            account: AccountNumber::new(account).unwrap(),
            check_number: serial.map(Into::into),
            check_type: t,
            epc: None,
            amount_cents: None,
            reader_status: None,
        }
    }

    fn named() -> CustomerFields {
        CustomerFields {
            first_name: Some("Pat".into()),
            last_name: Some("Check".into()),
            ..Default::default()
        }
    }

    fn build(c: &CheckRead, o: &CheckOptions) -> Result<SwipeRecord, SwipeError> {
        build_check_record(
            c,
            Some(&named()),
            &LaneSettings::default(),
            &CheckDefaults::default(),
            o,
        )
    }

    #[test]
    fn personal_check_defaults_to_checking_ppd_without_check_number() {
        let r = build(
            &check("123456789", Some("1321"), CheckType::Personal),
            &CheckOptions::default(),
        )
        .unwrap();
        let v = serde_json::to_value(&r.request).unwrap();
        assert_eq!(
            v["check"],
            serde_json::json!({"aba_code":"122000218","account_number":"123456789",
                               "account_type":"0","sec_code":"1"})
        );
        assert_eq!(v["customer"]["action_code"], "1");
        assert!(v.get("card").is_none());
        assert_eq!(r.masked_pan.as_deref(), Some("*****6789"));
        assert!(!format!("{r:?}").contains("123456789"));
    }

    #[test]
    fn boc_and_arc_carry_the_check_number_in_six_digits() {
        let boc = CheckOptions {
            sec_code: Some(SecCode::Boc),
            ..Default::default()
        };
        let r = build(&check("123456789", Some("1321"), CheckType::Personal), &boc).unwrap();
        let c = r.request.check.unwrap();
        assert_eq!(c.check_number.as_deref(), Some("001321"));
        assert_eq!(c.sec_code.as_deref(), Some("4"));
        // Leading zeros of an auxiliary on-us serial are dropped to fit.
        let b = build(
            &check("987654321", Some("0004567"), CheckType::Business),
            &boc,
        )
        .unwrap();
        let c = b.request.check.unwrap();
        assert_eq!(c.check_number.as_deref(), Some("004567"));
        assert_eq!(c.account_type.as_deref(), Some("2"));
        // Over-long serial: refused, naming the field.
        let e = build(
            &check("123456789", Some("1234567"), CheckType::Personal),
            &boc,
        )
        .unwrap_err();
        assert!(e.to_string().contains("check.check_number"), "{e}");
        let none = build(&check("123456789", None, CheckType::Personal), &boc).unwrap_err();
        assert!(none.to_string().contains("check.check_number"));
    }

    #[test]
    fn account_outside_8_to_15_digits_is_refused_not_padded() {
        for acct in ["1234567", "1234567890123456"] {
            let e = build(
                &check(acct, None, CheckType::Personal),
                &CheckOptions::default(),
            )
            .unwrap_err();
            assert_eq!(e.code(), "invalid-record");
            assert!(e.to_string().contains("check.account_number"), "{e}");
            assert!(!e.to_string().contains(acct));
        }
    }

    #[test]
    fn options_from_the_capture() {
        let m: Map<String, Value> = serde_json::from_value(serde_json::json!(
            {"account_type":"savings","sec_code":"arc","bank_name":" First Test Bank "}
        ))
        .unwrap();
        let o = CheckOptions::from_json(&m).unwrap();
        assert_eq!(o.account_type, Some(AccountType::Saving));
        assert_eq!(o.sec_code, Some(SecCode::Arc));
        assert_eq!(o.bank_name.as_deref(), Some("First Test Bank"));
        let m: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"sec_code": 6})).unwrap();
        assert_eq!(CheckOptions::from_json(&m).unwrap_err().0, "check.sec_code");
        let m: Map<String, Value> =
            serde_json::from_value(serde_json::json!({"routing": "1"})).unwrap();
        assert_eq!(CheckOptions::from_json(&m).unwrap_err().0, "check");
        assert_eq!(fit_check_number("000000001321").unwrap(), "001321");
    }
}
