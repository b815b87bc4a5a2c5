//! One module per command; each has `Args` (clap) and `run(Args) -> anyhow::Result<ExitCode>`.
pub mod bench;
pub mod capture;
pub mod console_url;
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
