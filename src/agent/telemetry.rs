//! Fleet telemetry (`[telemetry]`): a span per read and the agent's metrics, sent over
//! OTLP/HTTP (protobuf) to an OpenTelemetry collector, with the lane, store and readers as
//! resource attributes.
//!
//! A collector that is down must never slow reads or uploads: reads hand their span to a
//! bounded buffer with `try_send` and go on; when the buffer is full the span is dropped and
//! counted (`cardlane_telemetry_dropped_total`). Exports run on a thread of their own (the
//! exporter's HTTP client is a blocking one), and metrics on the SDK's periodic reader thread.
//! Spans carry reader ids, formats, outcomes and reason codes: never card data.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::SystemTime;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor};
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
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
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
        let thread = std::thread::Builder::new()
            .name("telemetry".into())
            .spawn(move || match Exporters::build(&cfg, attrs, m) {
                Ok(ex) => {
                    let _ = ready_tx.send(Ok(()));
                    ex.run(rx);
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
            dropped: Arc::new(AtomicU64::new(0)),
            metrics,
            thread: Some(thread),
        })
    }

    /// Hands a read's span to the exporter, never waiting: a full buffer drops it (counted).
    pub fn record(&self, span: ReadSpan) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(span) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.telemetry_dropped("span");
            }
        }
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
            .with_span_processor(SimpleSpanProcessor::new(spans))
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

    fn run(self, rx: Receiver<ReadSpan>) {
        let tracer = self.tracer.tracer("cardlane");
        // Ends when every sender is gone (shutdown).
        for r in rx {
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
        let _ = self.meter.shutdown();
        let _ = self.tracer.shutdown();
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
/// outcome on the same reader (`queued`, `saved`, `failed`), or is unreadable.
pub async fn follow(events: EventHub, telemetry: Arc<Telemetry>, mut stop: watch::Receiver<bool>) {
    /// Reads waiting for their outcome at most (a reader that vanished leaves one behind).
    const OPEN: usize = 256;
    let mut rx = events.subscribe();
    let mut open: HashMap<String, (SystemTime, Option<String>)> = HashMap::new();
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = stop.wait_for(|s| *s) => return,
        };
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let now = SystemTime::now();
        let (reader, outcome, code) = match ev {
            LaneEvent::Swipe {
                reader,
                format,
                error_code: None,
                ..
            } => {
                if open.len() >= OPEN {
                    open.clear();
                }
                open.insert(reader, (now, format));
                continue;
            }
            LaneEvent::SwipeUnreadable { reader, code } => (reader, "unreadable", Some(code)),
            LaneEvent::Queued {
                reader: Some(r), ..
            } => (r, "queued", None),
            LaneEvent::Saved {
                reader: Some(r), ..
            } => (r, "saved", None),
            LaneEvent::Failed {
                reader: Some(r),
                code,
                ..
            } => (r, "failed", Some(code)),
            _ => continue,
        };
        let (start, format) = match open.remove(&reader) {
            Some(o) => o,
            // Unreadable reads have no swipe event before them; a later outcome of a read
            // already told (saved after queued) is not another read.
            None if outcome == "unreadable" => (now, None),
            None => continue,
        };
        telemetry.record(ReadSpan {
            reader,
            outcome: outcome.to_string(),
            format,
            code,
            start,
            end: now,
        });
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
}
