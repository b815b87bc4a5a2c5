//! Writes a MICR line as a reader would send it: for `synth`, fixtures and property tests.
use super::SymbolSet;

/// How the reader treats runs of spaces (MagTek `xx`, `+16`, `+32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// Runs of spaces as printed (here: two between fields).
    Keep,
    Collapse,
    Remove,
}

/// The fields of one check as printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckLine {
    /// Auxiliary on-us content (business checks: the serial number).
    pub aux: Option<String>,
    pub epc: Option<u8>,
    /// Nine characters between the transit symbols (digits; `-` for a Canadian transit).
    pub routing: String,
    /// The account as printed: digits, with spaces or `-` between groups.
    pub account: String,
    /// Personal checks: the serial right of the on-us symbol.
    pub serial: Option<String>,
    /// Ten-digit amount field, in cents.
    pub amount_cents: Option<u64>,
}

/// The line in `set` (`Auto` writes MagTek set 00), with `spacing`. Characters of the fields
/// other than digits, spaces and `-` are written as they are (to build broken lines).
pub fn build_line(f: &CheckLine, set: SymbolSet, spacing: Spacing) -> String {
    let sy = set
        .symbols()
        .or_else(|| SymbolSet::Magtek(0).symbols())
        .unwrap_or(super::Symbols {
            transit: b'T',
            on_us: b'U',
            amount: b'$',
            dash: Some(b'-'),
            unreadable: b'?',
        });
    let map = |t: &str| -> String {
        t.chars()
            .map(|c| match c {
                '-' => char::from(sy.dash.unwrap_or(b'0')),
                '?' => char::from(sy.unreadable),
                c => c,
            })
            .collect()
    };
    let gap = match spacing {
        Spacing::Keep => "  ",
        Spacing::Collapse => " ",
        Spacing::Remove => "",
    };
    let (t, o, a) = (
        char::from(sy.transit),
        char::from(sy.on_us),
        char::from(sy.amount),
    );
    let mut out = String::new();
    if let Some(x) = &f.aux {
        out.push_str(&format!("{o}{}{o}{gap}", map(x)));
    }
    if let Some(e) = f.epc {
        out.push_str(&e.to_string());
    }
    out.push_str(&format!(
        "{t}{}{t}{gap}{}{o}",
        map(&f.routing),
        map(&f.account)
    ));
    if let Some(s) = &f.serial {
        out.push_str(&format!("{gap}{}", map(s)));
    }
    if let Some(c) = f.amount_cents {
        out.push_str(&format!("{gap}{a}{c:010}{a}"));
    }
    match spacing {
        Spacing::Keep => out,
        Spacing::Collapse => {
            let mut s = String::with_capacity(out.len());
            for c in out.chars() {
                if !(c == ' ' && s.ends_with(' ')) {
                    s.push(c);
                }
            }
            s
        }
        Spacing::Remove => out.replace(' ', ""),
    }
}
