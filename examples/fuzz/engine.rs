//! A small mutation fuzzer on stable Rust: seeds from the bundled fixtures, mutations that
//! reach the interesting paths of reader formats (length fields, checksums, sentinels, TLV
//! flags, cut-offs, splices), and every target run under `catch_unwind`, so a panic is
//! counted and its input kept rather than ending the run. Shared by `examples/fuzz` (the long
//! campaign) and `tests/fuzz_short.rs` (a short run in `cargo test`).
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One thing to fuzz: a name and a function that must never panic on any input.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

pub fn targets() -> Vec<Target> {
    vec![
        Target {
            name: "decode",
            run: |b| {
                for f in cardlane::parse::split_frames(b) {
                    if let Ok(mut r) = cardlane::parse::decode_frame(f) {
                        cardlane::parse::validate_at(&mut r, 2612);
                        let _ = r.to_json();
                    }
                }
            },
        },
        Target {
            name: "tlv",
            run: |b| {
                if let Ok(t) = cardlane::parse::tlv::parse(b) {
                    let mut all = Vec::new();
                    cardlane::parse::tlv::flatten(&t, &mut all);
                }
                let _ = cardlane::parse::tlv::parse_cut_short(b);
                let _ = cardlane::parse::emv::decode_bare(b);
            },
        },
        Target {
            name: "capture",
            run: |b| {
                let text = String::from_utf8_lossy(b);
                if let Ok(c) = cardlane::capture::Capture::parse(&text) {
                    if let Ok(p) = cardlane::device::Profiles::embedded() {
                        let _ = cardlane::capture::frames(&c, &p);
                    }
                }
            },
        },
        Target {
            name: "config",
            run: |b| {
                let _ = cardlane::agent::config::Config::from_toml_str(&String::from_utf8_lossy(b));
            },
        },
        Target {
            name: "profile",
            run: |b| {
                let _ = cardlane::device::profile::Profile::from_toml(
                    "fuzz.toml",
                    &String::from_utf8_lossy(b),
                );
            },
        },
    ]
}

/// Turns a shipped file (name, bytes) into a seed, or skips it.
type SeedOf<'a> = &'a dyn Fn(&str, Vec<u8>) -> Option<Vec<u8>>;

