//! End to end: client spans for an Auth0 tenant go into the authwatch binary over OTLP/gRPC;
//! the `error_rate` connector turns them into error counters, the `alerts` connector raises an
//! alert event, and the `alertmanager` exporter posts it to a REAL Prometheus Alertmanager
//! (started on loopback by the testkit; the test fails if the binary is missing). The alert must
//! show in `GET /api/v2/alerts` with its labels, annotations and verdict, and must disappear
//! (resolved) once healthy traffic brings the error ratio down.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_testkit::alertmanager::Alertmanager;
use authwatch_testkit::{client_span, kv, kv_int, resource};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

/// `n` client calls to `tenant.us.auth0.com/oauth/token`, answered with `code`, ending now.
fn calls(first: u64, n: u64, code: i64) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans: Vec<Span> = (first..first + n)
        .map(|i| {
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
                    status::StatusCode::Error as i32
                } else {
                    status::StatusCode::Unset as i32
                },
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

fn ours(a: &Value) -> bool {
    a["labels"]["alertname"] == "auth0_errors"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_alert_in_alertmanager_and_resolve() {
    let am = Alertmanager::start().await;
    let grpc = free_port();
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{grpc}'}}
connectors:
  error_rate:
    dependencies:
      - name: auth0
        server_address: ['*.auth0.com']
    metrics_flush_interval: 200ms
  alerts:
    status_page_url: https://status.auth0.com
    rules:
      - name: auth0_errors
        threshold: {{dependency: auth0, error_ratio: 0.5, window: 5m, min_requests: 10}}
        severity: page
        runbook_url: https://runbooks.example.com/auth0
        labels: {{team: identity}}
        annotations: {{summary: 'Auth0 calls are failing'}}
exporters:
  alertmanager:
    endpoint: '{am}'
    resend_interval: 2s
    alert_ttl: 30s
    generator_url: https://authwatch.example.com/alerts
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [error_rate]}}
    metrics: {{receivers: [error_rate], exporters: [alerts]}}
    logs: {{receivers: [alerts], exporters: [alertmanager]}}
",
        am = am.url()
    );
    let aw = Authwatch::start(&yaml);
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .unwrap();

    // 30 calls, all 503: error ratio 1 over at least `min_requests` calls.
    client.export(calls(0, 30, 503)).await.unwrap();
    let alerts = am
        .wait_for("the auth0_errors alert is active", WAIT, |a| {
            a.iter().any(ours)
        })
        .await;
    let a = alerts.iter().find(|a| ours(a)).unwrap();
    let ctx = || format!("{}\nauthwatch output:\n{}", a, aw.output());
    assert_eq!(a["status"]["state"], "active", "{}", ctx());
    assert_eq!(a["labels"]["severity"], "page", "{}", ctx());
    assert_eq!(a["labels"]["dependency"], "auth0", "{}", ctx());
    assert_eq!(a["labels"]["team"], "identity", "{}", ctx());
    // 5xx from real traffic and no probes to compare with: the provider's fault.
    assert_eq!(a["labels"]["verdict"], "provider_outage", "{}", ctx());
    assert_eq!(
        a["annotations"]["summary"],
        "Auth0 calls are failing",
        "{}",
        ctx()
    );
    assert_eq!(
        a["annotations"]["runbook_url"],
        "https://runbooks.example.com/auth0",
        "{}",
        ctx()
    );
    assert_eq!(
        a["annotations"]["status_page_url"],
        "https://status.auth0.com",
        "{}",
        ctx()
    );
    assert!(
        a["annotations"]["verdict_reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{}",
        ctx()
    );
    assert_eq!(a["annotations"]["threshold"], "0.5", "{}", ctx());
    assert_eq!(a["annotations"]["value"], "1", "{}", ctx());
    assert_eq!(a["annotations"]["signal_traffic_errors"], "30", "{}", ctx());
    assert_eq!(
        a["generatorURL"],
        "https://authwatch.example.com/alerts",
        "{}",
        ctx()
    );

    // Recovery: 300 healthy calls bring the ratio to 30 / 330, under the threshold.
    client.export(calls(1000, 300, 200)).await.unwrap();
    am.wait_for(
        "the auth0_errors alert is resolved (gone from the active list)",
        WAIT,
        |a| !a.iter().any(ours),
    )
    .await;
    assert!(
        aw.output().contains("Alertmanager exporter started."),
        "{}",
        aw.output()
    );
}
