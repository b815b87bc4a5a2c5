//! `cardlane replay [--gateway URL] [--queue FILE] [--no-delay] [--wait S] FIXTURE…`
//! (design.md §3): without `--gateway` decodes only (decode's JSON lines plus `fixture`); with it
//! every swipe goes through the whole pipeline (record, durable queue, upload) and gives one line
//! `{"fixture","swipe","customer_id","outcome","token","masked_pan","error"}`.
//!
//! A fixture is a capture file (`# cardlane capture v1`, fed chunk by chunk to the same framer
//! as a live reader), a `.hex` file (hex text of binary reader output) or raw reader output.
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::decode::strip_comments;
use anyhow::Context;
use cardlane::agent::captures::Captures;
use cardlane::agent::events::EventHub;
use cardlane::agent::metrics::Metrics;
use cardlane::agent::pipeline::{
    default_queue_path, shutdown_signal, GatewayDeliver, Pipeline, PipelineConfig, Swipe,
    SwipeOutcome, SwipeTicket,
};
use cardlane::capture::{self, Capture};
use cardlane::device::profile::{Profile, Profiles};
use cardlane::gateway::swipe::LaneSettings;
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient};
use cardlane::parse;
use cardlane::queue::{Backoff, KeySource, Queue, QueueConfig, QueueLock, UploaderConfig};
use serde_json::{json, Value};
use zeroize::Zeroizing;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Gateway base URL: run the whole pipeline (API key from CARDLANE_API_KEY). https, or
    /// plain http to a loopback host only (as `run`).
    #[arg(long, value_parser = gateway_url)]
    gateway: Option<String>,
    /// The queue file (default: $CARDLANE_QUEUE, else $XDG_STATE_HOME or ~/.local/state
    /// /cardlane/queue.db).
    #[arg(long)]
    queue: Option<PathBuf>,
    /// Queue key file (default: CARDLANE_QUEUE_KEY, else FILE.key next to the queue).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Feed frames as fast as possible instead of at the capture's pace.
    #[arg(long)]
    no_delay: bool,
    /// Seconds to wait for the gateway's answers before reporting swipes `queued`.
    #[arg(long, default_value_t = 10.0)]
    wait: f64,
    /// Accept clear-text (non-encrypting) reads.
    #[arg(long)]
    allow_clear: bool,
    /// Gateway deliveries in flight at most.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Prefix of the customer ids the agent generates.
    #[arg(long, default_value = "CL")]
    customer_id_prefix: String,
    /// Records the queue may hold (as `[queue] max_records` of `run`); a swipe past it is
    /// refused, never dropped. Raise it to replay a burst larger than the gateway keeps up with.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    max_records: u64,
    /// Capture files, `.hex` files or raw reader output.
    #[arg(required = true)]
    fixtures: Vec<PathBuf>,
}

/// `--gateway` as `run` takes `gateway.base_url`: checked before anything connects; a bad one
/// is a usage error.
pub(crate) fn gateway_url(s: &str) -> Result<String, String> {
    cardlane::gateway::client::check_base_url(s).map_err(str::to_string)
}

/// One complete frame of a fixture, with its time since the fixture's start.
pub(crate) struct SourceFrame {
    pub bytes: Zeroizing<Vec<u8>>,
    pub at: Duration,
}

/// A fixture's frames and the reader profile its header names.
pub(crate) struct Loaded {
    pub frames: Vec<SourceFrame>,
    pub profile: Option<Arc<Profile>>,
}

/// Why a fixture could not be cut into frames: a reason code and a message (no input bytes).
pub(crate) struct LoadError {
    pub code: &'static str,
    pub message: String,
}

