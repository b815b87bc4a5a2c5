use super::*;

fn embedded() -> Profiles {
    match Profiles::embedded() {
        Ok(p) => p,
        Err(e) => panic!("embedded profiles invalid: {e}"),
    }
}

#[test]
fn embedded_profiles_load_and_cover_the_issue_list() {
    let p = embedded();
    assert!(p.len() >= 12);
    for id in [
        "idtech-securemag-hid",
        "idtech-securemag-kb",
        "idtech-secured-hid",
        "idtech-sredkey2-hid",
        "idtech-augusta-hid",
        "idtech-augusta-s-hid",
        "idtech-vp3300-hid",
        "idtech-vp3350-hid",
        "idtech-serial",
        "magtek-dynamag-hid",
        "magtek-dynamag-kb",
        "magtek-edynamo-hid",
        "magtek-idynamo-kb",
        "generic-keyboard-wedge",
    ] {
        assert!(p.get(id).is_some(), "missing {id}");
    }
}

#[test]
fn every_file_in_devices_is_embedded() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("devices");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    on_disk.sort();
    let mut embedded: Vec<String> = EMBEDDED.iter().map(|(f, _)| f.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
    // And the directory loads to the same set.
    assert_eq!(Profiles::load_dir(&dir), Ok(self::embedded()));
}

#[test]
fn udev_rules_cover_every_profiled_vendor() {
    let rules = include_str!("../../../devices/99-cardlane.rules");
    for vid in embedded().vendor_ids() {
        let attr = format!("ATTRS{{idVendor}}==\"{vid:04x}\"");
        for subsystem in [
            "SUBSYSTEM==\"hidraw\"",
            "SUBSYSTEM==\"input\"",
            "SUBSYSTEM==\"tty\"",
        ] {
            assert!(
                rules
                    .lines()
                    .any(|l| l.contains(&attr) && l.contains(subsystem)),
                "no {subsystem} rule for {vid:04x}"
            );
        }
    }
}

