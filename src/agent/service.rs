//! The agent in service (`cardlane run`): configuration → reader profiles → reader threads
//! (configured and hot-plugged) → pipeline → durable queue → uploader → gateway, plus the local
//! API, the gateway probe and graceful stop.
//!
//! [`Service::start`] brings everything up and returns once the API listens; the caller prints
//! the ready line. [`Service::shutdown`] stops in the order that loses nothing: readers first (no
//! new swipes), then the pipeline (swipes in flight become durable), then the uploader
//! (deliveries in flight finish, the rest stays queued), then the API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::agent::api::{self, ServerHandle, StartError};
use crate::agent::captures::Captures;
use crate::agent::config::OnSwipe;
use crate::agent::config::{ActivateMode, Config, ConfigError};
use crate::agent::driven::{spawn_driven, DrivenContext};
use crate::agent::events::EventHub;
use crate::agent::lane::{probe_target, run_probe, AgentLane, GatewayHealth, ObservedDeliver};
use crate::agent::metrics::Metrics;
use crate::agent::micr_ask::spawn_micr_asker;
use crate::agent::pipeline::{GatewayDeliver, Pipeline, PipelineConfig, Swipe};
use crate::agent::telemetry::Telemetry;
use crate::device::enumerate::{enumerate, hidraw_ids, resolve_profile, SelectorConnector};
use crate::device::manager::{
    spawn_reader_with_commands, spawn_watcher, DeviceEvent, ManagerConfig, Stop,
};
use crate::device::profile::Protocol;
use crate::device::{Frame, Profile, ProfileError, Profiles, Selector};
use crate::gateway::client::{ClientConfig, GatewayClient};
use crate::gateway::secret::ApiKey;
use crate::gateway::swipe::{EntryModeTable, LaneSettings};
use crate::queue::{
    Backoff, Deliver, KeySource, Queue, QueueError, QueueLock, UploadEvent, UploaderConfig,
};

/// How often the gateway's host is probed while nothing is being delivered.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(15);

/// Why the agent could not start. Each names what to fix; none carries a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reader profiles: {0}")]
    Profiles(#[from] ProfileError),
    #[error("readers[{index}].device: {reason}")]
    Reader { index: usize, reason: String },
    #[error("readers[{index}].pin_entry: only a driven NEO 2 reader (profile protocol \"neo2\") can be asked for a PIN")]
    PinEntry { index: usize },
    #[error("queue {path}: {error}")]
    Queue { path: String, error: QueueError },
    #[error("gateway: {0}")]
    Gateway(String),
    #[error("api: {0}")]
    Api(#[from] StartError),
    #[error("cannot start a thread: {0}")]
    Thread(String),
}

impl ServiceError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            ServiceError::Config(e) => e.code(),
            ServiceError::Profiles(e) => e.code(),
            ServiceError::Reader { .. } | ServiceError::PinEntry { .. } => "reader-config",
            ServiceError::Queue { error, .. } => error.code(),
            ServiceError::Gateway(_) => "gateway-config",
            ServiceError::Api(_) => "api-start",
            ServiceError::Thread(_) => "thread",
        }
    }
}

/// A reader the service runs: its lane id, profile and thread.
struct RunningReader {
    id: String,
    profile: Option<Arc<Profile>>,
    stop: Stop,
    /// A check reader asked for each check: the task that asks it.
    asker: Option<JoinHandle<()>>,
}

impl RunningReader {
    fn stop(&mut self) {
        self.stop.stop();
        if let Some(a) = self.asker.take() {
            a.abort();
        }
    }
}

/// Everything that reacts to device events; lives on one task.
struct DeviceLoop {
    lane: Arc<AgentLane>,
    events: EventHub,
    /// `None` only in unit tests of the device routing.
    pipeline: Option<Arc<Pipeline>>,
    /// Armed captures, for readers that read a check only when asked.
    captures: Option<Arc<Captures>>,
    profiles: Profiles,
    manager: ManagerConfig,
    tx: mpsc::Sender<DeviceEvent>,
    /// By canonical selector text (the `source` of device events).
    readers: BTreeMap<String, RunningReader>,
    /// Configured selectors, to keep hot-plug from opening the same device twice.
    configured: Vec<Selector>,
}

