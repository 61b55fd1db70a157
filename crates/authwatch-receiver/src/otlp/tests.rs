use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use authwatch_core::otlp::collector::logs::v1::logs_service_client::LogsServiceClient;
use authwatch_core::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use authwatch_core::otlp::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use authwatch_core::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use authwatch_core::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use authwatch_core::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point};
use authwatch_core::otlp::trace::v1::span::SpanKind;
use authwatch_core::registry::decode_config;
use authwatch_core::telemetry::Telemetry;
use authwatch_core::{ComponentId, ConsumeError, Consumer, Signal, SignalKind};
use authwatch_testkit::{logs, metrics, traces, Sink};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tonic::codec::CompressionEncoding;
use tonic::Code;
use tonic_types::{RpcStatusExt, StatusExt};
use tower::ServiceExt;

use super::*;

/// Hang guard for anything that waits on the network; never a timed assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

// === config ===

#[test]
fn config_contract() {
    authwatch_testkit::assert_config_contract::<Config>("otlp");
}

fn yaml(text: &str) -> serde_json::Value {
    serde_yaml::from_str(text).expect("test YAML parses")
}

fn decode(text: &str) -> Result<Config, authwatch_core::ConfigError> {
    decode_config::<Config>(yaml(text))
}

fn validate(c: &Config) -> Vec<String> {
    let mut v = Validator::new("");
    c.validate(&mut v);
    v.errors().iter().map(ToString::to_string).collect()
}

#[test]
fn config_yaml_decodes() {
    let got = decode(include_str!("testdata/config.yaml")).unwrap();
    let want = Config {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: "0.0.0.0:14317".parse().unwrap(),
                max_recv_msg_size_mib: Positive(16),
                max_concurrent_streams: NonZeroU32::new(64),
                max_connections: Positive(100),
                timeout: Duration::from_secs(10),
                keepalive: KeepaliveConfig {
                    server_parameters: KeepaliveServerParameters {
                        time: Duration::from_secs(60),
                        timeout: Duration::from_secs(5),
                        max_connection_age: Some(Duration::from_secs(3600)),
                        max_connection_age_grace: Some(Duration::from_secs(30)),
                    },
                },
                tls: Some(TlsServerConfig {
                    cert_file: "/etc/authwatch/server.crt".into(),
                    key_file: "/etc/authwatch/server.key".into(),
                    client_ca_file: Some("/etc/authwatch/clients-ca.crt".into()),
                }),
                auth: None,
            }),
            http: Some(HttpConfig {
                endpoint: ListenAddr::localhost(14318),
                traces_url_path: "/otlp/v1/traces".parse().unwrap(),
                metrics_url_path: "/otlp/v1/metrics".parse().unwrap(),
                logs_url_path: "/otlp/v1/logs".parse().unwrap(),
                max_request_body_size: Positive(1024 * 1024),
                read_header_timeout: Duration::from_secs(5),
                read_timeout: Duration::from_secs(20),
                idle_timeout: Duration::from_secs(120),
                max_connections: Positive(200),
                tls: None,
                auth: None,
                cors: Some(CorsConfig {
                    allowed_origins: vec![
                        "https://app.example.com".into(),
                        "https://*.example.com".into(),
                    ],
                    allowed_headers: vec!["x-tenant".into(), "Content-Encoding".into()],
                    exposed_headers: vec!["retry-after".into()],
                    max_age: 7200,
                }),
            }),
        },
    };
    assert_eq!(got, want);
    assert!(validate(&got).is_empty());
    assert_eq!(
        got.resources(),
        vec![
            Resource::Listen("0.0.0.0:14317".parse().unwrap()),
            Resource::Listen("127.0.0.1:14318".parse().unwrap()),
        ]
    );
}

#[test]
fn defaults_match_the_collector() {
    let c = Config::default();
    let grpc = c.protocols.grpc.clone().unwrap();
    let http = c.protocols.http.clone().unwrap();
    assert_eq!(grpc.endpoint.to_string(), "127.0.0.1:4317");
    assert_eq!(grpc.max_recv_msg_size(), 4 * 1024 * 1024);
    assert_eq!(grpc.max_concurrent_streams, None);
    assert_eq!(http.endpoint.to_string(), "127.0.0.1:4318");
    assert_eq!(http.traces_url_path.as_str(), "/v1/traces");
    assert_eq!(http.metrics_url_path.as_str(), "/v1/metrics");
    assert_eq!(http.logs_url_path.as_str(), "/v1/logs");
    assert_eq!(http.max_request_body_size.get(), 20_971_520);
    assert_eq!(c.signals(), Signals::ALL);
    assert_eq!(
        c.resources(),
        vec![
            Resource::Listen("127.0.0.1:4317".parse().unwrap()),
            Resource::Listen("127.0.0.1:4318".parse().unwrap()),
        ]
    );
}

#[test]
fn a_protocol_is_on_only_when_listed() {
    // (YAML, gRPC on, HTTP on)
    let cases = [
        ("{}", true, true),
        ("", true, true),
        ("protocols: { grpc: }", true, false),
        ("protocols:\n  grpc:\n", true, false),
        ("protocols: { http: }", false, true),
        ("protocols: { grpc: {}, http: {} }", true, true),
        (
            "protocols: { http: { endpoint: '127.0.0.1:9999' } }",
            false,
            true,
        ),
    ];
    for (text, grpc, http) in cases {
        let c = decode(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(c.protocols.grpc.is_some(), grpc, "{text:?}");
        assert_eq!(c.protocols.http.is_some(), http, "{text:?}");
        assert!(validate(&c).is_empty(), "{text:?}: {:?}", validate(&c));
        assert_eq!(c.resources().len(), usize::from(grpc) + usize::from(http));
    }
    // `grpc:` with no value means the defaults.
    let c = decode("protocols: { grpc: }").unwrap();
    assert_eq!(c.protocols.grpc, Some(GrpcConfig::default()));
    assert_eq!(decode("{}").unwrap(), Config::default());
}

#[derive(serde::Deserialize)]
struct InvalidCase {
    config: serde_json::Value,
    error: String,
}

#[test]
fn invalid_configs() {
    let cases: BTreeMap<String, InvalidCase> =
        serde_yaml::from_str(include_str!("testdata/invalid.yaml")).unwrap();
    assert!(cases.len() >= 10);
    for (name, case) in cases {
        let got = match decode_config::<Config>(case.config) {
            Err(e) => e.to_string(),
            Ok(c) => validate(&c).join("\n"),
        };
        assert_eq!(got, case.error, "case `{name}`");
    }
}

#[test]
fn config_round_trips_through_its_serialized_form() {
    let grpc_only = decode("protocols: { grpc: { max_concurrent_streams: 8 } }").unwrap();
    for c in [
        Config::default(),
        grpc_only,
        decode(include_str!("testdata/config.yaml")).unwrap(),
    ] {
        let value = serde_json::to_value(&c).unwrap();
        assert_eq!(
            decode_config::<Config>(value.clone()).unwrap(),
            c,
            "{value}"
        );
    }
}

#[test]
fn url_paths_get_a_leading_slash() {
    assert_eq!("v1/x".parse::<UrlPath>().unwrap().as_str(), "/v1/x");
    assert_eq!(" /v1/x ".parse::<UrlPath>().unwrap().as_str(), "/v1/x");
    assert!("/a b".parse::<UrlPath>().is_err());
    assert!("/a#b".parse::<UrlPath>().is_err());
    assert!("/é".parse::<UrlPath>().is_err());
}

// === harness ===

fn otlp_id() -> ComponentId {
    "otlp".parse().unwrap()
}

/// Both protocols on loopback port 0, everything else default.
fn loopback() -> Config {
    Config {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: ListenAddr::localhost(0),
                ..GrpcConfig::default()
            }),
            http: Some(HttpConfig {
                endpoint: ListenAddr::localhost(0),
                ..HttpConfig::default()
            }),
        },
    }
}

fn router_to(consumer: authwatch_core::SharedConsumer, kinds: &[SignalKind]) -> Router {
    let mut r = Router::new();
    for k in kinds {
        r.set(*k, consumer.clone());
    }
    r
}

