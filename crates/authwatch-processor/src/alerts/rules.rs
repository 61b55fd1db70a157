//! Rule configuration: one struct per rule kind.

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::config::{duration, opt_duration, Positive};
use authwatch_core::Validator;
use serde::{Deserialize, Serialize};

use authwatch_core::semconv::Source;
use authwatch_core::time::Window;

/// One alerting rule: a name, exactly one kind, and what every kind shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burn_rate: Option<BurnRate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive: Option<Consecutive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Latency>,
    /// How long the condition must hold before the alert fires (pending meanwhile).
    #[serde(rename = "for", default, with = "duration")]
    pub for_: Duration,
    /// How long a firing alert keeps firing after its condition cleared.
    #[serde(default, with = "duration")]
    pub keep_firing_for: Duration,
    /// Label `severity`; burn-rate rules set it from the window pair (`page` / `ticket`).
    #[serde(default = "default_severity")]
    pub severity: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
}

fn default_severity() -> String {
    "warning".into()
}

/// Which calls a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFilter {
    /// Real traffic and probes together.
    #[default]
    All,
    Traffic,
    Probe,
}

impl SourceFilter {
    pub fn source(self) -> Option<Source> {
        match self {
            SourceFilter::All => None,
            SourceFilter::Traffic => Some(Source::Traffic),
            SourceFilter::Probe => Some(Source::Probe),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFilter::All => "all",
            SourceFilter::Traffic => "traffic",
            SourceFilter::Probe => "probe",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    #[default]
    Above,
    Below,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    #[default]
    Avg,
    Max,
    Min,
    Last,
}

/// `threshold`: an error ratio of a dependency, or the value of any metric, over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Threshold {
    /// Dependency name; none: one alert per dependency seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    pub source: SourceFilter,
    /// Fire when errors / requests over `window` exceed this (0..1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    /// Resolve only when the ratio is at or below this (hysteresis); default `error_ratio`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_error_ratio: Option<f64>,
    /// With `value`: the metric to read (gauge or sum), one alert per series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub op: Op,
    pub aggregation: Aggregation,
    pub window: Window,
    /// Error-ratio rules stay inactive with fewer calls than this in the window.
    pub min_requests: u64,
    /// With `error_ratio`: read logins from tenant logs (`authwatch.logins`, the `auth0_logs`
    /// and `okta_logs` receivers) instead of calls: the ratio is provider-side login failures
    /// (the provider's or the tenant's errors, not wrong passwords, blocks, MFA or rate
    /// limits) over all logins, and `min_requests` counts logins.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub logins: bool,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold {
            dependency: None,
            source: SourceFilter::All,
            error_ratio: None,
            resolve_error_ratio: None,
            metric: None,
            value: None,
            op: Op::Above,
            aggregation: Aggregation::Avg,
            window: Window::secs(300),
            min_requests: 0,
            logins: false,
        }
    }
}

/// One window pair of a burn-rate rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurnWindow {
    pub long: Window,
    pub short: Window,
    pub factor: f64,
    pub severity: String,
}

/// `burn_rate`: multi-window, multi-burn-rate SLO alerting (Google SRE workbook).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BurnRate {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    pub source: SourceFilter,
    /// Objective in percent, e.g. `99.9`.
    pub objective: f64,
    /// SLO period (the workbook's factors assume 30d).
    pub period: Window,
    pub windows: Vec<BurnWindow>,
    pub min_requests: u64,
    /// A latency objective: the bad events are the calls slower than this (instead of the
    /// failed calls), e.g. 99% of logins within `1s`.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub slower_than: Option<Duration>,
}

/// The workbook's pairs for a 30-day SLO: 2% of the budget in 1h, 5% in 6h (page), 10% in 1d
/// and 10% in 3d (ticket).
pub fn workbook_windows() -> Vec<BurnWindow> {
    let w = |long, short, factor, severity: &str| BurnWindow {
        long: Window::secs(long),
        short: Window::secs(short),
        factor,
        severity: severity.into(),
    };
    vec![
        w(3600, 300, 14.4, "page"),
        w(21_600, 1800, 6.0, "page"),
        w(86_400, 7200, 3.0, "ticket"),
        w(259_200, 21_600, 1.0, "ticket"),
    ]
}

impl Default for BurnRate {
    fn default() -> Self {
        BurnRate {
            dependency: None,
            source: SourceFilter::Traffic,
            objective: 99.9,
            period: Window::secs(30 * 86_400),
            windows: workbook_windows(),
            min_requests: 0,
            slower_than: None,
        }
    }
}

impl BurnRate {
    /// The error budget as a ratio: `1 - objective`.
    pub fn budget(&self) -> f64 {
        1.0 - self.objective / 100.0
    }
    /// Severities in the order they first appear.
    pub fn severities(&self) -> Vec<String> {
        let mut s: Vec<String> = Vec::new();
        for w in &self.windows {
            if !s.contains(&w.severity) {
                s.push(w.severity.clone());
            }
        }
        s
    }
}

