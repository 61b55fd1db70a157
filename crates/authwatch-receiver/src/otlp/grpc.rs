//! OTLP/gRPC: the generated tonic `TraceService`, `MetricsService` and `LogsService` servers, one
//! small service type per signal, all feeding the same [`Ingest`].

use std::future::Future;

use authwatch_core::otlp::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use authwatch_core::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use authwatch_core::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use authwatch_core::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use authwatch_core::otlp::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use authwatch_core::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use authwatch_core::RunError;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

use super::auth::BearerAuth;
use super::ingest::{Export, Ingest};
use super::status::Problem;
use super::GrpcConfig;

async fn export<R: Export>(
    ingest: &Ingest,
    request: Request<R>,
) -> Result<Response<R::Response>, Status> {
    ingest
        .export(request.into_inner())
        .await
        .map(|rejected| Response::new(R::response(rejected)))
        .map_err(|e| Problem::from(&e).to_grpc())
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub(crate) struct Traces(pub Ingest);
/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub(crate) struct Metrics(pub Ingest);
/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub(crate) struct Logs(pub Ingest);

#[tonic::async_trait]
impl TraceService for Traces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        export(&self.0, request).await
    }
}

#[tonic::async_trait]
impl MetricsService for Metrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        export(&self.0, request).await
    }
}

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        export(&self.0, request).await
    }
}

/// Refuses calls without the configured bearer token (`authorization` metadata) before their
/// message is decoded; passes every call when no token is configured.
fn authenticate(
    auth: Option<BearerAuth>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |request: Request<()>| match &auth {
        None => Ok(request),
        Some(a) => {
            let value = request
                .metadata()
                .get("authorization")
                .map(|v| v.as_bytes());
            if a.check(value) {
                Ok(request)
            } else {
                Err(Status::unauthenticated(
                    "missing or wrong bearer token: send `authorization: Bearer <token>` metadata",
                ))
            }
        }
    }
}

/// Serves the three services on `listener` until `shutdown` is cancelled, then lets the requests
/// in flight finish. tonic checks `max_recv_msg_size_mib` on the wire and while inflating gzip.
/// With `tls`, connections are TLS (handshakes off the accept loop; see [`crate::tls`]).
pub(crate) fn serve(
    config: GrpcConfig,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    auth: Option<BearerAuth>,
    ingest: Ingest,
    shutdown: CancellationToken,
) -> impl Future<Output = Result<(), RunError>> + Send + 'static {
    let check = authenticate(auth);
    let limit = config.max_recv_msg_size();
    let traces = TraceServiceServer::new(Traces(ingest.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let metrics = MetricsServiceServer::new(Metrics(ingest.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let logs = LogsServiceServer::new(Logs(ingest))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    let router = Server::builder()
        .max_concurrent_streams(config.max_concurrent_streams.map(|n| n.get()))
        .add_service(InterceptedService::new(traces, check.clone()))
        .add_service(InterceptedService::new(metrics, check.clone()))
        .add_service(InterceptedService::new(logs, check));
    async move {
        let served = match tls {
            None => {
                router
                    .serve_with_incoming_shutdown(
                        TcpIncoming::from(listener).with_nodelay(Some(true)),
                        shutdown.cancelled_owned(),
                    )
                    .await
            }
            Some(tls) => {
                let incoming = crate::tls::TlsIncoming::new(listener, tls, shutdown.clone());
                router
                    .serve_with_incoming_shutdown(incoming, shutdown.cancelled_owned())
                    .await
            }
        };
        served.map_err(|e| RunError(format!("OTLP gRPC server failed: {e}")))
    }
}
