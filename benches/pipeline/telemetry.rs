//! Telemetry's cost on the read path (issue 16, BENCHMARKS.md): the same replay of N distinct
//! swipes (default 10,000) through the pipeline into the simulator on loopback, with telemetry
//! off and with telemetry on and its collector down (the OTLP endpoint is a closed 127.0.0.1
//! port), alternated in one run so both see the same machine. Wall time from the first submit
//! until every swipe is saved at the gateway, the CPU time the process spent meanwhile (all
//! threads: pipeline, simulator, telemetry), the ratios, and what telemetry dropped. The queue
//! and the simulator's database are on tmpfs (`/dev/shm`) when there is one, so that fsync
//! waits on a disk shared with other work do not drown the difference being measured.
//!
//! The lane's event hub is sized to hold the whole burst (`TELEMETRY_BENCH_EVENTS`, default
//! 65536): with the agent's default of 256 the span task lags behind a 10,000-swipe burst and
//! turns only about 2% of the reads into spans, which would flatter telemetry.
//!
//! `cargo bench --bench pipeline_telemetry` (N from `TELEMETRY_BENCH_N`, pairs of runs from
//! `TELEMETRY_BENCH_PAIRS`, default 2).
use std::sync::Arc;
use std::time::{Duration, Instant};

use cardlane::agent::captures::Captures;
use cardlane::agent::config::TelemetryConfig;
use cardlane::agent::events::EventHub;
use cardlane::agent::metrics::Metrics;
use cardlane::agent::pipeline::{GatewayDeliver, Pipeline, PipelineConfig, Swipe};
use cardlane::agent::telemetry::{self, Telemetry};
use cardlane::card::luhn_valid;
use cardlane::gateway::sim::{self, SimConfig};
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient};
use cardlane::queue::{KeySource, Queue, QueueConfig, QueueKey};
use tokio::sync::watch;

const KEY: &str = "bench-key";

/// A clear wedge swipe of a Luhn-valid test PAN made unique by `i`.
fn frame(i: usize) -> Vec<u8> {
    let body = format!("4{:014}", i);
    let pan = (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|p| luhn_valid(p))
        .unwrap();
    format!("%B{pan}^BENCH/CARD {i}^29121010000000000000?;{pan}=29121010000000000?\r").into_bytes()
}

/// A 127.0.0.1 port nothing listens on: bound, then closed.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes the struct it is given and nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Run {
    took: Duration,
    cpu: Duration,
    saved: usize,
    accepted: u64,
    dropped: u64,
    /// From the exposition, as a scraper sees it.
    dropped_metric: Option<String>,
    shutdown: Duration,
}