/// `consecutive`: `failures` failed probe runs in a row fire, `successes` in a row resolve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Consecutive {
    /// `synthetic.check` name; none: one alert per check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    pub failures: Positive,
    pub successes: Positive,
    /// The probes' interval; used only for the generated Prometheus rules.
    pub probe_interval: Window,
}

impl Default for Consecutive {
    fn default() -> Self {
        Consecutive {
            check: None,
            failures: Positive(3),
            successes: Positive(2),
            probe_interval: Window::secs(60),
        }
    }
}

/// `status`: the provider's status page reports an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatusRule {
    /// `status.page` name; none: one alert per page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Fire at this indicator or above: 1 minor, 2 major, 3 critical.
    pub min_indicator: i64,
}

impl Default for StatusRule {
    fn default() -> Self {
        StatusRule {
            page: None,
            min_indicator: 1,
        }
    }
}

/// A quantile of the call durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantile {
    P50,
    P90,
    P95,
    P99,
}

impl Quantile {
    pub fn as_str(self) -> &'static str {
        match self {
            Quantile::P50 => "p50",
            Quantile::P90 => "p90",
            Quantile::P95 => "p95",
            Quantile::P99 => "p99",
        }
    }
    pub fn value(self) -> f64 {
        match self {
            Quantile::P50 => 0.5,
            Quantile::P90 => 0.9,
            Quantile::P95 => 0.95,
            Quantile::P99 => 0.99,
        }
    }
}

/// `latency`: calls to a dependency are slow, read from the `http.client.request.duration`
/// histogram over a window. Either a quantile above `slower_than` (`quantile: p95`), or more
/// than `share` of the calls slower than `slower_than`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Latency {
    /// Dependency name; none: one alert per dependency seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependency: Option<String>,
    pub source: SourceFilter,
    /// Fire when this quantile of the durations is above `slower_than`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantile: Option<Quantile>,
    /// Fire when more than this share (0..1) of the calls are slower than `slower_than`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// The bound. Pick one of the histogram's bucket bounds (defaults: 5ms … 10s) for exact
    /// numbers here and in the generated Prometheus rules.
    #[serde(with = "duration")]
    pub slower_than: Duration,
    /// With `quantile`: resolve only when the quantile is at or below this (hysteresis);
    /// default `slower_than`.
    #[serde(with = "opt_duration", skip_serializing_if = "Option::is_none")]
    pub resolve_below: Option<Duration>,
    /// With `share`: resolve only when the share is at or below this; default `share`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolve_share: Option<f64>,
    pub window: Window,
    /// Inactive with fewer calls than this in the window.
    pub min_requests: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            dependency: None,
            source: SourceFilter::All,
            quantile: None,
            share: None,
            slower_than: Duration::ZERO,
            resolve_below: None,
            resolve_share: None,
            window: Window::secs(300),
            min_requests: 0,
        }
    }
}

