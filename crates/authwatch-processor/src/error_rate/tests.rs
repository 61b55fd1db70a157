use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, KeyValue};
use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
use authwatch_core::otlp::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use authwatch_core::registry::decode_config;
use authwatch_core::semconv;
use authwatch_core::{ConnectorContext, Router, Settings, SignalKind};
use authwatch_testkit::{kv, kv_int, resource, Sink};

use super::classify::{classify, SpanView};
use super::state::State;
use authwatch_core::time::Clock;
use super::*;

// --- builders ---

pub(super) fn http(host: &str, path: &str, status_code: Option<i64>) -> Span {
    let mut attrs = vec![
        kv("http.request.method", "POST"),
        kv("server.address", host),
        kv("url.full", &format!("https://{host}{path}?x=1")),
    ];
    if let Some(c) = status_code {
        attrs.push(kv_int("http.response.status_code", c));
    }
    // Every span its own ids: the connector counts a span it has counted before only once.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Span {
        trace_id: [[1; 8], n.to_be_bytes()].concat(),
        span_id: n.to_be_bytes().to_vec(),
        name: "POST".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1_000_000_000,
        end_time_unix_nano: 1_000_000_000 + 30_000_000,
        attributes: attrs,
        status: Some(Status {
            code: if status_code.is_some_and(|c| c >= 400) {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: String::new(),
        }),
        ..Default::default()
    }
}

pub(super) fn with(mut s: Span, extra: Vec<KeyValue>) -> Span {
    s.attributes.extend(extra);
    s
}

pub(super) fn failed(host: &str, error_type: &str) -> Span {
    let mut s = with(http(host, "/oauth/token", None), vec![kv("error.type", error_type)]);
    s.status = Some(Status {
        code: status::StatusCode::Error as i32,
        message: String::new(),
    });
    s
}

pub(super) fn req(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(service)),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            schema_url: String::new(),
        }],
    }
}

pub(super) const AUTH0: &str = "tenant.us.auth0.com";

pub(super) fn cfg() -> Config {
    Config::default()
}

pub(super) fn rejected() -> Vec<String> {
    DEFAULT_AUTH_REJECTED.iter().map(|s| s.to_string()).collect()
}

pub(super) fn class_of(s: &Span) -> ErrorClass {
    classify(&SpanView::of(s), &rejected())
}

