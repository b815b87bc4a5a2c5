//! The `/metrics` contract: the exposition of a representative agent state, parsed into
//! families (name, type, HELP, samples with their labels and values), equals the one saved in
//! `fixtures/metrics/representative.prom` by the hand-written renderer that served `/metrics`
//! before the exposition moved to a metrics library. Order of families, of samples and of
//! labels inside a sample is not part of the contract (Prometheus reads label sets); everything
//! else is.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cardlane::agent::metrics::{Metrics, CONTENT_TYPE};
use cardlane::queue::UploaderHealth;

/// One family as a scraper reads it.
#[derive(Debug, Default, PartialEq)]
struct Family {
    kind: String,
    help: String,
    /// (sample name, label set sorted by name) → value text parsed as f64.
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

/// A parser of the text format 0.0.4, written from the format's description: `# HELP name text`
/// and `# TYPE name kind` lines open a family; a sample belongs to the family whose name it
/// equals, or, for histograms, whose name it extends with `_bucket`, `_sum` or `_count`.
fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let help = unescape(help, false);
            families.entry(name.to_string()).or_default().help = help;
            current = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line without kind");
            let f = families.entry(name.to_string()).or_default();
            assert!(f.kind.is_empty(), "line {n}: TYPE twice for {name}");
            f.kind = kind.to_string();
            current = Some(name.to_string());
            continue;
        }
        assert!(
            !line.starts_with('#'),
            "line {n}: a comment the text format does not have: {line}"
        );
        if line.is_empty() {
            continue;
        }
        let (name, labels, value) = sample(line).unwrap_or_else(|| panic!("line {n}: {line}"));
        let family = current
            .as_deref()
            .filter(|f| {
                name == *f
                    || ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name.strip_suffix(s) == Some(f))
            })
            .unwrap_or_else(|| panic!("line {n}: sample {name} outside its family"));
        let mut labels = labels;
        labels.sort();
        let f = families.get_mut(family).expect("family");
        assert!(
            f.samples.insert((name, labels), value).is_none(),
            "line {n}: sample twice"
        );
    }
    families
}

/// `name{a="x",b="y"} value` → parts; label values unescaped.
#[allow(clippy::type_complexity)]
fn sample(line: &str) -> Option<(String, Vec<(String, String)>, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut body) = rest.strip_prefix('{') {
        loop {
            body = body.strip_prefix(',').unwrap_or(body);
            if let Some(after) = body.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = body.split_once("=\"")?;
            // The value ends at the first quote not escaped by a backslash.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in after.char_indices() {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end?;
            labels.push((key.to_string(), unescape(&after[..end], true)));
            body = &after[end + 1..];
        }
    }
    let value = match rest.trim() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some((name, labels, value))
}

/// Undoes `\\`, `\n` and (in label values) `\"`.
fn unescape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some('"') if quotes => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Every kind of metric the agent keeps, each with more than one sample where it has labels,
/// a label value that needs escaping, histogram observations below, on and above bucket
/// bounds, and the families that only show once telemetry or the uploader is there.
fn representative() -> Metrics {
    let m = Metrics::new();
    for _ in 0..3 {
        m.swipe("front", "idtech-enhanced");
    }
    m.swipe("back", "magtek-hid");
    m.swipe("serial:/dev/tty\"x\\y\nz", "tracks");
    m.decode_error("bad-lrc");
    m.decode_error("bad-lrc");
    m.decode_error("truncated");
    for outcome in ["saved", "saved", "saved", "queued", "declined", "failed"] {
        m.record(outcome);
    }
    m.set_queue(7, Duration::from_millis(12_500));
    m.set_reader_connected("front", true);
    m.set_reader_connected("back", false);
    // 30 ms, 100 ms (on a bound: inclusive), 700 ms, 2.5 s (on a bound), 100 s (+Inf only).
    for ms in [30, 100, 100, 700, 2_500, 100_000] {
        m.observe_gateway_latency(Duration::from_millis(ms));
    }
    m.read_unreadable("front", "bad-lrc");
    m.read_unreadable("front", "bad-lrc");
    m.read_unreadable("back", "no-track");
    m.api_refused("connection-cap");
    m.api_refused("event-streams");
    m.api_refused("event-streams");
    m.telemetry_enabled();
    m.telemetry_dropped("span");
    m.telemetry_dropped("span");
    m.watch_uploader(Arc::new(UploaderHealth::default()));
    m
}

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/metrics/representative.prom"
);

