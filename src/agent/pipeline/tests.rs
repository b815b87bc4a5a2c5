use std::sync::atomic::AtomicUsize;

use super::*;
use crate::gateway::CustomerRequest;
use crate::queue::{KeySource, QueueConfig, QueueKey, Saved};

/// A gateway stand-in: answers with the scripted answers first, then `answer`; keeps what it
/// was sent.
struct Fake {
    answer: Mutex<DeliverResult>,
    script: Mutex<VecDeque<DeliverResult>>,
    seen: Mutex<Vec<CustomerRequest>>,
    calls: AtomicUsize,
}

impl Fake {
    fn new(answer: DeliverResult) -> Arc<Fake> {
        Arc::new(Fake {
            answer: Mutex::new(answer),
            script: Mutex::new(VecDeque::new()),
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
            let scripted = lock(&self.script).pop_front();
            scripted.unwrap_or_else(|| lock(&self.answer).clone())
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
    rig_with(answer, 1_000, |c| c.lane.allow_clear = allow_clear)
}

fn rig_with(
    answer: DeliverResult,
    max_records: u64,
    tweak: impl FnOnce(&mut PipelineConfig),
) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let queue = Arc::new(
        Queue::open(
            dir.path().join("q.db"),
            QueueConfig {
                key: KeySource::Key(QueueKey::from_bytes([7; 32])),
                max_records,
                ..QueueConfig::default()
            },
        )
        .unwrap(),
    );
    let fake = Fake::new(answer);
    let events = EventHub::new(1024);
    let captures = Arc::new(Captures::new(4));
    let mut cfg = PipelineConfig::default();
    cfg.uploader.idle_poll = Duration::from_millis(100);
    tweak(&mut cfg);
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
    swipe.pin_block = Some(RecordPin::same_ksn(SecretString::new("0412AC89ABCDEF67")));
    let mut t = r.pipeline.submit(swipe).await;
    let out = t.settle(WAIT).await;
    assert_eq!(out.code(), "pin-needs-online", "{out:?}");
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 1);
    r.pipeline.shutdown().await;
    assert_eq!(r.queue.stats().unwrap().held, 0);
}

#[tokio::test]
async fn pin_record_with_the_gateway_known_down_fails_untried() {
    let r = rig(saved("T-1"), true);
    let health = Arc::new(GatewayHealth::new());
    health.probed(false);
    r.pipeline.watch_gateway(health.clone());
    let mut events = r.events.subscribe();
    let mut swipe = Swipe::new(sample04(), "usb", None);
    swipe.pin_block = Some(RecordPin::same_ksn(SecretString::new("0412AC89ABCDEF67")));
    let out = r.pipeline.submit(swipe).await.settle(WAIT).await;
    assert_eq!(out.code(), "pin-needs-online", "{out:?}");
    // Not even tried, not queued; the failure is published with its code.
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 0);
    assert_eq!(r.queue.stats().unwrap().held, 0);
    let failed = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(LaneEvent::Failed { code, .. }) = events.recv().await {
                return code;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(failed, "pin-needs-online");
    // Reachable again: the same record is sent (and saved).
    health.probed(true);
    let mut swipe = Swipe::new(sample04(), "usb", None);
    swipe.pin_block = Some(RecordPin::same_ksn(SecretString::new("0412AC89ABCDEF67")));
    let out = r.pipeline.submit(swipe).await.settle(WAIT).await;
    assert_eq!(out.code(), "saved", "{out:?}");
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 1);
    r.pipeline.shutdown().await;
}

#[tokio::test]
async fn a_kiosk_pin_block_goes_with_its_captures_read_under_its_own_ksn() {
    use crate::agent::capture_pin::KioskPin;
    use crate::agent::captures::CardOptions;
    let r = rig(saved("T-7"), true);
    let kiosk = KioskPin::from_json(&serde_json::json!({
        "block": "041274edcba9876f", "ksn": "FFFF9876543211E00007", "format": 0}))
    .unwrap();
    let id = r
        .captures
        .arm_card(
            None,
            Default::default(),
            Duration::from_secs(60),
            CardOptions {
                pin_block: Some(kiosk),
                ..CardOptions::default()
            },
        )
        .unwrap();
    let out = r
        .pipeline
        .submit(Swipe::new(sample04(), "usb", None))
        .await
        .settle(WAIT)
        .await;
    assert_eq!(out.code(), "saved", "{out:?}");
    {
        let seen = lock(&r.fake.seen);
        let card = seen[0].card.as_ref().unwrap();
        assert_eq!(
            card.pin_block.as_ref().map(|p| p.expose()),
            Some("041274EDCBA9876F")
        );
        assert_eq!(card.ksn.as_deref(), Some("FFFF9876543211E00007"));
    }
    // Sent online, never queued.
    assert_eq!(r.queue.stats().unwrap().held, 0);
    let status = r.captures.get(&id).unwrap();
    assert_eq!(status.state, CaptureState::Saved);
    assert_eq!(status.pin, Some(crate::agent::capture_pin::PinNote::Given));
    r.pipeline.shutdown().await;
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

/// Polls until `done` holds (the pipeline's tasks run on their own).
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Takes SQLite's write lock on the queue file from a second connection, so the pipeline's
/// enqueue cannot commit until `COMMIT`.
fn hold_write_lock(queue: &Queue) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(queue.path()).unwrap();
    c.execute_batch("BEGIN IMMEDIATE").unwrap();
    c
}

