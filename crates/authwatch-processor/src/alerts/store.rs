//! What the alerts connector remembers of the metrics it has seen: dependency counters as
//! running totals with a bounded history, probe runs, status-page indicators and the values of
//! metrics that value rules read. Latency rules read the `http.client.request.duration`
//! histogram the same way ([`latency`]).
//!
//! Points are read idempotently by their timestamps: the same data comes on the live lane and
//! again on the normal lane (see `authwatch_core::consume`), and a batch may be re-sent. A point
//! not newer than the last one read of its series adds nothing; a cumulative counter or
//! histogram whose start time moves on was reset; a delta point of a series also sent
//! cumulatively (an `error_rate` connector exporting `delta` while its live lane sends
//! cumulative points) is left to the cumulative points ([`cumulative`]).

mod cumulative;
mod latency;
mod logins;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, NumberDataPoint,
};
use authwatch_core::semconv;

use authwatch_core::data::{attr_str, find_str};
use authwatch_core::semconv::{ErrorClass, Source};

use super::evidence::{outcome_name, Evidence};
use cumulative::{series_id, Cumulative, Seen};
pub use latency::{Durations, LatencyNeeds};
pub use logins::LoginIncrease;
use latency::Pending;

/// Gauge 1/0 per probe run (the `synthetic` receiver).
pub const PROBE_SUCCESS: &str = semconv::PROBE_SUCCESS;
/// Attribute: the probe check's name.
pub const SYNTHETIC_CHECK: &str = semconv::SYNTHETIC_CHECK;
/// Probe runs remembered per check.
const MAX_RUNS: usize = 1024;
/// Samples remembered per series of a value rule.
const MAX_VALUES: usize = 4096;

/// Labels of a series: sorted `(key, value)` pairs of its string attributes.
pub type LabelSet = BTreeMap<String, String>;

/// Running totals of one dependency and source, with their history.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: f64,
    pub errors: f64,
    /// Errors of the provider-side classes (server_error, timeout, network).
    pub provider_errors: f64,
    /// `(time, requests, errors, provider_errors)`, oldest first, at most one per second.
    samples: VecDeque<(Duration, f64, f64, f64)>,
}

/// Increase over a window: `(requests, errors, provider_errors)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Increase {
    pub requests: f64,
    pub errors: f64,
    pub provider_errors: f64,
}

impl Increase {
    pub fn ratio(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }
    fn add(&mut self, o: Increase) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.provider_errors += o.provider_errors;
    }
}

impl Counters {
    fn sample(&mut self, now: Duration, keep: Duration) {
        let s = (now, self.requests, self.errors, self.provider_errors);
        match self.samples.back_mut() {
            Some(last) if last.0.as_secs() == now.as_secs() => *last = s,
            _ => self.samples.push_back(s),
        }
        // Keep one sample at or before the start of the longest window as its baseline.
        let cutoff = now.saturating_sub(keep);
        while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
            self.samples.pop_front();
        }
    }

    /// What was added during the window ending now. Before the first sample totals were zero.
    pub fn increase(&self, now: Duration, window: Duration) -> Increase {
        let start = now.saturating_sub(window);
        let idx = self.samples.partition_point(|s| s.0 <= start);
        let base = if idx == 0 || now < window {
            (0.0, 0.0, 0.0)
        } else {
            let s = self.samples[idx - 1];
            (s.1, s.2, s.3)
        };
        Increase {
            requests: self.requests - base.0,
            errors: self.errors - base.1,
            provider_errors: self.provider_errors - base.2,
        }
    }
}

/// One probe run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub at: Duration,
    pub ok: bool,
    /// Its `synthetic.outcome`, when the probe's `authwatch.probe.runs` counter said it.
    pub outcome: Option<&'static str>,
}

/// Probe runs of one check.
#[derive(Debug, Default)]
pub struct Probe {
    /// Oldest first.
    pub runs: VecDeque<Run>,
    last_point_time: u64,
    pub consecutive_failures: u64,
    pub consecutive_successes: u64,
}

/// A status page's last indicator.
#[derive(Debug, Clone, Copy, Default)]
pub struct Status {
    pub indicator: i64,
    pub up: bool,
    /// The time of the point read (Unix ns; 0 when unknown).
    time: u64,
}

