//! # `prometheus` exporter
//!
//! Serves the metrics of a pipeline for Prometheus to scrape, like the OpenTelemetry Collector's
//! `prometheus` exporter: `GET /metrics` answers with every series received in the last
//! `metric_expiration`, in the Prometheus text format (or OpenMetrics when enabled and asked for).
//!
//! ```yaml
//! exporters:
//!   prometheus:
//!     endpoint: 0.0.0.0:8889          # default 127.0.0.1:8889
//!     namespace: idp                  # prefix of every name (default none)
//!     const_labels: {env: prod}       # added to every series
//!     metric_expiration: 5m           # series not updated for this long are dropped
//!     resource_to_telemetry_conversion:
//!       enabled: false                # true: every resource attribute becomes a label too
//!     enable_open_metrics: false      # true: OpenMetrics for scrapers that accept it
//!     add_metric_suffixes: true       # unit, `_total` and `_ratio` suffixes
//!     send_timestamps: false          # true: each sample carries its point's time
//!     read_header_timeout: 10s        # the scrape server's limits, as every authwatch server's
//!     read_timeout: 30s
//!     idle_timeout: 60s
//!     max_connections: 1024
//!     tls:                            # optional: serve HTTPS
//!       cert_file: /etc/authwatch/server.crt
//!       key_file: /etc/authwatch/server.key
//!       client_ca_file: /etc/authwatch/ca.crt   # optional: require client certificates
//! service:
//!   pipelines:
//!     metrics: {receivers: [otlp], exporters: [prometheus]}
//! ```
//!
//! ## Names
//!
//! As the OpenTelemetry specification's Prometheus compatibility rules (and the Collector's
//! translator) write them: characters other than letters and digits become `_`; the unit is
//! appended in words (`s` -> `_seconds`, `ms` -> `_milliseconds`, `By` -> `_bytes`,
//! `By/s` -> `_bytes_per_second`; annotations such as `{request}` are dropped); monotonic sums
//! end in `_total`; gauges with unit `1` end in `_ratio`. Attribute keys become label names the
//! same way (`error.class` -> `error_class`; a leading digit gets `key_`). So
//! `authwatch.dependency.requests` is `authwatch_dependency_requests_total`,
//! `authwatch.probe.phase.duration` is `authwatch_probe_phase_duration_seconds_bucket{phase=...}`
//! and `authwatch.probe.success` is `authwatch_probe_success_ratio`.
//!
//! ## Types
//!
//! | OTLP | Prometheus |
//! | --- | --- |
//! | gauge | gauge |
//! | monotonic sum, cumulative or delta | counter (deltas are added up) |
//! | non-monotonic sum | gauge (deltas are added up) |
//! | histogram, cumulative or delta | histogram: `_bucket{le}`, `_sum`, `_count` |
//! | summary | summary: `{quantile}`, `_sum`, `_count` |
//! | exponential histogram | not converted: dropped and counted in `authwatch_exporter_prometheus_dropped_points_total{reason="exponential_histogram"}` |
//!
//! In OpenMetrics every counter, histogram and summary series also has a `_created` sample: the
//! point's start time (for deltas, the first point's), when the series was 0. A Prometheus that
//! ingests created timestamps (`--enable-feature=created-timestamp-zero-ingestion`) stores a 0
//! then, so `increase()` counts a series' first value instead of nothing.
//!
//! A point flagged "no recorded value" removes its series. A point older than the one held is
//! ignored. A name already used by a metric of another type keeps its first type; the other
//! points are dropped and counted (`reason="type_conflict"`).
//!
//! ## Resources
//!
//! `service.name` (prefixed by `service.namespace/` when set) becomes the `job` label and
//! `service.instance.id` the `instance` label of every series, as Prometheus would set them. The
//! other resource attributes are exposed once per resource as `target_info{job,instance,...} 1`
//! (join on `job`/`instance` in PromQL), or on every series with
//! `resource_to_telemetry_conversion.enabled: true`.
//!
//! ## Behaviour
//!
//! - The port is bound when the service builds the exporter ("cannot listen on ..." stops
//!   startup); the endpoint is claimed, so no other component may use it.
//! - The scrape server bounds its clients as every authwatch server does: a request head must
//!   arrive within `read_header_timeout` (else the connection is closed), a body within
//!   `read_timeout` of its head (else `408`), a keep-alive connection is closed after
//!   `idle_timeout` without a request, and at most `max_connections` are open at once (more wait
//!   until one closes); `0s` turns a timeout off. With `tls` it serves HTTPS (TLS 1.2/1.3), and
//!   with `tls.client_ca_file` only to clients with a certificate from those CAs.
//! - There is no queue: data is folded into the series as it arrives and never refused.
//! - On shutdown the server answers the scrapes in flight, then stops.