#[test]
fn exposition_keeps_the_saved_contract() {
    let want = parse(&std::fs::read_to_string(FIXTURE).expect("fixture"));
    let got = parse(&representative().render());
    // Same family names first, for a readable failure.
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (name, w) in &want {
        let g = &got[name];
        assert_eq!(g.kind, w.kind, "{name}: type");
        assert_eq!(g.help, w.help, "{name}: HELP");
        assert_eq!(
            g.samples.keys().collect::<Vec<_>>(),
            w.samples.keys().collect::<Vec<_>>(),
            "{name}: samples and label sets"
        );
        for (key, wv) in &w.samples {
            let gv = g.samples[key];
            assert!(
                gv == *wv || (gv - wv).abs() <= 1e-12 * wv.abs(),
                "{name} {key:?}: {gv} != {wv}"
            );
        }
    }
}

#[test]
fn the_fixture_is_what_it_claims() {
    // Figures counted by hand from `representative()`, so the fixture itself is checked too.
    let f = parse(&std::fs::read_to_string(FIXTURE).expect("fixture"));
    let v = |family: &str, name: &str, labels: &[(&str, &str)]| {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        f[family].samples.get(&(name.to_string(), l)).copied()
    };
    let swipes = "cardlane_swipes_total";
    assert_eq!(f[swipes].kind, "counter");
    assert_eq!(
        v(
            swipes,
            swipes,
            &[("reader", "front"), ("format", "idtech-enhanced")]
        ),
        Some(3.0)
    );
    assert_eq!(
        v(
            swipes,
            swipes,
            &[("reader", "serial:/dev/tty\"x\\y\nz"), ("format", "tracks")]
        ),
        Some(1.0)
    );
    let lat = "cardlane_gateway_latency_seconds";
    assert_eq!(f[lat].kind, "histogram");
    let bucket = |le: &str| {
        v(
            lat,
            "cardlane_gateway_latency_seconds_bucket",
            &[("le", le)],
        )
    };
    // Cumulative: 0.03 | 0.1 0.1 | 0.7 | 2.5 | 100.
    let want = [
        ("0.05", 1.0),
        ("0.1", 3.0),
        ("0.25", 3.0),
        ("0.5", 3.0),
        ("1", 4.0),
        ("2.5", 5.0),
        ("5", 5.0),
        ("10", 5.0),
        ("30", 5.0),
        ("60", 5.0),
        ("+Inf", 6.0),
    ];
    for (le, n) in want {
        assert_eq!(bucket(le), Some(n), "le={le}");
    }
    assert_eq!(f[lat].samples.len(), want.len() + 2);
    assert_eq!(
        v(lat, "cardlane_gateway_latency_seconds_count", &[]),
        Some(6.0)
    );
    let sum = v(lat, "cardlane_gateway_latency_seconds_sum", &[]).unwrap();
    assert!((sum - 103.43).abs() < 1e-9, "{sum}");
    assert_eq!(
        v(
            "cardlane_queue_oldest_age_seconds",
            "cardlane_queue_oldest_age_seconds",
            &[]
        ),
        Some(12.5)
    );
    assert_eq!(
        v(
            "cardlane_telemetry_dropped_total",
            "cardlane_telemetry_dropped_total",
            &[("kind", "span")]
        ),
        Some(2.0)
    );
    assert_eq!(f["cardlane_uploader_restarts_total"].kind, "counter");
    assert_eq!(f["cardlane_uploader_up"].kind, "gauge");
    assert_eq!(f.len(), 15);
}

#[test]
fn scrapers_get_the_text_format() {
    // What `/metrics` answered with before the switch: text format 0.0.4, not OpenMetrics.
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    let text = representative().render();
    assert!(!text.contains("# EOF"));
    assert!(!text.contains("# UNIT"));
    assert!(text.ends_with('\n'));
}
