//! Durable queue throughput: enqueue one record per fsync, enqueue batches of 64 (one
//! transaction, one fsync: what the pipeline does), and drain through a no-op deliverer.
//! Goals (issue 6): ≥ 1,000 durable swipes/s batched, ≥ 1,000 records/s drained.
use std::sync::Arc;
use std::time::Duration;

use cardlane::queue::{
    Deliver, DeliverFuture, DeliverResult, FinalAnswer, KeySource, NewRecord, Queue, QueueConfig,
    QueueKey, Saved, Uploader, UploaderConfig,
};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use zeroize::Zeroizing;

/// About the size of a serialized Customer request with an encrypted track.
const PAYLOAD_LEN: usize = 900;
const DRAIN: usize = 1_000;

fn open(dir: &tempfile::TempDir) -> Queue {
    Queue::open(
        dir.path().join("bench.db"),
        QueueConfig {
            max_records: u64::MAX,
            key: KeySource::Key(QueueKey::from_bytes([5; 32])),
            ..QueueConfig::default()
        },
    )
    .expect("open queue")
}

fn record(i: usize) -> NewRecord {
    NewRecord {
        customer_id: format!("bench-{i:08}"),
        masked_pan: Some("476173******0119".into()),
        payload: Zeroizing::new(vec![0x5A; PAYLOAD_LEN]),
        has_pin_block: false,
        in_flight: false,
    }
}

struct NoOp;
impl Deliver for NoOp {
    fn deliver<'a>(&'a self, _payload: &'a [u8]) -> DeliverFuture<'a> {
        Box::pin(async { DeliverResult::Final(FinalAnswer::Saved(Saved::default())) })
    }
}

fn enqueue(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let q = open(&dir);
    let mut n = 0usize;
    let mut g = c.benchmark_group("enqueue");
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.iter(|| {
            n += 1;
            q.enqueue(record(n)).expect("enqueue")
        })
    });
    g.throughput(Throughput::Elements(64));
    g.bench_function("batch_64", |b| {
        b.iter(|| {
            let batch = (0..64).map(|_| {
                n += 1;
                record(n)
            });
            q.enqueue_many(batch.collect()).expect("enqueue_many")
        })
    });
    g.finish();
}

fn drain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let q = Arc::new(open(&dir));
    let up = Uploader::new(
        q.clone(),
        Arc::new(NoOp),
        UploaderConfig {
            concurrency: 8,
            ..UploaderConfig::default()
        },
    )
    .expect("uploader");
    let mut n = 0usize;
    let mut g = c.benchmark_group("drain");
    g.sample_size(10);
    g.throughput(Throughput::Elements(DRAIN as u64));
    g.bench_function("noop_1000", |b| {
        b.iter_batched(
            || {
                let batch: Vec<_> = (0..DRAIN)
                    .map(|_| {
                        n += 1;
                        record(n)
                    })
                    .collect();
                q.enqueue_many(batch).expect("fill");
            },
            |()| {
                let r = rt.block_on(up.flush_once()).expect("flush");
                assert_eq!(r.sent as usize, DRAIN);
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, enqueue, drain);
criterion_main!(benches);
