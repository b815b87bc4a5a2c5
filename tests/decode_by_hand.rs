//! Frames built by hand from the vendor layouts in `spec/reader-formats.md`, not with the
//! project's builder (`parse::build`): each field is written out at its offset, so a layout the
//! builder and the decoder both misread shows up here. Check values (LRC, 8-bit sum, CRC-16)
//! are computed in this file from their definitions.
use cardlane::parse::decode_frame;
use serde_json::Value;

fn decode(frame: &[u8]) -> Value {
    decode_frame(frame)
        .unwrap_or_else(|e| panic!("{e}: {}", hex::encode_upper(frame)))
        .to_json()
}

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// §2.1: STX | LenL LenH | card data | XOR of card data | 8-bit sum of card data | ETX.
fn idtech_wrap(card_data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(card_data.len()).unwrap();
    let lrc = card_data.iter().fold(0u8, |a, b| a ^ b);
    let sum = card_data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let mut f = vec![0x02];
    f.extend(len.to_le_bytes());
    f.extend(card_data);
    f.extend([lrc, sum, 0x03]);
    f
}

// Track 2 of the X9.24 test card used across the fixtures (PAN 4761739001010119), with the
// LRC position ID TECH keeps in its masked tracks (rule 2): `?` then `*` masked.
const T2_MASKED: &str = ";4761********0119=*****************?*"; // 37 bytes

/// §2.3, enhanced format: T2 masked + T2 encrypted, serial number, KSN; no hashes.
#[test]
fn idtech_enhanced_by_hand() {
    assert_eq!(T2_MASKED.len(), 37);
    let mut d = Vec::new();
    d.push(0x80); // 3: card encode type 80 = ISO/ABA
    d.push(0x02); // 4: track status: b1 = T2 decoded OK
    d.extend([0x00, 37, 0x00]); // 5-7: T1/T2/T3 length (T2: 37, with its LRC)
                                // 8: field 8: b1 T2 masked present | b5 chip card (service code 201) | b7 serial present;
                                //    b3 0 = DUKPT, b4 0 = TDES, b6 0 = data key
    d.push(0x02 | 0x20 | 0x80);
    d.push(0x02 | 0x80); // 9: field 9: b1 T2 encrypted present | b7 KSN present
    d.extend(T2_MASKED.as_bytes()); // 10-46: T2 masked
    d.extend([0xA5; 40]); // 47-86: T2 encrypted, 37 padded to 40 (TDES: multiple of 8)
    d.extend(b"716T494010"); // 87-96: serial number, 10 ASCII bytes
    d.extend(h("FFFF9876543210E00001")); // 97-106: KSN
    let v = decode(&idtech_wrap(&d));
    assert_eq!(v["format"], "idtech-enhanced");
    assert_eq!(v["encrypted"], true);
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["key_variant"], "data");
    assert_eq!(v["cipher"], "tdes");
    assert_eq!(v["device_serial"], "716T494010");
    assert_eq!(v["masked_pan"], "4761********0119");
    assert_eq!(v["last4"], "0119");
    assert_eq!(v["brand"], "VI");
    assert_eq!(v["tracks"]["1"]["status"], "absent");
    assert_eq!(v["tracks"]["2"]["status"], "ok");
    assert_eq!(v["tracks"]["3"]["status"], "absent");

    // Field 8 b6 set: the PIN key; b4 set: AES (ciphertext padded to 16).
    let mut d2 = d.clone();
    d2[5] = 0x02 | 0x20 | 0x80 | 0x40 | 0x10;
    d2.splice(44..84, [0x5A; 48]); // frame 47-94: T2 encrypted, 37 padded to 48 (AES)
    let v = decode(&idtech_wrap(&d2));
    assert_eq!(v["key_variant"], "pin");
    assert_eq!(v["cipher"], "aes");
    assert_eq!(v["device_serial"], "716T494010");
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
}

