//! The E-13B field rules over a mapped line (micr.md §1): transit, on-us (account, serial),
//! auxiliary on-us, EPC, amount, and the serial-number rules in their order.
use zeroize::Zeroizing;

use super::symbols::Sym;
use crate::card::{AccountNumber, CheckRead, CheckType, CompactString};
use crate::parse::ParseError;

/// Routing (ABA) check digit: weights 3 7 1 repeated; the sum is a multiple of 10.
pub fn aba_valid(routing: &str) -> bool {
    routing.len() == 9
        && routing.bytes().all(|b| b.is_ascii_digit())
        && routing
            .bytes()
            .zip([3u32, 7, 1].iter().cycle())
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum::<u32>()
            % 10
            == 0
}

/// Digits of `syms` as text; `Err(())` when one is unreadable. Spaces and dashes dropped.
fn digits(syms: &[Sym]) -> Result<Zeroizing<String>, ()> {
    let mut out = Zeroizing::new(String::with_capacity(syms.len()));
    for s in syms {
        match s {
            Sym::Digit(d) => out.push(char::from(b'0' + d)),
            Sym::Space | Sym::Dash => {}
            _ => return Err(()),
        }
    }
    Ok(out)
}

/// Groups of non-separator symbols, split at runs of spaces and dashes.
fn groups(syms: &[Sym]) -> Vec<&[Sym]> {
    syms.split(|s| matches!(s, Sym::Space | Sym::Dash))
        .filter(|g| !g.is_empty())
        .collect()
}

fn warn(w: &mut Vec<String>, s: &str) {
    if !w.iter().any(|x| x == s) {
        w.push(s.to_string());
    }
}

/// What the serial-number rules found: a number, an unreadable one, or nothing.
enum Serial {
    Found(CompactString),
    Unreadable,
    None,
}

/// Serial from a group of symbols: digits, or unreadable.
fn serial_of(g: &[Sym]) -> Serial {
    match digits(g) {
        Ok(d) if !d.is_empty() => Serial::Found(d.as_str().into()),
        Ok(_) => Serial::None,
        Err(()) => Serial::Unreadable,
    }
}

/// Left of the transit field: auxiliary on-us (between on-us symbols) and the EPC digit.
/// Returns (aux content, EPC).
fn left_fields<'a>(left: &'a [Sym], w: &mut Vec<String>) -> (Option<&'a [Sym]>, Option<u8>) {
    let on_us: Vec<usize> = left
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == Sym::OnUs)
        .map(|(i, _)| i)
        .collect();
    let (aux, before, after) = match on_us.as_slice() {
        [] => (None, &[][..], left),
        [a, b, ..] => {
            if on_us.len() > 2 {
                warn(w, "unparsed-before-transit");
            }
            (
                left.get(a + 1..*b),
                left.get(..*a).unwrap_or_default(),
                left.get(b + 1..).unwrap_or_default(),
            )
        }
        [_] => {
            // One on-us symbol: an auxiliary field cut short. Nothing in it is trusted.
            warn(w, "unparsed-before-transit");
            (None, &[][..], &[][..])
        }
    };
    if before.iter().any(|s| *s != Sym::Space) {
        warn(w, "unparsed-before-transit");
    }
    // EPC: one digit just left of the transit field.
    let rest: Vec<Sym> = after.iter().copied().filter(|s| *s != Sym::Space).collect();
    let epc = match rest.as_slice() {
        [] => None,
        [Sym::Digit(d)] => Some(*d),
        [Sym::Unreadable] => {
            warn(w, "epc-unreadable");
            None
        }
        _ => {
            warn(w, "unparsed-before-transit");
            None
        }
    };
    (aux, epc)
}

/// The amount between two amount symbols, in cents; what may follow it is only spaces.
fn amount_field(right: &[Sym], w: &mut Vec<String>) -> Result<Option<u64>, ParseError> {
    let Some(close) = right.iter().position(|s| *s == Sym::Amount) else {
        warn(w, "amount-unreadable");
        return Ok(None);
    };
    let (field, tail) = right.split_at(close);
    if tail.iter().skip(1).any(|s| *s != Sym::Space) {
        // Anything after the closing amount symbol means the line is not what it seems
        // (interleaved keys, two lines run together): refused rather than guessed at.
        return Err(ParseError::MicrUnreadable("data after the amount field"));
    }
    match digits(field) {
        Ok(d) if d.is_empty() => Ok(None),
        Ok(d) if d.len() <= 12 && !field.contains(&Sym::Dash) => Ok(d.parse().ok()),
        _ => {
            warn(w, "amount-unreadable");
            Ok(None)
        }
    }
}