mod naming;
mod store;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::config::{duration, Positive};
use authwatch_core::telemetry::ExporterTelemetry;
use authwatch_core::{
    BuildError, Built, ComponentConfig, ConsumeError, Consumer, ExporterConfig, Resource, RunError,
    Running, Settings, Signal, SignalKind, Signals, Validator,
};
use authwatch_net::server::{
    validate_http_limits, Limits, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_READ_HEADER_TIMEOUT, DEFAULT_READ_TIMEOUT,
};
use authwatch_net::{ListenAddr, TlsServerConfig};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::BoxFuture;
use authwatch_core::telemetry::{Counter, Family};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use naming::{label_name, metric_name, Shape};
use store::{Options, Store};

/// The `prometheus` exporter's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the scrape endpoint listens.
    pub endpoint: ListenAddr,
    /// Prefix of every metric name (`namespace_name`); empty for none.
    pub namespace: String,
    /// Labels added to every series (a series' own label of the same name wins).
    pub const_labels: BTreeMap<String, String>,
    /// Whether samples carry their data point's timestamp.
    pub send_timestamps: bool,
    /// Series not updated for this long are no longer exposed.
    #[serde(with = "duration")]
    pub metric_expiration: Duration,
    pub resource_to_telemetry_conversion: ResourceToTelemetryConversion,
    /// Answer in OpenMetrics when the scraper's `Accept` asks for it.
    pub enable_open_metrics: bool,
    /// Append unit, `_total` and `_ratio` suffixes to names.
    pub add_metric_suffixes: bool,
    /// Time for a request head to arrive (from its first byte, or from connecting); `0s`: no limit.
    #[serde(with = "duration")]
    pub read_header_timeout: Duration,
    /// Time for a request body to arrive after its head (else `408`); `0s`: no limit.
    #[serde(with = "duration")]
    pub read_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request; `0s`: no limit.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait until one closes.
    pub max_connections: Positive,
    /// Serve HTTPS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsServerConfig>,
}

/// The default scrape port (the Collector's).
pub const DEFAULT_PORT: u16 = 8889;

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: ListenAddr::localhost(DEFAULT_PORT),
            namespace: String::new(),
            const_labels: BTreeMap::new(),
            send_timestamps: false,
            metric_expiration: Duration::from_secs(5 * 60),
            resource_to_telemetry_conversion: ResourceToTelemetryConversion::default(),
            enable_open_metrics: false,
            add_metric_suffixes: true,
            read_header_timeout: DEFAULT_READ_HEADER_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: Positive(DEFAULT_MAX_CONNECTIONS),
            tls: None,
        }
    }
}

/// `resource_to_telemetry_conversion`: copy every resource attribute onto every series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceToTelemetryConversion {
    pub enabled: bool,
}

// === impl ExporterConfig ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "prometheus";

    fn validate(&self, v: &mut Validator) {
        for k in self.const_labels.keys() {
            if !naming::is_label_name(k) {
                v.error(
                    &format!("const_labels::{k}"),
                    "not a Prometheus label name: use letters, digits and `_`, not starting with a digit or `__`",
                );
            }
        }
        if self.metric_expiration.is_zero() {
            v.error(
                "metric_expiration",
                "must be positive, e.g. `5m`: series older than this are dropped",
            );
        }
        if let Some(tls) = &self.tls {
            tls.validate(v, "tls");
        }
        validate_http_limits(
            v,
            "",
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
        );
    }

    fn resources(&self) -> Vec<Resource> {
        vec![Resource::Listen(self.endpoint.addr())]
    }
}

