//! End to end: real OTLP clients (the opentelemetry-otlp crate, and raw protobuf/JSON over gRPC
//! and HTTP) send traces, metrics and logs into the authwatch binary, which forwards them with
//! the `otlp` (gRPC) and `otlphttp` exporters to a real OTLP server. Every item must arrive
//! unchanged through both exporters, and the self-telemetry counters must agree.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceRequest;
use authwatch_core::otlp::common::v1::InstrumentationScope;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::Metric;
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::otlp::trace::v1::Span;
use authwatch_core::SignalKind;
use authwatch_testkit::otlp_server::{OtlpServer, Transport};
use common::*;
use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::runtime::Tokio;
use prost::Message;

struct Setup {
    backend: OtlpServer,
    aw: Authwatch,
    grpc: SocketAddr,
    http: SocketAddr,
    metrics: SocketAddr,
}

async fn setup() -> Setup {
    let backend = OtlpServer::start().await;
    let (g, h, m) = (free_port(), free_port(), free_port());
    let yaml = format!(
        "
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: '127.0.0.1:{g}'}}
      http: {{endpoint: '127.0.0.1:{h}'}}
processors:
  batch: {{timeout: 50ms}}
exporters:
  otlp:
    endpoint: 'http://{bg}'
    tls: {{insecure: true}}
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
  otlphttp:
    endpoint: '{bh}'
    retry_on_failure: {{initial_interval: 100ms, max_interval: 1s}}
service:
  telemetry: {{metrics: {{address: '127.0.0.1:{m}'}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp]}}
    metrics: {{receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp]}}
    logs: {{receivers: [otlp], processors: [batch], exporters: [otlp, otlphttp]}}
",
        bg = backend.grpc_addr(),
        bh = backend.http_endpoint(),
    );
    let aw = Authwatch::start(&yaml);
    Setup {
        backend,
        aw,
        grpc: format!("127.0.0.1:{g}").parse().unwrap(),
        http: format!("127.0.0.1:{h}").parse().unwrap(),
        metrics: format!("127.0.0.1:{m}").parse().unwrap(),
    }
}

type Flat<T> = Vec<(Option<Resource>, Option<InstrumentationScope>, T)>;

fn flat_spans(reqs: &[ExportTraceServiceRequest]) -> Flat<Span> {
    let mut v: Flat<Span> = reqs
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| {
            rs.scope_spans.iter().flat_map(move |ss| {
                ss.spans
                    .iter()
                    .map(move |s| (rs.resource.clone(), ss.scope.clone(), s.clone()))
            })
        })
        .collect();
    v.sort_by(|a, b| a.2.span_id.cmp(&b.2.span_id));
    v
}

fn flat_metrics(reqs: &[ExportMetricsServiceRequest]) -> Flat<Metric> {
    let mut v: Flat<Metric> = reqs
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|rm| {
            rm.scope_metrics.iter().flat_map(move |sm| {
                sm.metrics
                    .iter()
                    .map(move |m| (rm.resource.clone(), sm.scope.clone(), m.clone()))
            })
        })
        .collect();
    v.sort_by(|a, b| format!("{:?}", a.2).cmp(&format!("{:?}", b.2)));
    v
}

fn flat_logs(reqs: &[ExportLogsServiceRequest]) -> Flat<LogRecord> {
    let mut v: Flat<LogRecord> = reqs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|rl| {
            rl.scope_logs.iter().flat_map(move |sl| {
                sl.log_records
                    .iter()
                    .map(move |l| (rl.resource.clone(), sl.scope.clone(), l.clone()))
            })
        })
        .collect();
    v.sort_by(|a, b| format!("{:?}", a.2).cmp(&format!("{:?}", b.2)));
    v
}

/// What the backend got through one exporter.
fn via<T: Clone>(
    backend: &OtlpServer,
    transport: Transport,
    pick: impl Fn(&authwatch_core::Signal) -> Option<T>,
) -> Vec<T> {
    backend
        .received()
        .iter()
        .filter(|r| r.transport == transport && r.reply.is_accepted())
        .filter_map(|r| pick(&r.signal))
        .collect()
}

