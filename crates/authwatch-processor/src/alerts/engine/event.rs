//! Alert events: the log record of a transition or a re-send, with labels, annotations, the
//! verdict and the signals behind it, and the alert fingerprint.

use std::collections::BTreeMap;
use std::time::Duration;

use authwatch_core::data::{kv_bool, kv_f64, kv_i64, kv_str};
use authwatch_core::otlp::common::v1::{any_value, AnyValue};
use authwatch_core::otlp::logs::v1::{LogRecord, SeverityNumber};
use authwatch_core::semconv;

use super::super::store::Store;
use super::super::verdict::{for_logins, verdict, with_latency};
use super::eval::Eval;
use super::{Engine, State};

/// An alert event, ready to become a log record.
#[derive(Debug, Clone)]
pub struct Event {
    pub record: LogRecord,
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(
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
        let (probe_alert, traffic_alert) = (e.probe_alert && e.active, e.traffic_alert && e.active);
        let login_rule = rule.threshold.as_ref().is_some_and(|t| t.logins);
        let (verdict, reason) = match &e.slow {
            Some(slow) => with_latency(&sig, &self.cfg.verdict, probe_alert, traffic_alert, slow),
            None if login_rule => for_logins(&sig, &self.cfg.verdict),
            None => verdict(&sig, &self.cfg.verdict, probe_alert, traffic_alert),
        };

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
        if let Some(l) = &sig.logins {
            let scope = if login_rule { l.users_provider_side() } else { l.users_all() };
            annotations.insert("users_affected".into(), scope);
        }
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
        if let Some(l) = &sig.logins {
            let w = &l.window;
            attrs.push(kv_f64(format!("{p}logins"), w.logins));
            attrs.push(kv_f64(format!("{p}logins.provider_errors"), w.provider));
            attrs.push(kv_f64(format!("{p}logins.tenant_errors"), w.tenant));
            attrs.push(kv_f64(format!("{p}logins.user_failures"), w.user));
            if let Some((ps, all)) = l.users_affected {
                attrs.push(kv_f64(format!("{p}logins.users_affected.provider_side"), ps));
                attrs.push(kv_f64(format!("{p}logins.users_affected"), all));
            }
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
pub(super) fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xfe]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}
