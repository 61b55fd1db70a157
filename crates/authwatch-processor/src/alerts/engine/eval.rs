//! Rule evaluation: what each rule's condition says for each of its instances (a dependency,
//! a probe check, a status page, a series) at one time.

use std::time::Duration;

use authwatch_core::data::{kv_f64, kv_i64, kv_str};
use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::semconv;

use super::super::histogram;
use super::super::rules::{label_name, Aggregation, Kind, Latency, Op, SourceFilter, Threshold};
use super::super::store::{Increase, LabelSet, Store, SYNTHETIC_CHECK};
use super::Engine;

/// The outcome of one rule for one instance at one time.
#[derive(Debug, Clone)]
pub(super) struct Eval {
    pub(super) labels: LabelSet,
    /// The firing condition holds.
    pub(super) active: bool,
    /// The resolve condition holds (hysteresis: not simply `!active`).
    pub(super) cleared: bool,
    pub(super) value: f64,
    pub(super) threshold: f64,
    /// The rule's own numbers (windows, burn rates).
    pub(super) numbers: Vec<KeyValue>,
    pub(super) dependency: Option<String>,
    pub(super) probe_alert: bool,
    pub(super) traffic_alert: bool,
    /// A sentence for the body.
    pub(super) summary: String,
    /// Latency rules and latency objectives: how slow, for a `degraded` verdict's reason.
    pub(super) slow: Option<String>,
}

/// Seconds as people read them: `480ms`, `1.52s`.
pub(crate) fn secs(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0}ms", v * 1000.0)
    } else {
        format!("{:.2}s", v)
    }
}