struct Harness {
    sink: Sink,
    settings: Settings,
    grpc: SocketAddr,
    http: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), RunError>>,
}

impl Harness {
    async fn start(config: Config) -> Harness {
        Harness::start_with(config, &SignalKind::ALL).await
    }

    async fn start_with(config: Config, kinds: &[SignalKind]) -> Harness {
        Harness::start_into(config, kinds, Sink::new()).await
    }

    async fn start_into(config: Config, kinds: &[SignalKind], sink: Sink) -> Harness {
        let settings = Settings::new(otlp_id());
        let cx = ReceiverContext {
            settings: settings.clone(),
            next: router_to(sink.shared(), kinds),
        };
        let receiver = Receiver::bind(&config, cx).await.expect("binds");
        let grpc = receiver
            .grpc_addr()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let http = receiver
            .http_addr()
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)));
        let task = tokio::spawn(receiver.run());
        Harness {
            sink,
            settings,
            grpc,
            http,
            task,
        }
    }

    fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    async fn stop(self) -> Sink {
        self.settings.shutdown.cancel();
        let r = tokio::time::timeout(HANG_GUARD, self.task)
            .await
            .expect("the receiver stops after shutdown")
            .expect("the receiver task does not panic");
        assert!(r.is_ok(), "{r:?}");
        self.sink
    }
}

fn assert_status(s: &tonic::Status, code: Code) {
    assert_eq!(s.code(), code, "{s:?}");
}

// === gRPC ===

#[tokio::test]
async fn grpc_ingests_all_signals_and_maps_pipeline_errors() {
    let h = Harness::start(loopback()).await;
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let mut m = MetricsServiceClient::connect(h.grpc_url()).await.unwrap();
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();

    let r = t.export(traces(0, 3)).await.unwrap().into_inner();
    assert_eq!(r, ExportTraceServiceResponse::default());
    let r = m.export(metrics(0, 4)).await.unwrap().into_inner();
    assert_eq!(r, ExportMetricsServiceResponse::default());
    let r = l.export(logs(0, 5)).await.unwrap().into_inner();
    assert_eq!(r, ExportLogsServiceResponse::default());
    assert_eq!(
        h.sink.received(),
        vec![
            Signal::Traces(traces(0, 3)),
            Signal::Metrics(metrics(0, 4)),
            Signal::Logs(logs(0, 5)),
        ]
    );

    h.sink.fail_with(Some(ConsumeError::Full));
    let e = t.export(traces(10, 1)).await.unwrap_err();
    assert_status(&e, Code::Unavailable);
    h.sink.fail_with(Some(ConsumeError::Closed));
    let e = m.export(metrics(10, 1)).await.unwrap_err();
    assert_status(&e, Code::Unavailable);
    assert_eq!(
        e.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );

    h.sink
        .fail_with(Some(ConsumeError::Throttled(Duration::from_secs(5))));
    let e = l.export(logs(10, 1)).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted);
    assert_eq!(
        e.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(5))
    );

    h.sink
        .fail_with(Some(ConsumeError::Permanent("bad data".into())));
    let e = t.export(traces(10, 1)).await.unwrap_err();
    assert_status(&e, Code::InvalidArgument);
    assert_eq!(e.message(), "bad data");

    // Nothing refused reached the sink; accepting again works.
    assert_eq!(h.sink.received().len(), 3);
    h.sink.fail_with(None);
    t.export(traces(20, 2)).await.unwrap();
    assert_eq!(h.sink.item_count(SignalKind::Traces), 5);
    h.stop().await;
}

#[tokio::test]
async fn grpc_signal_without_pipeline_is_unimplemented() {
    let h = Harness::start_with(loopback(), &[SignalKind::Traces]).await;
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();
    let e = l.export(logs(0, 1)).await.unwrap_err();
    assert_status(&e, Code::Unimplemented);
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    t.export(traces(0, 1)).await.unwrap();
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 1))]
    );
}

#[tokio::test]
async fn grpc_accepts_gzip_and_enforces_the_message_limit() {
    let mut config = loopback();
    if let Some(g) = config.protocols.grpc.as_mut() {
        g.max_recv_msg_size_mib = Positive(1);
    }
    let h = Harness::start(config).await;
    let mut t = TraceServiceClient::connect(h.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    t.export(traces(0, 2)).await.unwrap();

    // 2 MiB of span name: over the 1 MiB limit on the wire when sent uncompressed...
    let mut big = traces(100, 1);
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(2 << 20);
    let mut plain = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    // RESOURCE_EXHAUSTED without RetryInfo (as grpc-go): OTLP clients retry OUT_OF_RANGE.
    let e = plain.export(big.clone()).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted);
    assert!(e.message().contains("max_recv_msg_size_mib"), "{e:?}");
    assert!(e.details().is_empty(), "no RetryInfo: {e:?}");
    // ...and, compressed to a few KiB, still over it once inflated.
    let e = t.export(big).await.unwrap_err();
    assert_status(&e, Code::ResourceExhausted);

    t.export(traces(2, 1)).await.unwrap();
    assert_eq!(h.stop().await.item_count(SignalKind::Traces), 3);
}

/// Sends one raw gRPC frame, compressed with `encoding` if given, and returns the call's status.
async fn grpc_raw_call(
    addr: SocketAddr,
    path: &str,
    encoding: Option<&str>,
    payload: Bytes,
) -> tonic::Status {
    let mut frame = Vec::with_capacity(payload.len() + 5);
    frame.push(u8::from(encoding.is_some()));
    frame.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&payload);
    grpc_raw_body(addr, path, encoding, frame).await
}

/// Sends `body` as the request body of a gRPC call, framing and all, and returns its status.
async fn grpc_raw_body(
    addr: SocketAddr,
    path: &str,
    encoding: Option<&str>,
    frame: Vec<u8>,
) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut req = ::http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(e) = encoding {
        req = req.header("grpc-encoding", e);
    }
    let req = req
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(frame),
        )))
        .unwrap();
    let resp = channel.oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await.unwrap();
    tonic::Status::from_header_map(&parts.headers)
        .or_else(|| {
            collected
                .trailers()
                .and_then(tonic::Status::from_header_map)
        })
        .expect("a grpc-status")
}

const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

#[tokio::test]
async fn grpc_bad_payloads_are_refused_and_the_receiver_keeps_serving() {
    let h = Harness::start(loopback()).await;
    let valid = traces(0, 2).encode_to_vec();
    let zipped = gzip(&valid);
    // (what, grpc-encoding, payload, code): an undecodable message or a gzip stream that does not
    // inflate is the sender's fault (INVALID_ARGUMENT; grpc-go and tonic's generated servers say
    // INTERNAL); an encoding the server does not take is UNIMPLEMENTED (the gRPC spec).
    let cases = [
        ("malformed protobuf", None, vec![0xff; 16], Code::InvalidArgument),
        (
            "truncated protobuf",
            None,
            valid[..valid.len() - 1].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "truncated gzip",
            Some("gzip"),
            zipped[..zipped.len() / 2].to_vec(),
            Code::InvalidArgument,
        ),
        (
            "not gzip at all",
            Some("gzip"),
            valid.clone(),
            Code::InvalidArgument,
        ),
        (
            "unsupported encoding",
            Some("zstd"),
            zipped.clone(),
            Code::Unimplemented,
        ),
    ];
    for (what, encoding, payload, code) in cases {
        let status = grpc_raw_call(h.grpc, TRACE_EXPORT, encoding, payload.into()).await;
        assert_eq!(status.code(), code, "{what}: {status:?}");
    }
    let ok = grpc_raw_call(h.grpc, TRACE_EXPORT, Some("gzip"), zipped.into()).await;
    assert_eq!(ok.code(), Code::Ok, "{ok:?}");
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 2))]
    );
}

