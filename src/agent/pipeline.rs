//! The agent pipeline: frame → decode → record → durable queue → uploader → gateway, on tokio.
//!
//! ```text
//! submit(Swipe) ──decode+build──▶ intake (bounded: backpressure) ──batch──▶ Queue::enqueue_many
//!      │                                                                        │ durable = taken
//!      └─ PIN record: sent online once, never queued                            ▼
//!                                                       Uploader ──▶ Deliver (gateway) ──▶ tickets
//! ```
//!
//! Usage (what `cardlane run`, `replay` and `demo` do):
//! ```ignore
//! let p = Pipeline::start(cfg, queue, deliver, events, captures, metrics)?;
//! let mut ticket = p.submit(Swipe::new(frame_bytes, "reader-1", Some(profile))).await;
//! ticket.taken().await;                     // durable (or failed/unreadable)
//! let outcome = ticket.settle(wait).await;  // final, or `queued` after `wait`
//! p.shutdown().await;                       // finish in-flight, keep the rest queued
//! ```
//!
//! A swipe counts as taken only once its record is durable (`SwipeOutcome::Queued`). Records are
//! batched: whatever is waiting in the intake goes in one transaction with one fsync. When the
//! uploader has a free slot, a fresh record's request starts at once, while that commit is in
//! flight (the direct lane): the fsync costs milliseconds on a busy disk and the request need not
//! wait for it, because the row is written `sending` and the answer is applied to it only after
//! the commit (a crash in between re-sends it; the gateway's upsert keeps one customer). A record
//! with a PIN block is never enqueued: it is sent once, online, and fails at once if the gateway
//! does not answer. Each swipe runs in a `swipe` span carrying its swipe id; nothing logged or
//! published holds card data (masked PAN and last 4 only).
mod deliver;
mod ticket;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;
use zeroize::Zeroizing;

pub use deliver::{deliver_result, GatewayDeliver};
pub use ticket::{SwipeOutcome, SwipeTicket};

use super::api::GatewayState;
use super::captures::{ArmedCapture, CaptureOutcome, CaptureState, Captures};
use super::events::{EventHub, LaneEvent, MaskedAccountText, MaskedPanText};
use super::lane::GatewayHealth;
use super::metrics::Metrics;
use crate::card::CardRead;
use crate::device::profile::Profile;
use crate::gateway::check_record::build_check_record;
use crate::gateway::swipe::{
    build_record, LaneSettings, RecordPin, SwipeError, SwipeInput, SwipeRecord,
};
use crate::gateway::{CustomerFields, SecretString};
use crate::parse;
use crate::queue::{
    Deliver, DeliverFuture, DeliverResult, FinalAnswer, NewRecord, Queue, QueueError, RecordId,
    UploadEvent, Uploader, UploaderConfig, UploaderTask,
};

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub lane: LaneSettings,
    /// A swipe with no capture armed: saved (`on_swipe = "save"`) or only reported (`ignore`).
    pub save_unarmed: bool,
    /// Records waiting for the queue before `submit` waits (backpressure).
    pub intake_capacity: usize,
    /// Records per enqueue transaction at most.
    pub batch_max: usize,
    /// Start a fresh record's request while its enqueue commits, when the uploader has a free
    /// slot (see the module notes); off: every record waits for its commit and the uploader.
    pub send_before_commit: bool,
    pub uploader: UploaderConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            lane: LaneSettings::default(),
            save_unarmed: true,
            intake_capacity: 256,
            batch_max: 128,
            send_before_commit: true,
            uploader: UploaderConfig::default(),
        }
    }
}

/// One complete frame from a reader.
pub struct Swipe {
    pub frame: Zeroizing<Vec<u8>>,
    /// The reader's id or selector (what events and captures name).
    pub reader_id: String,
    pub profile: Option<Arc<Profile>>,
    /// A keypad reader's or PIN pad's block, with its PIN key's KSN.
    pub pin_block: Option<RecordPin>,
    /// The capture this read serves, already taken by the reader's task (a keypad reader
    /// takes its capture after the PIN entry); `None`: the pipeline looks one up.
    pub capture: Option<ArmedCapture>,
}

