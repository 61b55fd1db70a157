//! Self-telemetry through the OpenTelemetry SDK, end to end: the binary's own metrics reach a
//! real OTLP backend (the test sink) from a periodic reader, its own logs arrive as OTLP log
//! records, both with the configured resource; `/metrics` keeps its names, in the older
//! `address` form and in the `readers` form; a backend that is down blocks nothing; shutdown
//! flushes; and the examples in docs/telemetry.md are valid configs.

mod common;

use std::time::Duration;

use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, Metric};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_testkit::otlp_server::{OtlpServer, Transport};
use common::*;

const SECRET: &str = "sk-self-telemetry-5f1d";

fn text_of(v: Option<&authwatch_core::otlp::common::v1::AnyValue>) -> Option<String> {
    match v?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    text_of(attrs.iter().find(|kv| kv.key == key)?.value.as_ref())
}

/// authwatch's own metrics at the backend: (resource, metric).
fn own_metrics(backend: &OtlpServer) -> Vec<(Resource, Metric)> {
    backend
        .metrics()
        .into_iter()
        .flat_map(|r| r.resource_metrics)
        .flat_map(|rm| {
            let res = rm.resource.clone().unwrap_or_default();
            rm.scope_metrics
                .into_iter()
                .flat_map(|s| s.metrics)
                .map(move |m| (res.clone(), m))
        })
        .filter(|(res, _)| attr(&res.attributes, "service.name").as_deref() == Some("authwatch"))
        .collect()
}

/// The latest value of `name`'s sum data point with these attributes.
fn sum_value(metrics: &[(Resource, Metric)], name: &str, attrs: &[(&str, &str)]) -> Option<i64> {
    metrics
        .iter()
        .filter(|(_, m)| m.name == name)
        .filter_map(|(_, m)| match &m.data {
            Some(metric::Data::Sum(s)) => Some(s),
            _ => None,
        })
        .flat_map(|s| &s.data_points)
        .filter(|p| {
            attrs
                .iter()
                .all(|(k, v)| attr(&p.attributes, k).as_deref() == Some(*v))
        })
        .filter_map(|p| match p.value {
            Some(number_data_point::Value::AsInt(v)) => Some(v),
            _ => None,
        })
        .next_back()
}

/// authwatch's own log records at the backend: (resource, record).
fn own_logs(backend: &OtlpServer) -> Vec<(Resource, LogRecord)> {
    backend
        .logs()
        .into_iter()
        .flat_map(|r| r.resource_logs)
        .flat_map(|rl| {
            let res = rl.resource.clone().unwrap_or_default();
            rl.scope_logs
                .into_iter()
                .flat_map(|s| s.log_records)
                .map(move |l| (res.clone(), l))
        })
        .collect()
}

fn config(g: u16, m: u16, backend: &OtlpServer, interval: &str, delay: &str) -> String {
    format!(
        "
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: '127.0.0.1:{g}'}}}}}}
exporters:
  debug: {{}}
