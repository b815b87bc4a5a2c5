//! MICR lines from check readers (spec micr.md): the reader's framing and status, its symbol
//! set, then the E-13B fields. Sans-io, panic-free; the account number only ever lives in an
//! [`AccountNumber`](crate::card::AccountNumber).
mod build;
mod fields;
mod symbols;

use nom::bytes::complete::{tag, take_till};
use nom::combinator::opt;
use nom::number::complete::u8 as any_byte;
use nom::IResult;

pub use build::{build_line, CheckLine, Spacing};
pub use fields::aba_valid;
pub use symbols::{SymbolSet, Symbols, EPSON_DEFAULT};

use crate::card::{CardRead, CheckRead};
use crate::parse::ParseError;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const ESC: u8 = 0x1B;

/// First byte of an Epson ESC/POS `FS a` reply (micr.md §2).
pub const EPSON_HEADER: u8 = 0x5F;
/// Epson reply status bit 5: the read ended abnormally.
pub const EPSON_ABNORMAL: u8 = 0x20;
/// The ESC/POS command `FS a n` a host writes to have an Epson printer read a check's MICR
/// line; `n = 0` is assumed to pick E-13B (the spec gives the command, not `n`'s values).
pub const EPSON_READ_COMMAND: [u8; 3] = [0x1C, 0x61, 0x00];

/// An Epson `FS a` reply, `0x5F status data NUL`: its status byte and data. A status with bit
/// 5 set is the reader's abnormal end, whatever data came with it.
fn epson_reply(input: &[u8]) -> Result<(u8, &[u8]), ParseError> {
    let rest = input
        .strip_prefix(&[EPSON_HEADER])
        .ok_or(ParseError::UnknownFormat)?;
    let (&status, rest) = rest.split_first().ok_or(ParseError::Truncated(
        "Epson MICR reply without a status byte",
    ))?;
    if status & EPSON_ABNORMAL != 0 {
        return Err(ParseError::MicrAbnormalEnd("Epson status bit 5"));
    }
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or(ParseError::Truncated("Epson MICR reply without its NUL"))?;
    let (data, tail) = rest.split_at(end);
    // Only the NUL (and line ends a serial bridge may add) may follow the data.
    if !tail.iter().skip(1).all(|c| matches!(c, b'\r' | b'\n' | 0)) {
        return Err(ParseError::BadLength("data after the Epson reply's NUL"));
    }
    Ok((status, data))
}

/// An Epson `FS a` reply for `line` (header, `status`, line, NUL), as the printer sends it;
/// for tests, `synth` and fake printers.
pub fn epson_frame(status: u8, line: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(line.len() + 3));
    out.push(EPSON_HEADER);
    out.push(status);
    out.extend_from_slice(line);
    out.push(0);
    out
}

/// `STX data ETX [LRC]`: the data and the LRC byte if one follows.
fn stx_frame(i: &[u8]) -> IResult<&[u8], (&[u8], Option<u8>)> {
    let (i, _) = tag([STX])(i)?;
    let (i, data) = take_till(|c| c == ETX)(i)?;
    let (i, _) = tag([ETX])(i)?;
    let (i, lrc) = opt(any_byte)(i)?;
    Ok((i, (data, lrc)))
}

/// XOR of the data and the ETX: the MagTek block check (STX excluded).
fn lrc(data: &[u8]) -> u8 {
    data.iter().fold(ETX, |a, b| a ^ b)
}

/// The byte a host sends to ask a MagTek MICR reader to send its last frame again.
pub const NAK: u8 = 0x15;

/// Whether `frame` is `[ESC] STX data ETX LRC` with an LRC that does not match its data: a
/// MagTek reader in that framing resends the frame when the host answers [`NAK`] (micr.md §2).
/// Any other shape, or a frame without an LRC, is `false`.
pub fn lrc_mismatch(frame: &[u8]) -> bool {
    let b = frame.strip_prefix(&[ESC]).unwrap_or(frame);
    match stx_frame(b) {
        Ok((rest, (data, Some(check)))) => {
            rest.iter().all(|c| matches!(c, b'\r' | b'\n')) && check != lrc(data)
        }
        _ => false,
    }
}

fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n' | 0 | b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn trim_start(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = b {
        b = rest;
    }
    b
}

