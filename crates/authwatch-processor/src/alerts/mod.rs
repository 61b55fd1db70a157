//! # `alerts` connector
//!
//! Evaluates alerting rules on the metrics that flow through a metrics pipeline (the
//! `error_rate` connector's counters and duration histogram, the `synthetic` receiver's
//! `authwatch.probe.success`, the `statuspage` receiver's `authwatch.status.indicator`, the
//! tenant-log receivers' `authwatch.logins`) and emits one log record per alert
//! transition (event name `authwatch.alert`), re-sent while firing. Every alert carries a verdict
//! (provider_outage, tenant_issue, application_issue, transient, degraded: slow but not
//! failing, or no_outage: logins failing by the users' own doing, as the tenant's log shows),
//! the numbers behind it and the provider's status page link. Evaluation is streaming: on every incoming metrics request and
//! on a 1s tick (for `for`, `keep_firing_for` and re-sends), so an alert fires within one
//! second of its condition becoming true in the data. The connector takes the live lane
//! (`authwatch_core::consume`): the `error_rate` connector's counters arrive within a fraction
//! of a second of the spans, and probe runs and status-page polls at once, whatever
//! `metrics_flush_interval` and `batch` the exported metrics go through; each point is read once,
//! whichever lane brings it first. See [the alerting guide](../../alerting.md) for the full
//! reference; [`prometheus_rules`] writes equivalent Prometheus rules for a fleet.
//!
//! ```yaml
//! connectors:
//!   alerts:
//!     status_page_url: https://status.auth0.com
//!     rules:
//!       - name: auth0_error_ratio
//!         threshold: { dependency: auth0, error_ratio: 0.05, window: 5m, min_requests: 20 }
//!         for: 1m
//!       - name: auth0_slo
//!         burn_rate: { dependency: auth0, objective: 99.9 }
//!       - name: auth0_probe_failing
//!         consecutive: { failures: 3, successes: 2 }
//!       - name: auth0_status_incident
//!         status: { min_indicator: 1 }
//!       - name: auth0_slow
//!         latency: { dependency: auth0, quantile: p95, slower_than: 1s, window: 5m, min_requests: 20 }
//!       - name: auth0_login_failures
//!         threshold: { dependency: auth0, logins: true, error_ratio: 0.02, window: 5m, min_requests: 50 }
//! ```

mod board;
mod engine;
mod evidence;
mod histogram;
mod prometheus;
mod reason;
mod signals;
pub mod rules;
mod store;
mod verdict;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authwatch_core::board::StatusBoard;
use authwatch_core::config::{duration, Positive};
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::{
    BuildError, Built, ComponentConfig, ConnectorConfig, ConnectorContext, ConsumeError, Consumer,
    PermanentError,
    Router, RunError, Signal, SignalKind, Validator,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use authwatch_core::time::{Clock, Window};
pub use engine::State;
pub use prometheus::prometheus_rules;
pub use rules::{
    Aggregation, BurnRate, BurnWindow, Consecutive, Latency, Op, Quantile, Rule, SourceFilter,
    StatusRule, Threshold,
};
pub use store::Increase;
pub use verdict::{verdict, Signals, Verdict};

/// The `alerts` connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub rules: Vec<Rule>,
    /// Firing alerts are re-sent this often (Alertmanager forgets alerts not re-sent).
    #[serde(with = "duration")]
    pub resend_interval: Duration,
    /// The tick that advances `for`, `keep_firing_for` and re-sends between metrics requests.
    #[serde(with = "duration")]
    pub evaluation_interval: Duration,
    /// The provider's status page, linked from every alert.
    pub status_page_url: String,
    /// Alertmanager's `generatorURL` (e.g. a dashboard); left out when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
    pub verdict: VerdictConfig,
    /// The fleet rule of the generated Prometheus rules.
    pub fleet: FleetConfig,
}

/// How the verdict reads the signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VerdictConfig {
    /// The window over which probe runs and traffic are looked at.
    #[serde(with = "duration")]
    pub window: Duration,
    /// Real traffic "fails" at this error ratio or above ...
    pub traffic_error_ratio: f64,
    /// ... with at least this many calls in the window.
    pub min_requests: u64,
    /// Probes "fail" with this many failed runs in the window (or in a row).
    pub probe_failures: Positive,
    /// Recency: evidence this old weighs half as much as evidence from now.
    #[serde(with = "duration")]
    pub half_life: Duration,
}

