//! Pipeline figures (issue 6, BENCHMARKS.md), against the simulator over loopback in this
//! process, with a real SQLite queue in a temporary directory:
//! 1. 10,000 swipes submitted without delay: swipes/s until all are durable, and until all saved;
//! 2. latency from a complete frame (submit) to the HTTP request: to the deliverer being called,
//!    and to the request having arrived at a loopback server (`received.rs`), paced swipes,
//!    p50/p99, with the direct lane and without it (`send_before_commit = false`);
//! 3. queue drain after an outage: 10,000 held records flushed, records/s.
//!
//! `cargo bench --bench pipeline` (N from `PIPELINE_BENCH_N`, default 10000).
mod received;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardlane::agent::captures::Captures;
use cardlane::agent::events::EventHub;
use cardlane::agent::metrics::Metrics;
use cardlane::agent::pipeline::{GatewayDeliver, Pipeline, PipelineConfig, Swipe};
use cardlane::card::luhn_valid;
use cardlane::gateway::sim::{self, SimConfig};
use cardlane::gateway::swipe::{build_record, LaneSettings, SwipeInput};
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient};
use cardlane::parse;
use cardlane::queue::{
    Deliver, DeliverFuture, KeySource, NewRecord, Queue, QueueConfig, QueueKey, Uploader,
    UploaderConfig,
};

const KEY: &str = "bench-key";

/// A clear wedge swipe of a Luhn-valid test PAN made unique by `i`.
fn frame(i: usize) -> Vec<u8> {
    let body = format!("4{:014}", i);
    // The check digit is the one digit that makes the number pass the crate's own Luhn check.
    let pan = (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|p| luhn_valid(p))
        .unwrap();
    format!("%B{pan}^BENCH/CARD {i}^29121010000000000000?;{pan}=29121010000000000?\r").into_bytes()
}

/// Notes when each customer's request is about to be sent.
struct Stamped {
    inner: GatewayDeliver,
    sent: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Deliver for Stamped {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a> {
        let at = Instant::now();
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
            if let Some(id) = v["customer"]["customer_id"].as_str() {
                self.sent
                    .lock()
                    .unwrap()
                    .entry(id.to_string())
                    .or_insert(at);
            }
        }
        self.inner.deliver(payload)
    }
}

fn queue(dir: &std::path::Path, name: &str) -> Arc<Queue> {
    Arc::new(
        Queue::open(
            dir.join(name),
            QueueConfig {
                key: KeySource::Key(QueueKey::from_bytes([9; 32])),
                max_records: 1_000_000,
                ..QueueConfig::default()
            },
        )
        .unwrap(),
    )
}

fn cfg() -> PipelineConfig {
    let mut c = PipelineConfig::default();
    c.lane.allow_clear = true;
    c.uploader.concurrency = 16;
    c.uploader.idle_poll = Duration::from_millis(200);
    c
}

