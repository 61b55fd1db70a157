//! The OTLP/gRPC method paths (`opentelemetry.proto.collector.*.v1.*Service/Export`), written
//! once for the receiver, the exporter and the load generator.

use authwatch_core::SignalKind;

/// `TraceService/Export`.
pub const TRACES_EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";
/// `MetricsService/Export`.
pub const METRICS_EXPORT_PATH: &str =
    "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
/// `LogsService/Export`.
pub const LOGS_EXPORT_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// The gRPC path of `kind`'s export call.
pub const fn export_path(kind: SignalKind) -> &'static str {
    match kind {
        SignalKind::Traces => TRACES_EXPORT_PATH,
        SignalKind::Metrics => METRICS_EXPORT_PATH,
        SignalKind::Logs => LOGS_EXPORT_PATH,
    }
}
