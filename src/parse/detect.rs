//! Format detection and splitting an input into frames.
use super::{emv, idtech, magtek, magtek_clear, magtek_emv, micr, tracks, vivo, ParseError};
use crate::card::swar;
use crate::card::CardRead;

fn is_text_byte(c: u8) -> bool {
    (0x20..0x7F).contains(&c) || matches!(c, b'\t' | b'\r' | b'\n')
}

/// For keyboard text (printable ASCII plus tab, CR, LF), whether it holds a `|` (MagTek
/// keyboard fields); `None` for binary. The one full pass detection needs, 8 bytes at a time
/// while they are printable; other marks are looked for only when a test needs them.
fn text_bar(mut b: &[u8]) -> Option<bool> {
    let mut bar = false;
    while let Some((w, rest)) = swar::next_word(b) {
        if swar::all_in(w, 0x20, 0x7E) {
            bar |= swar::has_byte(w, b'|');
        } else {
            // A control character (tab, CR, LF are text) or a binary byte.
            let bytes = w.to_le_bytes();
            if !bytes.iter().all(|&c| is_text_byte(c)) {
                return None;
            }
            bar |= bytes.contains(&b'|');
        }
        b = rest;
    }
    b.iter()
        .all(|&c| is_text_byte(c))
        .then(|| bar || b.contains(&b'|'))
}

/// Keyboard text: printable ASCII plus tab, CR, LF.
pub(crate) fn is_text(b: &[u8]) -> bool {
    text_bar(b).is_some()
}

fn trim(t: &[u8]) -> &[u8] {
    let s = t
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(t.len());
    let e = t
        .iter()
        .rposition(|b| !matches!(b, b'\r' | b'\n' | b'\t'))
        .map_or(s, |p| p + 1)
        .max(s);
    t.get(s..e).unwrap_or_default()
}

/// Decodes one frame of any supported format. What the read shows is masked again here, in
/// one place for every decoder (see [`tracks::remask_shown`]).
pub fn decode_frame(input: &[u8]) -> Result<CardRead, ParseError> {
    decode_any(input).map(|mut r| {
        tracks::remask_shown(&mut r);
        r
    })
}

fn decode_any(input: &[u8]) -> Result<CardRead, ParseError> {
    if input.is_empty() {
        return Err(ParseError::Truncated("empty frame"));
    }
    match text_bar(input) {
        Some(bar) => decode_text(input, bar),
        None => decode_binary(input),
    }
}

/// Decodes one frame from a reader whose profile may name a MICR symbol set (see
/// `Profile::micr_decoding`): a check reader's lines decode in its own set, anything else by
/// detection.
pub fn decode_frame_as(
    input: &[u8],
    micr_set: Option<(micr::SymbolSet, bool)>,
) -> Result<CardRead, ParseError> {
    match micr_set {
        Some((set, upper)) => micr::decode_with(input, set, upper),
        None => decode_frame(input),
    }
}

/// `bar`: whether `input` holds a `|` (so does the trimmed text: trimming removes whitespace).
fn decode_text(input: &[u8], bar: bool) -> Result<CardRead, ParseError> {
    let t = trim(input);
    let all_hex = !t.is_empty() && t.iter().all(u8::is_ascii_hexdigit);
    // A check's MICR line (its transit symbol `T`/`t` is no hex digit): before the ID TECH
    // keyboard test, which a line with `*` for an unreadable character and `02` in its routing
    // number would also pass.
    if !all_hex && !bar && !starts_with_sentinel(t) && micr::looks_like_line(t) {
        return micr::decode(t);
    }
    // MICR font letters (`A…A` transit): hex digits too, so the routing check digit decides.
    if !bar && !starts_with_sentinel(t) && micr::looks_like_font_line(t) {
        return micr::decode(t);
    }
    // Ranger (`d…d`) and Axiohm/NCR (`)…)`) lines.
    if !bar && !starts_with_sentinel(t) {
        if let Some(set) = micr::other_set(t) {
            return micr::decode_with(t, set, false);
        }
    }
    // Cheap tests first; the scans for `*` and `02` last.
    if idtech::looks_like_keyboard(t)
        || (t.len() > 8
            && !bar
            && !starts_with_sentinel(t)
            && t.contains(&b'*')
            && t.get(..32)
                .is_some_and(|p| p.windows(2).any(|w| w == b"02")))
    {
        match idtech::decode_keyboard(t) {
            Ok(r) => return Ok(r),
            // A hex dump of a binary frame also starts with `02`.
            Err(e) if all_hex => {
                return hex_binary(t).map_err(|e2| {
                    if e2 == ParseError::UnknownFormat {
                        e
                    } else {
                        e2
                    }
                })
            }
            Err(e) => return Err(e),
        }
    }
    if all_hex && t.len() % 2 == 0 {
        return hex_binary(t);
    }
    if all_hex {
        if let Some(r) = cut_hex_tlv(t) {
            return Ok(r);
        }
    }
    // `magtek::looks_like_kb(t)`: a `|` in the text.
    if bar {
        return magtek::decode_kb(t);
    }
    if t.iter().any(|&c| matches!(c, b'%' | b';' | b'+')) {
        return tracks::decode_tracks(input);
    }
    Err(ParseError::UnknownFormat)
}

