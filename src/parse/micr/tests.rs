//! MICR lines written out by hand from micr.md's examples; expected fields worked out by hand.
use super::*;
use crate::card::CheckType;

fn ok(line: &[u8]) -> (CheckRead, Vec<String>) {
    decode_check(line, SymbolSet::Auto, false).unwrap_or_else(|e| panic!("{e}"))
}

fn err(line: &[u8]) -> &'static str {
    decode_check(line, SymbolSet::Auto, false)
        .unwrap_err()
        .code()
}

/// 3-7-1 weights by hand for 122000218: 1*3 + 2*7 + 2*1 + 0 + 0 + 0 + 2*3 + 1*7 + 8*1 = 40.
const ROUTING: &str = "122000218";

#[test]
fn magtek_manual_examples() {
    // micr.md §2: format 0000 and 0033 both give routing 122000218, account 123456789,
    // check 1321, personal.
    for line in [
        &b"T122000218T 1234 5678 9U 1321"[..],
        b"t122000218t123456789o1321",
        b"T122000218T 1234 5678 9U 1321/00\r\n",
    ] {
        let (c, w) = ok(line);
        assert_eq!(c.aba_code, ROUTING);
        assert_eq!(c.account.expose(), "123456789");
        assert_eq!(c.check_number.as_deref(), Some("1321"));
        assert_eq!(c.check_type, CheckType::Personal);
        assert_eq!((c.epc, c.amount_cents), (None, None));
        assert!(w.is_empty(), "{w:?}");
    }
}

#[test]
fn opos_example() {
    // micr.md §2: EPC 2, transit 123456789, account 1234567890, serial 123, amount 19.57.
    // (123456789 fails the ABA rule: 1*3+2*7+3+4*3+5*7+6+7*3+8*7+9 = 159; the example is
    // about field positions, so the line is checked with its routing number swapped.)
    let (c, w) = ok(b"2t122000218t123 4 567890o 123 a0000001957a");
    assert_eq!(c.epc, Some(2));
    assert_eq!(c.account.expose(), "1234567890");
    assert_eq!(c.check_number.as_deref(), Some("123"));
    assert_eq!(c.amount_cents, Some(1957));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        err(b"2t123456789t123 4 567890o 123 a0000001957a"),
        "bad-routing"
    );
}

#[test]
fn business_check_serial_from_auxiliary_field() {
    // Serial first (auxiliary on-us), EPC, transit, account with a dash and spaces.
    let (c, w) = ok(b"U0004567U 5T122000218T 987-654 321U");
    assert_eq!(c.check_type, CheckType::Business);
    assert_eq!(c.check_number.as_deref(), Some("0004567"));
    assert_eq!(c.epc, Some(5));
    assert_eq!(c.account.expose(), "987654321");
    assert!(w.is_empty(), "{w:?}");
}

#[test]
fn serial_before_the_account_rule_3() {
    // No auxiliary field, nothing right of the on-us symbol: a 3-5 digit group first.
    let (c, _) = ok(b"T122000218T 1321 123456789U");
    assert_eq!(c.check_number.as_deref(), Some("1321"));
    assert_eq!(c.account.expose(), "123456789");
    // Trailing digits after the on-us symbol shorter than 3 are no serial (pitfall).
    let (c, w) = ok(b"T122000218T123456789U 45");
    assert_eq!(c.check_number, None);
    assert!(w.contains(&"unparsed-on-us".to_string()));
}

