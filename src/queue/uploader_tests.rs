use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::*;
use crate::queue::{KeySource, NewRecord, QueueConfig, QueueKey, RecordState};

const T0: i64 = 1_800_000_000_000;

type Answer = Box<dyn Fn(&str, usize) -> DeliverResult + Send + Sync>;

/// A fake gateway: the payload is the customer id; `answer` decides per call; optional gate
/// holds each delivery until the test hands out a permit.
struct Fake {
    answer: Answer,
    calls: Mutex<BTreeMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    gate: Option<Arc<Semaphore>>,
}

impl Fake {
    fn new(answer: impl Fn(&str, usize) -> DeliverResult + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Fake {
            answer: Box::new(answer),
            calls: Mutex::new(BTreeMap::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            gate: None,
        })
    }
    fn saving() -> Arc<Self> {
        Fake::new(|c, _| {
            DeliverResult::Final(FinalAnswer::Saved(Saved {
                token: Some(format!("tok-{c}")),
            }))
        })
    }
    fn calls(&self) -> BTreeMap<String, usize> {
        self.calls.lock().unwrap().clone()
    }
}

impl Deliver for Fake {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a> {
        Box::pin(async move {
            let customer = String::from_utf8_lossy(payload).into_owned();
            let n = {
                let mut calls = self.calls.lock().unwrap();
                let n = calls.entry(customer.clone()).or_default();
                *n += 1;
                *n
            };
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_in_flight.fetch_max(now, Ordering::SeqCst);
            if let Some(gate) = &self.gate {
                gate.acquire().await.unwrap().forget();
            }
            tokio::task::yield_now().await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            (self.answer)(&customer, n)
        })
    }
}

struct Env {
    _dir: tempfile::TempDir,
    queue: Arc<Queue>,
    clock: Arc<AtomicI64>,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(AtomicI64::new(T0));
    let c = clock.clone();
    let queue = Queue::open(
        dir.path().join("q.db"),
        QueueConfig {
            key: KeySource::Key(QueueKey::from_bytes([9; 32])),
            ..QueueConfig::default()
        },
    )
    .unwrap()
    .with_clock(move || c.load(Ordering::SeqCst));
    Env {
        _dir: dir,
        queue: Arc::new(queue),
        clock,
    }
}

fn fill(q: &Queue, n: usize) {
    let recs = (0..n)
        .map(|i| {
            let c = format!("cust-{i:03}");
            NewRecord {
                payload: Zeroizing::new(c.clone().into_bytes()),
                customer_id: c,
                masked_pan: None,
                has_pin_block: false,
                in_flight: false,
            }
        })
        .collect();
    for r in q.enqueue_many(recs).unwrap() {
        r.unwrap();
    }
}

fn cfg(concurrency: usize) -> UploaderConfig {
    UploaderConfig {
        concurrency,
        backoff: Backoff {
            base: Duration::from_secs(2),
            max: Duration::from_secs(60),
        },
        idle_poll: Duration::from_millis(200),
    }
}

/// Bounds every await on the uploader: a hang fails the test after 30 s instead of stalling CI.
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: no progress within 30 s"))
}

/// Yields until `cond` holds (the deliveries run on other tasks); fails after 30 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    within(what, async {
        while !cond() {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

fn drain_events(rx: &mut broadcast::Receiver<UploadEvent>) -> Vec<UploadEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_delivered_and_acked_exactly_once() {
    let e = env();
    fill(&e.queue, 60);
    let fake = Fake::saving();
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(8)).unwrap();
    let mut rx = up.subscribe();
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!(
        r,
        FlushReport {
            sent: 60,
            ..FlushReport::default()
        }
    );
    let calls = fake.calls();
    assert_eq!(calls.len(), 60);
    assert!(calls.values().all(|n| *n == 1));
    assert_eq!(e.queue.stats().unwrap().held, 0);
    let saved: Vec<_> = drain_events(&mut rx)
        .into_iter()
        .filter_map(|ev| match ev {
            UploadEvent::Saved {
                customer_id, token, ..
            } => Some((customer_id, token)),
            _ => None,
        })
        .collect();
    assert_eq!(saved.len(), 60);
    assert!(saved
        .iter()
        .all(|(c, t)| t.as_deref() == Some(format!("tok-{c}").as_str())));
    // Nothing left: a second flush sends nothing.
    assert_eq!(within("flush", up.flush_once()).await.unwrap().sent, 0);
}

