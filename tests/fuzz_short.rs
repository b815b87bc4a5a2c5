//! A short run of the fuzz campaign (`examples/fuzz`): every target over 20,000 generated and
//! mutated inputs with a fixed seed; no input may panic. The long run's figures are in
//! BENCHMARKS.md.
#[path = "../examples/fuzz/engine.rs"]
mod engine;

#[test]
fn no_target_panics_on_mutated_inputs() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for t in engine::targets() {
        let seeds = engine::corpus(root, t.name);
        assert!(seeds.len() >= 3, "{}: too few seeds", t.name);
        let r = engine::run(&t, &seeds, 20_000, 7);
        assert_eq!(r.runs, 20_000);
        let shown: Vec<String> = r.examples.iter().map(hex::encode_upper).collect();
        assert_eq!(r.panics, 0, "{}: panicking inputs {shown:?}", t.name);
    }
}

/// The harness itself catches and keeps a panicking input, so a zero above means something.
#[test]
fn the_harness_counts_panics() {
    let t = engine::Target {
        name: "panics-on-stx",
        run: |b| assert!(!b.contains(&0x02), "STX"),
    };
    let r = engine::run(&t, &[b"\x02abc".to_vec(), b"xyz".to_vec()], 200, 1);
    assert!(r.panics >= 1);
    assert!(r.examples.iter().all(|e| e.contains(&0x02)));
}