#[test]
fn status_and_framing() {
    // STX data ETX LRC, LRC = XOR of the data and ETX, computed here byte by byte.
    let data = b"T122000218T123456789U1321";
    let x = data.iter().fold(0x03u8, |a, b| a ^ b);
    let mut f = vec![0x02];
    f.extend_from_slice(data);
    f.extend_from_slice(&[0x03, x]);
    assert_eq!(ok(&f).0.account.expose(), "123456789");
    let last = f.len() - 1;
    f[last] ^= 1;
    assert_eq!(err(&f), "bad-lrc");
    f.truncate(last - 1);
    assert_eq!(err(&f), "truncated");
    let mut e = vec![0x1B];
    e.extend_from_slice(b"T122000218T123456789U1321\r");
    assert_eq!(ok(&e).0.check_number.as_deref(), Some("1321"));
    let (c, w) = ok(b"T122000218T123456789U1321/04");
    assert_eq!(c.reader_status, Some(4));
    assert_eq!(w, ["reader-status-04"]);
    assert_eq!(err(b"T122000218T123456789U1321/01"), "micr-unreadable");
    assert_eq!(err(b"T122000218T123456789U1321/08"), "unsupported-check");
}

#[test]
fn error_codes() {
    assert_eq!(err(b"T12200?218T123456789U1321"), "micr-unreadable");
    assert_eq!(err(b"T122000217T123456789U1321"), "bad-routing");
    assert_eq!(err(b"T12200021T123456789U1321"), "bad-routing");
    assert_eq!(err(b"T122000218T12345?789U1321"), "micr-unreadable");
    assert_eq!(err(b"T122000218TU1321"), "no-account");
    assert_eq!(err(b"T122000218T123456789 1321"), "no-account");
    assert_eq!(err(b"T12345-678T123456789U"), "unsupported-check");
    // A key typed during a keyboard read.
    assert_eq!(err(b"T122000218T1234x6789U1321"), "micr-unreadable");
    // Junk after the amount is refused (pitfall).
    assert_eq!(
        err(b"T122000218T123456789U1321 $0000001957$ 12"),
        "micr-unreadable"
    );
}

#[test]
fn unreadable_outside_routing_and_account_is_a_warning() {
    let (c, w) = ok(b"T122000218T123456789U13?1 $00000?1957$");
    assert_eq!(c.check_number, None);
    assert_eq!(c.amount_cents, None);
    assert_eq!(w, ["amount-unreadable", "check-number-unreadable"]);
}

#[test]
fn profile_sets() {
    let (c, _) = decode_check(b"d122000218d123456789c1321", SymbolSet::Ranger, false).unwrap();
    assert_eq!(c.account.expose(), "123456789");
    assert_eq!(
        decode_check(b"d1220!0218d123456789c1321", SymbolSet::Ranger, false)
            .unwrap_err()
            .code(),
        "micr-unreadable"
    );
    let (c, w) = decode_check(b"0)122000218)123456789(1321", SymbolSet::Axiohm, false).unwrap();
    assert_eq!(c.check_number.as_deref(), Some("1321"));
    assert_eq!((c.reader_status, w.len()), (Some(0), 0));
    let e = decode_check(b"\x03", SymbolSet::Axiohm, false).unwrap_err();
    assert_eq!(e.code(), "micr-unreadable");
    // MagTek set 01 typed through a keyboard: all upper case.
    let (c, _) = decode_check(b"T122000218T123456789O1321", SymbolSet::Magtek(1), true).unwrap();
    assert_eq!(c.check_number.as_deref(), Some("1321"));
}

#[test]
fn detection() {
    assert!(looks_like_line(b"T122000218T 1234 5678 9U 1321"));
    assert!(looks_like_line(
        b"2t123456789t123 4 567890o 123 a0000001957a"
    ));
    assert!(!looks_like_line(b"%B4111111111111111^TEST/CARD^2912101?"));
    assert!(!looks_like_line(b"hello, world"));
    assert!(looks_like_framed(b"\x02T122000218T123456789U1321\x03"));
    assert!(looks_like_framed(b"\x1bT122000218T123456789U1321\r"));
    assert!(!looks_like_framed(b"\x02\x10\x00T122000218T\x03"));
}

