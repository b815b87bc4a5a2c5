//! What each reader sends for the four E-13B symbols and for an unreadable character (micr.md §2).

/// One character of a MICR line, once the reader's own characters are mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sym {
    Digit(u8),
    Transit,
    OnUs,
    Amount,
    Dash,
    Space,
    Unreadable,
}

/// A reader's symbol set. `Auto` is what `decode` uses without a profile: the union of the
/// MagTek raw sets and OPOS, which share no character between two symbols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolSet {
    Auto,
    /// MagTek format `00xx`: the value of `xx` (00-06 minus 05, plus 16 to collapse runs of
    /// spaces, plus 32 to remove them).
    Magtek(u8),
    /// Ranger-based scanners: `d` transit, `c` on-us, `b` amount, `-` dash, `!` unreadable.
    Ranger,
    /// Axiohm/NCR raw mode, behind a status byte: `)` `(` `&` `'`, `?` unreadable.
    Axiohm,
    /// OPOS raw data: `t` `o` `a` `-`.
    Opos,
    /// The letters MICR fonts and OCR models (e.g. Tesseract's E-13B data) put on the four
    /// symbols: `A` transit, `B` amount, `C` on-us, `D` dash.
    Font,
    /// An Epson ESC/POS `FS a` reply (micr.md §2): header `0x5F`, a status byte, the line in
    /// these characters, NUL. The spec does not give Epson's characters for the four symbols:
    /// the profile's `[micr.symbols]` sets them, [`EPSON_DEFAULT`] otherwise.
    Epson(Symbols),
}

/// The characters assumed for an Epson reply when the profile does not set them: the MICR font
/// letters (`A` transit, `C` on-us, `B` amount, `D` dash, `?` unreadable). An assumption, to
/// check against the printer's manual.
pub const EPSON_DEFAULT: Symbols = s(b'A', b'C', b'B', Some(b'D'), b'?');

/// The concrete characters of one set (`dash` is `None` where the reader sends it as `0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbols {
    pub transit: u8,
    pub on_us: u8,
    pub amount: u8,
    pub dash: Option<u8>,
    pub unreadable: u8,
}

impl Symbols {
    /// A profile's own characters for the four symbols and an unreadable one: each a printable
    /// ASCII character that is no digit and no space, all different (a dash sent as `0`,
    /// like MagTek sets 04 and 06, is `None`). `None` when they do not qualify.
    pub fn new(
        transit: u8,
        on_us: u8,
        amount: u8,
        dash: Option<u8>,
        unreadable: u8,
    ) -> Option<Symbols> {
        let all = [
            Some(transit),
            Some(on_us),
            Some(amount),
            dash,
            Some(unreadable),
        ];
        let chars: Vec<u8> = all.into_iter().flatten().collect();
        let usable = chars
            .iter()
            .all(|c| c.is_ascii_graphic() && !c.is_ascii_digit());
        let distinct = chars
            .iter()
            .enumerate()
            .all(|(i, c)| !chars.get(i + 1..).unwrap_or_default().contains(c));
        (usable && distinct).then_some(s(transit, on_us, amount, dash, unreadable))
    }
}

const fn s(transit: u8, on_us: u8, amount: u8, dash: Option<u8>, unreadable: u8) -> Symbols {
    Symbols {
        transit,
        on_us,
        amount,
        dash,
        unreadable,
    }
}

impl SymbolSet {
    /// Profile spelling: `auto`, `magtek-NN` (decimal `xx`), `ranger`, `axiohm`, `opos`,
    /// `font`, `epson` (with [`EPSON_DEFAULT`]; see [`Symbols::new`] for other characters).
    pub fn parse(name: &str) -> Option<SymbolSet> {
        match name {
            "auto" => Some(SymbolSet::Auto),
            "ranger" => Some(SymbolSet::Ranger),
            "axiohm" => Some(SymbolSet::Axiohm),
            "opos" => Some(SymbolSet::Opos),
            "font" => Some(SymbolSet::Font),
            "epson" => Some(SymbolSet::Epson(EPSON_DEFAULT)),
            _ => {
                let xx = name.strip_prefix("magtek-")?;
                if xx.len() != 2 {
                    return None;
                }
                let v: u8 = xx.parse().ok()?;
                let set = SymbolSet::Magtek(v);
                set.symbols().map(|_| set)
            }
        }
    }

