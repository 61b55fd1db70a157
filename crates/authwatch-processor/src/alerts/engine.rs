//! Rule evaluation, the alert lifecycle (inactive, pending, firing, resolved), verdicts and
//! alert events. Pure state driven with explicit times; the connector calls it on every metrics
//! request and on every tick.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use authwatch_core::otlp::common::v1::{any_value, AnyValue, KeyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, SeverityNumber};
use authwatch_core::semconv;

use super::rules::{label_name, Aggregation, Kind, Op, Rule};
use super::store::{Increase, LabelSet, Store};
use super::{Config, VerdictConfig};
use crate::error_rate::util::{kv_bool, kv_f64, kv_i64, kv_str, Clock};
use crate::error_rate::Source;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Inactive,
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Inactive => "inactive",
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// Whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    ProviderOutage,
    TenantIssue,
    ApplicationIssue,
    Transient,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ProviderOutage => "provider_outage",
            Verdict::TenantIssue => "tenant_issue",
            Verdict::ApplicationIssue => "application_issue",
            Verdict::Transient => "transient",
        }
    }
}

/// The signals a verdict is drawn from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub probe_runs: u64,
    pub probe_failures: u64,
    pub probe_consecutive_failures: u64,
    /// `None`: no probe data at all.
    pub last_probe_ok: Option<bool>,
    pub traffic: Increase,
    /// Highest status-page indicator, if a page is watched.
    pub status_indicator: Option<i64>,
}

/// The verdict and why, from the signals together. `probe_alert` / `traffic_alert` say that the
/// alert itself is about probes / real traffic and its condition holds.
pub fn verdict(
    s: &Signals,
    cfg: &VerdictConfig,
    probe_alert: bool,
    traffic_alert: bool,
) -> (Verdict, String) {
    let t = &s.traffic;
    let ratio = t.ratio().unwrap_or(0.0);
    let traffic_failing = traffic_alert
        || (t.requests >= cfg.min_requests as f64
            && t.errors >= 2.0
            && ratio >= cfg.traffic_error_ratio);
    let probes_failing = probe_alert
        || s.probe_consecutive_failures >= cfg.probe_failures.get() as u64
        || s.probe_failures >= cfg.probe_failures.get() as u64;
    if let Some(i) = s.status_indicator.filter(|i| *i >= 1) {
        return (
            Verdict::ProviderOutage,
            format!("The provider's status page reports an incident (indicator {i})."),
        );
    }
    if probes_failing && traffic_failing {
        return (
            Verdict::ProviderOutage,
            format!(
                "Probes and real traffic fail together: {} of {} probe runs and {} of {} calls failed.",
                s.probe_failures, s.probe_runs, t.errors, t.requests
            ),
        );
    }
    if probes_failing {
        return (
            Verdict::TenantIssue,
            format!(
                "Probes fail ({} of {} runs, {} in a row) while the status page is green and real traffic is not failing.",
                s.probe_failures, s.probe_runs, s.probe_consecutive_failures
            ),
        );
    }
    if traffic_failing {
        return match s.last_probe_ok {
            Some(_) => (
                Verdict::ApplicationIssue,
                format!(
                    "Real traffic fails ({} of {} calls) while probes pass ({} of {} runs failed).",
                    t.errors, t.requests, s.probe_failures, s.probe_runs
                ),
            ),
            None if t.provider_errors * 2.0 >= t.errors && t.errors > 0.0 => (
                Verdict::ProviderOutage,
                format!(
                    "Real traffic fails ({} of {} calls), mostly with 5xx, timeouts or network errors ({}), and no probe runs to compare with.",
                    t.errors, t.requests, t.provider_errors
                ),
            ),
            None => (
                Verdict::ApplicationIssue,
                format!(
                    "Real traffic fails ({} of {} calls), mostly with 4xx or rate limiting, and no probe runs to compare with.",
                    t.errors, t.requests
                ),
            ),
        };
    }
    (
        Verdict::Transient,
        format!(
            "A failure that did not repeat: {} of {} probe runs and {} of {} calls failed.",
            s.probe_failures, s.probe_runs, t.errors, t.requests
        ),
    )
}