#[derive(Debug, Default)]
pub struct Store {
    pub counters: BTreeMap<(String, Source), Counters>,
    /// The last point read per cumulative counter series (also `authwatch.probe.runs`).
    last_cumulative: Cumulative<f64>,
    /// Time (Unix ns) of the last point read per metric and series of value rules.
    value_times: HashMap<(String, LabelSet), u64>,
    pub probes: BTreeMap<String, Probe>,
    pub status: BTreeMap<String, Status>,
    /// Metric name -> series -> `(time, value)` history (only metrics that rules read).
    pub values: HashMap<String, BTreeMap<LabelSet, VecDeque<(Duration, f64)>>>,
    /// How far back counter histories reach (the longest window any rule uses).
    pub keep: Duration,
    /// Duration histograms per dependency and source (latency rules only).
    pub durations: BTreeMap<(String, Source), Durations>,
    /// Per dependency, source and bound (nanoseconds): calls (`requests`) and calls slower than
    /// the bound or marked degraded (`errors`).
    pub slow: BTreeMap<(String, Source, u64), Counters>,
    latency: LatencyNeeds,
    /// The last point read per cumulative duration histogram series.
    last_buckets: Cumulative<Vec<u64>>,
    /// Kinds of failures, endpoints and times, for verdicts.
    pub evidence: Evidence,
    /// Logins from tenant logs, per dependency.
    pub logins: logins::Logins,
}

fn num(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) if d.is_finite() => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
        _ => None,
    }
}

/// The attributes of a counter point that the store reads.
struct PointKeys<'a> {
    dep: Option<&'a str>,
    source: Source,
    class: Option<&'a str>,
    endpoint: Option<&'a str>,
}

fn point_keys(p: &NumberDataPoint) -> PointKeys<'_> {
    let mut k = PointKeys {
        dep: None,
        source: Source::Traffic,
        class: None,
        endpoint: None,
    };
    for kv in &p.attributes {
        match kv.key.as_str() {
            semconv::DEPENDENCY => k.dep = attr_str(&kv.value),
            semconv::SOURCE if attr_str(&kv.value) == Some("probe") => k.source = Source::Probe,
            semconv::ERROR_CLASS => k.class = attr_str(&kv.value),
            semconv::ENDPOINT => k.endpoint = attr_str(&kv.value),
            _ => {}
        }
    }
    k
}

pub fn labels(attrs: &[KeyValue]) -> LabelSet {
    attrs
        .iter()
        .filter_map(|kv| attr_str(&kv.value).map(|v| (kv.key.clone(), v.to_owned())))
        .collect()
}

impl Store {
    pub fn new(
        keep: Duration,
        value_metrics: impl IntoIterator<Item = String>,
        latency: LatencyNeeds,
    ) -> Self {
        Store {
            keep,
            latency,
            values: value_metrics
                .into_iter()
                .map(|m| (m, BTreeMap::new()))
                .collect(),
            ..Default::default()
        }
    }

