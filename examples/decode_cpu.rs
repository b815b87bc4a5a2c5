//! Decode cost in CPU time (not wall time: the build machine is shared), plus heap
//! allocations per decode. `cargo run --release --example decode_cpu [N] [tracks|idtech]`.
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use cardlane::parse::decode_frame;

/// Counts allocations so the report can show what each decode costs the allocator.
struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

/// One more allocation. A plain load and store, not `fetch_add`: the example allocates from
/// one thread only, and a locked add would charge ~20 cycles per allocation to the decode.
fn count() {
    ALLOCS.store(ALLOCS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const TRACKS: &[u8] =
    b"%B4111111111111111^TEST/CARD^2912101000000000000?;4111111111111111=29121010000000000?";

/// The ID TECH UniMag II manual sample (shared/samples/04_…), as in benches/decode.rs.
const SAMPLE04: &str = "02D500801F3723008383252A353135302A2A2A2A2A2A2A2A373836315E504159504153532F4D4153544552434152445E2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2A3B353135302A2A2A2A2A2A2A2A373836313D2A2A2A2A2A2A2A2A2A2A2A2A2A2A2A3F2AA096A6F5D1DCBE45B5F77EB2559FEE0411013232E3F42044C0397E3E9E6D9B3A11FB8ADE0712AFD097C23AA86DFDC9DBA0E73A6FD698FD2F80800C0E1E9ED1BEED5EEA9840DA53F41254FDB79E89B76B127C25FE44AE7524BAEB5BDAACF777FA31323334353637383930FFFF9876543210E0004ABBF903";

/// User + system CPU time of this thread, in nanoseconds.
fn thread_cpu_ns() -> u128 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_THREAD is Linux.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as u128 * 1_000_000_000 + t.tv_usec as u128 * 1_000;
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn measure(name: &str, frame: &[u8], n: u64) {
    // Warm caches and the branch predictor first. `black_box` gets a reference to the result:
    // passing the `CardRead` by value (or converting it with `.ok()`) would copy all of it and
    // count that copy as decoding. The result is dropped (zeroized, freed) in the loop.
    for _ in 0..n / 10 {
        black_box(&decode_frame(black_box(frame)));
    }
    let a0 = ALLOCS.load(Ordering::Relaxed);
    let t0 = thread_cpu_ns();
    for _ in 0..n {
        black_box(&decode_frame(black_box(frame)));
    }
    let cpu = thread_cpu_ns() - t0;
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let ns = cpu as f64 / n as f64;
    println!(
        "{name:24} {n:>9} decodes  {ns:8.0} ns CPU/decode  {:>10.0} decodes/CPU-s  {:5.1} allocs/decode  {:.3}% of 1 ms USB report",
        1e9 / ns,
        allocs as f64 / n as f64,
        ns / 1e6 * 100.0
    );
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let frame = hex::decode(SAMPLE04).unwrap_or_default();
    assert!(decode_frame(TRACKS).is_ok() && decode_frame(&frame).is_ok());
    let only = std::env::args().nth(2).unwrap_or_default();
    if only != "idtech" {
        measure("plain_track_pair", TRACKS, n);
    }
    if only != "tracks" {
        measure("idtech_enhanced_frame", &frame, n);
    }
}
