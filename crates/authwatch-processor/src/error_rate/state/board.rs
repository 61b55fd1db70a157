//! What the status page shows per dependency: window totals, calls by error class and the
//! largest error groups.

use std::time::Duration;

use authwatch_core::time::Window;

use super::super::classify::{ErrorClass, Source};
use super::groups::{fingerprint, Group, GroupKey};
use super::State;

/// Error groups published per dependency.
const BOARD_GROUPS: usize = 10;

impl State {
    /// What the status page shows per dependency: `(name, dependencies value, error_groups
    /// value)`, shapes as documented in `authwatch_core::board`. Called on flush.
    pub fn board(&mut self, now: Duration) -> Vec<(String, serde_json::Value, serde_json::Value)> {
        use serde_json::json;
        let clock = self.clock;
        let secs = |d: Duration| clock.unix_nanos(d) as f64 / 1e9;
        let updated_at = secs(now);
        let mut out = Vec::with_capacity(self.dependencies.len());
        for dep in 0..self.dependencies.len() {
            let name = self.dependencies[dep].name.clone();
            let mut windows = Vec::with_capacity(self.windows.len());
            for (i, w) in self.windows.clone().into_iter().enumerate() {
                let (tr, te) = self.window_totals(dep, Source::Traffic, i, now);
                let (pr, pe) = self.window_totals(dep, Source::Probe, i, now);
                let (r, e) = (tr + pr, te + pe);
                windows.push(json!({
                    "window": Window(w).to_string(),
                    "requests": r,
                    "errors": e,
                    "error_ratio": (r > 0).then(|| e as f64 / r as f64),
                    "traffic": {"requests": tr, "errors": te},
                    "probe": {"requests": pr, "errors": pe},
                }));
            }
            let totals = self.class_totals.get(dep).copied().unwrap_or_default();
            let by_class: serde_json::Map<String, serde_json::Value> = ErrorClass::ALL
                .iter()
                .map(|c| (c.as_str().to_owned(), json!(totals[c.index()])))
                .collect();
            let requests: u64 = totals.iter().sum();
            let errors: u64 = ErrorClass::ALL
                .iter()
                .filter(|c| self.is_error[c.index()])
                .map(|c| totals[c.index()])
                .sum();
            let mut groups: Vec<(&GroupKey, &Group)> = self
                .groups
                .iter()
                .filter(|(k, _)| k.dep as usize == dep)
                .collect();
            groups.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(b.1.last_seen.cmp(&a.1.last_seen)));
            let groups: Vec<serde_json::Value> = groups
                .into_iter()
                .take(BOARD_GROUPS)
                .map(|(k, g)| {
                    let endpoint = self.endpoints.name(k.endpoint);
                    let class = ErrorClass::ALL[k.class as usize].as_str();
                    let key = self.error_keys.name(k.key);
                    let total = self
                        .endpoint_requests
                        .get(&(k.dep, k.endpoint))
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(g.endpoint_requests_before);
                    json!({
                        "fingerprint": fingerprint(&name, endpoint, class, key),
                        "endpoint": endpoint,
                        "class": class,
                        "key": key,
                        "count": g.count,
                        "first_seen": secs(g.first_seen),
                        "last_seen": secs(g.last_seen),
                        "services": g.services.iter().map(|s| self.services.name(*s)).collect::<Vec<_>>(),
                        "share": if total == 0 { 0.0 } else { g.count as f64 / total as f64 },
                    })
                })
                .collect();
            let dep_value = json!({
                "dependency": name,
                "updated_at": updated_at,
                "requests": requests,
                "errors": errors,
                "by_class": by_class,
                "windows": windows,
            });
            let groups_value = json!({"dependency": name, "groups": groups});
            out.push((name, dep_value, groups_value));
        }
        out
    }
}
