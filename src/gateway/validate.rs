//! Validation of the Customer record: every rule customer-api.md states, each error naming the
//! field and the rule (`zip: must be 5 or 9 digits`). Customer fields are named bare (`zip`),
//! card and check fields with their object (`card.number`, `check.aba_code`).
use super::record::{CardRequest, CheckRequest, CustomerFields, CustomerRequest};

/// The rule a field broke. Stable: `code()` is the reason code, `Display` the human text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Required,
    MaxLen(usize),
    ZipDigits,
    PhoneDigits,
    EmailForm,
    CustomerIdForm,
    ActionCode,
    Boolean,
    Numeric,
    CardNumberDigits,
    CardCodeDigits,
    ExpiryMmyy,
    KsnHex,
    EntryMode,
    PinBlockHex,
    /// Present only together with the named field (`ksn` with `pin_block`).
    RequiredWith(&'static str),
    /// A card needs track data, a number with expiry, or a token.
    CardDataNeeded,
    AbaDigits,
    AbaChecksum,
    AccountNumberDigits,
    AccountType,
    CheckNumberDigits,
    SecCode,
}

impl Rule {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Rule::Required => "required",
            Rule::MaxLen(_) => "too-long",
            Rule::ZipDigits => "zip-digits",
            Rule::PhoneDigits => "phone-digits",
            Rule::EmailForm => "email-form",
            Rule::CustomerIdForm => "customer-id-form",
            Rule::ActionCode => "action-code",
            Rule::Boolean => "boolean",
            Rule::Numeric => "numeric",
            Rule::CardNumberDigits => "card-number-digits",
            Rule::CardCodeDigits => "card-code-digits",
            Rule::ExpiryMmyy => "expiry-mmyy",
            Rule::KsnHex => "ksn-hex",
            Rule::EntryMode => "entry-mode",
            Rule::PinBlockHex => "pin-block-hex",
            Rule::RequiredWith(_) => "required-with",
            Rule::CardDataNeeded => "card-data-needed",
            Rule::AbaDigits => "aba-digits",
            Rule::AbaChecksum => "aba-checksum",
            Rule::AccountNumberDigits => "account-number-digits",
            Rule::AccountType => "account-type",
            Rule::CheckNumberDigits => "check-number-digits",
            Rule::SecCode => "sec-code",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rule::Required => f.write_str("is required"),
            Rule::MaxLen(n) => write!(f, "must be at most {n} characters"),
            Rule::ZipDigits => f.write_str("must be 5 or 9 digits"),
            Rule::PhoneDigits => f.write_str("must be 10 digits"),
            Rule::EmailForm => f.write_str("must be an email address like abc@xyz.com"),
            Rule::CustomerIdForm => {
                f.write_str("must be AUTO or 1 to 50 letters, digits, '-' or '_'")
            }
            Rule::ActionCode => f.write_str("must be 1, 2, 3 or 4"),
            Rule::Boolean => f.write_str("must be 1 or 0"),
            Rule::Numeric => f.write_str("must be digits"),
            Rule::CardNumberDigits => f.write_str("must be 13 to 19 digits"),
            Rule::CardCodeDigits => f.write_str("must be 3 or 4 digits"),
            Rule::ExpiryMmyy => f.write_str("must be MMYY with a month from 01 to 12"),
            Rule::KsnHex => f.write_str("must be 20 or 24 hex digits"),
            Rule::EntryMode => write!(f, "must be one of {}", ENTRY_MODES.join(", ")),
            Rule::PinBlockHex => f.write_str("must be 16 or 32 hex digits"),
            Rule::RequiredWith(other) => write!(f, "is required with {other}"),
            Rule::CardDataNeeded => {
                f.write_str("needs track_data, number with expiration_date, or token")
            }
            Rule::AbaDigits => f.write_str("must be 9 digits"),
            Rule::AbaChecksum => f.write_str("fails the ABA routing number checksum"),
            Rule::AccountNumberDigits => f.write_str("must be 8 to 15 digits"),
            Rule::AccountType => f.write_str("must be 0 (checking), 1 (saving) or 2 (business)"),
            Rule::CheckNumberDigits => f.write_str("must be 6 digits"),
            Rule::SecCode => f.write_str("must be 0 to 5 (CCD, PPD, WEB, TEL, BOC, ARC)"),
        }
    }
}

/// One broken rule. Never holds the field's value (it may be card data).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct FieldError {
    pub field: String,
    pub rule: Rule,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: Rule) -> Self {
        Self {
            field: field.into(),
            rule,
        }
    }
}

