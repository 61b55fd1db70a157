use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::{AnyValue, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use authwatch_core::{semconv, ConsumeError, Signal};
use authwatch_testkit::trace_signal;

use super::*;
use crate::helper::tests::fixtures::{config_errors, settings};

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("console");
}

#[test]
fn config_fields_and_errors() {
    let c: Config = authwatch_core::registry::decode_config(serde_json::json!({
        "summary_interval": "30s", "window": "5m"
    }))
    .unwrap();
    assert_eq!(
        c,
        Config {
            summary_interval: Duration::from_secs(30),
            window: "5m".into(),
        }
    );
    let d = Config::default();
    assert_eq!(d.summary_interval, Duration::from_secs(60));
    assert_eq!(d.window, "1m");
    assert!(config_errors::<Config>(serde_json::json!({ "summary_interval": "0s" })).is_empty());
    assert_eq!(
        config_errors::<Config>(serde_json::json!({ "summary_interval": "10ms" })),
        vec!["summary_interval: must be at least `1s`, or `0s` to print no summaries"]
    );
    assert_eq!(
        config_errors::<Config>(serde_json::json!({ "window": "five" })),
        vec!["window: `five` is not a window; write one of the `error_rate` connector's `windows`, e.g. `1m`"]
    );
    assert_eq!(
        config_errors::<Config>(serde_json::json!({ "interval": "1m" })),
        vec!["interval: unknown field `interval`, expected `summary_interval` or `window`"]
    );
}

// === harness ===

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn start(config: &Config) -> (Built, Buffer, Settings) {
    let buf = Buffer::default();
    let s = settings("console");
    let built = build_with(
        config,
        s.clone(),
        Arc::new(Mutex::new(Box::new(buf.clone()))),
    );
    (built, buf, s)
}

fn kv(k: &str, v: Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: &str) -> Value {
    Value::StringValue(v.into())
}

fn point(dep: &str, source: &str, window: &str, v: number_data_point::Value) -> NumberDataPoint {
    NumberDataPoint {
        attributes: vec![
            kv(semconv::DEPENDENCY, s(dep)),
            kv(semconv::SOURCE, s(source)),
            kv(semconv::WINDOW, s(window)),
        ],
        value: Some(v),
        ..Default::default()
    }
}