/// `metric name -> [(sorted "k=v" attributes, value)]` of one flush.
pub(super) fn points(req: &ExportMetricsServiceRequest, name: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        let fmt = |attrs: &[KeyValue]| {
            let mut v: Vec<String> = attrs
                .iter()
                .map(|kv| {
                    let val = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        Some(any_value::Value::BoolValue(b)) => b.to_string(),
                        other => format!("{other:?}"),
                    };
                    format!("{}={val}", kv.key)
                })
                .collect();
            v.sort();
            v.join(",")
        };
        let num = |v: &Option<number_data_point::Value>| match v {
            Some(number_data_point::Value::AsInt(i)) => *i as f64,
            Some(number_data_point::Value::AsDouble(d)) => *d,
            None => f64::NAN,
        };
        match &m.data {
            Some(metric::Data::Sum(s)) => {
                out.extend(s.data_points.iter().map(|p| (fmt(&p.attributes), num(&p.value))))
            }
            Some(metric::Data::Gauge(g)) => {
                out.extend(g.data_points.iter().map(|p| (fmt(&p.attributes), num(&p.value))))
            }
            Some(metric::Data::Histogram(h)) => {
                out.extend(h.data_points.iter().map(|p| (fmt(&p.attributes), p.count as f64)))
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub(super) fn value(req: &ExportMetricsServiceRequest, name: &str, attrs: &str) -> Option<f64> {
    points(req, name)
        .into_iter()
        .find(|(a, _)| a == attrs)
        .map(|(_, v)| v)
}


// --- config ---

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("error_rate");
}

#[test]
fn full_config_decodes() {
    let c: Config = decode_config(serde_json::json!({
        "dependencies": [
            {"name": "auth0", "server_address": ["*.auth0.com"], "url_prefix": ["https://login.example.com/"]},
            {"name": "okta", "peer_service": ["okta"], "rpc_service": ["okta.Auth"]}
        ],
        "span_kinds": ["client", "internal"],
        "error_classes": ["server_error", "timeout"],
        "auth_rejected_errors": ["invalid_grant"],
        "windows": ["1m", "1h"],
        "metrics_flush_interval": "5s",
        "aggregation_temporality": "delta",
        "aggregation_cardinality_limit": 10,
        "histogram": {"buckets": [0.1, 1]},
        "error_groups": {"enabled": false, "resolve_after": "10m", "max_groups": 5},
        "dedupe_spans": 100
    }))
    .unwrap();
    assert_eq!(c.dependencies.len(), 2);
    assert_eq!(c.dependencies[1].rpc_service, ["okta.Auth"]);
    assert_eq!(c.windows, [Window::secs(60), Window::secs(3600)]);
    assert_eq!(c.metrics_flush_interval, Duration::from_secs(5));
    assert_eq!(c.aggregation_temporality, Temporality::Delta);
    assert_eq!(c.error_groups.max_groups.get(), 5);
    assert_eq!(c.error_groups.resolve_after, Duration::from_secs(600));
    assert_eq!(c.dedupe_spans, 100);
    let mut v = Validator::new("connectors::error_rate");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    // Round trip (what `print-config` shows).
    let back: Config = decode_config(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn dedupe_spans_is_bounded() {
    let mut v = Validator::new("connectors::error_rate");
    Config {
        dedupe_spans: MAX_DEDUPE_SPANS + 1,
        ..Config::default()
    }
    .validate(&mut v);
    assert_eq!(
        v.errors().iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        ["connectors::error_rate::dedupe_spans: must be at most 16777216 (each takes up to 40 bytes)"]
    );
}

#[test]
fn invalid_configs_name_the_path() {
    let decode_err = |j: serde_json::Value| decode_config::<Config>(j).unwrap_err().to_string();
    assert_eq!(
        decode_err(serde_json::json!({"windows": ["0s"]})),
        "windows::0: must be longer than zero, e.g. `5m`"
    );
    assert!(decode_err(serde_json::json!({"aggregation_temporality": "sometimes"}))
        .starts_with("aggregation_temporality: unknown variant `sometimes`"));
    assert!(decode_err(serde_json::json!({"error_classes": ["oops"]}))
        .starts_with("error_classes::0: unknown variant `oops`"));
    assert!(decode_err(serde_json::json!({"dependencies": [{"name": "a", "hosts": []}]}))
        .starts_with("dependencies::0::hosts: unknown field `hosts`"));
    assert_eq!(
        decode_err(serde_json::json!({"error_groups": {"max_groups": 0}})),
        "error_groups::max_groups: must be positive"
    );

    let validate = |j: serde_json::Value| {
        let c: Config = decode_config(j).unwrap();
        let mut v = Validator::new("connectors::error_rate");
        c.validate(&mut v);
        v.into_parts().0.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        validate(serde_json::json!({"dependencies": []})),
        ["connectors::error_rate::dependencies: must list at least one dependency"]
    );
    assert_eq!(
        validate(serde_json::json!({"dependencies": [
            {"name": "a", "peer_service": ["a"]}, {"name": "a"}]})),
        [
            "connectors::error_rate::dependencies::1::name: `a` is used by another dependency; names must be unique",
            "connectors::error_rate::dependencies::1: needs at least one matcher: `server_address`, `url_prefix`, `url_path`, `peer_service` or `rpc_service`",
        ]
    );
    assert_eq!(
        validate(serde_json::json!({"error_classes": ["ok"], "windows": ["5m", "300s"],
            "histogram": {"buckets": [1, 0.5]}, "span_kinds": [], "metrics_flush_interval": 0})),
        [
            "connectors::error_rate::span_kinds: must list at least one span kind, e.g. `[client]`",
            "connectors::error_rate::error_classes: `ok` cannot be an error class",
            "connectors::error_rate::windows::1: `5m` is listed twice",
            "connectors::error_rate::metrics_flush_interval: must be longer than zero, e.g. `15s`",
            "connectors::error_rate::histogram::buckets: must be finite numbers in strictly increasing order",
        ]
    );
}


// --- the connector ---

async fn build(c: &Config) -> (Built, Sink, Sink, CancellationToken) {
    let (metrics, logs) = (Sink::new(), Sink::new());
    let mut next = Router::new();
    next.set(SignalKind::Metrics, metrics.shared());
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("error_rate".parse().unwrap());
    let token = settings.shutdown.clone();
    let built = c.build(ConnectorContext { settings, next }).await.unwrap();
    (built, metrics, logs, token)
}

#[tokio::test(start_paused = true)]
async fn flushes_every_interval_and_at_shutdown() {
    let (built, metrics, logs, token) = build(&cfg()).await;
    let task = tokio::spawn(built.task.unwrap());
    let consumer = built.consumer;
    consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(503)), http(AUTH0, "/oauth/token", Some(200))])))
        .await
        .unwrap();
    // The new error group went to the logs pipeline right away.
    let recs = logs.received();
    assert_eq!(recs.len(), 1);
    let Signal::Logs(l) = &recs[0] else { panic!("logs expected") };
    assert_eq!(l.resource_logs[0].scope_logs[0].log_records[0].event_name, semconv::ERROR_GROUP_NEW);
    assert!(metrics.received().is_empty());

    tokio::time::sleep(Duration::from_secs(15) + Duration::from_millis(1)).await;
    assert_eq!(metrics.received().len(), 1);
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(metrics.received().len(), 2);
    // Cumulative: the second flush still has both calls.
    let Signal::Metrics(m) = &metrics.received()[1] else { panic!("metrics expected") };
    assert_eq!(
        points(m, semconv::DEPENDENCY_REQUESTS).iter().map(|p| p.1).sum::<f64>(),
        2.0
    );
    consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(200))])))
        .await
        .unwrap();
    token.cancel();
    task.await.unwrap().unwrap();
    // The final flush carries the last call.
    assert_eq!(metrics.received().len(), 3);
    let Signal::Metrics(m) = &metrics.received()[2] else { panic!("metrics expected") };
    assert_eq!(
        points(m, semconv::DEPENDENCY_REQUESTS).iter().map(|p| p.1).sum::<f64>(),
        3.0
    );
}