fn traces_of(s: &authwatch_core::Signal) -> Option<ExportTraceServiceRequest> {
    match s {
        authwatch_core::Signal::Traces(t) => Some(t.clone()),
        _ => None,
    }
}
fn metrics_of(s: &authwatch_core::Signal) -> Option<ExportMetricsServiceRequest> {
    match s {
        authwatch_core::Signal::Metrics(t) => Some(t.clone()),
        _ => None,
    }
}
fn logs_of(s: &authwatch_core::Signal) -> Option<ExportLogsServiceRequest> {
    match s {
        authwatch_core::Signal::Logs(t) => Some(t.clone()),
        _ => None,
    }
}

fn attr<'a>(attrs: &'a [authwatch_core::otlp::common::v1::KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            authwatch_core::otlp::common::v1::any_value::Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

fn sdk_resource(name: &str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", name.to_owned()),
            KeyValue::new("deployment.environment", "e2e"),
        ])
        .build()
}

/// Spans, metrics and logs from the OpenTelemetry Rust SDK, over gRPC and over HTTP/protobuf.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_telemetry_arrives_unchanged_through_both_exporters() {
    let s = setup().await;
    let grpc_url = format!("http://{}", s.grpc);
    let http_base = format!("http://{}", s.http);

    // --- traces: 30 spans over gRPC, 20 over HTTP ---
    let mut sent: BTreeMap<Vec<u8>, (String, &'static str)> = BTreeMap::new();
    for (transport, n) in [("grpc", 30), ("http", 20)] {
        let exporter = if transport == "grpc" {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&grpc_url)
                .build()
                .unwrap()
        } else {
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{http_base}/v1/traces"))
                .build()
                .unwrap()
        };
        let bsp = opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(exporter, Tokio).build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(bsp)
            .with_resource(sdk_resource(&format!("checkout-{transport}")))
            .build();
        let tracer = provider.tracer_with_scope(
            opentelemetry::InstrumentationScope::builder("e2e-client")
                .with_version("1.2.3")
                .build(),
        );
        for i in 0..n {
            let mut span = tracer
                .span_builder("POST /oauth/token")
                .with_kind(SpanKind::Client)
                .with_attributes([
                    KeyValue::new("server.address", "tenant.us.auth0.com"),
                    KeyValue::new(
                        "http.response.status_code",
                        if i % 5 == 0 { 503 } else { 200 },
                    ),
                    KeyValue::new("test.name", format!("{transport}-{i}")),
                ])
                .start(&tracer);
            let id = span.span_context().span_id().to_bytes().to_vec();
            sent.insert(id, (format!("{transport}-{i}"), transport));
            span.end();
        }
        tokio::task::spawn_blocking(move || {
            provider.force_flush().unwrap();
            provider.shutdown().unwrap();
        })
        .await
        .unwrap();
    }

    // --- metrics: a counter over each transport ---
    for transport in ["grpc", "http"] {
        let exporter = if transport == "grpc" {
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .with_endpoint(&grpc_url)
                .build()
                .unwrap()
        } else {
            opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{http_base}/v1/metrics"))
                .build()
                .unwrap()
        };
        let reader = opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(exporter, Tokio)
            .with_interval(Duration::from_secs(3600))
            .build();
        let mp = opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(sdk_resource(&format!("checkout-{transport}")))
            .build();
        let counter = mp.meter("e2e-client").u64_counter("idp.calls").build();
        counter.add(
            7,
            &[
                KeyValue::new("outcome", "ok"),
                KeyValue::new("via", transport),
            ],
        );
        counter.add(
            3,
            &[
                KeyValue::new("outcome", "error"),
                KeyValue::new("via", transport),
            ],
        );
        // Shutdown exports once (a force_flush first would export the cumulative sums twice).
        tokio::task::spawn_blocking(move || mp.shutdown().unwrap())
            .await
            .unwrap();
    }

    // --- logs: 5 records over each transport ---
    for transport in ["grpc", "http"] {
        let exporter = if transport == "grpc" {
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(&grpc_url)
                .build()
                .unwrap()
        } else {
            opentelemetry_otlp::LogExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{http_base}/v1/logs"))
                .build()
                .unwrap()
        };
        let blp =
            opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor::builder(
                exporter, Tokio,
            )
            .build();
        let lp = opentelemetry_sdk::logs::SdkLoggerProvider::builder()
            .with_log_processor(blp)
            .with_resource(sdk_resource(&format!("checkout-{transport}")))
            .build();
        let logger = lp.logger("e2e-client");
        for i in 0..5 {
            let mut rec = logger.create_log_record();
            rec.set_body(format!("{transport} log {i}").into());
            rec.set_severity_number(opentelemetry::logs::Severity::Warn);
            rec.add_attribute("test.name", format!("{transport}-{i}"));
            logger.emit(rec);
        }
        tokio::task::spawn_blocking(move || {
            lp.force_flush().unwrap();
            lp.shutdown().unwrap();
        })
        .await
        .unwrap();
    }

    // Both exporters deliver everything: 50 spans, 4 points, 10 records, each twice.
    s.backend
        .wait_for_items(SignalKind::Traces, 100, Duration::from_secs(30))
        .await;
    s.backend
        .wait_for_items(SignalKind::Metrics, 8, Duration::from_secs(30))
        .await;
    s.backend
        .wait_for_items(SignalKind::Logs, 20, Duration::from_secs(30))
        .await;

    let spans_grpc = flat_spans(&via(&s.backend, Transport::Grpc, traces_of));
    let spans_http = flat_spans(&via(&s.backend, Transport::Http, traces_of));
    assert_eq!(spans_grpc.len(), 50);
    assert_eq!(
        spans_grpc, spans_http,
        "both exporters must deliver identical spans"
    );
    for (resource, scope, span) in &spans_grpc {
        let (name, transport) = sent
            .get(&span.span_id)
            .expect("a span we sent, with its id");
        assert_eq!(attr(&span.attributes, "test.name"), Some(name.as_str()));
        assert_eq!(
            attr(&span.attributes, "server.address"),
            Some("tenant.us.auth0.com")
        );
        assert_eq!(span.name, "POST /oauth/token");
        assert_eq!(span.trace_id.len(), 16);
        let resource = resource.as_ref().expect("resource");
        assert_eq!(
            attr(&resource.attributes, "service.name"),
            Some(format!("checkout-{transport}").as_str())
        );
        assert_eq!(
            attr(&resource.attributes, "deployment.environment"),
            Some("e2e")
        );
        let scope = scope.as_ref().expect("scope");
        assert_eq!(
            (scope.name.as_str(), scope.version.as_str()),
            ("e2e-client", "1.2.3")
        );
    }

    let metrics_grpc = flat_metrics(&via(&s.backend, Transport::Grpc, metrics_of));
    let metrics_http = flat_metrics(&via(&s.backend, Transport::Http, metrics_of));
    assert_eq!(metrics_grpc, metrics_http);
    let points: usize = metrics_grpc
        .iter()
        .map(|(_, _, m)| authwatch_core::signal::metric_point_count(m))
        .sum();
    assert_eq!(points, 4);
    assert!(metrics_grpc.iter().all(|(_, _, m)| m.name == "idp.calls"));

    let logs_grpc = flat_logs(&via(&s.backend, Transport::Grpc, logs_of));
    let logs_http = flat_logs(&via(&s.backend, Transport::Http, logs_of));
    assert_eq!(logs_grpc.len(), 10);
    assert_eq!(logs_grpc, logs_http);
    for (_, _, l) in &logs_grpc {
        assert_eq!(l.severity_number, 13);
        assert!(attr(&l.attributes, "test.name").is_some());
    }

    // Self-telemetry agrees with what was sent and delivered. An exporter counts a request once
    // it has read the backend's answer, which can come just after the backend stored the data.
    let sent_total = |m: &str| {
        ["otlp", "otlphttp"]
            .iter()
            .flat_map(|e| {
                ["spans", "metric_points", "log_records"].map(move |item| {
                    format!("authwatch_exporter_sent_{item}_total{{exporter=\"{e}\"}}")
                })
            })
            .map(|series| sample(m, &series))
            .sum::<f64>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut m = scrape(s.metrics).await;
    while sent_total(&m) < 2.0 * (50.0 + 4.0 + 10.0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        m = scrape(s.metrics).await;
    }
    let r = |item: &str, t: &str| {
        sample(
            &m,
            &format!(
                "authwatch_receiver_accepted_{item}_total{{receiver=\"otlp\",transport=\"{t}\"}}"
            ),
        )
    };
    assert_eq!(r("spans", "grpc"), 30.0, "{m}");
    assert_eq!(r("spans", "http"), 20.0, "{m}");
    assert_eq!(
        r("metric_points", "grpc") + r("metric_points", "http"),
        4.0,
        "{m}"
    );
    assert_eq!(r("log_records", "grpc"), 5.0, "{m}");
    assert_eq!(r("log_records", "http"), 5.0, "{m}");
    for exporter in ["otlp", "otlphttp"] {
        let e = |item: &str| {
            sample(
                &m,
                &format!("authwatch_exporter_sent_{item}_total{{exporter=\"{exporter}\"}}"),
            )
        };
        assert_eq!(e("spans"), 50.0, "{m}");
        assert_eq!(e("metric_points"), 4.0, "{m}");
        assert_eq!(e("log_records"), 10.0, "{m}");
    }
    drop(s.aw);
}

