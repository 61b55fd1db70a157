//! The status board: components publish small JSON snapshots of what they know (a dependency's
//! error ratios and verdict, the last probe runs, the provider's status, firing alerts, top
//! error groups) and the `status_page` extension reads them. Publishing replaces the previous
//! snapshot under the same section and key, so memory stays bounded by what is configured.
//!
//! ## Sections
//!
//! Times are Unix seconds (numbers); ratios are 0..1; durations are milliseconds (`*_ms`).
//! Strings may come from telemetry (span attributes, status-page texts): readers must escape
//! them. Components publish off the per-item path (on flush, evaluation or run).
//!
//! - [`DEPENDENCIES`], key = dependency name, published by the `error_rate` connector on every
//!   flush and live update (at once when calls are counted, then at most every `live_interval`): `{"dependency", "connector", "updated_at", "requests", "errors", "by_class":
//!   {"ok": n, "server_error": n, ...}, "windows": [{"window": "1m", "requests", "errors",
//!   "error_ratio": 0.05 | null, "traffic": {"requests", "errors"}, "probe": {"requests",
//!   "errors"}}]}`; `requests`, `errors` and `by_class` count every matched call since start,
//!   `windows` are the sliding windows (`error_ratio` null while a window has no calls).
//! - [`ERROR_GROUPS`], key = dependency name, by `error_rate` on every flush and live update: `{"dependency",
//!   "groups": [{"fingerprint", "endpoint", "class", "key", "count", "first_seen", "last_seen",
//!   "services": [..], "share"}]}`, at most 10, most calls first.
//! - [`ALERTS`], key = the `alerts` connector's id, on every evaluation tick: `{"updated_at",
//!   "firing": [Alert], "pending": [Alert], "resolved": [Alert], "verdicts": {dependency:
//!   {"verdict", "reason", "traffic": {"requests", "errors", "error_ratio"}, "probe": {"runs",
//!   "failures", "consecutive_failures"}, "status_indicator": n | null}}}` where Alert is
//!   `{"name", "state", "severity", "kind", "fingerprint", "dependency": s | null, "labels": {..},
//!   "verdict", "verdict_reason", "value", "threshold", "summary", "status_page_url",
//!   "starts_at", "updated_at", "resolved_at": t | null}`; `resolved` keeps the last 20, newest
//!   first. A dependency's verdict is `healthy` when nothing fails, else one of the alert
//!   verdicts (`provider_outage`, `tenant_issue`, `application_issue`, `transient`).
//! - [`PROBES`], key = `<receiver id>/<check>`, by the `synthetic` receiver after every run:
//!   `{"receiver", "check", "type", "server_address", "runs": [Run]}` with the last 10 runs,
//!   newest first; Run is `{"started_at", "outcome", "success", "duration_ms", "phases":
//!   {"dns": ms, "connect": ms, "tls": ms, "request": ms, "transfer": ms, "jwks": ms,
//!   "validate": ms}, "status": n | null, "oauth_error", "error_type", "message", "ratelimit":
//!   {"limit", "remaining", "reset"} | null, "retry_after_s", "cert_not_after": t | null}`.
//! - [`PROVIDER_STATUS`], key = page name, by the `statuspage` receiver after every poll:
//!   `{"page", "url", "format", "checked_at", "up", "error": kind | null, "indicator": 0..3 |
//!   null, "components": [{"id", "name", "level", "status"}], "incidents": [{"id", "name",
//!   "impact", "status", "url", "updated_at", "update"}]}` (open incidents only; the last known
//!   components and incidents are kept while the page is down).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Section: error ratios and counts per dependency (`error_rate`).
pub const DEPENDENCIES: &str = "dependencies";
/// Section: top error groups per dependency (`error_rate`).
pub const ERROR_GROUPS: &str = "error_groups";
/// Section: firing, pending and resolved alerts and verdicts per `alerts` connector.
pub const ALERTS: &str = "alerts";
/// Section: the last runs per synthetic check (`synthetic`).
pub const PROBES: &str = "probes";
/// Section: each watched status page (`statuspage`).
pub const PROVIDER_STATUS: &str = "provider_status";

/// Shared board; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct StatusBoard {
    inner: Arc<RwLock<BTreeMap<String, BTreeMap<String, Value>>>>,
}

impl StatusBoard {
    /// Replaces the snapshot at `section` / `key` (e.g. `"dependencies"` / `"auth0"`).
    pub fn publish(&self, section: &str, key: &str, value: Value) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        g.entry(section.to_owned())
            .or_default()
            .insert(key.to_owned(), value);
    }

    /// Removes one snapshot.
    pub fn remove(&self, section: &str, key: &str) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = g.get_mut(section) {
            s.remove(key);
        }
    }

    /// One section, by key.
    pub fn section(&self, section: &str) -> BTreeMap<String, Value> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.get(section).cloned().unwrap_or_default()
    }

    /// Everything: `{ section: { key: value } }`.
    pub fn snapshot(&self) -> Value {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        serde_json::to_value(&*g).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_replaces_and_snapshots() {
        let b = StatusBoard::default();
        b.publish("dependencies", "auth0", serde_json::json!({"ratio": 0.1}));
        b.publish("dependencies", "auth0", serde_json::json!({"ratio": 0.2}));
        b.publish("alerts", "x", serde_json::json!(1));
        assert_eq!(
            b.snapshot(),
            serde_json::json!({"alerts": {"x": 1}, "dependencies": {"auth0": {"ratio": 0.2}}})
        );
        b.remove("alerts", "x");
        assert!(b.section("alerts").is_empty());
    }
}