#[tokio::test]
async fn request_goes_out_while_the_commit_waits() {
    let r = rig(saved("5"), true);
    let blocker = hold_write_lock(&r.queue);
    let mut t = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    wait_for("the request", || r.fake.calls.load(Ordering::SeqCst) == 1).await;
    // Answered by the gateway, but not durable yet: nothing is reported before the commit.
    assert_eq!(t.outcome(), SwipeOutcome::Pending);
    blocker.execute_batch("COMMIT").unwrap();
    assert_eq!(
        t.settle(WAIT).await,
        SwipeOutcome::Saved {
            token: Some("5".into())
        }
    );
    r.pipeline.shutdown().await;
    // Stored as `sending`, so the background loop never sent it a second time; then deleted.
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 1);
    assert_eq!(r.queue.stats().unwrap().held, 0);
}

#[tokio::test]
async fn without_the_direct_lane_or_for_a_kiosk_customer_id_the_request_waits_for_the_commit() {
    let off = rig_with(saved("6"), 1_000, |c| {
        c.lane.allow_clear = true;
        c.send_before_commit = false;
    });
    let on = rig(saved("7"), true);
    let mut fields = serde_json::Map::new();
    fields.insert("customer_id".into(), "KIOSK-CUST-1".into());
    on.captures
        .arm(Some("stdin".into()), fields, Duration::from_secs(60))
        .unwrap();
    let blockers = [hold_write_lock(&off.queue), hold_write_lock(&on.queue)];
    let mut t_off = off.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    let mut t_kiosk = on.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    // A kiosk's own customer_id may have an older record queued: it must not be overtaken.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(off.fake.calls.load(Ordering::SeqCst), 0);
    assert_eq!(on.fake.calls.load(Ordering::SeqCst), 0);
    for b in &blockers {
        b.execute_batch("COMMIT").unwrap();
    }
    assert_eq!(t_off.settle(WAIT).await.as_str(), "saved");
    assert_eq!(t_kiosk.settle(WAIT).await.as_str(), "saved");
    assert_eq!(t_kiosk.customer_id.as_deref(), Some("KIOSK-CUST-1"));
    off.pipeline.shutdown().await;
    on.pipeline.shutdown().await;
}

#[tokio::test]
async fn a_record_the_queue_refuses_counts_only_if_the_gateway_saved_it() {
    // Cap 0: every enqueue is refused as full.
    let saved_anyway = rig_with(saved("8"), 0, |c| c.lane.allow_clear = true);
    let mut t = saved_anyway
        .pipeline
        .submit(Swipe::new(CLEAR, "stdin", None))
        .await;
    assert_eq!(
        t.settle(WAIT).await,
        SwipeOutcome::Saved {
            token: Some("8".into())
        }
    );
    saved_anyway.pipeline.shutdown().await;

    let lost = rig_with(DeliverResult::Transient("connect failed".into()), 0, |c| {
        c.lane.allow_clear = true
    });
    let mut t = lost.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert_eq!(t.settle(WAIT).await.code(), "queue-full");
    assert_eq!(lost.fake.calls.load(Ordering::SeqCst), 1);
    lost.pipeline.shutdown().await;
    assert_eq!(lost.queue.stats().unwrap().held, 0);
}

#[tokio::test]
async fn direct_transient_failure_is_retried_from_the_queue() {
    let r = rig_with(saved("9"), 1_000, |c| {
        c.lane.allow_clear = true;
        c.uploader.backoff = crate::queue::Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
        };
    });
    lock(&r.fake.script).push_back(DeliverResult::Transient("http 500".into()));
    let mut t = r.pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert_eq!(t.taken().await, SwipeOutcome::Queued);
    assert_eq!(
        t.settle(WAIT).await,
        SwipeOutcome::Saved {
            token: Some("9".into())
        }
    );
    r.pipeline.shutdown().await;
    let sent = lock(&r.fake.seen).clone();
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|s| s.customer.customer_id == t.customer_id));
    assert_eq!(r.queue.stats().unwrap().held, 0);
}

