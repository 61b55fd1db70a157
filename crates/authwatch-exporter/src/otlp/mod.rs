//! # `otlp` exporter
//!
//! `otlp` exporter (alias `otlp_grpc`): sends traces, metrics and logs to any OTLP/gRPC backend
//! (an OpenTelemetry Collector, Jaeger, Tempo, Honeycomb, ...).
//!
//! ```yaml
//! exporters:
//!   otlp/upstream:
//!     endpoint: collector:4317          # required; or http://host:port (plaintext), https://host:port
//!     tls:
//!       insecure: false                 # true: plaintext h2c (implied by an http:// endpoint)
//!       ca_file: /etc/ssl/ca.pem        # trust only this CA (default: the webpki roots)
//!       cert_file: /etc/ssl/client.pem  # client certificate (mTLS), with key_file
//!       key_file: /etc/ssl/client.key
//!       insecure_skip_verify: false     # do not verify the server certificate (tests only)
//!       server_name_override: ""        # SNI / name to verify instead of the endpoint's host
//!     headers: { x-api-key: "${env:API_KEY}" }   # gRPC metadata; values are secrets
//!     compression: gzip                 # gzip | none
//!     timeout: 5s                       # per attempt
//!     sending_queue:
//!       enabled: true
//!       num_consumers: 10               # requests (or batches) sent at once
//!       queue_size: 1000                # requests waiting
//!       block_on_overflow: false        # when full: false = refuse (retryable), true = wait
//!       storage: /var/lib/authwatch/queue # optional: a persistent queue (docs/operations.md, "Persistent sending queue")
//!       batch:                          # optional: batch after the queue; `batch: {}` = these defaults
//!         flush_timeout: 200ms          # send a batch this long after its first request...
//!         min_size: 8192                # ...or once it holds this much
//!         max_size: 0                   # the most one batch holds; 0 = no maximum (never split)
//!         sizer: items                  # items | bytes | requests
//!     retry_on_failure: { enabled: true, initial_interval: 5s, max_interval: 30s, max_elapsed_time: 300s, multiplier: 1.5, randomization_factor: 0.5 }
//! ```
//!
//! The connection is made lazily, so the backend may be down at start: data waits in the queue
//! and is retried. Retryable status codes follow the OTLP spec: `CANCELLED`,
//! `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`, `DATA_LOSS`, and
//! `RESOURCE_EXHAUSTED` when the server sends `RetryInfo` (its delay is honoured); every other
//! code is permanent. `compression: gzip` uses gzip level 1 (about the ratio of level 6 at a
//! fraction of the CPU), and requests that arrived as protobuf are sent as they are, never
//! decoded. Partial successes are logged (rate limited) and their rejected items
//! counted as `send_failed`.
//!
//! **`sending_queue.batch`** (off unless set; `batch: {}` turns it on with the defaults above,
//! the Collector's) merges queued requests of one signal into one request after the queue:
//! a batch is sent once it holds `min_size` (spans, data points or log records with
//! `sizer: items`; protobuf bytes with `bytes`; queued requests with `requests`), or
//! `flush_timeout` after its first request, whichever comes first. `max_size` (0: none) caps a
//! batch; a single larger request is sent alone, not split. At most `num_consumers` batches are
//! sent at once; a failed batch is retried whole. Its queue records are deleted together once
//! it was sent or given up on, so with `storage` a `kill -9` loses no batch: it is sent again
//! after the restart (at least once). Prefer it to a `batch` processor in front of a persistent
//! queue, which acknowledges what it holds in memory (`authwatch validate` warns). Protobuf
//! requests are merged by concatenating their bytes, without decoding. Self-telemetry:
//! `authwatch_exporter_queue_batch_send_size` and `..._send_size_bytes` (histograms per sent
//! batch), `authwatch_exporter_queue_batch_{size,timeout}_trigger_send_total` (why a batch was
//! sent; shutdown counts as timeout).

mod call;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authwatch_core::config::Secret;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceResponse;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceResponse;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceResponse;
use authwatch_core::{
    BuildError, Built, ComponentConfig, ExporterConfig, Settings, Signal, SignalKind, Signals,
    Validator,
};
use authwatch_net::addr::GrpcTarget;
use authwatch_net::{GrpcEndpoint, TlsClientConfig};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use http::{HeaderMap, HeaderName, HeaderValue};
use prost::Message;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

