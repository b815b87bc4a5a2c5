use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::device::profile::Profiles;

/// ID TECH UniMag II enhanced frame from the vendor manual (shared/samples/04…): its LRC BB and
/// checksum F9 are the reader's own, so they check the STX validation independently.
pub(crate) const IDTECH_ENHANCED: &str = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";

/// The NEO 2 guide's ViVOtech2 example with its published CRC 32E6 (reader-formats.md §2.5).
pub(crate) const VIVO_EXAMPLE: &str = "5669564F74656368320004000005DFED11010032E6";

/// An ID TECH original-format frame built in Python (`python3`: data = 00 02 00 18 00 +
/// ";411111******1111=****?*" + 24 cipher bytes + KSN; LRC = XOR, sum = 8-bit sum), LRC BF, sum 65.
pub(crate) const IDTECH_ORIGINAL: &str = "023F0000020018003B3431313131312A2A2A2A2A2A313131313D2A2A2A2A3F2A00112233445566770011223344556677001122334455667762994900000000000001BF6503";

fn b(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap_or_default()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn stream() -> Framer {
    Framer::new(Framing::Stream, FramerOptions::default(), "test")
}

fn all_bytes(frames: &[Frame]) -> Vec<Vec<u8>> {
    frames.iter().map(|f| f.bytes.to_vec()).collect()
}

#[test]
fn crc_matches_published_check_values() {
    // CRC-16/CCITT-FALSE catalogue check value for "123456789" is 0x29B1.
    assert_eq!(crc16_ccitt_false(b"123456789"), 0x29B1);
    let v = b(VIVO_EXAMPLE);
    assert_eq!(crc16_ccitt_false(&v[..v.len() - 2]), 0x32E6);
}

#[test]
fn idtech_hid_report_zero_filled_gives_the_frame() {
    let frame = b(IDTECH_ENHANCED);
    let mut report = frame.clone();
    report.resize(537, 0);
    let mut f = Framer::new(Framing::IdtechReport, FramerOptions::default(), "hid");
    let out = f.push(&report, ms(5));
    assert_eq!(all_bytes(&out), vec![frame]);
    assert_eq!(out[0].at, ms(5));
    assert_eq!(f.stats().garbage_bytes, 0, "zero fill is not garbage");
}

#[test]
fn partial_hid_reads_are_reassembled() {
    // 8-byte reads of a 537-byte report (qzind/tray #957).
    let frame = b(IDTECH_ENHANCED);
    let mut report = frame.clone();
    report.resize(537, 0);
    let mut f = Framer::new(Framing::IdtechReport, FramerOptions::default(), "hid");
    let mut out = Vec::new();
    for (i, c) in report.chunks(8).enumerate() {
        out.extend(f.push(c, ms(i as u64)));
    }
    assert_eq!(all_bytes(&out), vec![frame]);
}

#[test]
fn continuation_reports_with_report_id_carry_vivotech2() {
    let frame = b(VIVO_EXAMPLE);
    let opts = FramerOptions {
        report_id: 2,
        ..FramerOptions::default()
    };
    let mut f = Framer::new(Framing::ContinuationReport, opts, "hid");
    // Two 64-byte reports: an STX frame then the ViVOtech2 frame, each zero-filled.
    let stx = b(IDTECH_ORIGINAL);
    let mut out = Vec::new();
    for payload in [&stx, &frame] {
        for piece in payload.chunks(63) {
            let mut report = vec![2u8];
            report.extend_from_slice(piece);
            report.resize(64, 0);
            out.extend(f.push(&report, ms(1)));
        }
    }
    assert_eq!(all_bytes(&out), vec![stx, frame]);
}

#[test]
fn serial_split_with_garbage_between() {
    let mut wire = b"\x02\xFF\x13noise\x03".to_vec();
    wire.extend(b(VIVO_EXAMPLE));
    wire.extend(b"ViVOtech"); // a truncated header, then junk
    wire.extend([0x55, 0xAA, 0x02, 0x00]);
    wire.extend(b(IDTECH_ORIGINAL));
    let mut f = stream();
    let mut out = Vec::new();
    for (i, c) in wire.chunks(5).enumerate() {
        out.extend(f.push(c, ms(i as u64)));
    }
    out.extend(f.finish(ms(999)));
    assert_eq!(all_bytes(&out), vec![b(VIVO_EXAMPLE), b(IDTECH_ORIGINAL)]);
    assert!(f.stats().garbage_bytes > 0);
}

#[test]
fn bad_checksum_frame_is_skipped_and_next_frame_kept() {
    let mut bad = b(IDTECH_ORIGINAL);
    let n = bad.len();
    bad[n - 2] ^= 1; // checksum
    let mut wire = bad;
    wire.extend(b(IDTECH_ORIGINAL));
    let mut f = stream();
    let out = f.push(&wire, ms(0));
    assert_eq!(all_bytes(&out), vec![b(IDTECH_ORIGINAL)]);
}

#[test]
fn bad_crc_vivo_frame_is_skipped() {
    let mut wire = b(VIVO_EXAMPLE);
    let n = wire.len();
    wire[n - 1] ^= 0x40;
    wire.extend(b(VIVO_EXAMPLE));
    let out = stream().push(&wire, ms(0));
    assert_eq!(out.len(), 1);
}

#[test]
fn stall_abandons_a_bogus_length_and_recovers_the_frame_behind_it() {
    // Garbage claiming a 4000-byte frame swallows a good frame until the stream stalls.
    let mut wire = vec![0x02, 0xA0, 0x0F];
    wire.extend(b(IDTECH_ORIGINAL));
    let mut f = stream();
    assert!(f.push(&wire, ms(0)).is_empty());
    assert_eq!(f.deadline(), Some(ms(1000)));
    assert!(f.poll(ms(999)).is_empty());
    let out = f.poll(ms(1000));
    assert_eq!(all_bytes(&out), vec![b(IDTECH_ORIGINAL)]);
    assert_eq!(f.deadline(), None);
}

#[test]
fn magtek_reports_are_one_frame_each_with_report_id_stripped() {
    let opts = FramerOptions {
        report_id: 1,
        report_size: 888,
        ..FramerOptions::default()
    };
    let mut f = Framer::new(Framing::MagtekReport, opts, "hid");
    let mut report = vec![1u8];
    report.extend((0..888).map(|i| (i % 251) as u8));
    let out = f.push(&report, ms(0));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].bytes.as_slice(), &report[1..]);
    // Partial reads of a report without id byte reassemble too.
    let body = &report[1..];
    let mut out = Vec::new();
    for c in body.chunks(100) {
        out.extend(f.push(c, ms(1)));
    }
    assert_eq!(out.len(), 1);
    // A partial report left past the stall time is dropped.
    assert!(f.push(&body[..10], ms(2)).is_empty());
    f.poll(ms(5000));
    assert_eq!(f.stats().dropped_partials, 1);
}

