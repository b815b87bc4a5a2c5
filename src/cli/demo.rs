//! `cardlane demo`: the simulator on a free loopback port (temporary database, ANSI test BDK),
//! the bundled fixtures replayed through the whole pipeline (decode, durable queue in a temporary
//! file, upload), one dip and one tap through a driven reader (`reader-sim` on a PTY, see
//! [`driven`]), two checks through a MICR reader capture, and a table of what was saved.
//! Everything it creates is removed at the end.
mod driven;

use cardlane::gateway::check_record::{AccountType, CheckOptions, SecCode};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use cardlane::agent::captures::Captures;
use cardlane::agent::events::EventHub;
use cardlane::agent::metrics::Metrics;
use cardlane::agent::pipeline::{GatewayDeliver, Pipeline, Swipe};
use cardlane::device::profile::Profiles;
use cardlane::gateway::sim::decrypting_reader::DecryptingReader;
use cardlane::gateway::sim::{self, Bdk, SimConfig};
use cardlane::gateway::ApiKey;
use cardlane::queue::{KeySource, Queue, QueueConfig, QueueKey};
use rand::Rng;

use super::replay::{self, Entry};

/// The ANSI X9.24 test BDK every synthetic fixture is encrypted under (public test key).
const TEST_BDK: &str = "0123456789ABCDEFFEDCBA9876543210";

/// The bundled fixtures: (name, capture text), made by `fixtures/captures/make.sh` (synthetic,
/// ANSI test BDK, issuer test PANs; provenance in fixtures/README.md). Captures whose frames are
/// meant to fail (bad reads, unplugged, stray text) are left out: the demo shows saves.
const FIXTURES: &[(&str, &str)] = &[
    (
        "generic-keyboard-wedge.capture",
        include_str!("../../fixtures/captures/generic-keyboard-wedge.capture"),
    ),
    (
        "idtech-augusta-hid.capture",
        include_str!("../../fixtures/captures/idtech-augusta-hid.capture"),
    ),
    (
        "idtech-augusta-kb.capture",
        include_str!("../../fixtures/captures/idtech-augusta-kb.capture"),
    ),
    (
        "idtech-augusta-s-hid.capture",
        include_str!("../../fixtures/captures/idtech-augusta-s-hid.capture"),
    ),
    (
        "idtech-augusta-s-kb.capture",
        include_str!("../../fixtures/captures/idtech-augusta-s-kb.capture"),
    ),
    (
        "idtech-secured-hid.capture",
        include_str!("../../fixtures/captures/idtech-secured-hid.capture"),
    ),
    (
        "idtech-secured-kb.capture",
        include_str!("../../fixtures/captures/idtech-secured-kb.capture"),
    ),
    (
        "idtech-securekey-hid.capture",
        include_str!("../../fixtures/captures/idtech-securekey-hid.capture"),
    ),
    (
        "idtech-securemag-hid.capture",
        include_str!("../../fixtures/captures/idtech-securemag-hid.capture"),
    ),
    (
        "idtech-securemag-kb.capture",
        include_str!("../../fixtures/captures/idtech-securemag-kb.capture"),
    ),
    (
        "idtech-serial.capture",
        include_str!("../../fixtures/captures/idtech-serial.capture"),
    ),
    (
        "idtech-sredkey2-hid.capture",
        include_str!("../../fixtures/captures/idtech-sredkey2-hid.capture"),
    ),
    (
        "idtech-sredkey2-kb.capture",
        include_str!("../../fixtures/captures/idtech-sredkey2-kb.capture"),
    ),
    (
        "idtech-vp3300-hid.capture",
        include_str!("../../fixtures/captures/idtech-vp3300-hid.capture"),
    ),
    (
        "idtech-vp3350-hid.capture",
        include_str!("../../fixtures/captures/idtech-vp3350-hid.capture"),
    ),
    (
        "magtek-dynamag-hid.capture",
        include_str!("../../fixtures/captures/magtek-dynamag-hid.capture"),
    ),
    (
        "magtek-dynamag-kb.capture",
        include_str!("../../fixtures/captures/magtek-dynamag-kb.capture"),
    ),
    (
        "magtek-edynamo-hid.capture",
        include_str!("../../fixtures/captures/magtek-edynamo-hid.capture"),
    ),
    (
        "magtek-idynamo-kb.capture",
        include_str!("../../fixtures/captures/magtek-idynamo-kb.capture"),
    ),
    (
        "garbage-idtech-serial.capture",
        include_str!("../../fixtures/captures/garbage-idtech-serial.capture"),
    ),
    (
        "multi-idtech-securemag-hid.capture",
        include_str!("../../fixtures/captures/multi-idtech-securemag-hid.capture"),
    ),
    (
        "multi-magtek-edynamo-hid.capture",
        include_str!("../../fixtures/captures/multi-magtek-edynamo-hid.capture"),
    ),
    // Two checks (personal, business) from a MICR reader, each taken by a kiosk check capture.
    (
        "magtek-micr-serial.capture",
        include_str!("../../fixtures/captures/magtek-micr-serial.capture"),
    ),
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait for the simulator's answers.
    #[arg(long, default_value_t = 5.0)]
    wait: f64,
}

