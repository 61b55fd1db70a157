//! Tests of the `otlp` receiver, by what they test: config, gRPC, HTTP over sockets, limits
//! and bad input, HTTP through the router, telemetry and lifecycle, CORS, TLS and bearer auth.
//! This file holds what they share: a harness that runs the receiver on loopback into a sink,
//! and the request helpers (HTTP/1.1 through `authwatch_testkit::raw_http`).

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
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tonic::codec::CompressionEncoding;
use tonic::Code;
use tonic_types::{RpcStatusExt, StatusExt};
use tower::ServiceExt;
use authwatch_testkit::raw_http::{exchange, post, Reply};

use std::num::NonZeroU32;

use authwatch_core::config::Positive;
use authwatch_core::{ComponentConfig, Resource, Validator};
use authwatch_net::UrlPath;

use super::*;

mod admission;
mod config;
mod cors_headers;
mod grpc_export;
mod http_export;
mod http_limits;
mod http_router;
mod lifecycle;
mod security;

/// Hang guard for anything that waits on the network; never a timed assertion.
const HANG_GUARD: Duration = Duration::from_secs(30);

// === config ===

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

// === requests ===

const PB: (&str, &str) = ("Content-Type", "application/x-protobuf");
const JS: (&str, &str) = ("Content-Type", "application/json");
const GZ: (&str, &str) = ("Content-Encoding", "gzip");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
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

/// A valid protobuf trace export; succeeds whenever the receiver is healthy.
async fn assert_still_serving(addr: SocketAddr, first: u64) {
    let r = post(addr, "/v1/traces", &[PB], &traces(first, 1).encode_to_vec()).await;
    assert_eq!(r.status, 200, "{r:?}");
}

/// The `google.rpc.Status` of an HTTP error answer, decoded per its content type.
fn rpc_status(r: &Reply) -> tonic_types::Status {
    match r.header("content-type") {
        Some("application/x-protobuf") => tonic_types::Status::decode(&r.body[..]).unwrap(),
        Some("application/json") => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            tonic_types::Status {
                code: v["code"].as_i64().unwrap() as i32,
                message: v["message"].as_str().unwrap().to_owned(),
                details: Vec::new(),
            }
        }
        other => panic!("unexpected content type {other:?}: {r:?}"),
    }
}

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

// === data ===

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