/// The outcome of one rule for one instance at one time.
#[derive(Debug, Clone)]
struct Eval {
    labels: LabelSet,
    /// The firing condition holds.
    active: bool,
    /// The resolve condition holds (hysteresis: not simply `!active`).
    cleared: bool,
    value: f64,
    threshold: f64,
    /// The rule's own numbers (windows, burn rates).
    numbers: Vec<KeyValue>,
    dependency: Option<String>,
    probe_alert: bool,
    traffic_alert: bool,
    /// A sentence for the body.
    summary: String,
}

#[derive(Debug)]
struct Instance {
    state: State,
    pending_since: Duration,
    firing_since: Duration,
    last_active: Duration,
    last_sent: Duration,
}

/// An alert event, ready to become a log record.
#[derive(Debug, Clone)]
pub struct Event {
    pub record: LogRecord,
}

/// The alert engine: rules, instances, and their lifecycle.
pub struct Engine {
    rules: Vec<Rule>,
    cfg: Config,
    instances: HashMap<(usize, LabelSet), Instance>,
    clock: Clock,
}

impl Engine {
    pub fn new(cfg: &Config, clock: Clock) -> Self {
        Engine {
            rules: cfg.rules.clone(),
            cfg: cfg.clone(),
            instances: HashMap::new(),
            clock,
        }
    }

    /// The state of an alert instance (for tests and tools).
    #[cfg(test)]
    pub fn state(&self, rule: &str, labels: &[(&str, &str)]) -> State {
        let Some(i) = self.rules.iter().position(|r| r.name == rule) else {
            return State::Inactive;
        };
        let l: LabelSet = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.instances
            .get(&(i, l))
            .map_or(State::Inactive, |x| x.state)
    }

    /// Evaluates every rule at `now`; returns the events of the transitions and re-sends.
    pub fn evaluate(&mut self, store: &Store, now: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for ri in 0..self.rules.len() {
            let evals = self.eval_rule(ri, store, now);
            for e in evals {
                seen.insert((ri, e.labels.clone()));
                self.step(ri, e, store, now, &mut events);
            }
        }
        // Instances whose series disappeared: their condition no longer holds.
        let gone: Vec<(usize, LabelSet)> = self
            .instances
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for (ri, labels) in gone {
            let e = Eval {
                labels,
                active: false,
                cleared: true,
                value: 0.0,
                threshold: 0.0,
                numbers: vec![],
                dependency: None,
                probe_alert: false,
                traffic_alert: false,
                summary: "no data".into(),
            };
            self.step(ri, e, store, now, &mut events);
        }
        events
    }

    fn step(&mut self, ri: usize, e: Eval, store: &Store, now: Duration, out: &mut Vec<Event>) {
        let rule = &self.rules[ri];
        let key = (ri, e.labels.clone());
        let inst = self.instances.entry(key.clone()).or_insert(Instance {
            state: State::Inactive,
            pending_since: now,
            firing_since: now,
            last_active: now,
            last_sent: now,
        });
        if e.active {
            inst.last_active = now;
        }
        let mut emit: Option<(State, bool)> = None;
        match inst.state {
            State::Inactive | State::Resolved => {
                if e.active {
                    inst.pending_since = now;
                    if rule.for_.is_zero() {
                        inst.state = State::Firing;
                        inst.firing_since = now;
                        inst.last_sent = now;
                        emit = Some((State::Firing, false));
                    } else {
                        inst.state = State::Pending;
                        emit = Some((State::Pending, false));
                    }
                }
            }
            State::Pending => {
                if !e.active {
                    inst.state = State::Inactive;
                    emit = Some((State::Inactive, false));
                } else if now.saturating_sub(inst.pending_since) >= rule.for_ {
                    inst.state = State::Firing;
                    inst.firing_since = now;
                    inst.last_sent = now;
                    emit = Some((State::Firing, false));
                }
            }
            State::Firing => {
                let kept = now.saturating_sub(inst.last_active) < rule.keep_firing_for;
                if e.cleared && !e.active && !kept {
                    inst.state = State::Resolved;
                    emit = Some((State::Resolved, false));
                } else if now.saturating_sub(inst.last_sent) >= self.cfg.resend_interval {
                    inst.last_sent = now;
                    emit = Some((State::Firing, true));
                }
            }
        }
        let (pending_since, firing_since) = (inst.pending_since, inst.firing_since);
        if matches!(inst.state, State::Inactive | State::Resolved) {
            self.instances.remove(&key);
        }
        if let Some((state, resend)) = emit {
            let starts = if state == State::Pending || state == State::Inactive {
                pending_since
            } else {
                firing_since
            };
            out.push(self.event(ri, &e, state, resend, starts, store, now));
        }
    }