fn client(url: &str) -> GatewayDeliver {
    GatewayDeliver::new(GatewayClient::new(ClientConfig::new(url, ApiKey::new(KEY))).unwrap())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

fn main() {
    let n: usize = std::env::var("PIPELINE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut sim_cfg = SimConfig::new(ApiKey::new(KEY));
        sim_cfg.db_path = Some(dir.path().join("sim.db"));
        let server = sim::spawn(sim_cfg, listener).unwrap();
        let url = server.base_url.clone();

        // 1. Throughput.
        let frames: Vec<Vec<u8>> = (0..n).map(frame).collect();
        let p = Pipeline::start(
            cfg(),
            queue(dir.path(), "q1.db"),
            Arc::new(client(&url)),
            EventHub::default(),
            Arc::new(Captures::new(4)),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let start = Instant::now();
        let mut tickets = Vec::with_capacity(n);
        for f in frames {
            tickets.push(p.submit(Swipe::new(f, "bench", None)).await);
        }
        for t in &mut tickets {
            t.taken().await;
        }
        let durable = start.elapsed();
        let mut saved = 0;
        for t in &mut tickets {
            if t.settle(Duration::from_secs(120)).await.as_str() == "saved" {
                saved += 1;
            }
        }
        let all = start.elapsed();
        p.shutdown().await;
        println!(
            "replay {n} swipes --no-delay: durable in {:.2} s ({:.0} swipes/s), {saved} saved in {:.2} s ({:.0} swipes/s end to end)",
            durable.as_secs_f64(),
            n as f64 / durable.as_secs_f64(),
            all.as_secs_f64(),
            saved as f64 / all.as_secs_f64()
        );

        // 2. Frame -> HTTP request latency, paced (one swipe every 5 ms), with the direct lane
        //    (the default) and without it (the request waits for the commit and the claim).
        for (lane, direct) in [("direct lane", true), ("after commit", false)] {
            let sent = Arc::new(Mutex::new(HashMap::new()));
            let arrivals: received::Arrivals = Arc::default();
            let stamp_url = received::start(arrivals.clone()).await;
            let mut c = cfg();
            c.send_before_commit = direct;
            let p = Pipeline::start(
                c,
                queue(dir.path(), &format!("q2-{direct}.db")),
                Arc::new(Stamped {
                    inner: client(&stamp_url),
                    sent: sent.clone(),
                }),
                EventHub::default(),
                Arc::new(Captures::new(4)),
                Arc::new(Metrics::new()),
            )
            .unwrap();
            let m = 1000.min(n);
            let mut submitted = Vec::with_capacity(m);
            for i in 0..m {
                let f = frame(n + i);
                let at = Instant::now();
                let mut t = p.submit(Swipe::new(f, "bench", None)).await;
                submitted.push((t.customer_id.clone().unwrap_or_default(), at));
                t.taken().await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            p.shutdown().await;
            for (what, stamps) in [
                ("deliverer called", sent.lock().unwrap().clone()),
                ("request at the server", arrivals.lock().unwrap().clone()),
            ] {
                let mut lat: Vec<Duration> = submitted
                    .iter()
                    .filter_map(|(id, at)| stamps.get(id).map(|s| s.duration_since(*at)))
                    .collect();
                lat.sort();
                println!(
                    "{lane}: frame -> {what} ({} paced swipes): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                    lat.len(),
                    percentile(&lat, 0.5).as_secs_f64() * 1e3,
                    percentile(&lat, 0.99).as_secs_f64() * 1e3,
                    lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
                );
            }
        }

        // 3. Drain after an outage: n records held, then one flush.
        let q = queue(dir.path(), "q3.db");
        let lane = LaneSettings {
            allow_clear: true,
            ..LaneSettings::default()
        };
        let mut batch = Vec::with_capacity(n);
        for i in 0..n {
            let f = frame(2 * n + i);
            let read = parse::decode_frame(&f).unwrap();
            let rec = build_record(SwipeInput {
                read: &read,
                frame: &f,
                profile: None,
                lane: &lane,
                customer: None,
                pin_block: None,
            })
            .unwrap();
            batch.push(NewRecord {
                customer_id: rec.customer_id.clone(),
                masked_pan: rec.masked_pan.clone(),
                payload: rec.payload(),
                has_pin_block: false,
                in_flight: false,
            });
        }
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(500));
            q.enqueue_many(std::mem::replace(&mut batch, rest)).unwrap();
        }
        let up = Uploader::new(
            q.clone(),
            Arc::new(client(&url)),
            UploaderConfig {
                concurrency: 16,
                ..UploaderConfig::default()
            },
        )
        .unwrap();
        let start = Instant::now();
        let report = up.flush_once().await.unwrap();
        let took = start.elapsed();
        println!(
            "drain after outage: {} sent, {} remaining in {:.2} s ({:.0} records/s)",
            report.sent,
            report.remaining,
            took.as_secs_f64(),
            report.sent as f64 / took.as_secs_f64()
        );
        server.shutdown().await;
    });
}
