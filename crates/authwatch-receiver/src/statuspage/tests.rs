use super::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use authwatch_core::otlp::common::v1::any_value;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
use authwatch_core::registry::decode_config;
use authwatch_core::semconv;
use authwatch_core::telemetry::Telemetry;
use authwatch_core::{ComponentId, Router, Settings, Signal, SignalKind};
use authwatch_testkit::Sink;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::poller::Polled;

const WAIT: Duration = Duration::from_secs(10);

fn data(name: &str) -> String {
    let path = format!(
        "{}/src/statuspage/testdata/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// === config ===

#[test]
fn config_contract() {
    // The default has no pages, which does not validate: `pages` is required.
    authwatch_testkit::assert_config_decodes::<Config>("statuspage");
}

#[test]
fn config_yaml_decodes_to_struct() {
    let v: serde_json::Value = serde_yaml::from_str(&data("config.yaml")).unwrap();
    let c: Config = decode_config(v).unwrap();
    let want = Config {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(5),
        max_backoff: Duration::from_secs(600),
        pages: vec![
            PageConfig {
                name: "auth0".into(),
                url: "https://status.auth0.com/feed?domain=example.us.auth0.com"
                    .parse()
                    .unwrap(),
                format: Format::Atom,
                components: vec![],
            },
            PageConfig {
                name: "github".into(),
                url: "https://www.githubstatus.com/api/v2/summary.json"
                    .parse()
                    .unwrap(),
                format: Format::StatuspageV2,
                components: vec!["Git Operations".into(), "brv1bkgrwx7q".into()],
            },
            PageConfig {
                name: "example".into(),
                url: "https://status.example.com/history.rss".parse().unwrap(),
                format: Format::Rss,
                components: vec![],
            },
        ],
    };
    assert_eq!(c, want);
    let mut v = Validator::new("receivers::statuspage");
    c.validate(&mut v);
    assert!(!v.has_errors(), "{:?}", v.errors());
    assert_eq!(c.signals(), Signals::METRICS | Signals::LOGS);
}

/// Decode and validate errors of one config, as printed.
fn config_errors(v: serde_json::Value) -> Vec<String> {
    match decode_config::<Config>(v) {
        Err(e) => vec![e.to_string()],
        Ok(c) => {
            let mut v = Validator::new("");
            c.validate(&mut v);
            v.errors().iter().map(ToString::to_string).collect()
        }
    }
}

#[test]
fn invalid_configs() {
    let cases: serde_json::Map<String, serde_json::Value> =
        serde_yaml::from_str(&data("invalid.yaml")).unwrap();
    assert!(cases.len() >= 10);
    for (name, case) in cases {
        let got = config_errors(case["config"].clone());
        let want = case["error"].as_str().unwrap();
        assert_eq!(got, vec![want.to_owned()], "case {name}");
    }
}

#[test]
fn backoff_doubles_up_to_max() {
    let s = Schedule {
        interval: Duration::from_secs(60),
        max_backoff: Duration::from_secs(300),
    };
    let got: Vec<u64> = (0..6).map(|f| s.next_delay(f).as_secs()).collect();
    assert_eq!(got, [60, 60, 120, 240, 300, 300]);
    assert_eq!(s.next_delay(u32::MAX), Duration::from_secs(300));
}

// === a status server on loopback ===

#[derive(Clone, Default)]
struct Reply {
    status: u16,
    body: String,
    content_type: &'static str,
    etag: Option<&'static str>,
}

#[derive(Clone, Default)]
struct ServerState {
    reply: Arc<Mutex<Reply>>,
    /// `If-None-Match` of each request received (empty when absent).
    conditionals: Arc<Mutex<Vec<String>>>,
}

async fn serve_reply(State(s): State<ServerState>, headers: HeaderMap) -> Response {
    let inm = headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    s.conditionals.lock().unwrap().push(inm.clone());
    let r = s.reply.lock().unwrap().clone();
    if let Some(etag) = r.etag {
        if inm == etag {
            return (StatusCode::NOT_MODIFIED, [("etag", etag)]).into_response();
        }
    }
    let mut resp = (
        StatusCode::from_u16(r.status).unwrap(),
        [("content-type", r.content_type)],
        r.body,
    )
        .into_response();
    if let Some(etag) = r.etag {
        resp.headers_mut().insert("etag", etag.parse().unwrap());
    }
    resp
}

struct StatusServer {
    addr: SocketAddr,
    state: ServerState,
}

impl StatusServer {
    async fn start() -> Self {
        let state = ServerState::default();
        let app = axum::Router::new()
            .fallback(serve_reply)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        StatusServer { addr, state }
    }

    fn set(
        &self,
        status: u16,
        body: String,
        content_type: &'static str,
        etag: Option<&'static str>,
    ) {
        *self.state.reply.lock().unwrap() = Reply {
            status,
            body,
            content_type,
            etag,
        };
    }

    fn json(&self, file: &str, etag: &'static str) {
        self.set(200, data(file), "application/json", Some(etag));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn last_conditional(&self) -> String {
        self.state
            .conditionals
            .lock()
            .unwrap()
            .last()
            .cloned()
            .unwrap_or_default()
    }
}

fn poller(url: &str, format: Format, components: &[&str], sink: &Sink) -> Poller {
    let mut next = Router::new();
    next.set(SignalKind::Metrics, sink.shared());
    next.set(SignalKind::Logs, sink.shared());
    let page = PageConfig {
        name: "test".into(),
        url: url.parse().unwrap(),
        format,
        components: components.iter().map(|s| s.to_string()).collect(),
    };
    let telemetry = Telemetry::new().receiver(&"statuspage".parse().unwrap(), "poll");
    Poller::new(
        page,
        http_client(Duration::from_secs(5)).unwrap(),
        next,
        telemetry,
        SystemTime::now(),
    )
}

// === reading what the sink got ===

fn str_attr(attrs: &[authwatch_core::otlp::common::v1::KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

/// (metric name, component name or "", value) of the newest metrics request.
fn last_gauges(sink: &Sink) -> Vec<(String, String, i64)> {
    let Some(Signal::Metrics(m)) = sink
        .received()
        .into_iter()
        .rev()
        .find(|s| s.kind() == SignalKind::Metrics)
    else {
        panic!("no metrics received");
    };
    let mut out = Vec::new();
    for rm in &m.resource_metrics {
        for sm in &rm.scope_metrics {
            for metric in &sm.metrics {
                let Some(metric::Data::Gauge(g)) = &metric.data else {
                    panic!("{} is not a gauge", metric.name)
                };
                for p in &g.data_points {
                    let Some(number_data_point::Value::AsInt(v)) = p.value else {
                        panic!("not an int")
                    };
                    assert_eq!(
                        str_attr(&p.attributes, semconv::STATUS_PAGE).as_deref(),
                        Some("test")
                    );
                    let comp =
                        str_attr(&p.attributes, semconv::STATUS_COMPONENT_NAME).unwrap_or_default();
                    out.push((metric.name.clone(), comp, v));
                }
            }
        }
    }
    out
}

fn gauge(sink: &Sink, name: &str, component: &str) -> Option<i64> {
    last_gauges(sink)
        .into_iter()
        .find(|(n, c, _)| n == name && c == component)
        .map(|(_, _, v)| v)
}

fn log_records(sink: &Sink) -> Vec<LogRecord> {
    sink.received()
        .into_iter()
        .filter_map(|s| match s {
            Signal::Logs(l) => Some(l),
            _ => None,
        })
        .flat_map(|l| l.resource_logs)
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| s.log_records)
        .collect()
}

/// (event, incident status, previous status) of every incident record.
fn incident_events(sink: &Sink) -> Vec<(String, String, String)> {
    log_records(sink)
        .iter()
        .filter(|r| r.event_name.starts_with("authwatch.status.incident."))
        .map(|r| {
            (
                r.event_name
                    .trim_start_matches("authwatch.status.incident.")
                    .to_owned(),
                str_attr(&r.attributes, semconv::STATUS_INCIDENT_STATUS).unwrap_or_default(),
                str_attr(&r.attributes, semconv::STATUS_INCIDENT_PREVIOUS_STATUS)
                    .unwrap_or_default(),
            )
        })
        .collect()
}

fn body(r: &LogRecord) -> String {
    match r.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

// === behaviour ===

#[tokio::test]
async fn statuspage_v2_sequence_operational_incident_degraded_resolved() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/api/v2/summary.json"),
        Format::StatuspageV2,
        &[],
        &sink,
    );

    // Operational.
    server.json("summary_operational.json", "\"v1\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(server.last_conditional(), "");
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(0));
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "API Requests"),
        Some(0)
    );
    assert_eq!(gauge(&sink, semconv::STATUS_COMPONENT, "Webhooks"), Some(0));
    assert!(log_records(&sink).is_empty());

    // Unchanged: 304, and the last state is sent again.
    let before = sink.item_count(SignalKind::Metrics);
    assert_eq!(p.poll_once().await, Polled::NotModified);
    assert_eq!(server.last_conditional(), "\"v1\"");
    assert_eq!(sink.item_count(SignalKind::Metrics), 2 * before);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));

    // Incident opened.
    server.json("summary_incident.json", "\"v2\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(1));
    assert_eq!(
        incident_events(&sink),
        [("opened".into(), "investigating".into(), "".into())]
    );
    let opened = log_records(&sink).pop().unwrap();
    let a = &opened.attributes;
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_ID).as_deref(),
        Some("x1yzk8c5ls2q")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_NAME).as_deref(),
        Some("Elevated error rates on API requests")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("minor")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_URL).as_deref(),
        Some("https://stspg.io/abc123")
    );
    assert_eq!(
        body(&opened),
        "Elevated error rates on API requests: We are investigating reports of elevated error rates."
    );
    assert_eq!(
        opened.time_unix_nano,
        emit::parse_time("2026-11-26T10:00:00.000Z").unwrap()
    );
    assert_eq!(opened.severity_text, "WARN");

    // Degraded component, incident updated.
    server.json("summary_degraded.json", "\"v3\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(2));
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "API Requests"),
        Some(1)
    );
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "Git Operations"),
        Some(0)
    );
    assert_eq!(
        incident_events(&sink)[1],
        (
            "updated".into(),
            "identified".into(),
            "investigating".into()
        )
    );
    let updated = log_records(&sink).pop().unwrap();
    assert_eq!(
        str_attr(&updated.attributes, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("major")
    );

    // Resolved: the incident leaves the summary.
    server.json("summary_resolved.json", "\"v4\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(0));
    assert_eq!(
        gauge(&sink, semconv::STATUS_COMPONENT, "API Requests"),
        Some(0)
    );
    assert_eq!(
        incident_events(&sink),
        [
            ("opened".into(), "investigating".into(), "".into()),
            (
                "updated".into(),
                "identified".into(),
                "investigating".into()
            ),
            ("resolved".into(), "resolved".into(), "identified".into()),
        ]
    );
    let resolved = log_records(&sink).pop().unwrap();
    assert_eq!(resolved.severity_text, "INFO");

    // Nothing new: no more records.
    assert_eq!(p.poll_once().await, Polled::NotModified);
    assert_eq!(incident_events(&sink).len(), 3);
}

#[tokio::test]
async fn incidents_open_at_first_poll_are_reported_and_components_filtered() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/api/v2/summary.json"),
        Format::StatuspageV2,
        &["API Requests", "8l4ygp009s5s"],
        &sink,
    );
    server.json("summary_degraded.json", "\"d\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(
        incident_events(&sink),
        [("opened".into(), "identified".into(), "".into())]
    );
    let comps: Vec<String> = last_gauges(&sink)
        .into_iter()
        .filter(|(n, _, _)| n == semconv::STATUS_COMPONENT)
        .map(|(_, c, _)| c)
        .collect();
    assert_eq!(comps, ["Git Operations", "API Requests"]);
    let opened = log_records(&sink).pop().unwrap();
    assert_eq!(opened.severity_text, "ERROR", "major impact opens at ERROR");
}

