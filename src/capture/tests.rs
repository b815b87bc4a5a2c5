use proptest::prelude::*;

use super::*;
use crate::device::framer::tests_support::{IDTECH_ENHANCED, IDTECH_ORIGINAL, VIVO_EXAMPLE};

fn profiles() -> Profiles {
    Profiles::embedded().unwrap()
}

#[test]
fn parses_the_design_example() {
    let text = "# cardlane capture v1\n# profile: idtech-securemag-hid\n# transport: hid\n# source: synthetic; ANSI test BDK 0123456789ABCDEFFEDCBA9876543210\n+0ms hex 02D5 0080\n+9ms hex 1F37\n+1500ms text %B4111^TEST/CARD^2912101?;4111=2912101?\\r\n";
    let c = Capture::parse(text).unwrap();
    assert_eq!(c.headers.profile.as_deref(), Some("idtech-securemag-hid"));
    assert_eq!(c.headers.transport.as_deref(), Some("hid"));
    assert_eq!(
        c.headers.source.as_deref(),
        Some("synthetic; ANSI test BDK 0123456789ABCDEFFEDCBA9876543210")
    );
    assert_eq!(c.chunks.len(), 3);
    assert_eq!(c.chunks[0].bytes.as_slice(), &[0x02, 0xD5, 0x00, 0x80]);
    assert_eq!(c.chunks[1].delay, Duration::from_millis(9));
    assert_eq!(c.chunks[2].kind, ChunkKind::Text);
    assert_eq!(
        c.chunks[2].bytes.as_slice(),
        b"%B4111^TEST/CARD^2912101?;4111=2912101?\r"
    );
    let times: Vec<u128> = c.timed_chunks().iter().map(|c| c.at.as_millis()).collect();
    assert_eq!(times, [0, 9, 1509]);
}

#[test]
fn escapes_round_trip() {
    assert_eq!(
        escape_text(b"a\\b\r\n\x01\xFF "),
        "a\\\\b\\r\\n\\x01\\xFF\\x20"
    );
    let c =
        Capture::parse("# cardlane capture v1\n+0ms text a\\\\b\\r\\n\\x01\\xff\\x20\n").unwrap();
    assert_eq!(c.chunks[0].bytes.as_slice(), b"a\\b\r\n\x01\xFF ");
}

#[test]
fn broken_inputs_give_typed_errors_with_line_numbers() {
    let m = "# cardlane capture v1\n";
    let cases: Vec<(String, CaptureError)> = vec![
        (String::new(), CaptureError::NotACapture { line: 1 }),
        (
            "+0ms hex 00\n".into(),
            CaptureError::NotACapture { line: 1 },
        ),
        (
            format!("{m}0ms hex 00\n"),
            CaptureError::BadChunkLine { line: 2 },
        ),
        (format!("{m}+0ms\n"), CaptureError::BadChunkLine { line: 2 }),
        (
            format!("{m}+xms hex 00\n"),
            CaptureError::BadDelay { line: 2 },
        ),
        (
            format!("{m}+5s hex 00\n"),
            CaptureError::BadDelay { line: 2 },
        ),
        (
            format!("{m}+-5ms hex 00\n"),
            CaptureError::BadDelay { line: 2 },
        ),
        (
            format!("{m}+99999999999999999999999ms hex 00\n"),
            CaptureError::BadDelay { line: 2 },
        ),
        (
            format!("{m}+0ms bin 00\n"),
            CaptureError::BadKind { line: 2 },
        ),
        (
            format!("{m}\n+0ms hex 0\n"),
            CaptureError::BadHex { line: 3 },
        ),
        (
            format!("{m}+0ms hex GG\n"),
            CaptureError::BadHex { line: 2 },
        ),
        (
            format!("{m}+0ms text a\\q\n"),
            CaptureError::BadEscape { line: 2 },
        ),
        (
            format!("{m}+0ms text a\\x4\n"),
            CaptureError::BadEscape { line: 2 },
        ),
        (
            format!("{m}+0ms text a\\\n"),
            CaptureError::BadEscape { line: 2 },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Capture::parse(&text), Err(want.clone()), "{text:?}");
        // Messages never echo the payload.
        assert!(!want.to_string().contains("GG"));
    }
}

#[test]
fn frames_use_the_profile_header() {
    let frame = hex::decode(IDTECH_ENHANCED).unwrap();
    let mut report = frame.clone();
    report.resize(537, 0);
    let mut text =
        String::from("# cardlane capture v1\n# profile: idtech-securemag-hid\n# transport: hid\n");
    for (i, piece) in report.chunks(200).enumerate() {
        text.push_str(&format!("+{}ms hex {}\n", i, hex::encode_upper(piece)));
    }
    let c = Capture::parse(&text).unwrap();
    let f = frames(&c, &profiles()).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].bytes.as_slice(), frame.as_slice());
    // Delays +0, +1, +2 ms: the frame completes in the second chunk, at 1 ms.
    assert_eq!(f[0].at, Duration::from_millis(1));

    let bad = Capture::parse("# cardlane capture v1\n# profile: nope\n").unwrap();
    assert_eq!(
        frames(&bad, &profiles()),
        Err(CaptureError::UnknownProfile("nope".into()))
    );
}

