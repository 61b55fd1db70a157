//! OTLP exporters for self-telemetry (`opentelemetry-otlp`): gRPC through tonic, HTTP/protobuf
//! through the workspace's reqwest client (rustls, webpki roots; no OpenSSL). Both are wrapped so
//! that a failing backend is logged at most once a minute, and its recovery once.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
use opentelemetry_otlp::tonic_types::transport::ClientTlsConfig;
use opentelemetry_otlp::{
    LogExporter, MetricExporter, Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::LogBatch;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::Temporality;
use tracing::{info, warn};

use crate::config::{OtlpExporterConfig, OtlpProtocol};

/// Where export failures are logged. The log bridge leaves this target out, so that a failing
/// log export does not feed itself.
pub(crate) const EXPORT_LOG_TARGET: &str = "authwatch_service::telemetry::export";

/// How often a persisting export failure is logged.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Largest response body read from an OTLP/HTTP backend.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A self-telemetry exporter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot build the OTLP {signal} exporter for {endpoint}: {source}")]
    Exporter {
        signal: &'static str,
        endpoint: String,
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("cannot build the HTTP client for {endpoint}: {source}")]
    HttpClient {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("header `{name}` of the OTLP exporter for {endpoint} has a value that is not valid in a request")]
    HeaderValue { name: String, endpoint: String },
}

/// The OTLP metric exporter for one periodic reader, cumulative as the Collector's.
pub(crate) fn metric_exporter(
    cfg: &OtlpExporterConfig,
    timeout: Duration,
) -> Result<Logged<MetricExporter>, TelemetryError> {
    let endpoint = cfg.endpoint.to_string();
    let err = |source| TelemetryError::Exporter {
        signal: "metrics",
        endpoint: endpoint.clone(),
        source,
    };
    let builder = MetricExporter::builder().with_temporality(Temporality::Cumulative);
    let exporter = match cfg.protocol {
        OtlpProtocol::Grpc => builder
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .with_metadata(metadata(cfg)?)
            .with_tls_config(ClientTlsConfig::new().with_webpki_roots())
            .build()
            .map_err(err)?,
        OtlpProtocol::HttpProtobuf => builder
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.http_url("/v1/metrics"))
            .with_timeout(timeout)
            .with_headers(headers(cfg))
            .with_http_client(http_client(cfg, timeout)?)
            .build()
            .map_err(err)?,
    };
    Ok(Logged::new(exporter, "metrics", endpoint))
}

/// The OTLP log exporter for one batch log processor.
pub(crate) fn log_exporter(
    cfg: &OtlpExporterConfig,
    timeout: Duration,
) -> Result<Logged<LogExporter>, TelemetryError> {
    let endpoint = cfg.endpoint.to_string();
    let err = |source| TelemetryError::Exporter {
        signal: "logs",
        endpoint: endpoint.clone(),
        source,
    };
    let exporter = match cfg.protocol {
        OtlpProtocol::Grpc => LogExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(timeout)
            .with_metadata(metadata(cfg)?)
            .with_tls_config(ClientTlsConfig::new().with_webpki_roots())
            .build()
            .map_err(err)?,
        OtlpProtocol::HttpProtobuf => LogExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(cfg.endpoint.http_url("/v1/logs"))
            .with_timeout(timeout)
            .with_headers(headers(cfg))
            .with_http_client(http_client(cfg, timeout)?)
            .build()
            .map_err(err)?,
    };
    Ok(Logged::new(exporter, "logs", endpoint))
}

fn headers(cfg: &OtlpExporterConfig) -> HashMap<String, String> {
    cfg.headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.expose().to_owned()))
        .collect()
}

fn metadata(cfg: &OtlpExporterConfig) -> Result<MetadataMap, TelemetryError> {
    let mut map = axum::http::HeaderMap::new();
    for (k, v) in &cfg.headers {
        let value = axum::http::HeaderValue::from_str(v.expose()).map_err(|_| {
            TelemetryError::HeaderValue {
                name: k.as_str().to_owned(),
                endpoint: cfg.endpoint.to_string(),
            }
        })?;
        map.insert(
            axum::http::HeaderName::from_bytes(k.as_str().as_bytes()).map_err(|_| {
                TelemetryError::HeaderValue {
                    name: k.as_str().to_owned(),
                    endpoint: cfg.endpoint.to_string(),
                }
            })?,
            value,
        );
    }
    Ok(MetadataMap::from_headers(map))
}

