//! An MMS transaction update carrying an ARQC container (fixtures/decode/good) goes through the
//! HID packet layer and back, is classified as card data, and its container decodes and
//! decrypts under the ANSI test BDK to the fixture's card.
use cardlane::crypto::BdkDecryptor;
use cardlane::parse::{decode_frame, decrypt_read};
use cardlane::protocol::mms::message::Message;
use cardlane::protocol::mms::notify::{self, classify, Notice, Technology};
use cardlane::protocol::mms::packet::{segment, Reassembler, REPORT_LEN};

mod common;
use common::decode_fixture_bytes;

#[test]
fn arqc_notification_through_packets_to_the_card() {
    let container = decode_fixture_bytes("magtek_emv_arqc_contact.hex");
    let msg = notify::card_data(Technology::Contact, false, &container).encode();
    // Header bytes as the spec lays them out: AA 00, 81 04 83 00 01 01, 82 04 10 08 02 02.
    assert_eq!(
        &msg[..14],
        &hex::decode("AA00810483000101820410080202").unwrap()[..]
    );
    let reports = segment(&msg, REPORT_LEN);
    assert!(reports.len() > 3, "a container spans several packets");
    let mut asm = Reassembler::new();
    let mut whole = None;
    for r in &reports {
        if let Some(m) = asm.push(r).unwrap() {
            whole = Some(m);
        }
    }
    let m = Message::decode(&whole.unwrap()).unwrap();
    let Notice::CardData {
        technology,
        batch,
        container: got,
    } = classify(&m)
    else {
        panic!("not card data: {:?}", classify(&m));
    };
    assert_eq!((technology, batch), (Technology::Contact, false));
    assert_eq!(got.as_slice(), &container[..]);
    let r = decode_frame(&got).unwrap();
    assert_eq!(r.last4.as_deref(), Some("0011"));
    let d = decrypt_read(
        &r,
        &BdkDecryptor::new(&hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap()).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(
        d.decrypted.unwrap()[1].as_ref().unwrap().expose(),
        ";5413330089020011=25122010000000000000?"
    );
}

#[test]
fn container_found_after_unknown_leading_bytes() {
    // MagTek's demo code skips 6 bytes of the payload before the data; whatever they are, the
    // container is found after them, with or without its length prefix.
    let container = decode_fixture_bytes("magtek_emv_batch_contactless.hex");
    for lead in [
        &[0x01, 0x01, 0xDF, 0x82, 0x00, 0xCC][..],
        &[0x01, 0x01][..],
        &[][..],
    ] {
        let mut payload = lead.to_vec();
        payload.extend(&container);
        assert_eq!(
            notify::find_container(&payload),
            Some(&container[..]),
            "{lead:02X?}"
        );
        payload.truncate(lead.len());
        payload.extend(&container[2..]);
        assert_eq!(notify::find_container(&payload), Some(&container[2..]));
    }
    assert_eq!(notify::find_container(&[0x01, 0x02, 0x03]), None);
}

/// The same container as an eDynamo sends it: input report 02 parts of a 0304 transaction
/// result (signature-required byte first), joined, classified, decoded.
#[test]
fn v5_result_notification_to_the_card() {
    use cardlane::protocol::magtek_v5::notify::{self as v5, V5Notice};
    let container = decode_fixture_bytes("magtek_emv_batch_contactless.hex");
    let mut data = vec![0x00];
    data.extend(&container);
    let reports = v5::reports(v5::RESULT, &data, 55, 64);
    assert!(reports.len() >= 4);
    let mut a = v5::NoticeAssembler::new();
    let mut done = None;
    for r in &reports {
        if let Some(x) = a.push(r) {
            done = Some(x);
        }
    }
    let (id, d) = done.unwrap();
    let V5Notice::CardData {
        batch,
        container: got,
    } = v5::classify(id, &d)
    else {
        panic!("not card data");
    };
    assert!(batch);
    assert_eq!(got.as_slice(), &container[..]);
    assert_eq!(decode_frame(&got).unwrap().last4.as_deref(), Some("0119"));
}