/// The line inside the reader's framing: ESC prefix, STX/ETX with or without LRC, CR/LF.
fn unframe(input: &[u8]) -> Result<&[u8], ParseError> {
    let b = input.strip_prefix(&[ESC]).unwrap_or(input);
    if b.first() == Some(&STX) {
        let (rest, (data, check)) =
            stx_frame(b).map_err(|_| ParseError::Truncated("MICR frame without ETX"))?;
        if !rest.is_empty() {
            return Err(ParseError::BadLength("data after the MICR frame"));
        }
        if check.is_some_and(|c| c != lrc(data)) {
            return Err(ParseError::BadLrc("MICR frame"));
        }
        return Ok(data);
    }
    Ok(trim_end(b))
}

/// The reader's `/NN` status after the data (MagTek "send status after data").
fn status_suffix(b: &[u8]) -> (&[u8], Option<u8>) {
    if let [rest @ .., b'/', d1, d2] = b {
        if d1.is_ascii_digit() && d2.is_ascii_digit() {
            return (trim_end(rest), Some((d1 - b'0') * 10 + (d2 - b'0')));
        }
    }
    (b, None)
}

/// What the reader's own status says before we look at the line.
fn judge_status(status: u8, w: &mut Vec<String>) -> Result<(), ParseError> {
    match status {
        0 => Ok(()),
        1 => Err(ParseError::MicrUnreadable("reader: no MICR data")),
        8 => Err(ParseError::UnsupportedCheck("reader: Canadian check")),
        9 => Err(ParseError::UnsupportedCheck("reader: Mexican check")),
        // 03 low signal, 04 check number, 05 transit, 07 account, 10 business, 11 amount,
        // 12 short account: our own field rules decide; the status is kept as a warning.
        n => {
            w.push(format!("reader-status-{n:02}"));
            Ok(())
        }
    }
}

/// Axiohm/NCR raw mode: one status byte (binary or an ASCII digit) before the line.
fn status_byte<'a>(b: &'a [u8], w: &mut Vec<String>) -> Result<(u8, &'a [u8]), ParseError> {
    let (&first, rest) = b
        .split_first()
        .ok_or(ParseError::Truncated("no MICR status byte"))?;
    let st = if first.is_ascii_digit() {
        first - b'0'
    } else {
        first
    };
    match st {
        0 => {}
        1 => w.push("reader-bad-read".to_string()),
        2 => return Err(ParseError::MicrUnreadable("reader: no check")),
        3 => return Err(ParseError::MicrUnreadable("reader: jam")),
        4 => return Err(ParseError::MicrUnreadable("reader: no MICR characters")),
        _ => return Err(ParseError::UnknownFormat),
    }
    Ok((st, rest))
}

/// MagTek's parsed formats (`01xx`: `PTTR<transit>;AC<account>;CK<check>`, micr.md §2) as
/// the raw line they stand for, in set 00 (`T…T account U check`); `None` for a raw line.
fn parsed_to_raw(line: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let body = line.strip_prefix(b"PT").unwrap_or(line);
    if !body.starts_with(b"TR") || !line.windows(3).any(|w| w == b";AC") {
        return None;
    }
    let (mut transit, mut account, mut check): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    for field in body.split(|&c| c == b';') {
        let (tag, value) = (field.get(..2)?, field.get(2..)?);
        match tag {
            b"TR" => transit = value,
            b"AC" => account = value,
            b"CK" => check = value,
            // Other fields (amount, EPC) are not needed for a saved check.
            _ => {}
        }
    }
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(line.len()));
    out.push(b'T');
    out.extend_from_slice(transit);
    out.push(b'T');
    out.extend_from_slice(account);
    out.push(b'U');
    out.extend_from_slice(check);
    Some(out)
}

