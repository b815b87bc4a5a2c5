//! The agent's Prometheus metrics, kept in a [`prometheus`] registry and exposed in the text
//! format (version 0.0.4) for `GET /metrics`.
//!
//! The names, types, HELP texts and label sets are a contract with the scrapers (saved in
//! `fixtures/metrics/representative.prom`, checked by `tests/metrics_exposition.rs`). The
//! `prometheus` crate writes text 0.0.4 as scrapers got it before (counters keep their
//! `_total` names, no `# EOF`, bucket bounds as `le="1"`); it sorts families by name and labels
//! by label name, and a labelled family without samples yet is left out. Labels are reader ids,
//! formats, error codes and outcomes: never card data.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{MetricFamily, MetricType};
use prometheus::{
    Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::queue::UploaderHealth;

/// `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the gateway latency buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The registry; cheap to share behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    swipes: IntCounterVec,
    decode_errors: IntCounterVec,
    records: IntCounterVec,
    queue_depth: IntGauge,
    queue_oldest_age: Gauge,
    reader_connected: IntGaugeVec,
    gateway_latency: Histogram,
    unreadable: IntCounterVec,
    api_refused: IntCounterVec,
    /// Registered once `[telemetry]` export runs (or first drops something): what it dropped.
    telemetry_dropped: OnceLock<IntCounterVec>,
    uploader: Arc<UploaderCollector>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

// The names, help texts and label names below are fixed and valid, so building and
// registering cannot fail; `expect` documents that rather than handling input.
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, c: &C) {
    registry
        .register(Box::new(c.clone()))
        .expect("each metric registered once");
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let swipes = counter_vec(
            "cardlane_swipes_total",
            "Card frames decoded, by reader and format.",
            &["reader", "format"],
        );
        let decode_errors = counter_vec(
            "cardlane_decode_errors_total",
            "Reader frames that could not be decoded, by reason code.",
            &["code"],
        );
        let records = counter_vec(
            "cardlane_records_total",
            "Customer records by outcome.",
            &["outcome"],
        );
        let queue_depth =
            IntGauge::new("cardlane_queue_depth", "Records held in the durable queue.")
                .expect("valid metric definition");
        let queue_oldest_age = Gauge::new(
            "cardlane_queue_oldest_age_seconds",
            "Age of the oldest record held in the queue (0 when empty).",
        )
        .expect("valid metric definition");
        let reader_connected = IntGaugeVec::new(
            Opts::new(
                "cardlane_reader_connected",
                "1 when the reader is attached and open, else 0.",
            ),
            &["reader"],
        )
        .expect("valid metric definition");
        let gateway_latency = Histogram::with_opts(
            HistogramOpts::new(
                "cardlane_gateway_latency_seconds",
                "Gateway round-trip time of Customer requests.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        let unreadable = counter_vec(
            "cardlane_reads_unreadable_total",
            "Reads that could not be decoded, by reader and reason code.",
            &["reader", "code"],
        );
        let api_refused = counter_vec(
            "cardlane_api_refused_total",
            "Local API connections or event streams refused by a cap, by reason.",
            &["reason"],
        );
        let uploader = Arc::new(UploaderCollector::new());
        register(&registry, &swipes);
        register(&registry, &decode_errors);
        register(&registry, &records);
        register(&registry, &queue_depth);
        register(&registry, &queue_oldest_age);
        register(&registry, &reader_connected);
        register(&registry, &gateway_latency);
        register(&registry, &unreadable);
        register(&registry, &api_refused);
        register(&registry, &SharedUploader(uploader.clone()));
        Metrics {
            registry,
            swipes,
            decode_errors,
            records,
            queue_depth,
            queue_oldest_age,
            reader_connected,
            gateway_latency,
            unreadable,
            api_refused,
            telemetry_dropped: OnceLock::new(),
            uploader,
        }
    }

    /// A frame decoded on `reader` in `format` (`idtech-enhanced`, `magtek-hid`, …).
    pub fn swipe(&self, reader: &str, format: &str) {
        inc(&self.swipes, &[reader, format]);
    }

    /// A frame that did not decode, by reason code (`bad-lrc`, `truncated`, …).
    pub fn decode_error(&self, code: &str) {
        inc(&self.decode_errors, &[code]);
    }

    /// A record reached an outcome (`saved`, `queued`, `declined`, `rejected`, `failed`).
    pub fn record(&self, outcome: &str) {
        inc(&self.records, &[outcome]);
    }

    /// Records held in the queue and the age of the oldest (0 when empty).
    pub fn set_queue(&self, depth: u64, oldest_age: Duration) {
        self.queue_depth
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
        self.queue_oldest_age.set(oldest_age.as_secs_f64());
    }

    pub fn set_reader_connected(&self, reader: &str, connected: bool) {
        if let Ok(g) = self
            .reader_connected
            .get_metric_with_label_values(&[reader])
        {
            g.set(i64::from(connected));
        }
    }

    /// A read on `reader` that could not be decoded, by reason code (`bad-lrc`, …).
    pub fn read_unreadable(&self, reader: &str, code: &str) {
        inc(&self.unreadable, &[reader, code]);
    }

    /// The local API refused a connection or an event stream (`connection-cap`, `event-streams`).
    pub fn api_refused(&self, reason: &str) {
        inc(&self.api_refused, &[reason]);
    }

    /// Telemetry export runs: `cardlane_telemetry_dropped_total` is shown from now on.
    pub fn telemetry_enabled(&self) {
        // Touching the child shows `{kind="span"} 0` before anything is dropped.
        let _ = self
            .dropped_family()
            .get_metric_with_label_values(&["span"]);
    }

    /// Telemetry dropped an item (`span`) because its buffer was full.
    pub fn telemetry_dropped(&self, kind: &str) {
        inc(self.dropped_family(), &[kind]);
    }

    /// Telemetry missed `n` lane events (`event`): its subscriber fell behind a burst, so the
    /// reads those events belonged to tell no span.
    pub fn telemetry_missed_events(&self, n: u64) {
        if let Ok(c) = self
            .dropped_family()
            .get_metric_with_label_values(&["event"])
        {
            c.inc_by(n);
        }
    }

    fn dropped_family(&self) -> &IntCounterVec {
        self.telemetry_dropped.get_or_init(|| {
            let c = counter_vec(
                "cardlane_telemetry_dropped_total",
                "Telemetry items dropped, by kind: span (the exporter's buffer was full), event (lane events the span task fell behind on).",
                &["kind"],
            );
            register(&self.registry, &c);
            c
        })
    }

    /// The uploader whose state the exposition shows (`cardlane_uploader_*`).
    pub fn watch_uploader(&self, health: Arc<UploaderHealth>) {
        *lock(&self.uploader.health) = Some(health);
    }

    /// One gateway round trip.
    pub fn observe_gateway_latency(&self, latency: Duration) {
        self.gateway_latency.observe(latency.as_secs_f64());
    }

    /// Name and type of every family registered so far, samples or not (`gather` leaves out
    /// a labelled family until its first sample): the instruments telemetry declares.
    pub fn families(&self) -> Vec<(String, MetricType)> {
        let mut collectors: Vec<&dyn Collector> = vec![
            &self.swipes,
            &self.decode_errors,
            &self.records,
            &self.queue_depth,
            &self.queue_oldest_age,
            &self.reader_connected,
            &self.gateway_latency,
            &self.unreadable,
            &self.api_refused,
        ];
        if let Some(d) = self.telemetry_dropped.get() {
            collectors.push(d);
        }
        let uploader = SharedUploader(self.uploader.clone());
        collectors.push(&uploader);
        collectors
            .into_iter()
            .flat_map(|c| c.collect())
            .map(|f| (f.name().to_string(), f.get_field_type()))
            .collect()
    }

    /// Every family as the registry gathers it (families without samples left out), sorted by
    /// name: what `render` writes and what telemetry exports.
    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        // Encoding fails only on a family without samples or name, which `gather` never
        // returns; an empty page is still a valid answer.
        TextEncoder::new()
            .encode_to_string(&self.gather())
            .unwrap_or_default()
    }
}