/// A scratch directory removed on drop (the demo must leave nothing behind).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch() -> anyhow::Result<Scratch> {
    let n: u64 = rand::thread_rng().gen();
    let dir = std::env::temp_dir().join(format!("cardlane-demo-{}-{n:016x}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(Scratch(dir))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let dir = scratch()?;
    let profiles = Profiles::embedded().context("loading reader profiles")?;
    // A throwaway key shared by the simulator and the client; never printed.
    let key_text = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
    let mut sim_cfg = SimConfig::new(ApiKey::new(key_text.clone()));
    sim_cfg.db_path = Some(dir.0.join("gateway.db"));
    sim_cfg.reader = Arc::new(DecryptingReader);
    sim_cfg.bdks = vec![Bdk::from_hex(TEST_BDK).map_err(|e| anyhow::anyhow!("{e}"))?];
    let queue = Arc::new(
        Queue::open(
            dir.0.join("queue.db"),
            QueueConfig {
                key: KeySource::Key(QueueKey::random()),
                ..QueueConfig::default()
            },
        )
        .context("opening the demo queue")?,
    );
    let fixtures: Vec<_> = FIXTURES
        .iter()
        .map(|(name, text)| {
            (
                (*name).to_string(),
                replay::load(name, text.as_bytes(), &profiles),
            )
        })
        .collect();
    let driven_reads = driven::reads(&dir.0, &profiles)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let wait = Duration::from_secs_f64(args.wait.clamp(0.0, 600.0));
    let (entries, base_url) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding a loopback port for the simulator")?;
        let server = sim::spawn(sim_cfg, listener).context("starting the simulator")?;
        let base_url = server.base_url.clone();
        let client = replay::client(&base_url, ApiKey::new(key_text))?;
        // The demo's fixtures include clear-text wedge samples: allowed here, off by default.
        let cfg = replay::replay_config(true, "DEMO", 4);
        let captures = Arc::new(Captures::new(4));
        arm_checks(&captures)?;
        let pipeline = Pipeline::start(
            cfg,
            queue,
            Arc::new(GatewayDeliver::new(client)),
            EventHub::default(),
            captures,
            Arc::new(Metrics::new()),
        )?;
        let (mut entries, interrupted) = replay::submit_all(&pipeline, fixtures, true).await;
        for (name, profile, mut frame) in driven_reads {
            // Moved, not copied: the bytes stay in one zeroizing buffer.
            let bytes = std::mem::take(&mut *frame);
            let swipe = Swipe::new(bytes, "reader-sim", Some(Arc::new(profile)));
            let ticket = pipeline.submit(swipe).await;
            entries.push(Entry::Swipe {
                fixture: name,
                index: 0,
                ticket,
            });
        }
        if !interrupted {
            replay::settle_all(&mut entries, wait, None).await;
        }
        pipeline.shutdown().await;
        server.shutdown().await;
        anyhow::Ok((entries, base_url))
    })?;
    print_table(&entries, &base_url, started.elapsed())
}

/// The kiosk side of the two bundled checks: a check needs a name, so each is armed as a kiosk
/// would (`POST /v1/captures` with `"kind":"check"`). The business one says so; the personal
/// one takes the defaults (checking, PPD).
fn arm_checks(captures: &Captures) -> anyhow::Result<()> {
    let names = |first: &str, last: &str| {
        let mut m = serde_json::Map::new();
        m.insert("first_name".into(), first.into());
        m.insert("last_name".into(), last.into());
        m
    };
    let minute = Duration::from_secs(60);
    captures
        .arm_check(
            None,
            names("Pat", "Personal"),
            minute,
            CheckOptions::default(),
        )
        .map_err(|e| anyhow::anyhow!("arming a check capture: {e}"))?;
    let mut business = names("Bea", "Business");
    business.insert("company".into(), "Demo Supplies LLC".into());
    let options = CheckOptions {
        account_type: Some(AccountType::Business),
        sec_code: Some(SecCode::Ccd),
        bank_name: Some("Demo Test Bank".into()),
    };
    captures
        .arm_check(None, business, minute, options)
        .map_err(|e| anyhow::anyhow!("arming a check capture: {e}"))?;
    Ok(())
}

fn print_table(entries: &[Entry], base_url: &str, took: Duration) -> anyhow::Result<ExitCode> {
    let mut rows = vec![[
        "fixture".to_string(),
        "customer id".into(),
        "masked PAN".into(),
        "brand".into(),
        "entry".into(),
        "outcome".into(),
        "token".into(),
    ]];
    let mut kept = 0;
    for e in entries {
        match e {
            Entry::Swipe {
                fixture, ticket, ..
            } => {
                let o = ticket.outcome();
                if o.is_kept() {
                    kept += 1;
                }
                let outcome = match o.error() {
                    Some(err) => format!("{} ({err})", o.as_str()),
                    None => o.as_str().to_string(),
                };
                rows.push([
                    fixture.clone(),
                    ticket.customer_id.clone().unwrap_or_else(|| "-".into()),
                    ticket
                        .masked_pan
                        .as_ref()
                        .map(|m| m.as_str().to_string())
                        .or_else(|| ticket.masked_account.clone())
                        .unwrap_or_else(|| "-".into()),
                    ticket.brand.clone().unwrap_or_else(|| "-".into()),
                    ticket.entry_mode.clone().unwrap_or_else(|| "-".into()),
                    outcome,
                    o.token().unwrap_or_else(|| "-".into()),
                ]);
            }
            Entry::Bad { fixture, error } => rows.push([
                fixture.clone(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                format!("unreadable ({})", error.code),
                "-".into(),
            ]),
        }
    }
    let mut widths = [0usize; 7];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "gateway simulator on {base_url} (ANSI test BDK)")?;
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    let swipes = rows.len() - 1;
    writeln!(
        out,
        "{kept} of {swipes} swipes saved or queued in {} ms; simulator, queue and keys removed",
        took.as_millis()
    )?;
    Ok(if kept == swipes {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
