//! The simulator's PIN check over real loopback HTTP (issue 17): the record's `card.pin_block`
//! is checked under `card.ksn` (the PIN key's KSN) against the PAN decrypted from `track_data`,
//! a whole reader frame that carries its own, different KSN. Formats 0, 1, 3 and 4; a PIN block
//! that does not verify names `card.ksn` when the KSN is what is wrong, `card.pin_block` else.
use std::sync::Arc;

use cardlane::card::Ksn;
use cardlane::crypto::{self, encrypt_reader_data, DataCipher, PinFormat, ReaderKey};
use cardlane::gateway::sim::decrypting_reader::DecryptingReader;
use cardlane::gateway::sim::{self, Bdk, SimConfig, SimServer};
use cardlane::gateway::ApiKey;
use cardlane::parse::build::{self, IdtechSpec};
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

const KEY: &str = "pin-test-key-51c0";
/// ANSI X9.24-1 test BDK; the card data's KSN is the first of its published examples.
const ANSI_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const CARD_KSN: &str = "FFFF9876543210E00001";
/// The published X9.24-1 PIN block for KSN ...E00002 (PIN 1234, PAN 4012345678909): the PIN
/// key's KSN differs from the card data's.
const PUB_PIN_KSN: &str = "FFFF9876543210E00002";
const PUB_PIN_BLOCK: &str = "10A01C8D02C69107";
/// A PIN DUKPT key of another device (another initial KSN) under the same BDK.
const PAD_KSN: &str = "FFFF9876543211E00004";
/// AES-128 BDK and a KSN of X9.24-3 (for the format 4 block).
const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
const AES_PIN_KSN: &str = "123456789012345600000002";
const PAN: &str = "4012345678909";
const PIN: &str = "1234";
const T1: &str = "%B4012345678909^TEST/ANSI CARD^2812101000000000?";
const T2: &str = ";4012345678909=28121010000000000?";

async fn start() -> SimServer {
    let mut cfg = SimConfig::new(ApiKey::new(KEY));
    cfg.plain_json = true;
    cfg.bdks = [ANSI_BDK, AES_BDK]
        .iter()
        .map(|b| Bdk::from_hex(b).unwrap())
        .collect();
    cfg.reader = Arc::new(DecryptingReader);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::spawn(cfg, listener).unwrap()
}

/// An ID TECH enhanced frame (data key, KSN `CARD_KSN` inside the frame) as hex.
fn frame_hex() -> String {
    let bdk = hex::decode(ANSI_BDK).unwrap();
    let ksn = hex::decode(CARD_KSN).unwrap();
    let enc = |pt: &str| {
        encrypt_reader_data(
            &bdk,
            &ksn,
            ReaderKey::Data,
            DataCipher::Tdes,
            None,
            pt.as_bytes(),
        )
        .unwrap()
        .to_vec()
    };
    let p1 = build::with_lrc(1, T1);
    let p2 = build::with_lrc(2, T2);
    hex::encode_upper(build::idtech_enhanced(&IdtechSpec {
        tracks: [Some(T1), Some(T2), None],
        enc: [Some(enc(&p1)), Some(enc(&p2)), None],
        hashes: [
            Some(Sha1::digest(p1.as_bytes()).into()),
            Some(Sha1::digest(p2.as_bytes()).into()),
            None,
        ],
        serial: Some("716T494010"),
        ksn: Some(Ksn::from_hex(CARD_KSN).unwrap()),
        ..Default::default()
    }))
}

fn block(bdk: &str, ksn: &str, format: PinFormat) -> String {
    let b = crypto::pin_block_encrypt_with_rng(
        &hex::decode(bdk).unwrap(),
        &crypto::Ksn::from_slice(&hex::decode(ksn).unwrap()).unwrap(),
        PIN,
        PAN,
        Some(format),
        None,
        &mut rand::thread_rng(),
    )
    .unwrap();
    hex::encode_upper(b)
}

