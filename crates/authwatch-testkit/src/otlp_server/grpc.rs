//! The test backend's OTLP/gRPC services: record the request, answer what the test set.

use std::sync::Arc;

use authwatch_core::otlp::collector::logs::v1::logs_service_server::LogsService;
use authwatch_core::otlp::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use authwatch_core::otlp::collector::metrics::v1::metrics_service_server::MetricsService;
use authwatch_core::otlp::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use authwatch_core::otlp::collector::trace::v1::trace_service_server::TraceService;
use authwatch_core::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use authwatch_core::Signal;
use tonic_types::{ErrorDetails, StatusExt};

use super::{logs_response, metrics_response, trace_response, Encoding, Reply, Shared, Transport};

#[derive(Clone)]
pub(super) struct Grpc(pub(super) Arc<Shared>);

impl Grpc {
    fn record<T>(&self, req: tonic::Request<T>, wrap: fn(T) -> Signal) -> Reply {
        let headers = req.metadata().clone().into_headers();
        let compressed = headers
            .get("grpc-encoding")
            .is_some_and(|v| v.as_bytes() == b"gzip");
        self.0.record(
            wrap(req.into_inner()),
            Transport::Grpc,
            Encoding::Protobuf,
            compressed,
            headers,
        )
    }
}

fn grpc_status(reply: &Reply) -> Option<tonic::Status> {
    match reply {
        Reply::Ok | Reply::PartialSuccess { .. } => None,
        Reply::Unavailable => Some(tonic::Status::unavailable("test server is unavailable")),
        Reply::Throttled(d) => Some(tonic::Status::with_error_details(
            tonic::Code::ResourceExhausted,
            "test server is throttling",
            ErrorDetails::with_retry_info(Some(*d)),
        )),
        Reply::InvalidArgument => Some(tonic::Status::invalid_argument(
            "test server refuses this data",
        )),
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let reply = self.record(req, Signal::Traces);
        if let Some(s) = grpc_status(&reply) {
            return Err(s);
        }
        Ok(tonic::Response::new(trace_response(&reply)))
    }
}

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let reply = self.record(req, Signal::Metrics);
        if let Some(s) = grpc_status(&reply) {
            return Err(s);
        }
        Ok(tonic::Response::new(metrics_response(&reply)))
    }
}

#[tonic::async_trait]
impl LogsService for Grpc {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        let reply = self.record(req, Signal::Logs);
        if let Some(s) = grpc_status(&reply) {
            return Err(s);
        }
        Ok(tonic::Response::new(logs_response(&reply)))
    }
}
