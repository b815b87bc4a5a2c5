//! `cardlane dukpt` / `cardlane pinblock` as a user runs them: outputs, typed errors, exit codes.
use std::process::Command;

mod common;
use common::OutputWithin;

const BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const KSN: &str = "FFFF9876543210E00001";

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(args)
        .output_within();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = run(args);
    assert_eq!(code, 0, "{args:?}: {err}");
    assert_eq!(out.lines().count(), 1, "one line: {out}");
    out.trim_end().to_string()
}

/// Exit 1, the reason code in the message, no panic, no secret echoed back.
fn fails(args: &[&str], code: &str) {
    let (status, out, err) = run(args);
    assert_eq!(status, 1, "{args:?}: {out} {err}");
    assert!(err.contains(code), "{args:?}: want {code} in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        !err.contains("0123456789ABCDEF") && !err.contains("FEDCBA98"),
        "{err}"
    );
}

#[test]
fn ansi_values_through_the_cli() {
    assert_eq!(
        ok(&["dukpt", "key", "--bdk", BDK, "--ksn", KSN, "--usage", "initial"]),
        "6AC292FAA1315B4D858AB3A3D7D5933A"
    );
    assert_eq!(
        ok(&[
            "dukpt",
            "key",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--usage",
            "data-request",
            "--no-owf"
        ]),
        "042666B4917BCFA368DE9628D0C67BC9"
    );
    let data = "3430313233343536373839303944393837";
    let ct = ok(&[
        "dukpt",
        "encrypt",
        "--bdk",
        BDK,
        "--ksn",
        KSN,
        "--usage",
        "data-request",
        "--data",
        data,
    ]);
    assert_eq!(ct, "FC0D53B7EA1FDA9EE68AAF2E70D9B9506229BE2AA993F04F");
    let pt = ok(&[
        "dukpt",
        "decrypt",
        "--bdk",
        BDK,
        "--ksn",
        KSN,
        "--usage",
        "data-request",
        "--data",
        &ct,
    ]);
    assert_eq!(pt, format!("{data}00000000000000"));
    assert_eq!(
        ok(&[
            "dukpt",
            "mac",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--usage",
            "mac-response",
            "--data",
            data
        ]),
        "20364223C1FF00FA"
    );
    assert_eq!(
        ok(&[
            "pinblock",
            "encrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--pin",
            "1234",
            "--pan",
            "4012345678909"
        ]),
        "1B9C1845EB993A7A"
    );
    assert_eq!(
        ok(&[
            "pinblock",
            "decrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--pan",
            "4012345678909",
            "--block",
            "1B9C1845EB993A7A"
        ]),
        "1234"
    );
}

#[test]
fn aes_through_the_cli() {
    // X9.24-3 supplement, AES-256 BDK with an AES-128 working key, and the IK.
    let bdk = "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210F1F1F1F1F1F1F1F1";
    let ksn = "1234567890123456FFFF0000";
    assert_eq!(
        ok(&[
            "dukpt",
            "key",
            "--bdk",
            bdk,
            "--ksn",
            "123456789012345600000001",
            "--usage",
            "pin",
            "--key-type",
            "aes128"
        ]),
        "09C9C432966811D6B2C3336BAC1B1202"
    );
    assert_eq!(
        ok(&["dukpt", "key", "--bdk", bdk, "--ksn", ksn, "--usage", "initial"]),
        "CE9CE0C101D1138F97FB6CAD4DF045A7083D4EAE2D35A31789D01CCF0949550F"
    );
    // Format 4 PIN block round trip (random fill, so check by decrypting).
    let blk = ok(&[
        "pinblock",
        "encrypt",
        "--bdk",
        bdk,
        "--ksn",
        ksn,
        "--pin",
        "98765",
        "--pan",
        "4111111111111111",
    ]);
    assert_eq!(blk.len(), 32);
    assert_eq!(
        ok(&[
            "pinblock",
            "decrypt",
            "--bdk",
            bdk,
            "--ksn",
            ksn,
            "--pan",
            "4111111111111111",
            "--block",
            &blk
        ]),
        "98765"
    );
    // CMAC is 16 bytes, AES-CBC output is whole 16-byte blocks, with a non-zero IV round trip.
    assert_eq!(
        ok(&[
            "dukpt",
            "mac",
            "--bdk",
            bdk,
            "--ksn",
            ksn,
            "--usage",
            "mac-request",
            "--data",
            "00"
        ])
        .len(),
        32
    );
    let iv = "000102030405060708090A0B0C0D0E0F";
    let ct = ok(&[
        "dukpt",
        "encrypt",
        "--bdk",
        bdk,
        "--ksn",
        ksn,
        "--usage",
        "data-request",
        "--iv",
        iv,
        "--data",
        "AABB",
    ]);
    assert_eq!(ct.len(), 32);
    let pt = ok(&[
        "dukpt",
        "decrypt",
        "--bdk",
        bdk,
        "--ksn",
        ksn,
        "--usage",
        "data-request",
        "--iv",
        iv,
        "--data",
        &ct,
    ]);
    assert_eq!(pt, format!("AABB{}", "0".repeat(28)));
}

