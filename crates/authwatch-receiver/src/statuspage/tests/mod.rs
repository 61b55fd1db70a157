//! Tests of the `statuspage` receiver, by what they test: config, the document sequences
//! (Statuspage v2, Atom, RSS), and failures and the receiver's lifecycle. This file holds what
//! they share: a status server on loopback whose answer a test sets, and readers of what the
//! sink got.

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

mod config;
mod documents;
mod failures;
mod live;

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