#[tokio::test]
async fn grpc_broken_framing_is_refused_with_the_right_code() {
    let h = Harness::start(loopback()).await;
    let valid = traces(0, 2).encode_to_vec();
    let framed = |flag: u8, declared: usize, payload: &[u8]| {
        let mut frame = vec![flag];
        frame.extend_from_slice(&u32::try_from(declared).unwrap().to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    };
    // (what, grpc-encoding, body, code)
    let cases = [
        (
            "a frame cut short",
            None,
            framed(0, valid.len() + 100, &valid),
            Code::InvalidArgument,
        ),
        ("a frame header cut short", None, vec![0, 0, 0], Code::InvalidArgument),
        // The gRPC spec: "MUST fail with INTERNAL status".
        (
            "compressed flag without grpc-encoding",
            None,
            framed(1, valid.len(), &valid),
            Code::Internal,
        ),
    ];
    for (what, encoding, body, code) in cases {
        let status = grpc_raw_body(h.grpc, TRACE_EXPORT, encoding, body).await;
        assert_eq!(status.code(), code, "{what}: {status:?}");
    }
    let ok = grpc_raw_body(h.grpc, TRACE_EXPORT, None, framed(0, valid.len(), &valid)).await;
    assert_eq!(ok.code(), Code::Ok, "{ok:?}");
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 2))]
    );
}

#[tokio::test]
async fn grpc_refuses_a_gzip_bomb_without_inflating_it() {
    let h = Harness::start(loopback()).await;
    let bomb = gzip_bomb(1024); // 1 GiB of zeros in about 1 MiB
    assert!(bomb.len() < 4 << 20, "{}", bomb.len());
    let status = grpc_raw_call(h.grpc, TRACE_EXPORT, Some("gzip"), bomb.into()).await;
    assert_status(&status, Code::ResourceExhausted);
    assert!(status.message().contains("size limit"), "{status:?}");

    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    t.export(traces(0, 1)).await.unwrap();
    assert_eq!(
        h.stop().await.received(),
        vec![Signal::Traces(traces(0, 1))]
    );
}

/// Two valid spans around three invalid ones (short trace id, long span id, bad parent).
fn traces_with_invalid_ids() -> (ExportTraceServiceRequest, ExportTraceServiceRequest) {
    let mut sent = traces(0, 5);
    {
        let spans = &mut sent.resource_spans[0].scope_spans[0].spans;
        spans[1].trace_id.truncate(8);
        spans[2].span_id.push(0);
        spans[3].parent_span_id = vec![1, 2, 3];
    }
    let mut valid = sent.clone();
    let spans = &mut valid.resource_spans[0].scope_spans[0].spans;
    let (first, last) = (spans[0].clone(), spans[4].clone());
    *spans = vec![first, last];
    (sent, valid)
}

/// One record with a short trace id, one with a long span id, and three valid ones (two of them
/// without ids at all, which is allowed).
fn logs_with_invalid_ids() -> (ExportLogsServiceRequest, ExportLogsServiceRequest) {
    let mut sent = logs(0, 5);
    {
        let records = &mut sent.resource_logs[0].scope_logs[0].log_records;
        records[0].trace_id = vec![7; 16];
        records[0].span_id = vec![7; 8];
        records[1].trace_id = vec![7; 15];
        records[3].span_id = vec![7; 9];
    }
    let mut valid = sent.clone();
    let records = &mut valid.resource_logs[0].scope_logs[0].log_records;
    records.remove(3);
    records.remove(1);
    (sent, valid)
}

#[tokio::test]
async fn grpc_partial_success_drops_invalid_ids_only() {
    let h = Harness::start(loopback()).await;
    let (sent, valid) = traces_with_invalid_ids();
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(sent).await.unwrap().into_inner();
    let partial = r.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 3);
    assert!(
        partial.error_message.contains("trace_id must be 16 bytes"),
        "{partial:?}"
    );

    let (sent_logs, valid_logs) = logs_with_invalid_ids();
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = l.export(sent_logs).await.unwrap().into_inner();
    assert_eq!(r.partial_success.unwrap().rejected_log_records, 2);

    let got = h.stop().await.received();
    assert_eq!(
        got,
        vec![
            Signal::Traces(valid.clone()),
            Signal::Logs(valid_logs.clone())
        ]
    );
    // Byte for byte: what was forwarded encodes exactly like the valid part of the request.
    let Signal::Traces(forwarded) = &got[0] else {
        unreachable!()
    };
    assert_eq!(forwarded.encode_to_vec(), valid.encode_to_vec());
}

// === gRPC into a pipeline that wants bytes (pass-through to OTLP exporters) ===

#[tokio::test]
async fn grpc_hands_valid_requests_to_a_byte_pipeline_undecoded() {
    let h = Harness::start_into(loopback(), &SignalKind::ALL, Sink::wanting_encoded()).await;
    let mut t = TraceServiceClient::connect(h.grpc_url())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    let mut m = MetricsServiceClient::connect(h.grpc_url()).await.unwrap();
    let mut l = LogsServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(traces(0, 3)).await.unwrap().into_inner();
    assert_eq!(r, ExportTraceServiceResponse::default());
    m.export(metrics(0, 4)).await.unwrap();
    l.export(logs(0, 5)).await.unwrap();
    // An empty request is answered and not forwarded.
    t.export(ExportTraceServiceRequest::default()).await.unwrap();
    let got = h.stop().await.received();
    assert_eq!(got.len(), 3, "{got:?}");
    // Traces and logs stay bytes, byte for byte what the client sent; metrics are decoded.
    let Signal::Encoded(e) = &got[0] else {
        panic!("traces were decoded: {:?}", got[0])
    };
    assert_eq!(e.items(), 3);
    assert_eq!(&e.bytes()[..], &traces(0, 3).encode_to_vec()[..]);
    assert_eq!(got[1], Signal::Metrics(metrics(0, 4)));
    assert!(matches!(&got[2], Signal::Encoded(e) if e.items() == 5));
    assert_eq!(got[2].clone().into_decoded().unwrap(), Signal::Logs(logs(0, 5)));
}

#[tokio::test]
async fn grpc_byte_pipeline_still_drops_invalid_ids_and_refuses_garbage() {
    let h = Harness::start_into(loopback(), &SignalKind::ALL, Sink::wanting_encoded()).await;
    let (sent, valid) = traces_with_invalid_ids();
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(sent).await.unwrap().into_inner();
    assert_eq!(r.partial_success.expect("partial success").rejected_spans, 3);
    let valid_bytes = traces(0, 2).encode_to_vec();
    for (what, payload) in [
        ("malformed", vec![0xff; 16]),
        ("truncated", valid_bytes[..valid_bytes.len() - 1].to_vec()),
    ] {
        let status = grpc_raw_call(h.grpc, TRACE_EXPORT, None, payload.into()).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(status.message().contains("ExportTraceServiceRequest"), "{status:?}");
    }
    let got = h.stop().await.received();
    assert_eq!(got, vec![Signal::Traces(valid)], "only the valid spans, decoded to drop the rest");
}

#[tokio::test]
async fn nothing_valid_left_is_not_forwarded() {
    let h = Harness::start(loopback()).await;
    let mut sent = traces(0, 2);
    for s in &mut sent.resource_spans[0].scope_spans[0].spans {
        s.span_id.clear();
    }
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    let r = t.export(sent).await.unwrap().into_inner();
    assert_eq!(r.partial_success.unwrap().rejected_spans, 2);
    // An empty request succeeds without reaching the pipeline either.
    let r = t
        .export(ExportTraceServiceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.partial_success, None);
    assert!(h.stop().await.received().is_empty());
}

