//! `cardlane console-url [--config FILE]`: asks the running agent for a one-time sign-in code
//! and prints the console URL that carries it (first line). The code works once, for about a
//! minute, and is exchanged by the page for a session cookie: the token never goes into a URL.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use cardlane::agent::api::token;
use cardlane::agent::config::Config;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The agent's configuration (for `[api] listen` and `token_file`).
    #[arg(long, env = "CARDLANE_CONFIG")]
    config: Option<PathBuf>,
    /// The agent's API address (`127.0.0.1:7878` or `http://…`), when it is not `[api] listen`
    /// (e.g. the agent was started with port 0).
    #[arg(long)]
    api: Option<String>,
}

/// Where to reach a listener: an unspecified address (all interfaces) is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: config: {e}");
                return Ok(ExitCode::from(1));
            }
        },
        None => Config::default(),
    };
    if !config.api.enabled {
        eprintln!("error: the API is disabled (api.enabled = false): there is no console");
        return Ok(ExitCode::from(1));
    }
    // The agent creates the token file; none means no agent has run with this configuration.
    if !config.api.token_file.exists() {
        eprintln!(
            "error: no token file at {} (is the agent running with this configuration?)",
            config.api.token_file.display()
        );
        return Ok(ExitCode::from(1));
    }
    let token = token::load_or_create(&config.api.token_file)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("reading the API token")?;
    let addr = match &args.api {
        None => reachable(config.api.listen),
        Some(text) => {
            let bare = text.trim_start_matches("http://").trim_end_matches('/');
            match bare.parse::<SocketAddr>() {
                Ok(a) => reachable(a),
                Err(_) => {
                    eprintln!("error: --api {text}: not an address like 127.0.0.1:7878");
                    return Ok(ExitCode::from(2));
                }
            }
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer: serde_json::Value = rt.block_on(async {
        let resp = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?
            .post(format!("http://{addr}/v1/console/code"))
            .bearer_auth(token.expose())
            .send()
            .await
            .with_context(|| format!("is the agent running? no answer from http://{addr}"))?;
        let status = resp.status();
        anyhow::ensure!(status.is_success(), "the agent answered {status}");
        Ok::<_, anyhow::Error>(resp.json().await?)
    })?;
    let path = answer["path"]
        .as_str()
        .context("the agent's answer has no sign-in path")?;
    println!("http://{addr}{path}");
    let ttl = answer["expires_in_s"].as_u64().unwrap_or(60);
    eprintln!("open it within {ttl} s; it works once");
    Ok(ExitCode::SUCCESS)
}
