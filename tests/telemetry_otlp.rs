//! `[telemetry]`: `cardlane run` with a wedge reader on a PTY sends a span per read and its
//! metrics over OTLP/HTTP to a small receiver here (protobuf decoded with the OpenTelemetry
//! protocol's own message types), with the lane, store and instance as resource attributes.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::metric;
use prost::Message;
use serialport::SerialPort;

mod common;
use common::{Lines, Reaper, WAIT};

const PAN: &str = "4111111111111111";
const SWIPE: &str =
    "%B4111111111111111^DOE/JANE^2912101000000000000?;4111111111111111=29121010000000000000?\r";

enum Got {
    Traces(Vec<u8>),
    Metrics(Vec<u8>),
}

/// The receiver: answers 200 with an empty (valid) protobuf response, hands the bodies over.
fn receiver(rt: &tokio::runtime::Runtime) -> (String, mpsc::Receiver<Got>) {
    let (tx, rx) = mpsc::channel();
    let t2 = tx.clone();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            post(move |b: Bytes| async move {
                let _ = tx.send(Got::Traces(b.to_vec()));
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        )
        .route(
            "/v1/metrics",
            post(move |b: Bytes| async move {
                let _ = t2.send(Got::Metrics(b.to_vec()));
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }),
        );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), rx)
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        })
}

fn lane_resource(attrs: &[KeyValue]) {
    assert_eq!(attr(attrs, "service.name"), Some("cardlane"));
    assert_eq!(attr(attrs, "service.instance.id"), Some("store-12-lane-3"));
    assert_eq!(attr(attrs, "cardlane.lane"), Some("3"));
    assert_eq!(attr(attrs, "cardlane.store"), Some("12"));
    assert_eq!(attr(attrs, "cardlane.readers"), Some("front"));
}

#[test]
fn spans_and_metrics_reach_an_otlp_receiver() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (endpoint, got) = receiver(&rt);
    let dir = tempfile::tempdir().unwrap();
    let (mut master, slave) = serialport::TTYPort::pair().expect("openpty");
    let pts = slave.name().unwrap();
    drop(slave);
    let config = dir.path().join("cardlane.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nbase_url = \"http://127.0.0.1:9\"\n[queue]\npath = \"{q}\"\n\
             [api]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{t}\"\n\
             [[readers]]\nid = \"front\"\ndevice = \"serial:{pts}@9600\"\n\
             profile = \"generic-keyboard-wedge\"\n[lane]\nallow_clear_text = true\n\
             [devices]\nhotplug = false\n\
             [telemetry]\nenabled = true\nendpoint = \"{endpoint}\"\n\
             instance_id = \"store-12-lane-3\"\nlane = \"3\"\nstore = \"12\"\n\
             metrics_interval = \"200ms\"\n",
            q = dir.path().join("queue.db").display(),
            t = dir.path().join("api-token").display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cardlane"))
        .args(["run", "--config"])
        .arg(&config)
        .env("CARDLANE_API_KEY", "k")
        .env("CARDLANE_LOG", "warn")
        .env_remove("CARDLANE_QUEUE_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = Lines::new(child.stdout.take().unwrap());
    let _agent = Reaper(child);
    out.until("the ready line", |l| l.starts_with("ready: api on "));

    // Swiped until a read span arrives (the reader may still be opening at the first one).
    let deadline = Instant::now() + WAIT;
    let mut last_swipe = Instant::now() - Duration::from_secs(10);
    let (mut span_seen, mut metric_seen) = (false, false);
    while !(span_seen && metric_seen) {
        assert!(
            Instant::now() < deadline,
            "within {WAIT:?}: span {span_seen}, metric {metric_seen}"
        );
        if !span_seen && last_swipe.elapsed() > Duration::from_secs(2) {
            // Until the agent has the port open, the write fails; the loop tries again.
            let _ = master.write_all(SWIPE.as_bytes());
            let _ = master.flush();
            last_swipe = Instant::now();
        }
        let Ok(msg) = got.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        let body = match &msg {
            Got::Traces(b) | Got::Metrics(b) => b,
        };
        assert!(
            !body.windows(PAN.len()).any(|w| w == PAN.as_bytes()),
            "card data in an OTLP payload"
        );
        match msg {
            Got::Traces(b) => {
                let req = ExportTraceServiceRequest::decode(b.as_slice()).unwrap();
                for rs in &req.resource_spans {
                    lane_resource(&rs.resource.as_ref().unwrap().attributes);
                    for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
                        assert_eq!(span.name, "read");
                        assert_eq!(attr(&span.attributes, "cardlane.reader"), Some("front"));
                        // The gateway is down: the read is kept in the queue.
                        assert_eq!(attr(&span.attributes, "cardlane.outcome"), Some("queued"));
                        assert_eq!(attr(&span.attributes, "cardlane.format"), Some("tracks"));
                        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
                        span_seen = true;
                    }
                }
            }
            Got::Metrics(b) => {
                let req = ExportMetricsServiceRequest::decode(b.as_slice()).unwrap();
                for rm in &req.resource_metrics {
                    lane_resource(&rm.resource.as_ref().unwrap().attributes);
                    for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                        if m.name != "cardlane_swipes_total" {
                            continue;
                        }
                        let Some(metric::Data::Sum(sum)) = &m.data else {
                            panic!("{} is not a sum", m.name)
                        };
                        assert!(sum.is_monotonic);
                        for p in &sum.data_points {
                            assert_eq!(attr(&p.attributes, "reader"), Some("front"));
                            assert_eq!(attr(&p.attributes, "format"), Some("tracks"));
                            metric_seen = true;
                        }
                    }
                }
            }
        }
    }
}
