//! authwatch's own logs as OTLP log records, besides stderr: `service.telemetry.logs.processors`.
//! The binary bridges `tracing` into the logger provider built here
//! (`opentelemetry-appender-tracing`); records carry the same resource as the metrics.
//!
//! Logs never contain secrets (config values that are secrets are redacted everywhere), so the
//! export sends what stderr shows. Records of the HTTP/gRPC stacks and of the export itself are
//! not exported (see [`exported_target`]), so that a failing or chatty export cannot feed itself.

use std::time::Duration;

use opentelemetry_sdk::logs::log_processor_with_async_runtime::BatchLogProcessor;
use opentelemetry_sdk::logs::{BatchConfigBuilder, SdkLoggerProvider};
use opentelemetry_sdk::runtime::Tokio;

use super::otlp::{self, TelemetryError, EXPORT_LOG_TARGET};
use crate::config::{LogProcessorConfig, PushExporterConfig, TelemetryConfig};

/// The logger provider authwatch's logs are exported through, if any processor is configured.
pub struct LogExport {
    provider: SdkLoggerProvider,
}

impl LogExport {
    /// Builds the provider with one batch processor per `logs.processors` entry, or `None` when
    /// there is none. Spawns the processors' tasks: call it inside the runtime.
    pub fn build(cfg: &TelemetryConfig) -> Result<Option<LogExport>, TelemetryError> {
        if cfg.logs.processors.is_empty() {
            return Ok(None);
        }
        let mut builder = SdkLoggerProvider::builder().with_resource(super::resource(cfg));
        for p in &cfg.logs.processors {
            let LogProcessorConfig::Batch(b) = p;
            let PushExporterConfig::Otlp(o) = &b.exporter;
            let exporter = otlp::log_exporter(o, b.export_timeout)?;
            let batch = BatchConfigBuilder::default()
                .with_scheduled_delay(b.schedule_delay)
                .with_max_queue_size(b.max_queue_size.max(1))
                .with_max_export_batch_size(b.max_queue_size.clamp(1, 512))
                .with_max_export_timeout(b.export_timeout)
                .build();
            builder = builder.with_log_processor(
                BatchLogProcessor::builder(exporter, Tokio)
                    .with_batch_config(batch)
                    .build(),
            );
        }
        Ok(Some(LogExport {
            provider: builder.build(),
        }))
    }

    /// The provider to bridge `tracing` into.
    pub fn provider(&self) -> &SdkLoggerProvider {
        &self.provider
    }

    /// Exports what is queued and stops, waiting at most `timeout`, off the runtime's worker
    /// threads. A failure is reported on stderr: logging may be what failed.
    pub async fn shutdown(self, timeout: Duration) {
        let provider = self.provider;
        let task = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(timeout));
        match tokio::time::timeout(timeout + Duration::from_millis(100), task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("authwatch: log export did not flush cleanly: {e}"),
            Ok(Err(e)) => eprintln!("authwatch: log export shutdown failed: {e}"),
            Err(_) => eprintln!("authwatch: log export did not flush within {timeout:?}"),
        }
    }
}

/// Whether records of this `tracing` target are exported: not those of the export itself, nor
/// of the crates the OTLP exporters are built on (their records would be exported through them).
pub fn exported_target(target: &str) -> bool {
    const STACK: [&str; 9] = [
        "h2",
        "hyper",
        "hyper_util",
        "tonic",
        "tower",
        "reqwest",
        "rustls",
        "opentelemetry",
        "opentelemetry_sdk",
    ];
    if target.starts_with(EXPORT_LOG_TARGET) {
        return false;
    }
    let krate = target.split("::").next().unwrap_or(target);
    !STACK.contains(&krate) && !krate.starts_with("opentelemetry")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_stack_is_not_exported() {
        assert!(exported_target("authwatch_service::run"));
        assert!(exported_target("authwatch_receiver::otlp::grpc"));
        assert!(!exported_target("h2::proto::connection"));
        assert!(!exported_target("hyper_util::client::legacy::pool"));
        assert!(!exported_target("opentelemetry_otlp"));
        assert!(!exported_target(EXPORT_LOG_TARGET));
    }
}
