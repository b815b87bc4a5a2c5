//! Issue 12 (BENCHMARKS.md): a chip read on a driven reader, from the reader's final response
//! to the request at the gateway. `cardlane reader-sim --interface contact` (the release
//! binary) plays the reader on a PTY; in this process the NEO 2 driver (`DrivenReader`) reads
//! it through a port that notes when each chunk arrived, the read goes into the pipeline as
//! `run` hands it over (whole final response as the frame, the NEO 2 profile), and a loopback
//! server notes when each request arrived. Figure: last chunk of the final response read ->
//! request head at the server, p50/p99/max over N reads, one at a time.
//!
//! `cargo build --release --bin cardlane && cargo bench --bench pipeline_chip`
//! (N from `CHIP_BENCH_N`, default 300; the binary from `CARDLANE_BIN` if set).
#[path = "received.rs"]
mod received;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use cardlane::agent::captures::Captures;
use cardlane::agent::events::EventHub;
use cardlane::agent::metrics::Metrics;
use cardlane::agent::pipeline::{GatewayDeliver, Pipeline, PipelineConfig, Swipe};
use cardlane::device::profile::Profiles;
use cardlane::device::session::{open_port, DrivenReader, DriverConfig, DriverEvent, Port};
use cardlane::device::transport::{Transport, Writer};
use cardlane::device::{Chunk, Selector, TransportError};
use cardlane::gateway::{ApiKey, ClientConfig, GatewayClient};
use cardlane::protocol::neo2::{Activate, Event, Interfaces, Outcome};
use cardlane::queue::{KeySource, Queue, QueueConfig, QueueKey};

/// The real port, noting when the last chunk was read.
struct StampedPort {
    inner: Box<dyn cardlane::device::transport::Duplex>,
    last_read: Arc<Mutex<Instant>>,
}

impl Transport for StampedPort {
    fn read_chunk(&mut self, timeout: Duration) -> Result<Option<Chunk>, TransportError> {
        let r = self.inner.read_chunk(timeout);
        if let Ok(Some(_)) = &r {
            *self.last_read.lock().unwrap() = Instant::now();
        }
        r
    }
}

impl Writer for StampedPort {
    fn write_unit(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.inner.write_unit(bytes)
    }
}

fn cardlane_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARDLANE_BIN") {
        return p.into();
    }
    // target/release/deps/pipeline_chip-… -> target/release/cardlane
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("cardlane")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or_default()
}