/// The generated fleet rule: fires when `min_sidecars` sidecars see the provider fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FleetConfig {
    pub enabled: bool,
    pub min_sidecars: Positive,
    pub error_ratio: f64,
    pub window: Window,
    pub source: SourceFilter,
    /// The label that tells sidecars apart.
    pub instance_label: String,
    #[serde(rename = "for", with = "duration")]
    pub for_: Duration,
}

pub const DEFAULT_STATUS_PAGE_URL: &str = "https://status.auth0.com";
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(1);
/// Alert events kept for a logs pipeline that refuses them, oldest dropped first.
const OUTBOX_CAPACITY: usize = 1000;

impl Default for Config {
    fn default() -> Self {
        Config {
            rules: Vec::new(),
            resend_interval: DEFAULT_RESEND_INTERVAL,
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            status_page_url: DEFAULT_STATUS_PAGE_URL.into(),
            generator_url: None,
            verdict: VerdictConfig::default(),
            fleet: FleetConfig::default(),
        }
    }
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            window: Duration::from_secs(300),
            traffic_error_ratio: 0.05,
            min_requests: 10,
            probe_failures: Positive(2),
            half_life: Duration::from_secs(60),
        }
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            enabled: true,
            min_sidecars: Positive(2),
            error_ratio: 0.1,
            window: Window::secs(300),
            source: SourceFilter::All,
            instance_label: "instance".into(),
            for_: Duration::from_secs(60),
        }
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "alerts";

    fn validate(&self, v: &mut Validator) {
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in self.rules.iter().enumerate() {
            let at = format!("rules::{i}");
            r.validate(v, &at);
            if !names.insert(r.name.as_str()) {
                v.error(
                    &format!("{at}::name"),
                    format!("`{}` is used by another rule; rule names must be unique", r.name),
                );
            }
        }
        if self.resend_interval.is_zero() {
            v.error("resend_interval", "must be longer than zero, e.g. `1m`");
        }
        if self.evaluation_interval.is_zero() || self.evaluation_interval > Duration::from_secs(1) {
            v.error(
                "evaluation_interval",
                "must be longer than zero and at most `1s`, so that alerts fire within a second",
            );
        }
        if !(self.status_page_url.starts_with("https://") || self.status_page_url.starts_with("http://")) {
            v.error("status_page_url", "must be an http(s) URL, e.g. https://status.auth0.com");
        }
        if !(0.0..=1.0).contains(&self.verdict.traffic_error_ratio) {
            v.error("verdict::traffic_error_ratio", "must be between 0 and 1");
        }
        if self.verdict.window.is_zero() {
            v.error("verdict::window", "must be longer than zero, e.g. `5m`");
        }
        if self.verdict.half_life.is_zero() {
            v.error("verdict::half_life", "must be longer than zero, e.g. `1m`");
        }
        if !(0.0..1.0).contains(&self.fleet.error_ratio) {
            v.error("fleet::error_ratio", "must be at least 0 and below 1");
        }
        if !rules::is_label_name(&self.fleet.instance_label) {
            v.error("fleet::instance_label", "must be a label name, e.g. `instance`");
        }
    }
}

const ROUTES: &[(SignalKind, SignalKind)] = &[(SignalKind::Metrics, SignalKind::Logs)];

impl Config {
    fn store(&self) -> store::Store {
        let keep = self
            .rules
            .iter()
            .map(Rule::longest_window)
            .chain([self.verdict.window])
            .max()
            .unwrap_or_default();
        let metrics = self
            .rules
            .iter()
            .filter_map(|r| r.threshold.as_ref().and_then(|t| t.metric.clone()));
        let mut s = store::Store::new(keep, metrics, self.latency_needs());
        s.evidence = evidence::Evidence::new(self.verdict.window);
        s
    }

    /// What the latency rules and latency objectives read of the duration histogram.
    fn latency_needs(&self) -> store::LatencyNeeds {
        let mut n = store::LatencyNeeds::default();
        for r in &self.rules {
            let bound = match (&r.latency, &r.burn_rate) {
                (Some(l), _) => {
                    n.any = true;
                    if l.quantile.is_some() {
                        n.keep_buckets = n.keep_buckets.max(l.window.get());
                    }
                    l.share_bound()
                }
                (None, Some(b)) => b.slower_than,
                _ => None,
            };
            if let Some(b) = bound {
                n.any = true;
                if !n.slow_bounds.contains(&b) {
                    n.slow_bounds.push(b);
                }
            }
        }
        n
    }
}

