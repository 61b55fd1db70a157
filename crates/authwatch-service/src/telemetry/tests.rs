use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::KeyValue as ProtoKeyValue;
use authwatch_core::SignalKind;
use authwatch_testkit::otlp_server::{OtlpServer, Reply, Transport};

use super::*;
use crate::config::{
    MetricReaderConfig, MetricsConfig, OtlpExporterConfig, OtlpProtocol, PeriodicReaderConfig,
};

fn attr(attrs: &[ProtoKeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            _ => None,
        }
    })
}

fn config(protocol: OtlpProtocol, endpoint: &str) -> TelemetryConfig {
    TelemetryConfig {
        resource: [
            ("deployment.environment".to_owned(), Some("test".to_owned())),
            ("service.version".to_owned(), None),
        ]
        .into_iter()
        .collect(),
        metrics: MetricsConfig {
            readers: vec![MetricReaderConfig::Periodic(PeriodicReaderConfig {
                interval: Duration::from_millis(100),
                timeout: Duration::from_secs(5),
                exporter: PushExporterConfig::Otlp(OtlpExporterConfig {
                    protocol,
                    endpoint: endpoint.parse().unwrap(),
                    headers: [(
                        serde_json::from_value(serde_json::json!("x-tenant")).unwrap(),
                        authwatch_core::config::Secret::new("t1"),
                    )]
                    .into_iter()
                    .collect(),
                }),
            })],
            ..MetricsConfig::default()
        },
        ..TelemetryConfig::default()
    }
}

#[test]
fn resource_has_the_service_identity_and_the_configured_attributes() {
    let r = resource(&config(OtlpProtocol::Grpc, "http://c:4317"));
    let get = |k: &str| {
        r.get(&opentelemetry::Key::new(k.to_owned()))
            .map(|v| v.to_string())
    };
    assert_eq!(get("service.name").as_deref(), Some("authwatch"));
    assert_eq!(get("deployment.environment").as_deref(), Some("test"));
    assert_eq!(get("service.version"), None, "null removes a default");
    assert_eq!(get("service.instance.id").as_deref(), Some(instance_id()));
}

#[test]
fn instance_id_is_a_uuid_v4_and_stable() {
    let id = instance_id();
    assert_eq!(id.len(), 36);
    assert_eq!(id.as_bytes()[14], b'4');
    assert_eq!(
        id.split('-').map(str::len).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert_eq!(instance_id(), id);
}

/// What authwatch's own metrics look like at the backend: the counter by its OTLP name (no
/// `_total`), the resource, the headers.
async fn periodic_export_reaches(server: &OtlpServer, protocol: OtlpProtocol, endpoint: String) {
    let telemetry = build(&config(protocol, &endpoint)).unwrap();
    telemetry
        .receiver(&"otlp".parse().unwrap(), "grpc")
        .accepted(SignalKind::Traces, 7);
    server.wait_for_requests(1, Duration::from_secs(10)).await;
    let reqs: Vec<ExportMetricsServiceRequest> = server.metrics();
    let req = reqs.last().expect("a metrics request");
    let rm = &req.resource_metrics[0];
    let res = &rm.resource.as_ref().unwrap().attributes;
    assert_eq!(attr(res, "service.name").as_deref(), Some("authwatch"));
    assert_eq!(attr(res, "deployment.environment").as_deref(), Some("test"));
    let metric = rm
        .scope_metrics
        .iter()
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == "authwatch_receiver_accepted_spans")
        .expect("the receiver counter");
    let text = format!("{metric:?}");
    assert!(text.contains("AsInt(7)"), "{text}");
    let received = server.received();
    assert_eq!(received[0].header("x-tenant"), Some("t1"));
    shutdown(telemetry, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_reader_exports_over_grpc() {
    let server = OtlpServer::start().await;
    periodic_export_reaches(&server, OtlpProtocol::Grpc, server.grpc_endpoint()).await;
    assert!(server
        .received()
        .iter()
        .all(|r| r.transport == Transport::Grpc));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_reader_exports_over_http() {
    let server = OtlpServer::start().await;
    periodic_export_reaches(&server, OtlpProtocol::HttpProtobuf, server.http_endpoint()).await;
    assert!(server
        .received()
        .iter()
        .all(|r| r.transport == Transport::Http));
}

/// A backend that is down or refusing does not block, fail or crash anything: `/metrics` keeps
/// answering and shutdown returns within its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_backend_blocks_nothing() {
    let server = OtlpServer::start().await;
    server.set_response(Reply::Unavailable);
    let telemetry = build(&config(OtlpProtocol::Grpc, &server.grpc_endpoint())).unwrap();
    server.wait_for_requests(2, Duration::from_secs(10)).await;
    assert!(telemetry
        .encode()
        .contains("authwatch_process_uptime_seconds"));
    server.stop().await;
    let started = std::time::Instant::now();
    shutdown(telemetry, Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