#[tokio::test]
async fn atom_feed_sequence() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/feed?domain=example.us.auth0.com"),
        Format::Atom,
        &[],
        &sink,
    );
    let atom = "application/atom+xml";

    // Only a resolved incident in the history: operational, and nothing to report.
    server.set(200, data("feed_operational.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert!(log_records(&sink).is_empty());

    server.set(200, data("feed_incident.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(1));
    let opened = log_records(&sink).pop().unwrap();
    assert_eq!(opened.event_name, semconv::STATUS_INCIDENT_OPENED);
    let a = &opened.attributes;
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_ID).as_deref(),
        Some("tag:status.auth0.com,2005:Incident/1002")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_NAME).as_deref(),
        Some("Increased authentication errors")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_STATUS).as_deref(),
        Some("investigating")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("minor")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_URL).as_deref(),
        Some("https://status.auth0.com/incidents/1002")
    );
    assert_eq!(
        body(&opened),
        "Increased authentication errors: We are investigating increased login errors."
    );

    server.set(200, data("feed_monitoring.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(1));

    server.set(200, data("feed_resolved.atom"), atom, None);
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    assert_eq!(gauge(&sink, semconv::STATUS_INCIDENTS_ACTIVE, ""), Some(0));
    assert_eq!(
        incident_events(&sink),
        [
            ("opened".into(), "investigating".into(), "".into()),
            (
                "updated".into(),
                "monitoring".into(),
                "investigating".into()
            ),
            ("resolved".into(), "resolved".into(), "monitoring".into()),
        ]
    );
    assert_eq!(
        body(&log_records(&sink).pop().unwrap()),
        "Increased authentication errors: This incident has been resolved."
    );
}

#[tokio::test]
async fn rss_feed_with_an_outage() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(&server.url("/history.rss"), Format::Rss, &[], &sink);
    server.set(
        200,
        data("feed_incident.rss"),
        "application/rss+xml",
        Some("\"r1\""),
    );
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(2));
    let recs = log_records(&sink);
    assert_eq!(
        recs.len(),
        1,
        "the completed maintenance is history, not news"
    );
    let a = &recs[0].attributes;
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_STATUS).as_deref(),
        Some("identified")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_IMPACT).as_deref(),
        Some("major")
    );
    assert_eq!(
        str_attr(a, semconv::STATUS_INCIDENT_ID).as_deref(),
        Some("https://status.example.com/incidents/77")
    );
    assert_eq!(
        recs[0].time_unix_nano,
        emit::parse_time("2026-11-26T10:00:00Z").unwrap()
    );
    // Conditional request with the ETag; 304 keeps the state.
    assert_eq!(p.poll_once().await, Polled::NotModified);
    assert_eq!(server.last_conditional(), "\"r1\"");
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(2));
    assert_eq!(log_records(&sink).len(), 1);
}

