//! A real OTLP backend on loopback for tests: gRPC (tonic, all three services, gzip accepted) and
//! HTTP (axum, `/v1/{traces,metrics,logs}`, protobuf and JSON, gzip) on random `127.0.0.1` ports.
//!
//! It records every request it receives, decoded, in arrival order, with the request's headers
//! (gRPC metadata included), and answers what the test tells it to: OK, partial success,
//! `UNAVAILABLE`/503, `RESOURCE_EXHAUSTED` with `RetryInfo`/429 with `Retry-After`, or
//! `INVALID_ARGUMENT`/400. [`OtlpServer::stop`] and [`OtlpServer::restart`] take the backend down
//! and bring it back on the same ports.
//!
//! ```ignore
//! let server = OtlpServer::start().await;
//! server.respond_next(2, Reply::Unavailable); // two failures, then OK again
//! // ... point an exporter at server.grpc_endpoint() or server.http_endpoint() ...
//! server.wait_for_items(SignalKind::Traces, 10, Duration::from_secs(10)).await;
//! assert_eq!(server.traces(), vec![sent]);
//! ```

mod grpc;
mod http;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ::http::HeaderMap;
use authwatch_core::otlp::collector::logs::v1::logs_service_server::LogsServiceServer;
use authwatch_core::otlp::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use authwatch_core::otlp::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
use authwatch_core::otlp::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use authwatch_core::otlp::collector::trace::v1::trace_service_server::TraceServiceServer;
use authwatch_core::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use authwatch_core::{Signal, SignalKind};
use axum::routing::post;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;

/// What the server answers to a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reply {
    /// Success (gRPC OK, HTTP 200 with an empty response message).
    #[default]
    Ok,
    /// Success with `partial_success.rejected_<items> = rejected` and an error message.
    PartialSuccess { rejected: i64, message: String },
    /// gRPC `UNAVAILABLE`, HTTP 503: retryable.
    Unavailable,
    /// gRPC `RESOURCE_EXHAUSTED` with `RetryInfo { retry_delay }`, HTTP 429 with
    /// `Retry-After: <whole seconds, rounded up>`.
    Throttled(Duration),
    /// gRPC `INVALID_ARGUMENT`, HTTP 400: permanent.
    InvalidArgument,
}

impl Reply {
    /// Whether the request's data counts as delivered (OK or partial success).
    pub fn is_accepted(&self) -> bool {
        matches!(self, Reply::Ok | Reply::PartialSuccess { .. })
    }
}

/// How a request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Http,
}

/// The payload encoding of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The decoded export request.
    pub signal: Signal,
    pub transport: Transport,
    pub encoding: Encoding,
    /// Whether the body arrived gzip-compressed (HTTP `Content-Encoding`, gRPC `grpc-encoding`).
    pub compressed: bool,
    /// Request headers; for gRPC, the request metadata (custom headers included).
    pub headers: HeaderMap,
    /// What the server answered.
    pub reply: Reply,
    /// When it arrived (tokio's clock, so paused-time tests see their own time).
    pub at: tokio::time::Instant,
}

impl Received {
    /// A header's value as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct State_ {
    received: Vec<Received>,
    default_reply: Reply,
    scripted: VecDeque<Reply>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State_>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a request and picks its reply.
    fn record(
        &self,
        signal: Signal,
        transport: Transport,
        encoding: Encoding,
        compressed: bool,
        headers: HeaderMap,
    ) -> Reply {
        let reply = {
            let mut s = self.lock();
            let reply = s
                .scripted
                .pop_front()
                .unwrap_or_else(|| s.default_reply.clone());
            s.received.push(Received {
                signal,
                transport,
                encoding,
                compressed,
                headers,
                reply: reply.clone(),
                at: tokio::time::Instant::now(),
            });
            reply
        };
        self.notify.notify_waiters();
        reply
    }
}

