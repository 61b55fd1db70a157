//! Prometheus recording and alerting rules equivalent to the `error_rate` windows and the
//! `alerts` rules, so that a fleet of sidecars can be evaluated together in Prometheus, Thanos
//! or Mimir. Names follow the OpenTelemetry-to-Prometheus conversion:
//! `authwatch.dependency.requests` -> `authwatch_dependency_requests_total`, attribute
//! `error.class` -> label `error_class`. Latency rules read the exported duration histogram,
//! `http_client_request_duration_seconds_bucket`: `histogram_quantile` for quantiles, the
//! `le` bucket of the bound against `_count` for shares of slow calls (so a bound should be one
//! of the histogram's bucket bounds).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::rules::{label_name, Aggregation, Kind, Op, SourceFilter};
use super::Config;
use authwatch_core::time::Window;

const REQUESTS: &str = "authwatch_dependency_requests_total";
const ERRORS: &str = "authwatch_dependency_errors_total";
const LOGINS: &str = "authwatch_logins_total";
const DURATION: &str = "http_client_request_duration_seconds";
/// Labels summed away in the recorded series (they stay per sidecar, dependency and source).
const DROP: &str = "endpoint, error_class, service_name, otel_metric_overflow";

#[derive(Serialize)]
struct File {
    groups: Vec<Group>,
}

#[derive(Serialize)]
struct Group {
    name: String,
    rules: Vec<PromRule>,
}

#[derive(Serialize, Default)]
struct PromRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    keep_firing_for: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

/// Recorded series names for a window.
pub fn requests_series(w: Window) -> String {
    format!("authwatch:dependency_requests:increase{w}")
}
pub fn errors_series(w: Window) -> String {
    format!("authwatch:dependency_errors:increase{w}")
}
pub fn ratio_series(w: Window) -> String {
    format!("authwatch:dependency_error_ratio:rate{w}")
}

fn dur(d: std::time::Duration) -> Option<String> {
    (!d.is_zero()).then(|| Window(d).to_string())
}

