//! Decides from what a reader sends, not from its profile, whether a capture may be written:
//! chunks are held until the frames they make up are known, and a frame with clear card data
//! stops the capture before any of its bytes reach the file (unless clear data is allowed).
use crate::device::framer::Frame;
use crate::device::transport::Chunk;
use crate::parse;

/// A frame held clear card data; nothing of it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the reader sent clear card data (frame {frame}); nothing of it was written")]
pub struct ClearData {
    /// 1-based number of the frame among those the capture saw.
    pub frame: u64,
}

/// Holds chunks back until the frames they belong to have been checked.
#[derive(Debug, Default)]
pub struct ClearGate {
    allow_clear: bool,
    pending: Vec<Chunk>,
    frames_seen: u64,
    /// Frames checked since the last release that decoded to reads without clear data.
    clean_frames: u64,
}

impl ClearGate {
    pub fn new(allow_clear: bool) -> Self {
        ClearGate {
            allow_clear,
            ..ClearGate::default()
        }
    }

    /// Takes a chunk (if any) and the frames the framer completed with it. `framer_idle`: the
    /// framer holds no partial frame, so every held chunk belongs to a checked frame. Returns
    /// the chunks now safe to write, in order.
    pub fn offer(
        &mut self,
        chunk: Option<Chunk>,
        frames: &[Frame],
        framer_idle: bool,
    ) -> Result<Vec<Chunk>, ClearData> {
        self.pending.extend(chunk);
        self.check(frames)?;
        if framer_idle {
            self.release(false)
        } else {
            Ok(Vec::new())
        }
    }

    /// At the end: the framer's last frames, then whatever is still held.
    pub fn finish(&mut self, frames: &[Frame]) -> Result<Vec<Chunk>, ClearData> {
        self.check(frames)?;
        self.release(true)
    }

    /// Bytes the framer did not make into frames (text on a binary framer, garbage) are card
    /// data too when they hold a clear track: the held chunks are scanned as one run, and a
    /// trailing possible track start (`;` or `%B` then digits only) stays held until its end
    /// is known.
    fn release(&mut self, last: bool) -> Result<Vec<Chunk>, ClearData> {
        // Held bytes that made up reads without clear data are judged by those reads: a
        // masked track inside an encrypting reader's frame (MagTek masks with `0`, so
        // `;4111110000001111=`) is no clear track.
        let clean = std::mem::take(&mut self.clean_frames) > 0;
        if self.allow_clear || clean {
            return Ok(std::mem::take(&mut self.pending));
        }
        let run: zeroize::Zeroizing<Vec<u8>> = zeroize::Zeroizing::new(
            self.pending
                .iter()
                .flat_map(|c| c.bytes.iter().copied())
                .collect(),
        );
        let open = open_track_start(&run);
        if looks_like_clear_track(&run) || (last && open.is_some_and(|at| run.len() - at > 12)) {
            self.pending.clear();
            return Err(ClearData {
                frame: self.frames_seen + 1,
            });
        }
        let keep_from = match open {
            Some(at) if !last => {
                // The chunk holding the open start and every chunk after it stay held.
                let mut offset = 0;
                self.pending
                    .iter()
                    .position(|c| {
                        offset += c.bytes.len();
                        offset > at
                    })
                    .unwrap_or(self.pending.len())
            }
            _ => self.pending.len(),
        };
        let rest = self.pending.split_off(keep_from);
        Ok(std::mem::replace(&mut self.pending, rest))
    }

    fn check(&mut self, frames: &[Frame]) -> Result<(), ClearData> {
        for f in frames {
            self.frames_seen += 1;
            if self.allow_clear {
                continue;
            }
            match judge(&f.bytes) {
                Judged::Clear => {
                    self.pending.clear();
                    return Err(ClearData {
                        frame: self.frames_seen,
                    });
                }
                Judged::Protected => self.clean_frames += 1,
                Judged::Undecoded => {}
            }
        }
        Ok(())
    }
}

enum Judged {
    /// Clear card data, or undecodable bytes that look like a clear track.
    Clear,
    /// A read without clear data (encrypted, or masked only).
    Protected,
    /// Not a read, and nothing that looks like a clear track.
    Undecoded,
}

/// A frame that decodes to clear tracks, or that does not decode but still carries what looks
/// like a clear track (a bad read of a clear reader is still card data), is `Clear`.
fn judge(frame: &[u8]) -> Judged {
    match parse::decode_frame(frame) {
        Ok(r) if r.clear.iter().any(Option::is_some) => Judged::Clear,
        Ok(_) => Judged::Protected,
        Err(_) if looks_like_clear_track(frame) => Judged::Clear,
        Err(_) => Judged::Undecoded,
    }
}

