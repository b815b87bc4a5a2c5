//! ISO 7813 tracks as text (wedge output, MagTek SL2, decrypted plaintext), LRC, masking, and
//! the packed forms: nibble-packed Track 2 and chip Track 2/1 equivalents (tags 57, 9F6B, 56).
use zeroize::Zeroizing;

use super::ParseError;
use crate::card::swar;
use crate::card::{
    push_masked, split_at_byte, star_pan, CardRead, EntryMode, Format, SecretText, TrackInfo,
    TrackStatus,
};

/// One track found in text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedTrack {
    /// 1, 2 or 3.
    pub number: u8,
    /// Start sentinel through end sentinel, LRC excluded.
    pub text: SecretText,
    /// The LRC character when the reader sent one (already checked).
    pub lrc: Option<char>,
    /// The reader's bad-read marker (`%E?`, `;E?`, `+E?`).
    pub error: bool,
}

fn is_start(c: u8) -> bool {
    matches!(c, b'%' | b';' | b'+')
}

fn in_charset(track: u8, c: u8) -> bool {
    if track == 1 {
        (0x20..=0x5F).contains(&c)
    } else {
        (0x30..=0x3F).contains(&c)
    }
}

/// ISO/IEC 7811-2 LRC in host terms over `text` (start through end sentinel). Track 3's MagTek
/// `+` stands for the card's `;`.
pub fn lrc(track: u8, text: &[u8]) -> u8 {
    if track == 1 {
        0x20 + text
            .iter()
            .fold(0u8, |a, &c| a ^ (c.wrapping_sub(0x20) & 0x3F))
    } else {
        let x = text.iter().fold(0u8, |a, &c| {
            let c = if c == b'+' { b';' } else { c };
            a ^ (c.wrapping_sub(0x30) & 0x0F)
        });
        0x30 + x
    }
}

/// Where one track sits in the input: found without copying anything.
#[derive(Clone, Copy, Default)]
struct Span {
    number: u8,
    /// Start sentinel through end sentinel (or the whole error marker).
    start: usize,
    end: usize,
    lrc: Option<u8>,
    error: bool,
}

/// At most one of each track, in input order.
#[derive(Default)]
struct Spans {
    items: [Span; 3],
    len: usize,
}

impl Spans {
    fn iter(&self) -> impl Iterator<Item = &Span> {
        self.items.iter().take(self.len)
    }
    fn push(&mut self, s: Span) -> Result<(), ParseError> {
        if self.iter().any(|t| t.number == s.number) {
            return Err(ParseError::BadTrack("track repeated"));
        }
        let slot = self
            .items
            .get_mut(self.len)
            .ok_or(ParseError::BadTrack("track repeated"))?;
        *slot = s;
        self.len += 1;
        Ok(())
    }
}

/// The track's text: ASCII by construction (every byte passed the charset check).
fn span_text<'a>(input: &'a [u8], s: &Span) -> &'a str {
    input
        .get(s.start..s.end)
        .and_then(|b| std::str::from_utf8(b).ok())
        .unwrap_or("")
}

/// The end sentinel's index in `body` (the bytes after the start sentinel) and the XOR of the
/// bytes before it, in one pass; every byte before it must be in the track's character set.
fn end_sentinel(body: &[u8], lo: u8, hi: u8) -> Result<(usize, u8), ParseError> {
    // Whole words in the set and without the `?` (itself in both sets), 8 bytes at a time.
    let mut xw = 0u64;
    let mut rest = body;
    while let Some((w, r)) = swar::next_word(rest) {
        if !swar::all_in(w, lo, hi) || swar::has_byte(w, b'?') {
            break;
        }
        xw ^= w;
        rest = r;
    }
    // From the word that stopped the fast loop, byte by byte.
    let base = body.len() - rest.len();
    let mut x = swar::xor_bytes(xw);
    for (k, &d) in rest.iter().enumerate() {
        if d == b'?' {
            return Ok((base + k, x));
        }
        if !(lo..=hi).contains(&d) {
            return Err(ParseError::BadTrack("character outside the track's set"));
        }
        x ^= d;
    }
    Err(ParseError::Truncated("track has no end sentinel"))
}

