//! `cardlane gateway-sim [--listen ADDR] [--bdk HEX]... [--db FILE] [--plain-json]`: the local
//! gateway simulator. API key from `CARDLANE_API_KEY` (or `--api-key-file`), BDKs from `--bdk`
//! or `CARDLANE_BDK` (comma- or space-separated); the ANSI test BDK only with `--test-bdk`.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use std::sync::Arc;

use cardlane::gateway::sim::decrypting_reader::DecryptingReader;
use cardlane::gateway::sim::{self, Bdk, SimConfig};
use cardlane::gateway::ApiKey;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one; the first output line tells which).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// A BDK (hex) for decrypting reader output and PIN blocks; repeatable. Default: the
    /// comma-separated list in CARDLANE_BDK.
    #[arg(long = "bdk", value_name = "HEX")]
    bdks: Vec<String>,
    /// With no --bdk and no CARDLANE_BDK, use the ANSI X9.24 test BDK
    /// 0123456789ABCDEFFEDCBA9876543210 (test readers only). Without it and without BDKs,
    /// encrypted card data is refused.
    #[arg(long)]
    test_bdk: bool,
    /// SQLite file that keeps customers across restarts (default: in memory).
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Answer with plain JSON instead of a double-encoded JSON string.
    #[arg(long)]
    plain_json: bool,
    /// File holding the API key (instead of CARDLANE_API_KEY).
    #[arg(long, value_name = "FILE")]
    api_key_file: Option<PathBuf>,
}

// By hand: BDKs must not reach a Debug print.
impl std::fmt::Debug for Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Args")
            .field("listen", &self.listen)
            .field("bdks", &self.bdks.len())
            .field("db", &self.db)
            .field("plain_json", &self.plain_json)
            .field("test_bdk", &self.test_bdk)
            .field("api_key_file", &self.api_key_file)
            .finish()
    }
}

/// The ANSI X9.24-1 example BDK (onepay-gateway.md "Test data"): public, for test readers only.
const ANSI_TEST_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let api_key = match api_key(&args)? {
        Some(k) => k,
        None => {
            eprintln!("error: no API key: set CARDLANE_API_KEY or pass --api-key-file");
            return Ok(ExitCode::from(2));
        }
    };
    let mut bdk_texts = args.bdks.clone();
    if bdk_texts.is_empty() {
        if let Ok(env) = std::env::var("CARDLANE_BDK") {
            bdk_texts = env
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
    }
    if bdk_texts.is_empty() && args.test_bdk {
        bdk_texts.push(ANSI_TEST_BDK.to_owned());
    }
    let mut bdks = Vec::new();
    for (i, text) in bdk_texts.iter().enumerate() {
        match Bdk::from_hex(text) {
            Ok(b) => bdks.push(b),
            Err(e) => {
                eprintln!("error: BDK #{}: {e}", i + 1);
                return Ok(ExitCode::from(2));
            }
        }
    }

    // A lab tool with a lab API key and test BDKs: it serves loopback only.
    let addrs: Vec<std::net::SocketAddr> =
        match std::net::ToSocketAddrs::to_socket_addrs(args.listen.as_str()) {
            Ok(a) => a.collect(),
            Err(e) => {
                eprintln!("error: --listen {}: {e}", args.listen);
                return Ok(ExitCode::from(2));
            }
        };
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        eprintln!(
            "error: --listen {}: the simulator listens on loopback only (127.0.0.0/8 or [::1])",
            args.listen
        );
        return Ok(ExitCode::from(2));
    }
    let listener = std::net::TcpListener::bind(addrs.as_slice())
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut cfg = SimConfig::new(api_key);
    cfg.db_path = args.db.clone();
    cfg.plain_json = args.plain_json;
    cfg.bdks = bdks;
    cfg.reader = Arc::new(DecryptingReader);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = sim::spawn(cfg, listener).context("cannot start the simulator")?;
        // Registered before "listening" is printed: a SIGTERM sent right after that line used
        // to find no handler yet (on a loaded machine) and kill the process outright.
        let signalled = wait_for_signal();
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on {}", server.base_url)?;
            out.flush()?;
        }
        let stop = server.stopper();
        tokio::spawn(async move {
            signalled.await;
            let _ = stop.send(true);
        });
        server.wait().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn api_key(args: &Args) -> anyhow::Result<Option<ApiKey>> {
    if let Some(path) = &args.api_key_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let key = text.trim();
        return Ok((!key.is_empty()).then(|| ApiKey::new(key)));
    }
    Ok(std::env::var("CARDLANE_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(|k| ApiKey::new(k.trim())))
}

/// Registers for SIGTERM and SIGINT at once (not on first poll) and resolves on either.
fn wait_for_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
