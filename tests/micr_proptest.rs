//! MICR property tests: a line built from fields in any symbol set and spacing decodes to the
//! same fields; arbitrary input never panics.
use cardlane::card::CheckType;
use cardlane::parse::decode_frame;
use std::time::Duration;

use cardlane::device::framer::{Framer, FramerOptions};
use cardlane::device::profile::Framing;
use cardlane::parse::micr::{
    build_line, decode_check, epson_frame, CheckLine, Spacing, SymbolSet, Symbols,
};
use proptest::prelude::*;

/// Eight digits and the ABA check digit, worked out here from the 3-7-1 weights.
fn routing() -> impl Strategy<Value = String> {
    proptest::collection::vec(0u32..10, 8).prop_map(|d| {
        let w = [3, 7, 1, 3, 7, 1, 3, 7];
        let sum: u32 = d.iter().zip(w).map(|(a, b)| a * b).sum();
        let check = (10 - sum % 10) % 10;
        d.iter()
            .chain([check].iter())
            .map(|x| x.to_string())
            .collect()
    })
}

fn digits(lo: usize, hi: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(0u8..10, lo..=hi)
        .prop_map(|d| d.iter().map(|x| char::from(b'0' + x)).collect())
}

fn set() -> impl Strategy<Value = SymbolSet> {
    prop_oneof![
        (prop::sample::select(vec![0u8, 1, 2, 3, 4, 6]), 0u8..3)
            .prop_map(|(b, s)| SymbolSet::Magtek(b + 16 * s)),
        Just(SymbolSet::Ranger),
        Just(SymbolSet::Axiohm),
        Just(SymbolSet::Opos),
        Just(SymbolSet::Font),
    ]
}

fn spacing() -> impl Strategy<Value = Spacing> {
    prop_oneof![
        Just(Spacing::Keep),
        Just(Spacing::Collapse),
        Just(Spacing::Remove)
    ]
}

#[derive(Debug, Clone)]
struct Check {
    routing: String,
    account: String,
    /// Where the account is cut into printed groups, and with what.
    cuts: Vec<(usize, bool)>,
    serial: String,
    business: bool,
    epc: Option<u8>,
    amount: Option<u64>,
}

fn check() -> impl Strategy<Value = Check> {
    (
        routing(),
        digits(8, 15),
        proptest::collection::vec((1usize..15, any::<bool>()), 0..3),
        digits(3, 6),
        any::<bool>(),
        proptest::option::of(0u8..10),
        proptest::option::of(0u64..10_000_000_000),
    )
        .prop_map(
            |(routing, account, cuts, serial, business, epc, amount)| Check {
                routing,
                account,
                cuts,
                serial,
                business,
                epc,
                amount,
            },
        )
}