impl Swipe {
    pub fn new(
        frame: impl Into<Vec<u8>>,
        reader_id: impl Into<String>,
        profile: Option<Arc<Profile>>,
    ) -> Swipe {
        Swipe {
            frame: Zeroizing::new(frame.into()),
            reader_id: reader_id.into(),
            profile,
            pin_block: None,
            capture: None,
        }
    }
}

impl std::fmt::Debug for Swipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swipe")
            .field("frame_len", &self.frame.len())
            .field("reader_id", &self.reader_id)
            .field("profile", &self.profile.as_ref().map(|p| p.id.as_str()))
            .field("pin_block", &self.pin_block.as_ref().map(|_| "***"))
            .field("capture", &self.capture.as_ref().map(|c| c.id.as_str()))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Follows one record from submit to the gateway's final answer.
struct Tracker {
    swipe_id: u64,
    tx: watch::Sender<SwipeOutcome>,
    reader: String,
    capture_id: Option<String>,
    customer_id: String,
    masked_pan: Option<MaskedPanText>,
    masked_account: Option<MaskedAccountText>,
    last4: Option<String>,
}

/// What a read's events and outcome show of it: masked PAN (cards) or account (checks).
struct Masked {
    pan: Option<MaskedPanText>,
    account: Option<MaskedAccountText>,
    last4: Option<String>,
}

/// A record on its way to the queue.
struct Prepared {
    swipe_id: u64,
    customer_id: String,
    record: NewRecord,
    /// The direct lane sending this record waits here for the commit's result.
    stored: Option<oneshot::Sender<Result<RecordId, QueueError>>>,
}

struct Shared {
    cfg: PipelineConfig,
    queue: Arc<Queue>,
    deliver: Arc<dyn Deliver>,
    events: EventHub,
    captures: Arc<Captures>,
    metrics: Arc<Metrics>,
    uploader: Uploader,
    /// Records not yet answered, by customer id, oldest first (the uploader sends a customer's
    /// records in order).
    pending: Mutex<HashMap<String, VecDeque<Tracker>>>,
    next_swipe: AtomicU64,
    closed: AtomicBool,
    online: Mutex<Vec<JoinHandle<()>>>,
    /// What the agent last saw of the gateway (`run`): a PIN record is not even tried while
    /// it is known to be unreachable.
    gateway: std::sync::OnceLock<Arc<GatewayHealth>>,
}

struct Tasks {
    batcher: JoinHandle<()>,
    uploader: UploaderTask,
    listener: JoinHandle<()>,
    listener_stop: watch::Sender<bool>,
}

/// The running pipeline. `submit` from any task; `shutdown` once.
pub struct Pipeline {
    shared: Arc<Shared>,
    intake: Mutex<Option<mpsc::Sender<Prepared>>>,
    tasks: Mutex<Option<Tasks>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("queue", &self.shared.queue.path())
            .finish_non_exhaustive()
    }
}

/// Times each delivery for `cardlane_gateway_latency_seconds`.
struct Timed {
    inner: Arc<dyn Deliver>,
    metrics: Arc<Metrics>,
}