impl DeviceLoop {
    fn start_reader(
        &mut self,
        id: &str,
        selector: Selector,
        profile: Option<Profile>,
        configured: bool,
    ) -> std::io::Result<()> {
        let source = selector.to_string();
        self.lane.add_reader(
            id,
            &source,
            profile.as_ref().map(|p| p.id.clone()),
            selector.transport_name(),
            configured,
        );
        let transport = selector.transport();
        let connector = SelectorConnector {
            selector,
            profile: profile.clone(),
        };
        let command = profile
            .as_ref()
            .map(|p| p.micr_read_command().to_vec())
            .filter(|c| !c.is_empty());
        let (commands_tx, commands) = match (&command, &self.captures) {
            (Some(_), Some(_)) => {
                let (tx, rx) = std::sync::mpsc::channel();
                (Some(tx), Some(rx))
            }
            _ => (None, None),
        };
        let (stop, _thread) = spawn_reader_with_commands(
            Box::new(connector),
            profile.clone(),
            transport,
            self.manager.clone(),
            self.tx.clone(),
            commands,
        )?;
        let asker = match (command, commands_tx, &self.captures) {
            (Some(command), Some(tx), Some(captures)) => Some(spawn_micr_asker(
                id.to_string(),
                command,
                tx,
                captures.clone(),
                &self.events,
            )),
            _ => None,
        };
        self.readers.insert(
            source,
            RunningReader {
                id: id.to_string(),
                profile: profile.map(Arc::new),
                stop,
                asker,
            },
        );
        Ok(())
    }

    /// A reader thread's event: state for the lane, lane events for subscribers, frames onward.
    async fn on_reader_event(&mut self, event: DeviceEvent) {
        match event {
            DeviceEvent::Frame(frame) => self.on_frame(frame).await,
            DeviceEvent::Unreadable { source, code } => {
                if let (Some(reader), Some(pipeline)) = (self.readers.get(&source), &self.pipeline)
                {
                    pipeline.report_unreadable(&reader.id, code);
                }
            }
            other => {
                if let Some(ev) = self.lane.apply(&other) {
                    self.events.publish(ev);
                }
            }
        }
    }

    /// A complete frame goes to the pipeline under its reader's id. Waiting here while the
    /// pipeline's intake is full is the backpressure: reader threads block on the channel.
    async fn on_frame(&mut self, mut frame: Frame) {
        let Some(reader) = self.readers.get(&frame.source) else {
            return;
        };
        let Some(pipeline) = &self.pipeline else {
            return;
        };
        // Moved, not copied: the bytes stay in one zeroizing buffer.
        let bytes = std::mem::take(&mut *frame.bytes);
        let swipe = Swipe::new(bytes, reader.id.clone(), reader.profile.clone());
        // The ticket is not needed: outcomes reach captures, events and metrics directly.
        drop(pipeline.submit(swipe).await);
    }

    /// The hot-plug watcher's event: start a reader for a new device, stop a departed one.
    fn on_hotplug(&mut self, event: DeviceEvent) {
        match event {
            DeviceEvent::Attached { source, profile } => {
                if self.readers.contains_key(&source) {
                    return;
                }
                let Ok(selector) = source.parse::<Selector>() else {
                    return;
                };
                if self.is_configured(&selector) {
                    return;
                }
                let profile = match resolve_profile(&selector, &self.profiles, profile.as_deref()) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(source = %source, code = e.code(), "hot-plugged reader has no usable profile");
                        return;
                    }
                };
                tracing::info!(source = %source, "reader plugged in");
                if let Err(e) = self.start_reader(&source, selector, profile, false) {
                    tracing::warn!(source = %source, error = %e, "cannot start a reader thread");
                }
            }
            DeviceEvent::Detached { source, reason } => {
                let Some(mut r) = self.readers.remove(&source) else {
                    return;
                };
                r.stop();
                // The thread may not have noticed yet: report the departure once, here.
                if let Some(ev) = self.lane.apply(&DeviceEvent::Detached {
                    source: source.clone(),
                    reason,
                }) {
                    self.events.publish(ev);
                }
                self.lane.remove_reader(&r.id);
                tracing::info!(source = %source, "reader unplugged");
            }
            _ => {}
        }
    }

    /// Whether a hot-plugged device is one the configuration already runs.
    fn is_configured(&self, found: &Selector) -> bool {
        let found_ids = match found {
            Selector::Hidraw(p) => hidraw_ids(p),
            _ => None,
        };
        self.configured.iter().any(|c| match (c, found) {
            (Selector::Hidraw(a), Selector::Hidraw(b))
            | (Selector::Keyboard(a), Selector::Keyboard(b)) => a == b,
            (Selector::Serial { path: a, .. }, Selector::Serial { path: b, .. }) => a == b,
            (Selector::Hid { vid, pid, .. }, Selector::Hidraw(_)) => {
                found_ids == Some((*vid, *pid))
            }
            _ => false,
        })
    }

    fn stop_all(&mut self) {
        for r in self.readers.values_mut() {
            r.stop();
        }
    }
}

