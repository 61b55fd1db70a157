//! Turns a [`RunResult`] into OTLP: one trace per run (root span, CLIENT spans per HTTP request,
//! phase spans) and the run's metrics (cumulative counters and histograms, current gauges).

use std::time::SystemTime;

use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_core::semconv as sc;
use authwatch_core::telemetry::ReceiverTelemetry;
use authwatch_core::time::otlp_time;
use authwatch_core::{Router, Signal, SignalKind};
use tokio::time::Instant;
use tracing::debug;

use super::client::TransportError;
use super::outcome::Outcome;
use super::metrics::MetricState;
use super::result::{Purpose, RunResult, Step};

const SCOPE: &str = "authwatch.synthetic";
const SERVER_PORT: &str = "server.port";
const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
const USER_AGENT_SYNTHETIC_TYPE: &str = "user_agent.synthetic.type";

/// Histogram bucket bounds, in seconds: the HTTP client duration advisory buckets.
pub(crate) const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

pub(super) fn s(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn i(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}


pub(super) fn resource(check: &str) -> Resource {
    Resource {
        attributes: vec![
            s(sc::SERVICE_NAME, "authwatch"),
            s(sc::SYNTHETIC_CHECK, check),
        ],
        ..Default::default()
    }
}

pub(super) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

// === traces ===

struct Clock {
    wall: SystemTime,
    mono: Instant,
}

impl Clock {
    fn at(&self, t: Instant) -> u64 {
        let d = t.saturating_duration_since(self.mono);
        otlp_time(self.wall + d)
    }
}

fn span_id() -> Vec<u8> {
    let mut id = [0u8; 8];
    while id == [0u8; 8] {
        id = rand::random();
    }
    id.to_vec()
}

fn error_status(message: Option<&str>) -> Option<Status> {
    Some(Status {
        message: message.unwrap_or_default().to_owned(),
        code: status::StatusCode::Error as i32,
    })
}

struct SpanBuilder {
    trace_id: Vec<u8>,
    clock: Clock,
    spans: Vec<Span>,
}

impl SpanBuilder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        parent: &[u8],
        name: &str,
        kind: span::SpanKind,
        start: Instant,
        end: Instant,
        attributes: Vec<KeyValue>,
        status: Option<Status>,
    ) -> Vec<u8> {
        let id = span_id();
        self.spans.push(Span {
            trace_id: self.trace_id.clone(),
            span_id: id.clone(),
            parent_span_id: parent.to_vec(),
            name: name.to_owned(),
            kind: kind as i32,
            start_time_unix_nano: self.clock.at(start),
            end_time_unix_nano: self.clock.at(end),
            attributes,
            status,
            ..Default::default()
        });
        id
    }

    fn http(&mut self, parent: &[u8], step: &Step, oauth_error: Option<&str>) -> bool {
        let ex = &step.exchange;
        let mut attrs = vec![
            s(sc::HTTP_REQUEST_METHOD, ex.method.clone()),
            s(sc::SERVER_ADDRESS, ex.endpoint.host.clone()),
            i(SERVER_PORT, i64::from(ex.endpoint.port)),
            s(sc::URL_FULL, ex.endpoint.url_full.clone()),
            s(USER_AGENT_SYNTHETIC_TYPE, "test"),
        ];
        if let Some(p) = ex.peer {
            attrs.push(s(NETWORK_PEER_ADDRESS, p.ip().to_string()));
        }
        if let Some(hop) = &step.hop {
            attrs.push(s(sc::SYNTHETIC_HOP, hop.kind.as_str()));
            if let Some(page) = hop.page {
                attrs.push(s(sc::SYNTHETIC_PAGE, page));
            }
        }
        let error_type = match &ex.result {
            Ok(resp) => {
                attrs.push(i(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(resp.status)));
                (resp.status >= 400).then(|| resp.status.to_string())
            }
            Err(e) => Some(e.error_type().to_owned()),
        };
        if let (Purpose::Main, Some(code)) = (step.purpose, oauth_error) {
            attrs.push(s(sc::OAUTH_ERROR, code));
        }
        let failed = error_type.is_some();
        let status = error_type.as_ref().and_then(|t| {
            attrs.push(s(sc::ERROR_TYPE, t.clone()));
            // The status code says it all for HTTP errors; transport errors get their message.
            match &ex.result {
                Err(e @ TransportError::Timeout) => error_status(Some(&e.to_string())),
                Err(e) => error_status(Some(&e.to_string())),
                Ok(_) => error_status(None),
            }
        });
        let id = self.push(
            parent,
            &ex.method,
            span::SpanKind::Client,
            ex.start,
            ex.end,
            attrs,
            status,
        );
        for t in &ex.phases {
            self.push(
                &id,
                t.phase.as_str(),
                span::SpanKind::Internal,
                t.start,
                t.end,
                vec![s(sc::SYNTHETIC_PHASE, t.phase.as_str())],
                None,
            );
        }
        failed
    }
}