impl Deliver for Timed {
    fn deliver<'a>(&'a self, payload: &'a [u8]) -> DeliverFuture<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let r = self.inner.deliver(payload).await;
            self.metrics.observe_gateway_latency(started.elapsed());
            r
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pipeline {
    /// Starts the batcher, the uploader (which first recovers rows a crash left `sending`) and
    /// the task that turns upload answers into ticket outcomes. Must run inside tokio.
    pub fn start(
        cfg: PipelineConfig,
        queue: Arc<Queue>,
        deliver: Arc<dyn Deliver>,
        events: EventHub,
        captures: Arc<Captures>,
        metrics: Arc<Metrics>,
    ) -> Result<Pipeline, PipelineError> {
        let deliver: Arc<dyn Deliver> = Arc::new(Timed {
            inner: deliver,
            metrics: metrics.clone(),
        });
        let uploader = Uploader::new(queue.clone(), deliver.clone(), cfg.uploader.clone())?;
        let upload_events = uploader.subscribe();
        let (tx, rx) = mpsc::channel(cfg.intake_capacity.max(1));
        let shared = Arc::new(Shared {
            cfg,
            queue,
            deliver,
            events,
            captures,
            metrics,
            uploader,
            pending: Mutex::new(HashMap::new()),
            next_swipe: AtomicU64::new(1),
            closed: AtomicBool::new(false),
            online: Mutex::new(Vec::new()),
            gateway: std::sync::OnceLock::new(),
        });
        let (listener_stop, stop_rx) = watch::channel(false);
        let listener = tokio::spawn(listen(shared.clone(), upload_events, stop_rx));
        let uploader_task = shared.uploader.start();
        let batcher = tokio::spawn(batch_loop(shared.clone(), rx));
        Ok(Pipeline {
            shared,
            intake: Mutex::new(Some(tx)),
            tasks: Mutex::new(Some(Tasks {
                batcher,
                uploader: uploader_task,
                listener,
                listener_stop,
            })),
        })
    }

    /// A bad read found before decoding (the framer saw a damaged frame): logged, counted and
    /// published like one the decoder refuses.
    pub fn report_unreadable(&self, reader: &str, code: &str) {
        self.shared.metrics.decode_error(code);
        self.shared.unreadable(reader, code);
    }

    /// Gateway health as the agent sees it (deliveries and its probe): a record with a PIN
    /// block fails at once, untried, while the gateway is known to be unreachable. Set once.
    pub fn watch_gateway(&self, health: Arc<GatewayHealth>) {
        let _ = self.shared.gateway.set(health);
    }

    /// The uploader (pause state, `resume` after an authentication failure, events).
    pub fn uploader(&self) -> &Uploader {
        &self.shared.uploader
    }

    pub fn queue(&self) -> &Arc<Queue> {
        &self.shared.queue
    }

    /// Decodes and builds the record at once, then hands it to the queue. Waits (backpressure)
    /// while the intake is full. The ticket tells when the swipe is taken and how it ended.
    pub async fn submit(&self, swipe: Swipe) -> SwipeTicket {
        let swipe_id = self.shared.next_swipe.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("swipe", swipe_id, reader = %swipe.reader_id);
        let tx = lock(&self.intake).clone();
        self.submit_inner(swipe_id, swipe, tx)
            .instrument(span)
            .await
    }

    /// The steps of one swipe: decode, take its capture, announce it, build its record, then
    /// send it online (PIN records) or hand it to the queue.
    async fn submit_inner(
        &self,
        swipe_id: u64,
        mut swipe: Swipe,
        intake: Option<mpsc::Sender<Prepared>>,
    ) -> SwipeTicket {
        let sh = &self.shared;
        let (state_tx, rx) = watch::channel(SwipeOutcome::Pending);
        let mut ticket = SwipeTicket::new(swipe_id, rx);
        let Some(intake) = intake.filter(|_| !sh.closed.load(Ordering::Acquire)) else {
            let _ = state_tx.send(shutting_down());
            return ticket;
        };
        let Some(read) = sh.decode(&swipe, &state_tx) else {
            return ticket;
        };
        let capture = sh.take_capture(&mut swipe, &read);
        let Masked {
            pan: masked_pan,
            account: masked_account,
            last4,
        } = sh.announce(&swipe.reader_id, &read, capture.as_ref(), &mut ticket);
        // A check needs a kiosk capture (a name): `on_swipe = "save"` does nothing with one.
        if capture.is_none() && (!sh.cfg.save_unarmed || read.check.is_some()) {
            let _ = state_tx.send(SwipeOutcome::Ignored);
            return ticket;
        }
        let mut tracker = Tracker {
            swipe_id,
            tx: state_tx,
            reader: swipe.reader_id.clone(),
            capture_id: capture.as_ref().map(|c| c.id.clone()),
            customer_id: String::new(),
            masked_pan,
            masked_account,
            last4,
        };
        let record = match sh.build(&mut swipe, &read, capture.as_ref()) {
            Ok(r) => r,
            Err(outcome) => {
                sh.finish(tracker, outcome);
                return ticket;
            }
        };
        tracker.customer_id = record.customer_id.clone();
        ticket.customer_id = Some(record.customer_id.clone());
        ticket.entry_mode = record
            .request
            .card
            .as_ref()
            .and_then(|c| c.entry_mode.clone());
        if record.has_pin_block {
            self.send_online(tracker, record.payload(), &read);
            return ticket;
        }
        sh.enqueue(tracker, &record, intake).await;
        ticket
    }

    /// A PIN record: one online attempt, never written to disk (design.md §2). When the
    /// gateway cannot take it now (uploads paused, the gateway known to be unreachable, or the
    /// attempt fails in transport) it fails at once with `pin-needs-online`: no retry, no queue.
    fn send_online(&self, tracker: Tracker, payload: Zeroizing<Vec<u8>>, _read: &CardRead) {
        let sh = self.shared.clone();
        let span = tracing::Span::current();
        let handle = tokio::spawn(
            async move {
                let unreachable = sh
                    .gateway
                    .get()
                    .is_some_and(|h| h.state() == GatewayState::Unreachable);
                let why = if sh.uploader.is_paused() {
                    Some("uploads are paused (the gateway refused the key or is misconfigured)")
                } else if unreachable {
                    Some("the gateway is unreachable")
                } else {
                    None
                };
                let outcome = match why {
                    Some(why) => pin_needs_online(why),
                    None => match sh.deliver.deliver(&payload).await {
                        DeliverResult::Final(answer) => final_outcome(answer),
                        DeliverResult::Transient(_) => {
                            pin_needs_online("the gateway did not answer")
                        }
                        DeliverResult::AuthFailed(_) => {
                            pin_needs_online("the gateway refused the key or is misconfigured")
                        }
                    },
                };
                drop(payload);
                if let SwipeOutcome::Failed { code, .. } = &outcome {
                    tracing::warn!(
                        swipe_id = tracker.swipe_id,
                        capture = tracker.capture_id.as_deref(),
                        code = code.as_str(),
                        "a record with a PIN block goes online only; not saved, nothing kept"
                    );
                }
                sh.finish(tracker, outcome);
            }
            .instrument(span),
        );
        let mut online = lock(&self.shared.online);
        online.retain(|h| !h.is_finished());
        online.push(handle);
    }

    /// Stops taking swipes, makes what was already submitted durable, lets the deliveries in
    /// flight finish and keeps the rest queued for the next run. Idempotent.
    pub async fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        drop(lock(&self.intake).take());
        let Some(tasks) = lock(&self.tasks).take() else {
            return;
        };
        let _ = tasks.batcher.await;
        let online: Vec<_> = std::mem::take(&mut *lock(&self.shared.online));
        for h in online {
            let _ = h.await;
        }
        if let Err(e) = tasks.uploader.stop().await {
            tracing::warn!(error = %e, "uploader stopped with an error");
        }
        let _ = tasks.listener_stop.send(true);
        let _ = tasks.listener.await;
        self.shared.update_queue_metrics().await;
        tracing::info!("pipeline stopped; unsent records stay queued");
    }
}

