//! Drains the queue through a [`Deliver`] (the gateway client) with a concurrency limit.
//!
//! Saved → the row is deleted; declined/rejected → kept `failed` with the reason (payload
//! wiped); transient → back to pending after an exponential, jittered, capped backoff;
//! auth failure → the record is handed back, uploads pause and [`UploadEvent::AuthFailed`] is
//! raised until [`Uploader::resume`]. Rows left `sending` by a crash are recovered on start.
//!
//! Two lanes share one concurrency limit: the background loop claims due rows, and the direct
//! lane ([`Uploader::send_direct`]) sends a fresh record while its enqueue is still committing,
//! so a swipe's request never waits for the fsync; the answer is applied to the row once the
//! commit is known.
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;
use zeroize::Zeroizing;

use super::error::QueueError;
use super::mask::mask_text;
use super::store::{Claimed, Queue, RecordId};

mod backoff;
pub use backoff::Backoff;

/// What [`Deliver::deliver`] returns.
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = DeliverResult> + Send + 'a>>;

/// Sends one payload (a serialized Customer request) and classifies the answer. Object-safe
/// so the uploader can hold `Arc<dyn Deliver>`; implement with `Box::pin(async move { … })`.
pub trait Deliver: Send + Sync {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a>;
}

/// The gateway's answer to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliverResult {
    /// A final answer: the record leaves the pending set.
    Final(FinalAnswer),
    /// Network error, timeout, 5xx, lost response: try again later (the upsert makes it safe).
    Transient(String),
    /// The API key was refused: retrying cannot help until an operator fixes it.
    AuthFailed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalAnswer {
    Saved(Saved),
    Declined(String),
    Rejected(String),
}

/// What the gateway gave back for a saved customer (a token, not card data).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Saved {
    pub token: Option<String>,
}

/// Raised on the broadcast channel from [`Uploader::subscribe`]. Reasons are masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadEvent {
    Saved {
        id: RecordId,
        customer_id: String,
        token: Option<String>,
    },
    Declined {
        id: RecordId,
        customer_id: String,
        reason: String,
    },
    Rejected {
        id: RecordId,
        customer_id: String,
        reason: String,
    },
    Retrying {
        id: RecordId,
        customer_id: String,
        attempts: u32,
        at_ms: i64,
        reason: String,
    },
    /// Uploads are paused until [`Uploader::resume`].
    AuthFailed {
        reason: String,
    },
    Resumed,
    /// Records dropped for age (never sent).
    Expired {
        count: u64,
    },
    /// A direct delivery whose record could not be stored (`error`): only the gateway's
    /// answer counts; `None` when it gave none (the swipe is lost and must be taken again).
    NotStored {
        customer_id: String,
        answer: Option<FinalAnswer>,
        error: QueueError,
    },
}

#[derive(Debug, Clone)]
pub struct UploaderConfig {
    /// Deliveries in flight at most.
    pub concurrency: usize,
    pub backoff: Backoff,
    /// Longest idle sleep of the background loop between looks at the queue.
    pub idle_poll: Duration,
}

impl Default for UploaderConfig {
    fn default() -> Self {
        UploaderConfig {
            concurrency: 4,
            backoff: Backoff::default(),
            idle_poll: Duration::from_secs(5),
        }
    }
}

/// The outcome of [`Uploader::flush_once`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Saved and deleted.
    pub sent: u64,
    /// Declined, rejected or corrupt: kept as failed.
    pub failed: u64,
    /// Transient failures, rescheduled.
    pub retried: u64,
    /// Dropped for age.
    pub expired: u64,
    /// Still pending or sending afterwards.
    pub remaining: u64,
    /// Uploads are paused on an authentication failure.
    pub auth_failed: bool,
}

/// Whether the background loop runs and how storage has been treating it; read by health
/// and metrics. Errors kept here are reason codes and SQLite/OS text, never payload bytes.
#[derive(Debug, Default)]
pub struct UploaderHealth {
    alive: AtomicBool,
    restarts: AtomicU64,
    record_errors: AtomicU64,
    storage_errors: AtomicU64,
    /// The storage error the loop is backing off from right now, if any.
    storage_failing: Mutex<Option<String>>,
}