/// Decodes one MICR line in `set`. `upper`: the reader types through a keyboard (letters
/// arrive upper case). A character outside the set (a key pressed during the read) rejects
/// the line rather than being skipped.
pub fn decode_check(
    input: &[u8],
    set: SymbolSet,
    upper: bool,
) -> Result<(CheckRead, Vec<String>), ParseError> {
    let mut warnings = Vec::new();
    let mut status = None;
    let mut line = if set.is_epson_reply() {
        let (st, data) = epson_reply(input)?;
        status = Some(st);
        data
    } else {
        unframe(input)?
    };
    if set.has_status_byte() {
        let (st, rest) = status_byte(line, &mut warnings)?;
        status = Some(st);
        line = rest;
    }
    let (line, suffix) = status_suffix(line);
    if let Some(st) = suffix {
        judge_status(st, &mut warnings)?;
        status = Some(st);
    }
    // Parsed format `02xx`: `/PE` and an error label after the fields.
    let line = match line.windows(3).position(|w| w == b"/PE") {
        Some(at) => {
            warnings.push("reader-parse-error".to_string());
            line.get(..at).unwrap_or_default()
        }
        None => line,
    };
    let raw = parsed_to_raw(line);
    let line = raw.as_deref().map_or(line, |r| r.as_slice());
    let set = if raw.is_some() {
        SymbolSet::Magtek(0)
    } else {
        set
    };
    let line = trim_start(trim_end(line));
    if line.is_empty() {
        return Err(ParseError::Truncated("empty MICR line"));
    }
    let mut syms = line
        .iter()
        .map(|&c| set.classify(c, upper))
        .collect::<Option<Vec<_>>>()
        .ok_or(ParseError::MicrUnreadable(
            "a character outside the reader's symbol set",
        ))?;
    let result = fields::check_fields(&syms, &mut warnings);
    // The mapped line holds the account digits: blank it before the memory is freed (black_box
    // keeps the writes from being optimised away).
    syms.iter_mut().for_each(|s| *s = symbols::Sym::Space);
    std::hint::black_box(&syms);
    let mut check = result?;
    check.reader_status = status;
    Ok((check, warnings))
}

/// [`decode_check`] as a `CardRead` of format `micr`.
pub fn decode_with(input: &[u8], set: SymbolSet, upper: bool) -> Result<CardRead, ParseError> {
    let (c, w) = decode_check(input, set, upper)?;
    Ok(CardRead::from_check(c, w))
}

/// Decodes a MICR line found by detection (MagTek raw sets, OPOS, the Unicode E-13B symbols,
/// the font letters, Ranger and Axiohm/NCR).
pub fn decode(input: &[u8]) -> Result<CardRead, ParseError> {
    match from_unicode(input) {
        Some(ascii) => decode_with(&ascii, SymbolSet::Auto, false),
        None if looks_like_line(input) => decode_with(input, SymbolSet::Auto, false),
        None if looks_like_font_line(input) => decode_with(input, SymbolSet::Font, false),
        None => match other_set(input) {
            Some(set) => decode_with(input, set, false),
            None => decode_with(input, SymbolSet::Auto, false),
        },
    }
}

/// The set of a line written in one of micr.md §2's other sets that `Auto` does not cover:
/// Ranger (`d` transit, `c` on-us) or Axiohm/NCR raw mode (a status byte, `)` transit, `(`
/// on-us). It needs a transit field in that set's character (5 to 11 digits, dashes or
/// unreadable marks between two of them), its on-us character, and nothing outside the set.
/// A Ranger line made only of hex digits could be hex text: its routing number must then
/// pass the ABA check.
pub fn other_set(input: &[u8]) -> Option<SymbolSet> {
    [SymbolSet::Ranger, SymbolSet::Axiohm]
        .into_iter()
        .find(|&set| {
            let Some(sy) = set.symbols() else {
                return false;
            };
            let line = if set.has_status_byte() {
                match input.split_first() {
                    Some((&(0..=4 | b'0'..=b'4'), rest)) => rest,
                    _ => return false,
                }
            } else {
                input
            };
            let line = trim_start(trim_end(line));
            if !line.contains(&sy.on_us) || !line.iter().all(|&c| set.classify(c, false).is_some())
            {
                return false;
            }
            let hex = line.iter().all(u8::is_ascii_hexdigit);
            let body =
                move |c: &u8| c.is_ascii_digit() || Some(*c) == sy.dash || *c == sy.unreadable;
            transit_fields(line, move |c| c == sy.transit, body)
                .any(|mid| !hex || std::str::from_utf8(mid).is_ok_and(fields::aba_valid))
        })
}

/// The insides of the transit fields of `line`: a transit character, 5 to 11 `body`
/// characters, the same transit character.
fn transit_fields<'a>(
    line: &'a [u8],
    is_transit: impl Fn(u8) -> bool + 'a,
    body: impl Fn(&u8) -> bool + 'a,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    line.iter().enumerate().filter_map(move |(i, &c)| {
        if !is_transit(c) {
            return None;
        }
        let after = line.get(i + 1..).unwrap_or_default();
        let n = after.iter().take_while(|c| body(c)).count();
        ((5..=11).contains(&n) && after.get(n) == Some(&c))
            .then(|| after.get(..n).unwrap_or_default())
    })
}