/// [`lrc`] from the XOR of a track's `len` bytes (sentinels included), all in the track's
/// character set. Track 2/3: subtracting 0x30 keeps the low nibble, and MagTek's `+` has the
/// same low nibble as `;`, so the LRC is the low nibble of the XOR. Track 1: for bytes in
/// 0x20..=0x5F, (c - 0x20) & 0x3F = (c & 0x3F) ^ 0x20, so the 0x20s cancel in pairs.
fn lrc_from_xor(track: u8, x: u8, len: usize) -> u8 {
    if track == 1 {
        let odd = if len % 2 == 1 { 0x20 } else { 0 };
        0x20 + ((x & 0x3F) ^ odd)
    } else {
        0x30 + (x & 0x0F)
    }
}

// Inlined into `decode_tracks` (the hint alone was not taken): handing the spans back
// through memory stalled the loads that read them (perf showed the stall).
#[inline(always)]
fn scan_spans(input: &[u8]) -> Result<Spans, ParseError> {
    let Some(start) = input.iter().position(|&c| is_start(c)) else {
        return Err(ParseError::UnknownFormat);
    };
    let mut out = Spans::default();
    let mut i = start;
    let mut seen2 = false;
    while let Some(&c) = input.get(i) {
        let number = match c {
            b'%' => 1,
            b';' if !seen2 => 2,
            b';' | b'+' => 3,
            b'\r' | b'\n' => {
                i += 1;
                continue;
            }
            // Wedge suffix.
            _ => break,
        };
        if number == 2 {
            seen2 = true;
        }
        if out.iter().any(|t| t.number == number) {
            return Err(ParseError::BadTrack("track repeated"));
        }
        // Bad-read marker.
        if input.get(i + 1) == Some(&b'E') && input.get(i + 2) == Some(&b'?') {
            out.push(Span {
                number,
                start: i,
                end: i + 3,
                lrc: None,
                error: true,
            })?;
            i += 3;
            continue;
        }
        let body = input.get(i + 1..).unwrap_or_default();
        let (q, x) = if number == 1 {
            end_sentinel(body, 0x20, 0x5F)?
        } else {
            end_sentinel(body, 0x30, 0x3F)?
        };
        let j = i + 1 + q;
        let expected = lrc_from_xor(number, x ^ c ^ b'?', q + 2);
        let span_start = i;
        i = j + 1;
        let mut lrc_char = None;
        if let Some(&c) = input.get(i) {
            let next_is_boundary = input
                .get(i + 1)
                .map_or(true, |&n| is_start(n) || n == b'\r' || n == b'\n');
            if c == expected && (!is_start(c) || next_is_boundary) {
                lrc_char = Some(c);
                i += 1;
            } else if is_start(c) || c == b'\r' || c == b'\n' || !in_charset(number, c) {
                // No LRC: the next track, a line end, or a suffix follows.
            } else {
                return Err(ParseError::BadLrc("track LRC"));
            }
        }
        out.push(Span {
            number,
            start: span_start,
            end: j + 1,
            lrc: lrc_char,
            error: false,
        })?;
    }
    Ok(out)
}

/// Finds the tracks in wedge text: prefix before the first sentinel and suffix after the last
/// track are ignored; an LRC after the end sentinel is optional and may itself be `?` (rule 1).
pub fn scan_tracks(input: &[u8]) -> Result<Vec<ScannedTrack>, ParseError> {
    let spans = scan_spans(input)?;
    Ok(spans
        .iter()
        .map(|s| ScannedTrack {
            number: s.number,
            text: SecretText::new(span_text(input, s)),
            lrc: s.lrc.map(char::from),
            error: s.error,
        })
        .collect())
}

/// Plain ISO 7813 text (wedge readers, MagTek security level 2).
pub fn decode_tracks(input: &[u8]) -> Result<CardRead, ParseError> {
    let spans = scan_spans(input)?;
    let mut read = CardRead::new(Format::Tracks);
    read.entry_mode = Some(EntryMode::Swipe);
    let mut clear: [Option<SecretText>; 3] = Default::default();
    // Checked as UTF-8 once (wedge text is ASCII); span by span if something outside is not.
    let whole = std::str::from_utf8(input).ok();
    for t in spans.iter() {
        let idx = usize::from(t.number.saturating_sub(1));
        let (Some(info), Some(slot)) = (read.tracks.get_mut(idx), clear.get_mut(idx)) else {
            continue;
        };
        let text = match whole {
            Some(w) => w.get(t.start..t.end).unwrap_or(""),
            None => span_text(input, t),
        };
        if t.error {
            *info = TrackInfo {
                status: TrackStatus::Error,
                masked: Some(text.to_string()),
            };
        } else {
            *info = TrackInfo {
                status: TrackStatus::Ok,
                // ASCII: every byte passed the character-set check.
                masked: Some(mask_track_ascii(text)),
            };
            *slot = Some(SecretText::new(text));
        }
    }
    read.fill_from_clear(&clear);
    read.clear = clear;
    Ok(read)
}

