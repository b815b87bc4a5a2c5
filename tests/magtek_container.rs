//! MagTek EMV data containers (reader-protocols.md §3.3) through `decode_frame` and
//! `decrypt_read`. The containers here are written field by field from the spec by a builder of
//! this file's own (not the library's), encrypted under the data key the X9.24-1 vectors give for
//! the ANSI test BDK, with plain RustCrypto TDES-CBC, and MACed with an X9.19 retail MAC written
//! out below. The library's DUKPT code is used only where the round trips need any KSN.
use cardlane::card::Format;
use cardlane::crypto::{encrypt_reader_data, BdkDecryptor, ReaderCipher, ReaderKey};
use cardlane::parse::magtek_emv::{self, Kind};
use cardlane::parse::{decode_frame, decrypt_read, split_frames};
use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use proptest::prelude::*;
use serde_json::json;

mod common;
use common::decode_fixture_bytes;

const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
/// tdes_dukpt_x9_24_1_2009.json, initial sequence, KSN FFFF9876543210E00001.
const KSN1: &str = "FFFF9876543210E00001";
const DATA_KEY1: &str = "448D3F076D8304036A55A3D7E0055A78";
const MAC_KEY1: &str = "042666B4918430A368DE9628D03984C9";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// BER-TLV written out: tag bytes as given, definite length (short, 81, 82 forms).
fn tlv(tag: &str, value: &[u8]) -> Vec<u8> {
    let mut v = h(tag);
    match value.len() {
        n if n < 0x80 => v.push(n as u8),
        n if n < 0x100 => v.extend([0x81, n as u8]),
        n => v.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    v.extend_from_slice(value);
    v
}

fn tdes_cbc(key: &[u8], plain: &[u8]) -> Vec<u8> {
    assert_eq!(plain.len() % 8, 0);
    let mut buf = plain.to_vec();
    let n = buf.len();
    let key: [u8; 16] = key.try_into().unwrap();
    cbc::Encryptor::<des::TdesEde2>::new(&key.into(), &[0u8; 8].into())
        .encrypt_padded_mut::<NoPadding>(&mut buf, n)
        .unwrap();
    buf
}

/// ANSI X9.19 retail MAC: single-DES CBC under the left half, then decrypt under the right
/// half and encrypt under the left; the leftmost 4 bytes.
fn retail_mac4(key: &[u8], data: &[u8]) -> [u8; 4] {
    assert_eq!(data.len() % 8, 0);
    let kl = des::Des::new_from_slice(&key[..8]).unwrap();
    let kr = des::Des::new_from_slice(&key[8..16]).unwrap();
    let mut state = [0u8; 8];
    for block in data.chunks(8) {
        for (s, b) in state.iter_mut().zip(block) {
            *s ^= b;
        }
        let mut b = state.into();
        kl.encrypt_block(&mut b);
        state = b.into();
    }
    let mut b = state.into();
    kr.decrypt_block(&mut b);
    kl.encrypt_block(&mut b);
    let out: [u8; 8] = b.into();
    [out[0], out[1], out[2], out[3]]
}

/// One container, as the spec lists its parts.
#[derive(Clone, Debug)]
struct Spec {
    batch: bool,
    serial: &'static [u8],
    /// Clear tags under 70/F0 before F8 (already TLV-encoded).
    clear: Vec<u8>,
    /// The nested TLV that DFDF59 encrypts (FC { F2 { … } }).
    secret: Vec<u8>,
    ksn: Vec<u8>,
    data_key: Vec<u8>,
    mac_key: Vec<u8>,
    /// Ciphertext made elsewhere (else TDES-CBC of `secret` under `data_key`).
    ciphertext: Option<Vec<u8>>,
    /// Write the 2-byte length prefix (else the container starts at F9).
    prefix: bool,
}

fn build(s: &Spec) -> Vec<u8> {
    let pad = (8 - s.secret.len() % 8) % 8;
    let mut plain = s.secret.clone();
    plain.resize(s.secret.len() + pad, 0);
    let ct = match &s.ciphertext {
        Some(c) => c.clone(),
        None => tdes_cbc(&s.data_key, &plain),
    };
    let mut f8 = tlv("DFDF59", &ct);
    f8.extend(tlv("DFDF56", &s.ksn));
    f8.extend(tlv("DFDF57", &[0x00]));
    f8.extend(tlv("DFDF58", &[pad as u8]));
    let mut inner = s.clear.clone();
    inner.extend(tlv("F8", &f8));
    let fa = tlv("FA", &tlv(if s.batch { "F0" } else { "70" }, &inner));
    let mut f9 = tlv("DFDF54", &s.ksn);
    f9.extend(tlv("DFDF55", &[0x00]));
    f9.extend(tlv("DFDF25", s.serial));
    f9.extend(fa);
    let f9 = tlv("F9", &f9);
    // Zero padding brings prefix + F9 to whole 8-byte blocks for the CBC-MAC.
    let head = if s.prefix { 2 } else { 0 };
    let mac_pad = (8 - (head + f9.len()) % 8) % 8;
    let total = f9.len() + mac_pad + 4;
    let mut out = Vec::new();
    if s.prefix {
        out.extend((total as u16).to_be_bytes());
    }
    out.extend(&f9);
    out.resize(out.len() + mac_pad, 0);
    let mac = retail_mac4(&s.mac_key, &out);
    out.extend(mac);
    out
}

/// Mastercard test PAN 5413330089020011, expiry 2512, service code 201.
const T2EQ: &str = "5413330089020011D25122010000000000000F";
const T2_TEXT: &str = ";5413330089020011=25122010000000000000?";

fn arqc_contact() -> Spec {
    let mut clear = tlv("DFDF4D", b";5413330000000011=25120000000000000000?");
    clear.extend(tlv("DFDF52", &[0x05]));
    clear.extend(tlv("9F39", &[0x05]));
    let mut f2 = tlv("5A", &h("5413330089020011"));
    f2.extend(tlv("57", &h(T2EQ)));
    f2.extend(tlv("5F24", &h("251231")));
    f2.extend(tlv("9F39", &[0x05]));
    f2.extend(tlv("9F26", &h("1122334455667788")));
    Spec {
        batch: false,
        serial: b"B0A1C2D",
        clear,
        secret: tlv("FC", &tlv("F2", &f2)),
        ksn: h(KSN1),
        data_key: h(DATA_KEY1),
        mac_key: h(MAC_KEY1),
        ciphertext: None,
        prefix: true,
    }
}

fn batch_contactless() -> Spec {
    let mut clear = tlv(
        "F7",
        &[tlv("9F39", &[0x07]), tlv("9F02", &h("000000000000"))].concat(),
    );
    clear.extend(tlv("DFDF4D", b";4761730000000119=25120000000000000000?"));
    clear.extend(tlv("DFDF52", &[0x06]));
    clear.extend(tlv("DFDF1A", &[0x00]));
    let f2 = [
        tlv("9F6B", &h("4761739001010119D25122011234000123000F")),
        tlv("5F20", b"VISA ACQUIRER TEST/CARD 19"),
    ]
    .concat();
    Spec {
        batch: true,
        serial: b"B0A1C2D",
        clear,
        secret: tlv("FC", &tlv("F2", &f2)),
        ksn: h(KSN1),
        data_key: h(DATA_KEY1),
        mac_key: h(MAC_KEY1),
        ciphertext: None,
        prefix: true,
    }
}

fn decrypted_t2(frame: &[u8]) -> String {
    let r = decode_frame(frame).unwrap();
    let d = decrypt_read(&r, &BdkDecryptor::new(&h(BDK)).unwrap(), None).unwrap();
    d.decrypted.unwrap()[1]
        .as_ref()
        .unwrap()
        .expose()
        .to_string()
}

#[test]
fn arqc_decodes_without_a_key_and_decrypts_with_the_test_bdk() {
    let frame = build(&arqc_contact());
    let r = decode_frame(&frame).unwrap();
    let j = r.to_json();
    assert_eq!(j["format"], "magtek-emv");
    assert_eq!(j["masked_pan"], "541333******0011");
    assert_eq!(j["last4"], "0011");
    assert_eq!(j["brand"], "MC");
    assert_eq!(j["ksn"], KSN1);
    assert_eq!(j["entry_mode"], "05");
    assert_eq!(j["encrypted"], true);
    assert_eq!(j["key_variant"], "data");
    assert_eq!(j["cipher"], "tdes");
    assert_eq!(j["device_serial"], "B0A1C2D");
    assert_eq!(j["expiry"], "2512");
    assert_eq!(j["decrypted"], serde_json::Value::Null);
    let shown = j.to_string();
    assert!(!shown.contains("5413330089020011"), "{shown}");

    let d = decrypt_read(&r, &BdkDecryptor::new(&h(BDK)).unwrap(), None).unwrap();
    let j = d.to_json();
    assert_eq!(j["decrypted"]["2"], T2_TEXT);
    assert_eq!(j["decrypted"]["1"], serde_json::Value::Null);
    assert_eq!(j["service_code"], "201");
    assert_eq!(j["last4"], "0011");
    assert_eq!(j["masked_pan"], "541333******0011");
}

#[test]
fn container_parts_are_where_the_spec_puts_them() {
    let s = arqc_contact();
    let frame = build(&s);
    let c = magtek_emv::parse(&frame).unwrap();
    assert_eq!(c.kind, Kind::Arqc);
    assert_eq!(c.ksn, &h(KSN1)[..]);
    assert_eq!(c.mac_ksn, Some(&h(KSN1)[..]));
    assert_eq!(c.mac_type, Some(0));
    assert_eq!(c.key_type, Some(0));
    assert_eq!(c.serial, Some(&b"B0A1C2D"[..]));
    assert_eq!(c.pad_count as usize, (8 - s.secret.len() % 8) % 8);
    // The MAC is the last 4 bytes, over the prefix through the padding.
    let mac: [u8; 4] = frame[frame.len() - 4..].try_into().unwrap();
    assert_eq!(c.mac, Some(mac));
    assert_eq!(c.mac_input(), frame[..frame.len() - 4].to_vec());
    assert_eq!(retail_mac4(&h(MAC_KEY1), &c.mac_input()), mac);
    assert_eq!(c.mac_input().len() % 8, 0);
    // The length prefix counts everything after it.
    assert_eq!(
        u16::from_be_bytes([frame[0], frame[1]]) as usize,
        frame.len() - 2
    );
}

#[test]
fn batch_data_contactless() {
    let frame = build(&batch_contactless());
    let c = magtek_emv::parse(&frame).unwrap();
    assert_eq!(c.kind, Kind::Batch);
    assert_eq!(c.status(), Some(0));
    let r = decode_frame(&frame).unwrap();
    assert_eq!(r.format, Format::MagtekEmv);
    let j = r.to_json();
    assert_eq!(j["entry_mode"], "07", "9F39 inside F7");
    assert_eq!(j["masked_pan"], "476173******0119");
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(
        decrypted_t2(&frame),
        ";4761739001010119=25122011234000123000?"
    );
}

#[test]
fn card_type_gives_the_entry_mode_without_9f39() {
    let mut s = arqc_contact();
    // MagTek's DFDF52 values (programmer's manuals): 01 MSR, 03 manual, 05 contact, 06
    // contactless EMV, 08 contactless MSD; 02 (AAMVA) and 04 (unknown) give none.
    for (card_type, mode) in [
        (0x01, json!("90")),
        (0x03, json!("01")),
        (0x05, json!("05")),
        (0x06, json!("07")),
        (0x08, json!("91")),
        (0x02, json!(null)),
        (0x04, json!(null)),
    ] {
        s.clear = [
            tlv("DFDF4D", b";5413330000000011=25120000000000000000?"),
            tlv("DFDF52", &[card_type]),
        ]
        .concat();
        let r = decode_frame(&build(&s)).unwrap();
        assert_eq!(r.to_json()["entry_mode"], mode, "card type {card_type:02X}");
    }
    // A fallback indicator (DFDF53 01 technical, 81 MSR) makes a stripe read of a chip card 80.
    for fallback in [0x01, 0x81] {
        s.clear = [
            tlv("DFDF53", &[fallback]),
            tlv("DFDF4D", b";5413330000000011=25120000000000000000?"),
            tlv("DFDF52", &[0x01]),
        ]
        .concat();
        let r = decode_frame(&build(&s)).unwrap();
        assert_eq!(r.to_json()["entry_mode"], "80", "fallback {fallback:02X}");
    }
    s.clear = [
        tlv("DFDF53", &[0x00]),
        tlv("DFDF4D", b";5413330000000011=25120000000000000000?"),
        tlv("DFDF52", &[0x06]),
    ]
    .concat();
    let r = decode_frame(&build(&s)).unwrap();
    assert_eq!(r.to_json()["entry_mode"], "07");
    // 9F39 wins over the card type, also from inside F7 (batch data).
    s.clear.extend(tlv("F7", &tlv("9F39", &[0x05])));
    let r = decode_frame(&build(&s)).unwrap();
    assert_eq!(r.to_json()["entry_mode"], "05");
}

/// Containers real readers sent (fixtures/README.md gives where each was published), under
/// production keys: the clear part alone gives the masked PAN, last 4, KSN, serial and entry
/// mode; the expiry the reader masked as `0000` is no expiry; the test BDK does not decrypt them.
/// Expected values read by hand from the hex (ASCII of DFDF4D, DFDF56, DFDF25, DFDF52).
#[test]
fn containers_from_real_readers_decode_without_a_key() {
    for (file, masked_pan, ksn, serial, entry_mode) in [
        (
            "magtek_emv_real_contactless.hex",
            "531257******8112",
            "9070020B571AF20000A8",
            "B571AF2",
            "07",
        ),
        (
            "magtek_emv_real_contact_ff42.hex",
            "544300******3455",
            "9070040BE0010A400005",
            "BE0010A",
            "05",
        ),
    ] {
        let r = decode_frame(&decode_fixture_bytes(file)).unwrap();
        let j = r.to_json();
        assert_eq!(j["format"], "magtek-emv", "{file}");
        assert_eq!(j["masked_pan"], masked_pan, "{file}");
        assert_eq!(j["last4"], &masked_pan[12..], "{file}");
        assert_eq!(j["brand"], "MC", "{file}");
        assert_eq!(j["ksn"], ksn, "{file}");
        assert_eq!(j["device_serial"], serial, "{file}");
        assert_eq!(j["entry_mode"], entry_mode, "{file}");
        assert_eq!(j["expiry"], json!(null), "{file}");
        assert_eq!(j["encrypted"], true, "{file}");
        assert!(r.warnings.is_empty(), "{file}: {:?}", r.warnings);
        let e = decrypt_read(&r, &BdkDecryptor::new(&h(BDK)).unwrap(), None).unwrap_err();
        assert_eq!(e.code(), "decrypt-failed", "{file}");
    }
}

/// Real containers' prefixes count the F9 object alone, and their padding does not always end
/// on a multiple of 8: alone or back to back (with each other and with a container whose prefix
/// counts everything), each is one frame, padding and MAC included.
#[test]
fn real_containers_split_whole_alone_and_back_to_back() {
    let contactless = decode_fixture_bytes("magtek_emv_real_contactless.hex");
    let contact = decode_fixture_bytes("magtek_emv_real_contact_ff42.hex");
    let synthetic = build(&arqc_contact());
    // The prefixes as the readers sent them: the F9 object only (checked from the bytes).
    for f in [&contactless, &contact] {
        let prefix = u16::from_be_bytes([f[0], f[1]]) as usize;
        let f9_len = 4 + u16::from_be_bytes([f[4], f[5]]) as usize; // F9 82 hi lo
        assert_eq!(prefix, f9_len);
        assert!(f.len() > 2 + prefix + 4, "padding and MAC follow");
    }
    for parts in [
        vec![&contact],
        vec![&contactless],
        vec![&contact, &contactless],
        vec![&contactless, &contact, &synthetic],
        vec![&synthetic, &contact, &contactless],
    ] {
        let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        let frames = split_frames(&joined);
        let got: Vec<&[u8]> = frames.to_vec();
        let want: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        assert_eq!(got, want);
        for f in frames {
            assert_eq!(decode_frame(f).unwrap().format, Format::MagtekEmv);
        }
    }
}

#[test]
fn batch_status_other_than_approved_is_a_warning() {
    let mut s = batch_contactless();
    s.clear = [
        tlv("DFDF4D", b";4761730000000119=25120000000000000000?"),
        tlv("DFDF1A", &[0x22]),
    ]
    .concat();
    let r = decode_frame(&build(&s)).unwrap();
    assert_eq!(r.warnings, ["transaction-status-22"]);
}

#[test]
fn bare_container_hex_text_and_back_to_back_frames() {
    let mut s = arqc_contact();
    s.prefix = false;
    let bare = build(&s);
    assert_eq!(bare[0], 0xF9);
    assert_eq!(decrypted_t2(&bare), T2_TEXT);
    // As hex text (keyboard output, a log line).
    let text = hex::encode_upper(build(&arqc_contact()));
    let r = decode_frame(text.as_bytes()).unwrap();
    assert_eq!(r.format, Format::MagtekEmv);
    // Two prefixed containers back to back split on their length prefixes.
    let a = build(&arqc_contact());
    let b = build(&batch_contactless());
    let both = [a.clone(), b.clone()].concat();
    let frames = split_frames(&both);
    assert_eq!(frames, vec![&a[..], &b[..]]);
    // Zero fill after a container (a fixed-size report) is no error.
    let mut filled = a.clone();
    filled.resize(a.len() + 40, 0);
    assert_eq!(decrypted_t2(&filled), T2_TEXT);
}

#[test]
fn a_prefix_counting_f9_alone_is_accepted() {
    let mut frame = build(&arqc_contact());
    let f9_len = frame.len() - 2 - 4 - magtek_emv::parse(&frame).unwrap().padding;
    frame[..2].copy_from_slice(&(f9_len as u16).to_be_bytes());
    assert_eq!(decrypted_t2(&frame), T2_TEXT);
}

#[test]
fn a_container_longer_than_512_bytes_is_not_taken_for_id_tech() {
    // A first length byte of 02 is also ID TECH's STX.
    let mut s = arqc_contact();
    s.clear.extend(tlv("9F10", &[0x11; 120]));
    for _ in 0..4 {
        s.clear.extend(tlv("DF8101", &[0x22; 100]));
    }
    let frame = build(&s);
    assert_eq!(frame[0], 0x02);
    assert_eq!(decrypted_t2(&frame), T2_TEXT);
}

fn code_of(frame: &[u8]) -> String {
    decode_frame(frame).unwrap_err().code().to_string()
}

#[test]
fn every_broken_part_has_its_reason_code() {
    let good = build(&arqc_contact());
    // Cut short: inside F9, inside the MAC.
    assert_eq!(code_of(&good[..good.len() - 30]), "truncated");
    assert_eq!(code_of(&good[..good.len() - 2]), "truncated");
    // A prefix shorter than F9.
    let mut b = good.clone();
    b[..2].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(code_of(&b), "bad-length");
    // Non-zero padding (a prefix one byte longer leaves 8 tail bytes whose first is a MAC byte).
    let c = magtek_emv::parse(&good).unwrap();
    if c.padding > 0 {
        let mut b = good.clone();
        let at = good.len() - 4 - c.padding;
        b[at] = 0x5A;
        assert_eq!(code_of(&b), "bad-length");
    }
    // Bytes that are not zero after the container.
    let mut b = good.clone();
    b.extend([0x01, 0x02]);
    assert_eq!(code_of(&b), "bad-length");

    // Missing parts.
    let without = |drop: &str| {
        let mut s = arqc_contact();
        s.clear = arqc_contact().clear;
        let frame = build(&s);
        let t = h(drop);
        // Rename the tag to one the container does not use (same length: framing stays).
        let at = frame
            .windows(t.len())
            .position(|w| w == &t[..])
            .expect("tag in frame");
        let mut f = frame.clone();
        f[at + t.len() - 1] ^= 0x01;
        f
    };
    assert_eq!(code_of(&without("F8")), "bad-container");
    assert_eq!(code_of(&without("DFDF59")), "bad-container");
    assert_eq!(code_of(&without("DFDF56")), "bad-container");
    assert_eq!(code_of(&without("FA")), "bad-container");

    // A KSN of the wrong size, a ciphertext not in whole blocks, an impossible pad count.
    let with_f8 = |f8: Vec<u8>| {
        let inner = [arqc_contact().clear, tlv("F8", &f8)].concat();
        let f9 = tlv(
            "F9",
            &[tlv("DFDF54", &h(KSN1)), tlv("FA", &tlv("70", &inner))].concat(),
        );
        let mut out = ((f9.len() + 4) as u16).to_be_bytes().to_vec();
        out.extend(f9);
        out.extend([0; 4]);
        out
    };
    let ct = vec![0x11; 16];
    assert_eq!(
        code_of(&with_f8(
            [tlv("DFDF59", &ct), tlv("DFDF56", &[1; 9])].concat()
        )),
        "bad-container"
    );
    assert_eq!(
        code_of(&with_f8(
            [tlv("DFDF59", &ct[..13]), tlv("DFDF56", &h(KSN1))].concat()
        )),
        "bad-length"
    );
    assert_eq!(
        code_of(&with_f8(
            [
                tlv("DFDF59", &ct),
                tlv("DFDF56", &h(KSN1)),
                tlv("DFDF58", &[9])
            ]
            .concat()
        )),
        "bad-length"
    );
    // A well-formed container under another BDK does not decrypt.
    let r = decode_frame(&good).unwrap();
    let e = decrypt_read(&r, &BdkDecryptor::new(&[0x42; 16]).unwrap(), None).unwrap_err();
    assert_eq!(e.code(), "decrypt-failed");
}

fn pan_strategy() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["4", "51", "55", "34", "37", "6011"]),
        prop::collection::vec(0u8..10, 12..16),
    )
        .prop_map(|(p, d)| {
            let mut s = p.to_string();
            s.extend(d.iter().map(|x| char::from(b'0' + x)));
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Build with the test BDK → decode → decrypt: the same card, for any PAN, expiry, KSN
    /// counter, container kind and framing.
    #[test]
    fn round_trips(pan in pan_strategy(), yy in 20u8..40, mm in 1u8..13, counter in 1u32..0x1000,
                   batch: bool, prefix: bool, contactless: bool) {
        let mut ksn = h("FFFF9876543210E00000");
        let c = counter.to_be_bytes();
        ksn[7] = (ksn[7] & 0xE0) | (c[1] & 0x1F);
        ksn[8] = c[2];
        ksn[9] = c[3];
        let exp = format!("{yy:02}{mm:02}");
        let mut t2 = format!("{pan}D{exp}2010000000");
        if t2.len() % 2 == 1 {
            t2.push('F');
        }
        let masked = format!(";{}{}{}={exp}?", &pan[..6], "0".repeat(pan.len() - 10), &pan[pan.len() - 4..]);
        let t2_tag = if contactless { "9F6B" } else { "57" };
        let secret = tlv("FC", &tlv("F2", &[tlv(t2_tag, &h(&t2)), tlv("9F39", &[0x05])].concat()));
        // Any KSN: the data key comes from the library's DUKPT (the vectors cover few KSNs).
        let ct = encrypt_reader_data(&h(BDK), &ksn, ReaderKey::Data, ReaderCipher::Tdes, None, &secret).unwrap();
        let s = Spec {
            batch,
            serial: b"SN1",
            clear: [tlv("DFDF4D", masked.as_bytes()), tlv("DFDF52", &[0x05])].concat(),
            secret,
            ksn: ksn.clone(),
            data_key: vec![],
            mac_key: vec![0x01; 16],
            ciphertext: Some(ct.to_vec()),
            prefix,
        };
        let frame = build(&s);
        let r = decode_frame(&frame).unwrap();
        prop_assert_eq!(r.format, Format::MagtekEmv);
        prop_assert_eq!(r.last4.as_deref(), Some(&pan[pan.len() - 4..]));
        prop_assert_eq!(r.ksn.as_ref().unwrap().as_bytes(), &ksn[..]);
        let d = decrypt_read(&r, &BdkDecryptor::new(&h(BDK)).unwrap(), None).unwrap();
        let want = format!(";{pan}={exp}2010000000?");
        let got = d.decrypted.as_ref().unwrap()[1].as_ref().unwrap().expose().to_string();
        prop_assert_eq!(got, want);
        prop_assert_eq!(d.expiry.as_deref(), Some(exp.as_str()));
    }

    /// Arbitrary bytes, and containers with bytes changed or cut, never panic.
    #[test]
    fn no_panic_on_arbitrary_or_damaged_input(noise in prop::collection::vec(any::<u8>(), 0..300),
                                              at in 0usize..400, byte: u8, cut in 0usize..400) {
        let _ = decode_frame(&noise);
        let mut prefixed = vec![0x01, 0x00, 0xF9];
        prefixed.extend(&noise);
        let _ = decode_frame(&prefixed);
        let _ = magtek_emv::parse(&prefixed);
        let mut f = build(&arqc_contact());
        let n = f.len();
        f[at % n] = byte;
        if let Ok(r) = decode_frame(&f) {
            let _ = decrypt_read(&r, &BdkDecryptor::new(&h(BDK)).unwrap(), None);
        }
        let _ = decode_frame(&f[..cut % n]);
    }
}

/// Prints the fixture payloads (`cargo test --test magtek_container -- --ignored --nocapture`).
#[test]
#[ignore]
fn print_fixtures() {
    println!("arqc {}", hex::encode_upper(build(&arqc_contact())));
    println!("batch {}", hex::encode_upper(build(&batch_contactless())));
}

/// A reader set to the PIN variant (not the spec's data key) still decrypts, and says so; an
/// explicit --variant is taken as given.
#[test]
fn other_key_variants_are_tried_and_named() {
    let mut s = arqc_contact();
    let ct = encrypt_reader_data(
        &h(BDK),
        &h(KSN1),
        ReaderKey::Pin,
        ReaderCipher::Tdes,
        None,
        &s.secret,
    )
    .unwrap();
    s.ciphertext = Some(ct.to_vec());
    let r = decode_frame(&build(&s)).unwrap();
    let dec = BdkDecryptor::new(&h(BDK)).unwrap();
    let d = decrypt_read(&r, &dec, None).unwrap();
    assert_eq!(d.to_json()["key_variant"], "pin");
    assert_eq!(d.to_json()["decrypted"]["2"], T2_TEXT);
    let e = decrypt_read(&r, &dec, Some(cardlane::card::KeyVariant::Data)).unwrap_err();
    assert_eq!(e.code(), "decrypt-failed");
}

/// Without 57 or 9F6B inside, the PAN and expiry make the Track 2 text; a masked Track 2 whose
/// reader masks with another character still gives the masked PAN and last 4.
#[test]
fn pan_and_expiry_only_and_other_mask_characters() {
    let mut s = arqc_contact();
    s.secret = tlv(
        "FC",
        &tlv(
            "F2",
            &[tlv("5A", &h("5413330089020011")), tlv("5F24", &h("251231"))].concat(),
        ),
    );
    s.clear = tlv("DFDF4D", b";541333XXXXXX0011=2512XXXXXXXXXXXXXXXX?");
    let r = decode_frame(&build(&s)).unwrap();
    assert_eq!(r.to_json()["masked_pan"], "541333******0011");
    assert_eq!(r.to_json()["last4"], "0011");
    assert_eq!(decrypted_t2(&build(&s)), ";5413330089020011=2512?");
}