#[test]
fn builder_writes_the_manual_lines() {
    let f = CheckLine {
        aux: None,
        epc: None,
        routing: ROUTING.into(),
        account: "1234 5678 9".into(),
        serial: Some("1321".into()),
        amount_cents: None,
    };
    assert_eq!(
        build_line(&f, SymbolSet::Magtek(0), Spacing::Collapse),
        "T122000218T 1234 5678 9U 1321"
    );
    assert_eq!(
        build_line(&f, SymbolSet::Magtek(33), Spacing::Remove),
        "t122000218t123456789o1321"
    );
}

#[test]
fn unicode_symbols() {
    // ⑆ transit U+2446, ⑈ on-us U+2448, ⑇ amount U+2447, ⑉ dash U+2449 (micr.md §1).
    let line = "⑈0004567⑈ ⑆122000218⑆ 246⑉801 357⑈ ⑇0000012500⑇";
    let r = decode(line.as_bytes()).unwrap();
    let c = r.check.unwrap();
    assert_eq!(c.aba_code, ROUTING);
    assert_eq!(c.account.expose(), "246801357");
    assert_eq!(c.check_number.as_deref(), Some("0004567"));
    assert_eq!(c.check_type, CheckType::Business);
    assert_eq!(c.amount_cents, Some(12500));
    let r = crate::parse::decode_frame("⑆122000218⑆ 1234 5678 9⑈ 1321".as_bytes()).unwrap();
    assert_eq!(r.check.unwrap().check_number.as_deref(), Some("1321"));
    // Other non-ASCII text is no MICR line.
    assert!(from_unicode("⑆12€".as_bytes()).is_none());
    assert!(from_unicode(b"T122000218T").is_none());
    let two = "⑆122000218⑆123456789⑈1321\n⑆021000021⑆12345678⑈204\n";
    assert_eq!(crate::parse::split_frames(two.as_bytes()).len(), 2);
}

#[test]
fn magtek_parsed_format() {
    // micr.md §2, format 01xx: PTTR<transit>;AC<account>;CK<check>.
    let (c, w) = ok(b"PTTR122000218;AC123456789;CK1321\r\n");
    assert_eq!(c.aba_code, ROUTING);
    assert_eq!(c.account.expose(), "123456789");
    assert_eq!(c.check_number.as_deref(), Some("1321"));
    assert!(w.is_empty(), "{w:?}");
    // 02xx: /PE and an error label; the fields still decide.
    let (_, w) = ok(b"PTTR122000218;AC123456789;CK1321/PE CK");
    assert_eq!(w, ["reader-parse-error"]);
    assert_eq!(err(b"PTTR122000217;AC123456789;CK1321"), "bad-routing");
    assert_eq!(err(b"PTTR12200?218;AC123456789;CK1321"), "micr-unreadable");
    assert_eq!(err(b"PTTR122000218;AC;CK1321"), "no-account");
    assert!(looks_like_line(b"PTTR122000218;AC123456789;CK1321"));
    let r = crate::parse::decode_frame(b"PTTR122000218;AC123456789;CK1321\r\n").unwrap();
    assert_eq!(r.check.unwrap().account.last4().as_deref(), Some("6789"));
}

#[test]
fn font_letters() {
    // A transit, C on-us, B amount, D dash (MICR fonts, Tesseract's E-13B data).
    let r = decode(b"C0004567C 5A021000021A 246D801 357C B0000012500B").unwrap();
    let c = r.check.unwrap();
    assert_eq!(c.aba_code, "021000021");
    assert_eq!(c.account.expose(), "246801357");
    assert_eq!(c.check_number.as_deref(), Some("0004567"));
    assert_eq!(c.check_type, CheckType::Business);
    assert_eq!(c.amount_cents, Some(12500));
    // Without spaces the line is hex digits only: the ABA check digit tells it apart.
    let r = crate::parse::decode_frame(b"A122000218A123456789C1321").unwrap();
    assert_eq!(r.check.unwrap().check_number.as_deref(), Some("1321"));
    assert!(!looks_like_font_line(b"A122000217A123456789C1321"));
    let e = crate::parse::decode_frame(b"A12200?218A 123456789C 1321").unwrap_err();
    assert_eq!(e.code(), "micr-unreadable");
    let e = crate::parse::decode_frame(b"A122000217A 123456789C 1321").unwrap_err();
    assert_eq!(e.code(), "bad-routing");
    assert!(!looks_like_font_line(b"T122000218T123456789U1321"));
}