/// The agent is stopping: the swipe is not taken.
fn shutting_down() -> SwipeOutcome {
    SwipeOutcome::Failed {
        code: "shutting-down".into(),
        error: "the agent is shutting down; swipe again".into(),
    }
}

/// A PIN record the gateway cannot take now: failed, never queued.
fn pin_needs_online(why: &str) -> SwipeOutcome {
    SwipeOutcome::Failed {
        code: "pin-needs-online".into(),
        error: format!(
            "{why}: a record with a PIN block is sent online only and never queued; \
             take the card and PIN again when the gateway is reachable"
        ),
    }
}

/// A record the queue refused: the swipe is not taken.
fn not_durable(e: &QueueError) -> SwipeOutcome {
    let code = match e {
        QueueError::Full { .. } => "queue-full",
        _ => "queue-error",
    };
    SwipeOutcome::Failed {
        code: code.into(),
        error: e.to_string(),
    }
}

fn final_outcome(answer: FinalAnswer) -> SwipeOutcome {
    match answer {
        FinalAnswer::Saved(s) => SwipeOutcome::Saved { token: s.token },
        FinalAnswer::Declined(reason) => SwipeOutcome::Declined { reason },
        FinalAnswer::Rejected(reason) => SwipeOutcome::Rejected { reason },
    }
}

