//! # `otlphttp` exporter
//!
//! `otlphttp` exporter (alias `otlp_http`): sends traces, metrics and logs to any OTLP/HTTP
//! backend, in protobuf or JSON.
//!
//! ```yaml
//! exporters:
//!   otlphttp/honeycomb:
//!     endpoint: https://api.honeycomb.io     # required; signals go to <endpoint>/v1/{traces,metrics,logs}
//!     # traces_endpoint: https://api.honeycomb.io/v1/traces  # optional: a full URL overriding <endpoint>/v1/traces (same for metrics_, logs_)
//!     encoding: proto                        # proto | json
//!     compression: gzip                      # gzip | none
//!     headers: { x-honeycomb-team: "${env:HONEYCOMB_API_KEY}" }   # values are secrets
//!     timeout: 30s                           # per attempt
//!     tls:                                   # for https:// URLs; all optional
//!       ca_file: /etc/ssl/ca.pem             # trust only this CA (default: the web's root CAs)
//!       cert_file: /etc/ssl/client.pem       # client certificate (mutual TLS), with key_file
//!       key_file: /etc/ssl/client.key
//!       insecure_skip_verify: false          # do not verify the server certificate (tests only)
//!       server_name_override: ""             # the name the certificate must carry, instead of the host
//!     sending_queue:
//!       enabled: true
//!       num_consumers: 10                    # requests (or batches) sent at once
//!       queue_size: 1000                     # requests waiting
//!       block_on_overflow: false             # when full: false = refuse (retryable), true = wait
//!       storage: /var/lib/authwatch/queue    # optional: a persistent queue (docs/operations.md, "Persistent sending queue")
//!       batch:                               # optional: batch after the queue; `batch: {}` = these defaults
//!         flush_timeout: 200ms               # send a batch this long after its first request...
//!         min_size: 8192                     # ...or once it holds this much
//!         max_size: 0                        # the most one batch holds; 0 = no maximum (never split)
//!         sizer: items                       # items | bytes | requests
//!     retry_on_failure: { enabled: true, initial_interval: 5s, max_interval: 30s, max_elapsed_time: 300s, multiplier: 1.5, randomization_factor: 0.5 }
//! ```
//!
//! Retries (OTLP/HTTP spec): 429, 502, 503 and 504 honouring `Retry-After` (seconds or an HTTP
//! date), and connection failures and timeouts; every other error status is permanent. A
//! partial success in a 200 response is decoded (protobuf or JSON, as `encoding`), logged (rate
//! limited) and its rejected items counted as `send_failed`. Header values never appear in
//! errors or logs.
//!
//! `tls` is authwatch's one client TLS block (as the `otlp` exporter's): the URL's scheme says
//! whether TLS is used, so `tls.insecure` has no effect here (`validate` warns). The files are
//! read when the exporter is built; a missing or unusable file fails startup naming it.
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

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use authwatch_core::config::Secret;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceResponse;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceResponse;
use authwatch_core::otlp::collector::trace::v1::ExportTraceServiceResponse;
use authwatch_core::{
    BuildError, Built, ComponentConfig, ExporterConfig, Settings, Signal, SignalKind, Signals,
    Validator,
};
use futures::future::BoxFuture;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use prost::Message;
use serde::{Deserialize, Serialize};

use authwatch_net::HttpUrl;
use authwatch_net::{retry_after, TlsClientConfig};

use crate::helper::config::{error_chain, header_map, validate_headers};
use crate::helper::{
    try_build_queued, Compression, ExportError, QueueConfig, Retry, RetryConfig, Sent, Sender,
};

/// `otlphttp` exporter config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL; each signal goes to `<endpoint>/v1/<signal>` unless its own endpoint is set.
    pub endpoint: HttpUrl,
    pub traces_endpoint: Option<HttpUrl>,
    pub metrics_endpoint: Option<HttpUrl>,
    pub logs_endpoint: Option<HttpUrl>,
    pub encoding: Encoding,
    pub compression: Compression,
    /// Sent with every request. Values are secrets.
    pub headers: BTreeMap<String, Secret>,
    /// Per attempt.
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    pub tls: TlsClientConfig,
    pub sending_queue: QueueConfig,
    pub retry_on_failure: RetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: HttpUrl::default(),
            traces_endpoint: None,
            metrics_endpoint: None,
            logs_endpoint: None,
            encoding: Encoding::Proto,
            compression: Compression::Gzip,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            tls: TlsClientConfig::default(),
            sending_queue: QueueConfig::default(),
            retry_on_failure: RetryConfig::default(),
        }
    }
}