fn push_stars(out: &mut String, s: &str) {
    for _ in s.chars() {
        out.push('*');
    }
}

/// Masks a clear track the way readers do: PAN first 6 / last 4, name kept, everything after
/// the PAN's (or name's) separator starred.
pub fn mask_track(text: &str) -> String {
    if text.is_ascii() {
        mask_track_ascii(text)
    } else {
        mask_track_chars(text)
    }
}

/// Masks what a read will show, whatever the reader put in its "masked" fields (issue: a
/// reader that sends a clear PAN or discretionary data there): each shown track is masked again
/// by [`mask_track`], from the clear track when the read has one, so tracks and `masked_pan`
/// follow one rule (first 6 / last 4 at most, nothing after the separator). Bytes after the end
/// sentinel (a reader's LRC) are starred.
pub fn remask_shown(read: &mut CardRead) {
    for i in 0..3 {
        let Some(shown) = read.tracks[i].masked.take() else {
            continue;
        };
        // A reader's bad-read marker (`%E?`, `;E?`, `+E?`) holds no card data and says what
        // went wrong: kept as sent.
        if read.tracks[i].status == TrackStatus::Error && shown.len() <= 3 {
            read.tracks[i].masked = Some(shown);
            continue;
        }
        let clear = read
            .decrypted
            .as_ref()
            .and_then(|d| d[i].as_ref())
            .or(read.clear[i].as_ref())
            .map(SecretText::expose);
        let src = clear.unwrap_or(&shown);
        let (track, after) = match src.rfind('?') {
            Some(p) => src.split_at(p + 1),
            None => (src, ""),
        };
        let mut m = mask_track(track);
        m.extend(after.chars().map(|_| '*'));
        read.tracks[i].masked = Some(m);
    }
}

/// [`mask_track`] for ASCII text (every real track): one copy, then ranges starred in place,
/// separators found a word at a time. Same output as the per-char path; for text that is not
/// ASCII (callers check) the result is empty rather than wrong.
// Inlined for the same reason as `scan_spans`: the returned `String` was read back stalled.
#[inline(always)]
fn mask_track_ascii(text: &str) -> String {
    let mut out = text.as_bytes().to_vec();
    let n = out.len();
    let first = out.first().copied();
    // The end sentinel stays; the start sentinel is byte 0.
    let end = if n >= 2 && out.last() == Some(&b'?') {
        n - 1
    } else {
        n
    };
    let body = out.get_mut(1..end).unwrap_or_default();
    if first == Some(b'%') {
        // Byte 0 of the body is the format code, kept.
        let rest = body.get_mut(1..).unwrap_or_default();
        match swar::find(rest, b'^') {
            Some(p) => {
                let (pan, after) = rest.split_at_mut(p);
                star_pan(pan);
                // `after` starts with the `^`; the name up to the next `^` is kept.
                let after = after.get_mut(1..).unwrap_or_default();
                let tail = swar::find(after, b'^').map_or(0, |q| q + 1);
                after.get_mut(tail..).unwrap_or_default().fill(b'*');
            }
            None => star_pan(rest),
        }
    } else {
        match swar::find(body, b'=') {
            Some(p) => {
                let (pan, after) = body.split_at_mut(p);
                star_pan(pan);
                after.get_mut(1..).unwrap_or_default().fill(b'*');
            }
            None => star_pan(body),
        }
    }
    // Still ASCII: only ASCII bytes were copied or written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`mask_track`] counted in chars, for non-ASCII input.
fn mask_track_chars(text: &str) -> String {
    let mut chars = text.chars();
    let Some(ss) = chars.next() else {
        return String::new();
    };
    let body = chars.as_str();
    let (body, es) = match body.strip_suffix('?') {
        Some(b) => (b, "?"),
        None => (body, ""),
    };
    let mut out = String::with_capacity(text.len());
    out.push(ss);
    if ss == '%' {
        let mut c = body.chars();
        if let Some(fc) = c.next() {
            out.push(fc);
        }
        let rest = c.as_str();
        match rest.split_once('^') {
            Some((pan, after)) => {
                push_masked(&mut out, pan);
                out.push('^');
                match after.split_once('^') {
                    Some((name, tail)) => {
                        out.push_str(name);
                        out.push('^');
                        push_stars(&mut out, tail);
                    }
                    None => push_stars(&mut out, after),
                }
            }
            None => push_masked(&mut out, rest),
        }
    } else {
        match body.split_once('=') {
            Some((pan, tail)) => {
                push_masked(&mut out, pan);
                out.push('=');
                push_stars(&mut out, tail);
            }
            None => push_masked(&mut out, body),
        }
    }
    out.push_str(es);
    out
}

/// Fields a reader leaves readable in a masked track.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskedInfo {
    pub pan: Option<String>,
    pub name: Option<String>,
    pub expiry: Option<String>,
    pub service_code: Option<String>,
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// [`MaskedInfo`] borrowed from the masked track, for decoders that copy only what they keep.
#[derive(Clone, Copy, Default)]
pub(crate) struct MaskedRef<'a> {
    pub pan: Option<&'a str>,
    pub name: Option<&'a str>,
    pub expiry: Option<&'a str>,
    pub service_code: Option<&'a str>,
}