#[tokio::test]
async fn unreachable_page_is_down_never_operational() {
    // A port nobody listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sink = Sink::new();
    let mut p = poller(
        &format!("http://{addr}/api/v2/summary.json"),
        Format::StatuspageV2,
        &[],
        &sink,
    );
    assert_eq!(p.poll_once().await, Polled::Failed("unreachable"));
    assert_eq!(p.failures(), 1);
    let g = last_gauges(&sink);
    assert_eq!(g, [(semconv::STATUS_UP.to_owned(), String::new(), 0)]);
    let recs = log_records(&sink);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].event_name, semconv::STATUS_PAGE_DOWN);
    assert_eq!(recs[0].severity_text, "ERROR");
    assert_eq!(
        str_attr(&recs[0].attributes, semconv::ERROR_TYPE).as_deref(),
        Some("unreachable")
    );
    // Still down: metric again, no second log.
    assert_eq!(p.poll_once().await, Polled::Failed("unreachable"));
    assert_eq!(p.failures(), 2);
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(0));
    assert_eq!(log_records(&sink).len(), 1);
}

#[tokio::test]
async fn malformed_documents_and_errors_are_reported_then_recovery() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let mut p = poller(
        &server.url("/api/v2/summary.json"),
        Format::StatuspageV2,
        &[],
        &sink,
    );

    server.json("summary_incident.json", "\"a\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);

    // An HTML error page with 200: malformed, not operational.
    server.set(200, "<html>maintenance</html>".into(), "text/html", None);
    assert_eq!(p.poll_once().await, Polled::Failed("malformed"));
    assert_eq!(
        last_gauges(&sink),
        [(semconv::STATUS_UP.to_owned(), String::new(), 0)]
    );
    let down = log_records(&sink).pop().unwrap();
    assert_eq!(down.event_name, semconv::STATUS_PAGE_DOWN);
    assert_eq!(
        str_attr(&down.attributes, semconv::ERROR_TYPE).as_deref(),
        Some("malformed")
    );

    // A 503: another kind of down, logged again.
    server.set(503, "busy".into(), "text/plain", None);
    assert_eq!(p.poll_once().await, Polled::Failed("http_status"));
    let down = log_records(&sink).pop().unwrap();
    assert_eq!(
        str_attr(&down.attributes, semconv::ERROR_TYPE).as_deref(),
        Some("http_status")
    );
    assert!(body(&down).contains("HTTP 503"), "{}", body(&down));
    assert_eq!(p.failures(), 2);

    // Back, with the incident resolved meanwhile.
    server.json("summary_resolved.json", "\"b\"");
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(p.failures(), 0);
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert_eq!(gauge(&sink, semconv::STATUS_INDICATOR, ""), Some(0));
    let events: Vec<String> = log_records(&sink)
        .iter()
        .map(|r| r.event_name.clone())
        .collect();
    assert_eq!(
        events,
        [
            semconv::STATUS_INCIDENT_OPENED,
            semconv::STATUS_PAGE_DOWN,
            semconv::STATUS_PAGE_DOWN,
            semconv::STATUS_PAGE_RECOVERED,
            semconv::STATUS_INCIDENT_RESOLVED,
        ]
    );

    // A truncated feed is malformed too.
    let sink2 = Sink::new();
    let mut f = poller(&server.url("/feed"), Format::Atom, &[], &sink2);
    let truncated: String = data("feed_incident.atom").chars().take(600).collect();
    server.set(200, truncated, "application/atom+xml", None);
    assert_eq!(f.poll_once().await, Polled::Failed("malformed"));
    assert_eq!(
        last_gauges(&sink2),
        [(semconv::STATUS_UP.to_owned(), String::new(), 0)]
    );
}

