//! # `console` exporter
//!
//! What a person watching the terminal wants to see: one compact line on stdout per alert
//! transition, and every `summary_interval` one line per dependency that had calls, with its
//! requests, error ratio and verdict. It reads the `alerts` connector's alert events (log
//! records named `authwatch.alert`) in a logs pipeline and the `error_rate` connector's window
//! gauges (`authwatch.dependency.window.requests` and `authwatch.dependency.error_ratio`) in a
//! metrics pipeline; anything else is accepted and ignored. Logs still go to stderr, so stdout
//! carries only these lines.
//!
//! ```yaml
//! exporters:
//!   console:
//!     summary_interval: 1m     # 0s: no summaries, alert lines only
//!     window: 1m               # which `error_rate` window the summary reads
//! service:
//!   pipelines:
//!     metrics/derived: { receivers: [error_rate], exporters: [alerts, console] }
//!     logs/alerts:     { receivers: [alerts], exporters: [console] }
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `summary_interval` | `1m` | how often the per-dependency summary is printed; `0s` turns it off |
//! | `window` | `1m` | the `error_rate` window (one of its `windows`) whose numbers the summary shows |
//!
//! ## Lines
//!
//! ```text
//! 2025-05-01T09:30:02Z ALERT firing auth0_error_ratio dependency=auth0 severity=warning value=0.3 threshold=0.05 verdict=provider_outage: auth0 fails for real traffic (30 of 100 calls) ...
//! 2025-05-01T09:31:00Z SUMMARY dependency=auth0 window=1m requests=100 errors=30 error_ratio=0.300 verdict=provider_outage alerts=auth0_error_ratio
//! 2025-05-01T09:31:00Z SUMMARY dependency=okta window=1m requests=12 errors=0 error_ratio=0.000 verdict=healthy
//! 2025-05-01T09:31:00Z SUMMARY dependency=google window=1m requests=40 errors=0 error_ratio=0.000 verdict=degraded alerts=google_p95 p95=1.52s bound=500ms
//! ```
//!
//! - `ALERT <state> <alert name>`: one line per transition (`pending`, `firing`, `resolved`,
//!   `inactive`), with the alert's labels `dependency`, `source`, `synthetic_check` or
//!   `status_page` when it has them, its severity, the compared value and threshold, the verdict
//!   and its reason. Re-sends of a firing alert (`alert.resend`) print nothing.
//! - `SUMMARY`: per dependency with calls in `window` (traffic and probes together), from the
//!   latest gauges: requests, errors, error ratio, and the verdict of the dependency's firing
//!   alerts (`healthy` when none fires, as on the status page; the firing alerts are listed in `alerts=`). A dependency that
//!   had no calls in the window is left out; with none at all, nothing is printed. A failing
//!   verdict wins over `degraded` (a firing latency alert whose calls do not fail); a firing
//!   latency alert adds its quantile (or `slow_share`) and bound.
//!
//! Synchronous: no queue; it never refuses data (except after shutdown).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::{AnyValue, KeyValue};
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, NumberDataPoint};
use authwatch_core::{
    semconv, BuildError, Built, ComponentConfig, ConsumeError, Consumer, ExporterConfig, Running,
    Settings, Signal, Signals, Validator,
};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Default `summary_interval`.
pub const DEFAULT_SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// `console` exporter config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often the per-dependency summary is printed (`0s`: never).
    #[serde(with = "authwatch_core::config::duration")]
    pub summary_interval: Duration,
    /// The `error_rate` window the summary reads, as that connector writes it (`1m`, `5m`).
    pub window: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            summary_interval: DEFAULT_SUMMARY_INTERVAL,
            window: "1m".to_owned(),
        }
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "console";

    fn validate(&self, v: &mut Validator) {
        let w = self.window.trim();
        if w.is_empty() || authwatch_core::config::duration::parse(w).is_err() {
            v.error(
                "window",
                format!(
                    "`{w}` is not a window; write one of the `error_rate` connector's `windows`, e.g. `1m`"
                ),
            );
        }
        if !self.summary_interval.is_zero() && self.summary_interval < Duration::from_secs(1) {
            v.error(
                "summary_interval",
                "must be at least `1s`, or `0s` to print no summaries",
            );
        }
    }
}

impl ExporterConfig for Config {
    fn signals(&self) -> Signals {
        Signals::ALL
    }

    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        let out: Out = Arc::new(Mutex::new(Box::new(std::io::stdout())));
        Ok(build_with(self, settings, out))
    }
}

/// Where lines go: stdout, or a buffer in tests.
pub(crate) type Out = Arc<Mutex<Box<dyn Write + Send>>>;

pub(crate) fn build_with(config: &Config, settings: Settings, out: Out) -> Built {
    let exporter = Arc::new(Console {
        window: config.window.trim().to_owned(),
        out,
        state: Mutex::new(State::default()),
        telemetry: settings.telemetry.exporter(&settings.id),
        shutdown: settings.shutdown.clone(),
    });
    let task = (!config.summary_interval.is_zero())
        .then(|| summaries(exporter.clone(), config.summary_interval, settings.shutdown));
    Built {
        consumer: exporter,
        task,
    }
}