// === HTTP over real sockets ===

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `google.rpc.Status` of an error answer, decoded per its content type.
    fn rpc_status(&self) -> tonic_types::Status {
        match self.header("content-type") {
            Some("application/x-protobuf") => tonic_types::Status::decode(&self.body[..]).unwrap(),
            Some("application/json") => {
                let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap();
                tonic_types::Status {
                    code: v["code"].as_i64().unwrap() as i32,
                    message: v["message"].as_str().unwrap().to_owned(),
                    details: Vec::new(),
                }
            }
            other => panic!("unexpected content type {other:?}: {self:?}"),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a complete HTTP/1.1 response, or `None` if more bytes are needed.
fn parse_reply(data: &[u8], eof: bool) -> Option<Reply> {
    let end = find(data, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&data[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &data[end + 4..];
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        rest[..len].to_vec()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        let mut body = Vec::new();
        let mut at = rest;
        loop {
            let nl = find(at, b"\r\n")?;
            let size =
                usize::from_str_radix(std::str::from_utf8(&at[..nl]).ok()?.trim(), 16).ok()?;
            at = &at[nl + 2..];
            if size == 0 {
                break;
            }
            if at.len() < size + 2 {
                return None;
            }
            body.extend_from_slice(&at[..size]);
            at = &at[size + 2..];
        }
        body
    } else if eof {
        rest.to_vec()
    } else {
        return None;
    };
    Some(Reply {
        status,
        headers,
        body,
    })
}

/// Writes `head` then `body` on a fresh connection and reads one response.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Reply {
    let io = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(head.as_bytes()).await.unwrap();
        // The server may answer (and close) before taking the whole body: that is fine.
        let _ = s.write_all(body).await;
        let mut data = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some(r) = parse_reply(&data, false) {
                return r;
            }
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        parse_reply(&data, true)
            .unwrap_or_else(|| panic!("no HTTP response in {:?}", String::from_utf8_lossy(&data)))
    };
    tokio::time::timeout(HANG_GUARD, io)
        .await
        .expect("an HTTP answer")
}

async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    exchange(addr, &head, body).await
}

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JS: (&str, &str) = ("Content-Type", "application/json");
const GZ: (&str, &str) = ("Content-Encoding", "gzip");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A valid protobuf trace export; succeeds whenever the receiver is healthy.
async fn assert_still_serving(addr: SocketAddr, first: u64) {
    let r = post(addr, "/v1/traces", &[PB], &traces(first, 1).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
}

#[tokio::test]
async fn http_ingests_protobuf_and_json_for_all_signals() {
    let h = Harness::start(loopback()).await;

    let r = post(h.http, "/v1/traces", &[PB], &traces(0, 2).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(
        ExportTraceServiceResponse::decode(&r.body[..]).unwrap(),
        ExportTraceServiceResponse::default()
    );
    let r = post(h.http, "/v1/metrics", &[PB], &metrics(0, 3).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        ExportMetricsServiceResponse::decode(&r.body[..]).unwrap(),
        Default::default()
    );
    let r = post(h.http, "/v1/logs", &[PB], &logs(0, 4).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        ExportLogsServiceResponse::decode(&r.body[..]).unwrap(),
        Default::default()
    );

    let json_ct = ("Content-Type", "application/json; charset=utf-8");
    for (path, body) in [
        ("/v1/traces", serde_json::to_vec(&traces(10, 2)).unwrap()),
        ("/v1/metrics", serde_json::to_vec(&metrics(10, 3)).unwrap()),
        ("/v1/logs", serde_json::to_vec(&logs(10, 4)).unwrap()),
    ] {
        let r = post(h.http, path, &[json_ct], &body).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body, b"{}", "full success leaves partial_success unset");
    }

    // gzip, for both encodings.
    let r = post(
        h.http,
        "/v1/logs",
        &[PB, GZ],
        &gzip(&logs(20, 1).encode_to_vec()),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let body = gzip(&serde_json::to_vec(&metrics(20, 1)).unwrap());
    let r = post(
        h.http,
        "/v1/metrics",
        &[JS, ("Content-Encoding", "x-gzip")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(
        h.http,
        "/v1/traces",
        &[PB, ("Content-Encoding", "identity")],
        &traces(20, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");

    let got = h.stop().await.received();
    assert_eq!(
        got,
        vec![
            Signal::Traces(traces(0, 2)),
            Signal::Metrics(metrics(0, 3)),
            Signal::Logs(logs(0, 4)),
            Signal::Traces(traces(10, 2)),
            Signal::Metrics(metrics(10, 3)),
            Signal::Logs(logs(10, 4)),
            Signal::Logs(logs(20, 1)),
            Signal::Metrics(metrics(20, 1)),
            Signal::Traces(traces(20, 1)),
        ]
    );
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string(s: &str) -> Value {
    Value::StringValue(s.to_owned())
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn http_accepts_the_otlp_spec_json_examples() {
    let h = Harness::start(loopback()).await;
    for (path, file) in [
        ("/v1/traces", include_str!("testdata/trace.json")),
        ("/v1/metrics", include_str!("testdata/metrics.json")),
        ("/v1/logs", include_str!("testdata/logs.json")),
    ] {
        let r = post(h.http, path, &[JS], file.as_bytes()).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body, b"{}");
    }
    let got = h.stop().await.received();
    assert_eq!(got.len(), 3);

    let Signal::Traces(t) = &got[0] else {
        panic!("{got:?}")
    };
    let rs = &t.resource_spans[0];
    let resource = rs.resource.as_ref().unwrap();
    assert_eq!(
        attr(&resource.attributes, "service.name"),
        Some(&string("my.service"))
    );
    let scope = rs.scope_spans[0].scope.as_ref().unwrap();
    assert_eq!(
        (scope.name.as_str(), scope.version.as_str()),
        ("my.library", "1.0.0")
    );
    assert_eq!(
        attr(&scope.attributes, "my.scope.attribute"),
        Some(&string("some scope attribute"))
    );
    let span = &rs.scope_spans[0].spans[0];
    assert_eq!(span.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(span.span_id, hex("eee19b7ec3c1b174"));
    assert_eq!(span.parent_span_id, hex("eee19b7ec3c1b173"));
    assert_eq!(span.name, "I'm a server span");
    assert_eq!(span.kind, SpanKind::Server as i32);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
    assert_eq!(
        attr(&span.attributes, "my.span.attr"),
        Some(&string("some value"))
    );

    let Signal::Metrics(m) = &got[1] else {
        panic!("{got:?}")
    };
    let ms = &m.resource_metrics[0].scope_metrics[0].metrics;
    assert_eq!(ms.len(), 3);
    assert_eq!(
        (ms[0].name.as_str(), ms[0].unit.as_str()),
        ("my.counter", "1")
    );
    assert_eq!(ms[0].description, "I`m a Counter");
    let Some(metric::Data::Sum(sum)) = &ms[0].data else {
        panic!("{:?}", ms[0])
    };
    assert_eq!(sum.aggregation_temporality, 1);
    assert!(sum.is_monotonic);
    let p = &sum.data_points[0];
    assert_eq!(p.value, Some(number_data_point::Value::AsDouble(5.0)));
    assert_eq!(p.start_time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(p.time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(
        attr(&p.attributes, "my.counter.attr"),
        Some(&string("some value"))
    );
    let Some(metric::Data::Gauge(gauge)) = &ms[1].data else {
        panic!("{:?}", ms[1])
    };
    assert_eq!(
        gauge.data_points[0].value,
        Some(number_data_point::Value::AsDouble(10.0))
    );
    let Some(metric::Data::Histogram(hist)) = &ms[2].data else {
        panic!("{:?}", ms[2])
    };
    let p = &hist.data_points[0];
    assert_eq!(hist.aggregation_temporality, 1);
    assert_eq!(
        (p.count, p.sum, p.min, p.max),
        (3, Some(3.0), Some(1.0), Some(1.0))
    );
    assert_eq!(p.bucket_counts, vec![1, 1, 1]);
    assert_eq!(p.explicit_bounds, vec![1.0]);
    assert_eq!(
        attr(&p.attributes, "my.histogram.attr"),
        Some(&string("some value"))
    );

    let Signal::Logs(l) = &got[2] else {
        panic!("{got:?}")
    };
    let record = &l.resource_logs[0].scope_logs[0].log_records[0];
    assert_eq!(record.time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(record.observed_time_unix_nano, 1_544_712_660_300_000_000);
    assert_eq!(record.severity_text, "Information");
    assert_eq!(record.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(record.span_id, hex("eee19b7ec3c1b174"));
    assert_eq!(
        record.body.as_ref().and_then(|b| b.value.clone()),
        Some(string("Example log record"))
    );
    let a = &record.attributes;
    assert_eq!(attr(a, "string.attribute"), Some(&string("some string")));
    assert_eq!(attr(a, "boolean.attribute"), Some(&Value::BoolValue(true)));
    assert_eq!(attr(a, "int.attribute"), Some(&Value::IntValue(10)));
    assert_eq!(
        attr(a, "double.attribute"),
        Some(&Value::DoubleValue(637.704))
    );
    let Some(Value::ArrayValue(array)) = attr(a, "array.attribute") else {
        panic!("{a:?}")
    };
    let values: Vec<_> = array.values.iter().map(|v| v.value.clone()).collect();
    assert_eq!(values, vec![Some(string("many")), Some(string("values"))]);
    let Some(Value::KvlistValue(map)) = attr(a, "map.attribute") else {
        panic!("{a:?}")
    };
    assert_eq!(
        attr(&map.values, "some.map.key"),
        Some(&string("some value"))
    );
}

/// The `with-serde` impls against the OTLP/JSON rules of the spec (docs/specification.md,
/// "JSON Protobuf Encoding").
#[test]
fn otlp_json_follows_the_spec() {
    // 64-bit integers as strings or numbers; ids as case-insensitive hex; enums as integers;
    // unknown fields ignored at every level.
    let as_numbers = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
        "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
        "startTimeUnixNano":1544712660000000000,"kind":3,"futureField":{"x":1},
        "attributes":[{"key":"n","value":{"intValue":10}}]}],"futureScopeField":1}]}],
        "futureTopLevelField":[1,2]}"#;
    let as_strings = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
        "traceId":"5b8efff798038103d269b633813fc60c","spanId":"EEE19B7EC3C1B174",
        "startTimeUnixNano":"1544712660000000000","kind":3,
        "attributes":[{"key":"n","value":{"intValue":"10"}}]}]}]}]}"#;
    let a: ExportTraceServiceRequest = serde_json::from_str(as_numbers).unwrap();
    let b: ExportTraceServiceRequest = serde_json::from_str(as_strings).unwrap();
    assert_eq!(a, b);
    let span = &a.resource_spans[0].scope_spans[0].spans[0];
    assert_eq!(span.trace_id, hex("5b8efff798038103d269b633813fc60c"));
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(attr(&span.attributes, "n"), Some(&Value::IntValue(10)));

    // Enum names are not OTLP/JSON; original (snake_case) field names are not keys, so they are
    // ignored like any unknown field.
    let named_enum =
        r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"SPAN_KIND_CLIENT"}]}]}]}"#;
    assert!(serde_json::from_str::<ExportTraceServiceRequest>(named_enum).is_err());
    let snake = r#"{"resource_spans":[{}]}"#;
    assert_eq!(
        serde_json::from_str::<ExportTraceServiceRequest>(snake).unwrap(),
        ExportTraceServiceRequest::default()
    );

    // Our encoding round-trips, with lowerCamelCase keys and hex ids.
    let sent = traces(0, 2);
    let text = serde_json::to_string(&sent).unwrap();
    assert!(
        text.contains(r#""resourceSpans""#) && text.contains(r#""traceId":"0000000000000001"#),
        "{text}"
    );
    assert_eq!(
        serde_json::from_str::<ExportTraceServiceRequest>(&text).unwrap(),
        sent
    );
    let text = serde_json::to_string(&metrics(0, 2)).unwrap();
    assert_eq!(
        serde_json::from_str::<ExportMetricsServiceRequest>(&text).unwrap(),
        metrics(0, 2)
    );
    let text = serde_json::to_string(&logs(0, 2)).unwrap();
    assert_eq!(
        serde_json::from_str::<ExportLogsServiceRequest>(&text).unwrap(),
        logs(0, 2)
    );
}