#[tokio::test]
async fn only_signals_a_pipeline_takes_are_sent() {
    let server = StatusServer::start().await;
    server.json("summary_incident.json", "\"a\"");
    let sink = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Logs, sink.shared());
    let page = PageConfig {
        name: "test".into(),
        url: server.url("/s").parse().unwrap(),
        format: Format::StatuspageV2,
        components: vec![],
    };
    let telemetry = Telemetry::new().receiver(&"statuspage".parse().unwrap(), "poll");
    let mut p = Poller::new(
        page,
        http_client(WAIT).unwrap(),
        next,
        telemetry,
        SystemTime::now(),
    );
    assert_eq!(p.poll_once().await, Polled::Fresh);
    assert_eq!(sink.item_count(SignalKind::Metrics), 0);
    assert_eq!(sink.item_count(SignalKind::Logs), 1);
}

#[tokio::test]
async fn receiver_polls_at_start_and_stops_on_shutdown() {
    let server = StatusServer::start().await;
    server.json("summary_operational.json", "\"a\"");
    let config = Config {
        interval: Duration::from_secs(3600),
        max_backoff: Duration::from_secs(3600),
        pages: vec![PageConfig {
            name: "test".into(),
            url: server.url("/api/v2/summary.json").parse().unwrap(),
            format: Format::StatuspageV2,
            components: vec![],
        }],
        ..Config::default()
    };
    let sink = Sink::new();
    let mut next = Router::new();
    next.set(SignalKind::Metrics, sink.shared());
    next.set(SignalKind::Logs, sink.shared());
    let id: ComponentId = "statuspage/test".parse().unwrap();
    let settings = Settings::new(id.clone());
    let telemetry = settings.telemetry.clone();
    let shutdown = settings.shutdown.clone();
    let task = config
        .build(ReceiverContext { settings, next })
        .await
        .unwrap();
    let handle = tokio::spawn(task);
    sink.wait_for_items(SignalKind::Metrics, 6, WAIT).await;
    shutdown.cancel();
    tokio::time::timeout(WAIT, handle)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(gauge(&sink, semconv::STATUS_UP, ""), Some(1));
    assert!(telemetry.encode().contains(
        r#"authwatch_receiver_accepted_metric_points_total{receiver="statuspage/test",transport="poll"} 6"#
    ));
}

