//! Test fixtures of the alert exporters: a capture server that records requests and answers
//! from a script, and alert event records as the `alerts` connector writes them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::data::kv as attr;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use authwatch_core::{semconv, Signal};
use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{HeaderMap as AxHeaders, StatusCode as AxStatus, Uri};

/// Hang guard of [`Capture::wait_for`].
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// A request the capture server got.
#[derive(Debug, Clone)]
pub(crate) struct Req {
    pub path: String,
    pub headers: AxHeaders,
    pub body: serde_json::Value,
}

#[derive(Default)]
struct CaptureState {
    requests: Vec<Req>,
    script: VecDeque<u16>,
}

/// An HTTP server on 127.0.0.1:0 that records every request and answers from a script
/// (then 200).
pub(crate) struct Capture {
    addr: SocketAddr,
    state: Arc<Mutex<CaptureState>>,
    task: tokio::task::JoinHandle<()>,
}

async fn capture_handler(
    AxState(state): AxState<Arc<Mutex<CaptureState>>>,
    uri: Uri,
    headers: AxHeaders,
    body: Bytes,
) -> (AxStatus, &'static str) {
    let mut s = state.lock().unwrap();
    s.requests.push(Req {
        path: uri.path().to_owned(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let code = s.script.pop_front().unwrap_or(200);
    (AxStatus::from_u16(code).unwrap(), "scripted answer")
}

impl Capture {
    pub(crate) async fn start() -> Capture {
        let state = Arc::new(Mutex::new(CaptureState::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .fallback(capture_handler)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Capture { addr, state, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next answers' status codes, in order.
    pub(crate) fn answer(&self, codes: &[u16]) {
        self.state.lock().unwrap().script.extend(codes);
    }

    pub(crate) fn requests(&self) -> Vec<Req> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Waits until at least `n` requests came (hang guard only).
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Req> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = self.requests();
            if r.len() >= n {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} requests, got {}: {r:?}",
                r.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An alert event record as the `alerts` connector writes it.
pub(crate) fn alert_record(name: &str, state: &str, extra: Vec<(&str, Value)>) -> LogRecord {
    let s = |v: &str| Value::StringValue(v.to_owned());
    let mut attributes = vec![
        attr(semconv::ALERT_NAME, s(name)),
        attr(semconv::ALERT_STATE, s(state)),
    ];
    attributes.extend(extra.into_iter().map(|(k, v)| attr(k, v)));
    LogRecord {
        event_name: semconv::ALERT_EVENT.into(),
        time_unix_nano: 1_714_564_801_000_000_000,
        attributes,
        ..Default::default()
    }
}

/// The connector's full attribute set for an auth0 alert.
pub(crate) fn rich(state: &str, verdict: &str) -> LogRecord {
    let s = |v: &str| Value::StringValue(v.to_owned());
    let mut extra = vec![
        (semconv::ALERT_SEVERITY, s("page")),
        (semconv::ALERT_RULE_KIND, s("threshold")),
        (semconv::ALERT_FINGERPRINT, s("fp-auth0")),
        (semconv::ALERT_VERDICT, s(verdict)),
        (
            semconv::ALERT_VERDICT_REASON,
            s("probes and real traffic both fail"),
        ),
        (semconv::ALERT_STARTS_AT, s("2024-05-01T12:00:00Z")),
        (
            semconv::ALERT_RUNBOOK_URL,
            s("https://runbooks.example.com/auth0"),
        ),
        (
            semconv::ALERT_STATUS_PAGE_URL,
            s("https://status.auth0.com"),
        ),
        ("alert.label.alertname", s("auth0_errors")),
        ("alert.label.dependency", s("auth0")),
        (
            "alert.annotation.summary",
            s("Auth0 token endpoint failing"),
        ),
        (semconv::ALERT_VALUE, Value::DoubleValue(0.42)),
        (semconv::ALERT_THRESHOLD, Value::DoubleValue(0.05)),
        ("alert.signal.probe.failures", Value::IntValue(3)),
        ("alert.signal.traffic.error_ratio", Value::DoubleValue(0.42)),
    ];
    if state == "resolved" {
        extra.push((semconv::ALERT_ENDS_AT, s("2024-05-01T12:10:00Z")));
    }
    alert_record("auth0_errors", state, extra)
}

pub(crate) fn signal_of(records: Vec<LogRecord>) -> Signal {
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
