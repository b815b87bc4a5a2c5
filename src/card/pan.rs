//! PAN (secret), masked PAN (printable), Luhn, brand by BIN.
use compact_str::CompactString;
use zeroize::Zeroizing;

/// A clear primary account number: digits only, 8 to 19 of them. Prints as first 6 / last 4.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan(Zeroizing<String>);

impl Pan {
    /// `None` unless `s` is 8..=19 ASCII digits.
    pub fn new(s: &str) -> Option<Pan> {
        let ok = (8..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Pan(Zeroizing::new(s.to_string())))
    }
    /// The clear digits. Callers must not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn last4(&self) -> String {
        tail(&self.0, 4).to_string()
    }
    pub fn masked(&self) -> MaskedPan {
        MaskedPan::from_reader(&self.0)
    }
    pub fn brand(&self) -> Option<Brand> {
        Brand::from_bin(&self.0)
    }
    pub fn luhn_valid(&self) -> bool {
        luhn_valid(&self.0)
    }
}

fn tail(s: &str, n: usize) -> &str {
    s.get(s.len().saturating_sub(n)..).unwrap_or("")
}

impl std::fmt::Debug for Pan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pan({})", self.masked().as_str())
    }
}

impl std::fmt::Display for Pan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.masked().as_str())
    }
}

/// A PAN with at most the first 6 and last 4 characters shown, the rest `*`. Held inline
/// (no heap) up to 24 bytes, which covers every 19-digit PAN.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MaskedPan(CompactString);

impl MaskedPan {
    /// From a PAN as a reader sent it (clear, `*`-masked or `0`-masked): whatever the reader
    /// did, positions after the 6th and before the last 4 become `*`, so a clear PAN never leaks.
    pub fn from_reader(s: &str) -> MaskedPan {
        // Any ASCII PAN up to the inline size: star a stack copy, then copy it in once.
        let mut buf = [0u8; 24];
        if let Some(b) = buf.get_mut(..s.len()).filter(|_| s.is_ascii()) {
            b.copy_from_slice(s.as_bytes());
            star_pan(b);
            if let Ok(t) = std::str::from_utf8(b) {
                return MaskedPan(CompactString::new(t));
            }
        }
        let mut out = CompactString::with_capacity(s.len());
        push_masked(&mut out, s);
        MaskedPan(out)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The last four characters when they are digits.
    pub fn last4(&self) -> Option<CompactString> {
        let t = tail(&self.0, 4);
        (t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit())).then(|| CompactString::from(t))
    }
    pub fn brand(&self) -> Option<Brand> {
        Brand::from_bin(&self.0)
    }
}

impl std::fmt::Display for MaskedPan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many characters of an `n`-character PAN stay shown at the head and at the tail: first 6 /
/// last 4; a short number would be shown whole by that rule, so only its first half is.
fn shown(n: usize) -> (usize, usize) {
    if n > 12 {
        (6, 4)
    } else {
        (n / 2, 0)
    }
}

/// Stars an ASCII PAN in place as [`push_masked`] does.
pub(crate) fn star_pan(pan: &mut [u8]) {
    let n = pan.len();
    let (head, tail) = shown(n);
    if let Some(mid) = pan.get_mut(head..n - tail) {
        mid.fill(b'*');
    }
}

/// Appends `s` masked as [`MaskedPan::from_reader`] does, without a temporary string.
/// `out` is a `String` (masked tracks) or a `CompactString` (the masked PAN).
pub(crate) fn push_masked<S>(out: &mut S, s: &str)
where
    S: Extend<char> + for<'a> Extend<&'a str>,
{
    if s.is_ascii() {
        // Byte positions are char positions: copy the shown ends, star the middle.
        let n = s.len();
        let (head, tail) = shown(n);
        out.extend(s.get(..head));
        out.extend(std::iter::repeat('*').take(n - head - tail));
        out.extend(s.get(n - tail..));
        return;
    }
    let n = s.chars().count();
    let (head, tail) = shown(n);
    out.extend(
        s.chars()
            .enumerate()
            .map(|(i, c)| if i < head || i + tail >= n { c } else { '*' }),
    );
}

/// Luhn (mod 10) check over ASCII digits; false for anything else or fewer than 2 digits.
pub fn luhn_valid(digits: &str) -> bool {
    if digits.len() < 2 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// Card brand by BIN, two-letter codes as the gateway uses them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
    Discover,
    Jcb,
    Diners,
}