#[tokio::test]
async fn every_poll_is_published_on_the_status_board() {
    let server = StatusServer::start().await;
    let sink = Sink::new();
    let board = authwatch_core::board::StatusBoard::default();
    let mut p = poller(&server.url("/api/v2/summary.json"), Format::StatuspageV2, &[], &sink)
        .with_board(board.clone());
    let entry = || board.section(authwatch_core::board::PROVIDER_STATUS)["test"].clone();
    server.json("summary_operational.json", "\"v1\"");
    p.poll_once().await;
    let e = entry();
    assert_eq!(e["page"], "test");
    assert_eq!(e["format"], "statuspage_v2");
    assert_eq!(e["up"], true);
    assert_eq!(e["error"], serde_json::Value::Null);
    assert_eq!(e["indicator"], 0);
    assert_eq!(e["incidents"], serde_json::json!([]));
    let api = e["components"].as_array().unwrap().iter().find(|c| c["name"] == "API Requests").cloned().unwrap();
    assert_eq!(api["status"], "operational");
    server.json("summary_incident.json", "\"v2\"");
    p.poll_once().await;
    let e = entry();
    assert_eq!(e["indicator"], 1);
    assert_eq!(e["incidents"].as_array().unwrap().len(), 1);
    assert!(!e["incidents"][0]["name"].as_str().unwrap().is_empty());
    // Down: the last known state stays, marked down.
    server.set(500, "oops".into(), "text/plain", None);
    p.poll_once().await;
    let e = entry();
    assert_eq!(e["up"], false);
    assert_eq!(e["error"], "http_status");
    assert_eq!(e["indicator"], 1);
}