    /// The characters a builder writes; `None` for `Auto` and for MagTek codes the spec does
    /// not define (05, 07 and up, or both space options at once).
    pub fn symbols(self) -> Option<Symbols> {
        match self {
            SymbolSet::Auto => None,
            SymbolSet::Magtek(xx) => {
                if xx >= 48 {
                    return None;
                }
                match xx % 16 {
                    0 => Some(s(b'T', b'U', b'$', Some(b'-'), b'?')),
                    1 => Some(s(b't', b'o', b'a', Some(b'd'), b'?')),
                    2 => Some(s(b'T', b'O', b'A', Some(b'D'), b'?')),
                    3 => Some(s(b'T', b'U', b'$', Some(b'-'), b'*')),
                    4 => Some(s(b'T', b'U', b'$', None, b'?')),
                    6 => Some(s(b't', b'o', b'a', None, b'?')),
                    _ => None,
                }
            }
            SymbolSet::Ranger => Some(s(b'd', b'c', b'b', Some(b'-'), b'!')),
            SymbolSet::Axiohm => Some(s(b')', b'(', b'&', Some(b'\''), b'?')),
            SymbolSet::Opos => Some(s(b't', b'o', b'a', Some(b'-'), b'?')),
            SymbolSet::Font => Some(s(b'A', b'C', b'B', Some(b'D'), b'?')),
            SymbolSet::Epson(sy) => Some(sy),
        }
    }

    /// Whether the line comes as an Epson `FS a` reply (header, status byte, data, NUL).
    pub fn is_epson_reply(self) -> bool {
        matches!(self, SymbolSet::Epson(_))
    }

    /// Whether the line comes behind a one-byte reader status (Axiohm/NCR raw mode).
    pub fn has_status_byte(self) -> bool {
        self == SymbolSet::Axiohm
    }

    /// Maps one received character; `None` for a character outside the set. `upper`: the
    /// reader types through a keyboard, which sends every letter upper case.
    pub(crate) fn classify(self, c: u8, upper: bool) -> Option<Sym> {
        if c.is_ascii_digit() {
            return Some(Sym::Digit(c - b'0'));
        }
        if c == b' ' || c == b'\t' {
            return Some(Sym::Space);
        }
        let Some(sy) = self.symbols() else {
            return match c {
                b'T' | b't' => Some(Sym::Transit),
                b'U' | b'O' | b'o' => Some(Sym::OnUs),
                b'$' | b'A' | b'a' => Some(Sym::Amount),
                b'-' | b'D' | b'd' => Some(Sym::Dash),
                b'?' | b'*' => Some(Sym::Unreadable),
                _ => None,
            };
        };
        let m = |x: u8| if upper { x.to_ascii_uppercase() } else { x };
        let c = m(c);
        if c == m(sy.transit) {
            Some(Sym::Transit)
        } else if c == m(sy.on_us) {
            Some(Sym::OnUs)
        } else if c == m(sy.amount) {
            Some(Sym::Amount)
        } else if sy.dash.is_some_and(|d| c == m(d)) {
            Some(Sym::Dash)
        } else if c == m(sy.unreadable) {
            Some(Sym::Unreadable)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tables() {
        // micr.md §2 table, rows 00 and 04, and the +16/+32 space options.
        assert_eq!(SymbolSet::parse("magtek-00"), Some(SymbolSet::Magtek(0)));
        assert_eq!(SymbolSet::parse("magtek-33"), Some(SymbolSet::Magtek(33)));
        assert_eq!(SymbolSet::parse("magtek-05"), None);
        assert_eq!(SymbolSet::parse("magtek-48"), None);
        assert_eq!(SymbolSet::parse("magtek-0"), None);
        assert_eq!(SymbolSet::parse("ranger"), Some(SymbolSet::Ranger));
        let m4 = SymbolSet::Magtek(4);
        assert_eq!(m4.classify(b'0', false), Some(Sym::Digit(0)));
        assert_eq!(m4.classify(b'-', false), None);
        let m1 = SymbolSet::Magtek(17);
        assert_eq!(m1.classify(b'd', false), Some(Sym::Dash));
        assert_eq!(m1.classify(b'D', false), None);
        assert_eq!(m1.classify(b'D', true), Some(Sym::Dash));
        assert_eq!(m1.classify(b'O', true), Some(Sym::OnUs));
        let r = SymbolSet::Ranger;
        assert_eq!(r.classify(b'd', false), Some(Sym::Transit));
        assert_eq!(r.classify(b'!', false), Some(Sym::Unreadable));
        assert_eq!(SymbolSet::Auto.classify(b'x', false), None);
    }
}
