//! OTLP data builders: realistic identity-provider client spans, metrics and logs.

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::otlp::trace::v1::{span, status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_core::Signal;

pub fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

pub fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            kv("service.name", service),
            kv("deployment.environment", "test"),
        ],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "authwatch-testkit".into(),
        version: "1.0.0".into(),
        ..Default::default()
    }
}

/// The `i`th test span: an HTTP client call to an Auth0 token endpoint; every tenth one a 503.
pub fn client_span(i: u64) -> Span {
    let failed = i % 10 == 9;
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(i + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&0xA11CE_u64.to_be_bytes());
    let span_id = (i + 1).to_be_bytes();
    Span {
        trace_id: trace_id.to_vec(),
        span_id: span_id.to_vec(),
        name: "POST".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000,
        end_time_unix_nano: 1_700_000_000_000_000_000 + i * 1_000_000 + 42_000_000,
        attributes: vec![
            kv("http.request.method", "POST"),
            kv("server.address", "tenant.us.auth0.com"),
            kv("url.full", "https://tenant.us.auth0.com/oauth/token"),
            kv_int("http.response.status_code", if failed { 503 } else { 200 }),
            kv_int("test.index", i as i64),
        ],
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: String::new(),
        }),
        ..Default::default()
    }
}

/// A trace request with `n` spans, indices starting at `first`.
pub fn traces(first: u64, n: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource("checkout")),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans: (first..first + n).map(client_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A metrics request with `n` gauge points, values starting at `first`.
pub fn metrics(first: u64, n: u64) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource("checkout")),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics: vec![Metric {
                    name: "test.gauge".into(),
                    unit: "1".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: (first..first + n)
                            .map(|i| NumberDataPoint {
                                attributes: vec![kv_int("test.index", i as i64)],
                                time_unix_nano: 1_700_000_000_000_000_000 + i,
                                value: Some(number_data_point::Value::AsInt(i as i64)),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// A logs request with `n` records, indices starting at `first`.
pub fn logs(first: u64, n: u64) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource("checkout")),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope()),
                log_records: (first..first + n)
                    .map(|i| LogRecord {
                        time_unix_nano: 1_700_000_000_000_000_000 + i,
                        severity_number: 9,
                        severity_text: "INFO".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(format!("log {i}"))),
                        }),
                        attributes: vec![kv_int("test.index", i as i64)],
                        ..Default::default()
                    })
                    .collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

pub fn trace_signal(first: u64, n: u64) -> Signal {
    Signal::Traces(traces(first, n))
}
pub fn metric_signal(first: u64, n: u64) -> Signal {
    Signal::Metrics(metrics(first, n))
}
pub fn log_signal(first: u64, n: u64) -> Signal {
    Signal::Logs(logs(first, n))
}
