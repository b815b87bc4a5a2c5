//! A small Prometheus registry for the agent's fixed set of metrics, rendered in the text
//! exposition format (version 0.0.4) for `GET /metrics`.
//!
//! Hand-written on purpose: seven metrics do not justify a dependency. Labels are reader ids,
//! formats, error codes and outcomes: never card data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// `Content-Type` of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the gateway latency buckets; `+Inf` is implied.
pub const LATENCY_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Default)]
struct Inner {
    swipes: BTreeMap<(String, String), u64>,
    decode_errors: BTreeMap<String, u64>,
    records: BTreeMap<String, u64>,
    queue_depth: u64,
    queue_oldest_age_s: f64,
    reader_connected: BTreeMap<String, bool>,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    latency_buckets: [u64; LATENCY_BUCKETS.len() + 1],
    latency_sum: f64,
    latency_count: u64,
    /// Reads that could not be decoded, by reader and reason code.
    unreadable: BTreeMap<(String, String), u64>,
    uploader: Option<std::sync::Arc<crate::queue::UploaderHealth>>,
    /// Local API connections or streams refused by a cap, by reason.
    api_refused: BTreeMap<String, u64>,
    /// `Some` once `[telemetry]` export runs: what it dropped, by kind.
    telemetry_dropped: Option<BTreeMap<String, u64>>,
}