#[test]
fn a_wrong_lrc_is_told_apart_for_a_nak() {
    // micr.md §2 public example in STX data ETX LRC framing; LRC = XOR of data and ETX.
    let data = b"T122000218T 1234 5678 9U 1321";
    let good = data.iter().fold(0x03u8, |a, b| a ^ b);
    let frame = |l: u8| [&[0x02][..], data, &[0x03, l]].concat();
    assert!(!lrc_mismatch(&frame(good)));
    assert!(lrc_mismatch(&frame(good ^ 0x40)));
    assert!(lrc_mismatch(&[&[ESC][..], &frame(good ^ 1)].concat()));
    // No LRC, no STX, or something after the frame: not a resend case.
    assert!(!lrc_mismatch(&[&[0x02][..], data, &[0x03]].concat()));
    assert!(!lrc_mismatch(data));
    assert!(!lrc_mismatch(&[&frame(good ^ 1)[..], b"X"].concat()));
    // The decoder still calls the bad one bad-lrc when it gets through.
    assert_eq!(err(&frame(good ^ 0x40)), "bad-lrc");
}

/// Epson `FS a` replies (micr.md §2: `0x5F`, status, data, NUL) around the MagTek manual's
/// check, written in the default Epson characters (font letters) and in a table of its own.
#[test]
fn epson_replies() {
    let epson = SymbolSet::parse("epson").unwrap();
    let mut reply = vec![0x5F, 0x00];
    reply.extend_from_slice(b"A122000218A 1234 5678 9C 1321");
    reply.push(0);
    let (c, w) = decode_check(&reply, epson, false).unwrap();
    assert_eq!(c.aba_code, ROUTING);
    assert_eq!(c.account.expose(), "123456789");
    assert_eq!(c.check_number.as_deref(), Some("1321"));
    assert_eq!(c.reader_status, Some(0));
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        &epson_frame(0, b"A122000218A 1234 5678 9C 1321")[..],
        &reply[..]
    );

    // Another table: `[micr.symbols]` with T transit, U on-us, $ amount, - dash.
    let own = SymbolSet::Epson(Symbols::new(b'T', b'U', b'$', Some(b'-'), b'?').unwrap());
    let (c, _) = decode_check(
        &epson_frame(0x01, b"T122000218T 1234 5678 9U 1321"),
        own,
        false,
    )
    .unwrap();
    assert_eq!(
        (c.account.expose(), c.reader_status),
        ("123456789", Some(1))
    );
    // The default table does not read it: `T` is no Epson default character.
    let e = decode_check(
        &epson_frame(0, b"T122000218T 1234 5678 9U 1321"),
        epson,
        false,
    );
    assert_eq!(e.unwrap_err().code(), "micr-unreadable");

    // Status bit 5: the read ended abnormally, with or without data: its own code.
    let with_data = epson_frame(0x21, b"A122000218A 1234 5678 9C 1321");
    for bad in [&[0x5F, 0x20, 0x00][..], &with_data[..]] {
        let e = decode_check(bad, epson, false).unwrap_err();
        assert_eq!(e.code(), "micr-abnormal-end", "{bad:02X?}");
        assert_eq!(e, ParseError::MicrAbnormalEnd("Epson status bit 5"));
    }
    assert_eq!(
        decode_check(&[0x5F], epson, false).unwrap_err().code(),
        "truncated"
    );
    assert_eq!(
        decode_check(&reply[..reply.len() - 1], epson, false)
            .unwrap_err()
            .code(),
        "truncated",
        "no NUL"
    );
    assert_eq!(
        decode_check(&reply[1..], epson, false).unwrap_err().code(),
        "unknown-format",
        "no header"
    );
    let mut trailing = reply.clone();
    trailing.extend_from_slice(b"A1");
    assert_eq!(
        decode_check(&trailing, epson, false).unwrap_err().code(),
        "bad-length"
    );
    assert_eq!(
        decode_check(&[0x5F, 0x00, 0x00], epson, false)
            .unwrap_err()
            .code(),
        "truncated",
        "a good status with no line"
    );
}