struct Serving {
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// A recording OTLP backend on loopback. Dropping it stops the servers.
pub struct OtlpServer {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    serving: tokio::sync::Mutex<Option<Serving>>,
}

impl OtlpServer {
    /// Binds gRPC and HTTP on random `127.0.0.1` ports and starts serving.
    ///
    /// # Panics
    /// If loopback ports cannot be bound (a broken test machine).
    pub async fn start() -> OtlpServer {
        let grpc = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP gRPC test server");
        let http = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind OTLP HTTP test server");
        let server = OtlpServer {
            shared: Arc::new(Shared::default()),
            grpc_addr: grpc.local_addr().expect("local addr"),
            http_addr: http.local_addr().expect("local addr"),
            serving: tokio::sync::Mutex::new(None),
        };
        *server.serving.lock().await = Some(server.serve(grpc, http));
        server
    }

    /// Ports reserved but nothing serving yet: a backend that is down at start. Call
    /// [`OtlpServer::restart`] to bring it up on these ports.
    pub async fn start_stopped() -> OtlpServer {
        let server = Self::start().await;
        server.stop().await;
        server
    }

    /// The gRPC listen address.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The HTTP listen address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// `http://127.0.0.1:<grpc port>`, for an `otlp` exporter's `endpoint`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// `http://127.0.0.1:<http port>`, for an `otlphttp` exporter's base `endpoint`.
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Answer every later request with `reply` (after any [`respond_next`](Self::respond_next)
    /// replies are used up).
    pub fn set_response(&self, reply: Reply) {
        self.shared.lock().default_reply = reply;
    }

    /// Answer the next `n` requests with `reply`, then go back to the default. Calls queue up:
    /// `respond_next(1, Unavailable); respond_next(1, Throttled(..))` answers in that order.
    pub fn respond_next(&self, n: usize, reply: Reply) {
        let mut s = self.shared.lock();
        s.scripted.extend(std::iter::repeat_n(reply, n));
    }

    /// Every request received so far (accepted or not), in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Number of requests received so far, accepted or not.
    pub fn request_count(&self) -> usize {
        self.shared.lock().received.len()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        self.shared.lock().received.clear();
    }

    /// The accepted requests of one signal (OK or partial success), in arrival order.
    pub fn accepted(&self, kind: SignalKind) -> Vec<Signal> {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.reply.is_accepted() && r.signal.kind() == kind)
            .map(|r| r.signal.clone())
            .collect()
    }

