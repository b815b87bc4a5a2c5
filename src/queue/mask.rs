//! Masks text that goes into `last_error` and events: a gateway or transport error might echo
//! a PAN or hex ciphertext, and nothing stored may hold card data in clear.

/// Longest stored error text, in characters.
const MAX_CHARS: usize = 200;

/// Digit runs of 12 or more keep first 6 / last 4 at most; hex runs of 16 or more (PIN blocks,
/// ciphertext, keys) are replaced whole; the result is cut to 200 characters.
pub fn mask_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len().min(MAX_CHARS * 4));
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars.get(i).is_some_and(|c| c.is_ascii_hexdigit()) {
            i += 1;
        }
        let run = chars.get(start..i).unwrap_or(&[]);
        if run.is_empty() {
            if let Some(c) = chars.get(i) {
                out.push(*c);
            }
            i += 1;
            continue;
        }
        let all_digits = run.iter().all(|c| c.is_ascii_digit());
        if !all_digits && run.len() >= 16 {
            out.push_str(&format!("[hex:{}]", run.len()));
        } else {
            // A hex word may wrap a digit run ("a4111…"): mask each digit sub-run on its own.
            for piece in run.chunk_by(|a, b| a.is_ascii_digit() == b.is_ascii_digit()) {
                let digits = piece.first().is_some_and(|c| c.is_ascii_digit());
                if digits && piece.len() >= 12 {
                    for (j, c) in piece.iter().enumerate() {
                        out.push(if j < 6 || j + 4 >= piece.len() {
                            *c
                        } else {
                            '*'
                        });
                    }
                } else {
                    out.extend(piece.iter());
                }
            }
        }
    }
    if out.chars().count() > MAX_CHARS {
        out = out.chars().take(MAX_CHARS).collect();
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pans_and_hex() {
        assert_eq!(
            mask_text("card 4111111111111111 refused"),
            "card 411111******1111 refused"
        );
        assert_eq!(
            mask_text("pin block 0412AC89ABCDEF67 bad"),
            "pin block [hex:16] bad"
        );
        // Short numbers (HTTP codes, counts) and words stay.
        assert_eq!(
            mask_text("HTTP 503 after 2 tries"),
            "HTTP 503 after 2 tries"
        );
        assert_eq!(mask_text("deadbeef"), "deadbeef");
    }

    #[test]
    fn cuts_long_text_on_char_boundary() {
        let s = "é".repeat(500);
        let m = mask_text(&s);
        assert_eq!(m.chars().count(), MAX_CHARS + 1);
    }

    proptest::proptest! {
        #[test]
        fn never_leaks_long_digit_runs(prefix in "[a-z ]{0,5}", pan in "[0-9]{13,19}", suffix in "[a-z ]{0,5}") {
            let m = mask_text(&format!("{prefix}{pan}{suffix}"));
            proptest::prop_assert!(!m.contains(&pan));
        }

        #[test]
        fn never_panics(s in ".{0,300}") {
            let _ = mask_text(&s);
        }
    }
}
