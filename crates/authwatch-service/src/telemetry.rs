//! The self-telemetry endpoint: Prometheus text on `service.telemetry.metrics.address`.

use std::net::SocketAddr;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use authwatch_core::telemetry::Telemetry;
use authwatch_core::{BuildError, RunError, Running};

/// Content type of the OpenMetrics text exposition (Prometheus scrapes it).
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

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
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|e| RunError(format!("metrics endpoint failed: {e}")))
    });
    Ok((local, task))
}
