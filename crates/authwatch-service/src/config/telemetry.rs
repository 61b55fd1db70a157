//! `service.telemetry`: authwatch's own logs and metrics, configured as the OpenTelemetry
//! Collector configures its own telemetry.
//!
//! ```yaml
//! service:
//!   telemetry:
//!     resource: { deployment.environment: prod }   # added to service.name/version/instance.id
//!     metrics:
//!       level: basic
//!       readers:
//!         - pull: { exporter: { prometheus: { host: 127.0.0.1, port: 8888 } } }
//!         - periodic:
//!             interval: 60s
//!             timeout: 30s
//!             exporter: { otlp: { protocol: grpc, endpoint: http://collector:4317 } }
//!     logs:
//!       level: info
//!       processors:
//!         - batch: { exporter: { otlp: { protocol: http/protobuf, endpoint: http://collector:4318 } } }
//! ```
//!
//! `metrics.address` (one pull reader on that address) is still accepted, but not together with
//! `metrics.readers`. With neither, there is one pull reader on `127.0.0.1:8888`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderName, Uri};
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use authwatch_core::config::{duration, Secret};
use authwatch_net::ListenAddr;

/// The pull reader's address when neither `address` nor `readers` is set.
pub const DEFAULT_METRICS_ADDRESS: ListenAddr = ListenAddr::localhost(8888);

/// `service.telemetry`: authwatch's own logs and metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Resource attributes of authwatch's own metrics and logs, added to `service.name`
    /// (`authwatch`), `service.version` and `service.instance.id`; a value overrides a default
    /// and `null` removes it.
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub resource: IndexMap<String, Option<String>>,
    pub logs: LogsConfig,
    pub metrics: MetricsConfig,
}

// === logs ===

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter such as `info,authwatch_exporter=debug`.
    pub level: String,
    pub encoding: LogEncoding,
    /// Where authwatch's logs go besides stderr: OTLP exporters behind a batch processor.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<LogProcessorConfig>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            level: "info".into(),
            encoding: LogEncoding::Console,
            processors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogEncoding {
    #[default]
    Console,
    Json,
}

/// One entry of `logs.processors`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum LogProcessorConfig {
    /// Queues log records and exports them in batches, off the logging thread.
    Batch(BatchLogProcessorConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BatchLogProcessorConfig {
    /// How long records wait before they are exported (default `1s`).
    #[serde(with = "duration", default = "one_second")]
    pub schedule_delay: Duration,
    /// How long one export may take before it is abandoned (default `30s`).
    #[serde(with = "positive", default = "thirty_seconds")]
    pub export_timeout: Duration,
    /// Records waiting for export; more are dropped (default 2048).
    #[serde(default = "default_log_queue")]
    pub max_queue_size: usize,
    pub exporter: PushExporterConfig,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}
fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}
fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}
fn default_log_queue() -> usize {
    2048
}

// === metrics ===

/// `service.telemetry.metrics`. `print-config` shows the effective form: the `address` (the
/// default one included) when there are no `readers`, else the readers.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(try_from = "RawMetricsConfig")]
pub struct MetricsConfig {
    /// `none` turns every reader off; `basic` (default), `normal` and `detailed` keep them.
    pub level: MetricsLevel,
    /// The older form of one `pull` reader: where `/metrics` listens.
    pub address: Option<ListenAddr>,
    /// Pull (Prometheus) and periodic (OTLP) readers. When set, only these run.
    pub readers: Vec<MetricReaderConfig>,
}

impl Serialize for MetricsConfig {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Effective<'a> {
            level: MetricsLevel,
            #[serde(skip_serializing_if = "Option::is_none")]
            address: Option<ListenAddr>,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            readers: &'a [MetricReaderConfig],
        }
        let address = if self.readers.is_empty() {
            Some(self.address.unwrap_or(DEFAULT_METRICS_ADDRESS))
        } else {
            None
        };
        Effective {
            level: self.level,
            address,
            readers: &self.readers,
        }
        .serialize(s)
    }
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMetricsConfig {
    level: MetricsLevel,
    address: Option<ListenAddr>,
    readers: Option<Vec<MetricReaderConfig>>,
}

impl Default for RawMetricsConfig {
    fn default() -> Self {
        RawMetricsConfig {
            level: MetricsLevel::Basic,
            address: None,
            readers: None,
        }
    }
}

/// `metrics` sets both of its two ways to say where `/metrics` listens.
#[derive(Debug, thiserror::Error)]
#[error(
    "`address` and `readers` cannot both be set: `address` is the older way to write one \
     `pull` reader; list it under `readers` instead (`- pull: {{ exporter: {{ prometheus: \
     {{ host: ..., port: ... }} }} }}`), or write `address: null` where an earlier config file \
     sets it"
)]
pub struct AddressAndReaders;

impl TryFrom<RawMetricsConfig> for MetricsConfig {
    type Error = AddressAndReaders;
    fn try_from(r: RawMetricsConfig) -> Result<Self, AddressAndReaders> {
        if r.address.is_some() && r.readers.is_some() {
            return Err(AddressAndReaders);
        }
        Ok(MetricsConfig {
            level: r.level,
            address: r.address,
            readers: r.readers.unwrap_or_default(),
        })
    }
}