    /// Accepted trace requests, in arrival order.
    pub fn traces(&self) -> Vec<ExportTraceServiceRequest> {
        self.accepted(SignalKind::Traces)
            .into_iter()
            .filter_map(|s| match s {
                Signal::Traces(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Accepted metrics requests, in arrival order.
    pub fn metrics(&self) -> Vec<ExportMetricsServiceRequest> {
        self.accepted(SignalKind::Metrics)
            .into_iter()
            .filter_map(|s| match s {
                Signal::Metrics(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Accepted logs requests, in arrival order.
    pub fn logs(&self) -> Vec<ExportLogsServiceRequest> {
        self.accepted(SignalKind::Logs)
            .into_iter()
            .filter_map(|s| match s {
                Signal::Logs(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Items (spans, points, records) of `kind` in accepted requests.
    pub fn item_count(&self, kind: SignalKind) -> usize {
        self.shared
            .lock()
            .received
            .iter()
            .filter(|r| r.reply.is_accepted() && r.signal.kind() == kind)
            .map(|r| r.signal.item_count())
            .sum()
    }

    /// Waits until accepted requests hold at least `n` items of `kind`.
    ///
    /// # Panics
    /// After `timeout` (a hang guard: make it generous).
    pub async fn wait_for_items(&self, kind: SignalKind, n: usize, timeout: Duration) {
        self.wait_until(
            timeout,
            || self.item_count(kind) >= n,
            || format!("{n} {kind} items; have {}", self.item_count(kind)),
        )
        .await
    }

    /// Waits until at least `n` requests (accepted or not) have arrived.
    ///
    /// # Panics
    /// After `timeout` (a hang guard: make it generous).
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) {
        self.wait_until(
            timeout,
            || self.request_count() >= n,
            || format!("{n} requests; have {}", self.request_count()),
        )
        .await
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn() -> bool,
        what: impl Fn() -> String,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done() {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("OTLP test server: timed out waiting for {}", what());
            }
        }
    }

    /// Takes the backend down: both listeners close and open connections are shut down.
    /// Recorded requests are kept. Does nothing if already stopped.
    pub async fn stop(&self) {
        let serving = self.serving.lock().await.take();
        if let Some(s) = serving {
            s.token.cancel();
            for mut t in s.tasks {
                // Graceful shutdown waits for open connections; do not wait forever.
                if tokio::time::timeout(Duration::from_secs(5), &mut t)
                    .await
                    .is_err()
                {
                    t.abort();
                }
            }
        }
    }

    /// Brings the backend back on the same ports (stopping it first if it runs).
    ///
    /// # Panics
    /// If a port was taken by someone else meanwhile.
    pub async fn restart(&self) {
        self.stop().await;
        let grpc = bind_again(self.grpc_addr).await;
        let http = bind_again(self.http_addr).await;
        *self.serving.lock().await = Some(self.serve(grpc, http));
    }

    fn serve(&self, grpc: TcpListener, http: TcpListener) -> Serving {
        let token = CancellationToken::new();
        let svc = grpc::Grpc(self.shared.clone());
        let grpc_server = tonic::transport::Server::builder()
            .add_service(
                TraceServiceServer::new(svc.clone()).accept_compressed(CompressionEncoding::Gzip),
            )
            .add_service(
                MetricsServiceServer::new(svc.clone()).accept_compressed(CompressionEncoding::Gzip),
            )
            .add_service(LogsServiceServer::new(svc).accept_compressed(CompressionEncoding::Gzip))
            .serve_with_incoming_shutdown(
                tonic::transport::server::TcpIncoming::from(grpc),
                token.clone().cancelled_owned(),
            );
        let router = axum::Router::new()
            .route("/v1/traces", post(http::traces))
            .route("/v1/metrics", post(http::metrics))
            .route("/v1/logs", post(http::logs))
            .with_state(self.shared.clone());
        let http_server =
            axum::serve(http, router).with_graceful_shutdown(token.clone().cancelled_owned());
        let tasks = vec![
            tokio::spawn(async move {
                if let Err(e) = grpc_server.await {
                    tracing::warn!(error = %e, "OTLP gRPC test server failed.");
                }
            }),
            tokio::spawn(async move {
                if let Err(e) = http_server.await {
                    tracing::warn!(error = %e, "OTLP HTTP test server failed.");
                }
            }),
        ];
        Serving { token, tasks }
    }
}

impl Drop for OtlpServer {
    fn drop(&mut self) {
        if let Some(s) = self.serving.get_mut().take() {
            s.token.cancel();
        }
    }
}

async fn bind_again(addr: SocketAddr) -> TcpListener {
    // The old listener may take a moment to be released.
    for _ in 0..50 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("OTLP test server: cannot bind {addr} again");
}

fn trace_response(reply: &Reply) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: match reply {
            Reply::PartialSuccess { rejected, message } => Some(ExportTracePartialSuccess {
                rejected_spans: *rejected,
                error_message: message.clone(),
            }),
            _ => None,
        },
    }
}

fn metrics_response(reply: &Reply) -> ExportMetricsServiceResponse {
    ExportMetricsServiceResponse {
        partial_success: match reply {
            Reply::PartialSuccess { rejected, message } => Some(ExportMetricsPartialSuccess {
                rejected_data_points: *rejected,
                error_message: message.clone(),
            }),
            _ => None,
        },
    }
}

fn logs_response(reply: &Reply) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: match reply {
            Reply::PartialSuccess { rejected, message } => Some(ExportLogsPartialSuccess {
                rejected_log_records: *rejected,
                error_message: message.clone(),
            }),
            _ => None,
        },
    }
}
