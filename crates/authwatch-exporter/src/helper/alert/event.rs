//! Reading alert events: OTLP log records with event name `authwatch.alert`, their attributes
//! named in `authwatch_core::semconv` (section "error rates and alerts").

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::common::v1::any_value::Value;
use authwatch_core::otlp::common::v1::AnyValue;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::semconv;

/// The lifecycle state an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn parse(s: &str) -> Option<State> {
        match s {
            "pending" => Some(State::Pending),
            "firing" => Some(State::Firing),
            "resolved" | "inactive" => Some(State::Resolved),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }
}

/// One alert event, decoded from its log record.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertEvent {
    /// `alert.name`: the rule name.
    pub name: String,
    /// `alert.state`; `None` when missing or not one of pending, firing, resolved.
    pub state: Option<State>,
    /// The state as written (kept for the webhook payload).
    pub state_text: String,
    /// `alert.resend`: a re-send of a firing alert whose state did not change.
    pub resend: bool,
    pub severity: Option<String>,
    pub rule_kind: Option<String>,
    pub fingerprint: Option<String>,
    pub verdict: Option<String>,
    pub verdict_reason: Option<String>,
    /// `alert.starts_at` as written (RFC 3339).
    pub starts_at: Option<String>,
    /// `alert.ends_at` as written (RFC 3339).
    pub ends_at: Option<String>,
    pub generator_url: Option<String>,
    pub runbook_url: Option<String>,
    pub status_page_url: Option<String>,
    /// `alert.label.<k>`, prefix removed.
    pub labels: BTreeMap<String, String>,
    /// `alert.annotation.<k>`, prefix removed.
    pub annotations: BTreeMap<String, String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// `alert.signal.<k>` numbers, prefix removed (`probe.failures`, `traffic.error_ratio`).
    pub signals: BTreeMap<String, f64>,
    /// The record's time (or observed time), if set.
    pub time: Option<SystemTime>,
}

/// Whether a record is an alert event (event name, or an `event.name` attribute for producers
/// that predate the field).
pub fn is_alert(r: &LogRecord) -> bool {
    r.event_name == semconv::ALERT_EVENT
        || r.attributes.iter().any(|kv| {
            kv.key == "event.name" && text(&kv.value).as_deref() == Some(semconv::ALERT_EVENT)
        })
}

impl AlertEvent {
    /// Decodes an alert event; `None` if the record is not one or has no `alert.name`.
    pub fn from_record(r: &LogRecord) -> Option<AlertEvent> {
        if !is_alert(r) {
            return None;
        }
        let mut ev = AlertEvent::default();
        for kv in &r.attributes {
            let key = kv.key.as_str();
            if let Some(k) = key.strip_prefix(semconv::ALERT_LABEL_PREFIX) {
                if let Some(v) = text(&kv.value) {
                    ev.labels.insert(k.to_owned(), v);
                }
                continue;
            }
            if let Some(k) = key.strip_prefix(semconv::ALERT_ANNOTATION_PREFIX) {
                if let Some(v) = text(&kv.value) {
                    ev.annotations.insert(k.to_owned(), v);
                }
                continue;
            }
            if let Some(k) = key.strip_prefix(semconv::ALERT_SIGNAL_PREFIX) {
                if let Some(v) = number(&kv.value) {
                    ev.signals.insert(k.to_owned(), v);
                }
                continue;
            }
            match key {
                semconv::ALERT_NAME => ev.name = text(&kv.value).unwrap_or_default(),
                semconv::ALERT_STATE => {
                    ev.state_text = text(&kv.value).unwrap_or_default();
                    ev.state = State::parse(&ev.state_text);
                }
                semconv::ALERT_RESEND => ev.resend = boolean(&kv.value),
                semconv::ALERT_SEVERITY => ev.severity = non_empty(&kv.value),
                semconv::ALERT_RULE_KIND => ev.rule_kind = non_empty(&kv.value),
                semconv::ALERT_FINGERPRINT => ev.fingerprint = non_empty(&kv.value),
                semconv::ALERT_VERDICT => ev.verdict = non_empty(&kv.value),
                semconv::ALERT_VERDICT_REASON => ev.verdict_reason = non_empty(&kv.value),
                semconv::ALERT_STARTS_AT => ev.starts_at = non_empty(&kv.value),
                semconv::ALERT_ENDS_AT => ev.ends_at = non_empty(&kv.value),
                semconv::ALERT_GENERATOR_URL => ev.generator_url = non_empty(&kv.value),
                semconv::ALERT_RUNBOOK_URL => ev.runbook_url = non_empty(&kv.value),
                semconv::ALERT_STATUS_PAGE_URL => ev.status_page_url = non_empty(&kv.value),
                semconv::ALERT_VALUE => ev.value = number(&kv.value),
                semconv::ALERT_THRESHOLD => ev.threshold = number(&kv.value),
                _ => {}
            }
        }
        if ev.name.is_empty() {
            ev.name = ev.labels.get("alertname").cloned().unwrap_or_default();
        }
        if ev.name.is_empty() {
            return None;
        }
        let nanos = if r.time_unix_nano != 0 {
            r.time_unix_nano
        } else {
            r.observed_time_unix_nano
        };
        ev.time = (nanos != 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos));
        Some(ev)
    }

    /// The identity of the alert instance: `alert.fingerprint`, else the rule name and labels.
    pub fn key(&self) -> String {
        if let Some(f) = &self.fingerprint {
            return f.clone();
        }
        let mut k = self.name.clone();
        for (l, v) in &self.labels {
            if l != "alertname" {
                k.push('\u{1f}');
                k.push_str(l);
                k.push('=');
                k.push_str(v);
            }
        }
        k
    }
}

fn text(v: &Option<AnyValue>) -> Option<String> {
    match v.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::BoolValue(b) => Some(b.to_string()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn non_empty(v: &Option<AnyValue>) -> Option<String> {
    text(v).filter(|s| !s.is_empty())
}

fn number(v: &Option<AnyValue>) -> Option<f64> {
    let n = match v.as_ref()?.value.as_ref()? {
        Value::DoubleValue(d) => *d,
        Value::IntValue(i) => *i as f64,
        Value::StringValue(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

fn boolean(v: &Option<AnyValue>) -> bool {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::BoolValue(b)) => *b,
        Some(Value::StringValue(s)) => s == "true",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use authwatch_core::data::kv as attr;

    #[test]
    fn non_alert_records_are_not_events() {
        let r = LogRecord {
            event_name: "authwatch.error_group.new".into(),
            attributes: vec![attr(semconv::ALERT_NAME, Value::StringValue("x".into()))],
            ..Default::default()
        };
        assert!(AlertEvent::from_record(&r).is_none());
        let r = LogRecord {
            event_name: semconv::ALERT_EVENT.into(),
            ..Default::default()
        };
        assert!(AlertEvent::from_record(&r).is_none(), "no name");
    }
}