/// `;` or `%B` followed by 12 to 19 digits and a field separator: the start of a clear Track 2
/// or Track 1, wherever it sits in the bytes.
fn looks_like_clear_track(b: &[u8]) -> bool {
    let starts = b.iter().enumerate().filter_map(|(i, &c)| match c {
        b';' => Some(i + 1),
        b'%' if b.get(i + 1) == Some(&b'B') => Some(i + 2),
        _ => None,
    });
    for s in starts {
        let rest = b.get(s..).unwrap_or_default();
        let digits = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        if (12..=19).contains(&digits) && matches!(rest.get(digits), Some(b'=' | b'^')) {
            return true;
        }
    }
    false
}

/// Where a track start that runs to the end of `b` begins: `;` or `%B`, then digits only.
fn open_track_start(b: &[u8]) -> Option<usize> {
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    let before = b.len() - digits;
    match (
        before.checked_sub(1).and_then(|i| b.get(i)),
        before.checked_sub(2),
    ) {
        (Some(&b';'), _) => Some(before - 1),
        (Some(&b'B'), Some(i)) if b.get(i) == Some(&b'%') => Some(i),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::transport::ChunkKind;
    use std::time::Duration;

    fn chunk(b: &[u8]) -> Chunk {
        Chunk::new(b.to_vec(), Duration::ZERO, ChunkKind::Text)
    }
    fn frame(b: &[u8]) -> Frame {
        Frame::new(b.to_vec(), Duration::ZERO, "test")
    }

    const CLEAR: &[u8] = b"%B4111111111111111^TEST/CARD^2912101?;4111111111111111=2912101?";

    #[test]
    fn clear_frames_are_refused_and_never_released() {
        let mut g = ClearGate::new(false);
        // First half of a clear swipe: held, nothing released while the frame is open.
        assert_eq!(g.offer(Some(chunk(&CLEAR[..20])), &[], false), Ok(vec![]));
        let e = g
            .offer(Some(chunk(&CLEAR[20..])), &[frame(CLEAR)], true)
            .unwrap_err();
        assert_eq!(e, ClearData { frame: 1 });
        assert!(g.finish(&[]).unwrap().is_empty());
    }

    #[test]
    fn encrypted_and_allowed_frames_pass() {
        // Sample 04 (ID TECH enhanced, encrypted): masked tracks only.
        let hex_text = include_str!("../../fixtures/decode/good/04_idtech_unimag2_enhanced.hex");
        let body: String = hex_text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .collect();
        let enc = hex::decode(body).unwrap();
        let mut g = ClearGate::new(false);
        let out = g.offer(Some(chunk(&enc)), &[frame(&enc)], true).unwrap();
        assert_eq!(out.len(), 1);
        let mut g = ClearGate::new(true);
        let out = g.offer(Some(chunk(CLEAR)), &[frame(CLEAR)], true).unwrap();
        assert_eq!(out.len(), 1);
    }

    /// An encrypting MagTek reader masks with `0`: its masked Track 2 has 16 digits before the
    /// `=`, which the byte scan alone would take for a clear track. Its decoded frame vouches
    /// for the bytes it came in.
    #[test]
    fn a_zero_masked_encrypted_frame_is_released() {
        let hex_text = include_str!("../../fixtures/decode/good/magtek_hid.hex");
        let body: String = hex_text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .collect();
        let report = hex::decode(body).unwrap();
        assert!(
            looks_like_clear_track(&report),
            "the fixture shows the false alarm"
        );
        let mut g = ClearGate::new(false);
        let out = g
            .offer(Some(chunk(&report)), &[frame(&report)], true)
            .unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn undecodable_clear_track_bytes_are_caught() {
        // A clear Track 2 with a bad character after it: no decode, still card data.
        assert!(matches!(
            judge(b";4111111111111111=2912101?x\x01"),
            Judged::Clear
        ));
        assert!(!matches!(
            judge(b";4111********1111=*******?"),
            Judged::Clear
        ));
        let mut g = ClearGate::new(false);
        assert_eq!(
            g.offer(Some(chunk(b";5555555555554444=30")), &[], false),
            Ok(vec![])
        );
        assert!(g.finish(&[]).is_err());
        // Text a binary framer never frames: the framer is idle, the bytes are still checked.
        let mut g = ClearGate::new(false);
        assert!(g.offer(Some(chunk(CLEAR)), &[], true).is_err());
        // A track start split over chunks: its first part is held, never released alone.
        let mut g = ClearGate::new(false);
        assert_eq!(
            g.offer(Some(chunk(b"noise ;41111111")), &[], true),
            Ok(vec![])
        );
        assert!(g
            .offer(Some(chunk(b"11111111=2912101?")), &[], true)
            .is_err());
        // Digits that end without a separator at the stop are refused too.
        let mut g = ClearGate::new(false);
        assert_eq!(
            g.offer(Some(chunk(b"%B4111111111111111")), &[], true),
            Ok(vec![])
        );
        assert!(g.finish(&[]).is_err());
        // Short digit runs after a `;` are released once the run ends.
        let mut g = ClearGate::new(false);
        assert_eq!(g.offer(Some(chunk(b"ok;12")), &[], true), Ok(vec![]));
        assert_eq!(
            g.offer(Some(chunk(b"34 done")), &[], true).unwrap().len(),
            2
        );
    }
}