/// The kind of a rule, borrowed.
#[derive(Debug, Clone, Copy)]
pub enum Kind<'a> {
    Threshold(&'a Threshold),
    BurnRate(&'a BurnRate),
    Consecutive(&'a Consecutive),
    Status(&'a StatusRule),
    Latency(&'a Latency),
}

impl Kind<'_> {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Threshold(_) => "threshold",
            Kind::BurnRate(_) => "burn_rate",
            Kind::Consecutive(_) => "consecutive",
            Kind::Status(_) => "status",
            Kind::Latency(_) => "latency",
        }
    }
}

impl Rule {
    /// The rule's kind; `None` unless exactly one is set (validation reports it).
    pub fn kind(&self) -> Option<Kind<'_>> {
        let mut kinds = [
            self.threshold.as_ref().map(Kind::Threshold),
            self.burn_rate.as_ref().map(Kind::BurnRate),
            self.consecutive.as_ref().map(Kind::Consecutive),
            self.status.as_ref().map(Kind::Status),
            self.latency.as_ref().map(Kind::Latency),
        ]
        .into_iter()
        .flatten();
        let first = kinds.next()?;
        kinds.next().is_none().then_some(first)
    }

    /// The longest window the rule reads.
    pub fn longest_window(&self) -> Duration {
        match self.kind() {
            Some(Kind::Threshold(t)) => t.window.get(),
            Some(Kind::Latency(l)) => l.window.get(),
            Some(Kind::BurnRate(b)) => b
                .windows
                .iter()
                .map(|w| w.long.get().max(w.short.get()))
                .max()
                .unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn validate(&self, v: &mut Validator, at: &str) {
        if !is_label_name(&self.name) {
            v.error(
                &format!("{at}::name"),
                "must be a label-safe name: letters, digits and `_`, not starting with a digit",
            );
        }
        let set = [
            self.threshold.is_some(),
            self.burn_rate.is_some(),
            self.consecutive.is_some(),
            self.status.is_some(),
            self.latency.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            v.error(
                at,
                "must have exactly one of `threshold`, `burn_rate`, `consecutive`, `status` or `latency`",
            );
        }
        for k in self.labels.keys() {
            if !is_label_name(k) {
                v.error(
                    &format!("{at}::labels::{k}"),
                    "label names must be letters, digits and `_`, not starting with a digit",
                );
            }
        }
        for k in self.annotations.keys() {
            if !is_label_name(k) {
                v.error(
                    &format!("{at}::annotations::{k}"),
                    "annotation names must be letters, digits and `_`, not starting with a digit",
                );
            }
        }
        if let Some(t) = &self.threshold {
            let at = format!("{at}::threshold");
            match (t.error_ratio, t.value) {
                (Some(r), None) => {
                    if !(0.0..1.0).contains(&r) {
                        v.error(&format!("{at}::error_ratio"), "must be at least 0 and below 1, e.g. 0.05");
                    }
                    if let Some(rr) = t.resolve_error_ratio {
                        if !(0.0..=r).contains(&rr) {
                            v.error(
                                &format!("{at}::resolve_error_ratio"),
                                "must be between 0 and `error_ratio`",
                            );
                        }
                    }
                    if t.metric.is_some() {
                        v.error(&format!("{at}::metric"), "goes with `value`, not with `error_ratio`");
                    }
                    if t.logins && t.source != SourceFilter::All {
                        v.error(
                            &format!("{at}::source"),
                            "does not apply to `logins`: tenant logs see every login, leave `source` out",
                        );
                    }
                }
                (None, Some(x)) => {
                    if !x.is_finite() {
                        v.error(&format!("{at}::value"), "must be a finite number");
                    }
                    if t.metric.as_deref().is_none_or(str::is_empty) {
                        v.error(&format!("{at}::metric"), "is required with `value`: the metric to compare");
                    }
                    if t.logins {
                        v.error(&format!("{at}::logins"), "goes with `error_ratio`, not with `value`");
                    }
                }
                _ => v.error(&at, "needs exactly one of `error_ratio` or `value`"),
            }
        }
        if let Some(b) = &self.burn_rate {
            let at = format!("{at}::burn_rate");
            if !(50.0..100.0).contains(&b.objective) {
                v.error(
                    &format!("{at}::objective"),
                    "must be a percentage from 50 to below 100, e.g. 99.9",
                );
            }
            if b.windows.is_empty() {
                v.error(&format!("{at}::windows"), "must list at least one window pair");
            }
            for (i, w) in b.windows.iter().enumerate() {
                if w.short >= w.long {
                    v.error(&format!("{at}::windows::{i}::short"), "must be shorter than `long`");
                }
                if !(w.factor.is_finite() && w.factor > 0.0) {
                    v.error(&format!("{at}::windows::{i}::factor"), "must be a positive number, e.g. 14.4");
                }
                if !is_label_value(&w.severity) {
                    v.error(&format!("{at}::windows::{i}::severity"), "must not be empty");
                }
            }
            if b.slower_than.is_some_and(|d| d.is_zero()) {
                v.error(&format!("{at}::slower_than"), "must be longer than zero, e.g. `1s`");
            }
        }
        if let Some(l) = &self.latency {
            l.validate(v, &format!("{at}::latency"));
        }
        if let Some(s) = &self.status {
            if !(1..=3).contains(&s.min_indicator) {
                v.error(
                    &format!("{at}::status::min_indicator"),
                    "must be 1 (minor), 2 (major) or 3 (critical)",
                );
            }
        }
    }
}

impl Latency {
    /// The bounds the store keeps slow-call counts for: the bound of a `share` rule.
    pub fn share_bound(&self) -> Option<Duration> {
        self.share.map(|_| self.slower_than)
    }

    fn validate(&self, v: &mut Validator, at: &str) {
        if self.slower_than.is_zero() {
            v.error(&format!("{at}::slower_than"), "is required: the bound, e.g. `500ms`");
        }
        match (self.quantile, self.share) {
            (Some(_), None) => {
                if self.resolve_share.is_some() {
                    v.error(&format!("{at}::resolve_share"), "goes with `share`; use `resolve_below` with `quantile`");
                }
                if self.resolve_below.is_some_and(|r| r > self.slower_than) {
                    v.error(&format!("{at}::resolve_below"), "must be at most `slower_than`");
                }
            }
            (None, Some(s)) => {
                if !(0.0..1.0).contains(&s) {
                    v.error(&format!("{at}::share"), "must be at least 0 and below 1, e.g. 0.1");
                }
                if let Some(r) = self.resolve_share {
                    if !(0.0..=s).contains(&r) {
                        v.error(&format!("{at}::resolve_share"), "must be between 0 and `share`");
                    }
                }
                if self.resolve_below.is_some() {
                    v.error(&format!("{at}::resolve_below"), "goes with `quantile`; use `resolve_share` with `share`");
                }
            }
            _ => v.error(at, "needs exactly one of `quantile` (p50, p90, p95, p99) or `share`"),
        }
    }
}

pub fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn is_label_value(s: &str) -> bool {
    !s.trim().is_empty()
}

/// An attribute key as a label name: every character outside `[A-Za-z0-9_]` becomes `_`
/// (`synthetic.check` -> `synthetic_check`), as the Prometheus conversion does.
pub fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}