#[test]
fn keyboard_text_up_to_cr_and_inter_char_timeout() {
    let opts = FramerOptions {
        prefix: b"@@".to_vec(),
        char_timeout: ms(100),
        ..FramerOptions::default()
    };
    let mut f = Framer::new(Framing::Text, opts, "kbd");
    let mut out = f.push(b"@@%B4111^X/Y^29?", ms(0));
    out.extend(f.push(b";4111=29?\r\n", ms(10)));
    assert_eq!(all_bytes(&out), vec![b"%B4111^X/Y^29?;4111=29?".to_vec()]);
    // No CR: the pause ends the line.
    assert!(f.push(b";5454=30?", ms(20)).is_empty());
    assert_eq!(f.deadline(), Some(ms(120)));
    assert_eq!(all_bytes(&f.poll(ms(120))), vec![b";5454=30?".to_vec()]);
    // A pause inside pushed input also splits (replay timing).
    let mut out = f.push(b";1=1?", ms(200));
    out.extend(f.push(b";2=2?\r", ms(400)));
    assert_eq!(all_bytes(&out), vec![b";1=1?".to_vec(), b";2=2?".to_vec()]);
}

#[test]
fn idynamo_block_padding_is_dropped() {
    let p = Profiles::embedded().unwrap();
    let mut f = Framer::for_profile(p.get("magtek-idynamo-kb").unwrap(), "kbd");
    // A short message in a block padded with `x` after the CR, then the next message.
    let mut block = b"%B5452300551227189^HOGAN/PAUL^?;5452300551227189=?|0600|AB12|".to_vec();
    block.push(b'\r');
    block.resize(500, b'x');
    let mut out = f.push(&block, ms(0));
    out.extend(f.push(b";1=2?|0600|\r", ms(10)));
    let got = all_bytes(&out);
    assert_eq!(got.len(), 2);
    assert!(got[0].ends_with(b"|AB12|"));
    assert_eq!(got[1], b";1=2?|0600|".to_vec());
}

#[test]
fn magtek_partial_reads_with_report_id_strip_only_the_first_byte() {
    let opts = FramerOptions {
        report_id: 1,
        report_size: 10,
        ..FramerOptions::default()
    };
    let mut f = Framer::new(Framing::MagtekReport, opts, "hid");
    // Second piece starts with 0x01 (a track status "error" bit): it is data, not an id.
    let mut out = f.push(&[1, 9, 9, 9, 9], ms(0));
    out.extend(f.push(&[1, 2, 3, 4, 5, 6], ms(1)));
    assert_eq!(all_bytes(&out), vec![vec![9, 9, 9, 9, 1, 2, 3, 4, 5, 6]]);
}

