//! Text that must never be printed: clear tracks, discretionary data.
use zeroize::Zeroizing;

/// Sensitive text (a clear track, discretionary data). Debug/Display print `***`; zeroed on drop.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretText(Zeroizing<String>);

impl SecretText {
    pub fn new(s: impl Into<String>) -> Self {
        SecretText(Zeroizing::new(s.into()))
    }
    /// The clear text. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Takes over zeroizing text without copying it.
impl From<Zeroizing<String>> for SecretText {
    fn from(s: Zeroizing<String>) -> Self {
        SecretText(s)
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn never_prints_its_content() {
        let s = SecretText::new(";4111111111111111=2912?");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), ";4111111111111111=2912?");
    }
}