/// The request body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// `application/x-protobuf`.
    #[default]
    Proto,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Proto => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `<base>/v1/<signal>`, keeping any base path (`http://h:4318/otlp` → `/otlp/v1/traces`).
fn join_signal(base: &HttpUrl, kind: SignalKind) -> String {
    format!("{}/v1/{}", base.as_str().trim_end_matches('/'), kind.as_str())
}

// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "otlphttp";
    const ALIASES: &'static [&'static str] = &["otlp_http"];

    fn validate(&self, v: &mut Validator) {
        let all_signal_urls = self.traces_endpoint.is_some()
            && self.metrics_endpoint.is_some()
            && self.logs_endpoint.is_some();
        if self.endpoint.is_empty() && !all_signal_urls {
            v.error("endpoint", "endpoint must be set, e.g. `https://collector:4318`");
        }
        for (field, url) in [
            ("traces_endpoint", &self.traces_endpoint),
            ("metrics_endpoint", &self.metrics_endpoint),
            ("logs_endpoint", &self.logs_endpoint),
        ] {
            if url.as_ref().is_some_and(HttpUrl::is_empty) {
                v.error(field, "must not be empty; leave it out to use `endpoint`");
            }
        }
        if self.timeout.is_zero() {
            v.error("timeout", "must be greater than 0, e.g. `30s`");
        }
        validate_headers(&self.headers, v, false);
        self.tls.validate_for_urls(v, "tls");
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
        let sender = HttpSender::new(self)?;
        tracing::info!(
            exporter = %settings.id, traces = %sender.urls[0], metrics = %sender.urls[1],
            logs = %sender.urls[2], "OTLP HTTP exporter started."
        );
        try_build_queued(
            settings,
            sender,
            &self.sending_queue,
            &self.retry_on_failure,
        )
    }
}

impl Config {
    /// The URL each signal is sent to (traces, metrics, logs).
    pub fn signal_urls(&self) -> [String; 3] {
        let pick = |own: &Option<HttpUrl>, kind| match own {
            Some(u) if !u.is_empty() => u.as_str().to_owned(),
            _ => join_signal(&self.endpoint, kind),
        };
        [
            pick(&self.traces_endpoint, SignalKind::Traces),
            pick(&self.metrics_endpoint, SignalKind::Metrics),
            pick(&self.logs_endpoint, SignalKind::Logs),
        ]
    }

    fn client(&self) -> Result<reqwest::Client, BuildError> {
        Ok(authwatch_net::http_client(self.timeout, &self.tls)?)
    }
}

// === impl HttpSender ===

struct HttpSender {
    client: reqwest::Client,
    urls: [String; 3],
    encoding: Encoding,
    gzip: bool,
    headers: HeaderMap,
}

impl HttpSender {
    fn new(cfg: &Config) -> Result<Self, BuildError> {
        let urls = cfg.signal_urls();
        for u in &urls {
            HttpUrl::check(u).map_err(|e| BuildError::option("endpoint", e))?;
        }
        let mut headers = header_map(&cfg.headers)?;
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(cfg.encoding.content_type()),
        );
        if cfg.compression == Compression::Gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(HttpSender {
            client: cfg.client()?,
            urls,
            encoding: cfg.encoding,
            gzip: cfg.compression == Compression::Gzip,
            headers,
        })
    }

    fn body(&self, data: &Signal) -> Result<Vec<u8>, HttpError> {
        let encoded;
        let raw: &[u8] = match self.encoding {
            Encoding::Proto => {
                encoded = data.to_encoded();
                encoded.bytes()
            }
            Encoding::Json => {
                let decoded = data.decoded_ref().map_err(EncodeError::from)?;
                let json = match decoded.as_ref() {
                    Signal::Traces(r) => serde_json::to_vec(r),
                    Signal::Metrics(r) => serde_json::to_vec(r),
                    Signal::Logs(r) => serde_json::to_vec(r),
                    Signal::Encoded(_) => unreachable!("decoded_ref decodes"),
                };
                return self.compress(json.map_err(EncodeError::from)?);
            }
        };
        if !self.gzip {
            return Ok(raw.to_vec());
        }
        self.compress_slice(raw)
    }

    fn compress(&self, raw: Vec<u8>) -> Result<Vec<u8>, HttpError> {
        if self.gzip {
            self.compress_slice(&raw)
        } else {
            Ok(raw)
        }
    }

    /// gzip at level 1: about the ratio of the default level for a fraction of the CPU.
    fn compress_slice(&self, raw: &[u8]) -> Result<Vec<u8>, HttpError> {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 4 + 64),
            flate2::Compression::fast(),
        );
        enc.write_all(raw)
            .and_then(|_| enc.finish())
            .map_err(|e| EncodeError::Gzip(e).into())
    }

    /// The rejected items of a partial success in a 2xx body, if any.
    fn partial_success(&self, kind: SignalKind, body: &[u8]) -> Option<Sent> {
        if body.is_empty() {
            return None;
        }
        let (rejected, message) = match (self.encoding, kind) {
            (Encoding::Proto, SignalKind::Traces) => {
                let p = ExportTraceServiceResponse::decode(body).ok()?.partial_success?;
                (p.rejected_spans, p.error_message)
            }
            (Encoding::Proto, SignalKind::Metrics) => {
                let p = ExportMetricsServiceResponse::decode(body).ok()?.partial_success?;
                (p.rejected_data_points, p.error_message)
            }
            (Encoding::Proto, SignalKind::Logs) => {
                let p = ExportLogsServiceResponse::decode(body).ok()?.partial_success?;
                (p.rejected_log_records, p.error_message)
            }
            (Encoding::Json, SignalKind::Traces) => {
                let p = serde_json::from_slice::<ExportTraceServiceResponse>(body)
                    .ok()?
                    .partial_success?;
                (p.rejected_spans, p.error_message)
            }
            (Encoding::Json, SignalKind::Metrics) => {
                let p = serde_json::from_slice::<ExportMetricsServiceResponse>(body)
                    .ok()?
                    .partial_success?;
                (p.rejected_data_points, p.error_message)
            }
            (Encoding::Json, SignalKind::Logs) => {
                let p = serde_json::from_slice::<ExportLogsServiceResponse>(body)
                    .ok()?
                    .partial_success?;
                (p.rejected_log_records, p.error_message)
            }
        };
        Some(Sent {
            rejected: usize::try_from(rejected).unwrap_or(0),
            message,
        })
    }
}