#[test]
fn unknown_key_names_file_and_key() {
    let text = "id = \"x\"\nname = \"n\"\nvendor = \"v\"\ntransport = \"keyboard\"\nframing = \"text\"\nkey_usage = \"none\"\ntrack_data = \"clear-tracks\"\n\n[wedge]\nsufix = \"\\r\"\n";
    let err = Profile::from_toml("my.toml", text).unwrap_err();
    match &err {
        ProfileError::Parse { file, key, .. } => {
            assert_eq!(file, "my.toml");
            assert_eq!(key, "wedge.sufix");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("sufix"));
    assert_eq!(err.code(), "profile-parse");
}

#[test]
fn bad_enum_value_names_the_key() {
    let text = "id = \"x\"\nname = \"n\"\nvendor = \"v\"\ntransport = \"usb\"\nframing = \"text\"\nkey_usage = \"none\"\ntrack_data = \"frame\"\n";
    match Profile::from_toml("f.toml", text) {
        Err(ProfileError::Parse { key, .. }) => assert_eq!(key, "transport"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn semantic_errors_name_the_key() {
    let base =
        "id = \"x\"\nname = \"n\"\nvendor = \"v\"\nkey_usage = \"data\"\ntrack_data = \"frame\"\n";
    let cases = [
        ("transport = \"hid\"\nframing = \"idtech-report\"\n[match]\nvid = 1\n", "report"),
        ("transport = \"hid\"\nframing = \"idtech-report\"\n[report]\nsize = 64\n", "match.vid"),
        ("transport = \"hid\"\nframing = \"idtech-report\"\n[match]\nvid = 1\n[report]\nsize = 0\n", "report.size"),
        ("transport = \"hid\"\nframing = \"text\"\n[match]\nvid = 1\n[report]\nsize = 8\n", "framing"),
        ("transport = \"serial\"\nframing = \"stream\"\n", "serial"),
        ("transport = \"serial\"\nframing = \"stream\"\n[serial]\nbaud = 0\n", "serial.baud"),
        ("transport = \"keyboard\"\nframing = \"stream\"\n", "framing"),
        ("transport = \"keyboard\"\nframing = \"text\"\nentry_mode = \"99\"\n", "entry_mode"),
        ("transport = \"keyboard\"\nframing = \"text\"\n[wedge]\npad = \"xx\"\n", "wedge.pad"),
    ];
    for (extra, want) in cases {
        let text = format!("{base}{extra}");
        match Profile::from_toml("f.toml", &text) {
            Err(ProfileError::Invalid { key, file, .. }) => {
                assert_eq!(key, want, "{extra}");
                assert_eq!(file, "f.toml");
            }
            other => panic!("{extra}: {other:?}"),
        }
    }
}

#[test]
fn override_dir_replaces_and_adds() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = EMBEDDED
        .iter()
        .find(|(f, _)| *f == "idtech-serial.toml")
        .map(|(_, t)| t.to_string())
        .unwrap();
    text = text.replace("baud = 9600", "baud = 38400");
    std::fs::write(dir.path().join("a.toml"), &text).unwrap();
    std::fs::write(
        dir.path().join("b.toml"),
        text.replace("id = \"idtech-serial\"", "id = \"my-head\""),
    )
    .unwrap();
    let p = Profiles::embedded_with_overrides(Some(dir.path())).unwrap();
    assert_eq!(p.len(), embedded().len() + 1);
    assert_eq!(
        p.get("idtech-serial")
            .and_then(|p| p.serial.as_ref())
            .map(|s| s.baud),
        Some(38400)
    );
    assert!(p.get("my-head").is_some());
    // Duplicate ids inside one directory are an error naming the file.
    std::fs::write(dir.path().join("c.toml"), &text).unwrap();
    match Profiles::load_dir(dir.path()) {
        Err(ProfileError::Duplicate { file, id }) => {
            assert!(file.ends_with("c.toml"));
            assert_eq!(id, "idtech-serial");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn usb_matching_prefers_product_ids() {
    let p = embedded();
    let hit = |vid, pid, up| {
        p.match_usb(TransportKind::Hid, vid, pid, up, None)
            .map(|p| p.id.as_str())
    };
    assert_eq!(
        hit(0x0ACD, 0x2010, Some(0xFF00)),
        Some("idtech-securemag-hid")
    );
    assert_eq!(
        hit(0x0ACD, 0x3820, Some(0xFF00)),
        Some("idtech-augusta-hid")
    );
    assert_eq!(hit(0x0ACD, 0x3530, Some(0xFF00)), Some("idtech-vp3300-hid"));
    // Unknown ID TECH product on the vendor page: the vendor-wide NEO 2 (VP3350) profile.
    assert_eq!(hit(0x0ACD, 0x7777, Some(0xFF00)), Some("idtech-vp3350-hid"));
    // ...but not on another usage page (a keyboard interface, say).
    assert_eq!(hit(0x0ACD, 0x7777, Some(0x0001)), None);
    assert_eq!(hit(0x0801, 0x001E, None), Some("magtek-edynamo-hid"));
    assert_eq!(hit(0x1234, 0x0001, None), None);
    let kb = p.match_usb(TransportKind::Keyboard, 0x0ACD, 0x2030, None, None);
    assert_eq!(kb.map(|p| p.id.as_str()), Some("idtech-securemag-kb"));
}

#[test]
fn driven_reader_profiles_and_protocol_key() {
    use super::Protocol;
    let p = embedded();
    for id in [
        "idtech-neo2-serial",
        "idtech-vp3300-hid",
        "idtech-vp3350-hid",
    ] {
        assert_eq!(p.get(id).map(|p| p.protocol), Some(Protocol::Neo2), "{id}");
    }
    assert_eq!(
        p.get("idtech-neo2-serial").map(|p| p.transport),
        Some(TransportKind::Serial)
    );
    assert_eq!(
        p.get("idtech-vp3300-hid").map(|p| p.matcher.pid.clone()),
        Some(vec![0x3530])
    );
    // Default: not driven.
    assert_eq!(
        p.get("idtech-securemag-hid").map(|p| p.protocol),
        Some(Protocol::None)
    );
    let serial = EMBEDDED
        .iter()
        .find(|(f, _)| *f == "idtech-neo2-serial.toml")
        .map(|(_, t)| t.to_string())
        .unwrap();
    // Unknown protocol names are rejected, naming the key.
    let bad = serial.replace("protocol = \"neo2\"", "protocol = \"vivopay\"");
    match Profile::from_toml("x.toml", &bad) {
        Err(ProfileError::Parse { key, .. }) => assert_eq!(key, "protocol"),
        other => panic!("{other:?}"),
    }
    // A keyboard reader cannot be driven.
    let kb = EMBEDDED
        .iter()
        .find(|(f, _)| *f == "idtech-augusta-kb.toml")
        .map(|(_, t)| t.to_string())
        .unwrap()
        .replace(
            "framing = \"text\"",
            "framing = \"text\"\nprotocol = \"neo2\"",
        );
    match Profile::from_toml("kb.toml", &kb) {
        Err(ProfileError::Invalid { key, .. }) => assert_eq!(key, "protocol"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn pin_entry_is_for_keypad_neo2_profiles_only() {
    let p = embedded();
    // reader-protocols.md §1.6: keypad NEO 2 readers (VP3600 class) take 62-01; the serial
    // profile (any NEO 2 reader) and the vendor-wide HID match may be one. The VP3300 has none.
    for (id, want) in [
        ("idtech-neo2-serial", true),
        ("idtech-vp3350-hid", true),
        ("idtech-vp3300-hid", false),
        ("idtech-securemag-hid", false),
        ("magtek-dynamag-hid", false),
    ] {
        assert_eq!(p.get(id).map(|p| p.pin_entry), Some(want), "{id}");
    }
    // Only a reader the host drives can be asked for a PIN.
    let swiper = EMBEDDED
        .iter()
        .find(|(f, _)| *f == "idtech-securemag-hid.toml")
        // First, so that it is a top-level key and not one of the last table's.
        .map(|(_, t)| format!("pin_entry = true\n{t}"))
        .unwrap();
    match Profile::from_toml("swiper.toml", &swiper) {
        Err(ProfileError::Invalid { key, .. }) => assert_eq!(key, "pin_entry"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn micr_profiles_load_and_are_validated() {
    use crate::parse::micr::SymbolSet;
    let p = embedded();
    let serial = p.require("magtek-micr-serial").unwrap();
    assert_eq!(serial.kind, ReaderKind::Micr);
    assert_eq!(serial.transport, TransportKind::Serial);
    assert_eq!(serial.micr_decoding(), Some((SymbolSet::Magtek(0), false)));
    // Keyboard emulation: letters arrive upper case.
    let kb = p.require("magtek-micr-kb").unwrap();
    assert_eq!(kb.micr_decoding(), Some((SymbolSet::Magtek(1), true)));
    assert_eq!(
        p.require("opos-micr-serial").unwrap().micr_decoding(),
        Some((SymbolSet::Opos, false))
    );
    assert_eq!(p.require("idtech-serial").unwrap().micr_decoding(), None);

    let base = "id = \"m\"\nname = \"n\"\nvendor = \"v\"\ntransport = \"keyboard\"\ntrack_data = \"clear-tracks\"\n";
    let cases = [
        ("kind = \"micr\"\nframing = \"text\"\nkey_usage = \"none\"\n", "micr"),
        ("framing = \"text\"\nkey_usage = \"none\"\n[micr]\nsymbol_set = \"opos\"\n", "micr"),
        ("kind = \"micr\"\nframing = \"text\"\nkey_usage = \"none\"\n[micr]\nsymbol_set = \"magtek-05\"\n", "micr.symbol_set"),
        ("kind = \"micr\"\nframing = \"text\"\nkey_usage = \"pin\"\n[micr]\nsymbol_set = \"magtek-00\"\n", "key_usage"),
    ];
    for (extra, want) in cases {
        match Profile::from_toml("f.toml", &format!("{base}{extra}")) {
            Err(ProfileError::Invalid { key, .. }) => assert_eq!(key, want, "{extra}"),
            other => panic!("{extra}: {other:?}"),
        }
    }
    let unknown = format!("{base}kind = \"micr\"\nframing = \"text\"\nkey_usage = \"none\"\n[micr]\nsymbol_set = \"opos\"\nspaces = 1\n");
    assert!(matches!(
        Profile::from_toml("f.toml", &unknown),
        Err(ProfileError::Parse { key, .. }) if key == "micr.spaces"
    ));
}

#[test]
fn magnesafe_v5_profiles_are_driven_with_their_card_types() {
    let p = embedded();
    let e = p.get("magtek-edynamo-hid").unwrap();
    let t = p.get("magtek-tdynamo-hid").unwrap();
    for v5 in [e, t] {
        assert_eq!(v5.protocol, Protocol::MagtekV5);
        assert_eq!(v5.framing, Framing::MagtekV5Report);
        // Swipes keep the MagneSafe report layout (reader-formats.md §3.1): id 1, 888 bytes.
        assert_eq!(v5.report.as_ref().map(|r| (r.size, r.id)), Some((888, 1)));
    }
    let bits = |p: &Profile| {
        let s = p.magtek_v5.clone().unwrap();
        (s.msr, s.contact, s.contactless)
    };
    assert_eq!(bits(e), (0x01, 0x02, 0x00));
    assert_eq!(bits(t), (0x01, 0x02, 0x04));
    // Shared family ids: auto-detection picks the eDynamo profile.
    let hit = p.match_usb(TransportKind::Hid, 0x0801, 0x0019, Some(0xFF00), None);
    assert_eq!(hit.map(|p| p.id.as_str()), Some("magtek-edynamo-hid"));
    // `[magtek_v5]` belongs to a V5 reader only.
    let text = EMBEDDED
        .iter()
        .find(|(f, _)| *f == "magtek-edynamo-hid.toml")
        .map(|(_, t)| t.to_string())
        .unwrap()
        .replace("protocol = \"magtek-v5\"", "");
    match Profile::from_toml("x.toml", &text) {
        Err(ProfileError::Invalid { key, .. }) => assert_eq!(key, "magtek_v5"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_epson_micr_profile_and_its_symbol_table() {
    use crate::parse::micr::{SymbolSet, Symbols, EPSON_DEFAULT, EPSON_READ_COMMAND};
    let p = embedded();
    let epson = p.require("epson-micr-serial").unwrap();
    assert_eq!(epson.framing, Framing::EpsonMicr);
    assert_eq!(
        epson.micr_decoding(),
        Some((SymbolSet::Epson(EPSON_DEFAULT), false))
    );
    // micr.md §2: the host writes `1C 61 n` to read a check.
    assert_eq!(epson.micr_read_command(), EPSON_READ_COMMAND);
    assert!(p
        .require("magtek-micr-serial")
        .unwrap()
        .micr_read_command()
        .is_empty());

    let base =
        "id = \"e\"\nname = \"n\"\nvendor = \"v\"\nkind = \"micr\"\ntransport = \"serial\"\n\
                track_data = \"clear-tracks\"\nkey_usage = \"none\"\n";
    let serial = "[serial]\nbaud = 9600\n";
    // Its own characters, dash sent as a zero.
    let own = format!(
        "{base}framing = \"epson-micr\"\n{serial}[micr]\nsymbol_set = \"epson\"\n\
         [micr.symbols]\ntransit = \"t\"\non_us = \"o\"\namount = \"a\"\ndash = \"0\"\nunreadable = \"!\"\n"
    );
    let got = Profile::from_toml("f.toml", &own).unwrap();
    assert_eq!(
        got.micr_decoding(),
        Some((
            SymbolSet::Epson(Symbols::new(b't', b'o', b'a', None, b'!').unwrap()),
            false
        ))
    );
    let table = "[micr.symbols]\ntransit = \"A\"\non_us = \"C\"\namount = \"B\"\ndash = \"D\"\nunreadable = \"?\"\n";
    let cases = [
        // Epson replies are not text lines, and text lines are no Epson replies.
        (
            format!("framing = \"text\"\n{serial}[micr]\nsymbol_set = \"epson\"\n"),
            "framing",
        ),
        (
            format!("framing = \"epson-micr\"\n{serial}[micr]\nsymbol_set = \"opos\"\n"),
            "framing",
        ),
        // A table only where the spec leaves the characters open, and a usable one.
        (
            format!("framing = \"text\"\n{serial}[micr]\nsymbol_set = \"opos\"\n{table}"),
            "micr.symbols",
        ),
        (
            format!(
                "framing = \"epson-micr\"\n{serial}[micr]\nsymbol_set = \"epson\"\n{}",
                table.replace("\"B\"", "\"A\"")
            ),
            "micr.symbols",
        ),
        (
            format!(
                "framing = \"epson-micr\"\n{serial}[micr]\nsymbol_set = \"epson\"\n{}",
                table.replace("\"D\"", "\"DD\"")
            ),
            "micr.symbols",
        ),
    ];
    for (extra, want) in cases {
        match Profile::from_toml("f.toml", &format!("{base}{extra}")) {
            Err(ProfileError::Invalid { key, .. }) => assert_eq!(key, want, "{extra}"),
            other => panic!("{extra}: {other:?}"),
        }
    }
    // A read command needs a line to write it on; epson-micr framing is for check readers.
    let kb =
        "id = \"e\"\nname = \"n\"\nvendor = \"v\"\nkind = \"micr\"\ntransport = \"keyboard\"\n\
              track_data = \"clear-tracks\"\nkey_usage = \"none\"\nframing = \"text\"\n\
              [micr]\nsymbol_set = \"magtek-01\"\nread_command = [0x1C, 0x61, 0]\n";
    assert!(matches!(
        Profile::from_toml("f.toml", kb),
        Err(ProfileError::Invalid { key, .. }) if key == "micr.read_command"
    ));
    let card = "id = \"c\"\nname = \"n\"\nvendor = \"v\"\ntransport = \"serial\"\n\
                track_data = \"clear-tracks\"\nkey_usage = \"none\"\nframing = \"epson-micr\"\n\
                [serial]\nbaud = 9600\n";
    assert!(matches!(
        Profile::from_toml("f.toml", card),
        Err(ProfileError::Invalid { key, .. }) if key == "framing"
    ));
}