/// One bad request: what to send and what must come back.
struct BadCase {
    name: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    /// Content type of the answer (the `google.rpc.Status` encoding).
    content_type: &'static str,
    message: &'static str,
}

#[tokio::test]
async fn http_bad_requests_are_answered_and_the_receiver_keeps_serving() {
    let mut config = loopback();
    if let Some(h) = config.protocols.http.as_mut() {
        h.max_request_body_size = Positive(4096);
    }
    let h = Harness::start(config).await;
    let valid = traces(0, 3).encode_to_vec();
    let truncated = valid[..valid.len() - 1].to_vec();
    let zipped = gzip(&valid);
    let cases = vec![
        BadCase {
            name: "malformed protobuf",
            path: "/v1/traces",
            headers: vec![PB],
            body: vec![0xff; 64],
            status: 400,
            content_type: "application/x-protobuf",
            message: "cannot decode the body as protobuf ExportTraceServiceRequest",
        },
        BadCase {
            name: "truncated protobuf",
            path: "/v1/traces",
            headers: vec![PB],
            body: truncated,
            status: 400,
            content_type: "application/x-protobuf",
            message: "cannot decode the body as protobuf ExportTraceServiceRequest",
        },
        BadCase {
            name: "malformed JSON",
            path: "/v1/logs",
            headers: vec![JS],
            body: br#"{"resourceLogs": [{"#.to_vec(),
            status: 400,
            content_type: "application/json",
            message: "cannot decode the body as OTLP/JSON ExportLogsServiceRequest",
        },
        BadCase {
            name: "JSON with a bad hex id",
            path: "/v1/traces",
            headers: vec![JS],
            body: br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz"}]}]}]}"#.to_vec(),
            status: 400,
            content_type: "application/json",
            message: "cannot decode the body as OTLP/JSON ExportTraceServiceRequest",
        },
        BadCase {
            name: "JSON metric point with a bad value",
            path: "/v1/metrics",
            headers: vec![JS],
            body: br#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[
                {"name":"m","sum":{"dataPoints":[{"asInt":"many"}]}}]}]}]}"#
                .to_vec(),
            status: 400,
            content_type: "application/json",
            message: "metric `m`: data point 0: `asInt` is not a valid number",
        },
        BadCase {
            name: "truncated gzip",
            path: "/v1/traces",
            headers: vec![PB, GZ],
            body: zipped[..zipped.len() / 2].to_vec(),
            status: 400,
            content_type: "application/x-protobuf",
            message: "invalid gzip request body",
        },
        BadCase {
            name: "not gzip at all",
            path: "/v1/traces",
            headers: vec![JS, GZ],
            body: b"{}".to_vec(),
            status: 400,
            content_type: "application/json",
            message: "invalid gzip request body",
        },
        BadCase {
            name: "unsupported content encoding",
            path: "/v1/metrics",
            headers: vec![PB, ("Content-Encoding", "br")],
            body: valid.clone(),
            status: 400,
            content_type: "application/x-protobuf",
            message: "unsupported Content-Encoding `br`",
        },
        BadCase {
            name: "wrong content type",
            path: "/v1/traces",
            headers: vec![("Content-Type", "text/plain")],
            body: valid.clone(),
            status: 415,
            content_type: "application/x-protobuf",
            message: "unsupported Content-Type `text/plain`",
        },
        BadCase {
            name: "no content type",
            path: "/v1/traces",
            headers: vec![],
            body: valid.clone(),
            status: 415,
            content_type: "application/x-protobuf",
            message: "unsupported Content-Type none",
        },
        BadCase {
            name: "body over the limit",
            path: "/v1/traces",
            headers: vec![PB],
            body: vec![0; 5000],
            status: 413,
            content_type: "application/x-protobuf",
            message: "request body is larger than max_request_body_size (4096 bytes)",
        },
        BadCase {
            name: "decompressed body over the limit",
            path: "/v1/traces",
            headers: vec![JS, GZ],
            body: gzip(&[b' '; 64 * 1024]),
            status: 413,
            content_type: "application/json",
            message: "decompressed request body is larger than max_request_body_size (4096 bytes)",
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let r = post(h.http, case.path, &case.headers, &case.body).await;
        assert_eq!(r.status, case.status, "{}: {r:?}", case.name);
        assert_eq!(
            r.header("content-type"),
            Some(case.content_type),
            "{}",
            case.name
        );
        let status = r.rpc_status();
        assert!(
            status.message.contains(case.message),
            "{}: {status:?}",
            case.name
        );
        if case.status == 400 && case.message.contains("decode") {
            assert_eq!(status.code, Code::InvalidArgument as i32, "{}", case.name);
            if case.content_type == "application/x-protobuf" {
                assert!(status.get_details_bad_request().is_some(), "{}", case.name);
            }
        }
        assert_still_serving(h.http, 100 + i as u64).await;
    }
    // Only the valid requests in between reached the pipeline.
    let got = h.stop().await;
    assert!(got.received().iter().all(|s| s.item_count() == 1));
    assert_eq!(got.item_count(SignalKind::Traces), 12);
    assert_eq!(got.item_count(SignalKind::Metrics), 0);
}