// ---- checks (MICR reads) ----

/// The MagTek manual's line (micr.md §2) as `magtek-micr-serial` sends it: routing 122000218,
/// account 123456789, check 1321.
const MICR: &str = "T122000218T 1234 5678 9U 1321\r\n";

fn micr_profile() -> Option<Arc<Profile>> {
    let p = crate::device::profile::Profiles::embedded().unwrap();
    Some(Arc::new(p.require("magtek-micr-serial").unwrap().clone()))
}

#[tokio::test]
async fn a_check_without_a_capture_is_not_saved_even_with_on_swipe_save() {
    let r = rig(saved("1"), true);
    assert!(
        PipelineConfig::default().save_unarmed,
        "the default saves unarmed card swipes"
    );
    let mut t = r
        .pipeline
        .submit(Swipe::new(MICR, "micr", micr_profile()))
        .await;
    assert_eq!(t.settle(WAIT).await, SwipeOutcome::Ignored);
    // A card capture does not take a check either.
    r.captures
        .arm(None, serde_json::Map::new(), Duration::from_secs(60))
        .unwrap();
    let mut t = r
        .pipeline
        .submit(Swipe::new(MICR, "micr", micr_profile()))
        .await;
    assert_eq!(t.settle(WAIT).await, SwipeOutcome::Ignored);
    assert_eq!(r.fake.calls.load(Ordering::SeqCst), 0);
    r.pipeline.shutdown().await;
}

#[tokio::test]
async fn a_check_capture_sends_the_check_object() {
    use crate::gateway::check_record::{CheckOptions, SecCode};
    let r = rig(saved("4242"), false);
    let mut fields = serde_json::Map::new();
    fields.insert("first_name".into(), "Pat".into());
    fields.insert("last_name".into(), "Check".into());
    let boc = CheckOptions {
        sec_code: Some(SecCode::Boc),
        ..Default::default()
    };
    let id = r
        .captures
        .arm_check(None, fields, Duration::from_secs(60), boc)
        .unwrap();
    let mut t = r
        .pipeline
        .submit(Swipe::new(MICR, "micr", micr_profile()))
        .await;
    assert_eq!(t.settle(WAIT).await.as_str(), "saved");
    let sent = lock(&r.fake.seen).clone();
    assert_eq!(sent.len(), 1);
    let v = serde_json::to_value(&sent[0]).unwrap();
    assert!(v.get("card").is_none());
    // BOC: the check number goes, fitted to 6 digits; a personal check is a checking account.
    assert_eq!(
        v["check"],
        serde_json::json!({"aba_code":"122000218","account_number":"123456789",
                           "account_type":"0","check_number":"001321","sec_code":"4"})
    );
    assert_eq!(v["customer"]["last_name"], "Check");
    let status = r.captures.get(&id).unwrap();
    assert_eq!(status.state, CaptureState::Saved);
    assert_eq!(status.token.as_deref(), Some("4242"));
    r.pipeline.shutdown().await;
}

