//! `cardlane queue list|flush|purge [--queue FILE]` (design.md §3): inspects and drains the
//! durable queue. Output is JSON lines; nothing printed is card data (masked PAN only).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use cardlane::queue::{
    Deliver, FlushReport, KeySource, Queue, QueueConfig, QueueLock, RecordInfo, RecordState,
    Uploader, UploaderConfig,
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The queue file (default: $CARDLANE_QUEUE, else $XDG_STATE_HOME or ~/.local/state
    /// /cardlane/queue.db, as `replay` uses).
    #[arg(long, global = true)]
    queue: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// One JSON line per record held: id, customer_id, state, attempts, age, last error, masked PAN.
    List,
    /// Sends everything held now (backoff ignored); prints {"sent":N,"failed":N,"remaining":N}
    /// and, on standard error, why each record still held was not sent.
    Flush(FlushArgs),
    /// Drops records: expired ones (default) or all.
    Purge(PurgeArgs),
}

#[derive(clap::Args, Debug)]
struct FlushArgs {
    /// Gateway base URL (API key from CARDLANE_API_KEY): https, or plain http to a loopback
    /// host only (as `run`).
    #[arg(long, value_parser = super::replay::gateway_url)]
    gateway: String,
    /// Queue key file (default: CARDLANE_QUEUE_KEY, else FILE.key next to the queue).
    #[arg(long)]
    key_file: Option<PathBuf>,
    /// Deliveries in flight at most.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
}

#[derive(clap::Args, Debug)]
#[group(multiple = false)]
struct PurgeArgs {
    /// Drop records past their age limit (the default).
    #[arg(long)]
    expired: bool,
    /// Drop every record, sent or not.
    #[arg(long)]
    all: bool,
}

/// The gateway client behind `flush`: one attempt per record (the uploader keeps the backoff),
/// API key from `CARDLANE_API_KEY`.
fn deliverer(url: &str) -> anyhow::Result<Arc<dyn Deliver>> {
    let key = std::env::var("CARDLANE_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!("flush needs the API key in CARDLANE_API_KEY"))?;
    let client = super::replay::client(url, cardlane::gateway::ApiKey::new(key.trim()))?;
    Ok(Arc::new(cardlane::agent::pipeline::GatewayDeliver::new(
        client,
    )))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let queue = args
        .queue
        .clone()
        .unwrap_or_else(cardlane::agent::pipeline::default_queue_path);
    let result = match args.command {
        Command::List => list(&queue),
        Command::Purge(p) => purge(&queue, p.all),
        Command::Flush(f) => flush_command(&queue, f),
    };
    // A reader that went away (`queue list | head -1`) ends the output, not the program.
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::SUCCESS),
        other => other,
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn flush_command(queue: &Path, f: FlushArgs) -> anyhow::Result<ExitCode> {
    let deliver = deliverer(&f.gateway)?;
    let key = match f.key_file {
        Some(path) => KeySource::File(path),
        None => KeySource::Auto,
    };
    let report = flush(queue, key, deliver, usize::from(f.concurrency))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}",
        serde_json::json!({"sent": report.sent, "failed": report.failed, "remaining": report.remaining})
    )?;
    out.flush()?;
    if report.auth_failed {
        eprintln!("error: uploads paused: the gateway refused the API key or the URL is not the gateway's; records kept");
    }
    // Say why: each record still held, with its last error (masked; never card data).
    if report.failed > 0 || report.remaining > 0 {
        if let Some(q) = open_for_inspection(queue)? {
            for r in q.list()? {
                let why = r.last_error.as_deref().unwrap_or("not sent");
                eprintln!(
                    "record {} ({}) {}: {why}",
                    r.id.0,
                    r.customer_id,
                    r.state.as_str()
                );
            }
        }
    }
    let clean = !report.auth_failed && report.failed == 0 && report.remaining == 0;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Opens an existing queue without its key (inspection needs none). A missing file is an
/// error: a mistyped path is not an empty queue, and looking never creates one.
fn open_for_inspection(path: &Path) -> anyhow::Result<Option<Queue>> {
    if !path.exists() {
        anyhow::bail!(
            "no queue at {} (check --queue or CARDLANE_QUEUE)",
            path.display()
        );
    }
    let q = Queue::open(
        path,
        QueueConfig {
            key: KeySource::Absent,
            ..QueueConfig::default()
        },
    )
    .with_context(|| format!("opening queue {}", path.display()))?;
    Ok(Some(q))
}