#[tokio::test]
async fn declines_and_rejections_kept_as_failed() {
    let e = env();
    fill(&e.queue, 3);
    let fake = Fake::new(|c, _| match c {
        "cust-000" => DeliverResult::Final(FinalAnswer::Declined("do not honor".into())),
        "cust-001" => DeliverResult::Final(FinalAnswer::Rejected(
            "invalid card 4111111111111111".into(),
        )),
        _ => DeliverResult::Final(FinalAnswer::Saved(Saved::default())),
    });
    let up = Uploader::new(e.queue.clone(), fake, cfg(2)).unwrap();
    let mut rx = up.subscribe();
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!((r.sent, r.failed, r.remaining), (1, 2, 0));
    let list = e.queue.list().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|i| i.state == RecordState::Failed));
    assert_eq!(
        list[0].last_error.as_deref(),
        Some("declined: do not honor")
    );
    assert_eq!(
        list[1].last_error.as_deref(),
        Some("rejected: invalid card 411111******1111")
    );
    let evs = drain_events(&mut rx);
    assert!(evs
        .iter()
        .any(|ev| matches!(ev, UploadEvent::Declined { reason, .. } if reason == "do not honor")));
    assert!(!format!("{evs:?}").contains("4111111111111111"));
}

#[tokio::test]
async fn transient_failures_follow_the_backoff_schedule() {
    let e = env();
    fill(&e.queue, 1);
    // Fails 4 times, then saves.
    let fake = Fake::new(|_, n| {
        if n <= 4 {
            DeliverResult::Transient(format!("HTTP 503 (try {n})"))
        } else {
            DeliverResult::Final(FinalAnswer::Saved(Saved::default()))
        }
    });
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(1)).unwrap();
    // Nominal delays with base 2 s: 2, 4, 8, 16 s; jitter puts each in [d/2, d].
    for (attempt, nominal_ms) in [(1u32, 2000i64), (2, 4000), (3, 8000), (4, 16000)] {
        let now = e.clock.load(Ordering::SeqCst);
        let r = within("flush", up.flush_once()).await.unwrap();
        assert_eq!(
            (r.sent, r.retried, r.remaining),
            (0, 1, 1),
            "attempt {attempt}"
        );
        let info = &e.queue.list().unwrap()[0];
        assert_eq!(info.attempts, attempt);
        let wait = info.next_attempt_ms - now;
        assert!(
            (nominal_ms / 2..=nominal_ms).contains(&wait),
            "attempt {attempt}: waited {wait} ms"
        );
        assert_eq!(
            info.last_error.as_deref(),
            Some(format!("HTTP 503 (try {attempt})").as_str())
        );
        // Not due yet: a flush sends nothing.
        e.clock.store(info.next_attempt_ms - 1, Ordering::SeqCst);
        assert_eq!(within("flush", up.flush_once()).await.unwrap().retried, 0);
        e.clock.store(info.next_attempt_ms, Ordering::SeqCst);
    }
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!((r.sent, r.remaining), (1, 0));
    assert_eq!(fake.calls()["cust-000"], 5);
}