fn http_client(
    cfg: &OtlpExporterConfig,
    timeout: Duration,
) -> Result<ReqwestClient, TelemetryError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map(ReqwestClient)
        .map_err(|source| TelemetryError::HttpClient {
            endpoint: cfg.endpoint.to_string(),
            source,
        })
}

// === impl ReqwestClient ===

/// A response body past the limit the telemetry client reads.
#[derive(Debug, thiserror::Error)]
#[error("response body over {0} bytes")]
struct BodyTooLarge(usize);

/// `opentelemetry-http`'s client trait over the workspace's reqwest (rustls), so that
/// `opentelemetry-otlp` brings no HTTP stack of its own.
#[derive(Debug, Clone)]
struct ReqwestClient(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for ReqwestClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request.map(reqwest::Body::from))?;
        let mut response = self.0.execute(request).await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(BodyTooLarge(MAX_RESPONSE_BYTES).into());
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = Response::new(Bytes::from(body));
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }
}

// === impl Logged ===

/// An exporter whose failures are logged at most once a minute (with how many were not), and
/// whose recovery is logged once. Export results are passed on unchanged.
pub(crate) struct Logged<E> {
    inner: E,
    signal: &'static str,
    endpoint: String,
    state: Mutex<FailureState>,
    suppressed: AtomicU64,
}

#[derive(Default)]
struct FailureState {
    last_logged: Option<Instant>,
    failing: bool,
}

impl<E> Logged<E> {
    fn new(inner: E, signal: &'static str, endpoint: String) -> Self {
        Logged {
            inner,
            signal,
            endpoint,
            state: Mutex::default(),
            suppressed: AtomicU64::new(0),
        }
    }

    fn record(&self, result: &OTelSdkResult) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                if st.failing {
                    st.failing = false;
                    st.last_logged = None;
                    self.suppressed.store(0, Ordering::Relaxed);
                    info!(target: EXPORT_LOG_TARGET, signal = self.signal, endpoint = %self.endpoint, "Self-telemetry export works again.");
                }
            }
            Err(e) => {
                st.failing = true;
                let due = st
                    .last_logged
                    .is_none_or(|t| t.elapsed() >= FAILURE_LOG_EVERY);
                if due {
                    st.last_logged = Some(Instant::now());
                    let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
                    warn!(target: EXPORT_LOG_TARGET, signal = self.signal, endpoint = %self.endpoint, error = %e, suppressed, "Self-telemetry export failed; authwatch keeps running and tries again at the next export.");
                } else {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

impl<E> fmt::Debug for Logged<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logged")
            .field("signal", &self.signal)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Logged<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.record(&result);
        result
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

impl<E: opentelemetry_sdk::logs::LogExporter> opentelemetry_sdk::logs::LogExporter for Logged<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.record(&result);
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn event_enabled(
        &self,
        level: opentelemetry::logs::Severity,
        target: &str,
        name: Option<&str>,
    ) -> bool {
        self.inner.event_enabled(level, target, name)
    }
    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_logged_once_a_minute_and_counted() {
        let l = Logged::new((), "metrics", "http://x:4317".into());
        let fail: OTelSdkResult = Err(opentelemetry_sdk::error::OTelSdkError::Timeout(
            Duration::from_secs(1),
        ));
        l.record(&fail);
        assert!(l.state.lock().unwrap().last_logged.is_some());
        l.record(&fail);
        l.record(&fail);
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 2);
        l.record(&Ok(()));
        let st = l.state.lock().unwrap();
        assert!(!st.failing && st.last_logged.is_none());
        assert_eq!(l.suppressed.load(Ordering::Relaxed), 0);
    }
}