/// §2.2, original format: T1 and T2 masked, one chain over T1‖T2, a SHA-1 of each, KSN.
#[test]
fn idtech_original_by_hand() {
    let t1 = "%*4761********0119^VISA ACQUIRER TEST/CARD 19^*************?*"; // 61 bytes
    assert_eq!(t1.len(), 61);
    let mut d = Vec::new();
    d.push(0x00); // 0 (offset 3 in the frame): card encode type 00, high bit clear: original
    d.push(0x03); // track status: T1 and T2 decoded OK
    d.extend([61, 37, 0]); // T1/T2/T3 length
    d.extend(t1.as_bytes()); // T1 masked
    d.extend(T2_MASKED.as_bytes()); // T2 masked
    d.extend([0xC3; 104]); // ENC(T1‖T2): 61 + 37 = 98, padded to 104
    d.extend([0x11; 20]); // SHA-1 of T1
    d.extend([0x22; 20]); // SHA-1 of T2
    d.extend(h("FFFF9876543210E00001")); // KSN
    let v = decode(&idtech_wrap(&d));
    assert_eq!(v["format"], "idtech-original");
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["masked_pan"], "4761********0119");
    assert_eq!(v["cardholder_name"], "VISA ACQUIRER TEST/CARD 19");
    assert_eq!(v["tracks"]["1"]["status"], "ok");
    assert_eq!(v["tracks"]["2"]["status"], "ok");
    assert_eq!(v["tracks"]["3"]["status"], "absent");
}

/// §3.1: the MagneSafe V5 HID input report, 888 bytes (report version at 887).
#[test]
fn magtek_hid_report_by_hand() {
    let t1 = "%B5413330000000011^FDCS TEST CARD /MASTERCARD^2512000000000000000?"; // 0-masked
    let t2 = ";5413330000000011=2512000000000000?";
    let mut r = vec![0u8; 888];
    // 0-2: T1/T2/T3 decode status (bit 0 = error): all fine, T3 absent by its lengths.
    r[3] = 72; // 3: T1 encrypted length (padded): 68 chars -> 72
    r[4] = 40; // 4: T2 encrypted length (padded): 36 chars -> 40
    r[5] = 0; // 5: T3
    r[6] = 0; // 6: card encode type ISO/ABA
    r[7..7 + 72].fill(0x7E); // 7-118: T1 encrypted (112-byte field)
    r[119..119 + 40].fill(0x3C); // 119-230: T2 encrypted
    r[477..477 + 7].copy_from_slice(b"B0D1A2B"); // 477-492: serial, NUL-terminated
    r[493] = 0x00; // 493-494: encryption status: b1 key injected, b2 encryption enabled
    r[494] = 0x06;
    r[495..505].copy_from_slice(&h("FFFF9876543210E00001")); // 495-504: KSN
    r[505] = u8::try_from(t1.len()).unwrap(); // 505-507: masked lengths
    r[506] = u8::try_from(t2.len()).unwrap();
    r[508..508 + t1.len()].copy_from_slice(t1.as_bytes()); // 508-619: T1 masked
    r[620..620 + t2.len()].copy_from_slice(t2.as_bytes()); // 620-731: T2 masked
    r[852] = u8::try_from(t1.len()).unwrap(); // 852-855: absolute (plaintext) lengths
    r[853] = u8::try_from(t2.len()).unwrap();
    r[887] = 1; // 887: HID report version
    let v = decode(&r);
    assert_eq!(v["format"], "magtek-hid");
    assert_eq!(v["encrypted"], true);
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["key_variant"], "pin", "MagTek default: PIN variant");
    assert_eq!(v["device_serial"], "B0D1A2B");
    assert_eq!(v["masked_pan"], "541333******0011");
    assert_eq!(v["last4"], "0011");
    assert_eq!(v["expiry"], "2512");
    assert_eq!(v["cardholder_name"], "FDCS TEST CARD /MASTERCARD");
    assert_eq!(v["tracks"]["3"]["status"], "absent");
}