impl ExporterConfig for Config {
    fn signals(&self) -> Signals {
        Signals::NONE.with(SignalKind::Metrics)
    }

    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        let (_, built) = self.bind(settings).await?;
        Ok(built)
    }
}

impl Config {
    fn options(&self) -> Options {
        Options {
            namespace: self.namespace.clone(),
            const_labels: self
                .const_labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            resource_to_telemetry: self.resource_to_telemetry_conversion.enabled,
            suffixes: self.add_metric_suffixes,
            send_timestamps: self.send_timestamps,
            expiration: self.metric_expiration,
        }
    }

    /// Binds the endpoint; returns the address bound (for port 0) and the exporter.
    pub(crate) async fn bind(&self, settings: Settings) -> Result<(SocketAddr, Built), BuildError> {
        let tls = match &self.tls {
            Some(t) => Some(t.load(&[b"h2", b"http/1.1"])?),
            None => None,
        };
        let addr = self.endpoint.addr();
        let listener = authwatch_net::server::bind(addr).await?;
        let local = listener
            .local_addr()
            .map_err(|source| BuildError::Bind { addr, source })?;
        let limits = Limits::new(
            self.read_header_timeout,
            self.read_timeout,
            self.idle_timeout,
            self.max_connections.get(),
        );
        let id = settings.id.to_string();
        let dropped: Family<Vec<(String, String)>, Counter> = settings.telemetry.metric(
            "exporter_prometheus_dropped_points",
            "Metric points a prometheus exporter could not expose, by reason",
            Family::default,
        );
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(self.options())),
            open_metrics: self.enable_open_metrics,
        });
        let exporter = Exporter {
            id: id.clone(),
            shared: shared.clone(),
            telemetry: settings.telemetry.exporter(&settings.id),
            dropped,
            shutdown: settings.shutdown.clone(),
        };
        let app = router(shared);
        let shutdown = settings.shutdown.clone();
        info!(exporter = %id, endpoint = %local, tls = tls.is_some(), "Prometheus exporter listening.");
        let task: Running = Box::pin(async move {
            authwatch_net::serve_http(listener, tls, app, limits, shutdown).await;
            info!(exporter = %id, endpoint = %local, "Prometheus exporter stopped.");
            Ok::<(), RunError>(())
        });
        Ok((
            local,
            Built {
                consumer: Arc::new(exporter),
                task: Some(task),
            },
        ))
    }
}

// === impl Exporter ===

struct Shared {
    store: Mutex<Store>,
    open_metrics: bool,
}

impl Shared {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Exporter {
    id: String,
    shared: Arc<Shared>,
    telemetry: ExporterTelemetry,
    dropped: Family<Vec<(String, String)>, Counter>,
    shutdown: CancellationToken,
}

impl Consumer for Exporter {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let result = if self.shutdown.is_cancelled() {
            Err(ConsumeError::Closed)
        } else {
            let decoded = data.decoded_ref();
            if let Ok(Signal::Metrics(req)) = decoded.as_deref() {
                let now = Instant::now();
                let mut store = self.shared.store();
                for rm in &req.resource_metrics {
                    let metrics: Vec<_> =
                        rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
                    let out = store.accept(rm.resource.as_ref(), &metrics, now);
                    for (why, n) in out.dropped {
                        debug!(exporter = %self.id, reason = why.as_str(), points = n, "Prometheus exporter dropped points.");
                        self.dropped
                            .get_or_create(&vec![
                                ("exporter".to_owned(), self.id.clone()),
                                ("reason".to_owned(), why.as_str().to_owned()),
                            ])
                            .inc_by(n as u64);
                    }
                }
                store.expire(now);
            }
            self.telemetry.sent(data.kind(), data.item_count());
            Ok(())
        };
        Box::pin(async move { result })
    }
}

// === impl router ===

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPEN_METRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(shared)
}

async fn scrape(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let open = shared.open_metrics
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
    let body = {
        let mut store = shared.store();
        store.expire(Instant::now());
        store.encode(open)
    };
    let ct = if open { OPEN_METRICS } else { TEXT };
    (StatusCode::OK, [(header::CONTENT_TYPE, ct)], body).into_response()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod translation_tests;