use crate::helper::config::{validate_headers, HeaderError};
use crate::helper::{try_build_queued, Compression, ExportError, QueueConfig, Retry, RetryConfig, Sent, Sender};

/// `otlp` exporter config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `host:port` (TLS unless `tls.insecure`), or an `http://` (plaintext) or `https://` URL.
    pub endpoint: GrpcEndpoint,
    pub tls: TlsClientConfig,
    /// Sent as gRPC metadata with every request. Values are secrets.
    pub headers: BTreeMap<String, Secret>,
    pub compression: Compression,
    /// Per attempt.
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    pub sending_queue: QueueConfig,
    pub retry_on_failure: RetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: GrpcEndpoint::default(),
            tls: TlsClientConfig::default(),
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: Duration::from_secs(5),
            sending_queue: QueueConfig::default(),
            retry_on_failure: RetryConfig::default(),
        }
    }
}

// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "otlp";
    const ALIASES: &'static [&'static str] = &["otlp_grpc"];

    fn validate(&self, v: &mut Validator) {
        if self.endpoint.is_empty() {
            v.error("endpoint", "endpoint must be set, e.g. `collector:4317`");
        }
        if self.timeout.is_zero() {
            v.error("timeout", "must be greater than 0, e.g. `5s`");
        }
        validate_headers(&self.headers, v, true);
        self.tls.validate(v, "tls");
        self.retry_on_failure.validate(v, "retry_on_failure");
        self.sending_queue.validate(v, "sending_queue");
    }

    fn resources(&self) -> Vec<authwatch_core::Resource> {
        self.sending_queue.resources()
    }

    fn holds(&self) -> authwatch_core::Holds {
        self.sending_queue.holds()
    }
}

impl ExporterConfig for Config {
    fn signals(&self) -> Signals {
        Signals::ALL
    }

    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        let sender = GrpcSender::new(self)?;
        tracing::info!(exporter = %settings.id, endpoint = %self.endpoint, "OTLP gRPC exporter started.");
        try_build_queued(
            settings,
            sender,
            &self.sending_queue,
            &self.retry_on_failure,
        )
    }
}

impl Config {
    /// Whether the connection uses TLS: an explicit scheme wins, else `!tls.insecure`.
    fn uses_tls(&self, target: &GrpcTarget) -> bool {
        target.tls.unwrap_or(!self.tls.insecure)
    }

    fn endpoint(&self) -> Result<Endpoint, BuildError> {
        let target = self
            .endpoint
            .target()
            .map_err(|e| BuildError::option("endpoint", e))?;
        let tls = self.uses_tls(&target);
        let uri = format!("{}://{}", if tls { "https" } else { "http" }, target.authority);
        let other = |e: tonic::transport::Error| BuildError::option("endpoint", e);
        let mut ep = Endpoint::from_shared(uri)
            .map_err(other)?
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .user_agent(authwatch_net::USER_AGENT)
            .map_err(other)?;
        if tls {
            // authwatch's one certificate verifier (`ca_file` or the web roots, or none with
            // `insecure_skip_verify`); tonic adds the client certificate, SNI and ALPN `h2`.
            let mut cfg = ClientTlsConfig::new();
            if let Some(name) = self.tls.name_override() {
                cfg = cfg.domain_name(name);
            }
            if let Some(pem) = self.tls.identity_pem()? {
                cfg = cfg.identity(Identity::from_pem(pem.cert, pem.key));
            }
            let verifier = Arc::new(self.tls.verifier()?);
            ep = ep.tls_config_with_verifier(cfg, verifier).map_err(other)?;
        }
        Ok(ep)
    }
}

// === impl GrpcSender ===

struct GrpcSender {
    endpoint: String,
    channel: Channel,
    metadata: HeaderMap,
    timeout: Duration,
    gzip: bool,
}