/// POS entry modes accepted: the spec's table (05, 07, 80, 91), swipe 90, and the vendor apps'
/// 01 manual and 02 swipe (onepay-gateway.md "Entry modes seen").
pub const ENTRY_MODES: &[&str] = &["01", "02", "05", "07", "80", "90", "91"];

/// Longest `customer_id` accepted (the agent's ids are at most 50 characters, issue 4).
pub const CUSTOMER_ID_MAX: usize = 50;

/// Every rule of the whole request; empty when valid. Errors come in field order.
pub fn validate(req: &CustomerRequest) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    max_len(&mut errors, "client_ip", req.client_ip.as_deref(), 45);
    customer_rules(&mut errors, &req.customer, true);
    if let Some(card) = &req.card {
        card_rules(&mut errors, card);
    }
    if let Some(check) = &req.check {
        check_rules(&mut errors, check);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The `customer` object's rules alone (the local API answers 400 naming e.g. `zip` with it).
/// `customer_id` is checked when present but not required: the agent usually supplies it.
pub fn validate_customer_fields(c: &CustomerFields) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    customer_rules(&mut errors, c, false);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn customer_rules(errors: &mut Vec<FieldError>, c: &CustomerFields, require_id: bool) {
    match c.customer_id.as_deref() {
        None if require_id => errors.push(FieldError::new("customer_id", Rule::Required)),
        None => {}
        Some(id) if !customer_id_ok(id) => {
            errors.push(FieldError::new("customer_id", Rule::CustomerIdForm))
        }
        Some(_) => {}
    }
    for (name, value) in [
        ("first_name", &c.first_name),
        ("last_name", &c.last_name),
        ("street_1", &c.street_1),
        ("street_2", &c.street_2),
        ("city", &c.city),
        ("state", &c.state),
        ("country", &c.country),
        ("company", &c.company),
    ] {
        max_len(errors, name, value.as_deref(), 50);
    }
    if let Some(zip) = c.zip.as_deref() {
        if !(all_digits(zip) && (zip.len() == 5 || zip.len() == 9)) {
            errors.push(FieldError::new("zip", Rule::ZipDigits));
        }
    }
    if let Some(phone) = c.phone_number.as_deref() {
        if !(all_digits(phone) && phone.len() == 10) {
            errors.push(FieldError::new("phone_number", Rule::PhoneDigits));
        }
    }
    if let Some(email) = c.email.as_deref() {
        if !email_ok(email) {
            errors.push(FieldError::new("email", Rule::EmailForm));
        } else {
            max_len(errors, "email", Some(email), 255);
        }
    }
    if let Some(flag) = c.email_receipt.as_deref() {
        if flag != "0" && flag != "1" {
            errors.push(FieldError::new("email_receipt", Rule::Boolean));
        }
    }
    max_len(errors, "notes", c.notes.as_deref(), 255);
    if let Some(code) = c.action_code.as_deref() {
        if parse_action_code(code).is_none() {
            errors.push(FieldError::new("action_code", Rule::ActionCode));
        }
    }
}

fn card_rules(errors: &mut Vec<FieldError>, card: &CardRequest) {
    let number = card.number.as_ref().map(|n| n.expose());
    if let Some(n) = number {
        if !(all_digits(n) && (13..=19).contains(&n.len())) {
            errors.push(FieldError::new("card.number", Rule::CardNumberDigits));
        }
    }
    if let Some(code) = card.code.as_ref().map(|c| c.expose()) {
        if !(all_digits(code) && (3..=4).contains(&code.len())) {
            errors.push(FieldError::new("card.code", Rule::CardCodeDigits));
        }
    }
    if let Some(exp) = card.expiration_date.as_deref() {
        if !expiry_ok(exp) {
            errors.push(FieldError::new("card.expiration_date", Rule::ExpiryMmyy));
        }
    }
    if let Some(ksn) = card.ksn.as_deref() {
        if !(all_hex(ksn) && (ksn.len() == 20 || ksn.len() == 24)) {
            errors.push(FieldError::new("card.ksn", Rule::KsnHex));
        }
    }
    if let Some(mode) = card.entry_mode.as_deref() {
        if !ENTRY_MODES.contains(&mode) {
            errors.push(FieldError::new("card.entry_mode", Rule::EntryMode));
        }
    }
    if let Some(pin) = card.pin_block.as_ref().map(|p| p.expose()) {
        if !(all_hex(pin) && (pin.len() == 16 || pin.len() == 32)) {
            errors.push(FieldError::new("card.pin_block", Rule::PinBlockHex));
        }
        if card.ksn.is_none() {
            errors.push(FieldError::new("card.ksn", Rule::RequiredWith("pin_block")));
        }
    }
    if let Some(code) = card.action_code.as_deref() {
        if !all_digits(code) {
            errors.push(FieldError::new("card.action_code", Rule::Numeric));
        }
    }
    max_len(errors, "card.auth_code", card.auth_code.as_deref(), 50);
    // Conditional: what identifies the card.
    let has_track = card.track_data.is_some();
    let has_token = card.token.is_some();
    if number.is_some() && card.expiration_date.is_none() && !has_track && !has_token {
        errors.push(FieldError::new(
            "card.expiration_date",
            Rule::RequiredWith("number"),
        ));
    } else if number.is_none() && !has_track && !has_token {
        errors.push(FieldError::new("card", Rule::CardDataNeeded));
    }
}

fn check_rules(errors: &mut Vec<FieldError>, check: &CheckRequest) {
    match check.aba_code.as_deref() {
        None => errors.push(FieldError::new("check.aba_code", Rule::Required)),
        Some(aba) if !(all_digits(aba) && aba.len() == 9) => {
            errors.push(FieldError::new("check.aba_code", Rule::AbaDigits))
        }
        Some(aba) if !aba_checksum_ok(aba) => {
            errors.push(FieldError::new("check.aba_code", Rule::AbaChecksum))
        }
        Some(_) => {}
    }
    match check.account_number.as_ref().map(|a| a.expose()) {
        None => errors.push(FieldError::new("check.account_number", Rule::Required)),
        Some(acct) if !(all_digits(acct) && (8..=15).contains(&acct.len())) => errors.push(
            FieldError::new("check.account_number", Rule::AccountNumberDigits),
        ),
        Some(_) => {}
    }
    if let Some(t) = check.account_type.as_deref() {
        if !matches!(t, "0" | "1" | "2") {
            errors.push(FieldError::new("check.account_type", Rule::AccountType));
        }
    }
    if let Some(n) = check.check_number.as_deref() {
        if !(all_digits(n) && n.len() == 6) {
            errors.push(FieldError::new(
                "check.check_number",
                Rule::CheckNumberDigits,
            ));
        }
    }
    if let Some(s) = check.sec_code.as_deref() {
        if !matches!(s, "0" | "1" | "2" | "3" | "4" | "5") {
            errors.push(FieldError::new("check.sec_code", Rule::SecCode));
        }
    }
    if let Some(code) = check.action_code.as_deref() {
        if !all_digits(code) {
            errors.push(FieldError::new("check.action_code", Rule::Numeric));
        }
    }
}

/// `1`..`4` as given (`"1"`, `1`, `"01"` all read as 1).
pub fn parse_action_code(s: &str) -> Option<u8> {
    let s = s.trim();
    if s.is_empty() || !all_digits(s) {
        return None;
    }
    match s.trim_start_matches('0') {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        "4" => Some(4),
        _ => None,
    }
}

/// ABA routing checksum: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10).
pub fn aba_checksum_ok(aba: &str) -> bool {
    const WEIGHTS: [u32; 9] = [3, 7, 1, 3, 7, 1, 3, 7, 1];
    if aba.len() != 9 || !all_digits(aba) {
        return false;
    }
    let sum: u32 = aba
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    sum % 10 == 0
}

fn customer_id_ok(id: &str) -> bool {
    id == "AUTO"
        || (!id.is_empty()
            && id.chars().count() <= CUSTOMER_ID_MAX
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

/// `local@domain.tld`: one `@`, a non-empty local part, a dotted domain, no spaces.
fn email_ok(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.contains('@') || email.chars().any(char::is_whitespace) {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2 && labels.iter().all(|l| !l.is_empty())
}

fn expiry_ok(exp: &str) -> bool {
    if exp.len() != 4 || !all_digits(exp) {
        return false;
    }
    matches!(
        exp.get(..2).and_then(|m| m.parse::<u8>().ok()),
        Some(1..=12)
    )
}

fn max_len(errors: &mut Vec<FieldError>, field: &str, value: Option<&str>, max: usize) {
    if value.is_some_and(|v| v.chars().count() > max) {
        errors.push(FieldError::new(field, Rule::MaxLen(max)));
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn all_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests;
