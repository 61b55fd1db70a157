//! End to end: alerts do not wait for the exported metrics' cadence. authwatch runs with
//! `metrics_flush_interval: 1h` and a `batch` processor with a one-hour `timeout` in front of the
//! `alerts` connector; client spans with 30% errors and a probe that cannot connect must still
//! bring their alerts to a REAL Alertmanager (within a generous deadline: without the live lane
//! they would take an hour), while an OTLP backend exporter fed by the same `error_rate`
//! connector sees none of its metrics (they are exported only at the flush, an hour away).

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_core::semconv;
use authwatch_testkit::alertmanager::Alertmanager;
use authwatch_testkit::otlp_server::OtlpServer;
use authwatch_testkit::{client_span, kv, kv_int, resource};
use common::*;

const WAIT: Duration = Duration::from_secs(60);

/// 100 client calls to Auth0, 30 of them answered 503, ending now.
fn burst() -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans: Vec<Span> = (0..100u64)
        .map(|i| {
            let code = if i % 10 < 3 { 503 } else { 200 };
            let mut s = client_span(i);
            s.start_time_unix_nano = now - 40_000_000;
            s.end_time_unix_nano = now;
            s.attributes = vec![
                kv("http.request.method", "POST"),
                kv("server.address", "tenant.us.auth0.com"),
                kv("url.full", "https://tenant.us.auth0.com/oauth/token"),
                kv_int("http.response.status_code", code),
            ];
            s.status = Some(Status {
                code: if code >= 500 {
                    status::StatusCode::Error
                } else {
                    status::StatusCode::Unset
                } as i32,
                message: String::new(),
            });
            s
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource("checkout")),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_arrive_long_before_the_flush_and_backends_get_no_live_data() {
    let am = Alertmanager::start().await;
    let backend = OtlpServer::start().await;
    let grpc = free_port();
    // Nothing listens here: every probe run fails to connect.
    let closed = free_port();
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{grpc}'}}
  synthetic:
    interval: 1s
    timeout: 1s
    initial_delay: 1s
    checks:
      - {{name: login, type: http, url: 'http://127.0.0.1:{closed}/health'}}
processors:
  batch: {{}}
  batch/hour: {{timeout: 1h, send_batch_size: 1000000}}
connectors:
  error_rate:
    dependencies:
      - name: auth0
        server_address: ['*.auth0.com']
    metrics_flush_interval: 1h
  alerts:
    rules:
      - name: auth0_errors
        threshold: {{dependency: auth0, source: traffic, error_ratio: 0.05, window: 5m, min_requests: 20}}
        severity: page
      - name: login_probe
        consecutive: {{failures: 2, successes: 2}}
        severity: page
exporters:
  alertmanager:
    endpoint: '{am}'
  otlp/backend:
    endpoint: 'http://{backend}'
    tls: {{insecure: true}}
service:
  pipelines:
    traces:
      receivers: [otlp, synthetic]
      processors: [batch]
      exporters: [error_rate]
    metrics/alerts:
      receivers: [error_rate, synthetic]
      processors: [batch/hour]
      exporters: [alerts]
    metrics/backend:
      receivers: [error_rate, synthetic]
      exporters: [otlp/backend]
    logs:
      receivers: [alerts]
      exporters: [alertmanager]
",
        am = am.url(),
        backend = backend.grpc_addr(),
    );
    let aw = Authwatch::start(&yaml);
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();
    client.export(burst()).await.unwrap();
    let alerts = am
        .wait_for("both alerts are active", WAIT, |a| {
            ["auth0_errors", "login_probe"]
                .iter()
                .all(|n| a.iter().any(|x| x["labels"]["alertname"] == *n))
        })
        .await;
    let ctx = || format!("{alerts:#?}\nauthwatch output:\n{}", aw.output());
    let errors = alerts
        .iter()
        .find(|a| a["labels"]["alertname"] == "auth0_errors")
        .unwrap();
    assert_eq!(
        errors["annotations"]["signal_traffic_errors"],
        "30",
        "{}",
        ctx()
    );
    assert_eq!(errors["annotations"]["value"], "0.3", "{}", ctx());

    // The backend has the probes' own metrics (they are exported as they come) but none of
    // the error_rate connector's: its live updates never reach an exporter.
    assert!(
        eventually(WAIT, async || backend
            .metrics()
            .iter()
            .flat_map(|r| &r.resource_metrics)
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
            .any(|m| m.name == semconv::PROBE_SUCCESS))
        .await,
        "the backend gets the probe metrics\n{}",
        ctx()
    );
    let names: Vec<String> = backend
        .metrics()
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.clone())
        .collect();
    for live_only in [
        semconv::DEPENDENCY_REQUESTS,
        semconv::DEPENDENCY_ERRORS,
        semconv::DEPENDENCY_ERROR_RATIO,
        semconv::DEPENDENCY_WINDOW_REQUESTS,
    ] {
        assert!(
            !names.iter().any(|n| n == live_only),
            "{live_only} reached the backend before the flush: {names:?}\n{}",
            ctx()
        );
    }
}
