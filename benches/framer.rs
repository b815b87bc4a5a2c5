//! Framer cost per HID report, against the 1 ms a full-speed interrupt report takes on the wire
//! (goal: far under 1 %, i.e. under 10 µs).
use std::time::Duration;

use cardlane::device::framer::{Framer, FramerOptions};
use cardlane::device::profile::Framing;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// ID TECH UniMag II enhanced frame from the vendor manual (shared/samples/04…).
const IDTECH_ENHANCED: &str = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";

fn bench(c: &mut Criterion) {
    let frame = hex::decode(IDTECH_ENHANCED).unwrap_or_default();
    let mut report = frame.clone();
    report.resize(537, 0);

    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Elements(1));
    // One SecureMag-class 537-byte zero-filled report holding a whole frame.
    g.bench_function("idtech_report_537", |b| {
        let mut f = Framer::new(Framing::IdtechReport, FramerOptions::default(), "bench");
        b.iter(|| {
            let out = f.push(std::hint::black_box(&report), Duration::ZERO);
            assert_eq!(out.len(), 1);
        })
    });
    // The same frame over 64-byte continuation reports: cost per report.
    let reports: Vec<Vec<u8>> = report.chunks(64).map(<[u8]>::to_vec).collect();
    g.throughput(Throughput::Elements(reports.len() as u64));
    g.bench_function("continuation_reports_64", |b| {
        let mut f = Framer::new(
            Framing::ContinuationReport,
            FramerOptions::default(),
            "bench",
        );
        b.iter(|| {
            let mut n = 0;
            for r in &reports {
                n += f.push(std::hint::black_box(r), Duration::ZERO).len();
            }
            assert_eq!(n, 1);
        })
    });
    // A MagTek 888-byte report (each report is a frame).
    let magtek: Vec<u8> = (0..888u32).map(|i| (i % 251) as u8).collect();
    g.throughput(Throughput::Elements(1));
    g.bench_function("magtek_report_888", |b| {
        let opts = FramerOptions {
            report_size: 888,
            ..FramerOptions::default()
        };
        let mut f = Framer::new(Framing::MagtekReport, opts, "bench");
        b.iter(|| {
            let out = f.push(std::hint::black_box(&magtek), Duration::ZERO);
            assert_eq!(out.len(), 1);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
