//! The `cardlane` command line (design.md §3). Exit status: 0 success, 1 bad input or remote
//! side, 2 usage error.
#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cardlane", version, about = "Card-present terminal agent")]
struct Cli {
    /// Log format on standard error: `human` or `json` (default `human`, or `[log] format` of
    /// `run`'s configuration). Level from CARDLANE_LOG (default `warn`, or `[log] level`).
    #[arg(long, global = true, value_parser = ["human", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulator + bundled captures through the whole agent; prints what was saved.
    Demo(cli::demo::Args),
    /// The agent: readers → queue → gateway, plus the local API.
    Run(cli::run::Args),
    /// Lists attached readers.
    Devices(cli::devices::Args),
    /// Decodes reader output into JSON lines.
    Decode(cli::decode::Args),
    /// DUKPT keys, encryption and MACs (lab tool).
    Dukpt(cli::dukpt::Args),
    /// ISO 9564 PIN blocks under DUKPT (lab tool).
    Pinblock(cli::pinblock::Args),
    /// Builds synthetic reader output from clear tracks (lab tool).
    Synth(cli::synth::Args),
    /// Benchmarks.
    Bench(cli::bench::Args),
    /// The local gateway simulator.
    GatewaySim(cli::gateway_sim::Args),
    /// Replays capture files through the agent pipeline.
    Replay(cli::replay::Args),
    /// Records a reader's raw traffic to a capture file.
    Capture(cli::capture::Args),
    /// Inspects and drains the durable queue.
    Queue(cli::queue::Args),
    /// Drives a reader: status, one card-on-file read, cancel.
    Reader(cli::reader::Args),
    /// A simulated driven reader (NEO 2) on a PTY.
    ReaderSim(cli::reader_sim::Args),
    /// Prints a one-time sign-in URL for the browser console of the running agent.
    ConsoleUrl(cli::console_url::Args),
}

fn init_tracing(format: &str, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CARDLANE_LOG")
        .or_else(|_| EnvFilter::try_new(default_level))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colour only on a terminal: a pipe or journald gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` takes its log settings from its configuration; the flag and CARDLANE_LOG still win.
    let (config_format, level) = match &cli.command {
        Command::Run(a) => cli::run::log_settings(a),
        _ => (None, "warn".to_string()),
    };
    let format = cli
        .log_format
        .clone()
        .or(config_format)
        .unwrap_or_else(|| "human".to_string());
    init_tracing(&format, &level);
    let result = match cli.command {
        Command::Demo(a) => cli::demo::run(a),
        Command::Run(a) => cli::run::run(a),
        Command::Devices(a) => cli::devices::run(a),
        Command::Decode(a) => cli::decode::run(a),
        Command::Dukpt(a) => cli::dukpt::run(a),
        Command::Pinblock(a) => cli::pinblock::run(a),
        Command::Synth(a) => cli::synth::run(a),
        Command::Bench(a) => cli::bench::run(a),
        Command::GatewaySim(a) => cli::gateway_sim::run(a),
        Command::Replay(a) => cli::replay::run(a),
        Command::Capture(a) => cli::capture::run(a),
        Command::Queue(a) => cli::queue::run(a),
        Command::Reader(a) => cli::reader::run(a),
        Command::ReaderSim(a) => cli::reader_sim::run(a),
        Command::ConsoleUrl(a) => cli::console_url::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Errors are built from redacted types only (design.md §2), so printing them is safe.
            eprintln!("error: {}", cli::error_text(&e));
            ExitCode::from(1)
        }
    }
}
