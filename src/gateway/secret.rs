//! Strings that hold card data or keys: redacted in `Debug`, zeroed on drop (design.md §2).
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A sensitive string (track data, card code, PIN block, account number). `Debug` prints `***`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The clear value: only for code that must send or check it, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// A card number: `Debug` shows first 6 / last 4 at most, never the middle digits.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct PanString(String);

impl PanString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `411111******1111` for a 16-digit number; fully starred when too short to mask safely.
    pub fn masked(&self) -> String {
        mask_pan(&self.0)
    }
}

/// First 6 and last 4 kept, the rest starred; numbers under 13 characters are starred whole so
/// that little or nothing of a short value leaks.
pub fn mask_pan(pan: &str) -> String {
    let chars: Vec<char> = pan.chars().collect();
    let n = chars.len();
    if n < 13 {
        return "*".repeat(n);
    }
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < 6 || i >= n - 4 { *c } else { '*' })
        .collect()
}

impl std::fmt::Debug for PanString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl From<&str> for PanString {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for PanString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// A bank account number (`check.account_number`): `Debug` shows the last 4 at most (none of
/// a number under 8 digits), like the agent's `AccountNumber`; zeroed on drop.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(transparent)]
pub struct AccountString(String);

impl AccountString {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `*****6789`: every character starred but the last 4, all of them under 8 characters.
    pub fn masked(&self) -> String {
        let n = self.0.chars().count();
        let shown = if n >= 8 { 4 } else { 0 };
        self.0
            .chars()
            .enumerate()
            .map(|(i, c)| if i + shown >= n { c } else { '*' })
            .collect()
    }
}

impl std::fmt::Debug for AccountString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl From<&str> for AccountString {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for AccountString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

/// The gateway API key (`x-authorization`). Never printed: `Debug` and `Display` give `***`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Compares without stopping at the first differing byte, so timing does not reveal a prefix.
    pub fn matches(&self, other: &[u8]) -> bool {
        let mine = self.0.as_bytes();
        if mine.len() != other.len() {
            return false;
        }
        mine.iter()
            .zip(other)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let pan = PanString::from("4005571701111111");
        assert_eq!(format!("{pan:?}"), "\"400557******1111\"");
        let key = ApiKey::new("0f8fad5b-d9cb-469f-a165-70867728950e");
        assert!(!format!("{key:?}").contains("0f8fad5b"));
        let t = SecretString::from(";4005571701111111=2512101?");
        assert_eq!(format!("{t:?}"), "***");
    }

    #[test]
    fn short_numbers_are_starred_whole() {
        assert_eq!(mask_pan("123456789012"), "************");
        assert_eq!(mask_pan("4242424242424"), "424242***2424");
    }

    #[test]
    fn key_comparison() {
        let key = ApiKey::new("abc");
        assert!(key.matches(b"abc"));
        assert!(!key.matches(b"abd"));
        assert!(!key.matches(b"ab"));
    }
}