/// Decodes the fields of a mapped line. `w` collects warnings.
pub(crate) fn check_fields(syms: &[Sym], w: &mut Vec<String>) -> Result<CheckRead, ParseError> {
    let mut transits = syms
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == Sym::Transit)
        .map(|(i, _)| i);
    let (Some(t1), Some(t2)) = (transits.next(), transits.next()) else {
        return Err(ParseError::BadRouting("no transit field"));
    };
    if transits.next().is_some() {
        return Err(ParseError::BadRouting("more than two transit symbols"));
    }
    let routing = syms.get(t1 + 1..t2).unwrap_or_default();
    let left = syms.get(..t1).unwrap_or_default();
    let right = syms.get(t2 + 1..).unwrap_or_default();

    // Routing first: it is what identifies the bank.
    if routing.contains(&Sym::Unreadable) {
        return Err(ParseError::MicrUnreadable("routing number"));
    }
    if routing.contains(&Sym::Dash) {
        return Err(ParseError::UnsupportedCheck(
            "Canadian transit (branch-institution)",
        ));
    }
    let aba = digits(routing).map_err(|()| ParseError::BadRouting("symbol inside the transit"))?;
    if routing.contains(&Sym::Space) || aba.len() != 9 {
        return Err(ParseError::BadRouting("not 9 digits"));
    }
    if !aba_valid(&aba) {
        return Err(ParseError::BadRouting("check digit"));
    }

    let (aux, epc) = left_fields(left, w);
    if left.contains(&Sym::Amount) {
        warn(w, "unparsed-before-transit");
    }

    // Right of the transit field: on-us, then the amount.
    let (on_us, amount_cents) = match right.iter().position(|s| *s == Sym::Amount) {
        Some(a) => (
            right.get(..a).unwrap_or_default(),
            amount_field(right.get(a + 1..).unwrap_or_default(), w)?,
        ),
        None => (right, None),
    };
    let Some(first_on_us) = on_us.iter().position(|s| *s == Sym::OnUs) else {
        // Without the on-us symbol the account's end is unknown: a trailing serial would be
        // taken as account digits.
        return Err(ParseError::NoAccount("no on-us symbol after the account"));
    };
    let last_on_us = on_us
        .iter()
        .rposition(|s| *s == Sym::OnUs)
        .unwrap_or(first_on_us);
    let mut account_part = on_us.get(..first_on_us).unwrap_or_default();
    let after_last = on_us.get(last_on_us + 1..).unwrap_or_default();
    if on_us
        .get(first_on_us + 1..last_on_us)
        .is_some_and(|m| m.iter().any(|s| *s != Sym::Space))
    {
        warn(w, "unparsed-on-us");
    }

    // Serial number, in the spec's order (NCR).
    let mut serial = match aux {
        Some(a) => serial_of(a),
        None => Serial::None,
    };
    let business = aux.is_some_and(|a| a.iter().any(|s| *s != Sym::Space));
    if matches!(serial, Serial::None) {
        // (2) one group of 3+ digits right of the rightmost on-us symbol.
        let g = groups(after_last);
        match g.as_slice() {
            [] => {}
            [one] if one.len() >= 3 => serial = serial_of(one),
            _ => warn(w, "unparsed-on-us"),
        }
    } else if after_last.iter().any(|s| *s != Sym::Space) {
        warn(w, "unparsed-on-us");
    }
    if matches!(serial, Serial::None) {
        // (3) a 3-5 digit group first in the on-us field, apart from the account.
        let g = groups(account_part);
        if let [first, _] = g.as_slice() {
            if (3..=5).contains(&first.len()) && first.iter().all(|s| matches!(s, Sym::Digit(_))) {
                serial = serial_of(first);
                let start = account_part.len()
                    - account_part
                        .iter()
                        .rev()
                        .take_while(|s| !matches!(s, Sym::Space | Sym::Dash))
                        .count();
                account_part = account_part.get(start..).unwrap_or_default();
            }
        }
    }

    if account_part.contains(&Sym::Unreadable) {
        return Err(ParseError::MicrUnreadable("account number"));
    }
    let acct = digits(account_part)
        .map_err(|()| ParseError::NoAccount("symbol inside the account number"))?;
    if acct.is_empty() {
        return Err(ParseError::NoAccount("on-us field holds no digits"));
    }
    let account = AccountNumber::new(&acct).ok_or(ParseError::NoAccount(
        "account number longer than 32 digits",
    ))?;
    if !(8..=15).contains(&account.len()) {
        warn(w, "account-not-8-15-digits");
    }
    let check_number = match serial {
        Serial::Found(s) => Some(s),
        Serial::Unreadable => {
            warn(w, "check-number-unreadable");
            None
        }
        Serial::None => None,
    };
    Ok(CheckRead {
        aba_code: aba.as_str().into(),
        account,
        check_number,
        check_type: if business {
            CheckType::Business
        } else {
            CheckType::Personal
        },
        epc,
        amount_cents,
        reader_status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aba_rule() {
        // 122000218: 1*3+2*7+2*1 + 0+0+0 + 2*3+1*7+8*1 = 3+14+2+6+7+8 = 40.
        assert!(aba_valid("122000218"));
        assert!(!aba_valid("122000217"));
        assert!(!aba_valid("12200021"));
        assert!(!aba_valid("12200021a"));
    }
}