/// A threshold without float noise: `14.4 * (1 - 0.999)` prints as `0.0144`.
fn num(x: f64) -> String {
    let r = (x * 1e12).round() / 1e12;
    format!("{r}")
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn selector(dep: Option<&str>, source: SourceFilter) -> String {
    let mut m = Vec::new();
    if let Some(d) = dep {
        m.push(format!("dependency=\"{}\"", escape(d)));
    }
    if let Some(s) = source.source() {
        m.push(format!("source=\"{}\"", s.as_str()));
    }
    format!("{{{}}}", m.join(", "))
}

/// The error ratio of a window as an expression (sources summed when `source` is `all`).
fn ratio_expr(w: Window, dep: Option<&str>, source: SourceFilter) -> String {
    let sel = selector(dep, source);
    match source {
        SourceFilter::All => format!(
            "(sum without (source) ({e}{sel}) / sum without (source) ({r}{sel}))",
            e = errors_series(w),
            r = requests_series(w)
        ),
        _ => format!("{}{sel}", ratio_series(w)),
    }
}

fn requests_expr(w: Window, dep: Option<&str>, source: SourceFilter) -> String {
    let sel = selector(dep, source);
    match source {
        SourceFilter::All => format!("sum without (source) ({}{sel})", requests_series(w)),
        _ => format!("{}{sel}", requests_series(w)),
    }
}

/// A login error-ratio rule: provider-side failures over all logins, from the tenant-log
/// receivers' `authwatch.logins` counter.
fn logins_expr(t: &super::rules::Threshold, limit: f64) -> String {
    let dep = t.dependency.as_deref().map_or(String::new(), |d| format!("dependency=\"{}\"", escape(d)));
    let w = t.window;
    let all = format!("sum by (dependency) (increase({LOGINS}{{{dep}}}[{w}]))");
    let sep = if dep.is_empty() { "" } else { ", " };
    let failed = format!(
        "sum by (dependency) (increase({LOGINS}{{{dep}{sep}login_failure_category=~\"provider_error|tenant_error\"}}[{w}]))"
    );
    let mut e = format!("({failed} or 0 * {all}) / ({all} > 0) > {limit}");
    if t.min_requests > 0 {
        e = format!("({e}) and ({all} >= {})", t.min_requests);
    }
    e
}

/// The bucket of a bound: `le="0.5"`; whole numbers as both `1` and `1.0` (Prometheus 3
/// normalises `le` values to floats).
fn le_matcher(bound: f64) -> String {
    let s = num(bound);
    if bound.fract() == 0.0 {
        format!("le=~\"{s}|{s}.0\"")
    } else {
        format!("le=\"{s}\"")
    }
}

/// `sel` (`{a, b}` or `{}`) with one more matcher.
fn with_matcher(sel: &str, m: &str) -> String {
    let inner = &sel[1..sel.len() - 1];
    if inner.is_empty() {
        format!("{{{m}}}")
    } else {
        format!("{{{inner}, {m}}}")
    }
}

/// Labels summed away from duration series (`le` too unless `keep_le`).
fn duration_drop(source: SourceFilter, keep_le: bool) -> String {
    let mut d = String::new();
    if source == SourceFilter::All {
        d.push_str("source, ");
    }
    if !keep_le {
        d.push_str("le, ");
    }
    d.push_str(DROP);
    d
}

/// Calls over a window, from the duration histogram.
fn calls_expr(w: Window, dep: Option<&str>, source: SourceFilter) -> String {
    format!(
        "sum without ({}) (increase({DURATION}_count{}[{w}]))",
        duration_drop(source, false),
        selector(dep, source)
    )
}

/// The share of calls slower than `bound` seconds over a window.
fn slow_ratio_expr(w: Window, dep: Option<&str>, source: SourceFilter, bound: f64) -> String {
    let sel = selector(dep, source);
    let fast = format!(
        "sum without ({}) (increase({DURATION}_bucket{}[{w}]))",
        duration_drop(source, false),
        with_matcher(&sel, &le_matcher(bound))
    );
    format!("(1 - {fast} / ({} > 0))", calls_expr(w, dep, source))
}

/// A quantile of the durations over a window.
fn quantile_expr(q: f64, w: Window, dep: Option<&str>, source: SourceFilter) -> String {
    format!(
        "histogram_quantile({q}, sum without ({}) (rate({DURATION}_bucket{}[{w}])))",
        duration_drop(source, true),
        selector(dep, source)
    )
}

/// A metric name as the OpenTelemetry-to-Prometheus conversion writes it (without unit suffix).
fn prom_name(name: &str) -> String {
    label_name(name)
}

/// The rules file (YAML) for `authwatch rules --config FILE`: recording rules for
/// `error_rate_windows` (the `error_rate` connector's `windows`) and every window the rules of
/// `al` read, and alerting rules equivalent to those rules.
pub fn prometheus_rules(error_rate_windows: &[Window], al: &Config) -> String {
    // Every window anyone needs.
    let mut windows: BTreeSet<Window> = error_rate_windows.iter().copied().collect();
    for r in &al.rules {
        match r.kind() {
            Some(Kind::Threshold(t)) if t.error_ratio.is_some() => {
                windows.insert(t.window);
            }
            Some(Kind::BurnRate(b)) if b.slower_than.is_none() => {
                for w in &b.windows {
                    windows.insert(w.long);
                    windows.insert(w.short);
                }
            }
            _ => {}
        }
    }
    if al.fleet.enabled {
        windows.insert(al.fleet.window);
    }

    let mut recording = Vec::new();
    for w in &windows {
        recording.push(PromRule {
            record: Some(requests_series(*w)),
            expr: format!("sum without ({DROP}) (increase({REQUESTS}[{w}]))"),
            ..Default::default()
        });
        // No error series at all means no errors: fall back to zero, not to "no data".
        recording.push(PromRule {
            record: Some(errors_series(*w)),
            expr: format!(
                "sum without ({DROP}) (increase({ERRORS}[{w}])) or (0 * {})",
                requests_series(*w)
            ),
            ..Default::default()
        });
        recording.push(PromRule {
            record: Some(ratio_series(*w)),
            expr: format!(
                "{} / ({} > 0)",
                errors_series(*w),
                requests_series(*w)
            ),
            ..Default::default()
        });
    }

    let mut alerting = Vec::new();
    for rule in &al.rules {
        let mut labels = rule.labels.clone();
        labels.entry("severity".into()).or_insert_with(|| rule.severity.clone());
        let mut annotations = rule.annotations.clone();
        annotations.insert("status_page".into(), al.status_page_url.clone());
        if let Some(r) = &rule.runbook_url {
            annotations.insert("runbook_url".into(), r.clone());
        }
        let base = |expr: String, labels: BTreeMap<String, String>, annotations: BTreeMap<String, String>| PromRule {
            alert: Some(rule.name.clone()),
            expr,
            for_: dur(rule.for_),
            keep_firing_for: dur(rule.keep_firing_for),
            labels,
            annotations,
            ..Default::default()
        };
        match rule.kind() {
            Some(Kind::Threshold(t)) => {
                let expr = match (t.error_ratio, &t.metric, t.value) {
                    (Some(limit), _, _) if t.logins => logins_expr(t, limit),
                    (Some(limit), _, _) => {
                        let dep = t.dependency.as_deref();
                        let mut e = format!("{} > {limit}", ratio_expr(t.window, dep, t.source));
                        if t.min_requests > 0 {
                            e = format!(
                                "({e}) and ({} >= {})",
                                requests_expr(t.window, dep, t.source),
                                t.min_requests
                            );
                        }
                        e
                    }
                    (None, Some(metric), Some(limit)) => {
                        let f = match t.aggregation {
                            Aggregation::Avg => "avg_over_time",
                            Aggregation::Max => "max_over_time",
                            Aggregation::Min => "min_over_time",
                            Aggregation::Last => "last_over_time",
                        };
                        let op = match t.op {
                            Op::Above => ">",
                            Op::Below => "<",
                        };
                        format!("{f}({}[{}]) {op} {limit}", prom_name(metric), t.window)
                    }
                    _ => continue,
                };
                alerting.push(base(expr, labels, annotations));
            }
            Some(Kind::BurnRate(b)) => {
                let budget = b.budget();
                let dep = b.dependency.as_deref();
                for sev in b.severities() {
                    let pairs: Vec<String> = b
                        .windows
                        .iter()
                        .filter(|w| w.severity == sev)
                        .map(|w| {
                            let limit = num(w.factor * budget);
                            let ratio = |w: Window| match b.slower_than {
                                Some(bound) => slow_ratio_expr(w, dep, b.source, bound.as_secs_f64()),
                                None => ratio_expr(w, dep, b.source),
                            };
                            let calls = match b.slower_than {
                                Some(_) => calls_expr(w.long, dep, b.source),
                                None => requests_expr(w.long, dep, b.source),
                            };
                            let mut e = format!("({} > {limit} and {} > {limit})", ratio(w.long), ratio(w.short));
                            if b.min_requests > 0 {
                                e = format!("({e} and {calls} >= {})", b.min_requests);
                            }
                            e
                        })
                        .collect();
                    let mut l = labels.clone();
                    l.insert("severity".into(), sev.clone());
                    let mut a = annotations.clone();
                    a.entry("summary".into()).or_insert_with(|| match b.slower_than {
                        Some(bound) => format!(
                            "{{{{ $labels.dependency }}}} burns its {}% latency budget (calls slower than {}) too fast ({sev})",
                            b.objective,
                            super::engine::secs(bound.as_secs_f64())
                        ),
                        None => format!(
                            "{{{{ $labels.dependency }}}} burns its {}% error budget too fast ({sev})",
                            b.objective
                        ),
                    });
                    alerting.push(base(pairs.join(" or "), l, a));
                }
            }
            Some(Kind::Consecutive(c)) => {
                let sel = match &c.check {
                    Some(check) => format!("{{synthetic_check=\"{}\"}}", escape(check)),
                    None => String::new(),
                };
                let span = Window(c.probe_interval.get() * c.failures.get() as u32);
                let mut r = base(
                    format!("max_over_time(authwatch_probe_success_ratio{sel}[{span}]) == 0"),
                    labels,
                    annotations,
                );
                // M successes resolve: keep firing for the runs after the first success.
                let keep = c.probe_interval.get() * (c.successes.get() as u32).saturating_sub(1);
                r.keep_firing_for = dur(keep.max(rule.keep_firing_for));
                alerting.push(r);
            }
            Some(Kind::Latency(l)) => {
                let dep = l.dependency.as_deref();
                let bound = l.slower_than.as_secs_f64();
                let (mut e, what) = match (l.quantile, l.share) {
                    (Some(q), _) => (
                        format!("{} > {}", quantile_expr(q.value(), l.window, dep, l.source), num(bound)),
                        format!("{} of the calls", q.as_str()),
                    ),
                    (None, Some(share)) => (
                        format!("{} > {}", slow_ratio_expr(l.window, dep, l.source, bound), num(share)),
                        format!("more than {}% of the calls", num(share * 100.0)),
                    ),
                    _ => continue,
                };
                if l.min_requests > 0 {
                    e = format!("({e}) and ({} >= {})", calls_expr(l.window, dep, l.source), l.min_requests);
                }
                let mut a = annotations;
                a.entry("summary".into()).or_insert_with(|| {
                    format!(
                        "{{{{ $labels.dependency }}}} is slow: {what} slower than {} over {}",
                        super::engine::secs(bound),
                        l.window
                    )
                });
                alerting.push(base(e, labels, a));
            }
            Some(Kind::Status(s)) => {
                let sel = match &s.page {
                    Some(p) => format!("{{status_page=\"{}\"}}", escape(p)),
                    None => String::new(),
                };
                let mut a = annotations;
                a.insert("verdict".into(), "provider_outage".into());
                alerting.push(base(
                    format!("authwatch_status_indicator_ratio{sel} >= {}", s.min_indicator),
                    labels,
                    a,
                ));
            }
            None => {}
        }
    }

    let mut groups = vec![
        Group {
            name: "authwatch_error_rate".into(),
            rules: recording,
        },
        Group {
            name: "authwatch_alerts".into(),
            rules: alerting,
        },
    ];
    if al.fleet.enabled {
        let f = &al.fleet;
        let failing = format!(
            "({} > {})",
            ratio_expr(f.window, None, f.source),
            f.error_ratio
        );
        let il = &f.instance_label;
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "summary".into(),
            format!(
                "{{{{ $value }}}} sidecars see {{{{ $labels.dependency }}}} fail (error ratio above {} over {})",
                f.error_ratio, f.window
            ),
        );
        annotations.insert("verdict".into(), "provider_outage".into());
        annotations.insert("status_page".into(), al.status_page_url.clone());
        let mut labels = BTreeMap::new();
        labels.insert("severity".into(), "page".into());
        groups.push(Group {
            name: "authwatch_fleet".into(),
            rules: vec![PromRule {
                alert: Some("authwatch_fleet_provider_failing".into()),
                expr: format!(
                    "count without ({il}) {failing} >= {}",
                    f.min_sidecars.get()
                ),
                for_: dur(f.for_),
                labels,
                annotations,
                ..Default::default()
            }],
        });
    }
    let header = "# Generated by `authwatch rules`: recording rules for the error_rate windows and\n\
                  # alerting rules equivalent to the alerts connector's rules. Do not edit by hand.\n";
    let body = serde_yaml::to_string(&File { groups }).unwrap_or_default();
    format!("{header}{body}")
}
