//! Parsing and writing capture text.

use std::fmt::Write as _;
use std::time::Duration;

use zeroize::Zeroizing;

use super::{Capture, CaptureChunk, CaptureError, Headers, MAGIC, SIGNATURE};
use crate::device::transport::ChunkKind;

pub(super) fn parse(text: &str) -> Result<Capture, CaptureError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
    match lines.next() {
        Some((_, first)) if first.trim_end() == MAGIC => {}
        Some((_, first)) if first.starts_with(SIGNATURE) => {
            return Err(CaptureError::UnsupportedVersion {
                found: version_shown(&first[SIGNATURE.len()..]),
            })
        }
        _ => return Err(CaptureError::NotACapture { line: 1 }),
    }
    let mut headers = Headers::default();
    let mut chunks = Vec::new();
    for (line, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        if let Some(comment) = l.strip_prefix('#') {
            // `# key: value` before the first chunk is a header; anything else is a comment.
            if chunks.is_empty() {
                if let Some((k, v)) = comment.split_once(':') {
                    let (k, v) = (k.trim(), v.trim());
                    if !k.is_empty() && !k.contains(' ') {
                        match k {
                            "profile" => headers.profile = Some(v.to_string()),
                            "transport" => headers.transport = Some(v.to_string()),
                            "source" => headers.source = Some(v.to_string()),
                            _ => headers.other.push((k.to_string(), v.to_string())),
                        }
                    }
                }
            }
            continue;
        }
        chunks.push(parse_chunk(line, l)?);
    }
    Ok(Capture { headers, chunks })
}

/// The version word of a first line, cut short and limited to plain characters: it is echoed in
/// an error message, and the file could hold anything.
fn version_shown(rest: &str) -> String {
    let word = rest.split_whitespace().next().unwrap_or("");
    let shown: String = word
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
        .take(12)
        .collect();
    if shown.is_empty() {
        "(none)".to_string()
    } else {
        shown
    }
}

fn parse_chunk(line: usize, l: &str) -> Result<CaptureChunk, CaptureError> {
    let rest = l
        .strip_prefix('+')
        .ok_or(CaptureError::BadChunkLine { line })?;
    let (delay, rest) = rest
        .split_once(' ')
        .ok_or(CaptureError::BadChunkLine { line })?;
    let ms = delay
        .strip_suffix("ms")
        .ok_or(CaptureError::BadDelay { line })?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CaptureError::BadDelay { line });
    }
    let ms: u64 = ms.parse().map_err(|_| CaptureError::BadDelay { line })?;
    // The payload may be empty (`+5ms text `) and may itself contain spaces (text).
    let (kind, payload) = rest.split_once(' ').unwrap_or((rest, ""));
    let (kind, bytes) = match kind {
        "hex" => {
            let clean: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = hex::decode(&clean).map_err(|_| CaptureError::BadHex { line })?;
            (ChunkKind::Hex, bytes)
        }
        "text" => (
            ChunkKind::Text,
            unescape(payload).ok_or(CaptureError::BadEscape { line })?,
        ),
        _ => return Err(CaptureError::BadKind { line }),
    };
    Ok(CaptureChunk {
        delay: Duration::from_millis(ms),
        kind,
        bytes: Zeroizing::new(bytes),
    })
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next()? {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hi = (it.next()? as char).to_digit(16)?;
                let lo = (it.next()? as char).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Escapes bytes for a `text` chunk: printable ASCII stays, the rest becomes `\r`, `\n`, `\t`,
/// `\\` or `\xNN`; a trailing space is escaped so editors that trim lines cannot change it.
pub fn escape_text(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 8);
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            b' ' if i == last => s.push_str("\\x20"),
            0x20..=0x7E => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02X}");
            }
        }
    }
    s
}

pub(super) fn header_lines(h: &Headers) -> String {
    let mut s = String::from(MAGIC);
    s.push('\n');
    let one_line = |v: &str| v.replace(['\r', '\n'], " ");
    for (k, v) in [
        ("profile", &h.profile),
        ("transport", &h.transport),
        ("source", &h.source),
    ] {
        if let Some(v) = v {
            let _ = writeln!(s, "# {k}: {}", one_line(v));
        }
    }
    for (k, v) in &h.other {
        let _ = writeln!(s, "# {k}: {}", one_line(v));
    }
    s
}

pub(super) fn chunk_line(delay: Duration, kind: ChunkKind, bytes: &[u8]) -> String {
    match kind {
        ChunkKind::Hex => format!(
            "+{}ms hex {}\n",
            delay.as_millis(),
            hex::encode_upper(bytes)
        ),
        ChunkKind::Text => format!("+{}ms text {}\n", delay.as_millis(), escape_text(bytes)),
    }
}

pub(super) fn write(c: &Capture) -> String {
    let mut s = header_lines(&c.headers);
    for ch in &c.chunks {
        s.push_str(&chunk_line(ch.delay, ch.kind, &ch.bytes));
    }
    s
}
