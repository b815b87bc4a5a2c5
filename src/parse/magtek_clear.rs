//! The non-encrypting MagTek HID report (SureSwipe / Mini HID, 0801:0002): 337 bytes =
//! three decode statuses (bit 0 = error), three track lengths, the card encode type, then three
//! zero-filled 110-byte clear track fields (reader-formats.md §3.1 "older non-encrypting HID
//! readers use 110-byte track fields"). Nothing is encrypted, so the read carries clear tracks.
use super::tracks::{mask_track, scan_tracks};
use super::ParseError;
use crate::card::{CardRead, EntryMode, Format, SecretText, TrackInfo, TrackStatus};

/// Size of the report without a report ID.
pub const CLEAR_HID_LEN: usize = 337;
/// One clear track field.
pub const CLEAR_FIELD: usize = 110;
const HEAD: usize = 7;

/// The report without its optional leading report ID, when the size fits.
fn body(b: &[u8]) -> Option<&[u8]> {
    match b.len() {
        CLEAR_HID_LEN => Some(b),
        // A numbered report: one ID byte in front.
        n if n == CLEAR_HID_LEN + 1 => b.get(1..),
        _ => None,
    }
}

/// Whether `b` is a clear 337-byte report: statuses 0/1, lengths up to 110, encode type up to 7,
/// and printable track text in each field. Ciphertext (a cut MagneSafe V5 report, which has the
/// same header) fails the last test, so such input still reports `truncated` elsewhere.
pub fn looks_like_clear_hid(b: &[u8]) -> bool {
    let Some(r) = body(b) else {
        return false;
    };
    let head_ok = r.iter().take(3).all(|&s| s <= 1)
        && r.iter()
            .skip(3)
            .take(3)
            .all(|&l| usize::from(l) <= CLEAR_FIELD)
        && r.get(6).is_some_and(|&t| t <= 7);
    head_ok
        && (0..3).all(|i| {
            let len = usize::from(r.get(3 + i).copied().unwrap_or(0));
            let at = HEAD + CLEAR_FIELD * i;
            r.get(at..at + len)
                .is_some_and(|t| t.iter().all(|c| (0x20..0x7F).contains(c)))
        })
}

/// Track text as the reader put it in its field, with sentinels added when the reader left
/// them out (firmware differs), checked by the ISO 7813 scanner.
fn track_text(number: u8, data: &[u8]) -> Result<SecretText, ParseError> {
    let starts = matches!(data.first(), Some(b'%' | b';' | b'+'));
    let owned;
    let text: &[u8] = if starts {
        data
    } else {
        let (ss, es) = match number {
            1 => (b'%', b'?'),
            2 => (b';', b'?'),
            // `+` marks Track 3 for the scanner even when no Track 2 precedes it.
            _ => (b'+', b'?'),
        };
        let mut v = Vec::with_capacity(data.len() + 2);
        v.push(ss);
        v.extend_from_slice(data);
        v.push(es);
        owned = zeroize::Zeroizing::new(v);
        owned.as_slice()
    };
    let mut found = scan_tracks(text)?;
    match found.len() {
        1 => {}
        0 => return Err(ParseError::BadTrack("empty track field")),
        _ => return Err(ParseError::BadTrack("several tracks in one field")),
    }
    let t = found.remove(0);
    // Track 3 written `;…?` in its own field scans as Track 2; the field says which it is.
    let field_matches = t.number == number || (number == 3 && t.number == 2);
    if !field_matches || t.error {
        return Err(ParseError::BadTrack("track field holds another track"));
    }
    Ok(t.text)
}