#[tokio::test]
async fn a_queued_check_keeps_its_account_number_sealed() {
    let r = rig(DeliverResult::Transient("gateway down".into()), false);
    r.captures
        .arm_check(
            None,
            serde_json::Map::new(),
            Duration::from_secs(60),
            Default::default(),
        )
        .unwrap();
    let mut t = r
        .pipeline
        .submit(Swipe::new(MICR, "micr", micr_profile()))
        .await;
    assert_eq!(t.taken().await, SwipeOutcome::Queued);
    r.pipeline.shutdown().await;
    let path = r.queue.path().to_path_buf();
    let mut bytes = std::fs::read(&path).unwrap();
    for ext in ["-wal", "-journal"] {
        let mut p = path.clone().into_os_string();
        p.push(ext);
        bytes.extend(std::fs::read(p).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains("*****6789"), "the masked account is kept");
    assert!(!text.contains("123456789"), "the account number is sealed");
}

/// A capture whose record was queued used to be forgotten on a restart: the next run
/// delivered the record and the kiosk got 404 for its capture.
#[tokio::test]
async fn a_queued_capture_survives_a_restart_and_is_found_by_customer_id() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Arc::new(
            Queue::open(
                dir.path().join("q.db"),
                QueueConfig {
                    key: KeySource::Key(QueueKey::from_bytes([7; 32])),
                    ..QueueConfig::default()
                },
            )
            .unwrap(),
        )
    };
    let start = |queue: Arc<Queue>, answer: DeliverResult| {
        let captures = Arc::new(Captures::new(4).with_store(queue.clone()));
        let mut cfg = PipelineConfig::default();
        cfg.lane.allow_clear = true;
        cfg.uploader.idle_poll = Duration::from_millis(100);
        let pipeline = Pipeline::start(
            cfg,
            queue,
            Fake::new(answer),
            EventHub::new(64),
            captures.clone(),
            Arc::new(Metrics::new()),
        )
        .unwrap();
        (pipeline, captures)
    };

    // First run: the gateway is down; the capture ends `queued`.
    let (pipeline, captures) = start(open(), DeliverResult::Transient("connect failed".into()));
    let id = captures
        .arm(
            Some("stdin".into()),
            serde_json::Map::new(),
            Duration::from_secs(60),
        )
        .unwrap();
    let mut t = pipeline.submit(Swipe::new(CLEAR, "stdin", None)).await;
    assert_eq!(t.taken().await, SwipeOutcome::Queued);
    let customer_id = t.customer_id.clone().unwrap();
    assert_eq!(captures.get(&id).unwrap().state, CaptureState::Queued);
    pipeline.shutdown().await;
    drop((pipeline, captures));

    // Second run: nothing armed in memory; the record goes out and the capture follows it.
    let (pipeline, captures) = start(open(), saved("T-42"));
    wait_for("the kept capture saved", || {
        captures
            .get(&id)
            .is_some_and(|s| s.state == CaptureState::Saved)
    })
    .await;
    let status = captures.get(&id).unwrap();
    assert_eq!(status.token.as_deref(), Some("T-42"));
    assert_eq!(status.customer_id.as_deref(), Some(customer_id.as_str()));
    assert_eq!(
        status.masked_pan.as_ref().map(|m| m.as_str()),
        Some("400557******1111")
    );
    // The kiosk may also ask by the customer id it was given.
    assert_eq!(captures.get(&customer_id).unwrap().id, id);
    pipeline.shutdown().await;
}

/// A check capture shows its account masked to the last 4 (and no masked PAN) in its status,
/// its events and, once the agent restarted, from the kept captures.
#[tokio::test]
async fn a_check_capture_reports_its_masked_account_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Arc::new(
            Queue::open(
                dir.path().join("q.db"),
                QueueConfig {
                    key: KeySource::Key(QueueKey::from_bytes([9; 32])),
                    ..QueueConfig::default()
                },
            )
            .unwrap(),
        )
    };
    let queue = open();
    let captures = Arc::new(Captures::new(4).with_store(queue.clone()));
    let events = EventHub::new(64);
    let mut rx = events.subscribe();
    let mut cfg = PipelineConfig::default();
    cfg.lane.allow_clear = true;
    let pipeline = Pipeline::start(
        cfg,
        queue,
        Fake::new(DeliverResult::Transient("gateway down".into())),
        events,
        captures.clone(),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let id = captures
        .arm_check(
            None,
            serde_json::Map::new(),
            Duration::from_secs(60),
            Default::default(),
        )
        .unwrap();
    let mut t = pipeline
        .submit(Swipe::new(MICR, "micr", micr_profile()))
        .await;
    assert_eq!(t.taken().await, SwipeOutcome::Queued);
    // MICR is the MagTek manual's line: account 123456789, so `*****6789`.
    let want = Some("*****6789");
    assert_eq!(t.masked_account.as_deref(), want);
    let status = captures.get(&id).unwrap();
    assert_eq!(status.masked_account.as_ref().map(|m| m.as_str()), want);
    assert_eq!(status.masked_pan, None);
    let mut kinds = Vec::new();
    // The `queued` event may follow the ticket's change by a moment.
    while !kinds.contains(&"queued") {
        let ev = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the queued event")
            .unwrap();
        if let LaneEvent::Swipe { masked_account, .. } | LaneEvent::Queued { masked_account, .. } =
            &ev
        {
            assert_eq!(masked_account.as_ref().map(|m| m.as_str()), want, "{ev:?}");
            kinds.push(ev.kind());
        }
    }
    assert_eq!(kinds, ["swipe", "queued"]);
    pipeline.shutdown().await;
    drop((pipeline, captures));

    // The next run knows the capture from the queue file only.
    let captures = Captures::new(4).with_store(open());
    let status = captures.get(&id).unwrap();
    assert_eq!(status.state, CaptureState::Queued);
    assert_eq!(status.masked_account.as_ref().map(|m| m.as_str()), want);
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["masked_account"], "*****6789");
    assert!(json["masked_pan"].is_null());
}