    /// Takes in one metrics request.
    pub fn ingest(&mut self, req: &ExportMetricsServiceRequest, now: Duration) {
        let mut touched = false;
        let mut logins_touched = false;
        let mut pending = Pending::new();
        let mut outcomes: Vec<(String, &'static str, u64)> = Vec::new();
        for m in req
            .resource_metrics
            .iter()
            .flat_map(|r| &r.scope_metrics)
            .flat_map(|s| &s.metrics)
        {
            let name = m.name.as_str();
            match (name, &m.data) {
                (semconv::DEPENDENCY_REQUESTS | semconv::DEPENDENCY_ERRORS, Some(metric::Data::Sum(s))) => {
                    let delta = s.aggregation_temporality == AggregationTemporality::Delta as i32;
                    for p in &s.data_points {
                        self.counter_point(name, p, delta, now);
                    }
                    touched = true;
                }
                (semconv::HTTP_CLIENT_REQUEST_DURATION, Some(metric::Data::Histogram(h)))
                    if self.latency.any =>
                {
                    let delta = h.aggregation_temporality == AggregationTemporality::Delta as i32;
                    for p in &h.data_points {
                        self.duration_point(p, delta, &mut pending);
                    }
                }
                (semconv::DEPENDENCY_DEGRADED, Some(metric::Data::Sum(s))) if self.latency.any => {
                    let delta = s.aggregation_temporality == AggregationTemporality::Delta as i32;
                    for p in &s.data_points {
                        let k = point_keys(p);
                        let Some(dep) = k.dep else { continue };
                        let Some(inc) = self.increment(name, p, delta) else { continue };
                        pending.entry((dep.to_owned(), k.source)).or_default().2 += inc;
                    }
                }
                (semconv::LOGINS, Some(metric::Data::Sum(s))) => {
                    logins_touched |= self.logins_sum(s);
                }
                (semconv::LOGINS_USERS_AFFECTED, Some(metric::Data::Gauge(g))) => {
                    for p in &g.data_points {
                        self.users_point(p);
                    }
                }
                (semconv::PROBE_RUNS, Some(metric::Data::Sum(s))) => {
                    for p in &s.data_points {
                        if let Some(o) = self.probe_runs_point(p) {
                            outcomes.push(o);
                        }
                    }
                }
                (PROBE_SUCCESS, Some(metric::Data::Gauge(g))) => {
                    for p in &g.data_points {
                        self.probe_point(p, now);
                    }
                }
                (semconv::STATUS_INDICATOR, Some(metric::Data::Gauge(g))) => {
                    for p in &g.data_points {
                        let page = find_str(&p.attributes, semconv::STATUS_PAGE)
                            .unwrap_or("")
                            .to_owned();
                        if let Some(v) = num(p) {
                            let st = self.status.entry(page).or_default();
                            // A copy of an older poll (the other lane) does not undo a newer one.
                            if p.time_unix_nano != 0 && p.time_unix_nano < st.time {
                                continue;
                            }
                            st.time = p.time_unix_nano;
                            st.indicator = v as i64;
                            st.up = true;
                        }
                    }
                }
                _ => {}
            }
            if let Some(series) = self.values.get_mut(name) {
                let points: &[NumberDataPoint] = match &m.data {
                    Some(metric::Data::Gauge(g)) => &g.data_points,
                    Some(metric::Data::Sum(s)) => &s.data_points,
                    _ => &[],
                };
                for p in points {
                    if let Some(v) = num(p) {
                        let labels = labels(&p.attributes);
                        if p.time_unix_nano != 0 {
                            let last = self
                                .value_times
                                .entry((name.to_owned(), labels.clone()))
                                .or_default();
                            if p.time_unix_nano <= *last {
                                continue;
                            }
                            *last = p.time_unix_nano;
                        }
                        let h = series.entry(labels).or_default();
                        h.push_back((now, v));
                        if h.len() > MAX_VALUES {
                            h.pop_front();
                        }
                    }
                }
            }
        }
        if !pending.is_empty() {
            self.apply_durations(pending, now);
        }
        if touched {
            for c in self.counters.values_mut() {
                c.sample(now, self.keep);
            }
        }
        if logins_touched {
            self.sample_logins(now);
        }
        // The outcome of each new failed run: the runs counter that grew with it.
        for (check, outcome, n) in outcomes {
            if outcome == semconv::SYNTHETIC_OUTCOME_SUCCESS {
                continue;
            }
            if let Some(p) = self.probes.get_mut(&check) {
                for r in p
                    .runs
                    .iter_mut()
                    .rev()
                    .filter(|r| !r.ok && r.outcome.is_none())
                    .take(n as usize)
                {
                    r.outcome = Some(outcome);
                }
            }
        }
    }

    /// `(check, outcome, new runs)` when a check's runs counter of one outcome grew.
    fn probe_runs_point(&mut self, p: &NumberDataPoint) -> Option<(String, &'static str, u64)> {
        let v = num(p)?;
        let check = find_str(&p.attributes, SYNTHETIC_CHECK)?;
        let outcome = outcome_name(find_str(&p.attributes, semconv::SYNTHETIC_OUTCOME)?);
        let id = series_id(semconv::PROBE_RUNS, &p.attributes);
        let inc = match self.last_cumulative.read(id, p.start_time_unix_nano, p.time_unix_nano, v) {
            Seen::After(l) if v >= l => v - l,
            // First sight, or a restarted receiver: the run that just happened (earlier runs
            // were seen as gauges without an outcome, if at all).
            Seen::First | Seen::Reset if v >= 1.0 => 1.0,
            // A copy already read (the other lane), a late point, or a reset seen as a drop.
            _ => 0.0,
        };
        (inc >= 1.0).then(|| (check.to_owned(), outcome, inc.min(MAX_RUNS as f64) as u64))
    }

    /// The increase of a counter point since the last point read of its series (delta points
    /// are increases); `None` when the point adds nothing (see [`cumulative`]).
    fn increment(&mut self, name: &str, p: &NumberDataPoint, delta: bool) -> Option<f64> {
        let v = num(p)?;
        if delta {
            // The same series read cumulatively (from the live lane) already counted this.
            if self.last_cumulative.has(name, &p.attributes) {
                return None;
            }
            return Some(v);
        }
        let id = series_id(name, &p.attributes);
        match self.last_cumulative.read(id, p.start_time_unix_nano, p.time_unix_nano, v) {
            Seen::Stale => None,
            Seen::After(l) if v >= l => Some(v - l),
            // First sight (counted since the error_rate connector started), a new start time,
            // or a drop (a reset).
            _ => Some(v),
        }
    }

    fn counter_point(&mut self, name: &str, p: &NumberDataPoint, delta: bool, now: Duration) {
        let k = point_keys(p);
        let Some(dep) = k.dep else { return };
        let Some(inc) = self.increment(name, p, delta) else { return };
        let (source, class, endpoint) = (k.source, k.class, k.endpoint);
        let errors = name != semconv::DEPENDENCY_REQUESTS;
        match source {
            Source::Probe => {
                if let Some(e) = endpoint {
                    self.evidence.probe_endpoint(dep, e);
                }
            }
            Source::Traffic => self.evidence.traffic(dep, endpoint, class, errors, inc, now),
        }
        let c = self.counters.entry((dep.to_owned(), source)).or_default();
        if !errors {
            c.requests += inc;
        } else {
            c.errors += inc;
            let provider = ErrorClass::ALL
                .iter()
                .any(|k| k.is_provider_side() && Some(k.as_str()) == class);
            if provider {
                c.provider_errors += inc;
            }
        }
    }

    fn probe_point(&mut self, p: &NumberDataPoint, now: Duration) {
        let Some(v) = num(p) else { return };
        let check = find_str(&p.attributes, SYNTHETIC_CHECK)
            .unwrap_or("")
            .to_owned();
        let probe = self.probes.entry(check).or_default();
        // One point per run: a point not newer than the last run's (the same run from the
        // other lane, a re-sent batch) is not a new run.
        if p.time_unix_nano != 0 && p.time_unix_nano <= probe.last_point_time {
            return;
        }
        probe.last_point_time = p.time_unix_nano;
        let ok = v >= 1.0;
        probe.runs.push_back(Run {
            at: now,
            ok,
            outcome: None,
        });
        if probe.runs.len() > MAX_RUNS {
            probe.runs.pop_front();
        }
        if ok {
            probe.consecutive_successes += 1;
            probe.consecutive_failures = 0;
        } else {
            probe.consecutive_failures += 1;
            probe.consecutive_successes = 0;
        }
    }

    /// Increase of one dependency (or all) and source (or both) over a window.
    pub fn increase(
        &self,
        dep: Option<&str>,
        source: Option<Source>,
        now: Duration,
        window: Duration,
    ) -> Increase {
        let mut total = Increase::default();
        for ((d, s), c) in &self.counters {
            if dep.is_some_and(|x| x != d) || source.is_some_and(|x| x != *s) {
                continue;
            }
            total.add(c.increase(now, window));
        }
        total
    }

    /// Dependencies seen so far.
    pub fn dependencies(&self) -> Vec<String> {
        let mut v: Vec<String> = self.counters.keys().map(|(d, _)| d.clone()).collect();
        v.dedup();
        v
    }
}