#[tokio::test]
async fn auth_failure_pauses_until_resume() {
    let e = env();
    fill(&e.queue, 5);
    let key_ok = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let k = key_ok.clone();
    let fake = Fake::new(move |_, _| {
        if k.load(Ordering::SeqCst) {
            DeliverResult::Final(FinalAnswer::Saved(Saved::default()))
        } else {
            DeliverResult::AuthFailed("HTTP 401".into())
        }
    });
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(1)).unwrap();
    let mut rx = up.subscribe();
    let r = within("flush", up.flush_once()).await.unwrap();
    assert!(r.auth_failed && up.is_paused());
    assert_eq!((r.sent, r.remaining), (0, 5));
    assert_eq!(
        fake.calls().values().sum::<usize>(),
        1,
        "stopped after the first refusal"
    );
    assert_eq!(
        drain_events(&mut rx),
        vec![UploadEvent::AuthFailed {
            reason: "HTTP 401".into()
        }]
    );
    // The refused record was handed back without counting the attempt.
    let list = e.queue.list().unwrap();
    assert!(list
        .iter()
        .all(|i| i.state == RecordState::Pending && i.attempts == 0));
    // Still paused: nothing is tried.
    assert_eq!(within("flush", up.flush_once()).await.unwrap().sent, 0);
    assert_eq!(fake.calls().values().sum::<usize>(), 1);
    key_ok.store(true, Ordering::SeqCst);
    up.resume();
    assert_eq!(drain_events(&mut rx), vec![UploadEvent::Resumed]);
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!((r.sent, r.remaining, r.auth_failed), (5, 0, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds() {
    let e = env();
    fill(&e.queue, 12);
    let gate = Arc::new(Semaphore::new(0));
    let fake = Arc::new(Fake {
        gate: Some(gate.clone()),
        ..Arc::into_inner(Fake::saving()).unwrap()
    });
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(3)).unwrap();
    let flush = tokio::spawn({
        let up = up.clone();
        async move { within("flush", up.flush_once()).await }
    });
    // Wait until the limit is reached, then give the loop many chances to overshoot.
    until("three deliveries in flight", || {
        fake.in_flight.load(Ordering::SeqCst) >= 3
    })
    .await;
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    assert_eq!(fake.in_flight.load(Ordering::SeqCst), 3);
    assert_eq!(e.queue.stats().unwrap().sending, 3);
    gate.add_permits(12);
    let r = within("the flush", flush).await.unwrap().unwrap();
    assert_eq!(r.sent, 12);
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_loop_sends_new_records_and_stops_gracefully() {
    let e = env();
    let gate = Arc::new(Semaphore::new(0));
    let fake = Arc::new(Fake {
        gate: Some(gate.clone()),
        ..Arc::into_inner(Fake::saving()).unwrap()
    });
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(2)).unwrap();
    let mut rx = up.subscribe();
    let task = up.start();
    fill(&e.queue, 5);
    up.nudge();
    until("two deliveries in flight", || {
        fake.in_flight.load(Ordering::SeqCst) >= 2
    })
    .await;
    // Stop with two deliveries in flight: they finish, the other three stay queued. `stop`
    // signals the loop on its first poll; poll it once before the deliveries may finish, so
    // the loop cannot claim more in between (which, with the gate shut, would hang).
    let mut stopping = Box::pin(task.stop());
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(stopping.as_mut().poll(cx)));
    assert!(first.await.is_pending(), "stop waits for the deliveries");
    gate.add_permits(2);
    within("the stop", stopping).await.unwrap();
    let saved = drain_events(&mut rx)
        .iter()
        .filter(|ev| matches!(ev, UploadEvent::Saved { .. }))
        .count();
    assert_eq!(saved, 2);
    let st = e.queue.stats().unwrap();
    assert_eq!((st.pending, st.sending), (3, 0));
}

#[tokio::test]
async fn panicking_deliverer_keeps_the_record() {
    let e = env();
    fill(&e.queue, 1);
    let fake = Fake::new(|_, n| {
        if n == 1 {
            panic!("deliverer bug");
        }
        DeliverResult::Final(FinalAnswer::Saved(Saved::default()))
    });
    let up = Uploader::new(e.queue.clone(), fake, cfg(1)).unwrap();
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!((r.sent, r.retried, r.remaining), (0, 1, 1));
    let info = &e.queue.list().unwrap()[0];
    assert_eq!(info.state, RecordState::Pending);
    assert_eq!(info.last_error.as_deref(), Some("deliverer panicked"));
    e.clock.store(info.next_attempt_ms, Ordering::SeqCst);
    assert_eq!(within("flush", up.flush_once()).await.unwrap().sent, 1);
}

#[tokio::test]
async fn expired_records_are_never_sent() {
    let e = env();
    fill(&e.queue, 2);
    e.clock.fetch_add(48 * 3600 * 1000 + 1, Ordering::SeqCst);
    let fake = Fake::saving();
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(1)).unwrap();
    let mut rx = up.subscribe();
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!((r.sent, r.expired, r.remaining), (0, 2, 0));
    assert!(fake.calls().is_empty());
    assert_eq!(
        drain_events(&mut rx),
        vec![UploadEvent::Expired { count: 2 }]
    );
}