#[tokio::test]
async fn refuses_other_signals_and_survives_a_full_logs_pipeline() {
    let (built, _metrics, logs, _token) = build(&cfg()).await;
    let r = built.consumer.consume(authwatch_testkit::metric_signal(0, 1)).await;
    assert!(matches!(r, Err(ConsumeError::Permanent(_))), "{r:?}");
    logs.fail_with(Some(ConsumeError::Full));
    let r = built
        .consumer
        .consume(Signal::Traces(req("web", vec![http(AUTH0, "/oauth/token", Some(500))])))
        .await;
    assert_eq!(r, Ok(()));
}

#[test]
fn testkit_spans_are_counted() {
    // The testkit's client spans: every tenth a 503.
    let mut st = State::new(&cfg(), Clock::new());
    st.record_traces(&authwatch_testkit::traces(0, 100), Duration::ZERO);
    assert_eq!(st.window_totals(0, Source::Traffic, 0, Duration::ZERO), (100, 10));
}

#[tokio::test(start_paused = true)]
async fn publishes_dependencies_and_error_groups_on_the_board() {
    let (metrics, logs) = (Sink::new(), Sink::new());
    let mut next = Router::new();
    next.set(SignalKind::Metrics, metrics.shared());
    next.set(SignalKind::Logs, logs.shared());
    let settings = Settings::new("error_rate".parse().unwrap());
    let board = settings.board.clone();
    let token = settings.shutdown.clone();
    let built = cfg().build(ConnectorContext { settings, next }).await.unwrap();
    let task = tokio::spawn(built.task.unwrap());
    let spans = vec![
        http(AUTH0, "/oauth/token", Some(503)),
        http(AUTH0, "/oauth/token", Some(503)),
        http(AUTH0, "/oauth/token", Some(200)),
        with(http(AUTH0, "/oauth/token", Some(403)), vec![kv("oauth.error", "invalid_grant")]),
    ];
    built.consumer.consume(Signal::Traces(req("web", spans))).await.unwrap();
    // The status page learns of the calls at once (a live update), not at the next flush.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(board.section(authwatch_core::board::DEPENDENCIES)["auth0"]["requests"], 4);
    tokio::time::sleep(Duration::from_secs(15) + Duration::from_millis(1)).await;
    let deps = board.section(authwatch_core::board::DEPENDENCIES);
    let d = &deps["auth0"];
    assert_eq!(d["dependency"], "auth0");
    assert_eq!(d["connector"], "error_rate");
    assert_eq!(d["requests"], 4);
    assert_eq!(d["errors"], 2, "auth_rejected is not an error");
    assert_eq!(d["by_class"]["server_error"], 2);
    assert_eq!(d["by_class"]["auth_rejected"], 1);
    assert_eq!(d["windows"][0]["window"], "1m");
    assert_eq!(d["windows"][0]["requests"], 4);
    assert_eq!(d["windows"][0]["error_ratio"], 0.5);
    assert_eq!(d["windows"][0]["traffic"]["errors"], 2);
    let groups = board.section(authwatch_core::board::ERROR_GROUPS);
    let g = &groups["auth0"]["groups"];
    assert_eq!(g[0]["class"], "server_error", "most calls first");
    assert_eq!(g[0]["count"], 2);
    assert_eq!(g[0]["endpoint"], "/oauth/token");
    assert_eq!(g[0]["services"], serde_json::json!(["web"]));
    assert_eq!(g.as_array().unwrap().len(), 2);
    token.cancel();
    task.await.unwrap().unwrap();
}