/// Raw OTLP requests (protobuf over gRPC and HTTP, and OTLP/JSON) are forwarded byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_requests_are_forwarded_exactly() {
    let s = setup().await;
    // gRPC: 3 requests of 40 spans.
    let mut client = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap();
    let mut all = Vec::new();
    for k in 0..3u64 {
        let req = authwatch_testkit::traces(k * 40, 40);
        client.export(req.clone()).await.unwrap();
        all.push(req);
    }
    // HTTP protobuf: 2 requests of 25 spans; HTTP JSON: 1 request of 10 spans.
    let http = reqwest::Client::new();
    for k in 0..2u64 {
        let req = authwatch_testkit::traces(1000 + k * 25, 25);
        let resp = http
            .post(format!("http://{}/v1/traces", s.http))
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        all.push(req);
    }
    let req = authwatch_testkit::traces(2000, 10);
    let resp = http
        .post(format!("http://{}/v1/traces", s.http))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&req).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    all.push(req);

    s.backend
        .wait_for_items(SignalKind::Traces, 2 * 180, Duration::from_secs(30))
        .await;
    let want = flat_spans(&all);
    assert_eq!(
        flat_spans(&via(&s.backend, Transport::Grpc, traces_of)),
        want
    );
    assert_eq!(
        flat_spans(&via(&s.backend, Transport::Http, traces_of)),
        want
    );
}

