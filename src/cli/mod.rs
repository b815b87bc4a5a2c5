//! One module per command; each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
pub mod bench;
pub mod capture;
pub mod decode;
pub mod demo;
pub mod devices;
pub mod dukpt;
pub mod gateway_sim;
pub mod pinblock;
pub mod queue;
pub mod reader;
pub mod reader_sim;
pub mod replay;
pub mod run;
pub mod synth;

/// Reader profiles that will not load (a bad file in the profiles directory) are bad input, exit
/// 1: the command line was right, the file it pointed at is not (design.md §3).
pub fn profiles_unusable(e: &cardlane::device::ProfileError) -> std::process::ExitCode {
    eprintln!("error: {}: {e}", e.code());
    std::process::ExitCode::from(1)
}
