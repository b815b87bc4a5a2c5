//! `cardlane devices [--json]`: lists attached readers with the profile matched, the mode they
//! are in, and any permission problem with the fix.
use std::path::PathBuf;
use std::process::ExitCode;

use cardlane::device::enumerate::enumerate;
use cardlane::device::Profiles;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print a JSON array (`[]` when there are no readers).
    #[arg(long)]
    json: bool,
    /// Directory of profile TOML files overriding the built-in ones.
    #[arg(long, env = "CARDLANE_PROFILES_DIR")]
    profiles: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profiles = match Profiles::embedded_with_overrides(args.profiles.as_deref()) {
        Ok(p) => p,
        Err(e) => return Ok(super::profiles_unusable(&e)),
    };
    let found = enumerate(&profiles);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        println!("no readers found");
    }
    for d in &found {
        println!(
            "{}  {}  [{}] profile={}  {}:{}",
            d.selector,
            d.name,
            d.transport,
            d.profile.as_deref().unwrap_or("-"),
            d.vid,
            d.pid
        );
        if let Some(p) = &d.problem {
            println!("    problem: {p}");
        }
        if let Some(h) = &d.hint {
            println!("    hint: {h}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