#[tokio::test]
async fn new_recovers_rows_left_sending() {
    let e = env();
    fill(&e.queue, 2);
    assert_eq!(e.queue.claim_due(2).unwrap().len(), 2);
    let up = Uploader::new(e.queue.clone(), Fake::saving(), cfg(1)).unwrap();
    assert_eq!(within("flush", up.flush_once()).await.unwrap().sent, 2);
}

#[tokio::test]
async fn flush_tries_each_record_once_even_without_backoff() {
    let e = env();
    fill(&e.queue, 4);
    let fake = Fake::new(|_, _| DeliverResult::Transient("connection refused".into()));
    let up = Uploader::new(
        e.queue.clone(),
        fake.clone(),
        UploaderConfig {
            backoff: Backoff {
                base: Duration::ZERO,
                max: Duration::ZERO,
            },
            ..cfg(2)
        },
    )
    .unwrap();
    let r = within("flush", up.flush_once()).await.unwrap();
    assert_eq!((r.sent, r.retried, r.remaining), (0, 4, 4));
    assert!(fake.calls().values().all(|n| *n == 1));
}

/// The direct lane: the gateway refuses the API key while the record's enqueue fails. The
/// uploader pauses (the key is wrong for every record) and reports the swipe as not stored
/// with no answer, so the operator is told to take it again; nothing is in the queue.
#[tokio::test]
async fn direct_send_refused_key_and_enqueue_failed_is_not_stored_and_pauses() {
    let e = env();
    let fake = Fake::new(|_, _| DeliverResult::AuthFailed("HTTP 401".into()));
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(2)).unwrap();
    let mut rx = up.subscribe();
    let slot = up.direct_slot().expect("a free slot while running");
    let (tx, stored) = tokio::sync::oneshot::channel();
    up.send_direct(
        slot,
        "cust-direct".into(),
        Zeroizing::new(b"cust-direct".to_vec()),
        stored,
    );
    tx.send(Err(QueueError::Storage("disk full".into())))
        .unwrap();
    let first = within("the auth event", rx.recv()).await.unwrap();
    assert_eq!(
        first,
        UploadEvent::AuthFailed {
            reason: "HTTP 401".into()
        }
    );
    let second = within("the not-stored event", rx.recv()).await.unwrap();
    assert_eq!(
        second,
        UploadEvent::NotStored {
            customer_id: "cust-direct".into(),
            answer: None,
            error: QueueError::Storage("disk full".into()),
        }
    );
    assert!(up.is_paused());
    assert!(up.direct_slot().is_none(), "paused: no direct sends");
    assert_eq!(fake.calls()["cust-direct"], 1);
    assert_eq!(e.queue.stats().unwrap().held, 0);
}

/// A row that disappears while it is being sent (a purge ran meanwhile) used to end the
/// background loop (`?` on the answer's write): the records behind it were stranded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_purged_mid_drain_does_not_stop_the_loop() {
    let e = env();
    fill(&e.queue, 3);
    let first = e.queue.list().unwrap()[0].id;
    let q = e.queue.clone();
    // The first delivery deletes its own row (as `queue purge` beside the agent would), then
    // fails transiently: writing that answer finds no row.
    let fake = Fake::new(move |c, _| {
        if c == "cust-000" {
            assert!(q.ack(first).unwrap());
            DeliverResult::Transient("timeout".into())
        } else {
            DeliverResult::Final(FinalAnswer::Saved(Saved::default()))
        }
    });
    let up = Uploader::new(e.queue.clone(), fake.clone(), cfg(1)).unwrap();
    let health = up.health();
    let mut rx = up.subscribe();
    let task = up.start();
    let mut saved = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while saved.len() < 2 {
            if let Ok(UploadEvent::Saved { customer_id, .. }) = rx.recv().await {
                saved.push(customer_id);
            }
        }
    })
    .await
    .expect("the other records were not delivered");
    saved.sort();
    assert_eq!(saved, ["cust-001", "cust-002"]);
    assert_eq!(e.queue.stats().unwrap().held, 0);
    let status = health.status();
    assert!(status.alive);
    assert_eq!(status.record_errors, 1);
    assert_eq!(status.storage_failing, None);
    task.stop().await.unwrap();
    assert!(!health.status().alive);
}
