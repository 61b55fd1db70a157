//! The sink: accepts OTLP exports over gRPC and HTTP, counts the spans of trace exports on the
//! wire (no decoding into structures), answers success, and ignores metrics and logs exports
//! (counted as requests). On HTTP it also answers `GET /probe` with `200 ok` (counted), a target
//! for the `synthetic` receiver's `http` checks in the probe benchmark. Stops after
//! `--duration`, or on SIGINT/SIGTERM, and prints what it saw.

use std::convert::Infallible;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use anyhow::Context;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::time::Instant;
use tonic::body::Body as TonicBody;
use tonic::codec::CompressionEncoding;
use tonic::codegen::{Body, Service, StdError};
use tonic::server::{NamedService, UnaryService};
use tonic::Status;

use crate::codec::{RawCodec, LOGS_EXPORT, METRICS_EXPORT, TRACES_EXPORT};
use crate::{loopback, parse_duration};

const MAX_MESSAGE: usize = 64 << 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// OTLP/gRPC listen address (loopback).
    #[arg(long, default_value = "127.0.0.1:14317")]
    grpc: String,
    /// OTLP/HTTP listen address (loopback); `none` to not listen.
    #[arg(long, default_value = "127.0.0.1:14318")]
    http: String,
    /// Stop after this long.
    #[arg(long, value_parser = parse_duration, default_value = "120s")]
    duration: Duration,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

/// What arrived; the span rate is measured from the first to the last trace export.
#[derive(Default)]
struct Counters {
    spans: AtomicU64,
    trace_requests: AtomicU64,
    other_requests: AtomicU64,
    bad_requests: AtomicU64,
    probe_requests: AtomicU64,
    first_last: Mutex<Option<(Instant, Instant)>>,
}

impl Counters {
    fn traces(&self, bytes: &[u8]) -> Result<(), authwatch_loadgen::wire::WireError> {
        let n = authwatch_loadgen::wire::count_spans(bytes).inspect_err(|_| {
            self.bad_requests.fetch_add(1, Ordering::Relaxed);
        })?;
        self.spans.fetch_add(n, Ordering::Relaxed);
        self.trace_requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut fl = self.first_last.lock().unwrap_or_else(|e| e.into_inner());
        match fl.as_mut() {
            Some((_, last)) => *last = now,
            None => *fl = Some((now, now)),
        }
        Ok(())
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.duration <= Duration::from_secs(3600),
        "--duration must be at most 1h"
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let counters = Arc::new(Counters::default());
    let stop = tokio_util_free_token();
    let mut tasks = Vec::new();

    let grpc_addr = loopback(&args.grpc)?;
    let listener = tokio::net::TcpListener::bind(grpc_addr)
        .await
        .with_context(|| format!("cannot listen on {grpc_addr}; is another sink running?"))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let traces = GrpcSink::<0> {
        counters: counters.clone(),
    };
    let metrics = GrpcSink::<1> {
        counters: counters.clone(),
    };
    let logs = GrpcSink::<2> {
        counters: counters.clone(),
    };
    let mut rx = stop.subscribe();
    tasks.push(tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(traces)
            .add_service(metrics)
            .add_service(logs)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = rx.recv().await;
            })
            .await
            .map_err(anyhow::Error::from)
    }));
    eprintln!("sink: OTLP/gRPC listening on {grpc_addr}");

    if args.http != "none" {
        let http_addr = loopback(&args.http)?;
        let listener = tokio::net::TcpListener::bind(http_addr)
            .await
            .with_context(|| format!("cannot listen on {http_addr}; is another sink running?"))?;
        let router = axum::Router::new()
            .route("/v1/traces", post(http_traces))
            .route("/v1/metrics", post(http_other))
            .route("/v1/logs", post(http_other))
            .route("/probe", get(http_probe))
            .layer(DefaultBodyLimit::max(MAX_MESSAGE))
            .with_state(counters.clone());
        let mut rx = stop.subscribe();
        tasks.push(tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.recv().await;
                })
                .await
                .map_err(anyhow::Error::from)
        }));
        eprintln!("sink: OTLP/HTTP listening on {http_addr}");
    }

    let started = Instant::now();
    let reason = tokio::select! {
        () = tokio::time::sleep(args.duration) => "duration elapsed",
        _ = tokio::signal::ctrl_c() => "interrupted",
        () = sigterm() => "terminated",
    };
    let _ = stop.send(());
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(5), t).await {
            Ok(Ok(Err(e))) => eprintln!("sink: server failed: {e:#}"),
            Ok(Err(e)) => eprintln!("sink: server task failed: {e}"),
            _ => {}
        }
    }

    let spans = counters.spans.load(Ordering::Relaxed);
    let window = counters
        .first_last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .map(|(f, l)| l - f)
        .unwrap_or_default();
    let rate = if window.is_zero() {
        0.0
    } else {
        spans as f64 / window.as_secs_f64()
    };
    let trace_requests = counters.trace_requests.load(Ordering::Relaxed);
    let other_requests = counters.other_requests.load(Ordering::Relaxed);
    let bad = counters.bad_requests.load(Ordering::Relaxed);
    let probes = counters.probe_requests.load(Ordering::Relaxed);
    if args.json {
        let summary = serde_json::json!({
            "stopped": reason,
            "uptime_s": started.elapsed().as_secs_f64(),
            "spans": spans,
            "trace_requests": trace_requests,
            "other_requests": other_requests,
            "bad_requests": bad,
            "probe_requests": probes,
            "window_s": window.as_secs_f64(),
            "spans_per_s": rate,
        });
        println!("{summary}");
    } else {
        println!(
            "sink ({reason}): {spans} spans in {trace_requests} trace requests over {:.2} s ({rate:.0} spans/s); {other_requests} metrics/logs requests; {bad} malformed; {probes} probe requests",
            window.as_secs_f64()
        );
    }
    Ok(())
}

