//! `cardlane bench dukpt [--seconds S] [--json]`: host-side DUKPT throughput on one core.
//! One operation = IPEK + current key + data key (OWF) + TDES-CBC decrypt of an 80-byte track,
//! nothing cached (issue 3 item 5). Also an AES-128 figure and one with the IPEK cache.
use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use cardlane::crypto::{self, DataCipher, DukptHost, ReaderKey};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// TDES DUKPT (uncached and with the IPEK cache) and AES-128 DUKPT throughput.
    Dukpt {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Print `{"ops_per_s": X}` (X = TDES uncached) as the last line.
        #[arg(long)]
        json: bool,
    },
    /// The DES core alone: single-DES block, TDES block, key schedule (ns each, one core).
    DesCore {
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
    },
}

/// The ANSI test BDK and a KSN with 8 counter bits set (the fixed workload).
const TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const TDES_KSN: &str = "FFFF9876543210E0AAAA";
/// X9.24-3 supplement AES-128 BDK; counter 0x000000FF also has 8 bits set.
const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
const AES_KSN: &str = "1234567890123456000000FF";

/// CPU time this thread has used, from /proc/thread-self/stat (utime + stime, clock ticks of
/// 10 ms). Why: the figure is "operations per second on one core"; on a shared machine wall
/// time mostly measures the other processes. `None` where /proc is not available.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

struct Rate {
    /// Operations per second of this thread's CPU time (wall time if CPU time is unavailable).
    cpu: f64,
    wall: f64,
}