/// A running agent.
pub struct Service {
    api: Option<ServerHandle>,
    pipeline: Arc<Pipeline>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    watcher: Option<Stop>,
    pub lane: Arc<AgentLane>,
    pub events: EventHub,
    pub metrics: Arc<Metrics>,
    pub captures: Arc<Captures>,
    pub queue: Arc<Queue>,
    telemetry: Option<Arc<Telemetry>>,
    /// Held until the service is dropped.
    _queue_lock: QueueLock,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("api", &self.api_addr())
            .field("lane", &self.lane)
            .finish()
    }
}

impl Service {
    /// Starts the agent. The API key comes from `CARDLANE_API_KEY` or `gateway.api_key_file`.
    /// Must be called inside a multi-threaded tokio runtime.
    pub async fn start(config: Config) -> Result<Service, ServiceError> {
        let key = config.gateway.api_key()?;
        Service::start_with_key(config, ApiKey::new(key.as_str())).await
    }

    /// Every check [`Service::start`] makes short of opening devices, the queue and the
    /// listener (`cardlane run --check`): the API key (environment, or its file and that
    /// file's mode), reader profiles, each reader's selector and profile, the gateway URL.
    pub fn check(config: &Config) -> Result<(), ServiceError> {
        let key = config.gateway.api_key()?;
        let profiles = Profiles::embedded_with_overrides(config.devices.profiles_dir.as_deref())?;
        resolve_readers(config, &profiles)?;
        GatewayClient::new(ClientConfig::new(
            config.gateway.base_url.clone(),
            ApiKey::new(key.as_str()),
        ))
        .map_err(|e| ServiceError::Gateway(e.to_string()))?;
        Ok(())
    }

    /// As [`Service::start`], with the API key given. The steps in order: readers resolved,
    /// the queue locked and opened, the gateway client, the pipeline and its uploader, the
    /// background tasks (upload events, gateway probe), the readers, the API.
    pub async fn start_with_key(config: Config, key: ApiKey) -> Result<Service, ServiceError> {
        let profiles = Profiles::embedded_with_overrides(config.devices.profiles_dir.as_deref())?;
        let selectors = resolve_readers(&config, &profiles)?;
        let (queue_lock, queue) = open_queue(&config).await?;
        let client = gateway_client(&config.gateway, key)?;

        let metrics = Arc::new(Metrics::new());
        let events = EventHub::default();
        let health = Arc::new(GatewayHealth::new());
        let lane = Arc::new(AgentLane::new(
            Some(queue.clone()),
            health.clone(),
            metrics.clone(),
        ));
        // Capture outcomes are kept with the records, so a kiosk can still ask after a restart.
        let captures =
            Arc::new(Captures::new(config.api.max_waiting_captures).with_store(queue.clone()));
        let pipeline = start_pipeline(
            &config, client, &queue, &health, &events, &captures, &metrics,
        )?;
        metrics.watch_uploader(pipeline.uploader().health());
        lane.watch_uploader(pipeline.uploader().health());
        pipeline.watch_gateway(health.clone());
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = vec![watch_upload_events(
            &pipeline,
            health.clone(),
            stop_rx.clone(),
        )];
        let telemetry = start_telemetry(&config, &events, &metrics, &stop_rx, &mut tasks)?;
        if let Some(target) = probe_target(&config.gateway.base_url) {
            tasks.push(tokio::spawn(run_probe(
                target,
                health.clone(),
                PROBE_INTERVAL,
                stop_rx.clone(),
            )));
        }

        let watcher = start_readers(
            &config,
            &profiles,
            selectors,
            DrivenContext {
                lane: lane.clone(),
                events: events.clone(),
                captures: captures.clone(),
                pipeline: pipeline.clone(),
            },
            &stop_rx,
            &mut tasks,
        )?;

        let api = if config.api.enabled {
            Some(
                api::start(
                    &config.api,
                    lane.clone(),
                    captures.clone(),
                    events.clone(),
                    metrics.clone(),
                    Some(Arc::new(PipelineFlush(pipeline.clone()))),
                )
                .await?,
            )
        } else {
            None
        };

        Ok(Service {
            api,
            pipeline,
            stop,
            tasks,
            watcher,
            lane,
            events,
            metrics,
            captures,
            queue,
            telemetry,
            _queue_lock: queue_lock,
        })
    }