#[tokio::test]
async fn http_body_limit_applies_before_reading_and_to_chunked_streams() {
    let mut config = loopback();
    if let Some(h) = config.protocols.http.as_mut() {
        h.max_request_body_size = Positive(1024);
    }
    let h = Harness::start(config).await;

    // A declared length over the limit is refused before the body is sent at all.
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Content-Length: 1073741824\r\nConnection: close\r\n\r\n",
        h.http
    );
    let r = exchange(h.http, &head, b"").await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r
        .rpc_status()
        .message
        .contains("max_request_body_size (1024 bytes)"));
    assert_still_serving(h.http, 0).await;

    // A chunked body is refused once it passes the limit.
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.http
    );
    let mut chunks = Vec::new();
    for _ in 0..8 {
        chunks.extend_from_slice(b"100\r\n");
        chunks.extend_from_slice(&[b' '; 256]);
        chunks.extend_from_slice(b"\r\n");
    }
    chunks.extend_from_slice(b"0\r\n\r\n");
    let r = exchange(h.http, &head, &chunks).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_still_serving(h.http, 1).await;

    // Under the limit, chunked works.
    let body = traces(2, 1).encode_to_vec();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-protobuf\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        h.http
    );
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = exchange(h.http, &head, &chunked).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(h.stop().await.item_count(SignalKind::Traces), 3);
}

/// A gzip stream of `mib` MiB of zeros, built from one compressed MiB repeated: the zeros are
/// never in memory, and building it takes milliseconds even unoptimised. Each segment comes from
/// a fresh compressor ending in a full flush, so it refers to nothing before it.
fn gzip_bomb(mib: u32) -> Vec<u8> {
    use flate2::{Compress, Compression, Crc, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut segment = Vec::with_capacity(1 << 20);
    let mut c = Compress::new(Compression::best(), false);
    c.compress_vec(&zeros, &mut segment, FlushCompress::Full)
        .unwrap();
    assert_eq!(c.total_in(), 1 << 20);
    let mut last = Vec::with_capacity(64);
    Compress::new(Compression::best(), false)
        .compress_vec(&[], &mut last, FlushCompress::Finish)
        .unwrap();
    let mut one = Crc::new();
    one.update(&zeros);
    let mut crc = Crc::new();
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for _ in 0..mib {
        out.extend_from_slice(&segment);
        crc.combine(&one);
    }
    out.extend_from_slice(&last);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

#[test]
fn gzip_bomb_is_valid_gzip_of_zeros() {
    let bomb = gzip_bomb(3);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bomb[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out.len(), 3 << 20);
    assert!(out.iter().all(|b| *b == 0));
}

/// Counts how much of its input a reader took.
struct Counting<'a> {
    inner: &'a [u8],
    consumed: Arc<AtomicUsize>,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = Read::read(&mut self.inner, buf)?;
        self.consumed.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    }
}

impl BufRead for Counting<'_> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        Ok(self.inner)
    }
    fn consume(&mut self, n: usize) {
        self.inner = &self.inner[n..];
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }
}

#[test]
fn gunzip_stops_at_the_limit() {
    let bomb = gzip_bomb(1024);
    let consumed = Arc::new(AtomicUsize::new(0));
    let input = Counting {
        inner: &bomb,
        consumed: consumed.clone(),
    };
    let limit = DEFAULT_MAX_REQUEST_BODY_SIZE;
    assert!(matches!(
        http::gunzip_capped(input, limit),
        Err(http::InflateError::TooLarge)
    ));
    // About 21 of the 1024 compressed MiB were read: the other 1003 MiB were never inflated.
    let read = consumed.load(Ordering::Relaxed);
    assert!(
        read < bomb.len() / 10,
        "read {read} of {} bytes",
        bomb.len()
    );

    assert_eq!(http::gunzip_capped(&gzip(b"ok")[..], 2).unwrap(), b"ok");
    assert!(matches!(
        http::gunzip_capped(&gzip(b"too")[..], 2),
        Err(http::InflateError::TooLarge)
    ));
    // Concatenated gzip members are one body, as in Go's gzip reader.
    let mut two = gzip(b"a");
    two.extend(gzip(b"b"));
    assert_eq!(http::gunzip_capped(&two[..], 10).unwrap(), b"ab");
}

#[tokio::test]
async fn http_refuses_a_gzip_bomb_with_413() {
    let h = Harness::start(loopback()).await; // default limit: 20 MiB
    let bomb = gzip_bomb(1024); // 1 GiB of zeros in about 1 MiB
    let r = post(h.http, "/v1/traces", &[PB, GZ], &bomb).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert!(r.rpc_status().message.contains("decompressed request body"));
    assert_still_serving(h.http, 0).await;
    assert_eq!(h.stop().await.item_count(SignalKind::Traces), 1);
}

#[tokio::test]
async fn http_partial_success_in_both_encodings() {
    let h = Harness::start(loopback()).await;
    let (sent, valid) = traces_with_invalid_ids();
    let r = post(h.http, "/v1/traces", &[PB], &sent.encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let partial = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 3);
    assert!(!partial.error_message.is_empty());

    let (sent_logs, valid_logs) = logs_with_invalid_ids();
    let r = post(
        h.http,
        "/v1/logs",
        &[JS],
        &serde_json::to_vec(&sent_logs).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    // int64 in proto3 JSON is a string.
    assert_eq!(v["partialSuccess"]["rejectedLogRecords"], "2", "{v}");
    assert!(v["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("span_id"));

    // In JSON, an empty id string is a zero-length id.
    let json = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"ok"},
        {"traceId":"","spanId":"eee19b7ec3c1b174","name":"no trace id"}]}]}]}"#;
    let r = post(h.http, "/v1/traces", &[JS], json.as_bytes()).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["partialSuccess"]["rejectedSpans"], "1", "{v}");

    let got = h.stop().await.received();
    assert_eq!(got[0], Signal::Traces(valid));
    assert_eq!(got[1], Signal::Logs(valid_logs));
    let Signal::Traces(t) = &got[2] else {
        panic!("{got:?}")
    };
    let names: Vec<_> = t.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["ok"]);
}

// === HTTP through the router, no socket ===

fn test_router(sink: &Sink, kinds: &[SignalKind], telemetry: &Telemetry) -> axum::Router {
    let ingest = ingest::Ingest::new(
        router_to(sink.shared(), kinds),
        telemetry.receiver(&otlp_id(), "http"),
    );
    http::router(&HttpConfig::default(), ingest, None)
}