/// Seeds for a target, from the files the project ships.
pub fn corpus(root: &Path, target: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut files = |dir: &str, f: SeedOf| {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            return;
        };
        let mut paths: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if let Ok(b) = std::fs::read(&p) {
                out.extend(f(&name, b));
            }
        }
    };
    let decode_seed = |name: &str, b: Vec<u8>| -> Option<Vec<u8>> {
        let text = String::from_utf8_lossy(&b);
        let body: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        if name.ends_with(".hex") {
            let clean: String = body.split_whitespace().collect();
            Some(hex::decode(clean).unwrap_or_else(|_| body.into_bytes()))
        } else {
            Some(body.into_bytes())
        }
    };
    match target {
        "decode" | "tlv" => {
            files("fixtures/decode/good", &decode_seed);
            files("fixtures/decode/broken", &decode_seed);
        }
        "capture" => files("fixtures/captures", &|n, b| {
            n.ends_with(".capture").then_some(b)
        }),
        "config" => {
            files("contrib", &|n, b| n.ends_with(".toml").then_some(b));
            out.push(cardlane::agent::config::EXAMPLE.as_bytes().to_vec());
            // The README's minimal configuration, and one with every reader key.
            out.push(
                b"[gateway]\nbase_url = \"https://apisandbox.onepay.com\"\n[queue]\npath = \"/tmp/q.db\"\n\
                  [api]\nlisten = \"127.0.0.1:7878\"\n[[readers]]\nid = \"front\"\n\
                  device = \"serial:/dev/ttyUSB0@9600\"\n[lane]\non_swipe = \"save\"\n"
                    .to_vec(),
            );
            out.push(
                b"[[readers]]\ndevice = \"hid:0ACD:3530\"\nprofile = \"idtech-securemag-hid\"\n\
                  [log]\nformat = \"json\"\nlevel = \"debug\"\n"
                    .to_vec(),
            );
        }
        "profile" => files("devices", &|n, b| n.ends_with(".toml").then_some(b)),
        _ => {}
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// Bytes that matter to reader formats: STX/ETX, sentinels, separators, TLV flag lengths.
const MAGIC: &[u8] = &[
    0x00, 0x01, 0x02, 0x03, 0x7F, 0x80, 0x81, 0x82, 0x84, 0xA1, 0xC1, 0xFF, b'%', b';', b'+', b'?',
    b'=', b'^', b'|', b'\r', b'\n', b'*', b'#', b'[', b']', b'"',
];

pub fn mutate(rng: &mut StdRng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut b = input.to_vec();
    let rounds = 1 + rng.gen_range(0..4);
    for _ in 0..rounds {
        let len = b.len();
        match rng.gen_range(0..9) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] = MAGIC[rng.gen_range(0..MAGIC.len())];
            }
            2 if len > 0 => {
                let i = rng.gen_range(0..len);
                b[i] = rng.gen();
            }
            3 if len > 0 => b.truncate(rng.gen_range(0..len)),
            4 if len > 0 => {
                let s = rng.gen_range(0..len);
                let e = (s + rng.gen_range(1..=16)).min(len);
                b.drain(s..e);
            }
            5 => {
                let i = rng.gen_range(0..=len);
                let n = rng.gen_range(1..=8);
                let ins: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                b.splice(i..i, ins);
            }
            6 => {
                // Splice in a slice of another seed.
                let other = &corpus[rng.gen_range(0..corpus.len())];
                if !other.is_empty() {
                    let s = rng.gen_range(0..other.len());
                    let e = (s + rng.gen_range(1..=64)).min(other.len());
                    let i = rng.gen_range(0..=len);
                    b.splice(i..i, other[s..e].iter().copied());
                }
            }
            7 if len > 1 => {
                // Duplicate a run (repeated fields, doubled frames).
                let s = rng.gen_range(0..len);
                let e = (s + rng.gen_range(1..=32)).min(len);
                let run: Vec<u8> = b[s..e].to_vec();
                b.splice(e..e, run);
            }
            8 if len > 1 => {
                // A length field: bump a byte up or down by a little.
                let i = rng.gen_range(0..len);
                b[i] = b[i].wrapping_add(rng.gen_range(1..=4)).wrapping_sub(2);
            }
            _ => b.push(rng.gen()),
        }
    }
    b
}

thread_local! {
    static IN_TARGET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Panics inside a target are expected and counted: their messages are kept off the terminal,
/// while any other panic (a failing assertion) still prints.
fn quiet_target_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_TARGET.with(|c| c.get()) {
                default(info);
            }
        }));
    });
}

/// What a run did: inputs executed and the inputs that panicked (kept, at most 10).
pub struct Report {
    pub runs: u64,
    pub panics: u64,
    pub examples: Vec<Vec<u8>>,
}

/// Runs `iterations` inputs through `target`: every seed as it is first, then mutations of
/// seeds and of earlier inputs (one in eight is fresh random bytes).
pub fn run(target: &Target, seeds: &[Vec<u8>], iterations: u64, seed: u64) -> Report {
    quiet_target_panics();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut report = Report {
        runs: 0,
        panics: 0,
        examples: Vec::new(),
    };
    let mut last: Vec<u8> = Vec::new();
    for n in 0..iterations {
        let input = if (n as usize) < seeds.len() {
            seeds[n as usize].clone()
        } else if rng.gen_ratio(1, 8) {
            let len = rng.gen_range(0..600);
            (0..len).map(|_| rng.gen()).collect()
        } else if rng.gen_ratio(1, 4) && !last.is_empty() {
            mutate(&mut rng, &last, seeds)
        } else {
            let s = &seeds[rng.gen_range(0..seeds.len())];
            mutate(&mut rng, s, seeds)
        };
        report.runs += 1;
        IN_TARGET.with(|c| c.set(true));
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        IN_TARGET.with(|c| c.set(false));
        if outcome.is_err() {
            report.panics += 1;
            if report.examples.len() < 10 {
                report.examples.push(input.clone());
            }
        }
        last = input;
    }
    report
}