#[test]
fn custom_suffix_ends_a_message() {
    let opts = FramerOptions {
        suffix: b"#\r".to_vec(),
        ..FramerOptions::default()
    };
    let mut f = Framer::new(Framing::Text, opts, "kbd");
    let out = f.push(b"abc#def#", ms(0));
    assert_eq!(all_bytes(&out), vec![b"abc".to_vec(), b"def".to_vec()]);
}

#[test]
fn detect_framing_from_bytes() {
    assert_eq!(detect_framing(&b(IDTECH_ORIGINAL)), Framing::Stream);
    assert_eq!(detect_framing(b"ViVOtech2"), Framing::Stream);
    assert_eq!(detect_framing(b"%B4111^A/B^29?\r"), Framing::Text);
}

#[test]
fn frame_debug_is_redacted() {
    let f = Frame::new(b";4111111111111111=2912?".to_vec(), ms(1), "x");
    let s = format!("{f:?}");
    assert!(!s.contains("4111"), "{s}");
}

/// Splits `wire` at the given cut points (sorted, deduplicated, in range).
fn split(wire: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for c in cuts.into_iter().chain([wire.len()]) {
        out.push(wire[last..c].to_vec());
        last = c;
    }
    out
}

proptest! {
    #[test]
    fn arbitrary_bytes_and_chunks_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        framing in prop_oneof![
            Just(Framing::Stream), Just(Framing::MagtekReport), Just(Framing::Text),
            Just(Framing::ContinuationReport), Just(Framing::MmsPacket),
            Just(Framing::MagtekV5Report)
        ],
    ) {
        let opts = FramerOptions { report_size: 64, report_id: 1, ..FramerOptions::default() };
        let mut f = Framer::new(framing, opts, "p");
        for (i, c) in split(&data, &cuts).iter().enumerate() {
            f.push(c, ms(i as u64 * 300));
            f.poll(ms(i as u64 * 300 + 100));
        }
        f.finish(ms(1_000_000));
    }

    #[test]
    fn good_frame_after_garbage_survives_any_chunking(
        garbage in proptest::collection::vec(any::<u8>(), 0..300),
        which in 0usize..3,
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let good = [b(IDTECH_ENHANCED), b(VIVO_EXAMPLE), b(IDTECH_ORIGINAL)][which].clone();
        let mut wire = garbage.clone();
        wire.extend_from_slice(&good);
        let mut f = stream();
        let mut out = Vec::new();
        for c in split(&wire, &cuts) {
            out.extend(f.push(&c, ms(0)));
        }
        out.extend(f.finish(ms(0)));
        let got = all_bytes(&out);
        prop_assert!(got.contains(&good), "good frame lost");
        // The good frame is the last thing emitted: nothing after it is invented.
        prop_assert_eq!(got.last(), Some(&good));
    }

    #[test]
    fn live_stall_releases_the_good_frame_without_finish(
        garbage in proptest::collection::vec(any::<u8>(), 1..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        // Garbage arrives, the line goes quiet past the stall time, then a frame arrives.
        let good = b(IDTECH_ORIGINAL);
        let mut f = stream();
        let mut out = f.push(&garbage, ms(0));
        for c in split(&good, &cuts) {
            out.extend(f.push(&c, ms(5000)));
        }
        let got = all_bytes(&out);
        prop_assert_eq!(got.last(), Some(&good));
    }

    #[test]
    fn two_frames_back_to_back_any_chunking(cuts in proptest::collection::vec(any::<usize>(), 0..30)) {
        let mut wire = b(VIVO_EXAMPLE);
        wire.extend(b(IDTECH_ENHANCED));
        let mut f = stream();
        let mut out = Vec::new();
        for c in split(&wire, &cuts) {
            out.extend(f.push(&c, ms(0)));
        }
        // No finish needed: complete frames come out as soon as their last byte arrives.
        prop_assert_eq!(all_bytes(&out), vec![b(VIVO_EXAMPLE), b(IDTECH_ENHANCED)]);
    }
}

