use super::*;
use crate::gateway::record::{CardRequest, CheckRequest, CustomerFields, CustomerRequest};

fn base() -> CustomerRequest {
    CustomerRequest {
        customer: CustomerFields {
            customer_id: Some("CID001".into()),
            action_code: Some("1".into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn first_error(req: &CustomerRequest) -> Option<String> {
    validate(req)
        .err()
        .and_then(|e| e.first().map(|e| e.to_string()))
}

#[test]
fn minimal_record_is_valid() {
    assert_eq!(validate(&base()), Ok(()));
}

#[test]
fn message_names_field_and_rule() {
    let mut r = base();
    r.customer.zip = Some("1234".into());
    assert_eq!(
        first_error(&r).as_deref(),
        Some("zip: must be 5 or 9 digits")
    );
}

#[test]
fn customer_rules_table() {
    type Set = fn(&mut CustomerFields, String);
    let cases: &[(&str, Set, &str, bool)] = &[
        (
            "first_name",
            |c, v| c.first_name = Some(v),
            &"a".repeat(50),
            true,
        ),
        (
            "first_name",
            |c, v| c.first_name = Some(v),
            &"a".repeat(51),
            false,
        ),
        (
            "last_name",
            |c, v| c.last_name = Some(v),
            &"é".repeat(50),
            true,
        ),
        (
            "last_name",
            |c, v| c.last_name = Some(v),
            &"b".repeat(51),
            false,
        ),
        (
            "street_1",
            |c, v| c.street_1 = Some(v),
            &"s".repeat(51),
            false,
        ),
        (
            "street_2",
            |c, v| c.street_2 = Some(v),
            &"s".repeat(51),
            false,
        ),
        ("city", |c, v| c.city = Some(v), &"c".repeat(51), false),
        ("state", |c, v| c.state = Some(v), &"s".repeat(51), false),
        (
            "country",
            |c, v| c.country = Some(v),
            &"c".repeat(51),
            false,
        ),
        (
            "company",
            |c, v| c.company = Some(v),
            &"c".repeat(51),
            false,
        ),
        ("notes", |c, v| c.notes = Some(v), &"n".repeat(255), true),
        ("notes", |c, v| c.notes = Some(v), &"n".repeat(256), false),
        ("zip", |c, v| c.zip = Some(v), "32503", true),
        ("zip", |c, v| c.zip = Some(v), "325031234", true),
        ("zip", |c, v| c.zip = Some(v), "3250", false),
        ("zip", |c, v| c.zip = Some(v), "325031", false),
        ("zip", |c, v| c.zip = Some(v), "3250A", false),
        ("zip", |c, v| c.zip = Some(v), "32503-1234", false),
        (
            "phone_number",
            |c, v| c.phone_number = Some(v),
            "2025550197",
            true,
        ),
        (
            "phone_number",
            |c, v| c.phone_number = Some(v),
            "202555019",
            false,
        ),
        (
            "phone_number",
            |c, v| c.phone_number = Some(v),
            "202-555-0197",
            false,
        ),
        ("email", |c, v| c.email = Some(v), "abc@xyz.com", true),
        ("email", |c, v| c.email = Some(v), "abc@xyz", false),
        ("email", |c, v| c.email = Some(v), "abc.xyz.com", false),
        ("email", |c, v| c.email = Some(v), "@xyz.com", false),
        ("email", |c, v| c.email = Some(v), "a b@xyz.com", false),
        ("email_receipt", |c, v| c.email_receipt = Some(v), "1", true),
        (
            "email_receipt",
            |c, v| c.email_receipt = Some(v),
            "yes",
            false,
        ),
        ("customer_id", |c, v| c.customer_id = Some(v), "AUTO", true),
        (
            "customer_id",
            |c, v| c.customer_id = Some(v),
            &"x".repeat(50),
            true,
        ),
        (
            "customer_id",
            |c, v| c.customer_id = Some(v),
            &"x".repeat(51),
            false,
        ),
        (
            "customer_id",
            |c, v| c.customer_id = Some(v),
            "CID 001",
            false,
        ),
        ("action_code", |c, v| c.action_code = Some(v), "4", true),
        ("action_code", |c, v| c.action_code = Some(v), "0", false),
        ("action_code", |c, v| c.action_code = Some(v), "5", false),
        ("action_code", |c, v| c.action_code = Some(v), "x", false),
    ];
    for (field, set, value, ok) in cases {
        let mut r = base();
        set(&mut r.customer, value.to_string());
        let got = validate(&r);
        if *ok {
            assert_eq!(got, Ok(()), "{field}={value:?} should pass");
        } else {
            let errs = got.expect_err(field);
            assert_eq!(errs.len(), 1, "{field}={value:?}: {errs:?}");
            assert_eq!(errs[0].field, *field, "{value:?}");
        }
        // The customer fields check alone agrees with the whole-record check.
        assert_eq!(validate_customer_fields(&r.customer).is_ok(), *ok);
    }
}

#[test]
fn customer_id_is_mandatory() {
    let mut r = base();
    r.customer.customer_id = None;
    assert_eq!(first_error(&r).as_deref(), Some("customer_id: is required"));
    // On its own (the local API), a missing id is fine: the agent supplies one.
    assert_eq!(validate_customer_fields(&r.customer), Ok(()));
}

#[test]
fn client_ip_length() {
    let mut r = base();
    r.client_ip = Some("1".repeat(46));
    assert_eq!(
        first_error(&r).as_deref(),
        Some("client_ip: must be at most 45 characters")
    );
}

fn with_card(card: CardRequest) -> CustomerRequest {
    CustomerRequest {
        card: Some(card),
        ..base()
    }
}

fn card_num(n: &str) -> CardRequest {
    CardRequest {
        number: Some(n.into()),
        expiration_date: Some("1229".into()),
        ..Default::default()
    }
}

#[test]
fn card_rules_table() {
    type Set = fn(&mut CardRequest, String);
    let cases: &[(&str, Set, &str, bool)] = &[
        (
            "card.number",
            |c, v| c.number = Some(v.as_str().into()),
            "4242424242424",
            true,
        ),
        (
            "card.number",
            |c, v| c.number = Some(v.as_str().into()),
            "4242424242424242424",
            true,
        ),
        (
            "card.number",
            |c, v| c.number = Some(v.as_str().into()),
            "424242424242",
            false,
        ),
        (
            "card.number",
            |c, v| c.number = Some(v.as_str().into()),
            "42424242424242424242",
            false,
        ),
        (
            "card.number",
            |c, v| c.number = Some(v.as_str().into()),
            "4242 4242 4242 4242",
            false,
        ),
        ("card.code", |c, v| c.code = Some(v.into()), "123", true),
        ("card.code", |c, v| c.code = Some(v.into()), "1234", true),
        ("card.code", |c, v| c.code = Some(v.into()), "12", false),
        ("card.code", |c, v| c.code = Some(v.into()), "12345", false),
        (
            "card.expiration_date",
            |c, v| c.expiration_date = Some(v),
            "0130",
            true,
        ),
        (
            "card.expiration_date",
            |c, v| c.expiration_date = Some(v),
            "1299",
            true,
        ),
        (
            "card.expiration_date",
            |c, v| c.expiration_date = Some(v),
            "1329",
            false,
        ),
        (
            "card.expiration_date",
            |c, v| c.expiration_date = Some(v),
            "0029",
            false,
        ),
        (
            "card.expiration_date",
            |c, v| c.expiration_date = Some(v),
            "129",
            false,
        ),
        (
            "card.expiration_date",
            |c, v| c.expiration_date = Some(v),
            "12/29",
            false,
        ),
        (
            "card.ksn",
            |c, v| c.ksn = Some(v),
            "FFFF9876543210E00001",
            true,
        ),
        (
            "card.ksn",
            |c, v| c.ksn = Some(v),
            "123456789012345678901234",
            true,
        ),
        (
            "card.ksn",
            |c, v| c.ksn = Some(v),
            "FFFF9876543210E0000",
            false,
        ),
        (
            "card.ksn",
            |c, v| c.ksn = Some(v),
            "FFFF9876543210E0000G",
            false,
        ),
        (
            "card.ksn",
            |c, v| c.ksn = Some(v),
            "FFFF9876543210E000010",
            false,
        ),
        ("card.entry_mode", |c, v| c.entry_mode = Some(v), "05", true),
        ("card.entry_mode", |c, v| c.entry_mode = Some(v), "07", true),
        ("card.entry_mode", |c, v| c.entry_mode = Some(v), "80", true),
        ("card.entry_mode", |c, v| c.entry_mode = Some(v), "91", true),
        ("card.entry_mode", |c, v| c.entry_mode = Some(v), "90", true),
        (
            "card.entry_mode",
            |c, v| c.entry_mode = Some(v),
            "06",
            false,
        ),
        ("card.entry_mode", |c, v| c.entry_mode = Some(v), "5", false),
        (
            "card.action_code",
            |c, v| c.action_code = Some(v),
            "1",
            true,
        ),
        (
            "card.action_code",
            |c, v| c.action_code = Some(v),
            "a",
            false,
        ),
    ];
    for (field, set, value, ok) in cases {
        let mut card = card_num("4005571701111111");
        set(&mut card, value.to_string());
        let got = validate(&with_card(card));
        if *ok {
            assert_eq!(got, Ok(()), "{field}={value:?} should pass");
        } else {
            let errs = got.expect_err(field);
            assert_eq!(errs.len(), 1, "{field}={value:?}: {errs:?}");
            assert_eq!(errs[0].field, *field, "{value:?}");
        }
    }
}

#[test]
fn pin_block_rules() {
    let mut card = card_num("4005571701111111");
    card.pin_block = Some("0123456789ABCDEF".into());
    let errs = validate(&with_card(card.clone())).unwrap_err();
    assert_eq!(
        errs,
        vec![FieldError::new("card.ksn", Rule::RequiredWith("pin_block"))]
    );
    card.ksn = Some("FFFF9876543210E00001".into());
    assert_eq!(validate(&with_card(card.clone())), Ok(()));
    card.pin_block = Some("0123456789ABCDE".into());
    let errs = validate(&with_card(card)).unwrap_err();
    assert_eq!(errs[0].field, "card.pin_block");
    assert_eq!(errs[0].rule, Rule::PinBlockHex);
}

#[test]
fn card_needs_something_that_identifies_it() {
    let errs = validate(&with_card(CardRequest::default())).unwrap_err();
    assert_eq!(errs, vec![FieldError::new("card", Rule::CardDataNeeded)]);
    let mut card = card_num("4005571701111111");
    card.expiration_date = None;
    let errs = validate(&with_card(card)).unwrap_err();
    assert_eq!(
        errs[0].to_string(),
        "card.expiration_date: is required with number"
    );
    for card in [
        CardRequest {
            track_data: Some(";4005571701111111=2512101?".into()),
            ..Default::default()
        },
        CardRequest {
            token: Some("1234567890123456".into()),
            ..Default::default()
        },
    ] {
        assert_eq!(validate(&with_card(card)), Ok(()));
    }
}

/// Routing numbers checked by hand with weights 3,7,1:
/// 021000021 → 7·(2+0+2) + (1+0+1) = 30 ✓; 011000015 → 7·(1+0+1) + (1+0+5) = 20 ✓;
/// 121000358 → 3·(1+0+3) + 7·(2+0+5) + (1+0+8) = 12+49+9 = 70 ✓;
/// 021000022 → 31 ✗; 123456789 → 3·12 + 7·15 + 18 = 159 ✗.
#[test]
fn aba_checksum_by_hand() {
    for good in ["021000021", "011000015", "121000358"] {
        assert!(aba_checksum_ok(good), "{good}");
    }
    for bad in ["021000022", "123456789", "02100002", "02100002A"] {
        assert!(!aba_checksum_ok(bad), "{bad}");
    }
}

fn with_check(f: impl FnOnce(&mut CheckRequest)) -> CustomerRequest {
    let mut check = CheckRequest {
        aba_code: Some("021000021".into()),
        account_number: Some("12345678".into()),
        ..Default::default()
    };
    f(&mut check);
    CustomerRequest {
        check: Some(check),
        ..base()
    }
}

#[test]
fn check_rules_table() {
    type Set = fn(&mut CheckRequest);
    let cases: &[(&str, Set, Option<Rule>)] = &[
        (
            "check.aba_code",
            |c| c.aba_code = Some("123456789".into()),
            Some(Rule::AbaChecksum),
        ),
        (
            "check.aba_code",
            |c| c.aba_code = Some("02100002".into()),
            Some(Rule::AbaDigits),
        ),
        (
            "check.aba_code",
            |c| c.aba_code = None,
            Some(Rule::Required),
        ),
        (
            "check.account_number",
            |c| c.account_number = None,
            Some(Rule::Required),
        ),
        (
            "check.account_number",
            |c| c.account_number = Some("1234567".into()),
            Some(Rule::AccountNumberDigits),
        ),
        (
            "check.account_number",
            |c| c.account_number = Some("1234567890123456".into()),
            Some(Rule::AccountNumberDigits),
        ),
        (
            "check.account_number",
            |c| c.account_number = Some("123456789012345".into()),
            None,
        ),
        (
            "check.account_type",
            |c| c.account_type = Some("2".into()),
            None,
        ),
        (
            "check.account_type",
            |c| c.account_type = Some("3".into()),
            Some(Rule::AccountType),
        ),
        (
            "check.check_number",
            |c| c.check_number = Some("000123".into()),
            None,
        ),
        (
            "check.check_number",
            |c| c.check_number = Some("12345".into()),
            Some(Rule::CheckNumberDigits),
        ),
        ("check.sec_code", |c| c.sec_code = Some("5".into()), None),
        (
            "check.sec_code",
            |c| c.sec_code = Some("6".into()),
            Some(Rule::SecCode),
        ),
    ];
    for (field, set, want) in cases {
        let got = validate(&with_check(set));
        match want {
            None => assert_eq!(got, Ok(()), "{field}"),
            Some(rule) => assert_eq!(got, Err(vec![FieldError::new(*field, *rule)])),
        }
    }
}

#[test]
fn action_codes_parse() {
    assert_eq!(parse_action_code("1"), Some(1));
    assert_eq!(parse_action_code("04"), Some(4));
    assert_eq!(parse_action_code("0"), None);
    assert_eq!(parse_action_code(""), None);
    assert_eq!(parse_action_code("-1"), None);
}

#[test]
fn errors_never_hold_values() {
    let mut card = card_num("4005571701111");
    card.number = Some("40055717011111119999".into());
    let errs = validate(&with_card(card)).unwrap_err();
    assert!(!format!("{errs:?}").contains("4005571701"));
}

proptest::proptest! {
    /// Arbitrary text in the fields: validation answers without panicking, and every error's
    /// text starts with the field it names.
    #[test]
    fn never_panics(values in proptest::collection::vec(".{0,70}", 12)) {
        let v = |i: usize| values.get(i).cloned();
        let req = CustomerRequest {
            client_ip: v(0),
            customer: CustomerFields {
                customer_id: v(1), zip: v(2), phone_number: v(3), email: v(4),
                action_code: v(5), ..Default::default()
            },
            card: Some(CardRequest {
                number: v(6).map(Into::into), expiration_date: v(7), ksn: v(8),
                pin_block: v(9).map(Into::into), ..Default::default()
            }),
            check: Some(CheckRequest {
                aba_code: v(10), account_number: v(11).map(Into::into), ..Default::default()
            }),
            ..Default::default()
        };
        if let Err(errors) = validate(&req) {
            for e in errors {
                let text = e.to_string();
                proptest::prop_assert!(text.starts_with(&e.field));
            }
        }
    }
}