/// The OTLP specification repository's JSON examples are accepted and forwarded exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_spec_json_examples_are_forwarded_exactly() {
    let s = setup().await;
    let dir = repo().join("crates/authwatch-receiver/src/otlp/testdata");
    let http = reqwest::Client::new();
    let post = |path: &'static str, body: Vec<u8>| {
        let http = http.clone();
        let url = format!("http://{}{path}", s.http);
        async move {
            let resp = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 200, "{path}: {text}");
            assert!(
                !text.contains("rejected"),
                "{path}: unexpected partial success {text}"
            );
        }
    };
    let trace_json = std::fs::read(dir.join("trace.json")).unwrap();
    let metrics_json = std::fs::read(dir.join("metrics.json")).unwrap();
    let logs_json = std::fs::read(dir.join("logs.json")).unwrap();
    let traces: ExportTraceServiceRequest = serde_json::from_slice(&trace_json).unwrap();
    let metrics: ExportMetricsServiceRequest = serde_json::from_slice(&metrics_json).unwrap();
    let logs: ExportLogsServiceRequest = serde_json::from_slice(&logs_json).unwrap();
    post("/v1/traces", trace_json).await;
    post("/v1/metrics", metrics_json).await;
    post("/v1/logs", logs_json).await;

    let span_n = authwatch_core::Signal::Traces(traces.clone()).item_count();
    let point_n = authwatch_core::Signal::Metrics(metrics.clone()).item_count();
    let log_n = authwatch_core::Signal::Logs(logs.clone()).item_count();
    assert!(span_n > 0 && point_n > 0 && log_n > 0);
    s.backend
        .wait_for_items(SignalKind::Traces, 2 * span_n, Duration::from_secs(30))
        .await;
    s.backend
        .wait_for_items(SignalKind::Metrics, 2 * point_n, Duration::from_secs(30))
        .await;
    s.backend
        .wait_for_items(SignalKind::Logs, 2 * log_n, Duration::from_secs(30))
        .await;
    for t in [Transport::Grpc, Transport::Http] {
        assert_eq!(
            flat_spans(&via(&s.backend, t, traces_of)),
            flat_spans(std::slice::from_ref(&traces))
        );
        assert_eq!(
            flat_metrics(&via(&s.backend, t, metrics_of)),
            flat_metrics(std::slice::from_ref(&metrics))
        );
        assert_eq!(
            flat_logs(&via(&s.backend, t, logs_of)),
            flat_logs(std::slice::from_ref(&logs))
        );
    }
}
