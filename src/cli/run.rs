//! `cardlane run [--config FILE]`: the agent in service. Prints `ready: api on http://ADDR` on
//! standard output once the API listens (tests and supervisors wait for it), runs until SIGTERM
//! or SIGINT, then stops gracefully and exits 0.
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use cardlane::agent::config::{Config, LogFormat};
use cardlane::agent::service::{stop_signal, Service};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Configuration file (TOML, design.md §3). Without it every key takes its default.
    #[arg(long, env = "CARDLANE_CONFIG")]
    config: Option<PathBuf>,
    /// Check the configuration and exit (0 when it is valid).
    #[arg(long)]
    check: bool,
}

/// The `[log]` format and level of the configuration, for setting up logging before `run`
/// starts; a configuration that does not load leaves `warn` (`run` reports the error).
pub fn log_settings(args: &Args) -> (Option<String>, String) {
    let config = match args.config.as_deref() {
        Some(path) => Config::load(path),
        None => Ok(Config::default()),
    };
    match config {
        Ok(c) => {
            let format = match c.log.format {
                LogFormat::Json => "json",
                LogFormat::Human => "human",
            };
            (Some(format.to_string()), c.log.level.clone())
        }
        _ => (None, "warn".to_string()),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::load(path),
        None => {
            eprintln!(
                "error: run needs a configuration: cardlane run --config FILE (or CARDLANE_CONFIG). \
                 A complete example with every key is contrib/cardlane.toml; check a file with \
                 cardlane run --check --config FILE"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: config: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    if args.check {
        // What `run` would refuse, short of opening devices, the queue and the listener.
        if let Err(e) = Service::check(&config) {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        println!("config ok: {} reader(s)", config.readers.len());
        return Ok(ExitCode::SUCCESS);
    }
    // Before any card data can be in memory.
    if let Err(e) = cardlane::agent::service::no_core_dumps() {
        eprintln!("error: cannot disable core dumps: {e}");
        return Ok(ExitCode::from(1));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    // Signals are hooked before anything starts, so a stop during start-up is not lost.
    let signal = tokio::spawn(stop_signal());
    let service = match Service::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            tracing::error!(code = e.code(), "cannot start");
            return Ok(ExitCode::from(1));
        }
    };
    {
        let mut out = std::io::stdout().lock();
        match service.api_addr() {
            Some(addr) => writeln!(out, "ready: api on http://{addr}")?,
            None => writeln!(out, "ready: api disabled")?,
        }
        out.flush()?;
    }
    match service.api_addr() {
        Some(addr) => tracing::info!(api = %addr, "ready"),
        None => tracing::info!("ready; api disabled"),
    }
    let why = match signal.await {
        Ok(Ok(name)) => name,
        Ok(Err(e)) => {
            let _ = service.shutdown().await;
            anyhow::bail!("cannot watch for signals: {e}");
        }
        Err(e) => anyhow::bail!("signal task failed: {e}"),
    };
    tracing::info!(signal = why, "stopping");
    service.shutdown().await?;
    eprintln!("stopped ({why})");
    Ok(ExitCode::SUCCESS)
}