    /// Where the local API listens (`None` when `api.enabled = false`).
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().map(|a| a.local_addr())
    }

    /// Graceful stop: readers, then the pipeline (submitted swipes become durable, uploads in
    /// flight finish, the rest stays queued), then the API.
    pub async fn shutdown(mut self) -> Result<(), ServiceError> {
        if let Some(w) = self.watcher.as_mut() {
            w.stop();
        }
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.pipeline.shutdown().await;
        if let Some(api) = self.api.take() {
            if let Err(e) = api.shutdown().await {
                tracing::warn!(error = %e, "api did not stop cleanly");
            }
        }
        // Its follower task has ended with the others: this is the last handle.
        if let Some(t) = self.telemetry.take().and_then(|t| Arc::try_unwrap(t).ok()) {
            let _ = tokio::task::spawn_blocking(move || t.shutdown()).await;
        }
        Ok(())
    }
}

/// Fleet telemetry when configured: read spans and metrics to the collector, off the read path.
fn start_telemetry(
    config: &Config,
    events: &EventHub,
    metrics: &Arc<Metrics>,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<Arc<Telemetry>>, ServiceError> {
    if !config.telemetry.enabled {
        return Ok(None);
    }
    let ids: Vec<String> = config.readers.iter().map(|r| r.id.clone()).collect();
    let t = Arc::new(
        Telemetry::start(&config.telemetry, &ids, metrics.clone())
            .map_err(|e| ServiceError::Thread(e.to_string()))?,
    );
    tasks.push(tokio::spawn(crate::agent::telemetry::follow(
        events.clone(),
        t.clone(),
        stop_rx.clone(),
    )));
    Ok(Some(t))
}

/// The console's flush button: the uploader's manual flush.
struct PipelineFlush(Arc<Pipeline>);

impl api::QueueFlush for PipelineFlush {
    fn flush(&self) -> futures_util::future::BoxFuture<'static, Result<api::FlushSummary, String>> {
        let pipeline = self.0.clone();
        Box::pin(async move {
            let r = pipeline
                .uploader()
                .flush_now()
                .await
                .map_err(|e| e.to_string())?;
            Ok(api::FlushSummary {
                sent: r.sent,
                failed: r.failed,
                remaining: r.remaining,
            })
        })
    }
}

/// A queue error as a start error naming the queue file.
fn queue_error(path: &std::path::Path) -> impl Fn(QueueError) -> ServiceError + '_ {
    move |error| ServiceError::Queue {
        path: path.display().to_string(),
        error,
    }
}

/// One process per queue file: the lock is taken before the queue is opened (and recovered).
async fn open_queue(config: &Config) -> Result<(QueueLock, Arc<Queue>), ServiceError> {
    let queue_err = queue_error(&config.queue.path);
    let qcfg = crate::queue::QueueConfig {
        max_records: u64::from(config.queue.max_records),
        max_age: config.queue.max_age,
        key: KeySource::Auto,
    };
    let queue_lock = QueueLock::acquire(&config.queue.path).map_err(&queue_err)?;
    let path = config.queue.path.clone();
    let queue = tokio::task::spawn_blocking(move || Queue::open(path, qcfg))
        .await
        .map_err(|e| ServiceError::Thread(e.to_string()))?
        .map_err(&queue_err)?;
    Ok((queue_lock, Arc::new(queue)))
}