/// A snapshot of [`UploaderHealth`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UploaderStatus {
    /// The background loop is running (started, not stopped, not between restarts).
    pub alive: bool,
    /// Times the loop was restarted after it ended unexpectedly.
    pub restarts: u64,
    /// Records whose answer could not be written (the loop went on with the others).
    pub record_errors: u64,
    /// Storage failures the loop backed off from.
    pub storage_errors: u64,
    /// Set while the loop is backing off from a storage failure.
    pub storage_failing: Option<String>,
}

impl UploaderHealth {
    pub fn status(&self) -> UploaderStatus {
        UploaderStatus {
            alive: self.alive.load(Ordering::Acquire),
            restarts: self.restarts.load(Ordering::Relaxed),
            record_errors: self.record_errors.load(Ordering::Relaxed),
            storage_errors: self.storage_errors.load(Ordering::Relaxed),
            storage_failing: lock(&self.storage_failing).clone(),
        }
    }

    fn storage_failed(&self, e: &QueueError) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.storage_failing) = Some(e.to_string());
    }

    fn storage_ok(&self) {
        let mut f = lock(&self.storage_failing);
        if f.is_some() {
            tracing::info!("queue: storage answers again; uploads continue");
            *f = None;
        }
    }
}

/// Delay after `n` storage failures in a row: 200 ms doubling to 30 s.
fn storage_backoff(n: u32) -> Duration {
    Backoff {
        base: Duration::from_millis(200),
        max: Duration::from_secs(30),
    }
    .nominal(n)
}

struct Inner {
    health: Arc<UploaderHealth>,
    queue: Arc<Queue>,
    deliver: Arc<dyn Deliver>,
    cfg: UploaderConfig,
    paused: watch::Sender<bool>,
    events: broadcast::Sender<UploadEvent>,
    nudge: Notify,
    /// The concurrency limit, shared by the background loop and the direct lane.
    permits: Arc<Semaphore>,
    /// Set while the background loop stops: the direct lane takes nothing more.
    stopping: AtomicBool,
    /// Direct deliveries in flight (joined by [`UploaderTask::stop`]).
    direct: Mutex<JoinSet<()>>,
}

/// A free delivery slot taken for the direct lane ([`Uploader::direct_slot`]).
pub struct DirectSlot {
    // Held, never read: dropping it frees the slot.
    _permit: OwnedSemaphorePermit,
}

/// How the direct lane learns whether its record was stored: the row id, or why not.
pub type StoredRx = oneshot::Receiver<Result<RecordId, QueueError>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cheap to clone; clones share the pause state and event channel.
#[derive(Clone)]
pub struct Uploader {
    inner: Arc<Inner>,
}

/// The background loop started by [`Uploader::start`].
pub struct UploaderTask {
    stop: watch::Sender<bool>,
    join: tokio::task::JoinHandle<()>,
    inner: Arc<Inner>,
}

impl UploaderTask {
    /// Graceful stop: claims nothing more, waits for the deliveries in flight (both lanes),
    /// keeps the rest.
    pub async fn stop(self) -> Result<(), QueueError> {
        self.inner.stopping.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        let drained = self
            .join
            .await
            .map_err(|_| QueueError::Storage("uploader supervisor panicked".into()));
        let mut direct = std::mem::take(&mut *lock(&self.inner.direct));
        while direct.join_next().await.is_some() {}
        drained
    }
}

/// What one delivery did to its row.
enum Outcome {
    Sent,
    Failed,
    Retried,
    Paused,
}

async fn blocking<T, F>(queue: &Arc<Queue>, f: F) -> Result<T, QueueError>
where
    T: Send + 'static,
    F: FnOnce(&Queue) -> Result<T, QueueError> + Send + 'static,
{
    let q = queue.clone();
    tokio::task::spawn_blocking(move || f(&q))
        .await
        .map_err(|_| QueueError::Storage("queue task panicked".into()))?
}

