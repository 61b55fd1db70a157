//! The exporter's state: every series received, translated to Prometheus names and labels, with
//! the time it was last updated (the Collector's `accumulator.go`); [`labels`] turns attributes
//! into labels and [`exposition`] writes the text exposition.

mod exposition;
mod labels;

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint,
};
use authwatch_core::otlp::resource::v1::Resource;
use tokio::time::Instant;

use super::naming::{metric_name, Shape};
use labels::{identity_labels, merge, to_labels, IDENTITY_KEYS};

/// Sorted `(name, value)` label pairs.
pub type Labels = Vec<(String, String)>;

/// OTLP `DataPointFlags.FLAG_NO_RECORDED_VALUE`: the series ended (a staleness marker).
const NO_RECORDED_VALUE: u32 = 1;

/// How incoming metrics become series.
#[derive(Debug, Clone)]
pub struct Options {
    pub namespace: String,
    pub const_labels: Labels,
    pub resource_to_telemetry: bool,
    pub suffixes: bool,
    pub send_timestamps: bool,
    pub expiration: Duration,
}

/// Why a data point was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Exponential histograms have no classic Prometheus form; they are not converted.
    ExponentialHistogram,
    /// The name is already used by a metric of another type.
    TypeConflict,
    /// Bucket counts that do not match the bounds, or a point without a value.
    Malformed,
}

impl Dropped {
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::ExponentialHistogram => "exponential_histogram",
            Dropped::TypeConflict => "type_conflict",
            Dropped::Malformed => "malformed",
        }
    }
}

/// What one `accept` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stored: usize,
    pub dropped: Vec<(Dropped, usize)>,
}

