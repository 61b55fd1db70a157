//! What the alerts connector remembers of the metrics it has seen: dependency counters as
//! running totals with a bounded history, probe runs, status-page indicators and the values of
//! metrics that value rules read.
//!
//! Points are read idempotently by their timestamps: the same data comes on the live lane and
//! again on the normal lane (see `authwatch_core::consume`), and a batch may be re-sent. A point
//! not newer than the last one read of its series adds nothing; a cumulative counter whose start
//! time moves on was reset; a delta point of a series also sent cumulatively (an `error_rate`
//! connector exporting `delta` while its live lane sends cumulative counters) is left to the
//! cumulative points.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{metric, number_data_point, AggregationTemporality, NumberDataPoint};
use authwatch_core::semconv;

use authwatch_core::data::{attr_str, find_str};
use authwatch_core::semconv::{ErrorClass, Source};

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

/// Probe runs of one check.
#[derive(Debug, Default)]
pub struct Probe {
    /// `(time, success)`, oldest first.
    pub runs: VecDeque<(Duration, bool)>,
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

/// The last point read of a cumulative counter series.
#[derive(Debug, Clone, Copy)]
struct Cumulative {
    start: u64,
    time: u64,
    value: f64,
}

/// Series key of a counter: metric name and `(key, value)` attributes.
type SeriesId = (String, Vec<(String, String)>);

#[derive(Debug, Default)]
pub struct Store {
    pub counters: BTreeMap<(String, Source), Counters>,
    last_cumulative: HashMap<SeriesId, Cumulative>,
    /// Time (Unix ns) of the last point read per metric and series of value rules.
    value_times: HashMap<(String, LabelSet), u64>,
    pub probes: BTreeMap<String, Probe>,
    pub status: BTreeMap<String, Status>,
    /// Metric name -> series -> `(time, value)` history (only metrics that rules read).
    pub values: HashMap<String, BTreeMap<LabelSet, VecDeque<(Duration, f64)>>>,
    /// How far back counter histories reach (the longest window any rule uses).
    pub keep: Duration,
}

fn num(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) if d.is_finite() => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
        _ => None,
    }
}

pub fn labels(attrs: &[KeyValue]) -> LabelSet {
    attrs
        .iter()
        .filter_map(|kv| attr_str(&kv.value).map(|v| (kv.key.clone(), v.to_owned())))
        .collect()
}

impl Store {
    pub fn new(keep: Duration, value_metrics: impl IntoIterator<Item = String>) -> Self {
        Store {
            keep,
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
                        self.counter_point(name, p, delta);
                    }
                    touched = true;
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
        if touched {
            for c in self.counters.values_mut() {
                c.sample(now, self.keep);
            }
        }
    }

    fn counter_point(&mut self, name: &str, p: &NumberDataPoint, delta: bool) {
        let Some(v) = num(p) else { return };
        let mut dep = None;
        let mut source = Source::Traffic;
        let mut class = None;
        for kv in &p.attributes {
            match kv.key.as_str() {
                semconv::DEPENDENCY => dep = attr_str(&kv.value),
                semconv::SOURCE if attr_str(&kv.value) == Some("probe") => source = Source::Probe,
                semconv::ERROR_CLASS => class = attr_str(&kv.value),
                _ => {}
            }
        }
        let Some(dep) = dep else { return };
        let series_id = || -> SeriesId {
            (
                name.to_owned(),
                p.attributes
                    .iter()
                    .map(|kv| (kv.key.clone(), attr_str(&kv.value).unwrap_or("").to_owned()))
                    .collect(),
            )
        };
        let inc = if delta {
            // The same series read cumulatively (from the live lane) already counted this.
            if !self.last_cumulative.is_empty() && self.last_cumulative.contains_key(&series_id()) {
                return;
            }
            v
        } else {
            let point = Cumulative {
                start: p.start_time_unix_nano,
                time: p.time_unix_nano,
                value: v,
            };
            match self.last_cumulative.entry(series_id()) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    // First sight: counted since the error_rate connector started.
                    e.insert(point);
                    v
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let last = *e.get();
                    let known = |t: u64| t != 0;
                    let same_start = point.start == last.start;
                    if same_start && known(point.time) && known(last.time) && point.time <= last.time {
                        // Not newer than what was read: a copy from the other lane, or stale.
                        return;
                    }
                    if known(point.start) && known(last.start) && point.start < last.start {
                        // A point of the series before its last reset.
                        return;
                    }
                    e.insert(point);
                    if same_start && v >= last.value {
                        v - last.value
                    } else {
                        // A reset: the series started again.
                        v
                    }
                }
            }
        };
        let c = self.counters.entry((dep.to_owned(), source)).or_default();
        if name == semconv::DEPENDENCY_REQUESTS {
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
        probe.runs.push_back((now, ok));
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