impl Brand {
    pub fn code(self) -> &'static str {
        match self {
            Brand::Visa => "VI",
            Brand::Mastercard => "MC",
            Brand::Amex => "AX",
            Brand::Discover => "DS",
            Brand::Jcb => "JC",
            Brand::Diners => "DC",
        }
    }

    /// From the leading digits (a masked PAN's clear prefix is enough when it has 4+ digits).
    pub fn from_bin(pan: &str) -> Option<Brand> {
        // The leading digits, as a number of up to 6 digits, without allocating.
        let lead = pan.bytes().take_while(u8::is_ascii_digit).take(6);
        let (mut v6, mut nd) = (0u32, 0usize);
        for b in lead {
            v6 = v6 * 10 + u32::from(b - b'0');
            nd += 1;
        }
        let p = |n: usize| -> Option<u32> { (n <= nd).then(|| v6 / 10u32.pow((nd - n) as u32)) };
        let in_range = |n: usize, lo: u32, hi: u32| p(n).is_some_and(|v| (lo..=hi).contains(&v));
        if in_range(1, 4, 4) {
            Some(Brand::Visa)
        } else if in_range(2, 51, 55) || in_range(4, 2221, 2720) {
            Some(Brand::Mastercard)
        } else if in_range(2, 34, 34) || in_range(2, 37, 37) {
            Some(Brand::Amex)
        } else if in_range(4, 6011, 6011)
            || in_range(3, 644, 649)
            || in_range(2, 65, 65)
            || in_range(6, 622126, 622925)
        {
            Some(Brand::Discover)
        } else if in_range(4, 3528, 3589) {
            Some(Brand::Jcb)
        } else if in_range(3, 300, 305)
            || in_range(4, 3095, 3095)
            || in_range(2, 36, 36)
            || in_range(2, 38, 39)
        {
            Some(Brand::Diners)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_redacts() {
        let p = Pan::new("4111111111111111").unwrap();
        assert_eq!(format!("{p:?}"), "Pan(411111******1111)");
        assert_eq!(p.to_string(), "411111******1111");
        assert_eq!(p.last4(), "1111");
        assert!(Pan::new("41111a11").is_none());
        assert!(Pan::new("4111111").is_none());
    }

    #[test]
    fn masking_never_shows_more_than_6_4() {
        assert_eq!(
            MaskedPan::from_reader("5150********7861").as_str(),
            "5150********7861"
        );
        assert_eq!(
            MaskedPan::from_reader("5452300000007189").as_str(),
            "545230******7189"
        );
        assert_eq!(MaskedPan::from_reader("1234567890").as_str(), "12345*****");
        // Non-ASCII input takes the per-char route and is counted in chars.
        assert_eq!(
            MaskedPan::from_reader("é234567890123456").as_str(),
            "é23456******3456"
        );
        assert_eq!(MaskedPan::from_reader("").as_str(), "");
        assert_eq!(
            MaskedPan::from_reader("5150********7861").last4().unwrap(),
            "7861"
        );
    }

    #[test]
    fn from_reader_fast_path_matches_push_masked() {
        // Every length around the 12-char rule and the 24-byte inline limit, ASCII and not.
        for n in 0..=30 {
            for s in [
                "4111111111111111222233334444"
                    .chars()
                    .cycle()
                    .take(n)
                    .collect::<String>(),
                "é".repeat(n.min(1)) + &"5".repeat(n.saturating_sub(1)),
            ] {
                let mut want = String::new();
                push_masked(&mut want, &s);
                assert_eq!(MaskedPan::from_reader(&s).as_str(), want, "{s}");
            }
        }
    }

    #[test]
    fn luhn_known_values() {
        // Standard test PANs (valid), and the same with the last digit changed (invalid).
        assert!(luhn_valid("4111111111111111"));
        assert!(luhn_valid("5454545454545454"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4111111111111112"));
        assert!(!luhn_valid("41111x"));
    }

    #[test]
    fn brands() {
        assert_eq!(Brand::from_bin("4111"), Some(Brand::Visa));
        assert_eq!(Brand::from_bin("5413****"), Some(Brand::Mastercard));
        assert_eq!(Brand::from_bin("2221000000000009"), Some(Brand::Mastercard));
        assert_eq!(Brand::from_bin("378282246310005"), Some(Brand::Amex));
        assert_eq!(Brand::from_bin("6011111111111117"), Some(Brand::Discover));
        assert_eq!(Brand::from_bin("3530111333300000"), Some(Brand::Jcb));
        assert_eq!(Brand::from_bin("30569309025904"), Some(Brand::Diners));
        assert_eq!(Brand::from_bin("9999"), None);
        assert_eq!(Brand::from_bin(""), None);
    }

    /// The BIN table written the slow, obvious way (digit strings parsed per prefix length),
    /// as an independent reference for the allocation-free version.
    fn brand_reference(pan: &str) -> Option<Brand> {
        let digits: String = pan.chars().take_while(|c| c.is_ascii_digit()).collect();
        let r = |n: usize, lo: u32, hi: u32| {
            digits
                .get(..n)
                .and_then(|s| s.parse::<u32>().ok())
                .is_some_and(|v| (lo..=hi).contains(&v))
        };
        if r(1, 4, 4) {
            Some(Brand::Visa)
        } else if r(2, 51, 55) || r(4, 2221, 2720) {
            Some(Brand::Mastercard)
        } else if r(2, 34, 34) || r(2, 37, 37) {
            Some(Brand::Amex)
        } else if r(4, 6011, 6011) || r(3, 644, 649) || r(2, 65, 65) || r(6, 622126, 622925) {
            Some(Brand::Discover)
        } else if r(4, 3528, 3589) {
            Some(Brand::Jcb)
        } else if r(3, 300, 305) || r(4, 3095, 3095) || r(2, 36, 36) || r(2, 38, 39) {
            Some(Brand::Diners)
        } else {
            None
        }
    }

    #[test]
    fn brand_matches_reference_on_every_short_prefix() {
        // Every 1..=6 digit prefix bordering the table's ranges, with and without a mask tail.
        for n in 1..=6u32 {
            for v in (0..10u32.pow(n)).step_by(if n > 4 { 7 } else { 1 }) {
                let d = format!("{v:0width$}", width = n as usize);
                for s in [d.clone(), format!("{d}**1234"), format!("{d}x")] {
                    assert_eq!(Brand::from_bin(&s), brand_reference(&s), "{s}");
                }
            }
        }
        assert_eq!(Brand::from_bin("622126"), Some(Brand::Discover));
        assert_eq!(Brand::from_bin("62212"), None);
    }
}