/// Decodes a 337-byte clear MagTek HID report (report ID byte optional).
pub fn decode_clear_hid(input: &[u8]) -> Result<CardRead, ParseError> {
    let r = body(input).ok_or(if input.len() < CLEAR_HID_LEN {
        ParseError::Truncated("MagTek clear HID report")
    } else {
        ParseError::BadLength("MagTek clear HID report size")
    })?;
    let byte = |i: usize| r.get(i).copied().unwrap_or(0);
    let mut read = CardRead::new(Format::MagtekHid);
    read.entry_mode = Some(EntryMode::Swipe);
    let mut clear: [Option<SecretText>; 3] = Default::default();
    for (i, (info, slot)) in read.tracks.iter_mut().zip(clear.iter_mut()).enumerate() {
        let len = usize::from(byte(3 + i));
        if len > CLEAR_FIELD {
            return Err(ParseError::BadLength("MagTek clear track length over 110"));
        }
        let at = HEAD + CLEAR_FIELD * i;
        let data = r
            .get(at..at + len)
            .ok_or(ParseError::Truncated("MagTek clear track field"))?;
        if byte(i) & 1 != 0 {
            // The reader flagged a bad read: no card data from this track.
            *info = TrackInfo {
                status: TrackStatus::Error,
                masked: None,
            };
        } else if len > 0 {
            let number = i as u8 + 1;
            let text = track_text(number, data)?;
            *info = TrackInfo {
                status: TrackStatus::Ok,
                masked: Some(mask_track(text.expose())),
            };
            *slot = Some(text);
        }
    }
    read.fill_from_clear(&clear);
    read.clear = clear;
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "%B4111111111111111^TEST/CARD^2912101123?";
    const T2: &str = ";4111111111111111=29121011234?";

    /// The layout built by hand, independently of `cardlane synth`.
    fn report(status: [u8; 3], tracks: [&[u8]; 3]) -> Vec<u8> {
        let mut r = vec![0u8; 337];
        for i in 0..3 {
            r[i] = status[i];
            r[3 + i] = tracks[i].len() as u8;
            let at = 7 + 110 * i;
            r[at..at + tracks[i].len()].copy_from_slice(tracks[i]);
        }
        r
    }

    #[test]
    fn decodes_two_clear_tracks() {
        let r = report([0; 3], [T1.as_bytes(), T2.as_bytes(), b""]);
        assert!(looks_like_clear_hid(&r));
        let read = decode_clear_hid(&r).unwrap();
        assert_eq!(read.format, Format::MagtekHid);
        assert!(!read.encrypted);
        assert!(read.ksn.is_none());
        assert_eq!(read.last4.as_deref(), Some("1111"));
        assert_eq!(read.expiry.as_deref(), Some("2912"));
        assert_eq!(read.service_code.as_deref(), Some("101"));
        assert_eq!(read.cardholder_name.as_deref(), Some("TEST/CARD"));
        assert_eq!(read.tracks[0].status, TrackStatus::Ok);
        assert_eq!(read.tracks[1].status, TrackStatus::Ok);
        assert_eq!(read.tracks[2].status, TrackStatus::Absent);
        assert_eq!(read.clear[1].as_ref().map(|t| t.expose()), Some(T2));
        // Masked form keeps first 6 / last 4 only.
        let m = read.tracks[1].masked.as_deref().unwrap();
        assert!(m.starts_with(";411111") && !m.contains("4111111111111111"));
    }

    #[test]
    fn through_decode_frame_and_with_report_id() {
        let r = report([0; 3], [T1.as_bytes(), T2.as_bytes(), b""]);
        let read = crate::parse::decode_frame(&r).unwrap();
        assert_eq!(read.format.as_str(), "magtek-hid");
        assert_eq!(read.last4.as_deref(), Some("1111"));
        let mut numbered = vec![0x02];
        numbered.extend_from_slice(&r);
        assert!(looks_like_clear_hid(&numbered));
        assert_eq!(
            decode_clear_hid(&numbered).unwrap().expiry.as_deref(),
            Some("2912")
        );
    }

    #[test]
    fn fields_without_sentinels_and_track3() {
        // Some firmware leaves the sentinels out; Track 3 alone in its own field.
        let r = report(
            [0; 3],
            [
                b"B4111111111111111^TEST/CARD^2912101123",
                b"",
                b";011234567890123456789=1234?",
            ],
        );
        let read = decode_clear_hid(&r).unwrap();
        assert_eq!(read.last4.as_deref(), Some("1111"));
        assert_eq!(read.cardholder_name.as_deref(), Some("TEST/CARD"));
        assert_eq!(
            read.clear[0].as_ref().map(|t| t.expose()),
            Some("%B4111111111111111^TEST/CARD^2912101123?")
        );
        assert_eq!(read.tracks[2].status, TrackStatus::Ok);
        assert_eq!(read.tracks[1].status, TrackStatus::Absent);
    }

    #[test]
    fn bad_read_status_and_lrc() {
        // Track 1 flagged bad: status error, no name; Track 2 with its LRC. '0' was derived
        // once with python3: XOR of (c - 0x30) & 0xF over the track, plus 0x30.
        let r = report([1, 0, 0], [b"", b";4111111111111111=29121011234?0", b""]);
        let read = decode_clear_hid(&r).unwrap();
        assert_eq!(read.tracks[0].status, TrackStatus::Error);
        assert_eq!(read.cardholder_name, None);
        assert_eq!(read.last4.as_deref(), Some("1111"));
    }

    #[test]
    fn broken_reports_give_typed_errors() {
        let good = report([0; 3], [T1.as_bytes(), T2.as_bytes(), b""]);
        // Length past the field.
        let mut r = good.clone();
        r[4] = 111;
        assert!(!looks_like_clear_hid(&r));
        assert_eq!(decode_clear_hid(&r).unwrap_err().code(), "bad-length");
        // Cut short.
        assert_eq!(
            decode_clear_hid(&good[..300]).unwrap_err().code(),
            "truncated"
        );
        // Wrong LRC after the end sentinel.
        let r = report([0; 3], [b"", b";4111111111111111=29121011234?7", b""]);
        assert_eq!(decode_clear_hid(&r).unwrap_err().code(), "bad-lrc");
        // Track 1 text in the Track 2 field.
        let r = report([0; 3], [b"", T1.as_bytes(), b""]);
        assert_eq!(decode_clear_hid(&r).unwrap_err().code(), "bad-track");
        // Ciphertext in the fields is not this layout: a cut V5 report stays `truncated`.
        let mut r = good.clone();
        r[7] = 0x9A;
        assert!(!looks_like_clear_hid(&r));
        assert_eq!(
            crate::parse::decode_frame(&r).unwrap_err().code(),
            "truncated"
        );
    }

    #[test]
    fn errors_do_not_echo_the_pan() {
        let r = report([0; 3], [b"", b";4111111111111111=2912101123", b""]);
        let e = decode_clear_hid(&r).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("4111111111"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = looks_like_clear_hid(&bytes);
            let _ = decode_clear_hid(&bytes);
        }

        #[test]
        fn never_panics_on_plausible_headers(
            status in proptest::array::uniform3(0u8..3),
            lens in proptest::array::uniform3(0u8..120),
            body in proptest::collection::vec(0x20u8..0x7F, 330),
        ) {
            let mut r = vec![0u8; 337];
            r[..3].copy_from_slice(&status);
            r[3..6].copy_from_slice(&lens);
            r[7..].copy_from_slice(&body);
            let _ = decode_clear_hid(&r);
        }

        #[test]
        fn round_trip(
            pan in "4[0-9]{15}",
            name in "[A-Z]{1,10}/[A-Z]{1,10}",
            exp in "[0-9]{4}",
            disc in "[0-9]{0,8}",
        ) {
            let t1 = format!("%B{pan}^{name}^{exp}101{disc}?");
            let t2 = format!(";{pan}={exp}101{disc}?");
            let r = report([0; 3], [t1.as_bytes(), t2.as_bytes(), b""]);
            let read = decode_clear_hid(&r).unwrap();
            proptest::prop_assert_eq!(read.last4.as_deref(), Some(&pan[12..]));
            proptest::prop_assert_eq!(read.expiry.as_deref(), Some(exp.as_str()));
            proptest::prop_assert_eq!(read.cardholder_name.as_deref(), Some(name.as_str()));
            proptest::prop_assert_eq!(read.clear[1].as_ref().map(|t| t.expose()), Some(t2.as_str()));
        }
    }
}
