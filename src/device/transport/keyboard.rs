//! Keyboard-wedge readers through evdev, grabbed exclusively (EVIOCGRAB) so their keystrokes
//! do not reach the focused window. Keycodes are mapped with an explicit US layout: the host's
//! layout would turn `^` into `&` on a Turkish-Q keyboard (reader-formats.md §0 rule 9).

use std::time::{Duration, Instant};

use super::{Chunk, ChunkKind, Transport, TransportError};

const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTSHIFT: u16 = 54;

pub struct KeyboardTransport {
    device: evdev::Device,
    opened: Instant,
    shift: bool,
}

impl KeyboardTransport {
    pub fn open(path: &str) -> Result<Self, TransportError> {
        let mut device = evdev::Device::open(path).map_err(|e| TransportError::from_io(&e))?;
        device.grab().map_err(|e| TransportError::from_io(&e))?;
        Ok(KeyboardTransport {
            device,
            opened: Instant::now(),
            shift: false,
        })
    }
}

impl Transport for KeyboardTransport {
    /// Blocks until the next batch of key events (evdev reads have no time-out); one batch is
    /// one keystroke burst.
    fn read_chunk(&mut self, _timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        let events = self
            .device
            .fetch_events()
            .map_err(|e| match TransportError::from_io(&e) {
                TransportError::Io(_) => TransportError::Closed,
                other => other,
            })?;
        let mut text = Vec::new();
        for ev in events {
            if ev.event_type() != evdev::EventType::KEY {
                continue;
            }
            let (code, value) = (ev.code(), ev.value());
            if code == KEY_LEFTSHIFT || code == KEY_RIGHTSHIFT {
                self.shift = value != 0;
                continue;
            }
            // 1 = press, 2 = autorepeat; releases (0) type nothing.
            if value == 1 {
                if let Some(c) = us_layout_char(code, self.shift) {
                    text.push(c);
                }
            }
        }
        if text.is_empty() {
            return Ok(None);
        }
        Ok(Some(Chunk::new(
            text,
            self.opened.elapsed(),
            ChunkKind::Text,
        )))
    }
}

/// The character a Linux keycode types on a US layout (None for keys that type nothing).
pub fn us_layout_char(code: u16, shift: bool) -> Option<u8> {
    const ROW_DIGITS: &[u8; 13] = b"1234567890-=\x00";
    const ROW_DIGITS_S: &[u8; 13] = b"!@#$%^&*()_+\x00";
    let pick = |plain: &[u8], shifted: &[u8], i: usize| -> Option<u8> {
        let c = if shift { shifted.get(i) } else { plain.get(i) };
        c.copied().filter(|&c| c != 0)
    };
    let n = usize::from(code);
    match code {
        2..=13 => pick(ROW_DIGITS, ROW_DIGITS_S, n - 2),
        16..=27 => pick(b"qwertyuiop[]", b"QWERTYUIOP{}", n - 16),
        28 | 96 => Some(b'\r'),
        30..=41 => pick(b"asdfghjkl;'`", b"ASDFGHJKL:\"~", n - 30),
        43..=53 => pick(b"\\zxcvbnm,./", b"|ZXCVBNM<>?", n - 43),
        55 => Some(b'*'),
        57 => Some(b' '),
        15 => Some(b'\t'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::us_layout_char;

    #[test]
    fn us_layout_types_track_characters() {
        // Keycodes from linux/input-event-codes.h: KEY_5=6, KEY_SEMICOLON=39, KEY_EQUAL=13,
        // KEY_SLASH=53, KEY_B=48, KEY_6=7, KEY_ENTER=28.
        assert_eq!(us_layout_char(6, true), Some(b'%'));
        assert_eq!(us_layout_char(48, true), Some(b'B'));
        assert_eq!(us_layout_char(7, true), Some(b'^'));
        assert_eq!(us_layout_char(39, false), Some(b';'));
        assert_eq!(us_layout_char(13, false), Some(b'='));
        assert_eq!(us_layout_char(53, true), Some(b'?'));
        assert_eq!(us_layout_char(11, false), Some(b'0'));
        assert_eq!(us_layout_char(28, false), Some(b'\r'));
        assert_eq!(us_layout_char(42, false), None);
        assert_eq!(us_layout_char(500, false), None);
    }
}