impl MetricsConfig {
    /// Where `/metrics` is served, with the config path that says so: every pull reader, the
    /// `address`, or the default.
    pub fn pull_readers(&self) -> Vec<(String, SocketAddr)> {
        const PATH: &str = "service::telemetry::metrics";
        if self.level == MetricsLevel::None {
            return Vec::new();
        }
        if self.readers.is_empty() {
            let addr = self.address.unwrap_or(DEFAULT_METRICS_ADDRESS).addr();
            return vec![(format!("{PATH}::address"), addr)];
        }
        self.readers
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                MetricReaderConfig::Pull(p) => {
                    Some((format!("{PATH}::readers::{i}::pull"), p.addr()))
                }
                MetricReaderConfig::Periodic(_) => None,
            })
            .collect()
    }

    /// The periodic readers that run (none at level `none`).
    pub fn periodic_readers(&self) -> impl Iterator<Item = &PeriodicReaderConfig> {
        let on = self.level != MetricsLevel::None;
        self.readers.iter().filter_map(move |r| match r {
            MetricReaderConfig::Periodic(p) if on => Some(p),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum MetricsLevel {
    None,
    #[default]
    Basic,
    Normal,
    Detailed,
}

/// One entry of `metrics.readers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MetricReaderConfig {
    /// Served on demand: Prometheus/OpenMetrics text on `/metrics`.
    Pull(PullReaderConfig),
    /// Collected every `interval` and pushed to an OTLP backend.
    Periodic(PeriodicReaderConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PullReaderConfig {
    pub exporter: PullExporterConfig,
}

impl PullReaderConfig {
    pub fn addr(&self) -> SocketAddr {
        match &self.exporter {
            PullExporterConfig::Prometheus(p) => SocketAddr::new(p.host.0, p.port),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PullExporterConfig {
    Prometheus(PrometheusPullConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusPullConfig {
    /// An IP address or `localhost` (default `127.0.0.1`).
    pub host: ListenHost,
    pub port: u16,
}

impl Default for PrometheusPullConfig {
    fn default() -> Self {
        PrometheusPullConfig {
            host: ListenHost(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: DEFAULT_METRICS_ADDRESS.addr().port(),
        }
    }
}

/// A host to listen on: an IP literal or `localhost` (no DNS at config time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenHost(pub IpAddr);

impl Serialize for ListenHost {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ListenHost {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim().trim_start_matches('[').trim_end_matches(']');
        if t == "localhost" {
            return Ok(ListenHost(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        }
        t.parse().map(ListenHost).map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid host `{s}`: write an IP address or `localhost`"
            ))
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeriodicReaderConfig {
    /// Time between two exports (default `60s`).
    #[serde(with = "positive", default = "sixty_seconds")]
    pub interval: Duration,
    /// How long one export may take before it is abandoned (default `30s`).
    #[serde(with = "positive", default = "thirty_seconds")]
    pub timeout: Duration,
    pub exporter: PushExporterConfig,
}

// === push exporters ===

/// Where a periodic reader or a log processor sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PushExporterConfig {
    Otlp(OtlpExporterConfig),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OtlpExporterConfig {
    /// `http/protobuf` (default, as the OTLP exporter specification) or `grpc`.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `http://` or `https://` URL. gRPC: `http://collector:4317`. HTTP: the base URL
    /// (`http://collector:4318`, to which `/v1/metrics` or `/v1/logs` is added) or a full URL
    /// with its own path, used as written.
    pub endpoint: OtlpEndpoint,
    /// Request headers (gRPC metadata), such as an API key; values are secrets.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub headers: IndexMap<HeaderKey, Secret>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// An OTLP endpoint URL: `http` or `https`, with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint(Uri);

impl OtlpEndpoint {
    pub fn uri(&self) -> &Uri {
        &self.0
    }
    pub fn is_https(&self) -> bool {
        self.0.scheme_str() == Some("https")
    }
    /// The URL for an HTTP signal: as written if it has a path, else with `default_path`.
    pub fn http_url(&self, default_path: &str) -> String {
        let s = self.0.to_string();
        match self.0.path() {
            "" | "/" => format!("{}{default_path}", s.trim_end_matches('/')),
            _ => s,
        }
    }
}

/// Why a telemetry `endpoint` is not an OTLP endpoint URL.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("invalid endpoint `{text}`: {source}")]
    Invalid {
        text: String,
        #[source]
        source: axum::http::uri::InvalidUri,
    },
    #[error("invalid endpoint `{0}`: write a URL starting with http:// or https://, e.g. http://collector:4317")]
    Scheme(String),
    /// The URL carries user information; the text is left out, as it may hold a secret.
    #[error("invalid endpoint: credentials in the URL are not supported; send them in `headers`")]
    Credentials,
    #[error("invalid endpoint `{0}`: the URL has no host")]
    NoHost(String),
}

impl FromStr for OtlpEndpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, EndpointError> {
        let uri: Uri = s.trim().parse().map_err(|source| EndpointError::Invalid {
            text: s.to_owned(),
            source,
        })?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(EndpointError::Scheme(s.to_owned())),
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(EndpointError::Credentials);
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(EndpointError::NoHost(s.to_owned()));
        }
        Ok(OtlpEndpoint(uri))
    }
}

impl fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for OtlpEndpoint {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OtlpEndpoint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A request header (gRPC metadata key) name: lowercase, valid in HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeaderKey(HeaderName);

impl HeaderKey {
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Serialize for HeaderKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for HeaderKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        HeaderName::from_bytes(s.to_ascii_lowercase().as_bytes())
            .map(HeaderKey)
            .map_err(|_| serde::de::Error::custom(format!("invalid header name `{s}`")))
    }
}

/// A duration that must be more than zero.
mod positive {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        duration::serialize(d, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = duration::deserialize(d)?;
        if v.is_zero() {
            return Err(serde::de::Error::custom("must be more than zero"));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests;