async fn oneshot(
    router: &axum::Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Reply {
    let mut req = ::http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = router
        .clone()
        .oneshot(req.body(axum::body::Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn http_maps_pipeline_errors_per_otlp_spec() {
    let sink = Sink::new();
    let telemetry = Telemetry::new();
    let router = test_router(
        &sink,
        &[SignalKind::Traces, SignalKind::Metrics],
        &telemetry,
    );
    let pb = traces(0, 1).encode_to_vec();
    let js = serde_json::to_vec(&traces(0, 1)).unwrap();

    // (sink error, HTTP status, Retry-After, google.rpc.Code)
    let cases = [
        (ConsumeError::Full, 503, Some("1"), Code::Unavailable),
        (ConsumeError::Closed, 503, Some("1"), Code::Unavailable),
        (
            ConsumeError::Throttled(Duration::from_secs(30)),
            429,
            Some("30"),
            Code::ResourceExhausted,
        ),
        (
            ConsumeError::Throttled(Duration::from_millis(1500)),
            429,
            Some("2"),
            Code::ResourceExhausted,
        ),
        (
            ConsumeError::Permanent("no".into()),
            400,
            None,
            Code::InvalidArgument,
        ),
    ];
    for (err, status, retry_after, code) in cases {
        sink.fail_with(Some(err.clone()));
        for (ct, body) in [(PB, pb.clone()), (JS, js.clone())] {
            let r = oneshot(&router, "POST", "/v1/traces", &[ct], body).await;
            assert_eq!(r.status, status, "{err:?} {ct:?}: {r:?}");
            assert_eq!(r.header("retry-after"), retry_after, "{err:?}");
            assert_eq!(r.header("content-type"), Some(ct.1));
            let s = r.rpc_status();
            assert_eq!(s.code, code as i32, "{err:?}");
            assert_eq!(s.message, err.to_string());
        }
    }
    // The JSON form of RetryInfo.
    sink.fail_with(Some(ConsumeError::Throttled(Duration::from_secs(30))));
    let r = oneshot(&router, "POST", "/v1/traces", &[JS], js.clone()).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v["details"][0]["@type"],
        "type.googleapis.com/google.rpc.RetryInfo"
    );
    assert_eq!(v["details"][0]["retryDelay"], "30s");
    let r = oneshot(&router, "POST", "/v1/traces", &[PB], pb.clone()).await;
    assert_eq!(
        r.rpc_status()
            .get_details_retry_info()
            .and_then(|i| i.retry_delay),
        Some(Duration::from_secs(30))
    );

    // A signal no pipeline takes.
    sink.fail_with(None);
    let r = oneshot(
        &router,
        "POST",
        "/v1/logs",
        &[PB],
        logs(0, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.rpc_status().code, Code::Unimplemented as i32);
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn http_routes_only_post_on_the_configured_paths() {
    let sink = Sink::new();
    let telemetry = Telemetry::new();
    let router = test_router(&sink, &SignalKind::ALL, &telemetry);
    let r = oneshot(&router, "GET", "/v1/traces", &[], Vec::new()).await;
    assert_eq!(r.status, 405, "{r:?}");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = oneshot(&router, "PUT", "/v1/logs", &[PB], Vec::new()).await;
    assert_eq!(r.status, 405, "{r:?}");
    let r = oneshot(&router, "POST", "/v1/trace", &[PB], Vec::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = oneshot(&router, "POST", "/v1/traces/", &[PB], Vec::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    // An empty body is an empty request: success, nothing forwarded.
    let r = oneshot(&router, "POST", "/v1/traces?x=1", &[PB], Vec::new()).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(sink.received().is_empty());

    // Custom paths replace the defaults.
    let config = HttpConfig {
        traces_url_path: "/otlp/t".parse().unwrap(),
        ..HttpConfig::default()
    };
    let ingest = ingest::Ingest::new(
        router_to(sink.shared(), &SignalKind::ALL),
        telemetry.receiver(&otlp_id(), "http"),
    );
    let custom = http::router(&config, ingest, None);
    let r = oneshot(
        &custom,
        "POST",
        "/otlp/t",
        &[PB],
        traces(0, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = oneshot(
        &custom,
        "POST",
        "/v1/traces",
        &[PB],
        traces(0, 1).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(sink.item_count(SignalKind::Traces), 1);
}

// === telemetry ===

fn counter(text: &str, name: &str, transport: &str) -> u64 {
    let prefix = format!("authwatch_{name}_total{{receiver=\"otlp\",transport=\"{transport}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn telemetry_counts_accepted_and_refused_items_per_transport() {
    let h = Harness::start(loopback()).await;
    let mut t = TraceServiceClient::connect(h.grpc_url()).await.unwrap();
    t.export(traces(0, 3)).await.unwrap();
    let (with_invalid, _) = traces_with_invalid_ids(); // 2 valid, 3 invalid
    t.export(with_invalid).await.unwrap();
    h.sink.fail_with(Some(ConsumeError::Full));
    t.export(traces(0, 4)).await.unwrap_err();
    let r = post(h.http, "/v1/logs", &[PB], &logs(0, 6).encode_to_vec()).await;
    assert_eq!(r.status, 503);
    h.sink.fail_with(None);
    let r = post(
        h.http,
        "/v1/metrics",
        &[JS],
        &serde_json::to_vec(&metrics(0, 7)).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = post(h.http, "/v1/metrics", &[PB], b"\xff\xff").await;
    assert_eq!(r.status, 400);

    let text = h.settings.telemetry.encode();
    assert_eq!(
        counter(&text, "receiver_accepted_spans", "grpc"),
        5,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_refused_spans", "grpc"),
        7,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_refused_log_records", "http"),
        6,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_accepted_metric_points", "http"),
        7,
        "{text}"
    );
    assert_eq!(
        counter(&text, "receiver_accepted_spans", "http"),
        0,
        "{text}"
    );
    h.stop().await;
}

// === lifecycle ===

#[tokio::test]
async fn build_fails_fast_when_a_port_is_taken() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = loopback();
    if let Some(h) = config.protocols.http.as_mut() {
        h.endpoint = ListenAddr(addr);
    }
    let cx = ReceiverContext {
        settings: Settings::new(otlp_id()),
        next: Router::new(),
    };
    match config.build(cx).await {
        Err(BuildError::Bind { addr: a, .. }) => assert_eq!(a, addr),
        Err(e) => panic!("expected a bind error, got {e}"),
        Ok(_) => panic!("expected a bind error"),
    }
}

#[tokio::test]
async fn runs_only_the_configured_protocol() {
    let config = Config {
        protocols: Protocols {
            grpc: None,
            http: Some(HttpConfig {
                endpoint: ListenAddr::localhost(0),
                ..HttpConfig::default()
            }),
        },
    };
    let sink = Sink::new();
    let cx = ReceiverContext {
        settings: Settings::new(otlp_id()),
        next: router_to(sink.shared(), &SignalKind::ALL),
    };
    let receiver = Receiver::bind(&config, cx).await.unwrap();
    assert!(receiver.grpc_addr().is_none());
    assert!(receiver.http_addr().is_some());
}

#[tokio::test]
async fn shutdown_stops_accepting_and_ends_the_task() {
    // Through the public trait, as the service builds it; ports found by binding first.
    let grpc_port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (grpc, http) = (
        grpc_port.local_addr().unwrap(),
        http_port.local_addr().unwrap(),
    );
    drop((grpc_port, http_port));
    let config = Config {
        protocols: Protocols {
            grpc: Some(GrpcConfig {
                endpoint: ListenAddr(grpc),
                ..GrpcConfig::default()
            }),
            http: Some(HttpConfig {
                endpoint: ListenAddr(http),
                ..HttpConfig::default()
            }),
        },
    };
    let sink = Sink::new();
    let settings = Settings::new(otlp_id());
    let running = config
        .build(ReceiverContext {
            settings: settings.clone(),
            next: router_to(sink.shared(), &SignalKind::ALL),
        })
        .await
        .unwrap();
    let task = tokio::spawn(running);
    let mut t = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    t.export(traces(0, 1)).await.unwrap();
    assert_still_serving(http, 1).await;

    settings.shutdown.cancel();
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Both ports are closed, and the open gRPC connection takes no new call.
    assert!(TcpStream::connect(http).await.is_err());
    assert!(TcpStream::connect(grpc).await.is_err());
    assert!(t.export(traces(5, 1)).await.is_err());
    assert_eq!(sink.item_count(SignalKind::Traces), 2);
}

/// Holds every batch until released, then hands it to the sink.
struct Gate {
    sink: Sink,
    entered: Notify,
    release: Notify,
}

impl Consumer for Gate {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let released = self.release.notified();
            self.entered.notify_one();
            released.await;
            self.sink.consume(data).await
        })
    }
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let gate = Arc::new(Gate {
        sink: Sink::new(),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let settings = Settings::new(otlp_id());
    let cx = ReceiverContext {
        settings: settings.clone(),
        next: router_to(gate.clone(), &SignalKind::ALL),
    };
    let receiver = Receiver::bind(&loopback(), cx).await.unwrap();
    let (grpc, http) = (receiver.grpc_addr().unwrap(), receiver.http_addr().unwrap());
    let task = tokio::spawn(receiver.run());

    // One gRPC call in flight...
    let mut t = TraceServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let grpc_call = tokio::spawn(async move { t.export(traces(0, 1)).await });
    gate.entered.notified().await;
    // ...and one HTTP request.
    let http_call =
        tokio::spawn(
            async move { post(http, "/v1/logs", &[PB], &logs(0, 2).encode_to_vec()).await },
        );
    gate.entered.notified().await;

    settings.shutdown.cancel();
    tokio::task::yield_now().await;
    assert!(
        !task.is_finished(),
        "the receiver waits for requests in flight"
    );
    gate.release.notify_waiters();

    let grpc_result = tokio::time::timeout(HANG_GUARD, grpc_call)
        .await
        .unwrap()
        .unwrap();
    assert!(grpc_result.is_ok(), "{grpc_result:?}");
    let reply = tokio::time::timeout(HANG_GUARD, http_call)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    tokio::time::timeout(HANG_GUARD, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(gate.sink.item_count(SignalKind::Traces), 1);
    assert_eq!(gate.sink.item_count(SignalKind::Logs), 2);
}

#[tokio::test]
async fn lifecycle_with_no_data() {
    let h = Harness::start(loopback()).await;
    assert!(h.stop().await.received().is_empty());
}

// === CORS ===

fn cors_config() -> HttpConfig {
    HttpConfig {
        cors: Some(CorsConfig {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "https://*.example.org".into(),
            ],
            allowed_headers: vec!["X-Tenant".into()],
            exposed_headers: vec![],
            max_age: 600,
        }),
        ..HttpConfig::default()
    }
}

fn cors_router(sink: &Sink, config: &HttpConfig, auth: Option<auth::BearerAuth>) -> axum::Router {
    let telemetry = Telemetry::new();
    let ingest = ingest::Ingest::new(
        router_to(sink.shared(), &SignalKind::ALL),
        telemetry.receiver(&otlp_id(), "http"),
    );
    http::router(config, ingest, auth)
}

const JSON_SPAN: &str = r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /authorize","kind":3}]}]}]}"#;

#[tokio::test]
async fn cors_preflight_from_an_allowed_origin_is_answered() {
    let sink = Sink::new();
    let router = cors_router(&sink, &cors_config(), None);
    for origin in ["https://app.example.com", "https://shop.eu.example.org"] {
        let r = oneshot(
            &router,
            "OPTIONS",
            "/v1/traces",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type,x-tenant"),
            ],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 204, "{r:?}");
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-allow-methods"), Some("POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("content-type,x-tenant")
        );
        assert_eq!(r.header("access-control-max-age"), Some("600"));
        assert_eq!(r.header("vary"), Some("Origin"));
    }
    assert!(sink.received().is_empty());
}

#[tokio::test]
async fn cors_preflight_is_refused_for_other_origins_methods_and_headers() {
    let sink = Sink::new();
    let router = cors_router(&sink, &cors_config(), None);
    let cases: [(&str, &str, &str, &str); 5] = [
        (
            "https://evil.example.net",
            "POST",
            "content-type",
            "origin `https://evil.example.net`",
        ),
        // `*.example.org` does not match the bare domain, nor another scheme.
        (
            "https://example.org",
            "POST",
            "content-type",
            "origin `https://example.org`",
        ),
        (
            "http://app.example.com",
            "POST",
            "content-type",
            "origin `http://app.example.com`",
        ),
        (
            "https://app.example.com",
            "PUT",
            "content-type",
            "method `PUT`",
        ),
        (
            "https://app.example.com",
            "POST",
            "content-type,x-secret",
            "header `x-secret`",
        ),
    ];
    for (origin, method, headers, why) in cases {
        let r = oneshot(
            &router,
            "OPTIONS",
            "/v1/traces",
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", method),
                ("Access-Control-Request-Headers", headers),
            ],
            Vec::new(),
        )
        .await;
        assert_eq!(r.status, 403, "{origin} {method} {headers}: {r:?}");
        assert!(
            r.headers
                .iter()
                .all(|(k, _)| !k.starts_with("access-control-")),
            "{r:?}"
        );
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains(why), "{body}");
    }
}

#[tokio::test]
async fn cors_headers_on_posts_and_errors_from_allowed_origins_only() {
    let sink = Sink::new();
    let router = cors_router(&sink, &cors_config(), None);
    let origin = ("Origin", "https://app.example.com");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some("Origin"));
    // Errors carry them too, so the page can read why.
    let r = oneshot(&router, "POST", "/v1/traces", &[JS, origin], b"{".to_vec()).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = oneshot(&router, "POST", "/v1/nope", &[JS, origin], Vec::new()).await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // Another origin: served as without `Origin`, no CORS headers (the browser hides it).
    let other = ("Origin", "https://evil.example.net");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, other],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-allow-credentials"), None);
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(sink.received().len(), 2);
}

#[tokio::test]
async fn cors_preflight_needs_no_token_but_the_post_does() {
    let sink = Sink::new();
    let telemetry = Telemetry::new();
    let auth = auth::BearerAuth::new(
        &AuthConfig {
            bearer_token: authwatch_core::config::Secret::new("tok"),
        },
        &telemetry,
        &otlp_id(),
        "http",
    );
    let mut config = cors_config();
    if let Some(c) = config.cors.as_mut() {
        c.allowed_headers = vec!["authorization".into()];
    }
    let router = cors_router(&sink, &config, Some(auth));
    let origin = ("Origin", "https://app.example.com");
    let r = oneshot(
        &router,
        "OPTIONS",
        "/v1/traces",
        &[
            origin,
            ("Access-Control-Request-Method", "POST"),
            (
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin, ("Authorization", "Bearer tok")],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn without_cors_options_is_not_allowed_and_no_headers_are_added() {
    let sink = Sink::new();
    let router = cors_router(&sink, &HttpConfig::default(), None);
    let origin = ("Origin", "https://app.example.com");
    let r = oneshot(
        &router,
        "OPTIONS",
        "/v1/traces",
        &[origin, ("Access-Control-Request-Method", "POST")],
        Vec::new(),
    )
    .await;
    assert_eq!(r.status, 405, "{r:?}");
    let r = oneshot(
        &router,
        "POST",
        "/v1/traces",
        &[JS, origin],
        JSON_SPAN.into(),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r
        .headers
        .iter()
        .all(|(k, _)| !k.starts_with("access-control-") && k != "vary"));
}

#[test]
fn cors_origin_globs() {
    use super::cors::glob_match;
    assert!(glob_match(
        "https://*.example.com",
        "https://a.b.example.com"
    ));
    assert!(!glob_match("https://*.example.com", "https://example.com"));
    assert!(!glob_match(
        "https://*.example.com",
        "https://a.example.com.evil.io"
    ));
    assert!(glob_match("http://localhost:*", "http://localhost:5173"));
    let mut v = Validator::new("");
    let c = decode("protocols: { http: { cors: { allowed_headers: [x-a] } } }").unwrap();
    c.validate(&mut v);
    let (errors, warnings) = v.into_parts();
    assert!(errors.is_empty());
    assert_eq!(
        warnings[0].to_string(),
        "protocols::http::cors: `allowed_headers` is set but `allowed_origins` is empty, so CORS is off; list the origins"
    );
}

#[tokio::test]
async fn http_protobuf_into_a_byte_pipeline_is_checked_not_decoded() {
    let h = Harness::start_into(loopback(), &SignalKind::ALL, Sink::wanting_encoded()).await;
    let body = traces(0, 4).encode_to_vec();
    let r = post(h.http, "/v1/traces", &[PB, GZ], &gzip(&body)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = post(h.http, "/v1/traces", &[PB], &body[..body.len() - 2]).await;
    assert_eq!(r.status, 400, "{r:?}");
    let json = serde_json::to_vec(&logs(0, 2)).unwrap();
    let r = post(h.http, "/v1/logs", &[JS], &json).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = h.stop().await.received();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(&got[0], Signal::Encoded(e) if e.items() == 4 && e.bytes()[..] == body[..]));
    assert!(matches!(&got[1], Signal::Logs(_)), "JSON is decoded");
}
