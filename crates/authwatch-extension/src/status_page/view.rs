//! What the page shows: the `/api/v1/status` document, built from the status board's sections
//! (see `authwatch_core::board`) and the sampled history of error ratios.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use authwatch_core::board::{self, StatusBoard};
use serde_json::{json, Map, Value};

use super::Config;

pub(crate) const DEPENDENCIES: &str = board::DEPENDENCIES;

/// Error groups shown per dependency.
const GROUPS_SHOWN: usize = 5;

/// `(unix seconds, error ratio)` samples, oldest first.
type Samples = VecDeque<(f64, Option<f64>)>;

/// Sampled error ratios per dependency and window, oldest first, at most `size` each.
#[derive(Debug, Clone)]
pub struct History {
    size: usize,
    series: BTreeMap<String, BTreeMap<String, Samples>>,
}

impl History {
    pub fn new(size: usize) -> Self {
        History {
            size: size.max(1),
            series: BTreeMap::new(),
        }
    }

    /// Adds one sample per dependency and window from the `dependencies` section.
    pub fn sample(&mut self, deps: &BTreeMap<String, Value>, now: SystemTime) {
        let t = unix(now);
        for (name, d) in deps {
            let per_dep = self.series.entry(name.clone()).or_default();
            for w in d.get("windows").and_then(Value::as_array).into_iter().flatten() {
                let Some(window) = w.get("window").and_then(Value::as_str) else {
                    continue;
                };
                let ratio = w.get("error_ratio").and_then(Value::as_f64);
                let s = per_dep.entry(window.to_owned()).or_default();
                s.push_back((t, ratio));
                while s.len() > self.size {
                    s.pop_front();
                }
            }
        }
        // Forget dependencies no longer published.
        self.series.retain(|k, _| deps.contains_key(k));
    }

    /// `[{"window": "1m", "points": [[t, ratio|null], ...]}, ...]` of one dependency.
    pub fn of(&self, dependency: &str) -> Value {
        let Some(per_dep) = self.series.get(dependency) else {
            return json!([]);
        };
        Value::Array(
            per_dep
                .iter()
                .map(|(w, points)| {
                    json!({
                        "window": w,
                        "points": points.iter().map(|(t, r)| json!([t, r])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }
}

pub(crate) fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| (d.as_millis() as f64) / 1000.0)
        .unwrap_or(0.0)
}

fn arr(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_array).cloned().unwrap_or_default()
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

/// The whole `/api/v1/status` document.
pub(crate) fn status(board: &StatusBoard, history: &History, cfg: &Config, now: SystemTime) -> Value {
    // Alerts of every alerts connector together.
    let mut firing = Vec::new();
    let mut pending = Vec::new();
    let mut resolved = Vec::new();
    let mut verdicts: BTreeMap<String, Value> = BTreeMap::new();
    for a in board.section(board::ALERTS).values() {
        firing.extend(arr(a.get("firing")));
        pending.extend(arr(a.get("pending")));
        resolved.extend(arr(a.get("resolved")));
        if let Some(Value::Object(v)) = a.get("verdicts") {
            for (k, x) in v {
                verdicts.entry(k.clone()).or_insert_with(|| x.clone());
            }
        }
    }
    firing.sort_by(|a, b| num(b, "starts_at").total_cmp(&num(a, "starts_at")));
    pending.sort_by(|a, b| num(b, "starts_at").total_cmp(&num(a, "starts_at")));
    resolved.sort_by(|a, b| num(b, "resolved_at").total_cmp(&num(a, "resolved_at")));
    resolved.truncate(cfg.recent_alerts.get());

    let groups = board.section(board::ERROR_GROUPS);
    let mut deps = Vec::new();
    let mut sections = board.section(board::DEPENDENCIES);
    // A dependency seen only in a tenant's log (logins, no calls) is shown too.
    for (k, v) in &verdicts {
        if v.get("logins").is_some_and(|l| !l.is_null()) {
            sections.entry(k.clone()).or_insert_with(|| json!({}));
        }
    }
    for (name, d) in sections {
        let mine: Vec<&Value> = firing
            .iter()
            .filter(|a| a.get("dependency").and_then(Value::as_str) == Some(name.as_str()))
            .collect();
        // The current verdict from the signals; a firing alert's when the signals look calm
        // (e.g. `keep_firing_for`); `unknown` without an alerts connector.
        let signals = verdicts.get(&name);
        let calm = signals.is_none_or(|v| v.get("verdict").and_then(Value::as_str) == Some("healthy"));
        let (verdict, reason, source) = match (signals, mine.first()) {
            (Some(v), _) if !calm => (v.get("verdict").cloned(), v.get("reason").cloned(), "signals"),
            (_, Some(a)) => (a.get("verdict").cloned(), a.get("verdict_reason").cloned(), "alert"),
            (Some(v), None) => (v.get("verdict").cloned(), v.get("reason").cloned(), "signals"),
            (None, None) => (None, None, "none"),
        };
        let mut top = arr(groups.get(&name).and_then(|g| g.get("groups")));
        top.truncate(GROUPS_SHOWN);
        let mut out = Map::new();
        out.insert("name".into(), Value::String(name.clone()));
        out.insert("verdict".into(), verdict.unwrap_or_else(|| "unknown".into()));
        out.insert("verdict_reason".into(), reason.unwrap_or(Value::Null));
        out.insert("verdict_source".into(), source.into());
        for k in ["requests", "errors", "by_class", "windows", "updated_at"] {
            out.insert(k.into(), d.get(k).cloned().unwrap_or(Value::Null));
        }
        out.insert(
            "firing".into(),
            Value::Array(mine.iter().filter_map(|a| a.get("name").cloned()).collect()),
        );
        out.insert(
            "logins".into(),
            signals.and_then(|v| v.get("logins")).cloned().unwrap_or(Value::Null),
        );
        out.insert("history".into(), history.of(&name));
        out.insert("error_groups".into(), Value::Array(top));
        deps.push(Value::Object(out));
    }

    json!({
        "generated_at": unix(now),
        "title": cfg.title,
        "banner": cfg.banner,
        "refresh_interval_ms": cfg.refresh_interval.as_millis() as u64,
        "dependencies": deps,
        "probes": board.section(board::PROBES).into_values().collect::<Vec<_>>(),
        "provider_status": board.section(board::PROVIDER_STATUS).into_values().collect::<Vec<_>>(),
        "alerts": { "firing": firing, "pending": pending, "resolved": resolved },
    })
}