#[test]
fn own_symbol_tables_must_be_distinct_printable_non_digits() {
    assert!(Symbols::new(b'A', b'C', b'B', Some(b'D'), b'?').is_some());
    assert!(Symbols::new(b'A', b'C', b'B', None, b'?').is_some());
    assert!(Symbols::new(b'A', b'A', b'B', Some(b'D'), b'?').is_none());
    assert!(Symbols::new(b'1', b'C', b'B', Some(b'D'), b'?').is_none());
    assert!(Symbols::new(b' ', b'C', b'B', Some(b'D'), b'?').is_none());
    assert!(Symbols::new(0, b'C', b'B', Some(b'D'), b'?').is_none());
    assert!(Symbols::new(b'A', b'C', b'B', Some(b'?'), b'?').is_none());
}

/// `decode` finds Ranger and Axiohm/NCR lines without a profile. Lines from an open-source
/// image-cash-letter library's MICR tests (Ranger characters); their routing numbers checked
/// by hand with the 3-7-1 weights: 123456780 sums to 150, 075901231 to 110 (valid), 124444706
/// to 92 (invalid).
#[test]
fn ranger_and_axiohm_lines_are_detected() {
    use crate::parse::decode_frame;
    let check = |line: &[u8]| {
        let r = decode_frame(line).unwrap_or_else(|e| panic!("{e}"));
        r.check.unwrap_or_else(|| panic!("no check"))
    };
    let c = check(b"     d123456780d   123-456-7c  5431             ");
    assert_eq!(c.aba_code, "123456780");
    assert_eq!(
        c.account.expose(),
        "1234567",
        "dashes are not part of the account"
    );
    assert_eq!(c.check_number.as_deref(), Some("5431"));
    assert_eq!(c.check_type, CheckType::Personal);
    let c = check(b"c706001c d075901231d    456327c  0101   b0000039275b");
    assert_eq!(c.aba_code, "075901231");
    assert_eq!(c.account.expose(), "456327");
    assert_eq!(
        c.check_number.as_deref(),
        Some("706001"),
        "auxiliary on-us first"
    );
    assert_eq!(c.check_type, CheckType::Business);
    assert_eq!(c.amount_cents, Some(39275));
    let e = decode_frame(b"d124444706d1021-823215406c").unwrap_err();
    assert_eq!(e.code(), "bad-routing");
    // Axiohm/NCR raw mode behind a binary or an ASCII status byte.
    for line in [
        &b"\x00)122000218)123456789(1321\r\n"[..],
        b"0)122000218)123456789(1321",
    ] {
        let c = check(line);
        assert_eq!((c.aba_code.as_str(), c.reader_status), (ROUTING, Some(0)));
        assert_eq!(c.account.expose(), "123456789");
    }
    // Status 04 (no MICR characters) is the reader's own error. (A binary 02 is STX: framing.)
    assert_eq!(
        decode_frame(b"\x04)122000218)123456789(1321")
            .unwrap_err()
            .code(),
        "micr-unreadable"
    );
    // All hex digits: a Ranger line only when its routing number passes the check.
    assert_eq!(check(b"d122000218d123456789c1321").aba_code, ROUTING);
    assert_eq!(other_set(b"d122000219d123456789c1321"), None);
    assert_eq!(other_set(b"T122000218T123456789U1321"), None);
}
