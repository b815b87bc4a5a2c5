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
pub use symbols::{SymbolSet, Symbols};

use crate::card::{CardRead, CheckRead};
use crate::parse::ParseError;

const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const ESC: u8 = 0x1B;

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

/// Decodes one MICR line in `set`. `upper`: the reader types through a keyboard (letters
/// arrive upper case). A character outside the set (a key pressed during the read) rejects
/// the line rather than being skipped.
pub fn decode_check(
    input: &[u8],
    set: SymbolSet,
    upper: bool,
) -> Result<(CheckRead, Vec<String>), ParseError> {
    let mut warnings = Vec::new();
    let mut line = unframe(input)?;
    let mut status = None;
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
    let line = trim_start(trim_end(line));
    if line.is_empty() {
        return Err(ParseError::Truncated("empty MICR line"));
    }
    let syms = line
        .iter()
        .map(|&c| set.classify(c, upper))
        .collect::<Option<Vec<_>>>()
        .ok_or(ParseError::MicrUnreadable(
            "a character outside the reader's symbol set",
        ))?;
    let mut check = fields::check_fields(&syms, &mut warnings)?;
    check.reader_status = status;
    Ok((check, warnings))
}

/// [`decode_check`] as a `CardRead` of format `micr`.
pub fn decode_with(input: &[u8], set: SymbolSet, upper: bool) -> Result<CardRead, ParseError> {
    let (c, w) = decode_check(input, set, upper)?;
    Ok(CardRead::from_check(c, w))
}

/// Decodes a MICR line found by detection (MagTek raw sets and OPOS).
pub fn decode(input: &[u8]) -> Result<CardRead, ParseError> {
    decode_with(input, SymbolSet::Auto, false)
}

/// Whether keyboard/serial text is a MICR line: a transit field (`T` or `t`, 5 to 11 digits,
/// dashes or unreadable marks, the same symbol), or MICR characters with a reader status
/// `/NN`, and nothing of a card track (`%;^=|`).
pub fn looks_like_line(t: &[u8]) -> bool {
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
    t.iter().enumerate().any(|(i, &c)| {
        matches!(c, b'T' | b't') && {
            let after = t.get(i + 1..).unwrap_or_default();
            let n = after.iter().take_while(|c| body(c)).count();
            (5..=11).contains(&n) && after.get(n) == Some(&c)
        }
    })
}

/// Whether binary input is a framed MICR line (ESC or STX ... ETX around a MICR line).
pub fn looks_like_framed(b: &[u8]) -> bool {
    let inner = b.strip_prefix(&[ESC]).unwrap_or(b);
    let inner = match stx_frame(inner) {
        Ok((_, (data, _))) => data,
        Err(_) if inner.len() < b.len() => trim_end(inner),
        Err(_) => return false,
    };
    inner.iter().all(|c| (0x20..0x7F).contains(c)) && looks_like_line(inner)
}

#[cfg(test)]
mod tests;