impl GrpcSender {
    fn new(cfg: &Config) -> Result<Self, BuildError> {
        let channel = cfg.endpoint()?.connect_lazy();
        let mut metadata = HeaderMap::new();
        for (name, value) in &cfg.headers {
            let key = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| BuildError::option(format!("headers::{name}"), HeaderError::InvalidName))?;
            let mut value = HeaderValue::try_from(value.expose())
                .map_err(|_| BuildError::option(format!("headers::{name}"), HeaderError::InvalidValue))?;
            value.set_sensitive(true);
            metadata.insert(key, value);
        }
        Ok(GrpcSender {
            endpoint: cfg.endpoint.to_string(),
            channel,
            metadata,
            timeout: cfg.timeout,
            gzip: cfg.compression == Compression::Gzip,
        })
    }

    fn error(&self, status: tonic::Status) -> GrpcError {
        GrpcError::from_status(&self.endpoint, &status)
    }
}

fn sent(rejected: i64, message: String) -> Sent {
    Sent {
        rejected: usize::try_from(rejected).unwrap_or(0),
        message,
    }
}

impl Sender for GrpcSender {
    type Error = GrpcError;
    const ENCODED: bool = true;

    fn send<'a>(&'a self, data: &'a Signal) -> BoxFuture<'a, Result<Sent, GrpcError>> {
        Box::pin(async move {
            let encoded = data.to_encoded();
            let body = call::frame(encoded.bytes(), self.gzip).map_err(|source| {
                GrpcError::Compress {
                    endpoint: self.endpoint.clone(),
                    source,
                }
            })?;
            let path = authwatch_net::otlp::export_path(encoded.kind());
            let reply = call::unary(&self.channel, path, &self.metadata, self.timeout, self.gzip, body)
                .await
                .map_err(|s| self.error(s))?;
            // An unreadable response to an accepted request is not worth a re-send.
            let partial = match encoded.kind() {
                SignalKind::Traces => ExportTraceServiceResponse::decode(reply)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| sent(p.rejected_spans, p.error_message)),
                SignalKind::Metrics => ExportMetricsServiceResponse::decode(reply)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| sent(p.rejected_data_points, p.error_message)),
                SignalKind::Logs => ExportLogsServiceResponse::decode(reply)
                    .ok()
                    .and_then(|r| r.partial_success)
                    .map(|p| sent(p.rejected_log_records, p.error_message)),
            };
            Ok(partial.unwrap_or_default())
        })
    }
}

// === impl GrpcError ===

/// A failed OTLP/gRPC export. Never holds request headers.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The answer: the status code, the server's message (or the transport error) and the
    /// server's `RetryInfo` delay.
    #[error("OTLP gRPC export to {endpoint} failed with {code:?}: {message}")]
    Status {
        endpoint: String,
        code: tonic::Code,
        message: String,
        retry_delay: Option<Duration>,
    },
    /// The request could not be compressed; it was not sent.
    #[error("OTLP gRPC export to {endpoint} failed with Internal: cannot compress the request: {source}")]
    Compress {
        endpoint: String,
        #[source]
        source: std::io::Error,
    },
}

impl GrpcError {
    fn from_status(endpoint: &str, status: &tonic::Status) -> Self {
        let mut message = status.message().to_owned();
        if let Some(src) = std::error::Error::source(status) {
            let chain = crate::helper::config::error_chain(src);
            if chain.contains(&message) {
                message = chain;
            } else if !message.contains(&chain) {
                message.push_str(": ");
                message.push_str(&chain);
            }
        }
        GrpcError::Status {
            endpoint: endpoint.to_owned(),
            code: status.code(),
            message,
            retry_delay: status.get_details_retry_info().and_then(|r| r.retry_delay),
        }
    }

    pub fn code(&self) -> tonic::Code {
        match self {
            GrpcError::Status { code, .. } => *code,
            GrpcError::Compress { .. } => tonic::Code::Internal,
        }
    }
}

impl ExportError for GrpcError {
    fn retry(&self) -> Retry {
        use tonic::Code::*;
        let GrpcError::Status {
            code, retry_delay, ..
        } = self
        else {
            return Retry::No;
        };
        match code {
            Cancelled | DeadlineExceeded | Aborted | OutOfRange | Unavailable | DataLoss => {
                retry_delay.map_or(Retry::Yes, Retry::After)
            }
            ResourceExhausted => retry_delay.map_or(Retry::No, Retry::After),
            _ => Retry::No,
        }
    }
}

#[cfg(test)]
mod tests;
