//! The fuzz campaign: `cargo run --release --example fuzz -- [--iterations N] [--seed S]
//! [TARGET…]` runs each target (decode, tlv, capture, config, profile; all by default) over N
//! generated and mutated inputs and prints one line per target. Exit 1 if any input panicked;
//! the first few such inputs are printed as hex (synthetic inputs: no real card data).
use std::path::Path;
use std::time::Instant;

mod engine;

fn main() -> std::process::ExitCode {
    let mut iterations: u64 = 10_000_000;
    let mut seed: u64 = 1;
    let mut names: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" => {
                iterations = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(iterations)
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(seed),
            _ => names.push(a),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failed = false;
    for t in engine::targets() {
        if !names.is_empty() && !names.iter().any(|n| n == t.name) {
            continue;
        }
        let seeds = engine::corpus(root, t.name);
        let start = Instant::now();
        let r = engine::run(&t, &seeds, iterations, seed);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:8} {:>11} inputs  {:>3} seeds  {:>8.1} s  {:>9.0} inputs/s  panics {}",
            t.name,
            r.runs,
            seeds.len(),
            secs,
            r.runs as f64 / secs.max(1e-9),
            r.panics
        );
        for e in &r.examples {
            println!("  panic input: {}", hex::encode_upper(e));
        }
        failed |= r.panics > 0;
    }
    if failed {
        std::process::ExitCode::from(1)
    } else {
        std::process::ExitCode::SUCCESS
    }
}