async fn post(base: &str, id: &str, ksn: &str, pin_block: &str) -> Value {
    let body = json!({
        "client_ip": "10.0.0.5",
        "customer": {"customer_id": id, "zip": "32503", "action_code": "1"},
        "card": {"track_data": frame_hex(), "ksn": ksn, "pin_block": pin_block},
    });
    let r = reqwest::Client::new()
        .post(format!("{base}/Customer"))
        .header("x-authorization", KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let reply: Value = r.json().await.unwrap();
    let text = reply["customer_response"]["result_text"].to_string();
    assert!(!text.contains(PAN) && !text.contains(pin_block), "{text}");
    reply
}

fn code_and_text(reply: &Value) -> (i64, String) {
    let r = &reply["customer_response"];
    (
        r["result_code"].as_i64().unwrap(),
        r["result_text"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn each_format_verifies_under_its_own_pin_ksn() {
    let sim = start().await;
    let base = &sim.base_url;
    let cases = [
        ("F0-pub", PUB_PIN_KSN, PUB_PIN_BLOCK.to_owned()),
        ("F0", PAD_KSN, block(ANSI_BDK, PAD_KSN, PinFormat::Iso0)),
        ("F1", PAD_KSN, block(ANSI_BDK, PAD_KSN, PinFormat::Iso1)),
        ("F3", PAD_KSN, block(ANSI_BDK, PAD_KSN, PinFormat::Iso3)),
        (
            "F4",
            AES_PIN_KSN,
            block(AES_BDK, AES_PIN_KSN, PinFormat::Iso4),
        ),
    ];
    for (id, ksn, b) in &cases {
        assert_ne!(*ksn, CARD_KSN);
        let reply = post(base, id, ksn, b).await;
        assert_eq!(code_and_text(&reply).0, 1, "{id}: {reply}");
    }
    let all: Value = reqwest::Client::new()
        .get(format!("{base}/_sim/customers"))
        .header("x-authorization", KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (id, _, _) in &cases {
        let c = all
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["customer_id"] == *id)
            .unwrap_or_else(|| panic!("{id} not stored"));
        assert_eq!(c["account_last_4"], "8909", "{id}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_pin_ksn_is_named_and_a_wrong_block_too() {
    let sim = start().await;
    let base = &sim.base_url;
    let f3 = block(ANSI_BDK, PAD_KSN, PinFormat::Iso3);
    let f4 = block(AES_BDK, AES_PIN_KSN, PinFormat::Iso4);
    let wrong_ksn = [
        // The card data's KSN sent as the PIN KSN (the block is under ...E00002).
        ("K1", CARD_KSN, PUB_PIN_BLOCK.to_owned()),
        // A stale counter.
        ("K2", "FFFF9876543211E00003", f3.clone()),
        ("K3", "123456789012345600000003", f4.clone()),
    ];
    for (id, ksn, b) in &wrong_ksn {
        let (code, text) = code_and_text(&post(base, id, ksn, b).await);
        assert_eq!(code, 3, "{id}: {text}");
        assert!(text.starts_with("card.ksn"), "{id}: {text}");
    }
    // The right KSN, a damaged block (one bit flipped): the block is named.
    let mut damaged = hex::decode(&f3).unwrap();
    damaged[7] ^= 0x01;
    let mut damaged4 = hex::decode(&f4).unwrap();
    damaged4[0] ^= 0x80;
    for (id, ksn, b) in [
        ("B1", PAD_KSN, hex::encode_upper(damaged)),
        ("B2", AES_PIN_KSN, hex::encode_upper(damaged4)),
    ] {
        let (code, text) = code_and_text(&post(base, id, ksn, &b).await);
        assert_eq!(code, 3, "{id}: {text}");
        assert!(text.starts_with("card.pin_block"), "{id}: {text}");
    }
    sim.shutdown().await;
}