/// At most this much of an error body goes into an error message.
const MAX_ERROR_BODY: usize = 512;

/// The message of an OTLP/HTTP error body: a `google.rpc.Status` (protobuf or JSON), else text.
fn error_message(body: &[u8], content_type: Option<&str>) -> String {
    let is_proto = content_type.is_some_and(|c| c.starts_with("application/x-protobuf"));
    if is_proto {
        if let Ok(s) = tonic_types::Status::decode(body) {
            return s.message;
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return m.to_owned();
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ERROR_BODY)]);
    text.trim().to_owned()
}

impl Sender for HttpSender {
    type Error = HttpError;
    const ENCODED: bool = true;

    fn send<'a>(&'a self, data: &'a Signal) -> BoxFuture<'a, Result<Sent, HttpError>> {
        Box::pin(async move {
            let url = &self.urls[data.kind().index()];
            let body = self.body(data)?;
            let transport = |e: reqwest::Error| HttpError::Transport {
                url: url.clone(),
                source: e.without_url(),
            };
            let resp = self
                .client
                .post(url)
                .headers(self.headers.clone())
                .body(body)
                .send()
                .await
                .map_err(transport)?;
            let status = resp.status();
            let headers = resp.headers().clone();
            if status.is_success() {
                // A body we cannot read or decode still means the data was accepted.
                let body = resp.bytes().await.unwrap_or_default();
                return Ok(self.partial_success(data.kind(), &body).unwrap_or_default());
            }
            let body = resp.bytes().await.unwrap_or_default();
            let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
            Err(HttpError::Status {
                url: url.clone(),
                status,
                retry_after: retry_after(&headers),
                message: error_message(&body, content_type),
            })
        })
    }
}

// === impl HttpError ===

/// A failed OTLP/HTTP export. Never holds request headers.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No response: connection refused or reset, timeout, TLS failure.
    #[error("OTLP HTTP export to {url} failed: {}", error_chain(.source))]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The destination answered with an error status.
    #[error("OTLP HTTP export to {url} failed with HTTP {status}: {message}")]
    Status {
        url: String,
        status: StatusCode,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("cannot encode the OTLP request: {0}")]
    Encode(#[from] EncodeError),
}

/// Why an OTLP/HTTP request body could not be written.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// `encoding: json` of data that arrived as bytes which do not decode.
    #[error(transparent)]
    Decode(#[from] authwatch_core::DecodeError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("gzip: {0}")]
    Gzip(#[source] std::io::Error),
}

impl ExportError for HttpError {
    fn retry(&self) -> Retry {
        match self {
            HttpError::Transport { .. } => Retry::Yes,
            HttpError::Status {
                status,
                retry_after,
                ..
            } => match status.as_u16() {
                429 | 502 | 503 | 504 => retry_after.map_or(Retry::Yes, Retry::After),
                _ => Retry::No,
            },
            HttpError::Encode(_) => Retry::No,
        }
    }
}

#[cfg(test)]
mod tests;
