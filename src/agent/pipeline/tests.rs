use std::sync::atomic::AtomicUsize;

use super::*;
use crate::gateway::CustomerRequest;
use crate::queue::{KeySource, QueueConfig, QueueKey, Saved};

/// A gateway stand-in: answers every delivery with `answer`, keeps what it was sent.
struct Fake {
    answer: Mutex<DeliverResult>,
    seen: Mutex<Vec<CustomerRequest>>,
    calls: AtomicUsize,
}

impl Fake {
    fn new(answer: DeliverResult) -> Arc<Fake> {
        Arc::new(Fake {
            answer: Mutex::new(answer),
            seen: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
        })
    }
}

impl Deliver for Fake {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if let Ok(r) = serde_json::from_slice(payload) {
                lock(&self.seen).push(r);
            }
            lock(&self.answer).clone()
        })
    }
}

fn saved(token: &str) -> DeliverResult {
    DeliverResult::Final(FinalAnswer::Saved(Saved {
        token: Some(token.into()),
    }))
}

const CLEAR: &str =
    "%B4005571701111111^BRADY/OSCAR^2512101000000000000?;4005571701111111=25121010000000000000?\r";

struct Rig {
    _dir: tempfile::TempDir,
    pipeline: Pipeline,
    fake: Arc<Fake>,
    events: EventHub,
    captures: Arc<Captures>,
    queue: Arc<Queue>,
}

fn rig(answer: DeliverResult, allow_clear: bool) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        Queue::open(
            dir.path().join("q.db"),
            QueueConfig {
                key: KeySource::Key(QueueKey::from_bytes([7; 32])),
                ..QueueConfig::default()
            },
        )
        .unwrap(),
    );
    let fake = Fake::new(answer);
    let events = EventHub::new(1024);
    let captures = Arc::new(Captures::new(4));
    let mut cfg = PipelineConfig::default();
    cfg.lane.allow_clear = allow_clear;
    cfg.uploader.idle_poll = Duration::from_millis(100);
    let pipeline = Pipeline::start(
        cfg,
        queue.clone(),
        fake.clone(),
        events.clone(),
        captures.clone(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    Rig {
        _dir: dir,
        pipeline,
        fake,
        events,
        captures,
        queue,
    }
}

/// An encrypted ID TECH frame (sample 04: KSN FFFF9876543210E0004A) from the decode fixtures.
fn sample04() -> Vec<u8> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/decode/good/04_idtech_unimag2_enhanced.hex"
    ))
    .unwrap();
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(hex).unwrap()
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn clear_swipe_is_queued_then_saved() {
    let r = rig(saved("9001"), true);
    let mut lane_events = r.events.subscribe();
    let mut t = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert!(t.taken().await.is_kept());
    assert_eq!(
        t.settle(WAIT).await,
        SwipeOutcome::Saved {
            token: Some("9001".into())
        }
    );
    assert_eq!(
        t.masked_pan.as_ref().map(|m| m.as_str()),
        Some("400557******1111")
    );
    assert_eq!(t.brand.as_deref(), Some("VI"));
    let sent = lock(&r.fake.seen).clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].customer.customer_id, t.customer_id);
    assert_eq!(sent[0].customer.last_name.as_deref(), Some("BRADY"));
    r.pipeline.shutdown().await;
    assert_eq!(r.queue.stats().unwrap().held, 0);
    let mut kinds = Vec::new();
    while let Ok(ev) = lane_events.try_recv() {
        assert!(!ev.to_json().contains("4005571701111111"));
        kinds.push(ev.kind());
    }
    assert_eq!(kinds.first(), Some(&"swipe"));
    assert_eq!(kinds.last(), Some(&"saved"));
}

#[tokio::test]
async fn unreadable_and_clear_refused() {
    let r = rig(saved("1"), false);
    let mut bad = r
        .pipeline
        .submit(Swipe::new(";4005571701111111=2512", "stdin", None))
        .await;
    assert_eq!(bad.taken().await.as_str(), "unreadable");
    let mut clear = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    let out = clear.taken().await;
    assert_eq!(out.code(), "clear-refused");
    r.pipeline.shutdown().await;
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 0);
    assert_eq!(r.queue.stats().unwrap().held, 0);
}

#[tokio::test]
async fn pin_record_offline_fails_at_once_and_is_never_queued() {
    let r = rig(DeliverResult::Transient("connect failed".into()), true);
    let mut swipe = Swipe::new(sample04(), "usb", None);
    swipe.pin_block = Some(SecretString::new("0412AC89ABCDEF67"));
    let mut t = r.pipeline.submit(swipe).await;
    let out = t.settle(WAIT).await;
    assert_eq!(out.code(), "pin-offline", "{out:?}");
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 1);
    r.pipeline.shutdown().await;
    assert_eq!(r.queue.stats().unwrap().held, 0);
}

#[tokio::test]
async fn gateway_down_keeps_everything_queued_through_shutdown() {
    let r = rig(DeliverResult::Transient("connect failed".into()), true);
    let mut tickets = Vec::new();
    for _ in 0..20 {
        tickets.push(r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await);
    }
    for t in &mut tickets {
        assert_eq!(t.taken().await, SwipeOutcome::Queued);
    }
    r.pipeline.shutdown().await;
    // After shutdown nothing more is taken, and what was taken stays held.
    let mut late = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert_eq!(late.taken().await.code(), "shutting-down");
    assert_eq!(r.queue.stats().unwrap().held, 20);
    let ids: std::collections::HashSet<_> = tickets.iter().map(|t| t.customer_id.clone()).collect();
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn armed_capture_joins_and_completes() {
    let r = rig(saved("77"), true);
    let mut fields = serde_json::Map::new();
    fields.insert("first_name".into(), "Ada".into());
    fields.insert("zip".into(), "32503".into());
    let id = r
        .captures
        .arm(Some("stdin".into()), fields, Duration::from_secs(60))
        .unwrap();
    let mut t = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert_eq!(t.settle(WAIT).await.as_str(), "saved");
    let sent = lock(&r.fake.seen).clone();
    assert_eq!(sent[0].customer.first_name.as_deref(), Some("Ada"));
    assert_eq!(sent[0].customer.zip.as_deref(), Some("32503"));
    let status = r.captures.get(&id).unwrap();
    assert_eq!(status.state, CaptureState::Saved);
    assert_eq!(status.token.as_deref(), Some("77"));
    assert_eq!(status.customer_id, t.customer_id);
    r.pipeline.shutdown().await;
}

#[tokio::test]
async fn rejected_stays_failed_in_queue_with_reason() {
    let r = rig(
        DeliverResult::Final(FinalAnswer::Rejected("zip: must be 5 or 9 digits".into())),
        true,
    );
    let mut t = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert_eq!(
        t.settle(WAIT).await,
        SwipeOutcome::Rejected {
            reason: "zip: must be 5 or 9 digits".into()
        }
    );
    r.pipeline.shutdown().await;
    assert_eq!(r.queue.stats().unwrap().failed, 1);
}