/// Cuts a fixture's bytes into frames. `name` decides `.hex`.
pub(crate) fn load(name: &str, input: &[u8], profiles: &Profiles) -> Result<Loaded, LoadError> {
    // Any version's signature: a capture this build cannot read is refused as such, not decoded
    // as if its text were a reader's output.
    if capture::is_capture(input) {
        let text = std::str::from_utf8(input).map_err(|_| LoadError {
            code: "not-a-capture",
            message: "capture file is not UTF-8 text".into(),
        })?;
        let cap = Capture::parse(text).map_err(|e| LoadError {
            code: e.code(),
            message: e.to_string(),
        })?;
        let profile = cap
            .headers
            .profile
            .as_deref()
            .and_then(|id| profiles.get(id))
            .map(|p| Arc::new(p.clone()));
        let frames = capture::frames_from(&cap, profiles, name).map_err(|e| LoadError {
            code: e.code(),
            message: e.to_string(),
        })?;
        return Ok(Loaded {
            frames: frames
                .into_iter()
                .map(|f| SourceFrame {
                    bytes: f.bytes,
                    at: f.at,
                })
                .collect(),
            profile,
        });
    }
    let data = if name.ends_with(".hex") {
        let cleaned: Zeroizing<Vec<u8>> = Zeroizing::new(
            strip_comments(input)
                .into_iter()
                .filter(|c| !c.is_ascii_whitespace())
                .collect(),
        );
        Zeroizing::new(hex::decode(&*cleaned).map_err(|_| LoadError {
            code: "bad-hex",
            message: "the file is not hex text".into(),
        })?)
    } else if parse::detect_is_text(input) {
        Zeroizing::new(strip_comments(input))
    } else {
        Zeroizing::new(input.to_vec())
    };
    let frames: Vec<SourceFrame> = parse::split_frames(&data)
        .into_iter()
        .map(|f| SourceFrame {
            bytes: Zeroizing::new(f.to_vec()),
            at: Duration::ZERO,
        })
        .collect();
    if frames.is_empty() {
        return Err(LoadError {
            code: "truncated",
            message: "no frame in the input".into(),
        });
    }
    Ok(Loaded {
        frames,
        profile: None,
    })
}

fn read_fixture(path: &Path, profiles: &Profiles) -> Result<Loaded, LoadError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| LoadError {
        code: "unreadable-file",
        message: format!("cannot read the file ({})", e.kind()),
    })?);
    load(&path.display().to_string(), &bytes, profiles)
}