/// A broadcast channel as a stop signal (no tokio-util needed).
fn tokio_util_free_token() -> tokio::sync::broadcast::Sender<()> {
    tokio::sync::broadcast::channel(1).0
}

async fn sigterm() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

// === impl HTTP ===

async fn http_traces(
    State(counters): State<Arc<Counters>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    let gzip = headers
        .get("content-encoding")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let result = if gzip {
        let mut raw = Vec::with_capacity(body.len() * 4);
        match flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut raw) {
            Ok(_) => counters.traces(&raw).is_ok(),
            Err(_) => false,
        }
    } else {
        counters.traces(&body).is_ok()
    };
    let status = if result {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    (status, [("content-type", "application/x-protobuf")])
}

async fn http_other(
    State(counters): State<Arc<Counters>>,
) -> (StatusCode, [(&'static str, &'static str); 1]) {
    counters.other_requests.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, [("content-type", "application/x-protobuf")])
}

async fn http_probe(State(counters): State<Arc<Counters>>) -> (StatusCode, &'static str) {
    counters.probe_requests.fetch_add(1, Ordering::Relaxed);
    (StatusCode::OK, "ok")
}

// === impl GrpcSink ===

/// A hand-written tonic service (the shape of the generated one) with the raw codec. tonic
/// routes by service name, so the sink adds one per OTLP service: `S` is 0 (traces), 1
/// (metrics) or 2 (logs).
#[derive(Clone)]
struct GrpcSink<const S: u8> {
    counters: Arc<Counters>,
}

impl NamedService for GrpcSink<0> {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl NamedService for GrpcSink<1> {
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

impl NamedService for GrpcSink<2> {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

struct Export {
    counters: Arc<Counters>,
    traces: bool,
}

impl UnaryService<Bytes> for Export {
    type Response = Bytes;
    type Future = BoxFuture<'static, Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let counters = self.counters.clone();
        let traces = self.traces;
        Box::pin(async move {
            if traces {
                counters
                    .traces(request.get_ref())
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
            } else {
                counters.other_requests.fetch_add(1, Ordering::Relaxed);
            }
            // An empty Export*ServiceResponse encodes to no bytes.
            Ok(tonic::Response::new(Bytes::new()))
        })
    }
}

impl<B, const S: u8> Service<http::Request<B>> for GrpcSink<S>
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<TonicBody>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let path = req.uri().path();
        let traces = path == TRACES_EXPORT;
        if !(traces || path == METRICS_EXPORT || path == LOGS_EXPORT) {
            return Box::pin(async move {
                Ok(Status::unimplemented("only the OTLP Export calls are served").into_http())
            });
        }
        let svc = Export {
            counters: self.counters.clone(),
            traces,
        };
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE);
            Ok(grpc.unary(svc, req).await)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_times_trace_exports() {
        let c = Counters::default();
        let bytes =
            prost::Message::encode_to_vec(&authwatch_loadgen::spans::Generator::new(1).request(10));
        c.traces(&bytes).expect("well-formed");
        c.traces(&bytes).expect("well-formed");
        assert!(c.traces(&bytes[..5]).is_err());
        assert_eq!(c.spans.load(Ordering::Relaxed), 20);
        assert_eq!(c.trace_requests.load(Ordering::Relaxed), 2);
        assert_eq!(c.bad_requests.load(Ordering::Relaxed), 1);
    }
}