/// Whether text is a MICR line in the font letters (`A` transit, `C` on-us): `A`, nine digits,
/// `A`, and only the font's characters. Without spaces such a line is hex text too: then the
/// nine digits must pass the ABA check.
pub fn looks_like_font_line(t: &[u8]) -> bool {
    let t = trim_start(trim_end(t));
    let (t, _) = status_suffix(t);
    if !t.contains(&b'C')
        || !t
            .iter()
            .all(|&c| SymbolSet::Font.classify(c, false).is_some())
    {
        return false;
    }
    // With a space or `?` the line is no hex text: an unreadable or wrong routing number is
    // then still a MICR line (reported as such).
    let hex = t.iter().all(u8::is_ascii_hexdigit);
    t.windows(11).any(|w| {
        let (Some(&b'A'), Some(&b'A'), Some(mid)) = (w.first(), w.last(), w.get(1..10)) else {
            return false;
        };
        if hex {
            std::str::from_utf8(mid).is_ok_and(aba_valid)
        } else {
            mid.iter()
                .all(|c| c.is_ascii_digit() || matches!(c, b'?' | b'D'))
        }
    })
}

/// UTF-8 of the Unicode E-13B symbols (micr.md §1: U+2446 transit, U+2447 amount, U+2448
/// on-us, U+2449 dash) and the MagTek set 00 character each becomes.
const UNICODE_SYMBOLS: [([u8; 3], u8); 4] = [
    ([0xE2, 0x91, 0x86], b'T'),
    ([0xE2, 0x91, 0x87], b'$'),
    ([0xE2, 0x91, 0x88], b'U'),
    ([0xE2, 0x91, 0x89], b'-'),
];

/// Text written with the Unicode E-13B symbols (as scanning software and test data show MICR
/// lines), as MagTek set 00 characters; `None` unless it holds such a symbol and is otherwise
/// printable ASCII, CR and LF.
pub fn from_unicode(input: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(input.len()));
    let mut rest = input;
    let mut found = false;
    while let Some((&c, tail)) = rest.split_first() {
        if c < 0x80 {
            if !((0x20..0x7F).contains(&c) || matches!(c, b'\r' | b'\n' | b'\t')) {
                return None;
            }
            out.push(c);
            rest = tail;
            continue;
        }
        let (_, sym) = UNICODE_SYMBOLS
            .iter()
            .find(|(utf8, _)| rest.starts_with(utf8))?;
        out.push(*sym);
        rest = rest.get(3..).unwrap_or_default();
        found = true;
    }
    found.then_some(out)
}

/// Whether keyboard/serial text is a MICR line: a transit field (`T` or `t`, 5 to 11 digits,
/// dashes or unreadable marks, the same symbol), MICR characters with a reader status `/NN`,
/// or a MagTek parsed line (`PTTR…;AC…;CK…`), and nothing of a card track (`%;^=|`).
pub fn looks_like_line(t: &[u8]) -> bool {
    if parsed_to_raw(t).is_some() && !t.iter().any(|c| matches!(c, b'%' | b'^' | b'=' | b'|')) {
        return true;
    }
    if t.iter()
        .any(|c| matches!(c, b'%' | b';' | b'^' | b'=' | b'|'))
    {
        return false;
    }
    let (line, status) = status_suffix(trim_end(t));
    if status.is_some()
        && line.iter().any(|c| matches!(c, b'T' | b't'))
        && line
            .iter()
            .all(|&c| SymbolSet::Auto.classify(c, false).is_some())
    {
        // A partial line the reader itself flagged (e.g. `/01`, no MICR data).
        return true;
    }
    let body = |c: &u8| c.is_ascii_digit() || matches!(c, b'-' | b'D' | b'd' | b'?' | b'*');
    transit_fields(t, |c| matches!(c, b'T' | b't'), body)
        .next()
        .is_some()
}

/// Whether binary input is a framed MICR line (ESC or STX ... ETX around a MICR line).
pub fn looks_like_framed(b: &[u8]) -> bool {
    let inner = b.strip_prefix(&[ESC]).unwrap_or(b);
    // An ID TECH frame's STX is followed by a binary length (its high byte is below 0x20 for
    // any real frame): refused here without scanning the frame for an ETX.
    if inner.first() == Some(&STX)
        && !inner
            .get(1..3)
            .is_some_and(|h| h.iter().all(|c| (0x20..0x7F).contains(c)))
    {
        return false;
    }
    let inner = match stx_frame(inner) {
        Ok((_, (data, _))) => data,
        Err(_) if inner.len() < b.len() => trim_end(inner),
        Err(_) => return false,
    };
    inner.iter().all(|c| (0x20..0x7F).contains(c)) && looks_like_line(inner)
}

#[cfg(test)]
mod tests;