fn error_json(code: &str, message: &str) -> Value {
    json!({"code": code, "message": message})
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let profiles = Profiles::embedded().context("loading reader profiles")?;
    match args.gateway.clone() {
        None => decode_only(&args, &profiles),
        Some(url) => {
            let Some(key) = std::env::var("CARDLANE_API_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty())
            else {
                eprintln!("error: --gateway needs the API key in CARDLANE_API_KEY");
                return Ok(ExitCode::from(2));
            };
            through_pipeline(&args, &profiles, &url, ApiKey::new(key.trim()))
        }
    }
}

fn decode_only(args: &Args, profiles: &Profiles) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for path in &args.fixtures {
        let fixture = path.display().to_string();
        let loaded = match read_fixture(path, profiles) {
            Ok(l) => l,
            Err(e) => {
                failed = true;
                writeln!(
                    out,
                    "{}",
                    json!({"fixture": fixture, "error": error_json(e.code, &e.message)})
                )?;
                continue;
            }
        };
        for frame in &loaded.frames {
            let micr_set = loaded.profile.as_deref().and_then(|p| p.micr_decoding());
            let line = match parse::decode_frame_as(&frame.bytes, micr_set) {
                Ok(mut r) => {
                    parse::validate(&mut r);
                    let mut v = r.to_json();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("fixture".into(), fixture.clone().into());
                    }
                    v
                }
                Err(e) => {
                    failed = true;
                    json!({"fixture": fixture, "error": error_json(e.code(), &e.to_string())})
                }
            };
            writeln!(out, "{line}")?;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One swipe's line.
pub(crate) fn outcome_json(
    fixture: &str,
    swipe: usize,
    t: &SwipeTicket,
    o: &SwipeOutcome,
) -> Value {
    let outcome = match o {
        // Everything submitted is durable or ended once the pipeline has shut down.
        SwipeOutcome::Pending => "failed",
        other => other.as_str(),
    };
    json!({
        "fixture": fixture,
        "swipe": swipe,
        "customer_id": t.customer_id,
        "outcome": outcome,
        "token": o.token(),
        "masked_pan": t.masked_pan.as_ref().map(|m| m.as_str()),
        "error": o.error(),
    })
}

/// A swipe submitted (or a fixture that gave none).
pub(crate) enum Entry {
    Swipe {
        fixture: String,
        index: usize,
        ticket: SwipeTicket,
    },
    Bad {
        fixture: String,
        error: LoadError,
    },
}

/// Lane settings and uploader tuned for replays: short retry delays so a bounded wait sees
/// the retries of a flaky gateway.
pub(crate) fn replay_config(allow_clear: bool, prefix: &str, concurrency: usize) -> PipelineConfig {
    PipelineConfig {
        lane: LaneSettings {
            allow_clear,
            customer_id_prefix: prefix.to_string(),
            ..LaneSettings::default()
        },
        uploader: UploaderConfig {
            concurrency,
            backoff: Backoff {
                base: Duration::from_millis(100),
                max: Duration::from_secs(2),
            },
            idle_poll: Duration::from_millis(500),
        },
        ..PipelineConfig::default()
    }
}

pub(crate) fn client(url: &str, key: ApiKey) -> anyhow::Result<GatewayClient> {
    let mut cfg = ClientConfig::new(url, key);
    cfg.connect_timeout = Duration::from_secs(2);
    cfg.total_timeout = Duration::from_secs(10);
    GatewayClient::new(cfg).map_err(|e| anyhow::anyhow!("gateway client: {e}"))
}

/// Submits every frame of `fixtures` (at the captures' pace unless `no_delay`), stopping early
/// on SIGINT/SIGTERM. Returns the entries in order and whether a signal arrived.
pub(crate) async fn submit_all(
    pipeline: &Pipeline,
    fixtures: Vec<(String, Result<Loaded, LoadError>)>,
    no_delay: bool,
) -> (Vec<Entry>, bool) {
    let mut entries = Vec::new();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    for (fixture, loaded) in fixtures {
        let loaded = match loaded {
            Ok(l) => l,
            Err(error) => {
                entries.push(Entry::Bad { fixture, error });
                continue;
            }
        };
        let mut last = Duration::ZERO;
        for (i, frame) in loaded.frames.into_iter().enumerate() {
            if !no_delay {
                let gap = frame.at.saturating_sub(last);
                last = frame.at;
                tokio::select! {
                    _ = tokio::time::sleep(gap) => {}
                    _ = &mut signal => return (entries, true),
                }
            }
            let swipe = Swipe {
                frame: frame.bytes,
                reader_id: fixture.clone(),
                profile: loaded.profile.clone(),
                pin_block: None,
                capture: None,
            };
            let ticket = tokio::select! {
                t = pipeline.submit(swipe) => t,
                _ = &mut signal => return (entries, true),
            };
            entries.push(Entry::Swipe {
                fixture: fixture.clone(),
                index: i + 1,
                ticket,
            });
        }
    }
    (entries, false)
}

/// Waits up to `wait` (in all) for final answers; a signal cuts the wait short.
pub(crate) async fn settle_all(
    entries: &mut [Entry],
    wait: Duration,
    progress: Option<&indicatif::ProgressBar>,
) {
    let deadline = tokio::time::Instant::now() + wait;
    let signal = shutdown_signal();
    tokio::pin!(signal);
    for e in entries.iter_mut() {
        if let Entry::Swipe { ticket, .. } = e {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            tokio::select! {
                _ = ticket.settle(left) => {}
                _ = &mut signal => return,
            }
        }
        if let Some(p) = progress {
            p.inc(1);
        }
    }
}

fn through_pipeline(
    args: &Args,
    profiles: &Profiles,
    url: &str,
    key: ApiKey,
) -> anyhow::Result<ExitCode> {
    let queue_path = args.queue.clone().unwrap_or_else(default_queue_path);
    if let Some(dir) = queue_path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the queue directory {}", dir.display()))?;
    }
    let key_source = match &args.key_file {
        Some(p) => KeySource::File(p.clone()),
        None => KeySource::Auto,
    };
    // One process per queue file (refused with the holder's pid).
    let _lock = QueueLock::acquire(&queue_path)?;
    let queue = Arc::new(
        Queue::open(
            &queue_path,
            QueueConfig {
                key: key_source,
                max_records: args.max_records,
                ..QueueConfig::default()
            },
        )
        .with_context(|| format!("opening queue {}", queue_path.display()))?,
    );
    let fixtures: Vec<(String, Result<Loaded, LoadError>)> = args
        .fixtures
        .iter()
        .map(|p| (p.display().to_string(), read_fixture(p, profiles)))
        .collect();
    let total: usize = fixtures
        .iter()
        .map(|(_, l)| l.as_ref().map_or(1, |l| l.frames.len()))
        .sum();
    let gateway = client(url, key)?;
    let cfg = replay_config(
        args.allow_clear,
        &args.customer_id_prefix,
        usize::from(args.concurrency),
    );
    let wait = Duration::from_secs_f64(args.wait.clamp(0.0, 86_400.0));
    let progress = (std::io::stderr().is_terminal() && total > 1).then(|| {
        let p = indicatif::ProgressBar::new(total as u64);
        p.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} swipes {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        p
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let started = Instant::now();
    let entries = runtime.block_on(async {
        let pipeline = Pipeline::start(
            cfg,
            queue,
            Arc::new(GatewayDeliver::new(gateway)),
            EventHub::default(),
            Arc::new(Captures::new(16)),
            Arc::new(Metrics::new()),
        )?;
        let mut uploads = pipeline.uploader().subscribe();
        let (mut entries, interrupted) = submit_all(&pipeline, fixtures, args.no_delay).await;
        if !interrupted && !pipeline.uploader().is_paused() {
            // A refused key (or a URL that is not the gateway) pauses uploads: nothing more
            // will settle, so the wait ends there.
            let paused = async {
                loop {
                    match uploads.recv().await {
                        Ok(cardlane::queue::UploadEvent::AuthFailed { .. }) => return,
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                        _ => {}
                    }
                }
            };
            tokio::select! {
                _ = settle_all(&mut entries, wait, progress.as_ref()) => {}
                _ = paused => {}
            }
        }
        let paused = pipeline.uploader().is_paused();
        pipeline.shutdown().await;
        anyhow::Ok((entries, paused))
    })?;
    let (entries, paused) = entries;
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    tracing::info!(
        swipes = total,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "replay done"
    );
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut all_kept = true;
    for e in &entries {
        match e {
            Entry::Swipe {
                fixture,
                index,
                ticket,
            } => {
                let o = ticket.outcome();
                let mut line = outcome_json(fixture, *index, ticket, &o);
                if paused && matches!(o, SwipeOutcome::Queued | SwipeOutcome::Pending) {
                    // Kept in the queue, but nothing will send it until the key or URL is
                    // fixed: not a success.
                    line["outcome"] = "auth-failed".into();
                    line["error"] = "the gateway refused the API key or the URL is not the gateway's; the record is kept in the queue".into();
                    all_kept = false;
                } else {
                    all_kept &= o.is_kept();
                }
                writeln!(out, "{line}")?;
            }
            Entry::Bad { fixture, error } => {
                all_kept = false;
                writeln!(
                    out,
                    "{}",
                    json!({"fixture": fixture, "swipe": null, "customer_id": null,
                           "outcome": "unreadable", "token": null, "masked_pan": null,
                           "error": format!("{}: {}", error.code, error.message)})
                )?;
            }
        }
    }
    out.flush()?;
    Ok(if all_kept && entries.len() >= args.fixtures.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
