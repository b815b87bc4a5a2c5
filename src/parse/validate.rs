//! Policy checks apart from parsing (design.md §5): Luhn, expiry in the past, service code vs
//! entry mode. They add warnings; they never reject a read (rule 8: test PANs fail Luhn).
use crate::card::{luhn_valid, CardRead, EntryMode, SecretText, Track1, Track2};

/// The clear PAN, from decrypted or clear tracks, if any.
fn clear_pan(read: &CardRead) -> Option<SecretText> {
    let sets = [read.decrypted.as_ref(), Some(&read.clear)];
    for set in sets.into_iter().flatten() {
        if let Some(t) = set
            .get(1)
            .and_then(|t| t.as_ref())
            .and_then(|t| Track2::parse(t.expose()))
        {
            return Some(SecretText::new(t.pan.expose()));
        }
        if let Some(t) = set
            .first()
            .and_then(|t| t.as_ref())
            .and_then(|t| Track1::parse(t.expose()))
        {
            return Some(SecretText::new(t.pan.expose()));
        }
    }
    None
}

fn warn(read: &mut CardRead, w: &str) {
    if !read.warnings.iter().any(|x| x == w) {
        read.warnings.push(w.to_string());
    }
}

/// Adds warnings, judging expiry against today (UTC).
pub fn validate(read: &mut CardRead) {
    use chrono::Datelike;
    let now = chrono::Utc::now();
    let yymm = (now.year().rem_euclid(100) as u32) * 100 + now.month();
    validate_at(read, yymm);
}

/// Adds warnings, judging expiry against `today_yymm` (e.g. 2612 for December 2026).
pub fn validate_at(read: &mut CardRead, today_yymm: u32) {
    if let Some(pan) = clear_pan(read) {
        if !luhn_valid(pan.expose()) {
            warn(read, "pan-fails-luhn");
        }
    }
    if let Some(exp) = read.expiry.clone() {
        match exp.parse::<u32>() {
            Ok(v) if (1..=12).contains(&(v % 100)) => {
                if v < today_yymm {
                    warn(read, "card-expired");
                }
            }
            _ => warn(read, "bad-expiry"),
        }
    }
    let chip_card = read
        .service_code
        .as_deref()
        .and_then(|s| s.bytes().next())
        .is_some_and(|d| d == b'2' || d == b'6');
    match read.entry_mode {
        Some(EntryMode::Swipe) if chip_card => warn(read, "chip-card-swiped"),
        Some(EntryMode::Fallback) if read.service_code.is_some() && !chip_card => {
            warn(read, "fallback-without-chip-card")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Format;

    fn read_with(track2: &str) -> CardRead {
        let mut r = CardRead::new(Format::Tracks);
        let clear = [None, Some(SecretText::new(track2)), None];
        r.fill_from_clear(&clear);
        r.clear = clear;
        r.entry_mode = Some(EntryMode::Swipe);
        r
    }

    #[test]
    fn warnings_not_errors() {
        let mut r = read_with(";4111111111111112=2012201?");
        validate_at(&mut r, 2612);
        assert_eq!(
            r.warnings,
            ["pan-fails-luhn", "card-expired", "chip-card-swiped"]
        );
        let mut r = read_with(";4111111111111111=2912101?");
        validate_at(&mut r, 2612);
        assert!(r.warnings.is_empty());
        // Same month is still valid (a card expires at the end of its month).
        let mut r = read_with(";4111111111111111=2612101?");
        validate_at(&mut r, 2612);
        assert!(r.warnings.is_empty());
        let mut r = read_with(";4111111111111111=2913101?");
        validate_at(&mut r, 2612);
        assert_eq!(r.warnings, ["bad-expiry"]);
    }
}
