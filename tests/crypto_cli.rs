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

/// AES-CMAC from its definition (RFC 4493 §2.3-2.4) over the `aes` block cipher, checked
/// against the RFC's four examples; an oracle for the CLI that shares no code with
/// `crypto::mac` (which uses the `cmac` crate).
mod rfc4493 {
    use aes::cipher::{BlockEncrypt, KeyInit};

    fn enc(k: &aes::Aes128, b: [u8; 16]) -> [u8; 16] {
        let mut blk = b.into();
        k.encrypt_block(&mut blk);
        blk.into()
    }

    fn dbl(b: [u8; 16]) -> [u8; 16] {
        let v = u128::from_be_bytes(b);
        let r = (v << 1) ^ if v >> 127 == 1 { 0x87 } else { 0 };
        r.to_be_bytes()
    }

    fn xor(a: [u8; 16], b: &[u8]) -> [u8; 16] {
        let mut o = a;
        for (x, y) in o.iter_mut().zip(b) {
            *x ^= y;
        }
        o
    }

    pub fn cmac(key: &[u8], m: &[u8]) -> [u8; 16] {
        let k = aes::Aes128::new_from_slice(key).unwrap();
        let k1 = dbl(enc(&k, [0; 16]));
        let k2 = dbl(k1);
        let n = m.len().div_ceil(16).max(1);
        let complete = !m.is_empty() && m.len() % 16 == 0;
        let last_start = (n - 1) * 16;
        let last = if complete {
            xor(k1, &m[last_start..])
        } else {
            let mut p = [0u8; 16];
            let tail = &m[last_start..];
            p[..tail.len()].copy_from_slice(tail);
            p[tail.len()] = 0x80;
            xor(k2, &p)
        };
        let mut x = [0u8; 16];
        for blk in m[..last_start].chunks(16) {
            x = enc(&k, xor(x, blk));
        }
        enc(&k, xor(x, &last))
    }

    /// RFC 4493 §4, examples 1-4: (message length, tag).
    pub const EXAMPLES: [(usize, &str); 4] = [
        (0, "BB1D6929E95937287FA37D129B756746"),
        (16, "070A16B46B4D4144F79BDD9DD04A287C"),
        (40, "DFA66747DE9AE63030CA32611497C827"),
        (64, "51F0BEBF7E3B9D92FC49741779363CFE"),
    ];
    pub const KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
    pub const MESSAGE: &str = "6BC1BEE22E409F96E93D7E117393172AAE2D8A571E03AC9C9EB76FAC45AF8E51\
                               30C81C46A35CE411E5FBC1191A0A52EFF69F2445DF4F9B17AD2B417BE66C3710";
}

/// `dukpt mac` with an AES KSN is AES-CMAC under the request/response MAC key: checked for the
/// four message shapes of RFC 4493 (empty, one whole block, a partial last block, several
/// whole blocks) against the RFC-checked CMAC above under the X9.24-3 supplement's MAC keys,
/// and against moov-io's published CMAC of the 17-byte transaction data.
#[test]
fn cli_cmac_matches_rfc4493_and_published_values() {
    let m = hex::decode(rfc4493::MESSAGE).unwrap();
    let rfc_key = hex::decode(rfc4493::KEY).unwrap();
    for (len, tag) in rfc4493::EXAMPLES {
        assert_eq!(
            hex::encode_upper(rfc4493::cmac(&rfc_key, &m[..len])),
            tag,
            "oracle vs RFC 4493, {len} bytes"
        );
    }
    let d: serde_json::Value =
        serde_json::from_str(include_str!("vectors/aes_dukpt_x9_24_3_2017.json")).unwrap();
    let bdk = d["aes128_bdk"]["bdk"].as_str().unwrap();
    let row = &d["aes128_bdk"]["ksns"][0];
    let ksn = row["ksn"].as_str().unwrap();
    for (usage, field) in [
        ("mac-request", "mac_gen_key_aes128"),
        ("mac-response", "mac_ver_key_aes128"),
    ] {
        let key = hex::decode(row[field].as_str().unwrap()).unwrap();
        for (len, _) in rfc4493::EXAMPLES {
            let data = if len == 0 {
                String::new()
            } else {
                hex::encode_upper(&m[..len])
            };
            let got = ok(&[
                "dukpt", "mac", "--bdk", bdk, "--ksn", ksn, "--usage", usage, "--data", &data,
            ]);
            assert_eq!(
                got,
                hex::encode_upper(rfc4493::cmac(&key, &m[..len])),
                "{usage}, {len} bytes"
            );
        }
    }
    // moov-io's rows: CMAC over the ASCII transaction data.
    let data = hex::encode_upper(d["transaction_data_ascii"].as_str().unwrap());
    for r in d["moov_aes128_working_key_examples"]["rows"]
        .as_array()
        .unwrap()
    {
        let ksn = r["ksn"].as_str().unwrap();
        for (usage, field) in [
            ("mac-request", "cmac_request"),
            ("mac-response", "cmac_response"),
        ] {
            let got = ok(&[
                "dukpt", "mac", "--bdk", bdk, "--ksn", ksn, "--usage", usage, "--data", &data,
            ]);
            assert_eq!(got, r[field].as_str().unwrap(), "{ksn} {usage}");
        }
    }
}