/// A damaged frame used to vanish as garbage: now each kind of bad read is counted with the
/// reason code decode gives it, and the good frame behind it still comes out.
#[test]
fn bad_reads_are_counted_by_reason() {
    let good = b(IDTECH_ORIGINAL);
    let n = good.len();
    let mut bad_lrc = good.clone();
    bad_lrc[n - 3] ^= 0x10;
    let mut bad_sum = good.clone();
    bad_sum[n - 2] ^= 0x01;
    let mut bad_crc = b(VIVO_EXAMPLE);
    let m = bad_crc.len();
    bad_crc[m - 1] ^= 0x40;
    let mut wire = Vec::new();
    for part in [&bad_lrc, &bad_sum, &bad_crc, &good] {
        wire.extend_from_slice(part);
    }
    let mut f = stream();
    let before = f.stats();
    let out = f.push(&wire, ms(0));
    assert_eq!(all_bytes(&out), vec![good]);
    let s = f.stats();
    assert_eq!((s.bad_lrc, s.bad_checksum, s.bad_crc), (1, 1, 1));
    assert_eq!(
        s.bad_reads_since(&before),
        ["bad-lrc", "bad-checksum", "bad-crc"]
    );
    assert!(f.stats().bad_reads_since(&s).is_empty());
}

/// MagneSafe V5 input reports: a swipe (id 1) read in two pieces, then a notification (id 2)
/// with a container in two parts; a status notification and a stray report give nothing.
#[test]
fn magtek_v5_reports_swipes_and_notification_containers() {
    use crate::protocol::magtek_v5::notify::{reports, ARQC, STATUS};
    let opts = FramerOptions {
        report_id: 1,
        report_size: 888,
        ..FramerOptions::default()
    };
    let mut f = Framer::new(Framing::MagtekV5Report, opts, "hid");
    let mut swipe = vec![0x01];
    swipe.extend((0..888).map(|i| (i % 251) as u8 | 1));
    let ms = Duration::from_millis;
    assert!(f.push(&swipe[..300], ms(0)).is_empty());
    let got = f.push(&swipe[300..], ms(1));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bytes.as_slice(), &swipe[1..]);
    let container = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/decode/good/magtek_emv_arqc_contact.hex"
    ))
    .unwrap();
    let hex: String = container.lines().filter(|l| !l.starts_with('#')).collect();
    let container = hex::decode(hex.trim()).unwrap();
    for r in reports(STATUS, &[1, 0, 0], 55, 64) {
        assert!(f.push(&r, ms(2)).is_empty());
    }
    assert!(f.push(&[0x07, 1, 2, 3], ms(3)).is_empty());
    let mut frames = Vec::new();
    for r in reports(ARQC, &container, 55, 64) {
        frames.extend(f.push(&r, ms(4)));
    }
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].bytes.as_slice(), &container[..]);
    assert_eq!(f.stats().garbage_bytes, 4);
}

/// Epson `FS a` replies (micr.md §2): `0x5F`, a status byte of any value (here CR and NUL,
/// which would end a text line), data, NUL.
#[test]
fn epson_replies_frame_whole_whatever_their_status_byte() {
    let mut f = Framer::new(Framing::EpsonMicr, FramerOptions::default(), "pty");
    let good = b"\x5F\x00A122000218A 1234 5678 9C 1321\x00".to_vec();
    let cr = b"\x5F\x0DA122000218A 12C\x00".to_vec();
    let abnormal = b"\x5F\x20\x00".to_vec();
    let mut stream = b"\x00\r\nxx".to_vec();
    stream.extend_from_slice(&good);
    stream.extend_from_slice(&cr);
    stream.extend_from_slice(&abnormal);
    let mut frames = Vec::new();
    for (i, piece) in stream.chunks(3).enumerate() {
        frames.extend(f.push(piece, ms(i as u64)));
    }
    assert_eq!(all_bytes(&frames), vec![good, cr, abnormal]);
    // CR, LF and `x x` before the first header are skipped (NULs are line idle, not counted).
    assert_eq!(f.stats().garbage_bytes, 4);
    assert_eq!(f.deadline(), None);

    // A reply cut off: dropped at the stall time-out, and the next one still frames.
    let mut f = Framer::new(Framing::EpsonMicr, FramerOptions::default(), "pty");
    assert!(f.push(b"\x5F\x00A1220", ms(0)).is_empty());
    assert_eq!(f.deadline(), Some(ms(1000)));
    assert!(f.poll(ms(1000)).is_empty());
    assert_eq!(f.stats().dropped_partials, 1);
    assert_eq!(f.push(b"\x5F\x20\x00", ms(1001)).len(), 1);
    // One far longer than any MICR line is dropped, not held.
    let mut f = Framer::new(Framing::EpsonMicr, FramerOptions::default(), "pty");
    let mut long = vec![0x5F, 0];
    long.resize(600, b'1');
    assert!(f.push(&long, ms(0)).is_empty());
    assert_eq!(f.stats().dropped_partials, 1);
    assert!(f.finish(ms(1)).is_empty());
}