fn record_json(r: &RecordInfo, now_ms: i64) -> serde_json::Value {
    let due_in_ms = r.next_attempt_ms.saturating_sub(now_ms).max(0);
    serde_json::json!({
        "id": r.id.0,
        "customer_id": r.customer_id,
        "state": r.state.as_str(),
        "attempts": r.attempts,
        "age_s": r.age.as_secs(),
        "expired": r.expired,
        // When the uploader tries it next (unix ms, and seconds from now); null once failed.
        "next_attempt_ms": (r.state != RecordState::Failed).then_some(r.next_attempt_ms),
        "next_attempt_in_s": (r.state != RecordState::Failed).then_some(due_in_ms / 1000),
        "last_error": r.last_error,
        "masked_pan": r.masked_pan,
    })
}

fn list(path: &Path) -> anyhow::Result<ExitCode> {
    if let Some(q) = open_for_inspection(path)? {
        let now = q.now_ms();
        let mut out = std::io::stdout().lock();
        for r in q.list()? {
            writeln!(out, "{}", record_json(&r, now))?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn purge(path: &Path, all: bool) -> anyhow::Result<ExitCode> {
    let purged = match open_for_inspection(path)? {
        None => 0,
        Some(q) if all => q.purge_all()?,
        Some(q) => q.purge_expired()?,
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::json!({ "purged": purged }))?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Recovers rows a killed run left `sending`, then sends everything held once, backoff or
/// not (an operator asked for it now).
fn flush(
    path: &Path,
    key: KeySource,
    deliver: Arc<dyn Deliver>,
    concurrency: usize,
) -> anyhow::Result<FlushReport> {
    if !path.exists() {
        return Ok(FlushReport::default());
    }
    // Not beside `run` or `replay` on the same file: both would send the same records.
    let _lock = QueueLock::acquire(path)?;
    let queue = Queue::open(
        path,
        QueueConfig {
            key,
            ..QueueConfig::default()
        },
    )
    .with_context(|| format!("opening queue {}", path.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let uploader = Uploader::new(
            Arc::new(queue),
            deliver,
            UploaderConfig {
                concurrency,
                ..UploaderConfig::default()
            },
        )?;
        Ok(uploader.flush_now().await?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardlane::queue::{DeliverFuture, DeliverResult, FinalAnswer, NewRecord, QueueKey, Saved};
    use zeroize::Zeroizing;

    struct Answer(DeliverResult);
    impl Deliver for Answer {
        fn deliver<'a>(&'a self, _payload: &'a [u8]) -> DeliverFuture<'a> {
            Box::pin(async move { self.0.clone() })
        }
    }

    #[test]
    fn flush_sends_and_reports() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let key = || KeySource::Key(QueueKey::from_bytes([3; 32]));
        let q = Queue::open(
            &db,
            QueueConfig {
                key: key(),
                ..QueueConfig::default()
            },
        )
        .unwrap();
        for i in 0..3 {
            q.enqueue(NewRecord {
                customer_id: format!("c{i}"),
                masked_pan: None,
                payload: Zeroizing::new(vec![1, 2, 3]),
                has_pin_block: false,
                in_flight: false,
            })
            .unwrap();
        }
        // A killed run left one record sending: flush recovers and sends it too.
        q.claim_due(1).unwrap();
        drop(q);
        let saved = Arc::new(Answer(DeliverResult::Final(FinalAnswer::Saved(
            Saved::default(),
        ))));
        let r = flush(&db, key(), saved, 2).unwrap();
        assert_eq!((r.sent, r.failed, r.remaining), (3, 0, 0));
        // Absent file: nothing to do, and no file is created.
        let none = dir.path().join("none.db");
        let r = flush(
            &none,
            key(),
            Arc::new(Answer(DeliverResult::Transient("x".into()))),
            1,
        )
        .unwrap();
        assert_eq!(r, FlushReport::default());
        assert!(!none.exists());
    }
}