/// The other AES DUKPT working-key types through the CLI (values from
/// tests/vectors/aes_dukpt_oracle.py, see crypto_vectors.rs).
#[test]
fn cli_aes_key_types_tdes2_tdes3_aes192_and_an_aes192_bdk() {
    let bdk128 = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
    let ksn = "123456789012345600000001";
    for (kt, want) in [
        ("tdes2", "630C706D9546E47D4449313F61C4D4AB"),
        ("tdes3", "EA8B3F37EB9B15831167EF2977FD8762D9B5913F35766F6A"),
        ("aes192", "E891D98AFCC6A7A3F0C510BDF28F3D4B29323DDF075C9E13"),
    ] {
        let got = ok(&[
            "dukpt",
            "key",
            "--bdk",
            bdk128,
            "--ksn",
            ksn,
            "--usage",
            "pin",
            "--key-type",
            kt,
        ]);
        assert_eq!(got, want, "{kt}");
    }
    let bdk192 = "FEDCBA9876543210F1F1F1F1F1F1F1F1FEDCBA9876543210";
    assert_eq!(
        ok(&["dukpt", "key", "--bdk", bdk192, "--ksn", ksn, "--usage", "initial"]),
        "5B6DEE2B5B7FABFFA32591F35BF8F23DD9329AE85131E584"
    );
    assert_eq!(
        ok(&[
            "dukpt",
            "key",
            "--bdk",
            bdk192,
            "--ksn",
            ksn,
            "--usage",
            "data-request"
        ]),
        "C1D4541AE0E33949DD03F2A10B5E5486BBCAC1C520320E0C"
    );
}

/// A zero counter names the initial key itself; a counter past the device's last one-bit budget
/// (10 TDES, 16 AES: X9.24) is one no reader sends. Both are refused by name, for every
/// transaction usage and for PIN blocks; `--usage initial` ignores the counter and still works.
#[test]
fn zero_and_exhausted_counters_are_refused_by_name() {
    let aes_bdk = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
    for (bdk, ksn, code) in [
        (BDK, "FFFF9876543210E00000", "zero-counter"),
        // 0x1FFC00: eleven one-bits, one past the TDES device's last counter 0x1FF800.
        (BDK, "FFFF9876543210FFFC00", "ksn-exhausted"),
        (BDK, "FFFF9876543210FFFFFF", "ksn-exhausted"),
        (aes_bdk, "123456789012345600000000", "zero-counter"),
        // 0x0001FFFF: seventeen one-bits (X9.24-3 skips it).
        (aes_bdk, "12345678901234560001FFFF", "ksn-exhausted"),
    ] {
        for usage in ["transaction", "pin", "data-request", "mac-request"] {
            fails(
                &["dukpt", "key", "--bdk", bdk, "--ksn", ksn, "--usage", usage],
                code,
            );
        }
        fails(
            &[
                "pinblock",
                "encrypt",
                "--bdk",
                bdk,
                "--ksn",
                ksn,
                "--pin",
                "1234",
                "--pan",
                "4012345678909",
            ],
            code,
        );
        fails(
            &[
                "pinblock",
                "decrypt",
                "--bdk",
                bdk,
                "--ksn",
                ksn,
                "--pan",
                "4012345678909",
                "--block",
                "1B9C1845EB993A7A",
            ],
            code,
        );
    }
    // The initial key does not use the counter: the X9.24-1 IPEK from the initial KSN.
    assert_eq!(
        ok(&[
            "dukpt",
            "key",
            "--bdk",
            BDK,
            "--ksn",
            "FFFF9876543210E00000",
            "--usage",
            "initial"
        ]),
        "6AC292FAA1315B4D858AB3A3D7D5933A"
    );
    // The last counters a device uses are still served (ten / sixteen one-bits).
    ok(&[
        "dukpt",
        "key",
        "--bdk",
        BDK,
        "--ksn",
        "FFFF9876543210FFF800",
        "--usage",
        "pin",
    ]);
    ok(&[
        "dukpt",
        "key",
        "--bdk",
        aes_bdk,
        "--ksn",
        "1234567890123456FFFF0000",
        "--usage",
        "pin",
    ]);
}