fn summaries(console: Arc<Console>, every: Duration, shutdown: CancellationToken) -> Running {
    Box::pin(async move {
        info!(interval = %humantime::format_duration(every), "Console exporter prints a dependency summary every interval.");
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => console.print_summary(),
            }
        }
        Ok(())
    })
}

// === impl Console ===

struct Console {
    window: String,
    out: Out,
    state: Mutex<State>,
    telemetry: authwatch_core::telemetry::ExporterTelemetry,
    shutdown: CancellationToken,
}

type Firing = (String, String, String, Option<String>);

/// The latest numbers per dependency, and the alerts firing now.
#[derive(Default)]
struct State {
    /// dependency → source → (requests, error ratio) in the window.
    deps: BTreeMap<String, BTreeMap<String, (f64, f64)>>,
    /// alert fingerprint → (dependency, alert name, verdict, latency detail) of firing alerts.
    firing: BTreeMap<String, Firing>,
}

impl Console {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write_lines(&self, lines: &[String]) {
        if lines.is_empty() {
            return;
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines {
            // A closed stdout is not worth failing the pipeline for.
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }

    fn print_summary(&self) {
        let lines = summary_lines(&self.lock(), &self.window, &now());
        self.write_lines(&lines);
    }

    fn take_metrics(
        &self,
        request: &authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest,
    ) {
        let mut requests: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut ratios: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut seen = false;
        let metrics = request
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics);
        for m in metrics {
            let target = match m.name.as_str() {
                semconv::DEPENDENCY_WINDOW_REQUESTS => &mut requests,
                semconv::DEPENDENCY_ERROR_RATIO => &mut ratios,
                _ => continue,
            };
            let Some(metric::Data::Gauge(g)) = &m.data else {
                continue;
            };
            seen = true;
            for p in &g.data_points {
                if str_attr(&p.attributes, semconv::WINDOW) != Some(self.window.as_str()) {
                    continue;
                }
                let Some(dep) = str_attr(&p.attributes, semconv::DEPENDENCY) else {
                    continue;
                };
                let source = str_attr(&p.attributes, semconv::SOURCE).unwrap_or("all");
                target.insert((dep.to_owned(), source.to_owned()), point_value(p));
            }
        }
        if !seen {
            return;
        }
        // Each flush of `error_rate` is a full snapshot: replace what we had.
        let mut deps: BTreeMap<String, BTreeMap<String, (f64, f64)>> = BTreeMap::new();
        for ((dep, source), n) in requests {
            let ratio = ratios
                .get(&(dep.clone(), source.clone()))
                .copied()
                .unwrap_or(0.0);
            deps.entry(dep).or_default().insert(source, (n, ratio));
        }
        self.lock().deps = deps;
    }

    fn take_logs(
        &self,
        request: &authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest,
    ) {
        let records = request
            .resource_logs
            .iter()
            .flat_map(|r| &r.scope_logs)
            .flat_map(|s| &s.log_records)
            .filter(|r| r.event_name == semconv::ALERT_EVENT);
        let mut lines = Vec::new();
        let at = now();
        for r in records {
            if bool_attr(&r.attributes, semconv::ALERT_RESEND) == Some(true) {
                continue;
            }
            let alert = AlertEvent::of(r);
            {
                let mut state = self.lock();
                if alert.state == "firing" {
                    state.firing.insert(
                        alert.fingerprint.clone(),
                        (
                            alert.dependency.clone().unwrap_or_default(),
                            alert.name.clone(),
                            alert.verdict.clone(),
                            alert.latency.clone(),
                        ),
                    );
                } else {
                    state.firing.remove(&alert.fingerprint);
                }
            }
            lines.push(alert.line(&at));
        }
        self.write_lines(&lines);
    }
}

impl Consumer for Console {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        let result = if self.shutdown.is_cancelled() {
            Err(ConsumeError::Closed)
        } else {
            match data.decoded_ref().as_deref() {
                Ok(Signal::Metrics(m)) => self.take_metrics(m),
                Ok(Signal::Logs(l)) => self.take_logs(l),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "Console exporter cannot read a request; skipping it."),
            }
            self.telemetry.sent(data.kind(), data.item_count());
            Ok(())
        };
        Box::pin(async move { result })
    }
}

// === lines ===

fn now() -> String {
    authwatch_core::time::format_rfc3339(SystemTime::now(), authwatch_core::time::Precision::Seconds)
}