impl Engine {
    pub(super) fn eval_rule(&self, ri: usize, store: &Store, now: Duration) -> Vec<Eval> {
        let rule = &self.rules[ri];
        let Some(kind) = rule.kind() else {
            return vec![];
        };
        let deps = |d: &Option<String>| match d {
            Some(d) => vec![d.clone()],
            None => store.dependencies(),
        };
        let dep_labels = |d: &str, source: &str| {
            let mut l = LabelSet::new();
            l.insert("dependency".into(), d.into());
            if source != "all" {
                l.insert("source".into(), source.into());
            }
            l
        };
        match kind {
            Kind::Threshold(t) => match (t.error_ratio, &t.metric, t.value) {
                (Some(limit), _, _) if t.logins => {
                    let deps = match &t.dependency {
                        Some(d) => vec![d.clone()],
                        None => store.login_dependencies(),
                    };
                    deps.into_iter().map(|d| logins(t, limit, &d, store, now, dep_labels(&d, "all"))).collect()
                }
                (Some(limit), _, _) => deps(&t.dependency)
                    .into_iter()
                    .map(|d| {
                        let inc = store.increase(Some(&d), t.source.source(), now, t.window.get());
                        let enough = inc.requests >= t.min_requests as f64 && inc.requests > 0.0;
                        let ratio = inc.ratio().unwrap_or(0.0);
                        let resolve = t.resolve_error_ratio.unwrap_or(limit);
                        Eval {
                            labels: dep_labels(&d, t.source.as_str()),
                            active: enough && ratio > limit,
                            cleared: !enough || ratio <= resolve,
                            value: ratio,
                            threshold: limit,
                            numbers: vec![
                                kv_f64("alert.window.requests", inc.requests),
                                kv_f64("alert.window.errors", inc.errors),
                                kv_str("alert.window", t.window.to_string()),
                            ],
                            dependency: Some(d.clone()),
                            probe_alert: t.source == SourceFilter::Probe,
                            traffic_alert: t.source == SourceFilter::Traffic,
                            summary: format!(
                                "error ratio {ratio:.4} over {} ({} of {} calls to {d}), threshold {limit}",
                                t.window, inc.errors, inc.requests
                            ),
                            slow: None,
                        }
                    })
                    .collect(),
                (None, Some(metric), Some(limit)) => {
                    let Some(series) = store.values.get(metric) else {
                        return vec![];
                    };
                    let start = now.saturating_sub(t.window.get());
                    series
                        .iter()
                        .filter_map(|(labels, h)| {
                            let vals: Vec<f64> = h
                                .iter()
                                .filter(|(at, _)| *at > start || now < t.window.get())
                                .map(|(_, v)| *v)
                                .collect();
                            let v = match t.aggregation {
                                Aggregation::Avg if !vals.is_empty() => {
                                    vals.iter().sum::<f64>() / vals.len() as f64
                                }
                                Aggregation::Max => vals.iter().copied().reduce(f64::max)?,
                                Aggregation::Min => vals.iter().copied().reduce(f64::min)?,
                                Aggregation::Last => *vals.last()?,
                                _ => return None,
                            };
                            let active = match t.op {
                                Op::Above => v > limit,
                                Op::Below => v < limit,
                            };
                            let labels: LabelSet = labels
                                .iter()
                                .map(|(k, v)| (label_name(k), v.clone()))
                                .collect();
                            Some(Eval {
                                labels,
                                active,
                                cleared: !active,
                                value: v,
                                threshold: limit,
                                numbers: vec![kv_str("alert.window", t.window.to_string())],
                                dependency: None,
                                probe_alert: false,
                                traffic_alert: false,
                                summary: format!("{metric} {v} over {}, threshold {limit}", t.window),
                                slow: None,
                            })
                        })
                        .collect()
                }
                _ => vec![],
            },
            Kind::BurnRate(b) => {
                let budget = b.budget();
                let mut out = Vec::new();
                for d in deps(&b.dependency) {
                    for sev in b.severities() {
                        let mut numbers = vec![kv_f64("alert.slo.objective", b.objective), kv_f64("alert.slo.error_budget", budget)];
                        let mut best: Option<(f64, f64, String)> = None;
                        let mut max_burn = 0.0f64;
                        let bad = |w: Duration| match b.slower_than {
                            Some(bound) => store.slow_increase(Some(&d), b.source.source(), bound, now, w),
                            None => store.increase(Some(&d), b.source.source(), now, w),
                        };
                        if let Some(bound) = b.slower_than {
                            numbers.push(kv_f64(semconv::ALERT_LATENCY_BOUND, bound.as_secs_f64()));
                        }
                        for w in b.windows.iter().filter(|w| w.severity == sev) {
                            let long = bad(w.long.get());
                            let short = bad(w.short.get());
                            let burn = |i: &Increase| i.ratio().unwrap_or(0.0) / budget;
                            let (bl, bs) = (burn(&long), burn(&short));
                            numbers.push(kv_f64(format!("alert.burn_rate.{}", w.long), bl));
                            numbers.push(kv_f64(format!("alert.burn_rate.{}", w.short), bs));
                            max_burn = max_burn.max(bl.min(bs));
                            let enough = long.requests >= b.min_requests as f64;
                            if enough && bl > w.factor && bs > w.factor && best.is_none() {
                                best = Some((bs.min(bl), w.factor, format!("{}/{}", w.long, w.short)));
                            }
                        }
                        let mut labels = dep_labels(&d, b.source.as_str());
                        labels.insert("severity".into(), sev.clone());
                        let active = best.is_some();
                        let (value, threshold, pair) = best.unwrap_or((max_burn, 0.0, String::new()));
                        if active {
                            numbers.push(kv_str("alert.burn_rate.windows", pair.clone()));
                        }
                        let budget_of = match b.slower_than {
                            Some(bound) => format!("latency budget (calls slower than {})", secs(bound.as_secs_f64())),
                            None => "error budget".to_owned(),
                        };
                        let summary = if active {
                            format!("{d} burns its {budget_of} {value:.1}x over {pair} (objective {}%)", b.objective)
                        } else {
                            format!("{d} burn rate back under the thresholds (objective {}%)", b.objective)
                        };
                        out.push(Eval {
                            labels,
                            active,
                            cleared: !active,
                            value,
                            threshold,
                            numbers,
                            dependency: Some(d.clone()),
                            // Slow calls are not failing ones: a latency objective reads no failure.
                            probe_alert: b.source == SourceFilter::Probe && b.slower_than.is_none(),
                            traffic_alert: b.source == SourceFilter::Traffic && b.slower_than.is_none(),
                            slow: b.slower_than.map(|_| summary.clone()),
                            summary,
                        });
                    }
                }
                out
            }
            Kind::Consecutive(c) => store
                .probes
                .iter()
                .filter(|(check, _)| c.check.as_ref().is_none_or(|x| x == *check))
                .map(|(check, p)| {
                    let mut labels = LabelSet::new();
                    labels.insert(label_name(SYNTHETIC_CHECK), check.clone());
                    let active = p.consecutive_failures >= c.failures.get() as u64;
                    Eval {
                        labels,
                        active,
                        cleared: p.consecutive_successes >= c.successes.get() as u64,
                        value: p.consecutive_failures as f64,
                        threshold: c.failures.get() as f64,
                        numbers: vec![kv_i64("alert.probe.consecutive_successes", p.consecutive_successes as i64)],
                        dependency: None,
                        probe_alert: active,
                        traffic_alert: false,
                        summary: format!(
                            "probe {check}: {} failed runs in a row ({} to fire, {} successes to resolve)",
                            p.consecutive_failures, c.failures.get(), c.successes.get()
                        ),
                        slow: None,
                    }
                })
                .collect(),
            Kind::Status(s) => store
                .status
                .iter()
                .filter(|(page, _)| s.page.as_ref().is_none_or(|x| x == *page))
                .map(|(page, st)| {
                    let mut labels = LabelSet::new();
                    labels.insert(label_name(semconv::STATUS_PAGE), page.clone());
                    let active = st.indicator >= s.min_indicator;
                    Eval {
                        labels,
                        active,
                        cleared: !active,
                        value: st.indicator as f64,
                        threshold: s.min_indicator as f64,
                        numbers: vec![],
                        dependency: None,
                        probe_alert: false,
                        traffic_alert: false,
                        summary: format!("status page {page} indicator {}", st.indicator),
                        slow: None,
                    }
                })
                .collect(),
            Kind::Latency(l) => deps(&l.dependency)
                .into_iter()
                .filter_map(|d| latency(l, &d, store, now, dep_labels(&d, l.source.as_str())))
                .collect(),
        }
    }
}

