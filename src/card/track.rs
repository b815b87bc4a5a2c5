//! Clear ISO 7813 tracks split into their fields. Input is the track text from start sentinel
//! through end sentinel, LRC already removed (the parse module does framing, sentinels, LRC).
use super::{swar, Pan, SecretText};

/// Cardholder name as Track 1 holds it: `SURNAME/GIVEN MIDDLE.TITLE`, space padded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    /// The field with trailing padding removed, e.g. `DI TEST/CARD 04`.
    pub raw: String,
    pub surname: String,
    pub given: String,
    pub title: String,
}

impl Name {
    pub fn parse(field: &str) -> Name {
        let raw = field.trim().to_string();
        let (surname, rest) = match raw.split_once('/') {
            Some((s, r)) => (s.trim().to_string(), r.trim()),
            None => (raw.clone(), ""),
        };
        let (given, title) = match rest.rsplit_once('.') {
            Some((g, t)) => (g.trim().to_string(), t.trim().to_string()),
            None => (rest.to_string(), String::new()),
        };
        Name {
            raw,
            surname,
            given,
            title,
        }
    }
}

/// Track 1 (IATA, format B).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track1 {
    pub format_code: char,
    pub pan: Pan,
    pub name: Name,
    /// YYMM, absent when the card has `^` instead.
    pub expiry: Option<String>,
    pub service_code: Option<String>,
    pub discretionary: SecretText,
}

/// Track 2 (ABA).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track2 {
    pub pan: Pan,
    pub expiry: Option<String>,
    pub service_code: Option<String>,
    pub discretionary: SecretText,
}

/// Track 3 (ISO 4909): kept whole; the PAN when it leads the track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track3 {
    pub pan: Option<Pan>,
    pub data: SecretText,
}

fn all_digits(s: &str) -> bool {
    swar::all_bytes_in(s.as_bytes(), b'0', b'9')
}

/// `s` split around its first `b` (ASCII, so both halves are whole chars), found a word at a
/// time: cheaper than a char searcher on these short fields.
pub(crate) fn split_at_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let p = swar::find(s.as_bytes(), b)?;
    Some((s.get(..p)?, s.get(p + 1..)?))
}

/// What `Pan::new` accepts, checked without building one.
fn pan_ok(s: &str) -> bool {
    (8..=19).contains(&s.len()) && all_digits(s)
}

/// Expiry (4 digits or the separator) then service code (3 digits or the separator).
fn expiry_service(rest: &str, sep: char) -> Option<(Option<&str>, Option<&str>, &str)> {
    let (expiry, rest) = if let Some(r) = rest.strip_prefix(sep) {
        (None, r)
    } else {
        let e = rest.get(..4).filter(|e| all_digits(e))?;
        (Some(e), rest.get(4..)?)
    };
    let (service, rest) = if let Some(r) = rest.strip_prefix(sep) {
        (None, r)
    } else {
        match rest.get(..3).filter(|s| all_digits(s)) {
            Some(s) => (Some(s), rest.get(3..)?),
            // A card may end right after the expiry.
            None if rest.is_empty() => (None, rest),
            None => return None,
        }
    };
    Some((expiry, service, rest))
}

/// Track 1 fields borrowed from the text: decoders read them without copying the secret parts.
pub(crate) struct Track1Ref<'a> {
    pub format_code: char,
    pub pan: &'a str,
    /// The name field as it stands (padding included).
    pub name: &'a str,
    pub expiry: Option<&'a str>,
    pub service_code: Option<&'a str>,
    pub discretionary: &'a str,
}

impl<'a> Track1Ref<'a> {
    pub fn parse(text: &'a str) -> Option<Track1Ref<'a>> {
        let body = text.strip_prefix('%')?.strip_suffix('?')?;
        let mut chars = body.chars();
        let format_code = chars.next().filter(|c| c.is_ascii_uppercase())?;
        let body = chars.as_str();
        let (pan, rest) = split_at_byte(body, b'^')?;
        let pan = pan.trim_end();
        pan_ok(pan).then_some(())?;
        let (name, rest) = split_at_byte(rest, b'^')?;
        let (expiry, service_code, discretionary) = expiry_service(rest, '^')?;
        Some(Track1Ref {
            format_code,
            pan,
            name,
            expiry,
            service_code,
            discretionary,
        })
    }
}

/// Track 2 fields borrowed from the text.
pub(crate) struct Track2Ref<'a> {
    pub pan: &'a str,
    pub expiry: Option<&'a str>,
    pub service_code: Option<&'a str>,
    pub discretionary: &'a str,
}