/// Runs `op` in batches until `secs` of wall time have passed.
fn measure(secs: f64, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Rate> {
    let limit = Duration::from_secs_f64(secs.max(0.05));
    // Warm-up: tables into cache, CPU frequency settled.
    for _ in 0..200 {
        op()?;
    }
    let cpu0 = thread_cpu_seconds();
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..256 {
            op()?;
        }
        n += 256;
        let el = start.elapsed();
        if el >= limit {
            let wall = n as f64 / el.as_secs_f64();
            let cpu = match (cpu0, thread_cpu_seconds()) {
                (Some(a), Some(b)) if b - a >= 0.05 => n as f64 / (b - a),
                _ => wall,
            };
            return Ok(Rate { cpu, wall });
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (seconds, json) = match args.cmd {
        Cmd::Dukpt { seconds, json } => (seconds, json),
        Cmd::DesCore { seconds } => return des_core(seconds),
    };
    if !(seconds.is_finite() && seconds > 0.0) {
        anyhow::bail!("--seconds must be a positive number");
    }
    let tbdk = hex::decode(TDES_BDK)?;
    let tksn = hex::decode(TDES_KSN)?;
    let abdk = hex::decode(AES_BDK)?;
    let aksn = hex::decode(AES_KSN)?;
    // An 80-byte encrypted "track": any ciphertext does, decryption work is the same.
    let ct = crypto::encrypt_reader_data(
        &tbdk,
        &tksn,
        ReaderKey::Data,
        DataCipher::Tdes,
        None,
        &[0x3B; 80],
    )
    .map_err(super::dukpt::crypto_err)?;
    let act = crypto::encrypt_reader_data(
        &abdk,
        &aksn,
        ReaderKey::Data,
        DataCipher::Aes,
        None,
        &[0x3B; 80],
    )
    .map_err(super::dukpt::crypto_err)?;

    let tdes = measure(seconds, || {
        let pt = crypto::decrypt_reader_data(
            black_box(&tbdk),
            black_box(&tksn),
            ReaderKey::Data,
            DataCipher::Tdes,
            None,
            black_box(&ct),
        )
        .map_err(super::dukpt::crypto_err)?;
        black_box(pt);
        Ok(())
    })?;
    let mut host = DukptHost::new(&tbdk, 1024);
    let cached = measure(seconds, || {
        let pt = host
            .decrypt_reader_data(
                black_box(&tksn),
                ReaderKey::Data,
                DataCipher::Tdes,
                None,
                black_box(&ct),
            )
            .map_err(super::dukpt::crypto_err)?;
        black_box(pt);
        Ok(())
    })?;
    // The same operation on the constant-time core, as the simulator runs it for a real BDK.
    let ct_bdk = hex::decode("89ABCDEF0123456776543210FEDCBA98")?;
    let ct_ct = crypto::encrypt_reader_data(
        &ct_bdk,
        &tksn,
        ReaderKey::Data,
        DataCipher::Tdes,
        None,
        &[0x3B; 80],
    )
    .map_err(super::dukpt::crypto_err)?;
    let tdes_ct = measure(seconds / 4.0, || {
        let pt = crypto::decrypt_reader_data_on(
            crypto::DesCore::ConstantTime,
            black_box(&ct_bdk),
            black_box(&tksn),
            ReaderKey::Data,
            DataCipher::Tdes,
            None,
            black_box(&ct_ct),
        )
        .map_err(super::dukpt::crypto_err)?;
        black_box(pt);
        Ok(())
    })?;
    let aes = measure(seconds, || {
        let pt = crypto::decrypt_reader_data(
            black_box(&abdk),
            black_box(&aksn),
            ReaderKey::Data,
            DataCipher::Aes,
            None,
            black_box(&act),
        )
        .map_err(super::dukpt::crypto_err)?;
        black_box(pt);
        Ok(())
    })?;
    // Per CPU-second of one core; the wall-clock rate is shown for reference.
    for (name, r) in [
        (
            "tdes-dukpt uncached (IPEK + current key + data key OWF + TDES-CBC 80 B)",
            &tdes,
        ),
        ("tdes-dukpt with IPEK cache", &cached),
        (
            "tdes-dukpt uncached, constant-time DES core (real BDKs in the simulator)",
            &tdes_ct,
        ),
        (
            "aes128-dukpt uncached (IK + transaction key + data key + AES-CBC 80 B)",
            &aes,
        ),
    ] {
        println!(
            "{name}: {:.0} ops/s (one core; wall clock {:.0} ops/s)",
            r.cpu, r.wall
        );
    }
    if json {
        println!("{{\"ops_per_s\": {:.0}}}", tdes.cpu);
    }
    Ok(ExitCode::SUCCESS)
}

fn des_core(seconds: f64) -> anyhow::Result<ExitCode> {
    use cardlane::crypto::des_fast::{DesKey, Tdes};
    let key = DesKey::new(0x0123456789ABCDEF);
    let t = Tdes::from_halves(0x0123456789ABCDEF, 0xFEDCBA9876543210);
    let mut x = 0x4E6F772069732074u64;
    let block = measure(seconds, || {
        x = key.encrypt(black_box(x));
        Ok(())
    })?;
    let tdes = measure(seconds, || {
        x = t.encrypt(black_box(x));
        Ok(())
    })?;
    let mut q = [x, x ^ 1, x ^ 2, x ^ 3];
    let quad = measure(seconds, || {
        q = cardlane::crypto::des_fast::encrypt_multi([&key; 4], black_box(q));
        Ok(())
    })?;
    let mut q2 = [x, x ^ 1, x ^ 2, x ^ 3];
    let tquad = measure(seconds, || {
        q2 = t.decrypt_n(black_box(q2));
        Ok(())
    })?;
    let mask = DesKey::new(0xC0C0C0C000000000);
    let mut pr = (x, x ^ 5);
    let fresh = measure(seconds, || {
        pr = cardlane::crypto::des_fast::des_pair_fresh(black_box(pr.0), &mask, pr.0, pr.1);
        Ok(())
    })?;
    let fresh3 = measure(seconds, || {
        pr = cardlane::crypto::des_fast::tdes2_pair_fresh(
            black_box(pr.0),
            pr.1,
            Some(&mask),
            pr.0,
            pr.1,
        );
        Ok(())
    })?;
    let sched = measure(seconds, || {
        x = x.wrapping_add(1);
        black_box(DesKey::new(black_box(x)));
        Ok(())
    })?;
    let ct_key = cardlane::crypto::des_ct::CtDes::new(0x0123456789ABCDEF);
    let ct_block = measure(seconds, || {
        x = ct_key.encrypt(black_box(x));
        Ok(())
    })?;
    let ct_sched = measure(seconds, || {
        x = x.wrapping_add(1);
        black_box(cardlane::crypto::des_ct::CtDes::new(black_box(x)));
        Ok(())
    })?;
    use des::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
    let rc = des::Des::new_from_slice(&0x0123456789ABCDEFu64.to_be_bytes())?;
    let mut blk = GenericArray::clone_from_slice(&x.to_be_bytes());
    let crate_block = measure(seconds, || {
        rc.encrypt_block(black_box(&mut blk));
        Ok(())
    })?;
    for (name, r) in [
        ("des block", block),
        ("tdes block", tdes),
        ("des key schedule", sched),
        ("4 des blocks interleaved", quad),
        ("4 tdes blocks interleaved", tquad),
        ("des pair, fresh key (NRKGP step)", fresh),
        ("tdes pair, fresh key (IPEK/OWF)", fresh3),
        ("des crate block (reference)", crate_block),
        ("constant-time des block", ct_block),
        ("constant-time des key schedule", ct_sched),
    ] {
        println!("{name}: {:.1} ns (one core)", 1e9 / r.cpu);
    }
    Ok(ExitCode::SUCCESS)
}
