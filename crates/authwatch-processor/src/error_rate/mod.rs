//! # `error_rate` connector
//!
//! Turns the client spans of calls to identity providers and other dependencies into error
//! rates, duration histograms and error groups. It is an exporter in a traces pipeline and a
//! receiver in a metrics pipeline (counters, histograms, sliding-window ratios) and, optionally,
//! in a logs pipeline (new and regressed error groups). Modelled on the Collector's `spanmetrics`
//! connector, with classification, windows and grouping that `spanmetrics` does not have.
//!
//! ```yaml
//! connectors:
//!   error_rate:
//!     dependencies:
//!       - name: auth0
//!         server_address: ["*.auth0.com", "login.example.com"]
//!         url_prefix: ["https://login.example.com/oauth/"]
//!     windows: [1m, 5m, 30m, 1h, 6h]
//!     metrics_flush_interval: 15s
//! service:
//!   pipelines:
//!     traces:          { receivers: [otlp, synthetic], exporters: [error_rate] }
//!     metrics/derived: { receivers: [error_rate], exporters: [alerts, otlp/upstream] }
//!     logs/groups:     { receivers: [error_rate], exporters: [otlp/upstream] }
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `dependencies` | one: `auth0`, `server_address: ["*.auth0.com"]` | Each `name` plus matchers; a span belongs to the first dependency with a matching `server_address` glob (`*` matches any run, case-insensitive; the host of `url.full` is used when `server.address` is missing), `url_prefix` (prefix of `url.full`), `url_path` glob (on `url.path`, else the path of `url.full`; `/realms/*/protocol/openid-connect/*` for Keycloak), `peer_service` or `rpc_service` (exact). |
//! | `span_kinds` | `[client]` | Span kinds looked at. Probe spans (with `synthetic.check`) are looked at when they are root spans, whatever their kind, so a probe run counts once. |
//! | `error_classes` | `[server_error, rate_limited, timeout, network, client_error]` | Classes that count as errors in `authwatch.dependency.errors` and the ratio. `auth_rejected` is left out by default: a user's wrong password is not a failure of the provider. |
//! | `auth_rejected_errors` | `[invalid_grant, invalid_user_password, mfa_required, password_leaked, too_many_attempts, access_denied, login_required, consent_required, interaction_required]` | OAuth `error` codes that make a 4xx `auth_rejected`. |
//! | `windows` | `[1m, 5m, 30m, 1h, 6h]` | Sliding windows of `authwatch.dependency.error_ratio`. |
//! | `metrics_flush_interval` | `15s` | How often metrics are emitted (and once more at shutdown). |
//! | `live_interval` | `200ms` | The shortest time between two live updates (at most `1s`); see [Live updates](#live-updates). |
//! | `aggregation_temporality` | `cumulative` | `cumulative` or `delta` for the counters and the histogram. |
//! | `aggregation_cardinality_limit` | `2000` | Most series (dependency × endpoint × class × service × source); calls of new series beyond it go to an overflow series per dependency, class and source marked `otel.metric.overflow: true` (without `endpoint` and `service.name`). It also caps the endpoints and the services remembered, so memory stays bounded however many distinct URLs the spans carry; error groups of endpoints past the cap are named `{other}`. `0`: no limit. |
//! | `histogram.buckets` | the HTTP semconv advisory buckets, 5ms … 10s | Bucket bounds in seconds, strictly increasing. |
//! | `error_groups.enabled` | `true` | Group errors and emit new and regressed groups as log records. |
//! | `error_groups.resolve_after` | `1h` | A group quiet this long is resolved; seeing it again is a regression. |
//! | `error_groups.max_groups` | `1000` | Most groups remembered; the one seen least recently is forgotten first. At most 4× as many distinct error keys are remembered; keys past that group as `{other}`. |
//! | `dedupe_spans` | `65536` | Spans counted recently that are remembered by `(trace_id, span_id)`, so that a span sent again (a client retrying a refused request) is not counted twice. 24 bytes each for a power of two (the default: 1.5 MB; at most 40 bytes each otherwise), in zeroed memory that becomes resident as spans arrive; the oldest is forgotten first. At most `16777216`; `0`: remember none. |
//!
//! ## Classification
//!
//! | class | when |
//! | --- | --- |
//! | `ok` | 1xx–3xx (span status not Error); gRPC OK or CANCELLED; no status code, no `error.type`, status not Error |
//! | `auth_rejected` | 4xx (gRPC UNAUTHENTICATED, PERMISSION_DENIED) whose OAuth error (`oauth.error`, `auth0.error` attribute or span-event attribute) is in `auth_rejected_errors` |
//! | `rate_limited` | 429 otherwise; gRPC RESOURCE_EXHAUSTED |
//! | `timeout` | 408; no response and `error.type` / `exception.type` naming a timeout or deadline, or `synthetic.outcome: timeout`; gRPC DEADLINE_EXCEEDED |
//! | `client_error` | any other 4xx; other gRPC codes |
//! | `server_error` | 5xx, or a status code outside 100–599; gRPC UNKNOWN, INTERNAL, UNAVAILABLE, DATA_LOSS |
//! | `network` | no response and `error.type` set or span status Error (DNS, connect, TLS, reset) |
//!
//! Spans with `synthetic.check` get `source: probe`, all others `source: traffic`.
//!
//! ## Metrics
//!
//! | metric | type | attributes |
//! | --- | --- | --- |
//! | `authwatch.dependency.requests` | Sum (monotonic) | `dependency`, `endpoint`, `error.class`, `service.name`, `source` |
//! | `authwatch.dependency.errors` | Sum (monotonic) | same; only the `error_classes` |
//! | `http.client.request.duration` | Histogram, `s` | same as requests |
//! | `authwatch.dependency.error_ratio` | Gauge | `dependency`, `source`, `window`; left out while the window has no calls |
//! | `authwatch.dependency.window.requests` | Gauge | `dependency`, `source`, `window`: calls in the window |
//!
//! **Error counters start at 0.** With `cumulative` temporality, when a call is the first of its
//! dependency, endpoint, service and source, the requests and errors series of every class in
//! `error_classes` start at 0 at that moment, so a scraper sees an error counter go from 0 to
//! its first burst instead of being born with it (Prometheus' `increase()` and the fleet rules
//! of `authwatch rules` count nothing for a series' first sample). They are created only when
//! all of them fit under `aggregation_cardinality_limit`, never for overflow series, and carry
//! no histogram until they have calls. Where the first call of an endpoint is already an error,
//! the `prometheus` exporter's OpenMetrics `_created` timestamps let a Prometheus that ingests
//! them count it (see docs/alerting.md, "Prometheus rules for a fleet").
//!
//! Endpoints are templated: `url.template` when the span has it, else the path of `url.path` /
//! `url.full` with numbers, UUIDs, long hex or token-like segments and Auth0 user ids
//! (`auth0|abc`, `google-oauth2%7C123`) replaced by `{id}` (at most 8 segments), else
//! `rpc.service/rpc.method`. Windows are rings of at most 300 buckets (1s buckets up to 5m,
//! then window/300), so memory does not grow with traffic. `service.name` comes from the span's
//! resource. In Prometheus the names become `authwatch_dependency_requests_total`,
//! `authwatch_dependency_errors_total`, `http_client_request_duration_seconds_*`,
//! `authwatch_dependency_error_ratio`.
//!
//! ## Live updates
//!
//! The `alerts` connector and the status page do not wait for `metrics_flush_interval`. When
//! calls were counted, the connector sends a live update at once, then at most one per
//! `live_interval` while calls keep coming: the counters and duration histograms of the series
//! that changed (cumulative, whatever `aggregation_temporality` says) and the windows of their
//! dependencies, and it refreshes the status board. Live updates travel the metrics pipelines on
//! the live lane (see `authwatch_core::consume`): processors pass them on at once (`batch` does
//! not hold them) and only the `alerts` connector reads them; exporters never see them, so
//! backends get the metrics every `metrics_flush_interval` and no more often. With nothing
//! counted, nothing is sent. A span therefore reaches an alert rule within `live_interval` (plus
//! the `timeout` of a `batch` processor in front of the connector), and an alert with no `for`
//! fires within a second.
//!
//! ## Error groups
//!
//! Every call that is not `ok` belongs to a group with the fingerprint (dependency, endpoint,
//! class, key), key = OAuth error code, else `exception.type`, else `error.type`, else the status
//! code. A group keeps first seen, last seen, count, affected services and its share of the
//! endpoint's calls since it was first seen. A log record (event name
//! `authwatch.error_group.new` or `authwatch.error_group.regressed`, severity WARN) is emitted
//! when a group appears or comes back after `resolve_after`, with attributes `dependency`,
//! `endpoint`, `error.class`, `error_group.fingerprint`, `.state`, `.key`, `.first_seen`,
//! `.last_seen` (RFC 3339), `.count`, `.services` (array), `.share`.
//!
//! ## Every call counted once
//!
//! A span is counted once, however often it arrives while it is remembered (`dedupe_spans`):
//! the connector keeps a 64-bit keyed fingerprint of the `(trace_id, span_id)` of the last
//! `dedupe_spans` spans it counted and skips a span it finds there. Clients re-send a request
//! their receiver refused (`UNAVAILABLE`, `429`), and a receiver refuses a request when any
//! consumer of its pipelines did, even when this connector had already counted it; the counts,
//! ratios and alerts would otherwise inflate exactly when a backend is down. Only the spans that
//! are counted (those of a configured dependency) are remembered; spans without ids are always
//! counted. Inside a pipeline, the `batch` processor never re-sends a batch to a consumer that
//! took it (see "Pipelines with several consumers" in docs/configuration.md).
//!
//! ## Cost
//!
//! The connector takes spans as protobuf bytes and reads only what it needs (the attributes
//! above, kind, parent, times, status, `service.name`), so a pipeline that also forwards the
//! spans never decodes them. Decoded spans are read the same way.

