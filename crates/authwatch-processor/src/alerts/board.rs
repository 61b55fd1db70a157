//! What the alerts connector publishes on the status board (section `alerts`, shape in
//! `authwatch_core::board`): the firing and pending alerts, the recently resolved ones, and the
//! current verdict per dependency. Updated from the alert events and on every tick.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use authwatch_core::otlp::common::v1::any_value;
use authwatch_core::otlp::logs::v1::LogRecord;
use authwatch_core::semconv;
use serde_json::{json, Map, Value};

use super::engine::Engine;
use super::verdict::{verdict, Verdict};
use super::store::Store;
use super::VerdictConfig;

fn window_name(d: Duration) -> String {
    authwatch_core::time::Window(d).to_string()
}

/// Resolved alerts kept.
const RESOLVED_KEPT: usize = 20;

#[derive(Debug, Default)]
pub(super) struct BoardAlerts {
    /// Firing and pending alerts by fingerprint.
    active: BTreeMap<String, Value>,
    /// Newest first.
    resolved: VecDeque<Value>,
}

fn attr<'a>(r: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
    r.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn text(r: &LogRecord, key: &str) -> Value {
    match attr(r, key) {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        _ => Value::Null,
    }
}

fn number(r: &LogRecord, key: &str) -> Value {
    match attr(r, key) {
        Some(any_value::Value::DoubleValue(d)) if d.is_finite() => json!(d),
        Some(any_value::Value::IntValue(i)) => json!(i),
        _ => Value::Null,
    }
}

fn unix_of_rfc3339(v: &Value) -> Value {
    v.as_str()
        .and_then(authwatch_core::time::parse_rfc3339)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(Value::Null, |d| json!(d.as_millis() as f64 / 1000.0))
}

impl BoardAlerts {
    /// Takes one alert event into account.
    pub(super) fn record(&mut self, r: &LogRecord) {
        let Some(Value::String(fp)) = Some(text(r, semconv::ALERT_FINGERPRINT)) else {
            return;
        };
        let state = text(r, semconv::ALERT_STATE);
        let mut labels = Map::new();
        let mut summary = Value::Null;
        for kv in &r.attributes {
            let Some(any_value::Value::StringValue(v)) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
                continue;
            };
            if let Some(k) = kv.key.strip_prefix(semconv::ALERT_LABEL_PREFIX) {
                labels.insert(k.to_owned(), Value::String(v.clone()));
            } else if kv.key == format!("{}summary", semconv::ALERT_ANNOTATION_PREFIX) {
                summary = Value::String(v.clone());
            }
        }
        let at = r.time_unix_nano as f64 / 1e9;
        let alert = json!({
            "name": text(r, semconv::ALERT_NAME),
            "state": state,
            "severity": text(r, semconv::ALERT_SEVERITY),
            "kind": text(r, semconv::ALERT_RULE_KIND),
            "fingerprint": fp,
            "dependency": labels.get("dependency").cloned().unwrap_or(Value::Null),
            "labels": labels,
            "verdict": text(r, semconv::ALERT_VERDICT),
            "verdict_reason": text(r, semconv::ALERT_VERDICT_REASON),
            "value": number(r, semconv::ALERT_VALUE),
            "threshold": number(r, semconv::ALERT_THRESHOLD),
            "summary": summary,
            "status_page_url": text(r, semconv::ALERT_STATUS_PAGE_URL),
            "starts_at": unix_of_rfc3339(&text(r, semconv::ALERT_STARTS_AT)),
            "updated_at": at,
            "resolved_at": Value::Null,
        });
        match state.as_str() {
            Some("firing") | Some("pending") => {
                self.active.insert(fp, alert);
            }
            Some("resolved") => {
                self.active.remove(&fp);
                let mut a = alert;
                a["resolved_at"] = json!(at);
                self.resolved.push_front(a);
                self.resolved.truncate(RESOLVED_KEPT);
            }
            _ => {
                self.active.remove(&fp);
            }
        }
    }

    /// The section value at `now`, with the current verdict of every dependency seen.
    pub(super) fn value(
        &self,
        engine: &Engine,
        store: &Store,
        cfg: &VerdictConfig,
        now: Duration,
        updated_at: f64,
    ) -> Value {
        let by_state = |s: &str| -> Vec<Value> {
            self.active
                .values()
                .filter(|a| a["state"] == s)
                .cloned()
                .collect()
        };
        let mut verdicts = Map::new();
        let mut deps = store.dependencies();
        deps.extend(store.login_dependencies());
        deps.sort();
        deps.dedup();
        for dep in deps {
            let sig = engine.signals(store, Some(&dep), now);
            let (v, reason) = verdict(&sig, cfg, false, false);
            let ratio = sig.traffic.ratio();
            let calm = v == Verdict::Transient
                && sig.probe_consecutive_failures == 0
                && sig.last_probe_ok != Some(false)
                && ratio.unwrap_or(0.0) < cfg.traffic_error_ratio;
            // Calm but slow: a firing latency alert of this dependency says `degraded`.
            let slow = self.active.values().find(|a| {
                a["state"] == "firing"
                    && a["dependency"] == dep.as_str()
                    && a["verdict"] == semconv::VERDICT_DEGRADED
            });
            let (v, reason) = if let (true, Some(a)) = (calm, slow) {
                (
                    semconv::VERDICT_DEGRADED,
                    a["verdict_reason"].as_str().unwrap_or_default().to_owned(),
                )
            } else if calm {
                (
                    "healthy",
                    "Probes pass, real traffic is under the error-ratio limit and the status page is green.".to_owned(),
                )
            } else {
                (v.as_str(), reason)
            };
            verdicts.insert(
                dep,
                json!({
                    "verdict": v,
                    "reason": reason,
                    "traffic": {"requests": sig.traffic.requests, "errors": sig.traffic.errors, "error_ratio": ratio},
                    "probe": {"runs": sig.probe_runs, "failures": sig.probe_failures, "consecutive_failures": sig.probe_consecutive_failures},
                    "status_indicator": sig.status_indicator,
                    "logins": sig.logins.as_ref().map(|l| json!({
                        "window": window_name(cfg.window),
                        "logins": l.window.logins,
                        "failures": l.window.failures(),
                        "provider_side_failures": l.window.provider_side,
                        "provider_errors": l.window.provider,
                        "tenant_errors": l.window.tenant,
                        "user_failures": l.window.user,
                        "users_affected": l.users_affected.map(|u| u.1),
                        "users_affected_provider_side": l.users_affected.map(|u| u.0),
                    })),
                }),
            );
        }
        json!({
            "updated_at": updated_at,
            "firing": by_state("firing"),
            "pending": by_state("pending"),
            "resolved": self.resolved,
            "verdicts": verdicts,
        })
    }
}
