//! Fleet telemetry (`[telemetry]`): a span per read and the agent's metrics, sent over
//! OTLP/HTTP (protobuf) to an OpenTelemetry collector, with the lane, store and readers as
//! resource attributes.
//!
//! A collector that is down must never slow reads or uploads: reads hand their span to a
//! bounded buffer with `try_send` and go on; when the buffer is full the span is dropped and
//! counted (`cardlane_telemetry_dropped_total`). Exports run on a thread of their own (the
//! exporter's HTTP client is a blocking one), and metrics on the SDK's periodic reader thread.
//! After a failed span export that thread stops draining the buffer for a while (1 s doubling
//! to a minute): trying every span against a dead collector would spend on connection attempts
//! the CPU the reads need, so the buffer fills and the excess is dropped at `try_send` instead.
//! Spans carry reader ids, formats, outcomes and reason codes: never card data.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use tokio::sync::watch;

use crate::agent::config::TelemetryConfig;
use crate::agent::events::{EventHub, LaneEvent};
use crate::agent::metrics::Metrics;

/// A finished read, as its span tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpan {
    pub reader: String,
    /// `saved`, `queued`, `failed`, `unreadable`.
    pub outcome: String,
    pub format: Option<String>,
    /// The reason code of a failed or unreadable read.
    pub code: Option<String>,
    pub start: SystemTime,
    pub end: SystemTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: cannot build the OTLP exporter: {0}")]
    Exporter(String),
    #[error("telemetry: cannot start its thread: {0}")]
    Thread(String),
}

/// The running exporter. Dropping it without [`Telemetry::shutdown`] stops it too.
pub struct Telemetry {
    tx: Option<SyncSender<ReadSpan>>,
    breaker: Arc<Breaker>,
    accepted: AtomicU64,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("accepted", &self.accepted.load(Ordering::Relaxed))
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish()
    }
}

/// The resource attributes every span and metric carries.
pub fn resource_attributes(cfg: &TelemetryConfig, readers: &[String]) -> Vec<KeyValue> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let instance = cfg
        .instance_id
        .clone()
        .or_else(|| cfg.lane.clone())
        .unwrap_or(host);
    let mut attrs = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("service.instance.id", instance),
        KeyValue::new("cardlane.readers", readers.join(",")),
    ];
    if let Some(l) = &cfg.lane {
        attrs.push(KeyValue::new("cardlane.lane", l.clone()));
    }
    if let Some(s) = &cfg.store {
        attrs.push(KeyValue::new("cardlane.store", s.clone()));
    }
    attrs
}

impl Telemetry {
    /// Starts the exporters (on their own thread) for the configured collector.
    pub fn start(
        cfg: &TelemetryConfig,
        readers: &[String],
        metrics: Arc<Metrics>,
    ) -> Result<Telemetry, TelemetryError> {
        let (tx, rx) = sync_channel::<ReadSpan>(cfg.buffer.max(1));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let cfg = cfg.clone();
        let attrs = resource_attributes(&cfg, readers);
        let m = metrics.clone();
        let breaker = Arc::new(Breaker::default());
        let b = breaker.clone();
        let thread = std::thread::Builder::new()
            .name("telemetry".into())
            .spawn(move || match Exporters::build(&cfg, attrs, m, b.clone()) {
                Ok(ex) => {
                    let _ = ready_tx.send(Ok(()));
                    ex.run(rx, &b);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| TelemetryError::Thread(e.to_string()))?;
        ready_rx
            .recv()
            .map_err(|_| TelemetryError::Thread("the telemetry thread ended".into()))??;
        metrics.telemetry_enabled();
        Ok(Telemetry {
            tx: Some(tx),
            breaker,
            accepted: AtomicU64::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
            metrics,
            thread: Some(thread),
        })
    }

    /// Hands a read's span to the exporter, never waiting: a full buffer drops it (counted).
    pub fn record(&self, span: ReadSpan) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(span) {
            Ok(()) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.telemetry_dropped("span");
            }
        }
    }