/// The run's trace: root span, HTTP CLIENT spans with phase children, `jwks` and `validate`.
pub(crate) fn traces(r: &RunResult) -> ExportTraceServiceRequest {
    let mut trace_id = [0u8; 16];
    while trace_id == [0u8; 16] {
        trace_id = rand::random();
    }
    let mut b = SpanBuilder {
        trace_id: trace_id.to_vec(),
        clock: Clock {
            wall: r.started_at,
            mono: r.start,
        },
        spans: Vec::new(),
    };
    let root_id = span_id();
    for step in r.steps.iter().filter(|s| s.purpose == Purpose::Main) {
        b.http(&root_id, step, r.oauth_error.as_deref());
    }
    if let Some((start, end)) = r.jwks {
        let jwks_id = span_id();
        let mut failed = false;
        for step in r.steps.iter().filter(|s| s.purpose != Purpose::Main) {
            failed |= b.http(&jwks_id, step, None);
        }
        let jwks_failed = failed || (r.validation.is_none() && !r.outcome.is_success());
        b.spans.push(Span {
            trace_id: b.trace_id.clone(),
            span_id: jwks_id,
            parent_span_id: root_id.clone(),
            name: "jwks".into(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: b.clock.at(start),
            end_time_unix_nano: b.clock.at(end),
            attributes: vec![s(sc::SYNTHETIC_PHASE, "jwks")],
            status: if jwks_failed {
                error_status(r.message.as_deref())
            } else {
                None
            },
            ..Default::default()
        });
    }
    if let Some((start, end)) = r.validation {
        let failed = matches!(r.outcome, Outcome::InvalidToken | Outcome::MissingClaim);
        let mut attrs = vec![s(sc::SYNTHETIC_PHASE, "validate")];
        if failed {
            if let Some(t) = &r.error_type {
                attrs.push(s(sc::ERROR_TYPE, t.clone()));
            }
        }
        b.push(
            &root_id,
            "validate",
            span::SpanKind::Internal,
            start,
            end,
            attrs,
            if failed {
                error_status(r.message.as_deref())
            } else {
                None
            },
        );
    }
    let mut attrs = vec![
        s(sc::SYNTHETIC_CHECK, r.check.clone()),
        s(sc::SYNTHETIC_TYPE, r.check_type),
        s(sc::SYNTHETIC_OUTCOME, r.outcome.as_str()),
    ];
    // The root span carries the main request's HTTP client attributes too, so that the
    // `error_rate` connector (which counts probe root spans) classifies and templates it.
    if let Some(step) = r.steps.iter().find(|s| s.purpose == Purpose::Main) {
        let ex = &step.exchange;
        attrs.push(s(sc::SERVER_ADDRESS, ex.endpoint.host.clone()));
        attrs.push(s(sc::HTTP_REQUEST_METHOD, ex.method.clone()));
        attrs.push(s(sc::URL_FULL, ex.endpoint.url_full.clone()));
        if let Ok(resp) = &ex.result {
            attrs.push(i(sc::HTTP_RESPONSE_STATUS_CODE, i64::from(resp.status)));
        }
    }
    if let Some(code) = &r.oauth_error {
        attrs.push(s(sc::OAUTH_ERROR, code.clone()));
    }
    if r.degraded {
        attrs.push(KeyValue {
            key: sc::SYNTHETIC_DEGRADED.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::BoolValue(true)),
            }),
            ..Default::default()
        });
    }
    if let Some(t) = &r.error_type {
        attrs.push(s(sc::ERROR_TYPE, t.clone()));
    }
    let root = Span {
        trace_id: b.trace_id.clone(),
        span_id: root_id,
        parent_span_id: Vec::new(),
        name: format!("synthetic {}", r.check),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: b.clock.at(r.start),
        end_time_unix_nano: b.clock.at(r.end),
        attributes: attrs,
        status: if r.outcome.is_success() {
            None
        } else {
            error_status(r.message.as_deref())
        },
        ..Default::default()
    };
    let mut spans = vec![root];
    spans.append(&mut b.spans);
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(&r.check)),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

// === impl Emitter ===

/// Sends each run's trace and metrics into the pipelines that take them.
pub(crate) struct Emitter {
    next: Router,
    telemetry: ReceiverTelemetry,
    state: MetricState,
}

impl Emitter {
    pub fn new(next: Router, telemetry: ReceiverTelemetry) -> Self {
        Emitter {
            next,
            telemetry,
            state: MetricState::new(),
        }
    }

    pub async fn emit(&mut self, r: &RunResult) {
        self.state.record(r);
        let mut out = Vec::new();
        if self.next.accepts(SignalKind::Traces) {
            out.push(Signal::Traces(traces(r)));
        }
        if self.next.accepts(SignalKind::Metrics) {
            out.push(Signal::Metrics(self.state.metrics(r)));
        }
        for signal in out {
            let kind = signal.kind();
            let n = signal.item_count();
            // A run reaches the alerts connector at once, whatever a `batch` waits for.
            if self.next.takes_live_for(kind) {
                if let Err(e) = self.next.route_live(signal.clone()).await {
                    debug!(check = %r.check, signal = %kind, error = %e, "Live probe result refused.");
                }
            }
            match self.next.route(signal).await {
                Ok(()) => self.telemetry.accepted(kind, n),
                Err(e) => {
                    self.telemetry.refused(kind, n);
                    debug!(check = %r.check, signal = %kind, error = %e, "Pipeline refused a probe result.");
                }
            }
        }
    }
}