service:
  telemetry:
    resource: {{deployment.environment: e2e, service.namespace: idp}}
    metrics:
      readers:
        - pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {m}}}}}}}
        - periodic:
            interval: {interval}
            timeout: 5s
            exporter: {{otlp: {{protocol: grpc, endpoint: '{bg}', headers: {{x-api-key: '${{env:SELF_TELEMETRY_KEY}}'}}}}}}
    logs:
      level: info
      processors:
        - batch: {{schedule_delay: {delay}, exporter: {{otlp: {{protocol: http/protobuf, endpoint: '{bh}'}}}}}}
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
",
        bg = backend.grpc_endpoint(),
        bh = backend.http_endpoint(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_metrics_and_logs_reach_an_otlp_backend() {
    let backend = OtlpServer::start().await;
    let (g, m) = (free_port(), free_port());
    let mut aw = Authwatch::start_with_env(
        &config(g, m, &backend, "300ms", "100ms"),
        &[("SELF_TELEMETRY_KEY", SECRET)],
    );
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    client
        .export(authwatch_testkit::data::traces(0, 5))
        .await
        .unwrap();

    // Metrics: the receiver's counter, by its OTLP name, with the resource.
    let accepted = |b: &OtlpServer| {
        sum_value(
            &own_metrics(b),
            "authwatch_receiver_accepted_spans",
            &[("receiver", "otlp"), ("transport", "grpc")],
        )
    };
    let arrived = eventually(Duration::from_secs(20), async || {
        accepted(&backend) == Some(5)
    })
    .await;
    assert!(
        arrived,
        "metrics at the backend: {:?}\n{}",
        own_metrics(&backend),
        aw.output()
    );
    let metrics = own_metrics(&backend);
    let (res, _) = metrics.last().unwrap();
    let r = |k: &str| attr(&res.attributes, k);
    assert_eq!(r("deployment.environment").as_deref(), Some("e2e"));
    assert_eq!(r("service.namespace").as_deref(), Some("idp"));
    assert_eq!(
        r("service.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let instance = r("service.instance.id").expect("service.instance.id");
    for name in [
        "authwatch_exporter_sent_spans",
        "authwatch_process_uptime_seconds",
        "authwatch_process_memory_rss_bytes",
    ] {
        assert!(
            metrics.iter().any(|(_, m)| m.name == name),
            "{name} missing"
        );
    }
    assert!(
        metrics.iter().all(|(_, m)| !m.name.ends_with("_total")),
        "no Prometheus suffixes in OTLP"
    );
    let grpc = backend
        .received()
        .into_iter()
        .filter(|r| r.transport == Transport::Grpc)
        .collect::<Vec<_>>();
    assert!(!grpc.is_empty());
    assert!(grpc.iter().all(|r| r.header("x-api-key") == Some(SECRET)));

    // Logs: authwatch's own records over OTLP/HTTP, same resource and instance.
    let ready = "Everything is ready. Begin running and processing data.";
    let arrived = eventually(Duration::from_secs(20), async || {
        own_logs(&backend)
            .iter()
            .any(|(_, l)| text_of(l.body.as_ref()).as_deref() == Some(ready))
    })
    .await;
    assert!(arrived, "logs at the backend: {:?}", own_logs(&backend));
    let logs = own_logs(&backend);
    let (lres, record) = logs
        .iter()
        .find(|(_, l)| text_of(l.body.as_ref()).as_deref() == Some(ready))
        .unwrap();
    assert_eq!(
        attr(&lres.attributes, "service.name").as_deref(),
        Some("authwatch")
    );
    assert_eq!(
        attr(&lres.attributes, "deployment.environment").as_deref(),
        Some("e2e")
    );
    assert_eq!(
        attr(&lres.attributes, "service.instance.id"),
        Some(instance)
    );
    assert_eq!(record.severity_text, "INFO");
    let all = format!("{logs:?}");
    assert!(!all.contains(SECRET), "a secret reached the exported logs");
    assert!(!aw.output().contains(SECRET), "a secret reached stderr");

    // `/metrics` from the pull reader keeps its Prometheus names.
    let text = scrape(format!("127.0.0.1:{m}").parse().unwrap()).await;
    assert_eq!(
        sample(
            &text,
            "authwatch_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"}"
        ),
        5.0,
        "{text}"
    );

    aw.signal("TERM");
    let status = aw.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", aw.output());
}

/// `/metrics` names, types and content type, in the older `address` form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_keeps_its_names() {
    let (g, m) = (free_port(), free_port());
    let yaml = format!(
        "
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: '127.0.0.1:{g}'}}}}}}
processors:
  batch: {{timeout: 50ms}}
exporters:
  debug: {{}}
service:
  telemetry: {{metrics: {{address: '127.0.0.1:{m}'}}}}
  pipelines:
    traces: {{receivers: [otlp], processors: [batch], exporters: [debug]}}