impl Outcome {
    fn drop(&mut self, why: Dropped, n: usize) {
        if n == 0 {
            return;
        }
        match self.dropped.iter_mut().find(|(w, _)| *w == why) {
            Some((_, c)) => *c += n,
            None => self.dropped.push((why, n)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Gauge,
    Counter,
    Histogram,
    Summary,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Gauge => "gauge",
            Type::Counter => "counter",
            Type::Histogram => "histogram",
            Type::Summary => "summary",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Number(f64),
    Histogram {
        bounds: Vec<f64>,
        /// Per bucket (not cumulative), `bounds.len() + 1` of them.
        counts: Vec<u64>,
        sum: Option<f64>,
        count: u64,
    },
    Summary {
        quantiles: Vec<(f64, f64)>,
        sum: f64,
        count: u64,
    },
}

#[derive(Debug)]
struct Series {
    value: Value,
    /// The point's own time, Unix nanoseconds.
    time_ns: u64,
    /// When the series started counting (the point's start time; for deltas, the first
    /// point's), Unix nanoseconds; `0` when unknown. OpenMetrics' `_created`.
    start_ns: u64,
    /// When this exporter last updated it.
    updated: Instant,
}

#[derive(Debug)]
struct Family {
    ty: Type,
    help: String,
    series: BTreeMap<Labels, Series>,
}

/// Every series, by family name.
#[derive(Debug)]
pub struct Store {
    opts: Options,
    families: BTreeMap<String, Family>,
    /// `target_info` series, by labels.
    targets: BTreeMap<Labels, Instant>,
}

impl Store {
    pub fn new(opts: Options) -> Self {
        Store {
            opts,
            families: BTreeMap::new(),
            targets: BTreeMap::new(),
        }
    }

    /// Adds one resource's metrics.
    pub fn accept(
        &mut self,
        resource: Option<&Resource>,
        metrics: &[&Metric],
        now: Instant,
    ) -> Outcome {
        let mut out = Outcome::default();
        let res_attrs: &[KeyValue] = resource.map(|r| r.attributes.as_slice()).unwrap_or(&[]);
        let identity = identity_labels(res_attrs);
        self.note_target(res_attrs, &identity, now);
        let extra: Labels = if self.opts.resource_to_telemetry {
            to_labels(res_attrs)
        } else {
            Vec::new()
        };
        for m in metrics {
            self.accept_metric(m, &identity, &extra, now, &mut out);
        }
        out
    }

    fn note_target(&mut self, attrs: &[KeyValue], identity: &Labels, now: Instant) {
        let others: Vec<KeyValue> = attrs
            .iter()
            .filter(|kv| !IDENTITY_KEYS.contains(&kv.key.as_str()))
            .cloned()
            .collect();
        if others.is_empty() {
            return;
        }
        let mut labels = merge(to_labels(&others), identity, true);
        labels = merge(labels, &self.opts.const_labels, false);
        self.targets.insert(labels, now);
    }

    fn accept_metric(
        &mut self,
        m: &Metric,
        identity: &Labels,
        extra: &Labels,
        now: Instant,
        out: &mut Outcome,
    ) {
        let Some(data) = &m.data else {
            return;
        };
        let (shape, ty, delta) = match data {
            metric::Data::Gauge(_) => (Shape::Gauge, Type::Gauge, false),
            metric::Data::Sum(s) => {
                let delta = s.aggregation_temporality == AggregationTemporality::Delta as i32;
                if s.is_monotonic {
                    (Shape::Counter, Type::Counter, delta)
                } else {
                    (Shape::UpDown, Type::Gauge, delta)
                }
            }
            metric::Data::Histogram(h) => (
                Shape::Histogram,
                Type::Histogram,
                h.aggregation_temporality == AggregationTemporality::Delta as i32,
            ),
            metric::Data::Summary(_) => (Shape::Summary, Type::Summary, false),
            metric::Data::ExponentialHistogram(e) => {
                out.drop(Dropped::ExponentialHistogram, e.data_points.len());
                return;
            }
        };
        let name = metric_name(
            &m.name,
            &m.unit,
            shape,
            &self.opts.namespace,
            self.opts.suffixes,
        );
        let help = if m.description.trim().is_empty() {
            m.name.clone()
        } else {
            m.description.clone()
        };
        let family = self.families.entry(name).or_insert_with(|| Family {
            ty,
            help,
            series: BTreeMap::new(),
        });
        let points = match data {
            metric::Data::Gauge(g) => g.data_points.len(),
            metric::Data::Sum(s) => s.data_points.len(),
            metric::Data::Histogram(h) => h.data_points.len(),
            metric::Data::Summary(s) => s.data_points.len(),
            metric::Data::ExponentialHistogram(_) => 0,
        };
        if family.ty != ty {
            out.drop(Dropped::TypeConflict, points);
            return;
        }
        let reserved: &[&str] = match ty {
            Type::Histogram => &["le"],
            Type::Summary => &["quantile"],
            _ => &[],
        };
        let labels_of = |attrs: &[KeyValue]| -> Labels {
            let mut l = merge(to_labels(attrs), extra, false);
            l = merge(l, identity, true);
            l = merge(l, &self.opts.const_labels, false);
            l.retain(|(k, _)| !reserved.contains(&k.as_str()));
            l
        };
        match data {
            metric::Data::Gauge(g) => {
                for p in &g.data_points {
                    store_number(family, labels_of(&p.attributes), p, false, now, out);
                }
            }
            metric::Data::Sum(s) => {
                for p in &s.data_points {
                    store_number(family, labels_of(&p.attributes), p, delta, now, out);
                }
            }
            metric::Data::Histogram(h) => {
                for p in &h.data_points {
                    store_histogram(family, labels_of(&p.attributes), p, delta, now, out);
                }
            }
            metric::Data::Summary(s) => {
                for p in &s.data_points {
                    let labels = labels_of(&p.attributes);
                    if p.flags & NO_RECORDED_VALUE != 0 {
                        family.series.remove(&labels);
                        continue;
                    }
                    let value = Value::Summary {
                        quantiles: p
                            .quantile_values
                            .iter()
                            .map(|q| (q.quantile, q.value))
                            .collect(),
                        sum: p.sum,
                        count: p.count,
                    };
                    put(family, labels, value, (p.start_time_unix_nano, p.time_unix_nano), now);
                    out.stored += 1;
                }
            }
            metric::Data::ExponentialHistogram(_) => {}
        }
    }

    /// Drops series (and `target_info`) not updated within the expiration.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.opts.expiration;
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < ttl;
        for f in self.families.values_mut() {
            f.series.retain(|_, s| fresh(&s.updated));
        }
        self.families.retain(|_, f| !f.series.is_empty());
        self.targets.retain(|_, t| fresh(t));
    }

    /// Number of series held.
    #[cfg(test)]
    pub fn series_count(&self) -> usize {
        self.families
            .values()
            .map(|f| f.series.len())
            .sum::<usize>()
            + self.targets.len()
    }
}

/// Stores a series' value; `times` is the point's `(start, time)` in Unix nanoseconds.
fn put(family: &mut Family, labels: Labels, value: Value, times: (u64, u64), now: Instant) {
    let (start_ns, time_ns) = times;
    family.series.insert(
        labels,
        Series {
            value,
            time_ns,
            start_ns,
            updated: now,
        },
    );
}

fn store_number(
    family: &mut Family,
    labels: Labels,
    p: &NumberDataPoint,
    delta: bool,
    now: Instant,
    out: &mut Outcome,
) {
    if p.flags & NO_RECORDED_VALUE != 0 {
        family.series.remove(&labels);
        return;
    }
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => {
            out.drop(Dropped::Malformed, 1);
            return;
        }
    };
    out.stored += 1;
    match family.series.get_mut(&labels) {
        Some(s) if delta => {
            // Deltas add up into the cumulative value Prometheus expects.
            if let Value::Number(old) = &mut s.value {
                *old += v;
            }
            s.time_ns = s.time_ns.max(p.time_unix_nano);
            s.updated = now;
        }
        // An older point than the one held (out of order) only refreshes the series.
        Some(s) if p.time_unix_nano < s.time_ns => s.updated = now,
        _ => put(
            family,
            labels,
            Value::Number(v),
            (p.start_time_unix_nano, p.time_unix_nano),
            now,
        ),
    }
}

fn store_histogram(
    family: &mut Family,
    labels: Labels,
    p: &HistogramDataPoint,
    delta: bool,
    now: Instant,
    out: &mut Outcome,
) {
    if p.flags & NO_RECORDED_VALUE != 0 {
        family.series.remove(&labels);
        return;
    }
    let bounds = p.explicit_bounds.clone();
    let counts = if p.bucket_counts.is_empty() {
        // No buckets: everything is in the +Inf bucket.
        vec![0; bounds.len() + 1]
    } else {
        p.bucket_counts.clone()
    };
    if counts.len() != bounds.len() + 1 || bounds.iter().any(|b| b.is_nan()) {
        out.drop(Dropped::Malformed, 1);
        return;
    }
    out.stored += 1;
    let new = Value::Histogram {
        bounds,
        counts,
        sum: p.sum,
        count: p.count,
    };
    match family.series.get_mut(&labels) {
        Some(s) if delta => {
            match (&mut s.value, new) {
                (
                    Value::Histogram {
                        bounds: ob,
                        counts: oc,
                        sum: os,
                        count: on,
                    },
                    Value::Histogram {
                        bounds: nb,
                        counts: nc,
                        sum: ns,
                        count: nn,
                    },
                ) if *ob == nb => {
                    for (o, n) in oc.iter_mut().zip(nc) {
                        *o = o.saturating_add(n);
                    }
                    *os = match (*os, ns) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                    *on = on.saturating_add(nn);
                }
                // New bounds: start over from this point.
                (_, new) => s.value = new,
            }
            s.time_ns = s.time_ns.max(p.time_unix_nano);
            s.updated = now;
        }
        Some(s) if p.time_unix_nano < s.time_ns => s.updated = now,
        _ => put(
            family,
            labels,
            new,
            (p.start_time_unix_nano, p.time_unix_nano),
            now,
        ),
    }
}