/// A login error-ratio rule (`threshold.logins`) for one dependency.
fn logins(t: &Threshold, limit: f64, d: &str, store: &Store, now: Duration, labels: LabelSet) -> Eval {
    let inc = store.login_increase(Some(d), now, t.window.get());
    let enough = inc.logins >= t.min_requests as f64 && inc.logins > 0.0;
    let ratio = inc.ratio().unwrap_or(0.0);
    let resolve = t.resolve_error_ratio.unwrap_or(limit);
    let mut numbers = vec![
        kv_f64("alert.window.logins", inc.logins),
        kv_f64("alert.window.login_failures.provider_side", inc.provider_side),
        kv_str("alert.window", t.window.to_string()),
    ];
    let users = store.users_affected(Some(d)).map(|u| u.0);
    if let Some(u) = users {
        numbers.push(kv_f64("alert.logins.users_affected", u));
    }
    let users = users.map_or(String::new(), |u| format!(", about {u} users affected"));
    Eval {
        labels,
        active: enough && ratio > limit,
        cleared: !enough || ratio <= resolve,
        value: ratio,
        threshold: limit,
        numbers,
        dependency: Some(d.to_owned()),
        probe_alert: false,
        traffic_alert: false,
        summary: format!(
            "provider-side login failures {:.1}% over {} ({} of {} logins to {d}: {} provider, {} tenant errors{users}), threshold {:.1}%",
            ratio * 100.0,
            t.window,
            inc.provider_side,
            inc.logins,
            inc.provider,
            inc.tenant,
            limit * 100.0
        ),
        slow: None,
    }
}

/// A latency rule for one dependency; `None` without duration data (the instance, if any,
/// then resolves as gone).
fn latency(l: &Latency, d: &str, store: &Store, now: Duration, labels: LabelSet) -> Option<Eval> {
    let bound = l.slower_than.as_secs_f64();
    let w = l.window;
    let min = l.min_requests as f64;
    let mut numbers = vec![
        kv_f64(semconv::ALERT_LATENCY_BOUND, bound),
        kv_str("alert.window", w.to_string()),
    ];
    let (value, threshold, active, cleared, summary) = match (l.quantile, l.share) {
        (Some(q), _) => {
            let (bounds, counts) = store.durations(Some(d), l.source.source(), now, w.get())?;
            let calls: f64 = counts.iter().sum();
            let v = histogram::quantile(q.value(), &bounds, &counts).unwrap_or(0.0);
            let enough = calls >= min && calls > 0.0;
            let resolve = l.resolve_below.unwrap_or(l.slower_than).as_secs_f64();
            numbers.push(kv_str(semconv::ALERT_LATENCY_QUANTILE, q.as_str()));
            numbers.push(kv_f64("alert.window.requests", calls));
            let summary = format!(
                "{} of calls to {d} is {} over {w} ({calls} calls), bound {}",
                q.as_str(),
                secs(v),
                secs(bound)
            );
            (v, bound, enough && v > bound, !enough || v <= resolve, summary)
        }
        (None, Some(share)) => {
            let inc = store.slow_increase(Some(d), l.source.source(), l.slower_than, now, w.get());
            let enough = inc.requests >= min && inc.requests > 0.0;
            let ratio = inc.ratio().unwrap_or(0.0);
            numbers.push(kv_str(semconv::ALERT_LATENCY_QUANTILE, "share"));
            numbers.push(kv_f64("alert.window.requests", inc.requests));
            numbers.push(kv_f64("alert.window.slow", inc.errors));
            let summary = format!(
                "{:.1}% of calls to {d} slower than {} over {w} ({} of {}), threshold {:.1}%",
                ratio * 100.0,
                secs(bound),
                inc.errors,
                inc.requests,
                share * 100.0
            );
            let resolve = l.resolve_share.unwrap_or(share);
            (ratio, share, enough && ratio > share, !enough || ratio <= resolve, summary)
        }
        _ => return None,
    };
    Some(Eval {
        labels,
        active,
        cleared,
        value,
        threshold,
        numbers,
        dependency: Some(d.to_owned()),
        probe_alert: false,
        traffic_alert: false,
        slow: Some(summary.clone()),
        summary,
    })
}