"
    );
    let mut aw = Authwatch::start(&yaml);
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    client
        .export(authwatch_testkit::data::traces(0, 3))
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{m}/metrics");
    let mut text = String::new();
    let counted = eventually(Duration::from_secs(10), async || {
        text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        sample(
            &text,
            "authwatch_exporter_sent_spans_total{exporter=\"debug\"}",
        ) == 3.0
    })
    .await;
    assert!(counted, "{text}");
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    for line in [
        "# TYPE authwatch_receiver_accepted_spans counter",
        "authwatch_receiver_accepted_spans_total{receiver=\"otlp\",transport=\"grpc\"} 3",
        "authwatch_processor_accepted_spans_total{processor=\"batch\",pipeline=\"traces\"} 3",
        "# TYPE authwatch_processor_batch_send_size histogram",
        "authwatch_processor_batch_send_size_count{processor=\"batch\",pipeline=\"traces\"} 1",
        "authwatch_processor_batch_send_size_bucket{le=\"+Inf\",processor=\"batch\",pipeline=\"traces\"} 1",
        "authwatch_processor_batch_timeout_trigger_send_total{processor=\"batch\",pipeline=\"traces\"} 1",
        "# TYPE authwatch_exporter_queue_size gauge",
        "# TYPE authwatch_process_uptime_seconds gauge",
        "# TYPE authwatch_process_memory_rss_bytes gauge",
        "# TYPE authwatch_process_cpu_seconds gauge",
        "# EOF",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
    }
    aw.signal("TERM");
    assert_eq!(aw.wait(Duration::from_secs(30)).code(), Some(0));
}

/// With exports far apart, what is there at shutdown is still exported: the periodic reader's
/// last collection and the queued log records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_metrics_and_logs() {
    let backend = OtlpServer::start().await;
    let (g, m) = (free_port(), free_port());
    let mut aw = Authwatch::start_with_env(
        &config(g, m, &backend, "1h", "1h"),
        &[("SELF_TELEMETRY_KEY", SECRET)],
    );
    let mut client = TraceServiceClient::connect(format!("http://127.0.0.1:{g}"))
        .await
        .unwrap();
    client
        .export(authwatch_testkit::data::traces(0, 2))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.request_count(), 0, "nothing is due before shutdown");
    aw.signal("TERM");
    assert_eq!(
        aw.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        aw.output()
    );
    let accepted = sum_value(
        &own_metrics(&backend),
        "authwatch_receiver_accepted_spans",
        &[("receiver", "otlp"), ("transport", "grpc")],
    );
    assert_eq!(accepted, Some(2), "{}", aw.output());
    let logs = own_logs(&backend);
    assert!(
        logs.iter()
            .any(|(_, l)| text_of(l.body.as_ref()).as_deref()
                == Some("Received signal; shutting down.")),
        "{logs:?}"
    );
}

/// A backend that is down: authwatch runs, `/metrics` answers, the failure is logged once (not
/// once per export), and shutdown is prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_is_down_blocks_nothing() {
    let backend = OtlpServer::start_stopped().await;
    let (g, m) = (free_port(), free_port());
    let mut aw = Authwatch::start_with_env(
        &config(g, m, &backend, "100ms", "100ms"),
        &[("SELF_TELEMETRY_KEY", SECRET)],
    );
    let failed = "Self-telemetry export failed";
    aw.wait_for_output(failed, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = scrape(format!("127.0.0.1:{m}").parse().unwrap()).await;
    assert!(text.contains("authwatch_process_uptime_seconds"), "{text}");
    let out = aw.output();
    // Once per signal (metrics over gRPC, logs over HTTP), not once per export.
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(failed)).collect();
    assert!(
        (1..=2).contains(&lines.len()),
        "{} failure lines:\n{out}",
        lines.len()
    );
    assert!(!out.contains(SECRET));
    let started = std::time::Instant::now();
    aw.signal("TERM");
    assert_eq!(
        aw.wait(Duration::from_secs(30)).code(),
        Some(0),
        "{}",
        aw.output()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// Every YAML example in docs/telemetry.md is a valid `service.telemetry`, on top of a minimal
/// pipeline.
#[test]
fn docs_examples_are_valid() {
    let doc = std::fs::read_to_string(repo().join("docs/telemetry.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .collect();
    assert!(!blocks.is_empty());
    let scratch = Scratch::new("telemetry-docs");
    let base = scratch.write(
        "base.yaml",
        "receivers: {otlp: {protocols: {grpc: {endpoint: '127.0.0.1:0'}}}}\n\
         exporters: {debug: {}}\n\
         service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n",
    );
    for (i, block) in blocks.iter().enumerate() {
        let file = scratch.write(&format!("example{i}.yaml"), block);
        let (code, out, err) = run_cli(
            &[
                "validate",
                "--config",
                base.to_str().unwrap(),
                "--config",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, 0, "example {i}:\n{block}\n{out}{err}");
    }
}
