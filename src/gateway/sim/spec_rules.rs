//! The simulator's own reading of the field table in `spec/customer-api.md`, row by row, with
//! the entry modes of `spec/onepay-gateway.md`. Deliberately separate from the client's
//! validator (`gateway::validate`): a gateway stand-in that reused the client's checks would
//! agree with any misreading of the document the client made.
use crate::gateway::record::CustomerRequest;

/// What a row of the field table says a value must look like.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// "Upto N characters".
    Chars(usize),
    /// Digits only, one of these exact lengths ("5 digits or 9 digits", "10 digits").
    DigitsOf(&'static [usize]),
    /// Digits only, between these lengths ("13 to 19 Digits", "8 – 15 digits").
    DigitsBetween(usize, usize),
    /// Digits only ("numeric").
    Numeric,
    /// One of these values.
    OneOf(&'static [&'static str]),
    /// "MMYY".
    Mmyy,
    /// Hex of one of these lengths (a 10- or 12-byte KSN, an 8- or 16-byte PIN block).
    HexOf(&'static [usize]),
    /// "Format- abc@xyz.com".
    Email,
    /// "AUTO" or a user id like CID001 (letters, digits, `-`, `_`; at most 50).
    CustomerId,
    /// A 9-digit ABA routing number with a valid check digit.
    Aba,
}

type Get = fn(&CustomerRequest) -> Option<&str>;

/// (field as named in errors, where it is, what the table says).
const ROWS: &[(&str, Get, Form)] = &[
    ("client_ip", |r| r.client_ip.as_deref(), Form::Chars(45)),
    (
        "customer_id",
        |r| r.customer.customer_id.as_deref(),
        Form::CustomerId,
    ),
    (
        "first_name",
        |r| r.customer.first_name.as_deref(),
        Form::Chars(50),
    ),
    (
        "last_name",
        |r| r.customer.last_name.as_deref(),
        Form::Chars(50),
    ),
    (
        "street_1",
        |r| r.customer.street_1.as_deref(),
        Form::Chars(50),
    ),
    (
        "street_2",
        |r| r.customer.street_2.as_deref(),
        Form::Chars(50),
    ),
    ("city", |r| r.customer.city.as_deref(), Form::Chars(50)),
    ("state", |r| r.customer.state.as_deref(), Form::Chars(50)),
    (
        "zip",
        |r| r.customer.zip.as_deref(),
        Form::DigitsOf(&[5, 9]),
    ),
    (
        "country",
        |r| r.customer.country.as_deref(),
        Form::Chars(50),
    ),
    (
        "phone_number",
        |r| r.customer.phone_number.as_deref(),
        Form::DigitsOf(&[10]),
    ),
    (
        "company",
        |r| r.customer.company.as_deref(),
        Form::Chars(50),
    ),
    ("email", |r| r.customer.email.as_deref(), Form::Email),
    (
        "email_receipt",
        |r| r.customer.email_receipt.as_deref(),
        Form::OneOf(&["0", "1"]),
    ),
    ("notes", |r| r.customer.notes.as_deref(), Form::Chars(255)),
    (
        "action_code",
        |r| r.customer.action_code.as_deref(),
        Form::OneOf(&["1", "2", "3", "4"]),
    ),
    (
        "card.number",
        |r| r.card.as_ref()?.number.as_ref().map(|n| n.expose()),
        Form::DigitsBetween(13, 19),
    ),
    (
        "card.code",
        |r| r.card.as_ref()?.code.as_ref().map(|c| c.expose()),
        Form::DigitsBetween(3, 4),
    ),
    (
        "card.expiration_date",
        |r| r.card.as_ref()?.expiration_date.as_deref(),
        Form::Mmyy,
    ),
    (
        "card.ksn",
        |r| r.card.as_ref()?.ksn.as_deref(),
        Form::HexOf(&[20, 24]),
    ),
    (
        "card.entry_mode",
        |r| r.card.as_ref()?.entry_mode.as_deref(),
        // customer-api.md: 05, 07, 80, 91; onepay-gateway.md adds 90 swipe, 01, 02.
        Form::OneOf(&["05", "07", "80", "91", "90", "01", "02"]),
    ),
    (
        "card.pin_block",
        |r| r.card.as_ref()?.pin_block.as_ref().map(|p| p.expose()),
        Form::HexOf(&[16, 32]),
    ),
    (
        "card.action_code",
        |r| r.card.as_ref()?.action_code.as_deref(),
        Form::Numeric,
    ),
    (
        "check.aba_code",
        |r| r.check.as_ref()?.aba_code.as_deref(),
        Form::Aba,
    ),
    (
        "check.account_number",
        |r| {
            r.check
                .as_ref()?
                .account_number
                .as_ref()
                .map(|a| a.expose())
        },
        Form::DigitsBetween(8, 15),
    ),
    (
        "check.account_type",
        |r| r.check.as_ref()?.account_type.as_deref(),
        Form::OneOf(&["0", "1", "2"]),
    ),
    (
        "check.check_number",
        |r| r.check.as_ref()?.check_number.as_deref(),
        Form::DigitsOf(&[6]),
    ),
    (
        "check.sec_code",
        |r| r.check.as_ref()?.sec_code.as_deref(),
        Form::OneOf(&["0", "1", "2", "3", "4", "5"]),
    ),
    (
        "check.action_code",
        |r| r.check.as_ref()?.action_code.as_deref(),
        Form::Numeric,
    ),
];

