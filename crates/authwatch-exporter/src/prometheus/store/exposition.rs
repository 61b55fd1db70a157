//! The text exposition: Prometheus 0.0.4 or OpenMetrics 1.0, with `target_info`.

use std::fmt::Write as _;

use super::{Labels, Series, Store, Type, Value};

impl Store {
    /// The Prometheus text exposition (0.0.4), or OpenMetrics 1.0 when `open_metrics`.
    pub fn encode(&self, open_metrics: bool) -> String {
        let mut out = String::new();
        let ts = |s: &Series| -> String {
            if self.opts.send_timestamps {
                format!(" {}", s.time_ns / 1_000_000)
            } else {
                String::new()
            }
        };
        // OpenMetrics' created timestamp of a counter, histogram or summary: when it started
        // at 0, so that a scraper that ingests it counts the series' first value as an increase.
        let created = |out: &mut String, base: &str, labels: &Labels, s: &Series| {
            if open_metrics && s.start_ns > 0 {
                let secs = s.start_ns as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "{base}_created{} {}{}",
                    fmt_labels(labels, None),
                    num(secs),
                    ts(s)
                );
            }
        };
        for (name, f) in &self.families {
            let family = if open_metrics && f.ty == Type::Counter {
                name.strip_suffix("_total").unwrap_or(name)
            } else {
                name.as_str()
            };
            let _ = writeln!(out, "# HELP {family} {}", escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {family} {}", f.ty.as_str());
            for (labels, s) in &f.series {
                match &s.value {
                    Value::Number(v) => {
                        let sample = if open_metrics && f.ty == Type::Counter {
                            format!("{family}_total")
                        } else {
                            name.clone()
                        };
                        let _ = writeln!(
                            out,
                            "{sample}{} {}{}",
                            fmt_labels(labels, None),
                            num(*v),
                            ts(s)
                        );
                        if f.ty == Type::Counter {
                            created(&mut out, family, labels, s);
                        }
                    }
                    Value::Histogram {
                        bounds,
                        counts,
                        sum,
                        count,
                    } => {
                        let mut cum = 0u64;
                        for (b, c) in bounds.iter().zip(counts) {
                            cum = cum.saturating_add(*c);
                            let le = ("le", num(*b));
                            let _ = writeln!(
                                out,
                                "{name}_bucket{} {cum}{}",
                                fmt_labels(labels, Some(le)),
                                ts(s)
                            );
                        }
                        let inf = ("le", "+Inf".to_owned());
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {count}{}",
                            fmt_labels(labels, Some(inf)),
                            ts(s)
                        );
                        if let Some(sum) = sum {
                            let _ = writeln!(
                                out,
                                "{name}_sum{} {}{}",
                                fmt_labels(labels, None),
                                num(*sum),
                                ts(s)
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_count{} {count}{}",
                            fmt_labels(labels, None),
                            ts(s)
                        );
                        created(&mut out, name, labels, s);
                    }
                    Value::Summary {
                        quantiles,
                        sum,
                        count,
                    } => {
                        for (q, v) in quantiles {
                            let q = ("quantile", num(*q));
                            let _ = writeln!(
                                out,
                                "{name}{} {}{}",
                                fmt_labels(labels, Some(q)),
                                num(*v),
                                ts(s)
                            );
                        }
                        let _ = writeln!(
                            out,
                            "{name}_sum{} {}{}",
                            fmt_labels(labels, None),
                            num(*sum),
                            ts(s)
                        );
                        let _ = writeln!(
                            out,
                            "{name}_count{} {count}{}",
                            fmt_labels(labels, None),
                            ts(s)
                        );
                        created(&mut out, name, labels, s);
                    }
                }
            }
        }
        if !self.targets.is_empty() {
            let help = "Target metadata";
            if open_metrics {
                let _ = writeln!(out, "# HELP target {help}");
                let _ = writeln!(out, "# TYPE target info");
            } else {
                let _ = writeln!(out, "# HELP target_info {help}");
                let _ = writeln!(out, "# TYPE target_info gauge");
            }
            for labels in self.targets.keys() {
                let _ = writeln!(out, "target_info{} 1", fmt_labels(labels, None));
            }
        }
        if open_metrics {
            out.push_str("# EOF\n");
        }
        out
    }
}

/// A sample value or `le`/`quantile` bound as Prometheus writes it.
pub(super) fn num(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

fn fmt_labels(labels: &Labels, extra: Option<(&str, String)>) -> String {
    if labels.is_empty() && extra.is_none() {
        return String::new();
    }
    let mut s = String::from("{");
    let mut first = true;
    let all = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(extra.as_ref().map(|(k, v)| (*k, v.as_str())));
    for (k, v) in all {
        if !first {
            s.push(',');
        }
        first = false;
        let _ = write!(s, "{k}=\"{}\"", escape_value(v));
    }
    s.push('}');
    s
}

fn escape_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