    fn eval_rule(&self, ri: usize, store: &Store, now: Duration) -> Vec<Eval> {
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
                            probe_alert: t.source == super::rules::SourceFilter::Probe,
                            traffic_alert: t.source == super::rules::SourceFilter::Traffic,
                            summary: format!(
                                "error ratio {ratio:.4} over {} ({} of {} calls to {d}), threshold {limit}",
                                t.window, inc.errors, inc.requests
                            ),
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
                        for w in b.windows.iter().filter(|w| w.severity == sev) {
                            let long = store.increase(Some(&d), b.source.source(), now, w.long.get());
                            let short = store.increase(Some(&d), b.source.source(), now, w.short.get());
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
                        out.push(Eval {
                            labels,
                            active,
                            cleared: !active,
                            value,
                            threshold,
                            numbers,
                            dependency: Some(d.clone()),
                            probe_alert: b.source == super::rules::SourceFilter::Probe,
                            traffic_alert: b.source == super::rules::SourceFilter::Traffic,
                            summary: if active {
                                format!("{d} burns its error budget {value:.1}x over {pair} (objective {}%)", b.objective)
                            } else {
                                format!("{d} burn rate back under the thresholds (objective {}%)", b.objective)
                            },
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
                    labels.insert(label_name(super::store::SYNTHETIC_CHECK), check.clone());
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
                    }
                })
                .collect(),
        }
    }

    /// The signals behind verdicts, over the verdict window.
    pub fn signals(&self, store: &Store, dep: Option<&str>, now: Duration) -> Signals {
        let w = self.cfg.verdict.window;
        let start = now.saturating_sub(w);
        let mut s = Signals::default();
        for p in store.probes.values() {
            for (at, ok) in p.runs.iter().filter(|(at, _)| *at >= start || now < w) {
                let _ = at;
                s.probe_runs += 1;
                if !ok {
                    s.probe_failures += 1;
                }
            }
            s.probe_consecutive_failures = s.probe_consecutive_failures.max(p.consecutive_failures);
            if let Some((_, ok)) = p.runs.back() {
                s.last_probe_ok = Some(s.last_probe_ok.unwrap_or(true) && *ok);
            }
        }
        if store.probes.is_empty() {
            // No probe metrics: fall back to probe spans counted by error_rate.
            let p = store.increase(dep, Some(Source::Probe), now, w);
            if p.requests > 0.0 {
                s.probe_runs = p.requests as u64;
                s.probe_failures = p.errors as u64;
                s.last_probe_ok = Some(p.errors == 0.0);
            }
        }
        s.traffic = store.increase(dep, Some(Source::Traffic), now, w);
        s.status_indicator = store.status.values().filter(|x| x.up).map(|x| x.indicator).max();
        s
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &self,
        ri: usize,
        e: &Eval,
        state: State,
        resend: bool,
        starts: Duration,
        store: &Store,
        now: Duration,
    ) -> Event {
        let rule = &self.rules[ri];
        let kind = rule.kind().map_or("", |k| k.as_str());
        let sig = self.signals(store, e.dependency.as_deref(), now);
        let (verdict, reason) = verdict(&sig, &self.cfg.verdict, e.probe_alert && e.active, e.traffic_alert && e.active);

        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("severity".into(), rule.severity.clone());
        labels.extend(rule.labels.clone());
        labels.extend(e.labels.clone());
        let severity = labels.get("severity").cloned().unwrap_or_default();

        let mut annotations = rule.annotations.clone();
        for v in annotations.values_mut() {
            *v = expand(v, &labels, e.value);
        }
        annotations.entry("summary".into()).or_insert_with(|| format!("{}: {}", rule.name, e.summary));
        annotations.insert("verdict".into(), verdict.as_str().into());
        annotations.insert("verdict_reason".into(), reason.clone());
        annotations.insert("status_page".into(), self.cfg.status_page_url.clone());
        if let Some(r) = &rule.runbook_url {
            annotations.insert("runbook_url".into(), r.clone());
        }

        let ends = match state {
            State::Firing | State::Pending => now + self.cfg.resend_interval * 4,
            State::Resolved | State::Inactive => now,
        };
        let p = semconv::ALERT_SIGNAL_PREFIX;
        let mut attrs = vec![
            kv_str(semconv::ALERT_NAME, rule.name.clone()),
            kv_str(semconv::ALERT_STATE, state.as_str()),
            kv_str(semconv::ALERT_SEVERITY, severity.clone()),
            kv_str(semconv::ALERT_RULE_KIND, kind),
            kv_str(semconv::ALERT_FINGERPRINT, fingerprint(&labels)),
            kv_str(semconv::ALERT_VERDICT, verdict.as_str()),
            kv_str(semconv::ALERT_VERDICT_REASON, reason.clone()),
            kv_str(semconv::ALERT_STARTS_AT, self.clock.rfc3339(starts)),
            kv_str(semconv::ALERT_ENDS_AT, self.clock.rfc3339(ends)),
            kv_str(semconv::ALERT_STATUS_PAGE_URL, self.cfg.status_page_url.clone()),
            kv_bool(semconv::ALERT_RESEND, resend),
            kv_f64(semconv::ALERT_VALUE, e.value),
            kv_f64(semconv::ALERT_THRESHOLD, e.threshold),
            kv_i64(format!("{p}probe.runs"), sig.probe_runs as i64),
            kv_i64(format!("{p}probe.failures"), sig.probe_failures as i64),
            kv_i64(format!("{p}probe.consecutive_failures"), sig.probe_consecutive_failures as i64),
            kv_f64(format!("{p}traffic.requests"), sig.traffic.requests),
            kv_f64(format!("{p}traffic.errors"), sig.traffic.errors),
            kv_f64(format!("{p}traffic.error_ratio"), sig.traffic.ratio().unwrap_or(0.0)),
        ];
        if let Some(i) = sig.status_indicator {
            attrs.push(kv_i64(format!("{p}status.indicator"), i));
        }
        if let Some(u) = &self.cfg.generator_url {
            attrs.push(kv_str(semconv::ALERT_GENERATOR_URL, u.clone()));
        }
        if let Some(r) = &rule.runbook_url {
            attrs.push(kv_str(semconv::ALERT_RUNBOOK_URL, r.clone()));
        }
        for (k, v) in &labels {
            attrs.push(kv_str(format!("{}{k}", semconv::ALERT_LABEL_PREFIX), v.clone()));
        }
        for (k, v) in &annotations {
            attrs.push(kv_str(format!("{}{k}", semconv::ALERT_ANNOTATION_PREFIX), v.clone()));
        }
        attrs.extend(e.numbers.iter().cloned());

        let (sev_num, sev_text) = match state {
            State::Firing if matches!(severity.as_str(), "page" | "critical") => (SeverityNumber::Error, "ERROR"),
            State::Firing => (SeverityNumber::Warn, "WARN"),
            _ => (SeverityNumber::Info, "INFO"),
        };
        let t = self.clock.unix_nanos(now);
        let body = format!(
            "{} is {}: {} (verdict {}; status page {}).",
            rule.name,
            state.as_str(),
            e.summary,
            verdict.as_str(),
            self.cfg.status_page_url
        );
        Event {
            record: LogRecord {
                time_unix_nano: t,
                observed_time_unix_nano: t,
                severity_number: sev_num as i32,
                severity_text: sev_text.into(),
                event_name: semconv::ALERT_EVENT.into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                attributes: attrs,
                ..Default::default()
            },
        }
    }
}

/// `{{ $value }}` and `{{ $labels.<name> }}` in annotations, as Prometheus templates spell them.
fn expand(s: &str, labels: &BTreeMap<String, String>, value: f64) -> String {
    if !s.contains("{{") {
        return s.to_owned();
    }
    let mut out = s.replace("{{ $value }}", &format!("{value}")).replace("{{$value}}", &format!("{value}"));
    for (k, v) in labels {
        out = out
            .replace(&format!("{{{{ $labels.{k} }}}}"), v)
            .replace(&format!("{{{{$labels.{k}}}}}"), v);
    }
    out
}

/// 16 hex digits of FNV-1a over the sorted labels: the same alert gets the same fingerprint.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xfe]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
