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
}

/// The ANSI test BDK and a KSN with 8 counter bits set (the fixed workload).
const TDES_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";
const TDES_KSN: &str = "FFFF9876543210E0AAAA";
/// X9.24-3 supplement AES-128 BDK; counter 0x000000FF also has 8 bits set.
const AES_BDK: &str = "FEDCBA9876543210F1F1F1F1F1F1F1F1";
const AES_KSN: &str = "1234567890123456000000FF";

/// Runs `op` in batches until `secs` have passed; returns operations per second.
fn measure(secs: f64, mut op: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let limit = Duration::from_secs_f64(secs.max(0.05));
    // Warm-up: tables into cache, CPU frequency settled.
    for _ in 0..200 {
        op()?;
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for _ in 0..256 {
            op()?;
        }
        n += 256;
        let el = start.elapsed();
        if el >= limit {
            return Ok(n as f64 / el.as_secs_f64());
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Cmd::Dukpt { seconds, json } = args.cmd;
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
    println!("tdes-dukpt uncached (IPEK + current key, 8 bits + data key OWF + TDES-CBC 80 B): {tdes:.0} ops/s");
    println!("tdes-dukpt with IPEK cache: {cached:.0} ops/s");
    println!("aes128-dukpt uncached (IK + transaction key, 8 bits + data key + AES-CBC 80 B): {aes:.0} ops/s");
    if json {
        println!("{{\"ops_per_s\": {tdes:.0}}}");
    }
    Ok(ExitCode::SUCCESS)
}