/// The account as printed: groups cut by spaces, or by dashes where the set has a dash symbol.
fn printed(c: &Check, has_dash: bool) -> String {
    let mut cuts: Vec<(usize, bool)> = c
        .cuts
        .iter()
        .filter(|(at, _)| *at < c.account.len())
        .copied()
        .collect();
    cuts.sort();
    cuts.dedup_by_key(|(at, _)| *at);
    let mut out = String::new();
    for (i, ch) in c.account.chars().enumerate() {
        if let Some((_, dash)) = cuts.iter().find(|(at, _)| *at == i) {
            out.push(if *dash && has_dash { '-' } else { ' ' });
        }
        out.push(ch);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn built_lines_decode_to_their_fields(c in check(), set in set(), sp in spacing(), kb in any::<bool>()) {
        let has_dash = set.symbols().unwrap().dash.is_some();
        let line = CheckLine {
            aux: c.business.then(|| c.serial.clone()),
            epc: c.epc,
            routing: c.routing.clone(),
            account: printed(&c, has_dash),
            serial: (!c.business).then(|| c.serial.clone()),
            amount_cents: c.amount,
        };
        let mut text = build_line(&line, set, sp);
        if set.has_status_byte() {
            text.insert(0, '0');
        }
        // Keyboard readers send every letter upper case.
        let upper = kb && matches!(set, SymbolSet::Magtek(_));
        if upper {
            text = text.to_ascii_uppercase();
        }
        let (got, warnings) = decode_check(text.as_bytes(), set, upper)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(got.aba_code.as_str(), c.routing.as_str());
        prop_assert_eq!(got.account.expose(), c.account.as_str());
        prop_assert_eq!(got.check_number.as_deref(), Some(c.serial.as_str()));
        let want_type = if c.business { CheckType::Business } else { CheckType::Personal };
        prop_assert_eq!(got.check_type, want_type);
        prop_assert_eq!(got.epc, c.epc);
        prop_assert_eq!(got.amount_cents, c.amount);
        prop_assert!(warnings.is_empty(), "{}: {:?}", text, warnings);
        // MagTek, OPOS and font-letter lines are also found by detection, without a profile.
        if matches!(set, SymbolSet::Magtek(_) | SymbolSet::Opos | SymbolSet::Font) {
            let r = decode_frame(text.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            let v = r.to_json();
            prop_assert_eq!(&v["check"]["aba_code"], c.routing.as_str());
            prop_assert_eq!(&v["check"]["account_last4"], &c.account[c.account.len() - 4..]);
            prop_assert!(!v.to_string().contains(c.account.as_str()));
        }
    }

    #[test]
    fn arbitrary_micr_text_never_panics(s in "[0-9TtUOo$AaBCDd?* /()&'!bc-]{0,80}", set in set(), upper in any::<bool>()) {
        let _ = decode_check(s.as_bytes(), set, upper);
        let _ = decode_check(s.as_bytes(), SymbolSet::Auto, upper);
        let _ = decode_frame(s.as_bytes());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..120), set in set()) {
        let _ = decode_check(&b, set, false);
        let mut framed = vec![0x02];
        framed.extend_from_slice(&b);
        let _ = decode_check(&framed, SymbolSet::Auto, false);
        let _ = decode_frame(&framed);
    }
}

/// A symbol table of the reader's own (Epson's characters are profile settings): five distinct
/// printable characters that are no digit and no space.
fn own_symbols() -> impl Strategy<Value = Symbols> {
    let pool: Vec<u8> = (0x21u8..0x7F).filter(|c| !c.is_ascii_digit()).collect();
    (
        proptest::sample::subsequence(pool, 5).prop_shuffle(),
        any::<bool>(),
    )
        .prop_map(|(c, dash_as_zero)| {
            Symbols::new(c[0], c[1], c[2], (!dash_as_zero).then_some(c[3]), c[4])
                .expect("distinct printable non-digits")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// An Epson `FS a` reply built from a check's fields (any table, any good status byte),
    /// cut into serial reads anywhere and framed as the agent frames it, decodes to the same
    /// fields.
    #[test]
    fn epson_replies_decode_to_their_fields(
        c in check(),
        sy in own_symbols(),
        status in any::<u8>().prop_map(|s| s & !0x20),
        sp in spacing(),
        cuts in proptest::collection::vec(1usize..40, 0..6),
        noise in proptest::collection::vec(any::<u8>().prop_filter("no header", |b| *b != 0x5F), 0..4),
    ) {
        let set = SymbolSet::Epson(sy);
        let line = CheckLine {
            aux: c.business.then(|| c.serial.clone()),
            epc: c.epc,
            routing: c.routing.clone(),
            account: printed(&c, sy.dash.is_some()),
            serial: (!c.business).then(|| c.serial.clone()),
            amount_cents: c.amount,
        };
        let text = build_line(&line, set, sp);
        let reply = epson_frame(status, text.as_bytes());
        let mut stream = noise.clone();
        stream.extend_from_slice(&reply);
        let mut framer = Framer::new(Framing::EpsonMicr, FramerOptions::default(), "pty");
        let mut frames = Vec::new();
        let mut at = 0usize;
        for (i, n) in cuts.iter().chain(std::iter::once(&usize::MAX)).enumerate() {
            let end = at.saturating_add(*n).min(stream.len());
            let t = Duration::from_millis(i as u64);
            frames.extend(framer.push(stream.get(at..end).unwrap_or_default(), t));
            at = end;
        }
        prop_assert_eq!(frames.len(), 1);
        prop_assert_eq!(&frames[0].bytes[..], &reply[..]);
        let (got, warnings) = decode_check(&frames[0].bytes, set, false)
            .map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(got.aba_code.as_str(), c.routing.as_str());
        prop_assert_eq!(got.account.expose(), c.account.as_str());
        prop_assert_eq!(got.check_number.as_deref(), Some(c.serial.as_str()));
        let want_type = if c.business { CheckType::Business } else { CheckType::Personal };
        prop_assert_eq!(got.check_type, want_type);
        prop_assert_eq!(got.epc, c.epc);
        prop_assert_eq!(got.amount_cents, c.amount);
        prop_assert_eq!(got.reader_status, Some(status));
        prop_assert!(warnings.is_empty(), "{}: {:?}", text, warnings);
        // The same fields with status bit 5: the reader's abnormal end, never a check.
        let abnormal = epson_frame(status | 0x20, text.as_bytes());
        prop_assert_eq!(decode_check(&abnormal, set, false).unwrap_err().code(), "micr-abnormal-end");
    }

    /// Any bytes through the Epson framer and decoder: no panic.
    #[test]
    fn arbitrary_bytes_through_the_epson_framer_never_panic(
        b in proptest::collection::vec(any::<u8>(), 0..200),
        sy in own_symbols(),
    ) {
        let mut framer = Framer::new(Framing::EpsonMicr, FramerOptions::default(), "pty");
        let mut frames = framer.push(&b, Duration::ZERO);
        frames.extend(framer.poll(Duration::from_secs(5)));
        frames.extend(framer.finish(Duration::from_secs(5)));
        for f in frames {
            let _ = decode_check(&f.bytes, SymbolSet::Epson(sy), false);
        }
        let _ = decode_check(&b, SymbolSet::Epson(sy), false);
        let mut reply = vec![0x5F];
        reply.extend_from_slice(&b);
        let _ = decode_check(&reply, SymbolSet::Epson(sy), false);
    }
}