/// The summary lines for `state` (one per dependency with calls in the window).
fn summary_lines(state: &State, window: &str, at: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for (dep, sources) in &state.deps {
        let requests: f64 = sources.values().map(|(n, _)| n).sum();
        if requests < 0.5 {
            continue;
        }
        let errors: f64 = sources.values().map(|(n, r)| n * r).sum();
        let ratio = errors / requests;
        let firing: Vec<&Firing> = state.firing.values().filter(|(d, ..)| d == dep).collect();
        let verdicts = || firing.iter().map(|(_, _, v, _)| v.as_str()).filter(|v| !v.is_empty());
        let verdict = verdicts()
            .find(|v| *v != semconv::VERDICT_DEGRADED)
            .or_else(|| verdicts().next())
            .unwrap_or(if firing.is_empty() { "healthy" } else { "unknown" });
        let mut line = format!(
            "{at} SUMMARY dependency={dep} window={window} requests={} errors={} error_ratio={ratio:.3} verdict={verdict}",
            requests.round(),
            errors.round(),
        );
        if !firing.is_empty() {
            let mut names: Vec<&str> = firing.iter().map(|(_, n, ..)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            line.push_str(&format!(" alerts={}", names.join(",")));
        }
        if let Some(detail) = firing.iter().find_map(|(.., l)| l.as_deref()) {
            line.push(' ');
            line.push_str(detail);
        }
        lines.push(line);
    }
    lines
}

/// What an alert line shows.
#[derive(Debug)]
struct AlertEvent {
    name: String,
    state: String,
    fingerprint: String,
    severity: String,
    dependency: Option<String>,
    labels: Vec<(&'static str, String)>,
    value: Option<f64>,
    threshold: Option<f64>,
    verdict: String,
    reason: String,
    /// Latency alerts: `p95=1.52s bound=500ms` or `slow_share=0.34 bound=1.00s`.
    latency: Option<String>,
}

/// Seconds as people read them: `480ms`, `1.52s`.
fn secs(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0}ms", v * 1000.0)
    } else {
        format!("{v:.2}s")
    }
}

impl AlertEvent {
    fn of(r: &LogRecord) -> AlertEvent {
        let a = &r.attributes;
        let s = |k: &str| str_attr(a, k).unwrap_or_default().to_owned();
        let label = |k: &str| {
            str_attr(a, &format!("{}{k}", semconv::ALERT_LABEL_PREFIX)).map(str::to_owned)
        };
        let labels = ["source", "synthetic_check", "status_page"]
            .into_iter()
            .filter_map(|k| label(k).map(|v| (k, v)))
            .collect();
        AlertEvent {
            name: s(semconv::ALERT_NAME),
            state: s(semconv::ALERT_STATE),
            fingerprint: s(semconv::ALERT_FINGERPRINT),
            severity: s(semconv::ALERT_SEVERITY),
            dependency: label("dependency"),
            labels,
            value: f64_attr(a, semconv::ALERT_VALUE),
            threshold: f64_attr(a, semconv::ALERT_THRESHOLD),
            verdict: s(semconv::ALERT_VERDICT),
            reason: s(semconv::ALERT_VERDICT_REASON),
            latency: latency_detail(a),
        }
    }

    fn line(&self, at: &str) -> String {
        let mut line = format!("{at} ALERT {} {}", self.state, self.name);
        if let Some(d) = &self.dependency {
            line.push_str(&format!(" dependency={d}"));
        }
        for (k, v) in &self.labels {
            line.push_str(&format!(" {k}={v}"));
        }
        if !self.severity.is_empty() {
            line.push_str(&format!(" severity={}", self.severity));
        }
        if let Some(v) = self.value {
            line.push_str(&format!(" value={}", number(v)));
        }
        if let Some(t) = self.threshold {
            line.push_str(&format!(" threshold={}", number(t)));
        }
        if !self.verdict.is_empty() {
            line.push_str(&format!(" verdict={}", self.verdict));
        }
        if !self.reason.is_empty() {
            line.push_str(&format!(": {}", self.reason));
        }
        line
    }
}

fn latency_detail(a: &[KeyValue]) -> Option<String> {
    let q = str_attr(a, semconv::ALERT_LATENCY_QUANTILE)?;
    let bound = secs(f64_attr(a, semconv::ALERT_LATENCY_BOUND)?);
    let value = f64_attr(a, semconv::ALERT_VALUE)?;
    Some(if q == "share" {
        format!("slow_share={} bound={bound}", number(value))
    } else {
        format!("{q}={} bound={bound}", secs(value))
    })
}

/// At most 4 decimals, trailing zeros dropped.
fn number(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn str_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)? {
        Value::StringValue(s) => Some(s),
        _ => None,
    }
}

fn f64_attr(attrs: &[KeyValue], key: &str) -> Option<f64> {
    match attr(attrs, key)? {
        Value::DoubleValue(d) => Some(*d),
        Value::IntValue(i) => Some(*i as f64),
        _ => None,
    }
}

fn bool_attr(attrs: &[KeyValue], key: &str) -> Option<bool> {
    match attr(attrs, key)? {
        Value::BoolValue(b) => Some(*b),
        _ => None,
    }
}

fn point_value(p: &NumberDataPoint) -> f64 {
    match p.value {
        Some(number_data_point::Value::AsDouble(d)) if d.is_finite() => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests;