impl Shared {
    /// Decodes and validates the frame; an unreadable one is reported (log, metrics, events,
    /// ticket) and gives `None`.
    fn decode(&self, swipe: &Swipe, state_tx: &watch::Sender<SwipeOutcome>) -> Option<CardRead> {
        let micr_set = swipe.profile.as_deref().and_then(Profile::micr_decoding);
        match parse::decode_frame_as(&swipe.frame, micr_set) {
            Ok(mut r) => {
                parse::validate(&mut r);
                Some(r)
            }
            Err(e) => {
                self.metrics.decode_error(e.code());
                self.metrics.record("unreadable");
                self.unreadable(&swipe.reader_id, e.code());
                self.events.publish(LaneEvent::Swipe {
                    reader: swipe.reader_id.clone(),
                    format: None,
                    entry_mode: None,
                    masked_pan: None,
                    masked_account: None,
                    last4: None,
                    capture_id: None,
                    error_code: Some(e.code().into()),
                });
                let _ = state_tx.send(SwipeOutcome::Unreadable {
                    code: e.code().into(),
                    error: e.to_string(),
                });
                None
            }
        }
    }

    /// The capture this read serves: the one its reader already took, else the oldest armed
    /// one. A check read serves only check captures, a card read only card captures.
    fn take_capture(&self, swipe: &mut Swipe, read: &CardRead) -> Option<ArmedCapture> {
        match swipe.capture.take() {
            Some(taken) => Some(taken),
            None if read.check.is_some() => self.captures.take_for_check(&swipe.reader_id),
            None => self.captures.take_for_swipe(&swipe.reader_id),
        }
    }

    /// Fills the ticket, counts the swipe, publishes the `swipe` event and logs it (masked).
    /// Returns the masked PAN or account and the last 4 the outcome will carry.
    fn announce(
        &self,
        reader: &str,
        read: &CardRead,
        capture: Option<&ArmedCapture>,
        ticket: &mut SwipeTicket,
    ) -> Masked {
        let masked_pan = read
            .masked_pan
            .as_ref()
            .and_then(|m| MaskedPanText::new(m.as_str()));
        ticket.masked_pan = masked_pan.clone();
        ticket.brand = read.brand.map(|b| b.code().to_string());
        ticket.format = Some(read.format.as_str().to_string());
        let masked_account = read
            .check
            .as_ref()
            .and_then(|c| MaskedAccountText::from_account(&c.account));
        ticket.masked_account = masked_account.as_ref().map(|m| m.as_str().to_string());
        self.metrics.swipe(reader, read.format.as_str());
        // The account's last 4 stand in for a card's in events and tickets.
        let last4 = read.last4.as_deref().map(String::from).or_else(|| {
            read.check
                .as_ref()
                .and_then(|c| c.account.last4())
                .map(String::from)
        });
        let entry_mode = read.entry_mode.map(|m| self.cfg.lane.entry_modes.code(m));
        self.events.publish(LaneEvent::Swipe {
            reader: reader.to_string(),
            format: Some(read.format.as_str().into()),
            entry_mode,
            masked_pan: masked_pan.clone(),
            masked_account: masked_account.clone(),
            last4: last4.clone(),
            capture_id: capture.map(|c| c.id.clone()),
            error_code: None,
        });
        tracing::info!(
            format = read.format.as_str(),
            masked_pan = masked_pan.as_ref().map(|m| m.as_str()),
            capture = capture.map(|c| c.id.as_str()),
            "swipe decoded"
        );
        Masked {
            pan: masked_pan,
            account: masked_account,
            last4,
        }
    }