fn expiry_and_service<'a>(rest: &'a str, info: &mut MaskedRef<'a>) {
    // `0000` is no date (month 00): a reader that masks with `0` (MagTek's DFDF4D) hid it.
    if let Some(e) = rest.get(..4).filter(|e| digits(e) && *e != "0000") {
        info.expiry = Some(e);
        // Masking readers fill the service code with the mask digit: keep only plausible ones.
        if let Some(s) = rest.get(4..7).filter(|s| digits(s)) {
            if matches!(
                s.as_bytes().first(),
                Some(b'1' | b'2' | b'5' | b'6' | b'7' | b'9')
            ) {
                info.service_code = Some(s);
            }
        }
    }
}

/// Reads PAN (as masked), name, and any clear expiry / service code from a masked track.
pub(crate) fn masked_ref(track: u8, masked: &str) -> MaskedRef<'_> {
    let mut info = MaskedRef::default();
    let body = masked.get(1..).unwrap_or("");
    if track == 1 {
        let body = body.get(1..).unwrap_or("");
        let Some((pan, after)) = split_at_byte(body, b'^') else {
            return info;
        };
        let pan = pan.trim();
        info.pan = (!pan.is_empty()).then_some(pan);
        let (name, rest) = match split_at_byte(after, b'^') {
            Some((name, rest)) => (name, Some(rest)),
            None => (after, None),
        };
        let name = name.trim();
        if !name.is_empty() && !name.bytes().all(|c| c == b'*') {
            info.name = Some(name);
        }
        if let Some(rest) = rest {
            expiry_and_service(rest, &mut info);
        }
    } else if let Some((pan, rest)) = split_at_byte(body, b'=') {
        info.pan = (!pan.is_empty()).then_some(pan);
        expiry_and_service(rest, &mut info);
    }
    info
}

/// Reads PAN (as masked), name, and any clear expiry / service code from a masked track.
pub fn masked_info(track: u8, masked: &str) -> MaskedInfo {
    let r = masked_ref(track, masked);
    MaskedInfo {
        pan: r.pan.map(str::to_string),
        name: r.name.map(str::to_string),
        expiry: r.expiry.map(str::to_string),
        service_code: r.service_code.map(str::to_string),
    }
}

/// Nibble-packed Track 2 (`B…D…F` + LRC nibble) to `;…=…?` text (rule 7).
pub fn unpack_nibbles(bytes: &[u8]) -> Option<Zeroizing<String>> {
    // Clear track text: sized once (no reallocation leaves a copy behind), zeroed on drop.
    let mut out = Zeroizing::new(String::with_capacity(bytes.len().saturating_mul(2)));
    for n in bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        if out.is_empty() && n != 0x0B {
            return None;
        }
        out.push(char::from(0x30 + n));
        if n == 0x0F {
            return Some(out);
        }
    }
    None
}