impl<'a> Track2Ref<'a> {
    pub fn parse(text: &'a str) -> Option<Track2Ref<'a>> {
        let body = text.strip_prefix(';')?.strip_suffix('?')?;
        let (pan, rest) = split_at_byte(body, b'=')?;
        pan_ok(pan).then_some(())?;
        let (expiry, service_code, discretionary) = expiry_service(rest, '=')?;
        all_digits(discretionary).then_some(())?;
        Some(Track2Ref {
            pan,
            expiry,
            service_code,
            discretionary,
        })
    }
}

impl Track1 {
    /// The name field, trimmed, without parsing the rest (`%B…^NAME^…?`).
    pub fn name_field(text: &str) -> Option<&str> {
        let body = text.strip_prefix('%')?;
        let (_, rest) = split_at_byte(body, b'^')?;
        let (name, _) = split_at_byte(rest, b'^')?;
        Some(name.trim())
    }

    /// `%B…^NAME^YYMMSSS…?`
    pub fn parse(text: &str) -> Option<Track1> {
        let t = Track1Ref::parse(text)?;
        Some(Track1 {
            format_code: t.format_code,
            pan: Pan::new(t.pan)?,
            name: Name::parse(t.name),
            expiry: t.expiry.map(str::to_string),
            service_code: t.service_code.map(str::to_string),
            discretionary: SecretText::new(t.discretionary),
        })
    }
}

impl Track2 {
    /// `;PAN=YYMMSSS…?`
    pub fn parse(text: &str) -> Option<Track2> {
        let t = Track2Ref::parse(text)?;
        Some(Track2 {
            pan: Pan::new(t.pan)?,
            expiry: t.expiry.map(str::to_string),
            service_code: t.service_code.map(str::to_string),
            discretionary: SecretText::new(t.discretionary),
        })
    }
}

impl Track3 {
    /// `;…?` or MagTek's `+…?`.
    pub fn parse(text: &str) -> Option<Track3> {
        let body = text
            .strip_prefix('+')
            .or_else(|| text.strip_prefix(';'))?
            .strip_suffix('?')?;
        let pan = split_at_byte(body, b'=').and_then(|(p, _)| Pan::new(p));
        Some(Track3 {
            pan,
            data: SecretText::new(text),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track1_fields_and_name() {
        let t =
            Track1::parse("%B5452300551227189^HOGAN/PAUL      ^08043210000000725000000?").unwrap();
        assert_eq!(t.pan.expose(), "5452300551227189");
        assert_eq!(t.name.raw, "HOGAN/PAUL");
        assert_eq!(
            (t.name.surname.as_str(), t.name.given.as_str()),
            ("HOGAN", "PAUL")
        );
        assert_eq!(t.expiry.as_deref(), Some("0804"));
        assert_eq!(t.service_code.as_deref(), Some("321"));
        assert_eq!(t.discretionary.expose(), "0000000725000000");
        let n = Name::parse("BUSH JR/GEORGE W.MR");
        assert_eq!(
            (n.surname.as_str(), n.given.as_str(), n.title.as_str()),
            ("BUSH JR", "GEORGE W", "MR")
        );
        let n = Name::parse("FDCS TEST CARD /MASTERCARD");
        assert_eq!(
            (n.surname.as_str(), n.given.as_str()),
            ("FDCS TEST CARD", "MASTERCARD")
        );
        assert_eq!(n.raw, "FDCS TEST CARD /MASTERCARD");
    }

    #[test]
    fn track1_missing_expiry() {
        let t = Track1::parse("%B4111111111111111^TEST/CARD^^^?").unwrap();
        assert_eq!(t.expiry, None);
        assert_eq!(t.service_code, None);
        assert!(Track1::parse("%B41111^X^2912101?").is_none());
        assert!(Track1::parse("B4111111111111111^X^2912101?").is_none());
    }

    #[test]
    fn track2_and_3() {
        let t = Track2::parse(";5452300551227189=080432100000007250?").unwrap();
        assert_eq!(t.expiry.as_deref(), Some("0804"));
        assert_eq!(t.service_code.as_deref(), Some("321"));
        assert!(Track2::parse(";5452300551227189=0804A?").is_none());
        let t3 = Track3::parse("+5163499080020445=000000000000?").unwrap();
        assert_eq!(t3.pan.unwrap().last4(), "0445");
    }
}