async fn replay(
    n: usize,
    offset: usize,
    url: &str,
    dir: &std::path::Path,
    on: bool,
    hub: usize,
) -> Run {
    let queue = Arc::new(
        Queue::open(
            dir.join(format!("q-{offset}.db")),
            QueueConfig {
                key: KeySource::Key(QueueKey::from_bytes([9; 32])),
                max_records: 1_000_000,
                ..QueueConfig::default()
            },
        )
        .unwrap(),
    );
    let mut cfg = PipelineConfig::default();
    cfg.lane.allow_clear = true;
    cfg.uploader.concurrency = 16;
    cfg.uploader.idle_poll = Duration::from_millis(200);
    let events = EventHub::new(hub);
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    // As `cardlane run` starts it (src/agent/service.rs): the exporter thread, and the task
    // that turns lane events into read spans.
    let exporter = on.then(|| {
        let t = TelemetryConfig {
            enabled: true,
            endpoint: format!("http://127.0.0.1:{}", closed_port()),
            lane: Some("bench".into()),
            // Metrics every second instead of every minute: their exports fail too, during
            // the run.
            metrics_interval: Duration::from_secs(1),
            ..TelemetryConfig::default()
        };
        let t = Arc::new(Telemetry::start(&t, &["bench".into()], metrics.clone()).unwrap());
        let task = tokio::spawn(telemetry::follow(events.clone(), t.clone(), stop_rx));
        (t, task)
    });
    let client = GatewayClient::new(ClientConfig::new(url, ApiKey::new(KEY))).unwrap();
    let p = Pipeline::start(
        cfg,
        queue,
        Arc::new(GatewayDeliver::new(client)),
        events,
        Arc::new(Captures::new(4)),
        metrics.clone(),
    )
    .unwrap();
    let frames: Vec<Vec<u8>> = (offset..offset + n).map(frame).collect();
    let start = Instant::now();
    let cpu0 = cpu_time();
    let mut tickets = Vec::with_capacity(n);
    for f in frames {
        tickets.push(p.submit(Swipe::new(f, "bench", None)).await);
    }
    let mut saved = 0;
    for t in &mut tickets {
        if t.settle(Duration::from_secs(120)).await.as_str() == "saved" {
            saved += 1;
        }
    }
    let took = start.elapsed();
    let cpu = cpu_time() - cpu0;
    p.shutdown().await;
    let dropped_metric = metrics
        .render()
        .lines()
        .find(|l| l.starts_with("cardlane_telemetry_dropped_total"))
        .map(str::to_string);
    let (accepted, dropped, shutdown) = match exporter {
        Some((t, task)) => {
            let _ = stop_tx.send(true);
            let _ = task.await;
            let dropped = t.dropped();
            let accepted = t.accepted();
            let t0 = Instant::now();
            // What is still buffered is tried once more against the closed port.
            if let Ok(t) = Arc::try_unwrap(t) {
                tokio::task::spawn_blocking(move || t.shutdown())
                    .await
                    .unwrap();
            }
            (accepted, dropped, t0.elapsed())
        }
        None => (0, 0, Duration::ZERO),
    };
    Run {
        took,
        cpu,
        saved,
        accepted,
        dropped,
        dropped_metric,
        shutdown,
    }
}

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let n = env("TELEMETRY_BENCH_N", 10_000);
    let pairs = env("TELEMETRY_BENCH_PAIRS", 2).max(1);
    let hub = env("TELEMETRY_BENCH_EVENTS", 65_536);
    let shm = std::path::Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("event hub capacity {hub}");
    println!(
        "load average at start: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut sim_cfg = SimConfig::new(ApiKey::new(KEY));
        sim_cfg.db_path = Some(dir.path().join("sim.db"));
        let server = sim::spawn(sim_cfg, listener).unwrap();
        let url = server.base_url.clone();
        let mut off = Vec::new();
        let mut on = Vec::new();
        for pair in 0..pairs {
            for telemetry in [false, true] {
                let offset = (2 * pair + usize::from(telemetry)) * n;
                let r = replay(n, offset, &url, dir.path(), telemetry, hub).await;
                println!(
                    "telemetry {}: {} swipes, {} saved in {:.2} s ({:.0} swipes/s), CPU {:.2} s; spans buffered {}, dropped {}{}",
                    if telemetry { "on, collector down" } else { "off" },
                    n,
                    r.saved,
                    r.took.as_secs_f64(),
                    r.saved as f64 / r.took.as_secs_f64(),
                    r.cpu.as_secs_f64(),
                    r.accepted,
                    r.dropped,
                    match (&r.dropped_metric, telemetry) {
                        (Some(m), true) => format!(
                            " (exposition: {m}); exporter shutdown {:.2} s",
                            r.shutdown.as_secs_f64()
                        ),
                        _ => String::new(),
                    }
                );
                assert_eq!(r.saved, n, "every swipe saved");
                if telemetry { &mut on } else { &mut off }
                    .push((r.took.as_secs_f64(), r.cpu.as_secs_f64()));
            }
        }
        let mean = |v: &[(f64, f64)], cpu: bool| {
            v.iter().map(|r| if cpu { r.1 } else { r.0 }).sum::<f64>() / v.len() as f64
        };
        for (what, cpu) in [("wall time", false), ("CPU time", true)] {
            println!(
                "mean {what}: off {:.2} s, on with the collector down {:.2} s: ratio on/off {:.3}",
                mean(&off, cpu),
                mean(&on, cpu),
                mean(&on, cpu) / mean(&off, cpu)
            );
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "load average at end: {}",
            load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
        );
        server.shutdown().await;
    });
}
