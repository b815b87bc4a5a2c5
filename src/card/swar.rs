//! Eight bytes at a time in a `u64` ("SIMD within a register"): the scans on the hot decode
//! path (format detection, a track's end sentinel, separators, digit runs) test whole words,
//! not single bytes.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// `b` in every byte.
const fn splat(b: u8) -> u64 {
    LO * b as u64
}

/// The next 8 bytes of `b` as a word, and the bytes after them.
pub(crate) fn next_word(b: &[u8]) -> Option<(u64, &[u8])> {
    b.split_first_chunk::<8>()
        .map(|(w, rest)| (u64::from_le_bytes(*w), rest))
}

/// The index of the first byte of `w` equal to `b`. The subtraction borrows only out of a byte
/// that was zero after the XOR, so the lowest flagged byte is always a true match (bytes
/// above it may be flagged falsely, which the caller never sees).
pub(crate) fn first_byte(w: u64, b: u8) -> Option<usize> {
    let v = w ^ splat(b);
    let flags = v.wrapping_sub(LO) & !v & HI;
    (flags != 0).then(|| flags.trailing_zeros() as usize / 8)
}

/// Whether any byte of `w` equals `b`.
pub(crate) fn has_byte(w: u64, b: u8) -> bool {
    first_byte(w, b).is_some()
}

/// The index of the first `b` in `hay`, a word at a time.
pub(crate) fn find(hay: &[u8], b: u8) -> Option<usize> {
    let mut rest = hay;
    while let Some((w, r)) = next_word(rest) {
        if let Some(k) = first_byte(w, b) {
            return Some(hay.len() - rest.len() + k);
        }
        rest = r;
    }
    let k = rest.iter().position(|&c| c == b)?;
    Some(hay.len() - rest.len() + k)
}

/// Whether every byte of `w` is in `lo..=hi` (an ASCII range: `hi` < 0x80). With the high bits
/// clear, adding 0x80 - lo or 0x7F - hi to a byte cannot carry into the next one.
pub(crate) fn all_in(w: u64, lo: u8, hi: u8) -> bool {
    debug_assert!(lo <= hi && hi < 0x80);
    w & HI == 0
        && w.wrapping_add(splat(0x80 - lo)) & HI == HI
        && w.wrapping_add(splat(0x7F - hi)) & HI == 0
}

/// Whether every byte of `b` is in `lo..=hi` (an ASCII range), a word at a time.
pub(crate) fn all_bytes_in(b: &[u8], lo: u8, hi: u8) -> bool {
    let mut rest = b;
    while let Some((w, r)) = next_word(rest) {
        if !all_in(w, lo, hi) {
            return false;
        }
        rest = r;
    }
    rest.iter().all(|c| (lo..=hi).contains(c))
}

/// The XOR of the 8 bytes of `w`.
pub(crate) fn xor_bytes(w: u64) -> u8 {
    let w = w ^ (w >> 32);
    let w = w ^ (w >> 16);
    (w ^ (w >> 8)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes near the edges the callers use, and any byte.
    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(vec![
                0x00, 0x01, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x21, 0x2F, 0x30, 0x3E, 0x3F, 0x40, 0x5E,
                0x5F, 0x60, 0x7C, 0x7E, 0x7F, 0x80, 0x81, 0xBF, 0xC0, 0xFF
            ]),
        ]
    }

    proptest! {
        #[test]
        fn words_agree_with_bytes(bytes in prop::array::uniform8(byte()), probe in byte()) {
            let (w, rest) = next_word(&bytes).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(has_byte(w, probe), bytes.contains(&probe));
            prop_assert_eq!(first_byte(w, probe), bytes.iter().position(|&b| b == probe));
            for (lo, hi) in [(0x20, 0x5F), (0x30, 0x3F), (0x20, 0x7E), (0x00, 0x7F)] {
                prop_assert_eq!(
                    all_in(w, lo, hi),
                    bytes.iter().all(|b| (lo..=hi).contains(b)),
                    "{:x?} {:x}..={:x}", bytes, lo, hi
                );
            }
            prop_assert_eq!(xor_bytes(w), bytes.iter().fold(0, |a, b| a ^ b));
        }
    }

    proptest! {
        #[test]
        fn find_agrees_with_position(hay in prop::collection::vec(byte(), 0..40), probe in byte()) {
            prop_assert_eq!(find(&hay, probe), hay.iter().position(|&b| b == probe));
            prop_assert_eq!(all_bytes_in(&hay, 0x30, 0x39), hay.iter().all(u8::is_ascii_digit));
        }
    }

    #[test]
    fn short_input_has_no_word() {
        assert!(next_word(&[1, 2, 3, 4, 5, 6, 7]).is_none());
        let (w, rest) = next_word(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
        assert_eq!((w, rest), (0x0807_0605_0403_0201, &[9u8][..]));
    }
}