/// §3.2: MagTek keyboard/serial output at security level 3, `|`-separated, CR at the end.
#[test]
fn magtek_keyboard_sl3_by_hand() {
    let fields = [
        "%B5413330000000011^FDCS TEST CARD /MASTERCARD^2512000000000000000?;5413330000000011=2512000000000000?", // masked tracks (no T3)
        "0000",                   // encryption status
        &"7E".repeat(72),         // T1 encrypted, hex
        &"3C".repeat(40),         // T2 encrypted, hex
        "",                       // T3 encrypted: empty
        "",                       // MagnePrint status
        "",                       // MagnePrint encrypted
        "B0D1A2B",                // device serial
        "",                       // encrypted session ID
        "FFFF9876543210E00001",   // KSN
        "",                       // clear CRC
        "",                       // encrypted CRC
        "0000",                   // format code
    ];
    let text = format!("{}\r", fields.join("|"));
    let v = decode(text.as_bytes());
    assert_eq!(v["format"], "magtek-kb");
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["key_variant"], "pin");
    assert_eq!(v["masked_pan"], "541333******0011");
    assert_eq!(v["expiry"], "2512");
    assert_eq!(v["cardholder_name"], "FDCS TEST CARD /MASTERCARD");
}

/// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR).
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// §2.5: "ViVOtech2\0" | command | status | length (2, BE) | data | CRC (MSB first).
fn vivo_wrap(command: u8, status: u8, data: &[u8]) -> Vec<u8> {
    let mut f = b"ViVOtech2\0".to_vec();
    f.push(command);
    f.push(status);
    f.extend(u16::try_from(data.len()).unwrap().to_be_bytes());
    f.extend(data);
    f.extend(crc16(&f).to_be_bytes());
    f
}

/// §2.5 and §2.7: a contactless EMV read in a ViVOtech2 frame: attribution byte, then BER-TLV
/// with 57 sent masked (ID TECH length flag 0x20) and encrypted (0x40), 9F39, DFEE12 (KSN).
#[test]
fn vivotech2_contactless_by_hand() {
    // The guide's example frame and its published CRC: the CRC above is the right one.
    assert_eq!(
        crc16(&h("5669564F746563683200 04 00 0005 DFED110100")),
        0x32E6
    );
    let mut d = vec![0xC1]; // attribution: b0 contactless EMV, b6/b7 encryption on, TDES
                            // 57 masked: A1 = 0x80 | 0x20 (masked copy) | 1 length byte, then 0x12 = 18 bytes; ID TECH
                            // masks BCD nibbles with C (§2.7).
    d.extend(h("57 A1 12 4761CCCCCCCC0119D251220112340001230F"));
    // 57 encrypted: C1 = 0x80 | 0x40 (encrypted copy) | 1 length byte, 0x18 = 24 bytes.
    d.extend(h("57 C1 18"));
    d.extend([0x9D; 24]);
    d.extend(h("9F39 01 07")); // POS entry mode 07: contactless EMV
    d.extend(h("DFEE12 0A FFFF9876543210E00001")); // KSN of the data key
    let frame = vivo_wrap(0x02, 0x23, &d);
    let v = decode(&frame);
    assert_eq!(v["format"], "vivotech2");
    assert_eq!(v["entry_mode"], "07");
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["masked_pan"], "4761********0119");
    assert_eq!(v["last4"], "0119");
    assert_eq!(v["expiry"], "2512");
    assert_eq!(v["encrypted"], true);
    // The same TLV bare (keyboard mode, SDK logs), with its attribution byte: emv-tlv.
    let bare = decode(&d);
    assert_eq!(bare["format"], "emv-tlv");
    assert_eq!(bare["masked_pan"], "4761********0119");
    assert_eq!(bare["ksn"], "FFFF9876543210E00001");
}

/// §2.6: a swipe on a ViVOpay reader: DFEE23 holds the whole enhanced MSR frame (BER length).
#[test]
fn vivotech2_msr_by_hand() {
    let mut d = Vec::new();
    d.push(0x80); // card encode type ISO/ABA
    d.push(0x02); // T2 decoded OK
    d.extend([0x00, 37, 0x00]);
    d.push(0x02 | 0x20 | 0x80); // field 8
    d.push(0x02 | 0x80); // field 9
    d.extend(T2_MASKED.as_bytes());
    d.extend([0xA5; 40]);
    d.extend(b"716T494010");
    d.extend(h("FFFF9876543210E00001"));
    let msr = idtech_wrap(&d); // 110 bytes
    let mut data = vec![0xE8]; // attribution: MSR, encryption on (DFEE26 style E8)
    data.extend(h("DFEE23 81")); // long-form length, one byte
    data.push(u8::try_from(msr.len()).unwrap());
    data.extend(&msr);
    let v = decode(&vivo_wrap(0x02, 0x23, &data));
    assert_eq!(v["format"], "vivotech2");
    assert_eq!(v["masked_pan"], "4761********0119");
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["entry_mode"], "90");
}

