//! Decode throughput: plain track pair (goal ≥ 1,000,000/s) and an ID TECH enhanced frame
//! (goal ≥ 500,000/s), one core.
use cardlane::parse::decode_frame;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const TRACKS: &[u8] =
    b"%B4111111111111111^TEST/CARD^2912101000000000000?;4111111111111111=29121010000000000?";

/// The ID TECH UniMag II manual sample (shared/samples/04_…).
const SAMPLE04: &str = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("plain_track_pair", |b| {
        b.iter(|| decode_frame(black_box(TRACKS)).map(|r| r.last4))
    });
    let frame = hex::decode(SAMPLE04).unwrap_or_default();
    g.bench_function("idtech_enhanced_frame", |b| {
        b.iter(|| decode_frame(black_box(&frame)).map(|r| r.last4))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