fn gateway_client(
    g: &crate::agent::config::GatewayConfig,
    key: ApiKey,
) -> Result<GatewayClient, ServiceError> {
    GatewayClient::new(ClientConfig {
        base_url: g.base_url.clone(),
        api_key: key,
        path: g.customer_path.clone(),
        connect_timeout: g.connect_timeout,
        total_timeout: g.total_timeout,
        retry: Default::default(),
    })
    .map_err(|e| ServiceError::Gateway(e.to_string()))
}

/// The pipeline's settings from `[lane]` and the gateway's retry policy.
fn pipeline_config(config: &Config) -> PipelineConfig {
    let (g, l) = (&config.gateway, &config.lane);
    let e = &l.entry_modes;
    PipelineConfig {
        lane: LaneSettings {
            client_ip: l.client_ip.map(|ip| ip.to_string()),
            device_code: l.device_code.clone(),
            customer_id_prefix: l.customer_id_prefix.clone(),
            allow_clear: l.allow_clear_text,
            entry_modes: EntryModeTable {
                swipe: e.swipe.clone(),
                contactless_msd: e.contactless_msd.clone(),
                chip: e.chip.clone(),
                contactless_chip: e.contactless_chip.clone(),
                fallback: e.fallback.clone(),
                manual: e.manual.clone(),
            },
            check: l.check,
        },
        save_unarmed: l.on_swipe == OnSwipe::Save,
        uploader: UploaderConfig {
            backoff: Backoff {
                base: g.retry.initial_backoff,
                max: g.retry.max_backoff,
            },
            ..UploaderConfig::default()
        },
        ..PipelineConfig::default()
    }
}

/// The pipeline and its uploader, delivering through the client with gateway health observed.
fn start_pipeline(
    config: &Config,
    client: GatewayClient,
    queue: &Arc<Queue>,
    health: &Arc<GatewayHealth>,
    events: &EventHub,
    captures: &Arc<Captures>,
    metrics: &Arc<Metrics>,
) -> Result<Arc<Pipeline>, ServiceError> {
    // Latency is timed inside the pipeline; the observer only feeds gateway health.
    let deliver: Arc<dyn Deliver> = Arc::new(ObservedDeliver::new(
        Arc::new(GatewayDeliver::new(client)),
        health.clone(),
    ));
    let pipeline = Pipeline::start(
        pipeline_config(config),
        queue.clone(),
        deliver,
        events.clone(),
        captures.clone(),
        metrics.clone(),
    )
    .map_err(|e| match e {
        crate::agent::pipeline::PipelineError::Queue(error) => {
            queue_error(&config.queue.path)(error)
        }
    })?;
    Ok(Arc::new(pipeline))
}

/// Upload events that matter to health beyond what deliveries show.
fn watch_upload_events(
    pipeline: &Pipeline,
    health: Arc<GatewayHealth>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let mut up_events = pipeline.uploader().subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                ev = up_events.recv() => match ev {
                    Ok(UploadEvent::Resumed) => health.auth_cleared(),
                    Ok(UploadEvent::AuthFailed { reason }) => {
                        tracing::error!(reason = %reason, "uploads paused (records kept)");
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    })
}