/// Rule 3: ID TECH keyboard mode sends binary fields as hex text and masked tracks as raw
/// ASCII; length, LRC and sum are over the ASCII characters as sent (here the original
/// format of `idtech_original_by_hand`).
#[test]
fn idtech_original_keyboard_by_hand() {
    let t1 = "%*4761********0119^VISA ACQUIRER TEST/CARD 19^*************?*";
    let mut card = String::new();
    card.push_str("00"); // card encode type, as hex text
    card.push_str("03"); // track status
    card.push_str(&format!("{:02X}{:02X}{:02X}", t1.len(), T2_MASKED.len(), 0)); // lengths
    card.push_str(t1); // masked tracks: raw ASCII
    card.push_str(T2_MASKED);
    card.push_str(&"C3".repeat(104)); // ENC(T1‖T2) as hex text
    card.push_str(&"11".repeat(20)); // SHA-1 of T1
    card.push_str(&"22".repeat(20)); // SHA-1 of T2
    card.push_str("FFFF9876543210E00001"); // KSN
    let bytes = card.as_bytes();
    let len = u16::try_from(bytes.len()).unwrap().to_le_bytes();
    let lrc = bytes.iter().fold(0u8, |a, b| a ^ b);
    let sum = bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let text = format!("02{:02X}{:02X}{card}{lrc:02X}{sum:02X}03", len[0], len[1]);
    let v = decode(text.as_bytes());
    assert_eq!(v["format"], "idtech-original");
    assert_eq!(v["ksn"], "FFFF9876543210E00001");
    assert_eq!(v["masked_pan"], "4761********0119");
    assert_eq!(v["cardholder_name"], "VISA ACQUIRER TEST/CARD 19");
    // The checksum over the ASCII: one character off is refused.
    let bad = text.replacen("VISA", "VISB", 1);
    assert!(decode_frame(bad.as_bytes()).is_err());
}

/// §1: clear tracks with LRCs computed from the ISO/IEC 7811-2 rule as the spec states it:
/// lrc1 = 0x20 + XOR(c - 0x20), lrc2 = 0x30 + XOR(c - 0x30), over start to end sentinel.
#[test]
fn clear_tracks_with_iso_lrcs_by_hand() {
    let t1 = "%B4761739001010119^VISA ACQUIRER TEST/CARD 19^2512201123400001230?";
    let t2 = ";4761739001010119=25122011234000123?";
    let lrc = |t: &str, base: u8| -> char {
        let x = t.bytes().fold(0u8, |a, c| a ^ (c - base));
        char::from(base + (x & if base == 0x30 { 0x0F } else { 0x3F }))
    };
    let text = format!("{t1}{}{t2}{}\r", lrc(t1, 0x20), lrc(t2, 0x30));
    let v = decode(text.as_bytes());
    assert_eq!(v["format"], "tracks");
    assert_eq!(v["last4"], "0119");
    assert_eq!(v["expiry"], "2512");
    assert_eq!(v["service_code"], "201");
    assert_eq!(v["cardholder_name"], "VISA ACQUIRER TEST/CARD 19");
    assert_eq!(v["tracks"]["1"]["status"], "ok");
    assert_eq!(v["tracks"]["2"]["status"], "ok");
    // A wrong Track 2 LRC is a bad read, never a card.
    let wrong = if lrc(t2, 0x30) == '0' { '1' } else { '0' };
    let bad = format!("{t2}{wrong}\r");
    let e = decode_frame(bad.as_bytes()).unwrap_err();
    assert_eq!(e.code(), "bad-lrc");
}
