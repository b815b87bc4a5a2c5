//! A bank account number from a check's on-us field: sensitive like a PAN.
use compact_str::CompactString;
use zeroize::Zeroizing;

/// A clear bank account number, ASCII digits only. Debug/Display show at most the last 4
/// (fewer for a short number, so that never more than half of it shows); zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountNumber(Zeroizing<String>);

impl AccountNumber {
    /// `None` unless `s` is 1 to 32 ASCII digits (32: well past any real account, a bound for
    /// what a garbled line can make us hold).
    pub fn new(s: &str) -> Option<AccountNumber> {
        let ok = (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| AccountNumber(Zeroizing::new(s.to_string())))
    }
    /// The clear digits. Callers must not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// How many trailing digits may show: 4, but never more than half of a short number.
    fn shown(&self) -> usize {
        self.0.len().saturating_sub(4).min(4)
    }
    /// The last 4 digits, when the number is long enough (8+) for them to be shown.
    pub fn last4(&self) -> Option<CompactString> {
        (self.shown() == 4).then(|| self.tail(4).into())
    }
    /// `*` for every hidden digit, then the shown tail: `*****6789`.
    pub fn masked(&self) -> CompactString {
        let n = self.0.len();
        let k = self.shown();
        let mut out = CompactString::with_capacity(n);
        out.extend(std::iter::repeat('*').take(n - k));
        out.push_str(self.tail(k));
        out
    }
    fn tail(&self, k: usize) -> &str {
        self.0.get(self.0.len() - k..).unwrap_or("")
    }
}

impl std::fmt::Debug for AccountNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccountNumber({})", self.masked())
    }
}

impl std::fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_last_four_at_most() {
        let a = AccountNumber::new("123456789").unwrap();
        assert_eq!(a.masked(), "*****6789");
        assert_eq!(a.last4().as_deref(), Some("6789"));
        assert_eq!(format!("{a:?}"), "AccountNumber(*****6789)");
        assert_eq!(format!("{a}"), "*****6789");
        // Short numbers show at most half of their digits and no last4.
        let s = AccountNumber::new("123456").unwrap();
        assert_eq!(s.masked(), "****56");
        assert_eq!(s.last4(), None);
        assert_eq!(AccountNumber::new("1234").unwrap().masked(), "****");
        assert!(AccountNumber::new("12 34").is_none());
        assert!(AccountNumber::new("").is_none());
        assert!(AccountNumber::new(&"1".repeat(33)).is_none());
    }
}