    /// The record for this read and its capture's fields (a check record for a check capture),
    /// with the PIN block the reader or the kiosk's PIN pad gave; `Err` is the swipe's outcome.
    fn build(
        &self,
        swipe: &mut Swipe,
        read: &CardRead,
        capture: Option<&ArmedCapture>,
    ) -> Result<SwipeRecord, SwipeOutcome> {
        let customer: Option<CustomerFields> = match capture {
            None => None,
            Some(c) => Some(
                serde_json::from_value(serde_json::Value::Object(c.customer.clone())).map_err(
                    |_| SwipeOutcome::Rejected {
                        reason: "the capture's customer fields are not Customer API fields".into(),
                    },
                )?,
            ),
        };
        let check_options = capture.and_then(|c| c.check.as_ref());
        // The kiosk's PIN pad block goes with its capture's card read.
        let pin = swipe.pin_block.take().or_else(|| {
            let given = capture?.pin_block.as_ref()?;
            Some(RecordPin {
                block: SecretString::new(given.block.to_hex().as_str()),
                ksn: Some(given.ksn.to_hex()),
            })
        });
        let built = match (read.check.as_deref(), check_options) {
            (Some(check), Some(options)) => build_check_record(
                check,
                customer.as_ref(),
                &self.cfg.lane,
                &self.cfg.lane.check,
                options,
            ),
            _ => build_record(SwipeInput {
                read,
                frame: &swipe.frame,
                profile: swipe.profile.as_deref(),
                lane: &self.cfg.lane,
                customer: customer.as_ref(),
                pin_block: pin.as_ref(),
            }),
        };
        built.map_err(|e| {
            tracing::warn!(code = e.code(), "swipe gives no record");
            match e {
                SwipeError::Invalid(reason) => SwipeOutcome::Rejected { reason },
                other => SwipeOutcome::Failed {
                    code: other.code().into(),
                    error: other.to_string(),
                },
            }
        })
    }

