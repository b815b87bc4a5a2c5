//! Issue 5: framer + decode cost per HID report, in CPU time, against the 1 ms a USB full-speed
//! interrupt report takes on the wire (goal: under 1 %, i.e. under 10 µs per report).
//!
//! Every HID capture under fixtures/captures/ is fed, report by report, to a fresh framer for
//! its profile, and each frame that comes out goes through `parse::decode_frame`; a second
//! figure adds DUKPT decryption with the test BDK. Time is the thread's own CPU time
//! (getrusage RUSAGE_THREAD, user + sys), because the machine is shared and wall time measures
//! the other load. Run: `cargo bench --bench readers_hid [-- SECONDS_PER_CASE]`.
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use cardlane::capture::Capture;
use cardlane::crypto::BdkDecryptor;
use cardlane::device::framer::Framer;
use cardlane::device::profile::{Profile, TransportKind};
use cardlane::device::Profiles;
use cardlane::parse;

/// This thread's user + system CPU time.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    if rc != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One pass over a capture: every report through a new framer, every frame decoded (and
/// decrypted when `dec` is given). Returns the number of frames decoded without error.
fn pass(p: &Profile, reports: &[Vec<u8>], dec: Option<&BdkDecryptor>) -> usize {
    let mut f = Framer::for_profile(p, "bench");
    let mut ok = 0;
    for r in reports {
        for frame in f.push(black_box(r), Duration::ZERO) {
            if let Ok(read) = parse::decode_frame(&frame.bytes) {
                match dec {
                    Some(d) => ok += usize::from(parse::decrypt_read(&read, d, None).is_ok()),
                    None => ok += 1,
                }
                black_box(read);
            }
        }
    }
    ok
}

/// CPU ns per report over passes lasting `secs` of CPU time, and the wall-clock figure.
fn measure(p: &Profile, reports: &[Vec<u8>], dec: Option<&BdkDecryptor>, secs: f64) -> (f64, f64) {
    // Warm up and size a batch of about 10 ms.
    let t0 = Instant::now();
    let mut warm = 0u64;
    while t0.elapsed() < Duration::from_millis(200) {
        black_box(pass(p, reports, dec));
        warm += 1;
    }
    let batch = (warm / 20).max(1);
    let (c0, w0) = (thread_cpu(), Instant::now());
    let mut passes = 0u64;
    while (thread_cpu() - c0).as_secs_f64() < secs {
        for _ in 0..batch {
            black_box(pass(p, reports, dec));
        }
        passes += batch;
    }
    let n = (passes * reports.len() as u64) as f64;
    let cpu = (thread_cpu() - c0).as_secs_f64() * 1e9 / n;
    let wall = w0.elapsed().as_secs_f64() * 1e9 / n;
    (cpu, wall)
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the CPU seconds per case.
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1.0);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/captures");
    let profiles = Profiles::embedded().expect("embedded profiles");
    let bdk = hex::decode("0123456789ABCDEFFEDCBA9876543210").unwrap_or_default();
    let dec = BdkDecryptor::new(&bdk).expect("test BDK");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("fixtures/captures")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".capture"))
        .collect();
    names.sort();

    println!(
        "{:<40} {:>7} {:>6} | {:>10} {:>7} {:>10} | {:>10} {:>7}",
        "capture (HID)",
        "reports",
        "frames",
        "cpu ns/rep",
        "% of 1ms",
        "wall ns/rep",
        "+decrypt",
        "% of 1ms"
    );
    let mut worst: f64 = 0.0;
    for name in names {
        let Ok(text) = std::fs::read_to_string(dir.join(&name)) else {
            continue;
        };
        let Ok(cap) = Capture::parse(&text) else {
            continue;
        };
        let Some(p) = cap
            .headers
            .profile
            .as_deref()
            .and_then(|id| profiles.get(id))
        else {
            continue;
        };
        if p.transport != TransportKind::Hid {
            continue;
        }
        let reports: Vec<Vec<u8>> = cap.chunks.iter().map(|c| c.bytes.to_vec()).collect();
        let frames = pass(p, &reports, None);
        let (cpu, wall) = measure(p, &reports, None, secs);
        let (cpu_d, _) = measure(p, &reports, Some(&dec), secs);
        worst = worst.max(cpu);
        println!(
            "{:<40} {:>7} {:>6} | {:>10.0} {:>7.3}% {:>10.0} | {:>10.0} {:>7.3}%",
            name.trim_end_matches(".capture"),
            reports.len(),
            frames,
            cpu,
            cpu / 1e4,
            wall,
            cpu_d,
            cpu_d / 1e4
        );
    }
    println!(
        "worst framer+decode cost: {worst:.0} ns CPU per report = {:.3}% of a 1 ms full-speed report (goal < 1%)",
        worst / 1e4
    );
}