/// Chip Track 2 equivalent (57, 9F6B) given as hex digits: `PAN D YYMM SVC DD F…` with a
/// possible leading `B`, lowercase `d`, `F` padding and trailing zeros. `mask_c`: ID TECH masks
/// nibbles with `C`, shown as `*`.
pub fn chip_track2_from_hex(hexdigits: &str, mask_c: bool) -> Option<Zeroizing<String>> {
    let upper = Zeroizing::new(hexdigits.trim().to_ascii_uppercase());
    let s = upper.strip_prefix('B').unwrap_or(&upper);
    let s = s.strip_prefix(';').unwrap_or(s);
    let (pan, rest) = s.split_once('D').or_else(|| s.split_once('='))?;
    // Zeros after the F padding are cipher padding; zeros before it are data.
    let t = rest.trim_end_matches('0');
    let rest = if t.ends_with('F') { t } else { rest };
    let rest = rest.trim_end_matches('F').trim_end_matches('?');
    let ok = |x: &str| {
        x.bytes()
            .all(|b| b.is_ascii_digit() || (mask_c && b == b'C'))
    };
    if pan.is_empty() || pan.len() > 19 || !ok(pan) || !ok(rest) {
        return None;
    }
    let shown = |c: char| if c == 'C' { '*' } else { c };
    // All ASCII: one allocation of the final size, so no reallocation leaves a clear copy.
    let mut out = Zeroizing::new(String::with_capacity(pan.len() + rest.len() + 3));
    out.push(';');
    out.extend(pan.chars().map(shown));
    out.push('=');
    out.extend(rest.chars().map(shown));
    out.push('?');
    Some(out)
}

/// Chip Track 2 equivalent from tag bytes.
pub fn chip_track2(value: &[u8], mask_c: bool) -> Option<Zeroizing<String>> {
    let hexed = Zeroizing::new(hex::encode_upper(value));
    chip_track2_from_hex(&hexed, mask_c)
}