    /// Hands the record to the batcher (durable = taken) and, when the uploader has a free
    /// slot, starts its request while the commit is in flight (the direct lane).
    async fn enqueue(
        &self,
        tracker: Tracker,
        record: &SwipeRecord,
        intake: mpsc::Sender<Prepared>,
    ) {
        let swipe_id = tracker.swipe_id;
        let payload = record.payload();
        let slot = if self.cfg.send_before_commit && record.fresh_customer_id {
            self.uploader.direct_slot()
        } else {
            None
        };
        let (stored, direct) = match slot {
            Some(slot) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some((slot, rx, payload.clone())))
            }
            None => (None, None),
        };
        let prepared = Prepared {
            swipe_id,
            customer_id: record.customer_id.clone(),
            record: NewRecord {
                customer_id: record.customer_id.clone(),
                masked_pan: record.masked_pan.clone(),
                payload,
                has_pin_block: false,
                in_flight: direct.is_some(),
            },
            stored,
        };
        // Registered before the enqueue: the uploader may answer before the batcher returns.
        lock(&self.pending)
            .entry(record.customer_id.clone())
            .or_default()
            .push_back(tracker);
        if intake.send(prepared).await.is_err() {
            if let Some(t) = self.take_tracker(&record.customer_id, Some(swipe_id)) {
                self.finish(t, shutting_down());
            }
            return;
        }
        if let Some((slot, stored, payload)) = direct {
            self.uploader
                .send_direct(slot, record.customer_id.clone(), payload, stored);
        }
    }

    /// Every unreadable read, on every transport: a log line with its reason code, the
    /// `cardlane_reads_unreadable_total{reader,code}` counter and the `swipe-unreadable` event.
    fn unreadable(&self, reader: &str, code: &str) {
        tracing::warn!(reader = %reader, code, "unreadable read; swipe again");
        self.metrics.read_unreadable(reader, code);
        self.events.publish(LaneEvent::SwipeUnreadable {
            reader: reader.to_string(),
            code: code.to_string(),
        });
    }

    /// Removes the tracker of `customer_id`: the given swipe, or the oldest.
    fn take_tracker(&self, customer_id: &str, swipe_id: Option<u64>) -> Option<Tracker> {
        let mut pending = lock(&self.pending);
        let list = pending.get_mut(customer_id)?;
        let pos = match swipe_id {
            Some(id) => list.iter().position(|t| t.swipe_id == id)?,
            None => 0,
        };
        let t = list.remove(pos);
        if list.is_empty() {
            pending.remove(customer_id);
        }
        t
    }

    /// Publishes an outcome: ticket, capture, event, metrics.
    fn finish(&self, t: Tracker, outcome: SwipeOutcome) {
        self.report(&t, &outcome);
        let _ = t.tx.send(outcome);
    }

    fn report(&self, t: &Tracker, outcome: &SwipeOutcome) {
        let customer_id = (!t.customer_id.is_empty()).then(|| t.customer_id.clone());
        self.metrics.record(outcome.as_str());
        let event = match outcome {
            SwipeOutcome::Saved { token } => LaneEvent::Saved {
                reader: Some(t.reader.clone()),
                capture_id: t.capture_id.clone(),
                customer_id: t.customer_id.clone(),
                token: token.clone(),
                masked_pan: t.masked_pan.clone(),
                masked_account: t.masked_account.clone(),
                last4: t.last4.clone(),
            },
            SwipeOutcome::Queued => LaneEvent::Queued {
                reader: Some(t.reader.clone()),
                capture_id: t.capture_id.clone(),
                customer_id: t.customer_id.clone(),
                masked_pan: t.masked_pan.clone(),
                masked_account: t.masked_account.clone(),
                last4: t.last4.clone(),
            },
            other => LaneEvent::Failed {
                reader: Some(t.reader.clone()),
                capture_id: t.capture_id.clone(),
                customer_id: customer_id.clone(),
                code: other.code().into(),
                error: other.error().unwrap_or_default(),
                masked_pan: t.masked_pan.clone(),
                masked_account: t.masked_account.clone(),
                last4: t.last4.clone(),
            },
        };
        tracing::info!(
            swipe_id = t.swipe_id,
            outcome = outcome.as_str(),
            "swipe outcome"
        );
        self.events.publish(event);
        if let Some(id) = &t.capture_id {
            let state = match outcome {
                SwipeOutcome::Saved { .. } => CaptureState::Saved,
                SwipeOutcome::Queued => CaptureState::Queued,
                SwipeOutcome::Declined { .. } => CaptureState::Declined,
                SwipeOutcome::Rejected { .. } => CaptureState::Rejected,
                _ => CaptureState::Failed,
            };
            let _ = self.captures.complete(
                id,
                CaptureOutcome {
                    state,
                    customer_id,
                    token: outcome.token(),
                    masked_pan: t.masked_pan.clone(),
                    masked_account: t.masked_account.clone(),
                    error: outcome.error(),
                    error_code: match outcome {
                        SwipeOutcome::Failed { code, .. } => Some(code.clone()),
                        _ => None,
                    },
                },
            );
        }
    }

    /// The record is durable: the swipe is taken. Stays queued unless already answered.
    fn mark_queued(&self, customer_id: &str, swipe_id: u64) {
        let pending = lock(&self.pending);
        let Some(t) = pending
            .get(customer_id)
            .and_then(|l| l.iter().find(|t| t.swipe_id == swipe_id))
        else {
            return;
        };
        let changed = t.tx.send_if_modified(|s| {
            if *s == SwipeOutcome::Pending {
                *s = SwipeOutcome::Queued;
                true
            } else {
                false
            }
        });
        if changed {
            self.report(t, &SwipeOutcome::Queued);
        }
    }

    async fn update_queue_metrics(&self) {
        let q = self.queue.clone();
        if let Ok(Ok(stats)) = tokio::task::spawn_blocking(move || q.stats()).await {
            self.metrics
                .set_queue(stats.held, stats.oldest_age.unwrap_or(Duration::ZERO));
        }
    }

    fn on_upload(&self, ev: UploadEvent) {
        let (customer_id, outcome) = match ev {
            UploadEvent::Saved {
                customer_id, token, ..
            } => (customer_id, SwipeOutcome::Saved { token }),
            UploadEvent::Declined {
                customer_id,
                reason,
                ..
            } => (customer_id, SwipeOutcome::Declined { reason }),
            UploadEvent::Rejected {
                customer_id,
                reason,
                ..
            } => (customer_id, SwipeOutcome::Rejected { reason }),
            UploadEvent::NotStored {
                customer_id,
                answer,
                error,
            } => {
                let outcome = match answer {
                    Some(a) => final_outcome(a),
                    None => not_durable(&error),
                };
                (customer_id, outcome)
            }
            UploadEvent::AuthFailed { .. } => {
                tracing::error!("gateway refused the API key: uploads paused, swipes kept queued");
                return;
            }
            UploadEvent::Retrying { .. } | UploadEvent::Resumed | UploadEvent::Expired { .. } => {
                return
            }
        };
        match self.take_tracker(&customer_id, None) {
            Some(t) => self.finish(t, outcome),
            // Taken by an earlier run: a kiosk's capture of it is kept in the queue.
            None => {
                let state = match &outcome {
                    SwipeOutcome::Saved { .. } => CaptureState::Saved,
                    SwipeOutcome::Declined { .. } => CaptureState::Declined,
                    SwipeOutcome::Rejected { .. } => CaptureState::Rejected,
                    _ => CaptureState::Failed,
                };
                self.captures.settle_customer(
                    &customer_id,
                    &CaptureOutcome {
                        state,
                        customer_id: Some(customer_id.clone()),
                        token: outcome.token(),
                        masked_pan: None,
                        masked_account: None,
                        error: outcome.error(),
                        error_code: None,
                    },
                );
            }
        }
    }
}