/// The registry; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A frame decoded on `reader` in `format` (`idtech-enhanced`, `magtek-hid`, …).
    pub fn swipe(&self, reader: &str, format: &str) {
        let mut i = self.lock();
        let n = i
            .swipes
            .entry((reader.to_string(), format.to_string()))
            .or_default();
        *n = n.saturating_add(1);
    }

    /// A frame that did not decode, by reason code (`bad-lrc`, `truncated`, …).
    pub fn decode_error(&self, code: &str) {
        let mut i = self.lock();
        let n = i.decode_errors.entry(code.to_string()).or_default();
        *n = n.saturating_add(1);
    }

    /// A record reached an outcome (`saved`, `queued`, `declined`, `rejected`, `failed`).
    pub fn record(&self, outcome: &str) {
        let mut i = self.lock();
        let n = i.records.entry(outcome.to_string()).or_default();
        *n = n.saturating_add(1);
    }

    /// Records held in the queue and the age of the oldest (0 when empty).
    pub fn set_queue(&self, depth: u64, oldest_age: Duration) {
        let mut i = self.lock();
        i.queue_depth = depth;
        i.queue_oldest_age_s = oldest_age.as_secs_f64();
    }

    pub fn set_reader_connected(&self, reader: &str, connected: bool) {
        self.lock()
            .reader_connected
            .insert(reader.to_string(), connected);
    }

    /// A read on `reader` that could not be decoded, by reason code (`bad-lrc`, …).
    pub fn read_unreadable(&self, reader: &str, code: &str) {
        let mut i = self.lock();
        let n = i
            .unreadable
            .entry((reader.to_string(), code.to_string()))
            .or_default();
        *n = n.saturating_add(1);
    }

    /// The local API refused a connection or an event stream (`connection-cap`, `event-streams`).
    pub fn api_refused(&self, reason: &str) {
        let mut i = self.lock();
        let n = i.api_refused.entry(reason.to_string()).or_default();
        *n = n.saturating_add(1);
    }

    /// Telemetry export runs: `cardlane_telemetry_dropped_total` is shown from now on.
    pub fn telemetry_enabled(&self) {
        let mut i = self.lock();
        let d = i.telemetry_dropped.get_or_insert_with(BTreeMap::new);
        d.entry("span".to_string()).or_default();
    }

    /// Telemetry dropped an item (`span`) because its buffer was full.
    pub fn telemetry_dropped(&self, kind: &str) {
        let mut i = self.lock();
        let n = i
            .telemetry_dropped
            .get_or_insert_with(BTreeMap::new)
            .entry(kind.to_string())
            .or_default();
        *n = n.saturating_add(1);
    }

    /// The uploader whose state `render` shows (`cardlane_uploader_*`).
    pub fn watch_uploader(&self, health: std::sync::Arc<crate::queue::UploaderHealth>) {
        self.lock().uploader = Some(health);
    }

    /// One gateway round trip.
    pub fn observe_gateway_latency(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let mut i = self.lock();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(LATENCY_BUCKETS.len());
        if let Some(n) = i.latency_buckets.get_mut(slot) {
            *n = n.saturating_add(1);
        }
        i.latency_sum += secs;
        i.latency_count = i.latency_count.saturating_add(1);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let i = self.lock();
        let mut out = String::with_capacity(2048);
        family(
            &mut out,
            "cardlane_swipes_total",
            "counter",
            "Card frames decoded, by reader and format.",
        );
        for ((reader, format), n) in &i.swipes {
            sample(
                &mut out,
                "cardlane_swipes_total",
                &[("reader", reader), ("format", format)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "cardlane_decode_errors_total",
            "counter",
            "Reader frames that could not be decoded, by reason code.",
        );
        for (code, n) in &i.decode_errors {
            sample(
                &mut out,
                "cardlane_decode_errors_total",
                &[("code", code)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "cardlane_records_total",
            "counter",
            "Customer records by outcome.",
        );
        for (outcome, n) in &i.records {
            sample(
                &mut out,
                "cardlane_records_total",
                &[("outcome", outcome)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "cardlane_queue_depth",
            "gauge",
            "Records held in the durable queue.",
        );
        sample(&mut out, "cardlane_queue_depth", &[], i.queue_depth as f64);
        family(
            &mut out,
            "cardlane_queue_oldest_age_seconds",
            "gauge",
            "Age of the oldest record held in the queue (0 when empty).",
        );
        sample(
            &mut out,
            "cardlane_queue_oldest_age_seconds",
            &[],
            i.queue_oldest_age_s,
        );
        family(
            &mut out,
            "cardlane_reader_connected",
            "gauge",
            "1 when the reader is attached and open, else 0.",
        );
        for (reader, up) in &i.reader_connected {
            sample(
                &mut out,
                "cardlane_reader_connected",
                &[("reader", reader)],
                if *up { 1.0 } else { 0.0 },
            );
        }
        family(
            &mut out,
            "cardlane_gateway_latency_seconds",
            "histogram",
            "Gateway round-trip time of Customer requests.",
        );
        let mut cumulative = 0u64;
        for (slot, n) in i.latency_buckets.iter().enumerate() {
            cumulative = cumulative.saturating_add(*n);
            let le = LATENCY_BUCKETS
                .get(slot)
                .map_or_else(|| "+Inf".to_string(), |b| number(*b));
            sample(
                &mut out,
                "cardlane_gateway_latency_seconds_bucket",
                &[("le", &le)],
                cumulative as f64,
            );
        }
        sample(
            &mut out,
            "cardlane_gateway_latency_seconds_sum",
            &[],
            i.latency_sum,
        );
        sample(
            &mut out,
            "cardlane_gateway_latency_seconds_count",
            &[],
            i.latency_count as f64,
        );
        family(
            &mut out,
            "cardlane_reads_unreadable_total",
            "counter",
            "Reads that could not be decoded, by reader and reason code.",
        );
        for ((reader, code), n) in &i.unreadable {
            sample(
                &mut out,
                "cardlane_reads_unreadable_total",
                &[("reader", reader), ("code", code)],
                *n as f64,
            );
        }
        family(
            &mut out,
            "cardlane_api_refused_total",
            "counter",
            "Local API connections or event streams refused by a cap, by reason.",
        );
        for (reason, n) in &i.api_refused {
            sample(
                &mut out,
                "cardlane_api_refused_total",
                &[("reason", reason)],
                *n as f64,
            );
        }
        if let Some(dropped) = &i.telemetry_dropped {
            family(
                &mut out,
                "cardlane_telemetry_dropped_total",
                "counter",
                "Telemetry items dropped because the exporter's buffer was full, by kind.",
            );
            for (kind, n) in dropped {
                sample(
                    &mut out,
                    "cardlane_telemetry_dropped_total",
                    &[("kind", kind)],
                    *n as f64,
                );
            }
        }
        if let Some(u) = &i.uploader {
            let st = u.status();
            let gauges = [
                (
                    "cardlane_uploader_up",
                    "gauge",
                    "1 while the uploader loop runs, else 0.",
                    u64::from(st.alive),
                ),
                (
                    "cardlane_uploader_storage_failing",
                    "gauge",
                    "1 while the uploader backs off from a queue storage failure, else 0.",
                    u64::from(st.storage_failing.is_some()),
                ),
                (
                    "cardlane_uploader_restarts_total",
                    "counter",
                    "Times the uploader loop was restarted after ending unexpectedly.",
                    st.restarts,
                ),
                (
                    "cardlane_uploader_record_errors_total",
                    "counter",
                    "Records whose gateway answer could not be written to the queue.",
                    st.record_errors,
                ),
                (
                    "cardlane_uploader_storage_errors_total",
                    "counter",
                    "Queue storage failures the uploader backed off from.",
                    st.storage_errors,
                ),
            ];
            for (name, kind, help, v) in gauges {
                family(&mut out, name, kind, help);
                sample(&mut out, name, &[], v as f64);
            }
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (n, (key, val)) in labels.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            let _ = write!(out, "{key}=\"{}\"", escape_label(val));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Prometheus float text: `+Inf`, `-Inf`, `NaN`, else the shortest decimal form.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text escapes backslash and line feed only.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn empty_registry_declares_every_family() {
        let (types, helps, samples) = parse(&Metrics::new().render());
        let want = [
            ("cardlane_swipes_total", "counter"),
            ("cardlane_decode_errors_total", "counter"),
            ("cardlane_records_total", "counter"),
            ("cardlane_queue_depth", "gauge"),
            ("cardlane_queue_oldest_age_seconds", "gauge"),
            ("cardlane_reader_connected", "gauge"),
            ("cardlane_gateway_latency_seconds", "histogram"),
            ("cardlane_reads_unreadable_total", "counter"),
            ("cardlane_api_refused_total", "counter"),
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

    #[test]
    fn numbers() {
        assert_eq!(number(1.0), "1");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }
}