fn main() {
    let n: usize = std::env::var("CHIP_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("neo2");
    let mut sim = Command::new(cardlane_bin())
        .args(["reader-sim", "--profile", "idtech-neo2-serial", "--link"])
        .arg(&link)
        .args(["--interface", "contact", "--present-after", "0"])
        .args((0..n).flat_map(|_| ["--card", "4761739001010119:2812"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("reader-sim (build it: cargo build --release --bin cardlane)");
    let mut line = String::new();
    BufReader::new(sim.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"ready\":true"), "{line}");

    let profiles = Profiles::embedded().unwrap();
    let profile = profiles.get("idtech-neo2-serial").unwrap().clone();
    let selector: Selector = format!("serial:{}", link.display()).parse().unwrap();
    let last_read = Arc::new(Mutex::new(Instant::now()));
    let stamp = last_read.clone();
    let p2 = profile.clone();
    let connect = move || -> Result<Port, TransportError> {
        let port = open_port(&selector, Some(&p2))?;
        Ok(Port {
            io: Box::new(StampedPort {
                inner: port.io,
                last_read: stamp.clone(),
            }),
            hid: port.hid,
        })
    };
    let (tx, events) = mpsc::channel();
    let reader = DrivenReader::spawn_with(connect, DriverConfig::default(), move |e| {
        let _ = tx.send(e);
    });
    let wait = Duration::from_secs(20);
    loop {
        match events.recv_timeout(wait).expect("reader ready") {
            DriverEvent::Session(Event::Ready { .. }) => break,
            _ => continue,
        }
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let arrivals: received::Arrivals = Arc::default();
    let url = rt.block_on(received::start(arrivals.clone()));
    let queue = Arc::new(
        Queue::open(
            dir.path().join("q.db"),
            QueueConfig {
                key: KeySource::Key(QueueKey::from_bytes([9; 32])),
                ..QueueConfig::default()
            },
        )
        .unwrap(),
    );
    let client =
        GatewayDeliver::new(GatewayClient::new(ClientConfig::new(&url, ApiKey::new("k"))).unwrap());
    let pipeline = rt.block_on(async {
        Pipeline::start(
            pipeline_config(),
            queue,
            Arc::new(client),
            EventHub::default(),
            Arc::new(Captures::new(4)),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    });
    let profile = Arc::new(profile);
    let mut reads = Vec::with_capacity(n);
    for _ in 0..n {
        // The reader may still be ending the last transaction: retry a refused start.
        let until = Instant::now() + wait;
        while reader
            .activate(Activate {
                interfaces: Interfaces::parse_list("contact").unwrap(),
                timeout: Duration::from_secs(10),
            })
            .is_err()
        {
            assert!(Instant::now() < until, "the reader refuses transactions");
            std::thread::sleep(Duration::from_millis(5));
        }
        let frame = loop {
            match events.recv_timeout(wait).expect("an outcome") {
                DriverEvent::Session(Event::Outcome(Outcome::Read { mut frame, .. })) => {
                    break std::mem::take(&mut *frame);
                }
                DriverEvent::Session(Event::Outcome(o)) => panic!("not a read: {o:?}"),
                _ => continue,
            }
        };
        let at = *last_read.lock().unwrap();
        let outcome_at = Instant::now();
        // Paced as the swipe figure is: each read waited for until durable, then 5 ms (a lane's
        // reads are seconds apart; this keeps reads from queueing behind each other's commits).
        let id = rt.block_on(async {
            let mut t = pipeline
                .submit(Swipe::new(frame, "bench", Some(profile.clone())))
                .await;
            t.taken().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            t.customer_id.clone().expect("a record")
        });
        reads.push((id, at, outcome_at));
    }
    rt.block_on(async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        pipeline.shutdown().await;
    });
    reader.shutdown();
    let _ = sim.kill();
    let _ = sim.wait();

    let stamps = arrivals.lock().unwrap().clone();
    let mut lat: Vec<Duration> = reads
        .iter()
        .filter_map(|(id, at, _)| stamps.get(id).map(|s| s.duration_since(*at)))
        .collect();
    lat.sort();
    // The two halves: the driver (final response read -> its outcome in this thread) and the
    // pipeline (outcome -> request at the server).
    let mut driver: Vec<Duration> = reads
        .iter()
        .map(|(_, at, o)| o.duration_since(*at))
        .collect();
    driver.sort();
    let mut pipe: Vec<Duration> = reads
        .iter()
        .filter_map(|(id, _, o)| stamps.get(id).map(|s| s.duration_since(*o)))
        .collect();
    pipe.sort();
    for (what, l) in [
        ("driver: final response read -> outcome", &driver),
        ("pipeline: outcome -> request at the server", &pipe),
    ] {
        println!(
            "  {what}: p50 {:.2} ms, p99 {:.2} ms",
            percentile(l, 0.5).as_secs_f64() * 1e3,
            percentile(l, 0.99).as_secs_f64() * 1e3
        );
    }
    println!(
        "chip read (reader-sim, contact): final response read -> request at the server ({} of {n} reads): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
}

/// As `cardlane run` sets it up by default, except the uploader's idle poll (`CHIP_IDLE_POLL_MS`,
/// default the agent's own).
fn pipeline_config() -> PipelineConfig {
    let mut c = PipelineConfig::default();
    if let Some(ms) = std::env::var("CHIP_IDLE_POLL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.uploader.idle_poll = Duration::from_millis(ms);
    }
    c
}