#[test]
fn idtech_aes_option_uses_the_tdes_data_key() {
    // --cipher aes with a TDES KSN: AES-128-CBC under the 16-byte data key. Reference: the key
    // from `dukpt key` and the `aes` crate directly.
    use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
    let key = hex::decode(ok(&[
        "dukpt",
        "key",
        "--bdk",
        BDK,
        "--ksn",
        KSN,
        "--usage",
        "data-request",
    ]))
    .unwrap();
    let ct = ok(&[
        "dukpt",
        "encrypt",
        "--bdk",
        BDK,
        "--ksn",
        KSN,
        "--usage",
        "data-request",
        "--cipher",
        "aes",
        "--data",
        "41",
    ]);
    let c = aes::Aes128::new_from_slice(&key).unwrap();
    let mut b = [0u8; 16];
    b[0] = 0x41;
    let mut blk = GenericArray::clone_from_slice(&b);
    c.encrypt_block(&mut blk);
    assert_eq!(ct, hex::encode_upper(blk));
}

#[test]
fn bad_input_is_a_typed_error_with_exit_1() {
    let key = |bdk: &str, ksn: &str, code: &str| {
        fails(
            &["dukpt", "key", "--bdk", bdk, "--ksn", ksn, "--usage", "pin"],
            code,
        )
    };
    key("0123456789ABCDEFFEDCBA987654321", KSN, "bad-hex");
    key("0123456789ABCDEFFEDCBA98765432ZZ", KSN, "bad-hex");
    key("0123456789ABCDEFFEDCBA98765432", KSN, "bad-key-length");
    key(BDK, "FFFF9876543210E001", "bad-ksn-length");
    fails(
        &[
            "dukpt",
            "decrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--usage",
            "data-request",
            "--data",
            "00112233445566",
        ],
        "partial-block",
    );
    fails(
        &[
            "dukpt",
            "decrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--usage",
            "data-request",
            "--iv",
            "00",
            "--data",
            "0011223344556677",
        ],
        "bad-iv-length",
    );
    // The right block under the wrong KSN deciphers to garbage: control nibble check fires.
    fails(
        &[
            "pinblock",
            "decrypt",
            "--bdk",
            BDK,
            "--ksn",
            "FFFF9876543210E00002",
            "--pan",
            "4012345678909",
            "--block",
            "1B9C1845EB993A7A",
        ],
        "bad-pin-block",
    );
    fails(
        &[
            "pinblock",
            "decrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--pan",
            "4012345678909",
            "--block",
            "1B9C1845EB993A",
        ],
        "bad-pin-block",
    );
    fails(
        &[
            "pinblock",
            "encrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--pin",
            "12",
            "--pan",
            "4012345678909",
        ],
        "bad-pin",
    );
    fails(
        &[
            "pinblock",
            "encrypt",
            "--bdk",
            BDK,
            "--ksn",
            KSN,
            "--pin",
            "1234",
            "--pan",
            "4012345678909",
            "--format",
            "4",
        ],
        "unsupported",
    );
    fails(
        &["dukpt", "key", "--bdk", BDK, "--ksn", KSN, "--usage", "kek"],
        "unsupported",
    );
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        run(&["dukpt", "key", "--bdk", BDK, "--ksn", KSN, "--usage", "bogus"]).0,
        2
    );
    assert_eq!(run(&["dukpt", "frobnicate"]).0, 2);
    assert_eq!(run(&["pinblock", "encrypt", "--bdk", BDK]).0, 2);
    assert_eq!(
        run(&[
            "pinblock", "encrypt", "--bdk", BDK, "--ksn", KSN, "--pin", "1234", "--pan", "1",
            "--format", "2"
        ])
        .0,
        2
    );
}
