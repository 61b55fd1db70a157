//! Self-telemetry as the Collector runs its own: one OpenTelemetry SDK meter provider built from
//! `service.telemetry` with its resource; pull readers served as Prometheus/OpenMetrics text on
//! `/metrics`; periodic readers exporting OTLP (gRPC or HTTP/protobuf); and, optionally,
//! authwatch's own logs exported as OTLP log records ([`logs`]).
//!
//! Export failures (backend down, timeouts) are logged at most once a minute and never stop
//! authwatch; shutdown exports the last figures within the time left by the drain.

pub mod logs;
mod otlp;

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader;
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::Resource;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use authwatch_core::telemetry::Telemetry;
use authwatch_core::{BuildError, RunError, Running};

use crate::config::{PushExporterConfig, TelemetryConfig};

pub use otlp::TelemetryError;

/// Content type of the OpenMetrics text exposition (Prometheus scrapes it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The resource of authwatch's own metrics and logs: `service.name` (`authwatch`),
/// `service.version`, `service.instance.id` (one per process), then `service.telemetry.resource`
/// (a value overrides, `null` removes). `OTEL_RESOURCE_ATTRIBUTES` is read too, below both.
pub fn resource(cfg: &TelemetryConfig) -> Resource {
    let mut attrs: indexmap::IndexMap<String, String> = [
        ("service.name", "authwatch".to_owned()),
        ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        ("service.instance.id", instance_id().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in &cfg.resource {
        match v {
            Some(v) => {
                attrs.insert(k.clone(), v.clone());
            }
            None => {
                attrs.shift_remove(k);
            }
        }
    }
    Resource::builder()
        .with_attributes(attrs.into_iter().map(|(k, v)| KeyValue::new(k, v)))
        .build()
}

/// This process's `service.instance.id`: a random UUID (v4), the same for metrics and logs.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    })
}

/// Builds the meter provider: the pull reader that `/metrics` collects, plus one periodic OTLP
/// reader per `metrics.readers[].periodic`. Spawns the periodic readers' tasks: call it inside
/// the runtime.
pub fn build(cfg: &TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    let mut builder = Telemetry::builder().resource(resource(cfg));
    for p in cfg.metrics.periodic_readers() {
        let PushExporterConfig::Otlp(otlp) = &p.exporter;
        let exporter = otlp::metric_exporter(otlp, p.timeout)?;
        let reader = PeriodicReader::builder(exporter, Tokio)
            .with_interval(p.interval)
            .with_timeout(p.timeout)
            .build();
        builder = builder.reader(reader);
    }
    Ok(builder.build())
}

/// Shuts the meter provider down: periodic readers export one last time. Waits at most
/// `timeout`, off the runtime's worker threads; a failure is logged, not returned.
pub async fn shutdown(telemetry: Telemetry, timeout: Duration) {
    let task = tokio::task::spawn_blocking(move || telemetry.shutdown(timeout));
    match tokio::time::timeout(timeout + Duration::from_millis(100), task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => warn!(error = %e, "Self-telemetry did not flush cleanly."),
        Ok(Err(e)) => warn!(error = %e, "Self-telemetry shutdown task failed."),
        Err(_) => warn!(timeout = ?timeout, "Self-telemetry did not flush in time."),
    }
}

/// Binds the metrics endpoint and returns its serving task (`/metrics`).
pub async fn serve_metrics(
    addr: SocketAddr,
    telemetry: Telemetry,
    shutdown: CancellationToken,
) -> Result<(SocketAddr, Running), BuildError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| BuildError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let t = telemetry.clone();
            async move { ([(header::CONTENT_TYPE, OPENMETRICS)], t.encode()).into_response() }
        }),
    );
    let task: Running = Box::pin(async move {
        authwatch_net::serve_http(
            listener,
            None,
            app,
            authwatch_net::Limits::default(),
            shutdown,
        )
        .await;
        Ok::<(), RunError>(())
    });
    Ok((local, task))
}

#[cfg(test)]
mod tests;