/// The first rule the request breaks, as `field: what the document asks`; `None` if valid.
/// Never holds the value (it may be card data).
pub fn first_error(r: &CustomerRequest) -> Option<String> {
    // Mandatory fields first.
    if r.customer.customer_id.is_none() {
        return Some("customer_id: is mandatory".into());
    }
    for (name, get, form) in ROWS {
        if let Some(v) = get(r) {
            if !fits(v, *form) {
                return Some(format!("{name}: {}", describe(*form)));
            }
        }
    }
    if let Some(card) = &r.card {
        // "ksn: Required if pinblock is present."
        if card.pin_block.is_some() && card.ksn.is_none() {
            return Some("card.ksn: is required with a pin_block".into());
        }
        // number, track_data or token is what the card is (all "Conditional"); a number
        // needs its expiration date.
        let (number, track, token) = (
            card.number.is_some(),
            card.track_data.is_some(),
            card.token.is_some(),
        );
        if !number && !track && !token {
            return Some("card: needs number, track_data or token".into());
        }
        if number && !track && !token && card.expiration_date.is_none() {
            return Some("card.expiration_date: is required with a number".into());
        }
    }
    if let Some(check) = &r.check {
        if check.aba_code.is_none() {
            return Some("check.aba_code: is mandatory".into());
        }
        if check.account_number.is_none() {
            return Some("check.account_number: is mandatory".into());
        }
    }
    None
}

fn digits(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())
}

fn fits(v: &str, form: Form) -> bool {
    match form {
        Form::Chars(n) => v.chars().count() <= n,
        Form::DigitsOf(lens) => digits(v) && lens.contains(&v.len()),
        Form::DigitsBetween(lo, hi) => digits(v) && (lo..=hi).contains(&v.len()),
        Form::Numeric => digits(v),
        // Numbers arrive as text ("1"); a leading zero ("01") is the same number.
        Form::OneOf(set) => {
            set.contains(&v) || (digits(v) && set.contains(&v.trim_start_matches('0')))
        }
        Form::Mmyy => {
            digits(v)
                && v.len() == 4
                && matches!(v.get(..2).and_then(|m| m.parse::<u8>().ok()), Some(1..=12))
        }
        Form::HexOf(lens) => {
            !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()) && lens.contains(&v.len())
        }
        Form::Email => match v.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && !v.contains(char::is_whitespace)
                    && domain.split('.').count() >= 2
                    && domain.split('.').all(|l| !l.is_empty())
            }
            None => false,
        },
        Form::CustomerId => {
            v == "AUTO"
                || (!v.is_empty()
                    && v.chars().count() <= 50
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        }
        Form::Aba => {
            digits(v)
                && v.len() == 9
                && v.bytes()
                    .zip([3u32, 7, 1, 3, 7, 1, 3, 7, 1])
                    .map(|(b, w)| u32::from(b - b'0') * w)
                    .sum::<u32>()
                    % 10
                    == 0
        }
    }
}

fn describe(form: Form) -> String {
    match form {
        Form::Chars(n) => format!("must be at most {n} characters"),
        Form::DigitsOf(lens) => format!(
            "must be {} digits",
            lens.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Form::DigitsBetween(lo, hi) => format!("must be {lo} to {hi} digits"),
        Form::Numeric => "must be numeric".into(),
        Form::OneOf(set) => format!("must be one of {}", set.join(", ")),
        Form::Mmyy => "must be MMYY".into(),
        Form::HexOf(lens) => format!(
            "must be {} hex digits",
            lens.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        Form::Email => "must be an address like abc@xyz.com".into(),
        Form::CustomerId => "must be AUTO or an id like CID001 (at most 50)".into(),
        Form::Aba => "must be a 9-digit ABA routing number".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::record::{CardRequest, CheckRequest, CustomerFields};

    fn base() -> CustomerRequest {
        CustomerRequest {
            customer: CustomerFields {
                customer_id: Some("CID001".into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Values at the edges the document names, by hand.
    #[test]
    fn edges_of_the_table() {
        assert_eq!(first_error(&base()), None);
        let mut r = base();
        r.customer.zip = Some("325031234".into());
        r.customer.phone_number = Some("2025550197".into());
        r.customer.action_code = Some("4".into());
        assert_eq!(first_error(&r), None);
        r.customer.zip = Some("3250".into());
        assert_eq!(first_error(&r).unwrap(), "zip: must be 5 or 9 digits");
        let mut r = base();
        r.card = Some(CardRequest {
            expiration_date: Some("1229".into()),
            number: Some("4005571701111111".into()),
            ..Default::default()
        });
        assert_eq!(first_error(&r), None);
        r.card.as_mut().unwrap().expiration_date = Some("0029".into());
        assert_eq!(
            first_error(&r).unwrap(),
            "card.expiration_date: must be MMYY"
        );
        let mut r = base();
        // 011000015: 3·0+7·1+1·1 + 3·0+7·0+1·0 + 3·0+7·1+1·5 = 20: a valid routing number.
        r.check = Some(CheckRequest {
            aba_code: Some("011000015".into()),
            account_number: Some("12345678".into()),
            ..Default::default()
        });
        assert_eq!(first_error(&r), None);
        r.check.as_mut().unwrap().aba_code = Some("011000016".into());
        assert!(first_error(&r).unwrap().starts_with("check.aba_code:"));
    }
}