impl Uploader {
    /// Recovers rows left `sending` by a crash (they go back to pending), then is ready.
    pub fn new(
        queue: Arc<Queue>,
        deliver: Arc<dyn Deliver>,
        cfg: UploaderConfig,
    ) -> Result<Self, QueueError> {
        let recovered = queue.recover()?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "queue: records left sending by a previous run are pending again"
            );
        }
        let (events, _) = broadcast::channel(1024);
        Ok(Uploader {
            inner: Arc::new(Inner {
                health: Arc::new(UploaderHealth::default()),
                queue,
                deliver,
                cfg: UploaderConfig {
                    concurrency: cfg.concurrency.max(1),
                    ..cfg
                },
                paused: watch::Sender::new(false),
                events,
                nudge: Notify::new(),
                permits: Arc::new(Semaphore::new(cfg.concurrency.max(1))),
                stopping: AtomicBool::new(false),
                direct: Mutex::new(JoinSet::new()),
            }),
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<UploadEvent> {
        self.inner.events.subscribe()
    }

    pub fn is_paused(&self) -> bool {
        *self.inner.paused.borrow()
    }

    /// Lifts an authentication pause (the operator fixed the key).
    pub fn resume(&self) {
        if self
            .inner
            .paused
            .send_if_modified(|p| std::mem::replace(p, false))
        {
            let _ = self.inner.events.send(UploadEvent::Resumed);
        }
    }

    /// Wakes the background loop (call after an enqueue).
    pub fn nudge(&self) {
        self.inner.nudge.notify_one();
    }

    /// Sends every record due when it starts (each at most once, so it always ends), then
    /// returns. Records that fail transiently are rescheduled and counted in `remaining`.
    pub async fn flush_once(&self) -> Result<FlushReport, QueueError> {
        let (_keep, stop) = watch::channel(false);
        drain(self.inner.clone(), true, stop).await
    }

    /// Whether the background loop is alive, its restarts and storage failures.
    pub fn health(&self) -> Arc<UploaderHealth> {
        self.inner.health.clone()
    }

    /// A manual flush: every record held now is sent once, whatever its backoff says.
    pub async fn flush_now(&self) -> Result<FlushReport, QueueError> {
        blocking(&self.inner.queue, |q| q.make_all_due()).await?;
        self.flush_once().await
    }

    /// Starts the background loop on the current tokio runtime, supervised: a loop that ends
    /// other than by [`UploaderTask::stop`] (an error, a panic) is restarted after a pause.
    pub fn start(&self) -> UploaderTask {
        self.inner.stopping.store(false, Ordering::Release);
        let (tx, rx) = watch::channel(false);
        let inner = self.inner.clone();
        // Alive from here: the supervisor may not have been scheduled yet.
        inner.health.alive.store(true, Ordering::Release);
        let join = tokio::spawn(supervise(inner, rx));
        UploaderTask {
            stop: tx,
            join,
            inner: self.inner.clone(),
        }
    }

    /// A delivery slot for the direct lane: only while uploads run (not paused, not stopping)
    /// and the concurrency limit has room. `None` means: enqueue normally, the loop sends it.
    pub fn direct_slot(&self) -> Option<DirectSlot> {
        if self.is_paused() || self.inner.stopping.load(Ordering::Acquire) {
            return None;
        }
        self.inner
            .permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|p| DirectSlot { _permit: p })
    }

    /// Sends a record now, while its enqueue (with `in_flight: true`) commits; `stored` says
    /// how the commit went. The answer is then applied to the row as the loop would (saved →
    /// deleted, transient → retried later, …) and raised as the same [`UploadEvent`]s; a
    /// record that could not be stored ends in [`UploadEvent::NotStored`]. Only for a
    /// `customer_id` no older record can hold (one the agent just chose), so no customer's
    /// records overtake each other.
    pub fn send_direct(
        &self,
        slot: DirectSlot,
        customer_id: String,
        payload: Zeroizing<Vec<u8>>,
        stored: StoredRx,
    ) {
        let inner = self.inner.clone();
        let task = async move {
            let result = inner.deliver.deliver(&payload).await;
            drop(payload);
            let stored = stored
                .await
                .unwrap_or_else(|_| Err(QueueError::Storage("enqueue abandoned".into())));
            let applied = match stored {
                Ok(id) => settle(&inner, id, customer_id, 1, result).await.map(|_| ()),
                Err(error) => {
                    not_stored(&inner, customer_id, result, error);
                    Ok(())
                }
            };
            if let Err(e) = applied {
                tracing::error!(error = %e, "queue: the answer of a direct delivery was not recorded");
            }
            drop(slot);
            // The slot is free: the loop may have rows waiting for it.
            inner.nudge.notify_one();
        };
        let mut direct = lock(&self.inner.direct);
        while direct.try_join_next().is_some() {}
        direct.spawn(task.instrument(tracing::Span::current()));
    }
}

async fn purge_expired(inner: &Arc<Inner>) -> Result<u64, QueueError> {
    let n = blocking(&inner.queue, |q| q.purge_expired()).await?;
    if n > 0 {
        tracing::warn!(
            count = n,
            "queue: records expired before the gateway answered; dropped unsent"
        );
        let _ = inner.events.send(UploadEvent::Expired { count: n });
    }
    Ok(n)
}