/// Moves whatever waits in the intake into the queue, one transaction per batch.
async fn batch_loop(sh: Arc<Shared>, mut rx: mpsc::Receiver<Prepared>) {
    let max = sh.cfg.batch_max.max(1);
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < max {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut ids = Vec::with_capacity(batch.len());
        let records: Vec<NewRecord> = batch
            .into_iter()
            .map(|p| {
                ids.push((p.swipe_id, p.customer_id, p.stored));
                p.record
            })
            .collect();
        let q = sh.queue.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let r = q.enqueue_many(records);
            (r, q.stats().ok())
        })
        .await;
        let (results, stats) = match stored {
            Ok((Ok(results), stats)) => (results, stats),
            Ok((Err(e), _)) => (ids.iter().map(|_| Err(e.clone())).collect(), None),
            Err(_) => (
                ids.iter()
                    .map(|_| Err(QueueError::Storage("enqueue task failed".into())))
                    .collect(),
                None,
            ),
        };
        for ((swipe_id, customer_id, stored), result) in ids.into_iter().zip(results) {
            match result {
                Ok(id) => {
                    sh.mark_queued(&customer_id, swipe_id);
                    if let Some(tx) = stored {
                        let _ = tx.send(Ok(id));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "swipe could not be made durable");
                    // A direct delivery in flight decides: the gateway may have saved it anyway.
                    if let Some(Ok(())) = stored.map(|tx| tx.send(Err(e.clone()))) {
                        continue;
                    }
                    if let Some(t) = sh.take_tracker(&customer_id, Some(swipe_id)) {
                        sh.finish(t, not_durable(&e));
                    }
                }
            }
        }
        if let Some(s) = stats {
            sh.metrics
                .set_queue(s.held, s.oldest_age.unwrap_or(Duration::ZERO));
        }
        sh.uploader.nudge();
    }
}

/// Turns the uploader's answers into ticket outcomes until stopped.
async fn listen(
    sh: Arc<Shared>,
    mut rx: broadcast::Receiver<UploadEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_metrics = Instant::now();
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => sh.on_upload(ev),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "pipeline missed upload answers; tickets stay queued");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = stop.changed() => {
                // The uploader has stopped: take what it said last, then end.
                while let Ok(ev) = rx.try_recv() {
                    sh.on_upload(ev);
                }
                break;
            }
        }
        if last_metrics.elapsed() > Duration::from_millis(500) {
            last_metrics = Instant::now();
            sh.update_queue_metrics().await;
        }
    }
}

/// Resolves on SIGINT or SIGTERM (what `run` and `replay` wait on to shut down gracefully).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Default queue file: `$CARDLANE_QUEUE`, else `$XDG_STATE_HOME/cardlane/queue.db`, else
/// `~/.local/state/cardlane/queue.db`, else `cardlane-queue.db` here.
pub fn default_queue_path() -> std::path::PathBuf {
    use std::path::PathBuf;
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = env("CARDLANE_QUEUE") {
        return PathBuf::from(p);
    }
    if let Some(state) = env("XDG_STATE_HOME") {
        return PathBuf::from(state).join("cardlane").join("queue.db");
    }
    if let Some(home) = env("HOME") {
        return PathBuf::from(home)
            .join(".local")
            .join("state")
            .join("cardlane")
            .join("queue.db");
    }
    PathBuf::from(crate::queue::DEFAULT_PATH)
}

#[cfg(test)]
mod tests;