impl ConnectorConfig for Config {
    fn routes(&self) -> &'static [(SignalKind, SignalKind)] {
        ROUTES
    }

    async fn build(&self, cx: ConnectorContext) -> Result<Built, BuildError> {
        let clock = Clock::new();
        let inner = Arc::new(Inner {
            state: Mutex::new(Runtime {
                store: self.store(),
                engine: engine::Engine::new(self, clock),
                outbox: Vec::new(),
                board: board::BoardAlerts::default(),
            }),
            clock,
            next: cx.next,
            status_board: cx.settings.board.clone(),
            id: cx.settings.id.to_string(),
            verdict: self.verdict.clone(),
        });
        let task = TickTask {
            inner: inner.clone(),
            interval: self.evaluation_interval,
            shutdown: cx.settings.shutdown,
            id: cx.settings.id.to_string(),
        };
        Ok(Built {
            consumer: Arc::new(Alerts { inner }),
            task: Some(Box::pin(task.run())),
        })
    }
}

// === impl Alerts ===

struct Runtime {
    store: store::Store,
    engine: engine::Engine,
    /// Events a refusing logs pipeline has not taken yet.
    outbox: Vec<LogRecord>,
    /// What the status page shows.
    board: board::BoardAlerts,
}

struct Inner {
    state: Mutex<Runtime>,
    clock: Clock,
    next: Router,
    status_board: StatusBoard,
    id: String,
    verdict: VerdictConfig,
}

impl Inner {
    /// Ingests (if any), evaluates and sends what is due.
    async fn step(&self, data: Option<&Signal>) {
        let records = {
            let now = self.clock.elapsed();
            let mut rt = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(Signal::Metrics(m)) = data {
                rt.store.ingest(m, now);
            }
            let Runtime { store, engine, outbox, board } = &mut *rt;
            let events = engine.evaluate(store, now);
            for e in &events {
                board.record(&e.record);
            }
            // Published on the tick and on transitions, not on every metrics request.
            if data.is_none() || !events.is_empty() {
                let at = self.clock.unix_nanos(now) as f64 / 1e9;
                let value = board.value(engine, store, &self.verdict, now, at);
                self.status_board.publish(authwatch_core::board::ALERTS, &self.id, value);
            }
            outbox.extend(events.into_iter().map(|e| e.record));
            std::mem::take(outbox)
        };
        if records.is_empty() || !self.next.accepts(SignalKind::Logs) {
            return;
        }
        let n = records.len();
        let req = authwatch_core::data::logs_request(records);
        if let Err(e) = self.next.route(Signal::Logs(req.clone())).await {
            if e.is_retryable() {
                let mut rt = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let mut back: Vec<LogRecord> = req
                    .resource_logs
                    .into_iter()
                    .flat_map(|r| r.scope_logs)
                    .flat_map(|s| s.log_records)
                    .collect();
                back.append(&mut rt.outbox);
                let excess = back.len().saturating_sub(OUTBOX_CAPACITY);
                rt.outbox = back.split_off(excess);
                debug!(error = %e, events = n, "Alert events refused downstream; will retry.");
            } else {
                warn!(error = %e, events = n, "Alert events refused for good and dropped.");
            }
        }
    }
}

/// The consumer side: evaluates on every metrics request.
struct Alerts {
    inner: Arc<Inner>,
}

impl Consumer for Alerts {
    fn takes_live(&self) -> bool {
        true
    }

    /// Live data is evaluated like any other: the store reads each point once, whichever lane
    /// brings it first.
    fn consume_live(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        self.consume(data)
    }

    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            if data.kind() != SignalKind::Metrics {
                return Err(ConsumeError::Permanent(PermanentError::WrongSignal {
                    component: "the alerts connector",
                    expected: SignalKind::Metrics,
                    got: data.kind(),
                }));
            }
            let data = data.into_decoded()?;
            self.inner.step(Some(&data)).await;
            Ok(())
        })
    }
}

// === impl TickTask ===

/// Evaluates every `evaluation_interval` so that `for` and re-sends need no new data.
struct TickTask {
    inner: Arc<Inner>,
    interval: Duration,
    shutdown: CancellationToken,
    id: String,
}

impl TickTask {
    async fn run(self) -> Result<(), RunError> {
        info!(connector = %self.id, "Alerts connector started.");
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                _ = tick.tick() => self.inner.step(None).await,
            }
        }
        info!(connector = %self.id, "Alerts connector stopped.");
        Ok(())
    }
}

#[cfg(test)]
mod first_burst_tests;
#[cfg(test)]
mod login_tests;
#[cfg(test)]
mod test_data;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod verdict_tests;