/// What `error_rate` flushes: requests per (dependency, source, window) and ratios where > 0.
fn window_metrics(rows: &[(&str, &str, &str, i64, f64)]) -> Signal {
    let gauge = |name: &str, points| Metric {
        name: name.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: points,
        })),
        ..Default::default()
    };
    let requests = rows
        .iter()
        .map(|(d, src, w, n, _)| point(d, src, w, number_data_point::Value::AsInt(*n)))
        .collect();
    let ratios = rows
        .iter()
        .filter(|r| r.3 > 0)
        .map(|(d, src, w, _, r)| point(d, src, w, number_data_point::Value::AsDouble(*r)))
        .collect();
    Signal::Metrics(ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    gauge(semconv::DEPENDENCY_ERROR_RATIO, ratios),
                    gauge(semconv::DEPENDENCY_WINDOW_REQUESTS, requests),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

fn alert(state: &str, resend: bool) -> LogRecord {
    LogRecord {
        event_name: semconv::ALERT_EVENT.into(),
        attributes: vec![
            kv(semconv::ALERT_NAME, s("idp_error_ratio")),
            kv(semconv::ALERT_STATE, s(state)),
            kv(semconv::ALERT_FINGERPRINT, s("0123456789abcdef")),
            kv(semconv::ALERT_SEVERITY, s("page")),
            kv("alert.label.dependency", s("auth0")),
            kv("alert.label.source", s("traffic")),
            kv(semconv::ALERT_VALUE, Value::DoubleValue(0.3)),
            kv(semconv::ALERT_THRESHOLD, Value::DoubleValue(0.05)),
            kv(semconv::ALERT_VERDICT, s("provider_outage")),
            kv(
                semconv::ALERT_VERDICT_REASON,
                s("real traffic fails with 5xx (30 of 100 calls)"),
            ),
            kv(semconv::ALERT_RESEND, Value::BoolValue(resend)),
        ],
        ..Default::default()
    }
}

fn logs(records: Vec<LogRecord>) -> Signal {
    Signal::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

/// The line without its leading timestamp.
fn body(line: &str) -> &str {
    line.split_once(' ').map(|(_, rest)| rest).unwrap_or(line)
}

// === behaviour ===

#[tokio::test]
async fn one_line_per_alert_transition_and_none_per_resend() {
    let (built, buf, _s) = start(&Config::default());
    let c = built.consumer;
    c.consume(logs(vec![alert("firing", false)])).await.unwrap();
    c.consume(logs(vec![alert("firing", true)])).await.unwrap();
    // Other log records are ignored.
    c.consume(authwatch_testkit::log_signal(0, 3))
        .await
        .unwrap();
    c.consume(logs(vec![alert("resolved", false)]))
        .await
        .unwrap();
    let lines = buf.lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(
        body(&lines[0]),
        "ALERT firing idp_error_ratio dependency=auth0 source=traffic severity=page value=0.3 threshold=0.05 verdict=provider_outage: real traffic fails with 5xx (30 of 100 calls)"
    );
    assert!(body(&lines[1]).starts_with("ALERT resolved idp_error_ratio dependency=auth0"));
    // RFC 3339 timestamp first.
    assert!(
        lines[0].ends_with("calls)") && lines[0].as_bytes()[10] == b'T',
        "{}",
        lines[0]
    );
}

#[tokio::test(start_paused = true)]
async fn a_summary_per_dependency_with_traffic_every_interval() {
    let config = Config {
        summary_interval: Duration::from_secs(60),
        window: "1m".into(),
    };
    let (built, buf, settings) = start(&config);
    let task = tokio::spawn(built.task.expect("a summary task"));
    let c = built.consumer;
    c.consume(window_metrics(&[
        ("auth0", "traffic", "1m", 80, 0.25),
        ("auth0", "probe", "1m", 20, 0.5),
        ("auth0", "traffic", "5m", 400, 0.01),
        ("okta", "traffic", "1m", 0, 0.0),
        ("google", "traffic", "1m", 12, 0.0),
    ]))
    .await
    .unwrap();
    c.consume(trace_signal(0, 2)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(buf.lines().is_empty(), "nothing before the first interval");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let lines: Vec<String> = buf.lines().iter().map(|l| body(l).to_owned()).collect();
    assert_eq!(
        lines,
        [
            "SUMMARY dependency=auth0 window=1m requests=100 errors=30 error_ratio=0.300 verdict=healthy",
            "SUMMARY dependency=google window=1m requests=12 errors=0 error_ratio=0.000 verdict=healthy",
        ]
    );
    // A firing alert gives its dependency the alert's verdict.
    c.consume(logs(vec![alert("firing", false)])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let lines = buf.lines();
    assert_eq!(
        body(&lines[lines.len() - 2]),
        "SUMMARY dependency=auth0 window=1m requests=100 errors=30 error_ratio=0.300 verdict=provider_outage alerts=idp_error_ratio"
    );
    // The next flush is the whole picture: auth0 went quiet, so only google is left.
    c.consume(window_metrics(&[("google", "traffic", "1m", 3, 0.0)]))
        .await
        .unwrap();
    let before = buf.lines().len();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let lines = buf.lines();
    assert_eq!(lines.len(), before + 1, "{lines:#?}");
    assert!(body(&lines[before]).starts_with("SUMMARY dependency=google window=1m requests=3 "));
    // Stops on shutdown; refuses data afterwards.
    settings.shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(matches!(
        c.consume(trace_signal(0, 1)).await,
        Err(ConsumeError::Closed)
    ));
}

/// A firing latency alert: `degraded`, with its quantile and bound, unless something fails.
#[tokio::test(start_paused = true)]
async fn a_slow_dependency_is_degraded_in_the_summary() {
    let (built, buf, _settings) = start(&Config::default());
    let _task = tokio::spawn(built.task.expect("a summary task"));
    let c = built.consumer;
    c.consume(window_metrics(&[("auth0", "traffic", "1m", 40, 0.0)])).await.unwrap();
    let slow = LogRecord {
        event_name: semconv::ALERT_EVENT.into(),
        attributes: vec![
            kv(semconv::ALERT_NAME, s("idp_p95")),
            kv(semconv::ALERT_STATE, s("firing")),
            kv(semconv::ALERT_FINGERPRINT, s("fedcba9876543210")),
            kv("alert.label.dependency", s("auth0")),
            kv(semconv::ALERT_VALUE, Value::DoubleValue(1.52)),
            kv(semconv::ALERT_THRESHOLD, Value::DoubleValue(0.5)),
            kv(semconv::ALERT_LATENCY_QUANTILE, s("p95")),
            kv(semconv::ALERT_LATENCY_BOUND, Value::DoubleValue(0.5)),
            kv(semconv::ALERT_VERDICT, s("degraded")),
            kv(semconv::ALERT_VERDICT_REASON, s("Slow but not failing: p95 of calls to auth0 is 1.52s")),
        ],
        ..Default::default()
    };
    c.consume(logs(vec![slow])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    let lines = buf.lines();
    assert_eq!(
        body(lines.last().unwrap()),
        "SUMMARY dependency=auth0 window=1m requests=40 errors=0 error_ratio=0.000 verdict=degraded alerts=idp_p95 p95=1.52s bound=500ms"
    );
    // Failing too: the failure verdict wins.
    c.consume(logs(vec![alert("firing", false)])).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let lines = buf.lines();
    assert!(
        body(lines.last().unwrap()).contains("verdict=provider_outage alerts=idp_error_ratio,idp_p95 p95=1.52s bound=500ms"),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn summaries_off_with_zero_interval() {
    let config = Config {
        summary_interval: Duration::ZERO,
        ..Config::default()
    };
    let (built, _buf, _s) = start(&config);
    assert!(built.task.is_none());
}

#[test]
fn numbers_are_compact() {
    assert_eq!(number(0.3), "0.3");
    assert_eq!(number(0.05), "0.05");
    assert_eq!(number(14.4), "14.4");
    assert_eq!(number(3.0), "3");
    assert_eq!(number(0.0), "0");
    assert_eq!(number(0.123456), "0.1235");
}