fn inc(vec: &IntCounterVec, labels: &[&str]) {
    // Fails only on a wrong number of label values, which the callers fix at compile time.
    if let Ok(c) = vec.get_metric_with_label_values(labels) {
        c.inc();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The uploader's own counters and state, read when the registry is gathered: the uploader
/// keeps them (health, `/v1/health`), this only shows them, once an uploader is watched.
struct UploaderCollector {
    health: Mutex<Option<Arc<UploaderHealth>>>,
    up: IntGauge,
    storage_failing: IntGauge,
    restarts: IntCounter,
    record_errors: IntCounter,
    storage_errors: IntCounter,
    descs: Vec<Desc>,
}

impl UploaderCollector {
    fn new() -> UploaderCollector {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let up = gauge(
            "cardlane_uploader_up",
            "1 while the uploader loop runs, else 0.",
        );
        let storage_failing = gauge(
            "cardlane_uploader_storage_failing",
            "1 while the uploader backs off from a queue storage failure, else 0.",
        );
        let restarts = counter(
            "cardlane_uploader_restarts_total",
            "Times the uploader loop was restarted after ending unexpectedly.",
        );
        let record_errors = counter(
            "cardlane_uploader_record_errors_total",
            "Records whose gateway answer could not be written to the queue.",
        );
        let storage_errors = counter(
            "cardlane_uploader_storage_errors_total",
            "Queue storage failures the uploader backed off from.",
        );
        let descs = [
            up.desc(),
            storage_failing.desc(),
            restarts.desc(),
            record_errors.desc(),
            storage_errors.desc(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        UploaderCollector {
            health: Mutex::new(None),
            up,
            storage_failing,
            restarts,
            record_errors,
            storage_errors,
            descs,
        }
    }
}

/// The registry owns its collectors; this handle lets `Metrics` keep the same one.
#[derive(Clone)]
struct SharedUploader(Arc<UploaderCollector>);

impl Collector for SharedUploader {
    fn desc(&self) -> Vec<&Desc> {
        self.0.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let u = &self.0;
        // Held to the end: two gathers at once (a scrape and telemetry) must not interleave
        // the counters' reset and add below.
        let health = lock(&u.health);
        let Some(health) = health.as_ref() else {
            return Vec::new();
        };
        let st = health.status();
        u.up.set(i64::from(st.alive));
        u.storage_failing
            .set(i64::from(st.storage_failing.is_some()));
        // Counters mirror totals the uploader keeps: set, as a counter can be, by reset + add.
        for (c, v) in [
            (&u.restarts, st.restarts),
            (&u.record_errors, st.record_errors),
            (&u.storage_errors, st.storage_errors),
        ] {
            c.reset();
            c.inc_by(v);
        }
        let mut out = u.up.collect();
        out.extend(u.storage_failing.collect());
        out.extend(u.restarts.collect());
        out.extend(u.record_errors.collect());
        out.extend(u.storage_errors.collect());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A sample as read back by an independent parser of the exposition format.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    /// Parses exposition text; returns (TYPE per family, HELP per family, samples).
    #[allow(clippy::type_complexity)]
    fn parse(
        text: &str,
    ) -> (
        BTreeMap<String, String>,
        BTreeMap<String, String>,
        Vec<Sample>,
    ) {
        let mut types = BTreeMap::new();
        let mut helps = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (n, t) = rest.split_once(' ').unwrap();
                assert!(
                    types.insert(n.to_string(), t.to_string()).is_none(),
                    "TYPE twice"
                );
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (n, h) = rest.split_once(' ').unwrap();
                helps.insert(n.to_string(), h.to_string());
                continue;
            }
            assert!(!line.starts_with('#'), "{line}");
            let name_end = line.find(['{', ' ']).unwrap();
            let name = &line[..name_end];
            let mut labels = Vec::new();
            let mut rest = &line[name_end..];
            if let Some(body) = rest.strip_prefix('{') {
                let mut chars = body.char_indices();
                loop {
                    let (start, c) = chars.next().unwrap();
                    if c == '}' {
                        rest = &body[start + 1..];
                        break;
                    }
                    if c == ',' {
                        continue;
                    }
                    let eq = body[start..].find('=').unwrap() + start;
                    let key = body[start..eq].to_string();
                    while chars.next().unwrap().0 < eq + 1 {}
                    let mut val = String::new();
                    loop {
                        match chars.next().unwrap().1 {
                            '"' => break,
                            '\\' => match chars.next().unwrap().1 {
                                'n' => val.push('\n'),
                                other => val.push(other),
                            },
                            c => val.push(c),
                        }
                    }
                    labels.push((key, val));
                }
            }
            let value = match rest.trim() {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap(),
            };
            samples.push(Sample {
                name: name.to_string(),
                labels,
                value,
            });
        }
        (types, helps, samples)
    }

    fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.iter().any(|(k2, v2)| k2 == k && v2 == v))
            })
            .map(|s| s.value)
    }

    #[test]
    fn empty_registry_shows_its_unlabelled_families() {
        let (types, helps, samples) = parse(&Metrics::new().render());
        // A labelled family has no sample before its first label set, and the registry leaves
        // a family without samples out; these have theirs from the start.
        let want = [
            ("cardlane_queue_depth", "gauge"),
            ("cardlane_queue_oldest_age_seconds", "gauge"),
            ("cardlane_gateway_latency_seconds", "histogram"),
        ];
        for (name, kind) in want {
            assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
            assert!(helps.contains_key(name));
        }
        assert_eq!(types.len(), want.len());
        assert_eq!(value(&samples, "cardlane_queue_depth", &[]), Some(0.0));
        assert_eq!(
            value(&samples, "cardlane_gateway_latency_seconds_count", &[]),
            Some(0.0)
        );
        assert_eq!(
            value(
                &samples,
                "cardlane_gateway_latency_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(0.0)
        );
        assert!(samples.iter().all(|s| s.name.starts_with("cardlane_")));
    }

    #[test]
    fn every_family_is_declared_for_telemetry() {
        let m = Metrics::new();
        let names: Vec<String> = m.families().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 9, "{names:?}");
        m.telemetry_enabled();
        m.watch_uploader(std::sync::Arc::new(crate::queue::UploaderHealth::default()));
        assert_eq!(m.families().len(), 9 + 1 + 5);
        let (types, _, s) = parse(&m.render());
        assert_eq!(
            types
                .get("cardlane_telemetry_dropped_total")
                .map(String::as_str),
            Some("counter")
        );
        assert_eq!(
            value(&s, "cardlane_telemetry_dropped_total", &[("kind", "span")]),
            Some(0.0)
        );
    }

    #[test]
    fn counters_and_gauges() {
        let m = Metrics::new();
        m.swipe("front", "idtech-enhanced");
        m.swipe("front", "idtech-enhanced");
        m.swipe("back", "magtek-hid");
        m.decode_error("bad-lrc");
        m.record("saved");
        m.record("saved");
        m.record("queued");
        m.set_queue(3, Duration::from_millis(12_500));
        m.set_reader_connected("front", true);
        m.set_reader_connected("back", false);
        let (_, _, s) = parse(&m.render());
        assert_eq!(
            value(
                &s,
                "cardlane_swipes_total",
                &[("reader", "front"), ("format", "idtech-enhanced")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &s,
                "cardlane_swipes_total",
                &[("reader", "back"), ("format", "magtek-hid")]
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "cardlane_decode_errors_total", &[("code", "bad-lrc")]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "cardlane_records_total", &[("outcome", "saved")]),
            Some(2.0)
        );
        assert_eq!(
            value(&s, "cardlane_records_total", &[("outcome", "queued")]),
            Some(1.0)
        );
        assert_eq!(value(&s, "cardlane_queue_depth", &[]), Some(3.0));
        assert_eq!(
            value(&s, "cardlane_queue_oldest_age_seconds", &[]),
            Some(12.5)
        );
        assert_eq!(
            value(&s, "cardlane_reader_connected", &[("reader", "front")]),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "cardlane_reader_connected", &[("reader", "back")]),
            Some(0.0)
        );
    }

    #[test]
    fn unreadable_reads_and_uploader_state() {
        let m = Metrics::new();
        m.read_unreadable("front", "bad-lrc");
        m.read_unreadable("front", "bad-lrc");
        m.read_unreadable("back", "truncated");
        m.watch_uploader(std::sync::Arc::new(crate::queue::UploaderHealth::default()));
        let (types, _, samples) = parse(&m.render());
        let unreadable = "cardlane_reads_unreadable_total";
        assert_eq!(
            value(
                &samples,
                unreadable,
                &[("reader", "front"), ("code", "bad-lrc")]
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &samples,
                unreadable,
                &[("reader", "back"), ("code", "truncated")]
            ),
            Some(1.0)
        );
        // A loop never started is not alive.
        assert_eq!(value(&samples, "cardlane_uploader_up", &[]), Some(0.0));
        assert_eq!(
            types
                .get("cardlane_uploader_restarts_total")
                .map(String::as_str),
            Some("counter")
        );
        assert_eq!(
            value(&samples, "cardlane_uploader_record_errors_total", &[]),
            Some(0.0)
        );
    }

    #[test]
    fn histogram_is_cumulative_with_sum_and_count() {
        let m = Metrics::new();
        // 0.03 → le 0.05; 0.1 → le 0.1 (bounds are inclusive); 0.7 → le 1; 100 → +Inf only.
        for ms in [30, 100, 700, 100_000] {
            m.observe_gateway_latency(Duration::from_millis(ms));
        }
        let (_, _, s) = parse(&m.render());
        let bucket = |le: &str| value(&s, "cardlane_gateway_latency_seconds_bucket", &[("le", le)]);
        assert_eq!(bucket("0.05"), Some(1.0));
        assert_eq!(bucket("0.1"), Some(2.0));
        assert_eq!(bucket("0.25"), Some(2.0));
        assert_eq!(bucket("0.5"), Some(2.0));
        assert_eq!(bucket("1"), Some(3.0));
        assert_eq!(bucket("60"), Some(3.0));
        assert_eq!(bucket("+Inf"), Some(4.0));
        let sum = value(&s, "cardlane_gateway_latency_seconds_sum", &[]).unwrap();
        assert!((sum - 100.83).abs() < 1e-9, "{sum}");
        assert_eq!(
            value(&s, "cardlane_gateway_latency_seconds_count", &[]),
            Some(4.0)
        );
        // Buckets never decrease, in the order written.
        let seq: Vec<f64> = s
            .iter()
            .filter(|x| x.name == "cardlane_gateway_latency_seconds_bucket")
            .map(|x| x.value)
            .collect();
        assert_eq!(seq.len(), LATENCY_BUCKETS.len() + 1);
        assert!(seq.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.swipe("serial:/dev/tty\"x\\y\nz", "tracks");
        let text = m.render();
        assert!(
            text.contains(r#"reader="serial:/dev/tty\"x\\y\nz""#),
            "{text}"
        );
        let (_, _, s) = parse(&text);
        assert_eq!(
            value(
                &s,
                "cardlane_swipes_total",
                &[("reader", "serial:/dev/tty\"x\\y\nz"), ("format", "tracks")]
            ),
            Some(1.0)
        );
        // Every line is one sample or comment: the newline did not break the line.
        assert!(text
            .lines()
            .all(|l| l.starts_with('#') || l.starts_with("cardlane_")));
    }

    proptest::proptest! {
        #[test]
        fn any_label_value_round_trips(reader in "\\PC{0,40}", format in "[a-z\\-\"\\\\\n]{0,20}") {
            let m = Metrics::new();
            m.swipe(&reader, &format);
            let (_, _, s) = parse(&m.render());
            proptest::prop_assert_eq!(
                value(&s, "cardlane_swipes_total", &[("reader", &reader), ("format", &format)]),
                Some(1.0)
            );
        }
    }
}