#[test]
fn frames_without_profile_detect_binary_and_text() {
    let (v, o) = (VIVO_EXAMPLE, IDTECH_ORIGINAL);
    let text = format!(
        "# cardlane capture v1\n# transport: serial\n+0ms hex DEADBEEF02\n+3ms hex {}\n+1ms hex {}\n+40ms hex {}\n",
        &v[..16], &v[16..], o
    );
    let f = frames(&Capture::parse(&text).unwrap(), &profiles()).unwrap();
    let got: Vec<String> = f
        .iter()
        .map(|f| hex::encode_upper(f.bytes.as_slice()))
        .collect();
    assert_eq!(got, [v, o]);

    let kb = "# cardlane capture v1\n# transport: stdin\n+0ms text %B4111^A/B^2912?\n+5ms text ;4111=2912?\\r\n+900ms text %E?;E?\\r\n";
    let f = frames(&Capture::parse(kb).unwrap(), &profiles()).unwrap();
    let got: Vec<&[u8]> = f.iter().map(|f| f.bytes.as_slice()).collect();
    assert_eq!(got, [&b"%B4111^A/B^2912?;4111=2912?"[..], &b"%E?;E?"[..]]);
}

#[test]
fn recorder_writes_what_parse_reads() {
    let headers = Headers {
        profile: Some("idtech-serial".into()),
        transport: Some("serial".into()),
        source: Some("pty\nwith newline".into()),
        other: vec![("device".into(), "serial:/dev/pts/3".into())],
    };
    let mut r = Recorder::new(Vec::new(), &headers).unwrap();
    r.record(&Chunk::new(
        vec![2, 0, 1],
        Duration::from_millis(10),
        ChunkKind::Hex,
    ))
    .unwrap();
    r.record(&Chunk::new(
        b"ab \r".to_vec(),
        Duration::from_millis(35),
        ChunkKind::Text,
    ))
    .unwrap();
    let text = String::from_utf8(r.into_inner()).unwrap();
    assert_eq!(
        text,
        "# cardlane capture v1\n# profile: idtech-serial\n# transport: serial\n# source: pty with newline\n# device: serial:/dev/pts/3\n+0ms hex 020001\n+25ms text ab \\r\n"
    );
    let c = Capture::parse(&text).unwrap();
    assert_eq!(c.to_text(), text);
    assert_eq!(c.headers.other, headers.other);
}

fn arb_chunk() -> impl Strategy<Value = (u64, bool, Vec<u8>)> {
    (
        0u64..100_000,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
}

proptest! {
    #[test]
    fn write_then_parse_round_trips(chunks in proptest::collection::vec(arb_chunk(), 0..10)) {
        let c = Capture {
            headers: Headers { profile: Some("p".into()), transport: None, source: Some("s".into()), other: vec![] },
            chunks: chunks.into_iter().map(|(d, text, bytes)| CaptureChunk {
                delay: Duration::from_millis(d),
                kind: if text { ChunkKind::Text } else { ChunkKind::Hex },
                bytes: Zeroizing::new(bytes),
            }).collect(),
        };
        let parsed = Capture::parse(&c.to_text());
        prop_assert_eq!(parsed, Ok(c));
    }

    #[test]
    fn parse_never_panics(s in "\\PC*", lines in proptest::collection::vec("[+#a-z0-9 \\\\]{0,30}", 0..8)) {
        let _ = Capture::parse(&s);
        let text = format!("{MAGIC}\n{}", lines.join("\n"));
        if let Ok(c) = Capture::parse(&text) {
            let _ = frames(&c, &Profiles::default());
        }
    }
}

#[test]
fn an_unknown_version_is_refused_as_such() {
    for (text, found) in [
        ("# cardlane capture v2\n+0ms hex 0102\n", "v2"),
        ("# cardlane capture v10 extra\n", "v10"),
        ("# cardlane capture\n+0ms hex 0102\n", "(none)"),
    ] {
        let e = Capture::parse(text).unwrap_err();
        assert_eq!(
            e,
            CaptureError::UnsupportedVersion {
                found: found.to_string()
            },
            "{text:?}"
        );
        assert_eq!(e.code(), "capture-version");
    }
    // Not a capture at all stays that.
    assert_eq!(
        Capture::parse("%B4111^X^29?\n").unwrap_err().code(),
        "not-a-capture"
    );
    assert!(is_capture(b"# cardlane capture v7\n"));
    assert!(!is_capture(b"# cardlane\n"));
}