/// Readers: configured ones now (driven readers get their driver, the rest a listening
/// thread), hot-plugged ones as the watcher finds them. Returns the watcher's stop handle.
#[allow(clippy::type_complexity)]
fn start_readers(
    config: &Config,
    profiles: &Profiles,
    selectors: Vec<(String, Selector, Option<Profile>, ActivateMode)>,
    driven_ctx: DrivenContext,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<Option<Stop>, ServiceError> {
    let lane = driven_ctx.lane.clone();
    let manager = ManagerConfig {
        poll_interval: config.devices.poll_interval,
        ..ManagerConfig::default()
    };
    let (tx, rx) = mpsc::channel::<DeviceEvent>(256);
    let mut devices = DeviceLoop {
        lane: lane.clone(),
        events: driven_ctx.events.clone(),
        pipeline: Some(driven_ctx.pipeline.clone()),
        captures: Some(driven_ctx.captures.clone()),
        profiles: profiles.clone(),
        manager,
        tx,
        readers: BTreeMap::new(),
        configured: selectors.iter().map(|(_, s, _, _)| s.clone()).collect(),
    };
    for (id, selector, profile, activate) in selectors {
        let protocol = profile.as_ref().map_or(Protocol::None, |p| p.protocol);
        if matches!(
            protocol,
            Protocol::Neo2 | Protocol::Mms | Protocol::MagtekV5
        ) {
            // The agent drives it: transactions on captures (or always), not listen-only.
            tasks.push(start_driven(
                &lane,
                &id,
                selector,
                profile,
                activate,
                driven_ctx.clone(),
                stop_rx.clone(),
            ));
            continue;
        }
        devices
            .start_reader(&id, selector, profile, true)
            .map_err(|e| ServiceError::Thread(e.kind().to_string()))?;
        lane.set_protocol(&id, protocol.as_str());
    }
    let (hot_tx, hot_rx) = mpsc::channel::<DeviceEvent>(64);
    let watcher = if config.devices.hotplug {
        let p = profiles.clone();
        let (w, _thread) =
            spawn_watcher(move || enumerate(&p), config.devices.poll_interval, hot_tx)
                .map_err(|e| ServiceError::Thread(e.kind().to_string()))?;
        Some(w)
    } else {
        drop(hot_tx);
        None
    };
    tasks.push(tokio::spawn(run_device_loop(
        devices,
        rx,
        hot_rx,
        stop_rx.clone(),
    )));
    Ok(watcher)
}

/// Reader threads' events and hot-plug arrivals, one at a time, until stopped.
async fn run_device_loop(
    mut devices: DeviceLoop,
    mut rx: mpsc::Receiver<DeviceEvent>,
    mut hot_rx: mpsc::Receiver<DeviceEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let mut hot_open = true;
    enum Next {
        Reader(DeviceEvent),
        Hotplug(Option<DeviceEvent>),
        Stop,
    }
    loop {
        // The select only picks; handling (which may wait on the pipeline) comes after,
        // so no watch guard is held across an await.
        let next = tokio::select! {
            ev = rx.recv() => ev.map_or(Next::Stop, Next::Reader),
            ev = hot_rx.recv(), if hot_open => Next::Hotplug(ev),
            _ = stop.wait_for(|v| *v) => Next::Stop,
        };
        match next {
            Next::Reader(ev) => devices.on_reader_event(ev).await,
            Next::Hotplug(Some(ev)) => devices.on_hotplug(ev),
            Next::Hotplug(None) => hot_open = false,
            Next::Stop => break,
        }
    }
    devices.stop_all();
}

/// Lists a driven reader in the lane and starts its driver and task.
fn start_driven(
    lane: &AgentLane,
    id: &str,
    selector: Selector,
    profile: Option<Profile>,
    activate: ActivateMode,
    ctx: DrivenContext,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let source = selector.to_string();
    lane.add_reader(
        id,
        &source,
        profile.as_ref().map(|p| p.id.clone()),
        selector.transport_name(),
        true,
    );
    let protocol = profile.as_ref().map_or(Protocol::Neo2, |p| p.protocol);
    lane.set_protocol(id, protocol.as_str());
    lane.set_pin_entry(id, profile.as_ref().is_some_and(|p| p.pin_entry));
    spawn_driven(
        id.to_string(),
        selector,
        profile.map(Arc::new),
        activate,
        ctx,
        stop,
    )
}

/// Each configured reader's id, parsed selector and profile.
#[allow(clippy::type_complexity)]
fn resolve_readers(
    config: &Config,
    profiles: &Profiles,
) -> Result<Vec<(String, Selector, Option<Profile>, ActivateMode)>, ServiceError> {
    let mut selectors = Vec::with_capacity(config.readers.len());
    for (index, r) in config.readers.iter().enumerate() {
        let reader_err = |reason: String| ServiceError::Reader { index, reason };
        let selector: Selector = r
            .device
            .parse()
            .map_err(|e: crate::device::selector::SelectorError| reader_err(e.to_string()))?;
        let mut profile = resolve_profile(&selector, profiles, r.profile.as_deref())
            .map_err(|e| reader_err(e.to_string()))?;
        if matches!(selector, Selector::Simulated(_))
            && !profile
                .as_ref()
                .is_some_and(|p| matches!(p.protocol, Protocol::Mms | Protocol::MagtekV5))
        {
            return Err(reader_err(String::from(
                "sim: needs `profile =` a driven MagTek profile (protocol \"mms\" or \"magtek-v5\")",
            )));
        }
        // The reader's own setting wins over its profile's (a keypad fitted or not).
        if let Some(pin_entry) = r.pin_entry {
            match profile.as_mut() {
                Some(p) if p.protocol == Protocol::Neo2 => p.pin_entry = pin_entry,
                _ if !pin_entry => {}
                _ => return Err(ServiceError::PinEntry { index }),
            }
        }
        selectors.push((r.id.clone(), selector, profile, r.activate));
    }
    Ok(selectors)
}

/// The agent holds keys, clear tracks and PIN blocks in memory: a crash must not write them to
/// a core file. Sets the core size limit to 0, soft and hard (the unit also says LimitCORE=0).
/// (Not PR_SET_DUMPABLE: it would also take the process's own /proc files away from it.)
pub fn no_core_dumps() -> std::io::Result<()> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (systemd stop, Ctrl-C).
pub async fn stop_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::api::Lane;

    fn looper(configured: Vec<Selector>) -> DeviceLoop {
        let (tx, _rx) = mpsc::channel(1);
        DeviceLoop {
            lane: Arc::new(AgentLane::new(
                None,
                Arc::new(GatewayHealth::new()),
                Arc::new(Metrics::new()),
            )),
            events: EventHub::default(),
            pipeline: None,
            captures: None,
            profiles: Profiles::embedded().unwrap(),
            manager: ManagerConfig::default(),
            tx,
            readers: BTreeMap::new(),
            configured,
        }
    }

    #[test]
    fn hotplug_skips_configured_devices() {
        let l = looper(vec![
            "serial:/dev/ttyUSB0@9600".parse().unwrap(),
            "keyboard:/dev/input/event4".parse().unwrap(),
        ]);
        assert!(l.is_configured(&"serial:/dev/ttyUSB0".parse().unwrap()));
        assert!(l.is_configured(&"keyboard:/dev/input/event4".parse().unwrap()));
        assert!(!l.is_configured(&"serial:/dev/ttyUSB1".parse().unwrap()));
        assert!(!l.is_configured(&"hidraw:/dev/hidraw0".parse().unwrap()));
    }

    #[tokio::test]
    async fn hotplug_arrival_and_departure() {
        let mut l = looper(Vec::new());
        let mut sub = l.events.subscribe();
        // A device the watcher found: a reader is started for it under its selector.
        l.on_hotplug(DeviceEvent::Attached {
            source: "serial:/dev/cardlane-test-absent".into(),
            profile: None,
        });
        let r = l.lane.readers();
        assert_eq!(r.len(), 1);
        assert!(!r[0].configured);
        assert_eq!(r[0].id, "serial:/dev/cardlane-test-absent");
        // Its thread attached, then the watcher saw it go: one reader-detached, then forgotten.
        l.on_reader_event(DeviceEvent::Attached {
            source: "serial:/dev/cardlane-test-absent".into(),
            profile: None,
        })
        .await;
        assert_eq!(sub.recv().await.unwrap().kind(), "reader-attached");
        l.on_hotplug(DeviceEvent::Detached {
            source: "serial:/dev/cardlane-test-absent".into(),
            reason: crate::device::TransportError::Closed,
        });
        assert_eq!(sub.recv().await.unwrap().kind(), "reader-detached");
        assert!(l.lane.readers().is_empty());
        assert!(l.readers.is_empty());
    }
}