    /// Spans handed to the exporter's buffer so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Spans dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Sends what is buffered (as far as the collector takes it) and stops. Blocking: call it
    /// off the async workers.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        // A thread waiting out a failing collector quits now rather than after its wait.
        lock(&self.breaker.state).stopping = true;
        self.breaker.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Exporters {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Exporters {
    fn build(
        cfg: &TelemetryConfig,
        attrs: Vec<KeyValue>,
        metrics: Arc<Metrics>,
        breaker: Arc<Breaker>,
    ) -> Result<Exporters, TelemetryError> {
        let err =
            |e: opentelemetry_otlp::ExporterBuildError| TelemetryError::Exporter(e.to_string());
        let resource = Resource::builder()
            .with_service_name("cardlane")
            .with_attributes(attrs)
            .build();
        let client = || {
            reqwest::blocking::Client::builder()
                .timeout(cfg.timeout)
                .build()
                .map_err(|e| TelemetryError::Exporter(e.to_string()))
        };
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_endpoint(format!("{}/v1/traces", cfg.endpoint))
            .with_timeout(cfg.timeout)
            .build()
            .map_err(err)?;
        // Spans are exported one by one on this thread: the buffer in front of it is the
        // only queue, so every drop is counted.
        let tracer = SdkTracerProvider::builder()
            .with_resource(resource.clone())
            .with_span_processor(SimpleSpanProcessor::new(Watched {
                inner: spans,
                breaker,
            }))
            .build();
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(client()?)
            .with_endpoint(format!("{}/v1/metrics", cfg.endpoint))
            .with_timeout(cfg.timeout)
            .build()
            .map_err(err)?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(cfg.metrics_interval)
            .build();
        let meter = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        register_instruments(&meter, metrics);
        Ok(Exporters { tracer, meter })
    }

    fn run(self, rx: Receiver<ReadSpan>, breaker: &Breaker) {
        let tracer = self.tracer.tracer("cardlane");
        // Ends when every sender is gone or at shutdown.
        while breaker.wait_closed() {
            let Ok(r) = rx.recv() else { break };
            let mut attrs = vec![
                KeyValue::new("cardlane.reader", r.reader),
                KeyValue::new("cardlane.outcome", r.outcome),
            ];
            if let Some(f) = r.format {
                attrs.push(KeyValue::new("cardlane.format", f));
            }
            if let Some(c) = r.code {
                attrs.push(KeyValue::new("cardlane.code", c));
            }
            let mut span = tracer
                .span_builder("read")
                .with_kind(SpanKind::Internal)
                .with_start_time(r.start)
                .with_attributes(attrs)
                .start(&tracer);
            span.end_with_timestamp(r.end);
        }
        let left = rx.try_iter().count();
        if left > 0 {
            tracing::warn!(
                spans = left,
                "telemetry: the collector does not answer; read spans still buffered at shutdown are not sent"
            );
        }
        let _ = self.meter.shutdown();
        let _ = self.tracer.shutdown();
    }
}

/// Whether the collector took the last span, and how long to leave it alone if not.
#[derive(Debug, Default)]
struct Breaker {
    state: Mutex<BreakerState>,
    wake: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct BreakerState {
    /// Span exports failed in a row.
    failures: u32,
    /// No export before this (set after a failure).
    retry_at: Option<Instant>,
    stopping: bool,
}

impl Breaker {
    const FIRST_WAIT: Duration = Duration::from_secs(1);
    const MAX_WAIT: Duration = Duration::from_secs(60);

    fn exported(&self, ok: bool) {
        let mut st = lock(&self.state);
        if ok {
            st.failures = 0;
            st.retry_at = None;
        } else {
            st.failures = st.failures.saturating_add(1);
            let wait = Self::FIRST_WAIT
                .saturating_mul(1 << st.failures.saturating_sub(1).min(6))
                .min(Self::MAX_WAIT);
            st.retry_at = Some(Instant::now() + wait);
        }
    }

    /// Blocks while a failed collector is left alone; false when telemetry stops meanwhile.
    fn wait_closed(&self) -> bool {
        let mut st = lock(&self.state);
        loop {
            // Closed: go on, also when stopping (what is buffered is sent first).
            let Some(at) = st.retry_at else { return true };
            if st.stopping {
                return false;
            }
            let now = Instant::now();
            if now >= at {
                return true;
            }
            st = self
                .wake
                .wait_timeout(st, at - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The OTLP span exporter, telling the breaker how each export went.
#[derive(Debug)]
struct Watched<E> {
    inner: E,
    breaker: Arc<Breaker>,
}

impl<E: SpanExporter> SpanExporter for Watched<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.breaker.exported(result.is_ok());
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&mut self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// One OTel instrument per Prometheus family, observing the same samples under the same names
/// and labels (histograms are left to the Prometheus endpoint).
fn register_instruments(provider: &SdkMeterProvider, metrics: Arc<Metrics>) {
    let meter = provider.meter("cardlane");
    for (name, kind) in metrics.families() {
        let m = metrics.clone();
        let n = name.clone();
        match kind {
            MetricType::COUNTER => {
                let _counter = meter
                    .u64_observable_counter(name)
                    .with_callback(move |o| {
                        for (labels, v) in samples(&m.gather(), &n) {
                            // Counters are whole numbers kept as floats by the registry.
                            o.observe(v.max(0.0) as u64, &labels);
                        }
                    })
                    .build();
            }
            MetricType::GAUGE => {
                let _gauge = meter
                    .f64_observable_gauge(name)
                    .with_callback(move |o| {
                        for (labels, v) in samples(&m.gather(), &n) {
                            o.observe(v, &labels);
                        }
                    })
                    .build();
            }
            _ => {}
        }
    }
}

/// The samples of counter or gauge family `name`: labels as attributes, and the value.
fn samples(families: &[MetricFamily], name: &str) -> Vec<(Vec<KeyValue>, f64)> {
    let Some(family) = families.iter().find(|f| f.name() == name) else {
        return Vec::new();
    };
    let kind = family.get_field_type();
    family
        .get_metric()
        .iter()
        .filter_map(|m| {
            let value = match kind {
                MetricType::COUNTER => m.get_counter().get_value(),
                MetricType::GAUGE => m.get_gauge().get_value(),
                _ => return None,
            };
            let labels = m
                .get_label()
                .iter()
                .map(|l| KeyValue::new(l.name().to_string(), l.value().to_string()))
                .collect();
            Some((labels, value))
        })
        .collect()
}

/// Turns lane events into read spans: a read starts at its `swipe` and ends at its first
/// outcome on the same reader (`queued`, `saved`, `failed`), or is unreadable. A reader's reads
/// wait for their outcomes in order (a burst of swipes has many in flight: keyed by reader
/// alone, each swipe would overwrite the one before and most reads would tell no span).
pub async fn follow(events: EventHub, telemetry: Arc<Telemetry>, stop: watch::Receiver<bool>) {
    let mut rx = events.subscribe();
    let mut stop = stop;
    let mut reads = OpenReads::default();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = stop.wait_for(|s| *s) => return,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                // Counted, not silent: those events' reads tell no span.
                telemetry.metrics.telemetry_missed_events(n);
                tracing::debug!(missed = n, "telemetry fell behind the lane events");
                continue;
            }
            Err(_) => return,
        };
        if let Some(span) = reads.apply(ev, SystemTime::now()) {
            telemetry.record(span);
        }
    }
}

/// Reads between their swipe and their first outcome, per reader, oldest first.
#[derive(Debug, Default)]
struct OpenReads {
    open: HashMap<String, VecDeque<(SystemTime, Option<String>)>>,
    /// Customer ids told as `queued`: their later `saved` or `failed` is not another read.
    queued: HashSet<String>,
    queued_order: VecDeque<String>,
}

impl OpenReads {
    /// Reads waiting for their outcome at most, per reader and in all (a reader that vanished
    /// leaves its reads behind), and queued ids remembered.
    const MAX: usize = 4096;

    fn apply(&mut self, ev: LaneEvent, now: SystemTime) -> Option<ReadSpan> {
        let (reader, outcome, code, customer) = match ev {
            LaneEvent::Swipe {
                reader,
                format,
                error_code: None,
                ..
            } => {
                if !self.open.contains_key(&reader) && self.open.len() >= Self::MAX {
                    self.open.clear();
                }
                let q = self.open.entry(reader).or_default();
                if q.len() >= Self::MAX {
                    q.pop_front();
                }
                q.push_back((now, format));
                return None;
            }
            LaneEvent::SwipeUnreadable { reader, code } => (reader, "unreadable", Some(code), None),
            LaneEvent::Queued {
                reader: Some(r),
                customer_id,
                ..
            } => (r, "queued", None, Some(customer_id)),
            LaneEvent::Saved {
                reader: Some(r),
                customer_id,
                ..
            } => (r, "saved", None, Some(customer_id)),
            LaneEvent::Failed {
                reader: Some(r),
                code,
                customer_id,
                ..
            } => (r, "failed", Some(code), customer_id),
            _ => return None,
        };
        if let Some(id) = &customer {
            if self.queued.remove(id) {
                // The final outcome of a read already told as queued.
                return None;
            }
        }
        let first = self.open.get_mut(&reader).and_then(VecDeque::pop_front);
        let (start, format) = match first {
            Some(o) => o,
            // Unreadable reads have no swipe event before them.
            None if outcome == "unreadable" => (now, None),
            None => return None,
        };
        if let (Some(id), "queued") = (customer, outcome) {
            if self.queued_order.len() >= Self::MAX {
                if let Some(old) = self.queued_order.pop_front() {
                    self.queued.remove(&old);
                }
            }
            self.queued.insert(id.clone());
            self.queued_order.push_back(id);
        }
        Some(ReadSpan {
            reader,
            outcome: outcome.to_string(),
            format,
            code,
            start,
            end: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_of_a_family_with_labels() {
        let m = Metrics::new();
        m.read_unreadable("front", "bad-lrc");
        m.read_unreadable("front", "bad-lrc");
        m.read_unreadable("q\"t\\", "truncated");
        m.set_queue(4, std::time::Duration::from_millis(2_500));
        let kinds: HashMap<String, MetricType> = m.families().into_iter().collect();
        assert_eq!(
            kinds.get("cardlane_reads_unreadable_total"),
            Some(&MetricType::COUNTER)
        );
        // Declared before its first sample, so telemetry has an instrument for it.
        assert_eq!(
            kinds.get("cardlane_swipes_total"),
            Some(&MetricType::COUNTER)
        );
        assert_eq!(
            kinds.get("cardlane_queue_oldest_age_seconds"),
            Some(&MetricType::GAUGE)
        );
        let gathered = m.gather();
        let mut a = samples(&gathered, "cardlane_reads_unreadable_total");
        a.sort_by(|x, y| x.1.total_cmp(&y.1));
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].1, 2.0);
        let attrs = |kv: &[KeyValue]| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = kv
                .iter()
                .map(|k| (k.key.to_string(), k.value.to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            attrs(&a[1].0),
            [
                ("code".to_string(), "bad-lrc".to_string()),
                ("reader".to_string(), "front".to_string())
            ]
        );
        assert_eq!(
            attrs(&a[0].0),
            [
                ("code".to_string(), "truncated".to_string()),
                ("reader".to_string(), "q\"t\\".to_string())
            ]
        );
        assert_eq!(
            samples(&gathered, "cardlane_queue_oldest_age_seconds"),
            [(Vec::new(), 2.5)]
        );
        assert!(samples(&gathered, "cardlane_swipes_total").is_empty());
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        // A telemetry whose exporter thread never drains: the buffer holds one.
        let (tx, rx) = sync_channel(1);
        let metrics = Arc::new(Metrics::new());
        metrics.telemetry_enabled();
        let t = Telemetry {
            tx: Some(tx),
            breaker: Arc::default(),
            accepted: AtomicU64::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
            metrics: metrics.clone(),
            thread: None,
        };
        let span = ReadSpan {
            reader: "front".into(),
            outcome: "saved".into(),
            format: None,
            code: None,
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH,
        };
        for _ in 0..3 {
            t.record(span.clone());
        }
        assert_eq!(t.dropped(), 2);
        assert!(metrics
            .render()
            .contains("cardlane_telemetry_dropped_total{kind=\"span\"} 2\n"));
        assert_eq!(rx.try_recv().unwrap(), span);
    }

    fn swipe(reader: &str) -> LaneEvent {
        LaneEvent::Swipe {
            reader: reader.into(),
            format: Some("tracks".into()),
            entry_mode: None,
            masked_pan: None,
            masked_account: None,
            last4: None,
            capture_id: None,
            error_code: None,
        }
    }

    fn outcome(kind: &str, reader: &str, id: &str) -> LaneEvent {
        let reader = Some(reader.to_string());
        let customer_id = id.to_string();
        match kind {
            "queued" => LaneEvent::Queued {
                reader,
                capture_id: None,
                customer_id,
                masked_pan: None,
                masked_account: None,
                last4: None,
            },
            _ => LaneEvent::Saved {
                reader,
                capture_id: None,
                customer_id,
                token: None,
                masked_pan: None,
                masked_account: None,
                last4: None,
            },
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn events_the_span_task_falls_behind_on_are_counted() {
        let metrics = Arc::new(Metrics::new());
        metrics.telemetry_enabled();
        let (tx, _rx) = sync_channel(64);
        let t = Arc::new(Telemetry {
            tx: Some(tx),
            breaker: Arc::default(),
            accepted: AtomicU64::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
            metrics: metrics.clone(),
            thread: None,
        });
        let hub = EventHub::new(4);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow(hub.clone(), t, stop_rx));
        // Let it subscribe, then publish 10 events with no await between: a hub of 4 keeps
        // the last 4, so the task has missed 6 when it runs again.
        tokio::task::yield_now().await;
        for _ in 0..10 {
            hub.publish(swipe("front"));
        }
        tokio::task::yield_now().await;
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert!(metrics
            .render()
            .contains("cardlane_telemetry_dropped_total{kind=\"event\"} 6\n"));
    }

    #[test]
    fn a_burst_of_reads_tells_one_span_each() {
        let mut r = OpenReads::default();
        let t = |s: u64| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s);
        // Three swipes in flight on one reader, one on another.
        assert_eq!(r.apply(swipe("front"), t(1)), None);
        assert_eq!(r.apply(swipe("front"), t(2)), None);
        assert_eq!(r.apply(swipe("back"), t(3)), None);
        assert_eq!(r.apply(swipe("front"), t(4)), None);
        let mut spans = Vec::new();
        for (ev, at) in [
            (outcome("saved", "front", "A"), 5),
            (outcome("queued", "front", "B"), 6),
            (outcome("saved", "back", "C"), 7),
            // B's final outcome: not another read.
            (outcome("saved", "front", "B"), 8),
            (outcome("saved", "front", "D"), 9),
            // Nothing open any more on front: an outcome without a read tells nothing.
            (outcome("saved", "front", "E"), 10),
        ] {
            spans.extend(r.apply(ev, t(at)));
        }
        let got: Vec<(&str, &str, SystemTime, SystemTime)> = spans
            .iter()
            .map(|s| (s.reader.as_str(), s.outcome.as_str(), s.start, s.end))
            .collect();
        assert_eq!(
            got,
            [
                ("front", "saved", t(1), t(5)),
                ("front", "queued", t(2), t(6)),
                ("back", "saved", t(3), t(7)),
                ("front", "saved", t(4), t(9)),
            ]
        );
        assert!(spans.iter().all(|s| s.format.as_deref() == Some("tracks")));
    }

    #[test]
    fn a_failing_collector_is_left_alone_longer_each_time() {
        let b = Breaker::default();
        let wait = |b: &Breaker| {
            lock(&b.state)
                .retry_at
                .map(|at| at.saturating_duration_since(Instant::now()))
        };
        assert_eq!(wait(&b), None);
        for want in [1, 2, 4, 8, 16, 32, 60, 60] {
            b.exported(false);
            let w = wait(&b).unwrap();
            let want = Duration::from_secs(want);
            assert!(w <= want && w + Duration::from_millis(500) > want, "{w:?}");
        }
        b.exported(true);
        assert_eq!(wait(&b), None);
        assert!(b.wait_closed());
    }

    #[test]
    fn stopping_ends_the_wait_at_once() {
        let b = Arc::new(Breaker::default());
        lock(&b.state).failures = 10;
        b.exported(false);
        let waiting = b.clone();
        let t0 = Instant::now();
        let h = std::thread::spawn(move || waiting.wait_closed());
        std::thread::sleep(Duration::from_millis(50));
        lock(&b.state).stopping = true;
        b.wake.notify_all();
        assert!(!h.join().unwrap());
        assert!(t0.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_dead_collector_costs_one_attempt_then_the_buffer_drops_and_counts() {
        // A 127.0.0.1 port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = TelemetryConfig {
            enabled: true,
            endpoint: format!("http://127.0.0.1:{port}"),
            buffer: 16,
            metrics_interval: Duration::from_secs(3600),
            ..TelemetryConfig::default()
        };
        let metrics = Arc::new(Metrics::new());
        let t = Telemetry::start(&cfg, &["front".into()], metrics.clone()).unwrap();
        let span = ReadSpan {
            reader: "front".into(),
            outcome: "saved".into(),
            format: None,
            code: None,
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH,
        };
        t.record(span.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&t.breaker.state).retry_at.is_none() {
            assert!(Instant::now() < deadline, "the export never failed");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The thread leaves the collector alone for a second: the buffer takes 16, the rest
        // is dropped at once and counted.
        for _ in 0..1000 {
            t.record(span.clone());
        }
        assert_eq!(t.dropped(), 1000 - 16);
        assert!(metrics
            .render()
            .contains("cardlane_telemetry_dropped_total{kind=\"span\"} 984\n"));
        let t0 = Instant::now();
        t.shutdown();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    }
}
