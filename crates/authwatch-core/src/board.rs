//! The status board: components publish small JSON snapshots of what they know (a dependency's
//! error ratios and verdict, the last probe runs, the provider's status, firing alerts, top
//! error groups) and the `status_page` extension reads them. Publishing replaces the previous
//! snapshot under the same section and key, so memory stays bounded by what is configured.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

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
