//! Issue 17, "every call counted once", against the real binary: an `error_rate` connector and
//! an `otlp` exporter whose backend is down share a traces pipeline. 30 OTLP/HTTP requests of
//! 20 client spans (25% errors) are sent by a client that re-sends every refused request until
//! it is accepted. `error_rate`'s counts must equal the spans accepted exactly, and once the
//! backend is back it must get every span exactly once.
//!
//! Two shapes: behind `batch` (its retries must not reach `error_rate` again: the fanout's
//! partial refusal), and without it (the receiver refuses the client while `error_rate` has
//! counted the spans already: the client's re-sent spans must be skipped).

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
use authwatch_core::otlp::trace::v1::{status, ResourceSpans, ScopeSpans, Span, Status};
use authwatch_core::SignalKind;
use authwatch_testkit::otlp_server::OtlpServer;
use authwatch_testkit::{client_span, kv, kv_int, raw_http, resource};
use common::*;
use prost::Message;

const REQUESTS: u64 = 30;
const SPANS: u64 = 20;
/// How long a refused request may keep being refused before the test fails.
const WAIT: Duration = Duration::from_secs(120);

/// Request `k`: spans `k*20 .. k*20+20`, calls to Auth0 of which one in four failed with 503.
fn request(k: u64) -> Vec<u8> {
    let spans: Vec<Span> = (k * SPANS..(k + 1) * SPANS)
        .map(|i| {
            let code = if i % 4 == 0 { 503 } else { 200 };
            let mut s = client_span(i);
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
    .encode_to_vec()
}

fn config(http: u16, backend: &OtlpServer, metrics: &OtlpServer, processors: &str) -> String {
    format!(
        "
receivers:
  otlp:
    protocols:
      http: {{endpoint: '127.0.0.1:{http}'}}
processors:
  batch: {{send_batch_size: 40, timeout: 20ms}}
connectors:
  error_rate:
    dependencies: [{{name: auth0, server_address: ['*.auth0.com']}}]
    metrics_flush_interval: 500ms
    error_groups: {{enabled: false}}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    timeout: 2s
    retry_on_failure: {{initial_interval: 50ms, max_interval: 200ms, max_elapsed_time: 0s}}
    sending_queue: {{queue_size: 2, num_consumers: 1}}
  otlp/metrics:
    endpoint: 'http://{mg}'
    tls: {{insecure: true}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [{processors}], exporters: [otlp, error_rate]}}
    metrics: {{receivers: [error_rate], exporters: [otlp/metrics]}}
",
        bg = backend.grpc_addr(),
        mg = metrics.grpc_addr(),
    )
}

/// `authwatch.dependency.requests` and `.errors` summed over the series of the last flush.
fn counted(metrics: &OtlpServer) -> Option<(f64, f64)> {
    let reqs: Vec<ExportMetricsServiceRequest> = metrics.metrics();
    let last = reqs
        .iter()
        .rev()
        .find(|r| sum_of(r, "authwatch.dependency.requests").is_some())?;
    Some((
        sum_of(last, "authwatch.dependency.requests")?,
        sum_of(last, "authwatch.dependency.errors").unwrap_or(0.0),
    ))
}

fn sum_of(req: &ExportMetricsServiceRequest, name: &str) -> Option<f64> {
    let mut found = None;
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        if let Some(metric::Data::Sum(s)) = &m.data {
            let v: f64 = s
                .data_points
                .iter()
                .map(|p| match p.value {
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    None => 0.0,
                })
                .sum();
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// Span index (from the trace id testkit writes) -> times the backend got it.
fn arrived(backend: &OtlpServer) -> HashMap<u64, usize> {
    let mut seen = HashMap::new();
    for t in backend.traces() {
        for s in t
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| &s.spans)
        {
            let i = u64::from_be_bytes(s.span_id[..8].try_into().unwrap()) - 1;
            *seen.entry(i).or_insert(0) += 1;
        }
    }
    seen
}

/// Sends the 30 requests one after the other, re-sending each refused one (503 / 429) until it
/// is accepted. The backend comes back once the client has been refused `refusals_before_up`
/// times. Returns (spans accepted, refusals seen).
async fn send_all(
    addr: SocketAddr,
    backend: &OtlpServer,
    refusals_before_up: usize,
) -> (u64, usize) {
    let mut accepted = 0;
    let mut refusals = 0;
    let mut up = false;
    for k in 0..REQUESTS {
        let body = request(k);
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let reply = raw_http::post(
                addr,
                "/v1/traces",
                &[("content-type", "application/x-protobuf")],
                &body,
            )
            .await;
            match reply.status {
                200 => {
                    accepted += SPANS;
                    break;
                }
                503 | 429 => {
                    refusals += 1;
                    assert!(
                        std::time::Instant::now() < deadline,
                        "request {k} still refused after {WAIT:?}"
                    );
                    if !up && refusals >= refusals_before_up {
                        backend.restart().await;
                        up = true;
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
                other => panic!("request {k}: unexpected {other}: {}", reply.text()),
            }
        }
    }
    if !up {
        backend.restart().await;
    }
    (accepted, refusals)
}

async fn counts_equal_the_truth(processors: &str) {
    let backend = OtlpServer::start_stopped().await;
    let metrics = OtlpServer::start().await;
    let http = free_port();
    let _aw = Authwatch::start(&config(http, &backend, &metrics, processors));
    let addr: SocketAddr = ([127, 0, 0, 1], http).into();

    let (accepted, refusals) = send_all(addr, &backend, 10).await;
    assert!(
        refusals >= 10,
        "with the backend down the client must be refused and retry ({refusals} refusals)"
    );
    assert_eq!(
        accepted,
        REQUESTS * SPANS,
        "every request is accepted in the end"
    );

    // Every accepted span reaches the backend once it is back, and only once.
    backend
        .wait_for_items(SignalKind::Traces, accepted as usize, WAIT)
        .await;
    let got = arrived(&backend);
    let missing: Vec<u64> = (0..accepted).filter(|i| !got.contains_key(i)).collect();
    assert!(missing.is_empty(), "accepted spans lost: {missing:?}");
    let twice: Vec<(&u64, &usize)> = got.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "spans that reached the backend twice: {twice:?}"
    );

    // error_rate counted each accepted span once: wait for a flush that has them all, then
    // for one more, and compare exactly.
    let errors = accepted / 4;
    let mut last = None;
    let done = eventually(WAIT, async || {
        last = counted(&metrics);
        last.is_some_and(|(r, _)| r >= accepted as f64)
    })
    .await;
    assert!(done, "error_rate never counted {accepted} spans: {last:?}");
    let flushes = metrics.request_count();
    assert!(
        eventually(WAIT, async || metrics.request_count() >= flushes + 2).await,
        "error_rate keeps flushing"
    );
    assert_eq!(
        counted(&metrics),
        Some((accepted as f64, errors as f64)),
        "error_rate's requests and errors equal the spans accepted ({accepted}) and their errors ({errors})"
    );
    let extra: usize = backend.item_count(SignalKind::Traces) - accepted as usize;
    assert_eq!(extra, 0, "no span reached the backend twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_exporter_behind_batch_does_not_inflate_error_rate() {
    counts_equal_the_truth("batch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_retries_do_not_inflate_error_rate() {
    counts_equal_the_truth("").await;
}