fn starts_with_sentinel(t: &[u8]) -> bool {
    matches!(t.first(), Some(b'%' | b';' | b'+'))
}

/// Keyboard-mode TLV typed as hex that lost its last character(s): an odd digit count. Taken
/// only when the digits before decode as TLV cut short (with the `truncated` warning).
fn cut_hex_tlv(t: &[u8]) -> Option<CardRead> {
    let even = t.get(..t.len() - t.len() % 2)?;
    let b = hex::decode(even).ok()?;
    emv::decode_bare(&b)
        .ok()
        .filter(|r| r.warnings.iter().any(|w| w == "truncated"))
}

fn hex_binary(t: &[u8]) -> Result<CardRead, ParseError> {
    let b = hex::decode(t).map_err(|_| ParseError::BadHex)?;
    if b.is_empty() {
        return Err(ParseError::UnknownFormat);
    }
    decode_binary(&b)
}

fn decode_binary(input: &[u8]) -> Result<CardRead, ParseError> {
    // ESC or STX/ETX around a MICR line (an ID TECH frame is binary inside).
    if matches!(input.first(), Some(&0x02 | &0x1B)) && micr::looks_like_framed(input) {
        return micr::decode(input);
    }
    // Axiohm/NCR raw mode: a binary status byte, then the line.
    if let Some(set) = micr::other_set(input) {
        return micr::decode_with(input, set, false);
    }
    // A MICR line written with the Unicode E-13B symbols (UTF-8 starts with 0xE2).
    if input.contains(&0xE2) {
        if let Some(ascii) = micr::from_unicode(input) {
            if micr::looks_like_line(&ascii) {
                return micr::decode(input);
            }
        }
    }
    if vivo::is_vivo(input) {
        return vivo::decode(input);
    }
    // Before ID TECH: a container of 512+ bytes has 0x02 as its first length byte.
    if magtek_emv::looks_like_container(input) {
        return magtek_emv::decode(input);
    }
    if input.first() == Some(&0x02) {
        return idtech::decode_binary(input);
    }
    if magtek_clear::looks_like_clear_hid(input) {
        return magtek_clear::decode_clear_hid(input);
    }
    if input.len() >= magtek::HID_MIN_LEN {
        return magtek::decode_hid(input);
    }
    emv::decode_bare(input).map_err(|e| {
        // A partial MagTek report (qzind/tray#957) is not TLV: say it is cut short.
        if e == ParseError::UnknownFormat && magtek::looks_like_hid_start(input) {
            ParseError::Truncated("MagTek HID report")
        } else {
            e
        }
    })
}

/// Cuts an input into frames: one per line for text, binary frames back to back.
pub fn split_frames(input: &[u8]) -> Vec<&[u8]> {
    // Lines of text, also when written with the Unicode E-13B symbols.
    if is_text(input) || (input.contains(&0xE2) && micr::from_unicode(input).is_some()) {
        return input
            .split(|&c| c == b'\r' || c == b'\n')
            .filter(|l| l.iter().any(|c| !c.is_ascii_whitespace()))
            .collect();
    }
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let len = frame_len(rest).filter(|&n| n <= rest.len());
        match len {
            Some(n) => {
                let (frame, tail) = rest.split_at(n);
                out.push(frame);
                // Fixed-size reports are zero-filled after the frame.
                let mut skip = tail.iter().take_while(|&&b| b == 0).count();
                // A MagTek container's length prefix may itself start with a zero byte.
                if skip > 0
                    && tail
                        .get(skip - 1..)
                        .is_some_and(|t| magtek_emv::frame_len(t).is_some())
                {
                    skip -= 1;
                }
                rest = tail.get(skip..).unwrap_or_default();
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// Length of the binary frame at the start of `b`, when its header says.
fn frame_len(b: &[u8]) -> Option<usize> {
    if let Some(n) = magtek_emv::frame_len(b) {
        return Some(n);
    }
    if b.first() == Some(&0x02) {
        let l = usize::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?]));
        return Some(l + 6);
    }
    if b.starts_with(b"ViVO") {
        let l = usize::from(u16::from_be_bytes([*b.get(12)?, *b.get(13)?]));
        return Some(14 + l + 2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_bar_matches_the_plain_definitions() {
        // Every byte at every position of a word and in the tail, against the definition
        // spelled out.
        for b in 0..=255u8 {
            let text = (0x20..0x7F).contains(&b) || matches!(b, b'\t' | b'\r' | b'\n');
            for at in [0, 3, 7, 8, 15, 17] {
                let mut input = vec![b'A'; 18];
                input[at] = b;
                let want = text.then_some(b == b'|');
                assert_eq!(text_bar(&input), want, "{b:#04x} at {at}");
                assert_eq!(is_text(&input), text);
            }
        }
        assert_eq!(text_bar(b""), Some(false));
        assert_eq!(text_bar(b"%B41^X^1?;41=1?\r\n|"), Some(true));
        assert_eq!(text_bar(b"%B41^X^1?;41=1?\r\n"), Some(false));
    }
}