/// Runs the background loop until stopped, restarting it when it ends any other way.
async fn supervise(inner: Arc<Inner>, mut stop: watch::Receiver<bool>) {
    let mut failures = 0u32;
    loop {
        inner.health.alive.store(true, Ordering::Release);
        let run = tokio::spawn(drain(inner.clone(), false, stop.clone()));
        let ended = run.await;
        inner.health.alive.store(false, Ordering::Release);
        // Stopped, or nobody left who could stop it: done.
        if *stop.borrow() || stop.has_changed().is_err() {
            return;
        }
        let why = match ended {
            Ok(Ok(_)) => "ended".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "panicked".to_string(),
        };
        failures = failures.saturating_add(1);
        inner.health.restarts.fetch_add(1, Ordering::Relaxed);
        let pause = storage_backoff(failures);
        tracing::error!(
            reason = %why,
            restart_in_ms = pause.as_millis() as u64,
            "queue: uploader loop stopped unexpectedly; restarting"
        );
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Deliveries of the dead loop were dropped with it: their rows go back to pending.
        // (A direct delivery in flight may be sent twice; the gateway's upsert makes it one.)
        if let Err(e) = blocking(&inner.queue, |q| q.recover()).await {
            tracing::warn!(code = e.code(), "queue: recovery after a restart failed");
        }
    }
}

/// A record whose answer could not be written: logged and counted, and its row is handed back
/// later (it may be left `sending`), so one record never stops the others.
fn record_error(inner: &Inner, id: Option<RecordId>, e: &QueueError, stranded: &mut Vec<RecordId>) {
    inner.health.record_errors.fetch_add(1, Ordering::Relaxed);
    match e {
        // Gone (purged, acknowledged by another lane): nothing left to do for it.
        QueueError::NotFound(_) => {
            tracing::warn!(
                code = e.code(),
                "queue: a record vanished while being sent; going on"
            );
        }
        _ => {
            tracing::error!(code = e.code(), error = %e, "queue: could not record a delivery's answer; going on");
            inner.health.storage_failed(e);
            if let Some(id) = id {
                stranded.push(id);
            }
        }
    }
}