pub(crate) mod classify;
mod dedupe;
mod encoded;
#[cfg(test)]
mod classify_tests;
#[cfg(test)]
mod encoded_tests;
#[cfg(test)]
mod live_tests;
pub(crate) mod state;
#[cfg(test)]
mod state_tests;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::board::{self, StatusBoard};
use authwatch_core::config::{duration, Positive};
use authwatch_core::{
    BuildError, Built, ComponentConfig, ConnectorConfig, ConnectorContext, ConsumeError, Consumer,
    PermanentError, Router, RunError, Signal, SignalKind, Validator,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use classify::{ErrorClass, Source, SpanKindName};
use state::State;
use authwatch_core::time::{Clock, Window};

/// The `error_rate` connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub dependencies: Vec<Dependency>,
    pub span_kinds: Vec<SpanKindName>,
    pub error_classes: Vec<ErrorClass>,
    pub auth_rejected_errors: Vec<String>,
    pub windows: Vec<Window>,
    #[serde(with = "duration")]
    pub metrics_flush_interval: Duration,
    /// The shortest time between two live updates to the `alerts` connector and the status board.
    #[serde(with = "duration")]
    pub live_interval: Duration,
    pub aggregation_temporality: Temporality,
    pub aggregation_cardinality_limit: usize,
    pub histogram: HistogramConfig,
    pub error_groups: ErrorGroupsConfig,
    /// Spans counted recently that are remembered, so that a re-sent span is not counted twice.
    pub dedupe_spans: usize,
}