/// Chip Track 1 equivalent (56): ASCII `B…^NAME^…`, sentinels added when absent.
pub fn chip_track1(value: &[u8]) -> Option<Zeroizing<String>> {
    let end = value
        .iter()
        .rposition(|&b| b != 0 && b != 0xFF)
        .map_or(0, |p| p + 1);
    let v = value.get(..end)?;
    if v.is_empty() || !v.iter().all(|&b| (0x20..=0x5F).contains(&b)) {
        return None;
    }
    // ASCII checked above: a borrow, not a copy.
    let s = std::str::from_utf8(v).ok()?;
    let s = s.strip_prefix('%').unwrap_or(s);
    let s = s.split('?').next().unwrap_or("");
    let mut out = Zeroizing::new(String::with_capacity(s.len() + 2));
    out.push('%');
    out.push_str(s);
    out.push('?');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sample 09 (MagTek MagneSafe V5 manual, SL2 example).
    const SAMPLE09: &str = "%B5452300551227189^HOGAN/PAUL      ^08043210000000725000000?;5452300551227189=080432100000007250?+5163499080020445=000000000000?";

    #[test]
    fn sample_09_three_tracks() {
        let r = decode_tracks(SAMPLE09.as_bytes()).unwrap();
        assert!(r.tracks.iter().all(|t| t.status == TrackStatus::Ok));
        assert_eq!(r.last4.as_deref(), Some("7189"));
        assert_eq!(r.expiry.as_deref(), Some("0804"));
        assert_eq!(r.service_code.as_deref(), Some("321"));
        assert_eq!(r.cardholder_name.as_deref(), Some("HOGAN/PAUL"));
        assert_eq!(
            r.tracks[1].masked.as_deref(),
            Some(";545230******7189=******************?")
        );
        assert_eq!(
            r.clear[2].as_ref().unwrap().expose(),
            "+5163499080020445=000000000000?"
        );
    }

    #[test]
    fn lrc_values() {
        // From the ID TECH UniMag II sample's published clear tracks: T1 LRC '>', T2 LRC '1'.
        let t1 = b"%B5150710200107861^PAYPASS/MASTERCARD^090910140000202?";
        let t2 = b";5150710200107861=090910140000202?";
        assert_eq!(lrc(1, t1), b'>');
        assert_eq!(lrc(2, t2), b'1');
    }

    #[test]
    fn lrc_equal_to_question_mark_is_not_a_split_point() {
        // Find a Track 1 whose LRC is '?' by varying one digit (search, not a fixed claim).
        let t1 = (0..100)
            .flat_map(|k| {
                ('A'..='Z')
                    .map(move |c| format!("%B4111111111111111^TEST/CARD{c}^2912101{k:02}0000631?"))
            })
            .find(|t| lrc(1, t.as_bytes()) == b'?')
            .unwrap();
        let input = format!("{t1}?;4111111111111111=2912101?");
        let tracks = scan_tracks(input.as_bytes()).unwrap();
        assert_eq!(tracks.len(), 2);
        assert_eq!(tracks[0].text.expose(), t1);
        assert_eq!(tracks[0].lrc, Some('?'));
        assert_eq!(tracks[1].text.expose(), ";4111111111111111=2912101?");
    }

    #[test]
    fn error_markers_prefix_suffix_and_bad_lrc() {
        let r = decode_tracks(b"xx%E?;4111111111111111=2912101?+E?\r\n").unwrap();
        assert_eq!(r.tracks[0].status, TrackStatus::Error);
        assert_eq!(r.tracks[1].status, TrackStatus::Ok);
        assert_eq!(r.tracks[2].status, TrackStatus::Error);
        assert_eq!(r.tracks[2].masked.as_deref(), Some("+E?"));
        let e = scan_tracks(b";4111111111111111=2912101?5").unwrap_err();
        assert_eq!(e.code(), "bad-lrc");
        assert_eq!(scan_tracks(b";41111111").unwrap_err().code(), "truncated");
        assert_eq!(scan_tracks(b";4111a11?").unwrap_err().code(), "bad-track");
    }

    #[test]
    fn packed_forms() {
        // ';' = 0x3B → B, '=' → D, '?' → F.
        assert_eq!(
            unpack_nibbles(&[0xB4, 0x11, 0x1D, 0x29, 0x12, 0xF3])
                .as_deref()
                .map(String::as_str),
            Some(";4111=2912?")
        );
        assert_eq!(
            chip_track2_from_hex("4761739001010010d22122011143804400000F000000", false)
                .as_deref()
                .map(String::as_str),
            Some(";4761739001010010=22122011143804400000?")
        );
        assert_eq!(
            chip_track2_from_hex("B5413CCCCCCCC4111D2512", true)
                .as_deref()
                .map(String::as_str),
            Some(";5413********4111=2512?")
        );
        assert_eq!(
            chip_track1(b"B4111111111111111^CARD/TEST^2912")
                .as_deref()
                .map(String::as_str),
            Some("%B4111111111111111^CARD/TEST^2912?")
        );
    }

    #[test]
    fn mask_track_known_values() {
        // Hand-masked: PAN 6/4, name kept, the rest after the separators starred.
        assert_eq!(
            mask_track("%B5452300551227189^HOGAN/PAUL      ^08043210000000725000000?"),
            "%B545230******7189^HOGAN/PAUL      ^***********************?"
        );
        assert_eq!(mask_track(";4111=2912?"), ";41**=****?");
        assert_eq!(
            mask_track("%B4111111111111111^NAME"),
            "%B411111******1111^****"
        );
        for (t, m) in [
            ("", ""),
            ("?", "?"),
            ("%", "%"),
            ("%?", "%?"),
            (";?", ";?"),
            ("%B?", "%B?"),
        ] {
            assert_eq!(mask_track(t), m);
        }
    }

    proptest::proptest! {
        /// The ASCII fast path and the per-char path give the same text on ASCII input
        /// (separators and sentinels over-represented so every branch is reached).
        #[test]
        fn mask_track_ascii_matches_char_path(
            parts in proptest::collection::vec(
                proptest::prop_oneof!["[%;+?^=]", "[ -~]{0,20}"],
                0..8,
            )
        ) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(mask_track_ascii(&text), mask_track_chars(&text));
        }
    }

    proptest::proptest! {
        /// The one-pass LRC of `scan_spans` equals [`lrc`] computed over the track text: an
        /// appended `lrc()` is recognised, any other in-set byte there is refused.
        #[test]
        fn scan_lrc_matches_lrc(
            number in 1u8..=3,
            plus in proptest::bool::ANY,
            body in proptest::collection::vec(0u8..0x40, 0..80),
            other in 0u8..0x40,
        ) {
            let (ss, base, span) = match number {
                1 => ('%', 0x20u8, 0x40u8),
                2 => (';', 0x30, 0x10),
                _ => (if plus { '+' } else { ';' }, 0x30, 0x10),
            };
            // Body bytes in the track's set, `?` excluded; a Track 3 `;` needs a Track 2 first.
            let body: String = body
                .iter()
                .map(|&b| char::from(base + b % span))
                .filter(|&c| c != '?')
                .collect();
            // `%E?` / `;E?` / `+E?` is the bad-read marker, not a track.
            proptest::prop_assume!(body != "E");
            let text = format!("{ss}{body}?");
            let prefix = if number == 3 { ";1=1?" } else { "" };
            let want = lrc(number, text.as_bytes());
            let input = format!("{prefix}{text}{}", char::from(want));
            let tracks = scan_tracks(input.as_bytes());
            proptest::prop_assert!(tracks.is_ok(), "{:?}", tracks.err());
            let tracks = tracks.unwrap_or_default();
            let t = tracks.iter().find(|t| t.number == number);
            proptest::prop_assert_eq!(t.and_then(|t| t.lrc), Some(char::from(want)));
            // A wrong LRC that cannot be read as the next track, a line end or a suffix.
            let bad = base + other % span;
            if bad != want && !is_start(bad) && bad != b'?' {
                let input = format!("{prefix}{text}{}", char::from(bad));
                proptest::prop_assert_eq!(
                    scan_tracks(input.as_bytes()).map(|_| ()),
                    Err(ParseError::BadLrc("track LRC"))
                );
            }
        }
    }

    #[test]
    fn masked_info_reads_idtech_masking() {
        let i = masked_info(1, "%*5150********7861^PAYPASS/MASTERCARD^***************?*");
        assert_eq!(i.pan.as_deref(), Some("5150********7861"));
        assert_eq!(i.name.as_deref(), Some("PAYPASS/MASTERCARD"));
        assert_eq!(i.expiry, None);
        let i = masked_info(2, ";5452300000007189=0804000000000000?");
        assert_eq!(i.expiry.as_deref(), Some("0804"));
        assert_eq!(i.service_code, None);
        // Expiry masked with the digit 0 (MagTek DFDF4D): no date, not a bad one.
        let i = masked_info(2, ";5312570000008112=00000000000000000000?");
        assert_eq!(i.pan.as_deref(), Some("5312570000008112"));
        assert_eq!(i.expiry, None);
    }

    /// A reader that leaves card data in its "masked" fields has it masked again: tracks and
    /// masked PAN, before and after decryption (values masked by hand: first 6 / last 4 of the
    /// public test PAN 4761739001010119, nothing after the separator).
    #[test]
    fn reader_masked_fields_are_masked_again() {
        use crate::parse::decode_frame;
        // Bare TLV: 57 A1 12 holding the clear Track 2 equivalent where the masked copy goes,
        // then 9F39 07.
        let b = hex::decode("57A1124761739001010119D251220112340001230F9F390107").unwrap();
        let r = decode_frame(&b).unwrap();
        let t2 = r.tracks[1].masked.as_deref().unwrap();
        assert_eq!(t2, ";476173******0119=******************?");
        assert_eq!(r.masked_pan.as_ref().unwrap().as_str(), "476173******0119");
        let json = r.to_json().to_string();
        assert!(!json.contains("4761739001010119"), "{json}");
        assert!(
            !json.contains("201123400012"),
            "discretionary data shown: {json}"
        );
        // A keyboard wedge track whose reader kept the LRC after the end sentinel: starred.
        let mut r = CardRead::new(Format::Tracks);
        r.tracks[1] = TrackInfo {
            status: TrackStatus::Ok,
            masked: Some(";4761739001010119=2512201?Z".into()),
        };
        remask_shown(&mut r);
        assert_eq!(
            r.tracks[1].masked.as_deref(),
            Some(";476173******0119=*******?*")
        );
        // A bad-read marker stays as the reader sent it.
        r.tracks[2] = TrackInfo {
            status: TrackStatus::Error,
            masked: Some("+E?".into()),
        };
        remask_shown(&mut r);
        assert_eq!(r.tracks[2].masked.as_deref(), Some("+E?"));
    }
}