/// The one loop behind `flush_once` (`once`) and the background task. Errors of one record
/// never end it; storage failures are retried with backoff (the background loop) or end a
/// flush with the error.
async fn drain(
    inner: Arc<Inner>,
    once: bool,
    mut stop: watch::Receiver<bool>,
) -> Result<FlushReport, QueueError> {
    let mut report = FlushReport::default();
    match purge_expired(&inner).await {
        Ok(n) => report.expired = n,
        Err(e) if once => return Err(e),
        Err(e) => {
            tracing::warn!(code = e.code(), "queue: purge of expired records failed");
            inner.health.storage_failed(&e);
        }
    }
    let mut paused = inner.paused.subscribe();
    let mut tasks: JoinSet<Result<Outcome, QueueError>> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, (RecordId, u32)> = HashMap::new();
    let mut stop_gone = false;
    // Rows whose answer could not be written, to hand back once storage answers again.
    let mut stranded: Vec<RecordId> = Vec::new();
    let mut storage_failures = 0u32;
    // A flush tries what was due when it started, each record at most once.
    let flush_start = inner.queue.now_ms();
    let corrupt_before = inner.queue.corrupt_marked();
    loop {
        let stopping = stop_gone || *stop.borrow_and_update();
        let is_paused = *paused.borrow_and_update();
        let mut storage_wait = None;
        if !stranded.is_empty() {
            let ids = std::mem::take(&mut stranded);
            let back = blocking(&inner.queue, move |q| {
                let mut left = Vec::new();
                for id in ids {
                    match q.release(id, "storage error while recording the answer") {
                        Ok(()) | Err(QueueError::NotFound(_)) => {}
                        Err(_) => left.push(id),
                    }
                }
                Ok(left)
            })
            .await;
            match back {
                Ok(left) => stranded = left,
                Err(e) => inner.health.storage_failed(&e),
            }
        }
        let free = inner.permits.available_permits();
        if !stopping && !is_paused && free > 0 {
            let due_by = if once { flush_start } else { i64::MAX };
            match blocking(&inner.queue, move |q| q.claim_due_by(free, due_by)).await {
                Ok(claimed) => {
                    if stranded.is_empty() {
                        storage_failures = 0;
                        inner.health.storage_ok();
                    }
                    for c in claimed {
                        let key = (c.id, c.attempts);
                        // The direct lane may have taken a slot meanwhile: then the task waits.
                        let permit = inner.permits.clone().try_acquire_owned().ok();
                        let handle = tasks.spawn(deliver_one(inner.clone(), c, permit));
                        in_flight.insert(handle.id(), key);
                    }
                }
                Err(e) if once && tasks.is_empty() => return Err(e),
                Err(e) => {
                    storage_failures = storage_failures.saturating_add(1);
                    let wait = storage_backoff(storage_failures);
                    tracing::error!(
                        code = e.code(),
                        error = %e,
                        retry_in_ms = wait.as_millis() as u64,
                        "queue: cannot read the queue; retrying"
                    );
                    inner.health.storage_failed(&e);
                    storage_wait = Some(wait);
                }
            }
        }
        if tasks.is_empty() && (once || stopping) {
            break;
        }
        let idle_wait = match storage_wait {
            Some(w) => w,
            None if tasks.is_empty() => idle_wait(&inner, is_paused)
                .await
                .unwrap_or(inner.cfg.idle_poll),
            None => inner.cfg.idle_poll,
        };
        tokio::select! {
            biased;
            done = tasks.join_next_with_id(), if !tasks.is_empty() => match done {
                Some(Ok((task, outcome))) => {
                    let id = in_flight.remove(&task).map(|(id, _)| id);
                    match outcome {
                        Ok(Outcome::Sent) => report.sent += 1,
                        Ok(Outcome::Failed) => report.failed += 1,
                        Ok(Outcome::Retried) => report.retried += 1,
                        Ok(Outcome::Paused) => {}
                        Err(e) => record_error(&inner, id, &e, &mut stranded),
                    }
                }
                Some(Err(e)) => {
                    // The deliverer panicked: keep the record for a later try (with backoff,
                    // so a deliverer that always panics cannot spin the loop).
                    if let Some((id, attempts)) = in_flight.remove(&e.id()) {
                        tracing::error!(record = id.0, "queue: deliverer panicked; record kept");
                        let delay = inner.cfg.backoff.delay_random(attempts);
                        let kept = blocking(&inner.queue, move |q| {
                            q.retry_later(id, "deliverer panicked", retry_at(q, delay))
                        })
                        .await;
                        match kept {
                            Ok(()) => report.retried += 1,
                            Err(e) => record_error(&inner, Some(id), &e, &mut stranded),
                        }
                    }
                }
                None => {}
            },
            changed = stop.changed(), if !stopping => {
                if changed.is_err() {
                    stop_gone = true;
                }
            }
            _ = paused.changed() => {}
            _ = inner.nudge.notified(), if !once => {}
            _ = tokio::time::sleep(idle_wait), if tasks.is_empty() => {
                match purge_expired(&inner).await {
                    Ok(n) => report.expired += n,
                    Err(e) => inner.health.storage_failed(&e),
                }
            }
        }
    }
    let stats = blocking(&inner.queue, |q| q.stats()).await?;
    report.remaining = stats.pending + stats.sending;
    // Corrupt rows found by this run's claims are failures too.
    report.failed += inner.queue.corrupt_marked().saturating_sub(corrupt_before);
    report.auth_failed = *inner.paused.borrow();
    Ok(report)
}

/// How long the idle background loop sleeps: until the next record is due, within bounds.
async fn idle_wait(inner: &Arc<Inner>, paused: bool) -> Result<Duration, QueueError> {
    if paused {
        return Ok(inner.cfg.idle_poll);
    }
    let (due, now) = blocking(&inner.queue, |q| Ok((q.next_due_ms()?, q.now_ms()))).await?;
    // A floor keeps a record that is due but blocked behind its customer's older one from
    // turning the loop into a spin.
    let floor = Duration::from_millis(50).min(inner.cfg.idle_poll);
    Ok(match due {
        Some(at) => Duration::from_millis(u64::try_from(at.saturating_sub(now)).unwrap_or(0))
            .clamp(floor, inner.cfg.idle_poll.max(floor)),
        None => inner.cfg.idle_poll,
    })
}

/// Retry time for a record: strictly after now, so a running flush never picks it again.
fn retry_at(q: &Queue, delay: Duration) -> i64 {
    let ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX).max(1);
    q.now_ms().saturating_add(ms)
}

