//! What latency rules read: the `http.client.request.duration` histogram as bucket totals with
//! history per dependency and source (kept for the longest `quantile` window) and, per bound a
//! rule uses, calls and slow calls as counters. Cumulative points are read once, by their
//! timestamps, like the counters (see [`super::cumulative`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use authwatch_core::data::attr_str;
use authwatch_core::otlp::metrics::v1::HistogramDataPoint;
use authwatch_core::semconv::{self, Source};

use super::cumulative::{series_id, Seen};
use super::{Increase, Store};

/// The duration histogram of one dependency and source: running bucket totals with history.
#[derive(Debug, Default)]
pub struct Durations {
    pub bounds: Vec<f64>,
    totals: Vec<f64>,
    /// `(time, totals)`, oldest first, at most one per second.
    samples: VecDeque<(Duration, Box<[f64]>)>,
}

impl Durations {
    fn add(&mut self, bounds: &[f64], inc: &[f64]) {
        if self.bounds.is_empty() && self.totals.is_empty() {
            self.bounds = bounds.to_vec();
            self.totals = vec![0.0; inc.len()];
        }
        // Points with other bounds (another producer) cannot be added up: left out.
        if self.bounds == bounds && self.totals.len() == inc.len() {
            for (t, i) in self.totals.iter_mut().zip(inc) {
                *t += i;
            }
        }
    }

    pub(super) fn sample(&mut self, now: Duration, keep: Duration) {
        let s = (now, self.totals.clone().into_boxed_slice());
        match self.samples.back_mut() {
            Some(last) if last.0.as_secs() == now.as_secs() => *last = s,
            _ => self.samples.push_back(s),
        }
        let cutoff = now.saturating_sub(keep);
        while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
            self.samples.pop_front();
        }
    }

    /// Calls per bucket during the window ending now.
    pub fn increase(&self, now: Duration, window: Duration) -> Vec<f64> {
        let start = now.saturating_sub(window);
        let idx = self.samples.partition_point(|s| s.0 <= start);
        match self.samples.get(idx.wrapping_sub(1)) {
            Some((_, base)) if idx > 0 && now >= window && base.len() == self.totals.len() => {
                self.totals.iter().zip(base.iter()).map(|(t, b)| t - b).collect()
            }
            _ => self.totals.clone(),
        }
    }
}

/// What the latency rules need: `quantile` windows and the bounds of `share` rules and latency
/// objectives.
#[derive(Debug, Clone, Default)]
pub struct LatencyNeeds {
    /// How far back bucket histories reach (the longest `quantile` window); zero: none kept.
    pub keep_buckets: Duration,
    /// Bounds (seconds) to count slow calls for.
    pub slow_bounds: Vec<Duration>,
    /// Whether any rule reads durations at all.
    pub any: bool,
}

/// One histogram request's increments of one dependency and source: bounds, calls per bucket,
/// and calls marked degraded.
pub(super) type Pending = BTreeMap<(String, Source), (Vec<f64>, Vec<f64>, f64)>;

impl Store {
    pub(super) fn duration_point(&mut self, p: &HistogramDataPoint, delta: bool, pending: &mut Pending) {
        let mut dep = None;
        let mut source = Source::Traffic;
        for kv in &p.attributes {
            match kv.key.as_str() {
                semconv::DEPENDENCY => dep = attr_str(&kv.value),
                semconv::SOURCE if attr_str(&kv.value) == Some("probe") => source = Source::Probe,
                _ => {}
            }
        }
        let Some(dep) = dep else { return };
        if p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
            return;
        }
        let name = semconv::HTTP_CLIENT_REQUEST_DURATION;
        let full = || p.bucket_counts.iter().map(|c| *c as f64).collect::<Vec<f64>>();
        let inc: Vec<f64> = if delta {
            // The same series read cumulatively (from the live lane) already counted this.
            if self.last_buckets.has(name, &p.attributes) {
                return;
            }
            full()
        } else {
            let id = series_id(name, &p.attributes);
            let (start, time) = (p.start_time_unix_nano, p.time_unix_nano);
            match self.last_buckets.read(id, start, time, p.bucket_counts.clone()) {
                Seen::Stale => return,
                Seen::After(l)
                    if l.len() == p.bucket_counts.len()
                        && p.bucket_counts.iter().zip(&l).all(|(a, b)| a >= b) =>
                {
                    p.bucket_counts.iter().zip(&l).map(|(a, b)| (a - b) as f64).collect()
                }
                // First sight, a new start time or a reset.
                _ => full(),
            }
        };
        let e = pending.entry((dep.to_owned(), source)).or_default();
        if e.1.is_empty() {
            e.0 = p.explicit_bounds.clone();
            e.1 = vec![0.0; inc.len()];
        }
        if e.0 == p.explicit_bounds {
            for (t, i) in e.1.iter_mut().zip(&inc) {
                *t += i;
            }
        }
    }

    /// Adds one request's duration increments; a call slower than a bound or marked degraded
    /// is slow (whichever counts more: both count the same calls above a bound).
    pub(super) fn apply_durations(&mut self, pending: Pending, now: Duration) {
        for ((dep, source), (bounds, inc, degraded)) in pending {
            let calls: f64 = inc.iter().sum();
            if !inc.is_empty() {
                self.durations
                    .entry((dep.clone(), source))
                    .or_default()
                    .add(&bounds, &inc);
            }
            for b in &self.latency.slow_bounds {
                let slow = super::super::histogram::slower_than(b.as_secs_f64(), &bounds, &inc)
                    .max(degraded);
                let key = (dep.clone(), source, u64::try_from(b.as_nanos()).unwrap_or(u64::MAX));
                let c = self.slow.entry(key).or_default();
                c.requests += calls;
                c.errors += slow;
            }
        }
        let keep = self.latency.keep_buckets;
        for d in self.durations.values_mut() {
            d.sample(now, keep);
        }
        for c in self.slow.values_mut() {
            c.sample(now, self.keep);
        }
    }

    /// Calls per bucket of one dependency (or all) and source (or both) over a window, with
    /// the bounds; `None` without histogram data.
    pub fn durations(
        &self,
        dep: Option<&str>,
        source: Option<Source>,
        now: Duration,
        window: Duration,
    ) -> Option<(Vec<f64>, Vec<f64>)> {
        let mut out: Option<(Vec<f64>, Vec<f64>)> = None;
        for ((d, s), h) in &self.durations {
            if dep.is_some_and(|x| x != d) || source.is_some_and(|x| x != *s) {
                continue;
            }
            let inc = h.increase(now, window);
            match &mut out {
                None => out = Some((h.bounds.clone(), inc)),
                Some((b, total)) if *b == h.bounds && total.len() == inc.len() => {
                    for (t, i) in total.iter_mut().zip(&inc) {
                        *t += i;
                    }
                }
                Some(_) => {}
            }
        }
        out
    }

    /// Calls (`requests`) and slow calls (`errors`) over a window for a bound.
    pub fn slow_increase(
        &self,
        dep: Option<&str>,
        source: Option<Source>,
        bound: Duration,
        now: Duration,
        window: Duration,
    ) -> Increase {
        let b = u64::try_from(bound.as_nanos()).unwrap_or(u64::MAX);
        let mut total = Increase::default();
        for ((d, s, kb), c) in &self.slow {
            if *kb != b || dep.is_some_and(|x| x != d) || source.is_some_and(|x| x != *s) {
                continue;
            }
            total.add(c.increase(now, window));
        }
        total
    }
}
