//! Prometheus/OpenMetrics text from what the pull reader collected: the exposition authwatch
//! served before it used the SDK, name for name. Counters get the `_total` suffix, histograms
//! `_sum`, `_count` and cumulative `_bucket{le=...}` lines, help texts a final period, and the
//! document ends with `# EOF`. Metrics are written in registration order, labels in the order
//! the component gave them, and a metric with no series is left out.

use std::collections::HashMap;
use std::fmt::Write as _;

use opentelemetry::KeyValue;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};

use super::instruments::{Declared, LabelOrder, SeriesKind};

/// One registered metric, as the encoder needs it.
pub(crate) struct Registered {
    pub name: String,
    pub help: String,
    pub kind: SeriesKind,
    pub order: Option<LabelOrder>,
    /// A histogram's series, shown at zero until the SDK has data for them.
    pub declared: Option<Declared>,
}

/// One series' text, with its label values (in label order) to sort by.
type Lines = Vec<(Vec<String>, String)>;

/// A sample value as Prometheus text writes it.
trait Sample: Copy {
    fn write(self, out: &mut String);
    fn as_f64(self) -> f64;
}

impl Sample for u64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Sample for i64 {
    fn write(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
}

impl Sample for f64 {
    fn write(self, out: &mut String) {
        write_f64(out, self);
    }
    fn as_f64(self) -> f64 {
        self
    }
}

fn write_f64(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        // Shortest round-trip form with a decimal point: `1.0`, `0.0007`, `1e16`.
        let _ = write!(out, "{v:?}");
    }
}

/// Encodes `rm` as OpenMetrics text, in the order and with the help of `registered`.
pub(crate) fn encode(registered: &[Registered], rm: &ResourceMetrics) -> String {
    let by_name: HashMap<&str, &Metric> = rm
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .map(|m| (m.name(), m))
        .collect();
    let mut out = String::new();
    for r in registered {
        let order = r
            .order
            .as_ref()
            .map(|o| o.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_default();
        let mut lines = Lines::new();
        if let Some(m) = by_name.get(r.name.as_str()) {
            match m.data() {
                AggregatedMetrics::U64(d) => write_data(&mut lines, r, &order, d),
                AggregatedMetrics::I64(d) => write_data(&mut lines, r, &order, d),
                AggregatedMetrics::F64(d) => write_data(&mut lines, r, &order, d),
            }
        }
        if let Some(declared) = &r.declared {
            zero_histograms(&mut lines, r, &order, declared);
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0));
        let body: String = lines.into_iter().map(|(_, l)| l).collect();
        if body.is_empty() {
            continue;
        }
        let kind = match r.kind {
            SeriesKind::Counter => "counter",
            SeriesKind::Gauge => "gauge",
            SeriesKind::Histogram => "histogram",
        };
        let _ = writeln!(out, "# HELP {} {}.", r.name, r.help);
        let _ = writeln!(out, "# TYPE {} {kind}", r.name);
        out.push_str(&body);
    }
    out.push_str("# EOF\n");
    out
}

fn write_data<T: Sample>(lines: &mut Lines, r: &Registered, order: &[String], d: &MetricData<T>) {
    match d {
        MetricData::Sum(s) => {
            let suffix = if s.is_monotonic() { "_total" } else { "" };
            for p in s.data_points() {
                let labels = ordered(p.attributes(), order);
                let mut l = String::new();
                sample_line(&mut l, &r.name, suffix, None, &labels, p.value());
                lines.push((values(&labels), l));
            }
        }
        MetricData::Gauge(g) => {
            for p in g.data_points() {
                let labels = ordered(p.attributes(), order);
                let mut l = String::new();
                sample_line(&mut l, &r.name, "", None, &labels, p.value());
                lines.push((values(&labels), l));
            }
        }
        MetricData::Histogram(h) => {
            for p in h.data_points() {
                let labels = ordered(p.attributes(), order);
                let mut l = String::new();
                let bounds: Vec<f64> = p.bounds().collect();
                let counts: Vec<u64> = p.bucket_counts().collect();
                histogram_lines(&mut l, &r.name, &labels, p.sum().as_f64(), &bounds, &counts);
                lines.push((values(&labels), l));
            }
        }
        // authwatch registers no exponential histograms.
        MetricData::ExponentialHistogram(_) => {}
    }
}

/// Declared histogram series the SDK has no data for yet (never observed), at zero.
fn zero_histograms(lines: &mut Lines, r: &Registered, order: &[String], declared: &Declared) {
    let present: Vec<Vec<String>> = lines.iter().map(|(k, _)| k.clone()).collect();
    declared(&mut |attrs, bounds| {
        let labels = ordered(attrs.iter(), order);
        let key = values(&labels);
        if present.contains(&key) {
            return;
        }
        let mut l = String::new();
        histogram_lines(&mut l, &r.name, &labels, 0.0, bounds, &[]);
        lines.push((key, l));
    });
}

fn values(labels: &[&KeyValue]) -> Vec<String> {
    labels
        .iter()
        .map(|kv| format!("{}={}", kv.key.as_str(), kv.value.as_str()))
        .collect()
}

/// `_sum`, `_count` and cumulative `_bucket` lines; `counts` are per bucket (missing ones 0),
/// the last one past the last bound.
fn histogram_lines(
    out: &mut String,
    name: &str,
    labels: &[&KeyValue],
    sum: f64,
    bounds: &[f64],
    counts: &[u64],
) {
    let total: u64 = counts.iter().sum();
    sample_line(out, name, "_sum", None, labels, sum);
    sample_line(out, name, "_count", None, labels, total);
    let mut cumulative = 0u64;
    for (i, bound) in bounds.iter().enumerate() {
        cumulative += counts.get(i).copied().unwrap_or(0);
        let mut le = String::new();
        write_f64(&mut le, *bound);
        sample_line(out, name, "_bucket", Some(&le), labels, cumulative);
    }
    sample_line(out, name, "_bucket", Some("+Inf"), labels, total);
}

/// A point's attributes in the metric's label order (unknown keys last, by name).
fn ordered<'a>(attrs: impl Iterator<Item = &'a KeyValue>, order: &[String]) -> Vec<&'a KeyValue> {
    let mut v: Vec<&KeyValue> = attrs.collect();
    v.sort_by_key(|kv| {
        let k = kv.key.as_str();
        (
            order.iter().position(|o| o == k).unwrap_or(usize::MAX),
            k.to_owned(),
        )
    });
    v
}

fn sample_line<T: Sample>(
    out: &mut String,
    name: &str,
    suffix: &str,
    le: Option<&str>,
    labels: &[&KeyValue],
    value: T,
) {
    out.push_str(name);
    out.push_str(suffix);
    if le.is_some() || !labels.is_empty() {
        out.push('{');
        let mut first = true;
        let mut label = |out: &mut String, k: &str, v: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape(out, v);
            out.push('"');
        };
        if let Some(le) = le {
            label(out, "le", le);
        }
        for kv in labels {
            label(out, kv.key.as_str(), &kv.value.as_str());
        }
        out.push('}');
    }
    out.push(' ');
    value.write(out);
    out.push('\n');
}

/// OpenMetrics label value escaping: backslash, double quote and line feed.
fn escape(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}