async fn deliver_one(
    inner: Arc<Inner>,
    claimed: Claimed,
    permit: Option<OwnedSemaphorePermit>,
) -> Result<Outcome, QueueError> {
    let _permit = match permit {
        Some(p) => Some(p),
        // Never closed, so this only waits.
        None => inner.permits.clone().acquire_owned().await.ok(),
    };
    let Claimed {
        id,
        customer_id,
        attempts,
        payload,
        ..
    } = claimed;
    let result = inner.deliver.deliver(&payload).await;
    drop(payload);
    settle(&inner, id, customer_id, attempts, result).await
}

/// Raises the pause on an authentication failure (once).
fn pause(inner: &Inner, reason: String) {
    if inner
        .paused
        .send_if_modified(|p| !std::mem::replace(p, true))
    {
        // The reason is masked text of ours (a refused key, a URL that is not the gateway).
        tracing::error!(reason = %reason, "queue: uploads paused until the gateway configuration is fixed; records kept");
        let _ = inner.events.send(UploadEvent::AuthFailed { reason });
    }
}

/// A direct delivery whose record is not in the queue: report what the gateway said.
fn not_stored(inner: &Inner, customer_id: String, result: DeliverResult, error: QueueError) {
    let answer = match result {
        DeliverResult::Final(FinalAnswer::Saved(s)) => Some(FinalAnswer::Saved(s)),
        DeliverResult::Final(FinalAnswer::Declined(r)) => {
            Some(FinalAnswer::Declined(mask_text(&r)))
        }
        DeliverResult::Final(FinalAnswer::Rejected(r)) => {
            Some(FinalAnswer::Rejected(mask_text(&r)))
        }
        DeliverResult::Transient(_) => None,
        DeliverResult::AuthFailed(reason) => {
            pause(inner, mask_text(&reason));
            None
        }
    };
    let _ = inner.events.send(UploadEvent::NotStored {
        customer_id,
        answer,
        error,
    });
}

/// Applies the gateway's answer to the record's row and raises the matching event.
async fn settle(
    inner: &Arc<Inner>,
    id: RecordId,
    customer_id: String,
    attempts: u32,
    result: DeliverResult,
) -> Result<Outcome, QueueError> {
    let q = &inner.queue;
    match result {
        DeliverResult::Final(FinalAnswer::Saved(saved)) => {
            blocking(q, move |q| q.ack(id)).await?;
            tracing::debug!(record = id.0, "queue: saved and deleted");
            let _ = inner.events.send(UploadEvent::Saved {
                id,
                customer_id,
                token: saved.token,
            });
            Ok(Outcome::Sent)
        }
        DeliverResult::Final(FinalAnswer::Declined(reason)) => {
            let reason = mask_text(&reason);
            let stored = format!("declined: {reason}");
            blocking(q, move |q| q.fail(id, &stored)).await?;
            let _ = inner.events.send(UploadEvent::Declined {
                id,
                customer_id,
                reason,
            });
            Ok(Outcome::Failed)
        }
        DeliverResult::Final(FinalAnswer::Rejected(reason)) => {
            let reason = mask_text(&reason);
            let stored = format!("rejected: {reason}");
            blocking(q, move |q| q.fail(id, &stored)).await?;
            let _ = inner.events.send(UploadEvent::Rejected {
                id,
                customer_id,
                reason,
            });
            Ok(Outcome::Failed)
        }
        DeliverResult::Transient(reason) => {
            let reason = mask_text(&reason);
            let delay = inner.cfg.backoff.delay_random(attempts);
            let at_ms = retry_at(q, delay);
            let stored = reason.clone();
            blocking(q, move |q| q.retry_later(id, &stored, at_ms)).await?;
            tracing::info!(
                record = id.0,
                attempts,
                delay_ms = delay.as_millis() as u64,
                "queue: transient failure, will retry"
            );
            let _ = inner.events.send(UploadEvent::Retrying {
                id,
                customer_id,
                attempts,
                at_ms,
                reason,
            });
            Ok(Outcome::Retried)
        }
        DeliverResult::AuthFailed(reason) => {
            let reason = mask_text(&reason);
            let stored = format!("auth failed: {reason}");
            blocking(q, move |q| q.release(id, &stored)).await?;
            pause(inner, reason);
            Ok(Outcome::Paused)
        }
    }
}

#[cfg(test)]
#[path = "uploader_tests.rs"]
mod tests;