/// A dependency and how to recognise calls to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub name: String,
    #[serde(default)]
    pub server_address: Vec<String>,
    #[serde(default)]
    pub url_prefix: Vec<String>,
    #[serde(default)]
    pub peer_service: Vec<String>,
    #[serde(default)]
    pub rpc_service: Vec<String>,
    /// Globs on the request path (`url.path`, else the path of `url.full`), e.g.
    /// `/realms/*/protocol/openid-connect/*` for Keycloak.
    #[serde(default)]
    pub url_path: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Temporality {
    Cumulative,
    Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistogramConfig {
    pub buckets: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ErrorGroupsConfig {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub resolve_after: Duration,
    pub max_groups: Positive,
}

/// The HTTP semantic conventions' advisory buckets for `http.client.request.duration`.
pub const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
pub const DEFAULT_WINDOWS: [u64; 5] = [60, 300, 1800, 3600, 21_600];
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(15);
pub const DEFAULT_LIVE_INTERVAL: Duration = Duration::from_millis(200);
pub const DEFAULT_CARDINALITY_LIMIT: usize = 2000;
pub const DEFAULT_DEDUPE_SPANS: usize = 65_536;
/// The most `dedupe_spans` (384 MiB of memory).
pub const MAX_DEDUPE_SPANS: usize = 1 << 24;
pub const DEFAULT_AUTH_REJECTED: [&str; 9] = [
    "invalid_grant",
    "invalid_user_password",
    "mfa_required",
    "password_leaked",
    "too_many_attempts",
    "access_denied",
    "login_required",
    "consent_required",
    "interaction_required",
];
pub const DEFAULT_ERROR_CLASSES: [ErrorClass; 5] = [
    ErrorClass::ServerError,
    ErrorClass::RateLimited,
    ErrorClass::Timeout,
    ErrorClass::Network,
    ErrorClass::ClientError,
];

impl Default for Config {
    fn default() -> Self {
        Config {
            dependencies: vec![Dependency {
                name: "auth0".into(),
                server_address: vec!["*.auth0.com".into()],
                url_prefix: vec![],
                peer_service: vec![],
                rpc_service: vec![],
                url_path: vec![],
            }],
            span_kinds: vec![SpanKindName::Client],
            error_classes: DEFAULT_ERROR_CLASSES.to_vec(),
            auth_rejected_errors: DEFAULT_AUTH_REJECTED.iter().map(|s| s.to_string()).collect(),
            windows: DEFAULT_WINDOWS.iter().map(|s| Window::secs(*s)).collect(),
            metrics_flush_interval: DEFAULT_FLUSH_INTERVAL,
            live_interval: DEFAULT_LIVE_INTERVAL,
            aggregation_temporality: Temporality::Cumulative,
            aggregation_cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            histogram: HistogramConfig::default(),
            error_groups: ErrorGroupsConfig::default(),
            dedupe_spans: DEFAULT_DEDUPE_SPANS,
        }
    }
}

impl Default for HistogramConfig {
    fn default() -> Self {
        HistogramConfig {
            buckets: DEFAULT_BUCKETS.to_vec(),
        }
    }
}

impl Default for ErrorGroupsConfig {
    fn default() -> Self {
        ErrorGroupsConfig {
            enabled: true,
            resolve_after: Duration::from_secs(3600),
            max_groups: Positive(1000),
        }
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "error_rate";

    fn validate(&self, v: &mut Validator) {
        if self.dependencies.is_empty() {
            v.error("dependencies", "must list at least one dependency");
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, d) in self.dependencies.iter().enumerate() {
            if d.name.trim().is_empty() {
                v.error(&format!("dependencies::{i}::name"), "must not be empty");
            } else if !names.insert(d.name.as_str()) {
                v.error(
                    &format!("dependencies::{i}::name"),
                    format!("`{}` is used by another dependency; names must be unique", d.name),
                );
            }
            if d.server_address.is_empty()
                && d.url_prefix.is_empty()
                && d.peer_service.is_empty()
                && d.rpc_service.is_empty()
                && d.url_path.is_empty()
            {
                v.error(
                    &format!("dependencies::{i}"),
                    "needs at least one matcher: `server_address`, `url_prefix`, `url_path`, `peer_service` or `rpc_service`",
                );
            }
        }
        if self.span_kinds.is_empty() {
            v.error("span_kinds", "must list at least one span kind, e.g. `[client]`");
        }
        if self.error_classes.contains(&ErrorClass::Ok) {
            v.error("error_classes", "`ok` cannot be an error class");
        }
        if self.windows.is_empty() {
            v.error("windows", "must list at least one window, e.g. `[5m]`");
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in self.windows.iter().enumerate() {
            if !seen.insert(*w) {
                v.error(&format!("windows::{i}"), format!("`{w}` is listed twice"));
            }
            if w.get().subsec_nanos() != 0 {
                v.error(&format!("windows::{i}"), "must be a whole number of seconds");
            }
        }
        if self.metrics_flush_interval.is_zero() {
            v.error("metrics_flush_interval", "must be longer than zero, e.g. `15s`");
        }
        if self.live_interval.is_zero() || self.live_interval > Duration::from_secs(1) {
            v.error(
                "live_interval",
                "must be longer than zero and at most `1s`, so that alerts learn of calls within a second",
            );
        }
        let b = &self.histogram.buckets;
        if b.iter().any(|x| !x.is_finite()) || b.windows(2).any(|w| w[0] >= w[1]) {
            v.error(
                "histogram::buckets",
                "must be finite numbers in strictly increasing order",
            );
        }
        if self.dedupe_spans > MAX_DEDUPE_SPANS {
            v.error(
                "dedupe_spans",
                format!("must be at most {MAX_DEDUPE_SPANS} (each takes up to 40 bytes)"),
            );
        }
        if self.error_groups.resolve_after.is_zero() {
            v.error("error_groups::resolve_after", "must be longer than zero, e.g. `1h`");
        }
    }
}

const ROUTES: &[(SignalKind, SignalKind)] = &[
    (SignalKind::Traces, SignalKind::Metrics),
    (SignalKind::Traces, SignalKind::Logs),
];

impl ConnectorConfig for Config {
    fn routes(&self) -> &'static [(SignalKind, SignalKind)] {
        ROUTES
    }

    async fn build(&self, cx: ConnectorContext) -> Result<Built, BuildError> {
        let clock = Clock::new();
        let inner = Arc::new(Inner {
            state: Mutex::new(State::new(self, clock)),
            clock,
            live: cx.next.takes_live_for(SignalKind::Metrics),
            changed: Notify::new(),
            next: cx.next,
            board: cx.settings.board.clone(),
            id: cx.settings.id.to_string(),
        });
        let task = FlushTask {
            inner: inner.clone(),
            interval: self.metrics_flush_interval,
            live_interval: self.live_interval,
            shutdown: cx.settings.shutdown,
            id: cx.settings.id.to_string(),
        };
        Ok(Built {
            consumer: Arc::new(ErrorRate { inner }),
            task: Some(Box::pin(task.run())),
        })
    }
}

// === impl ErrorRate ===

struct Inner {
    state: Mutex<State>,
    clock: Clock,
    /// Whether some consumer downstream reads live metrics.
    live: bool,
    /// Woken when calls were counted.
    changed: Notify,
    next: Router,
    board: StatusBoard,
    id: String,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn flush(&self) -> Result<(), ConsumeError> {
        self.publish();
        if !self.next.accepts(SignalKind::Metrics) {
            return Ok(());
        }
        let (live, req) = {
            let now = self.clock.elapsed();
            let mut st = self.lock();
            // What was counted since the last live update goes live first (with delta
            // temporality the flush starts the counters again).
            let live = if self.live { st.live_metrics(now) } else { None };
            (live, st.metrics(now))
        };
        if let Some(live) = live {
            self.send_live(live).await;
        }
        self.next.route(Signal::Metrics(req)).await
    }

    /// Sends a live update if calls were counted since the last one, and refreshes the board.
    async fn live_update(&self) {
        if self.live {
            let live = {
                let now = self.clock.elapsed();
                self.lock().live_metrics(now)
            };
            if let Some(live) = live {
                self.send_live(live).await;
            }
        }
        self.publish();
    }

    async fn send_live(&self, req: authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest) {
        if let Err(e) = self.next.route_live(Signal::Metrics(req)).await {
            debug!(error = %e, "Live error-rate update refused downstream.");
        }
    }
}

impl Inner {
    /// Publishes every dependency's numbers and error groups on the status board.
    fn publish(&self) {
        let now = self.clock.elapsed();
        let snapshot = self.lock().board(now);
        for (name, mut dep, groups) in snapshot {
            dep["connector"] = serde_json::Value::String(self.id.clone());
            self.board.publish(board::DEPENDENCIES, &name, dep);
            self.board.publish(board::ERROR_GROUPS, &name, groups);
        }
    }
}

/// The consumer side: counts spans as they arrive.
struct ErrorRate {
    inner: Arc<Inner>,
}

impl ErrorRate {
    /// Counts the spans of a request, read from its bytes when it comes encoded.
    fn record(&self, data: Signal) -> Result<Vec<state::GroupRecord>, ConsumeError> {
        let now = self.inner.clock.elapsed();
        let kind = data.kind();
        let (records, counted) = {
            let mut st = match data {
                Signal::Traces(_) | Signal::Encoded(_) if kind == SignalKind::Traces => {
                    self.inner.lock()
                }
                _ => {
                    return Err(ConsumeError::Permanent(PermanentError::WrongSignal {
                        component: "the error_rate connector",
                        expected: SignalKind::Traces,
                        got: kind,
                    }))
                }
            };
            let before = st.matched;
            let records = match &data {
                Signal::Traces(req) => Some(st.record_traces(req, now)),
                Signal::Encoded(e) => st.record_traces_encoded(e.bytes(), now),
                _ => None,
            };
            (records, st.matched != before)
        };
        if counted {
            // One permit however many requests come: the live task coalesces them.
            self.inner.changed.notify_one();
        }
        records.ok_or(ConsumeError::Permanent(PermanentError::Malformed {
            component: "the error_rate connector",
            kind,
        }))
    }
}

impl Consumer for ErrorRate {
    /// Spans are read from their bytes: a pipeline that also forwards them never decodes them.
    fn wants_encoded(&self) -> bool {
        true
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let records = self.record(data)?;
            if !records.is_empty() && self.inner.next.accepts(SignalKind::Logs) {
                let n = records.len();
                let logs = records
                    .into_iter()
                    .map(|r| r.into_log_record(&self.inner.clock))
                    .collect();
                // The spans were counted; a full logs pipeline must not make the sender resend them.
                if let Err(e) = self
                    .inner
                    .next
                    .route(Signal::Logs(authwatch_core::data::logs_request(logs)))
                    .await
                {
                    debug!(error = %e, records = n, "Error-group records refused downstream.");
                }
            }
            Ok(())
        })
    }
}

// === impl FlushTask ===

/// Emits the metrics every `metrics_flush_interval`, and once more at shutdown; sends live
/// updates when calls were counted, at most one per `live_interval`.
struct FlushTask {
    inner: Arc<Inner>,
    interval: Duration,
    live_interval: Duration,
    shutdown: CancellationToken,
    id: String,
}

impl FlushTask {
    async fn run(self) -> Result<(), RunError> {
        info!(connector = %self.id, "Error-rate connector started.");
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.interval,
            self.interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The earliest time of the next live update.
        let mut next_live = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.inner.flush().await {
                        debug!(error = %e, "Error-rate metrics refused downstream.");
                    }
                }
                () = self.inner.changed.notified() => {
                    // The first calls after a quiet spell go at once; calls that keep coming
                    // are gathered for `live_interval`.
                    tokio::select! {
                        biased;
                        () = self.shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(next_live) => {}
                    }
                    self.inner.live_update().await;
                    next_live = tokio::time::Instant::now() + self.live_interval;
                }
            }
        }
        if let Err(e) = self.inner.flush().await {
            warn!(connector = %self.id, error = %e, "Final error-rate metrics were refused.");
        }
        info!(connector = %self.id, "Error-rate connector flushed and stopped.");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
