//! The process's health, as the service sees it and the `health_check` extension reports it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Where the process is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Ready,
    Stopping,
}

/// One component's last reported status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "error", rename_all = "snake_case")]
pub enum ComponentStatus {
    Ok,
    /// Working, but something it depends on fails (e.g. the export destination is down).
    RecoverableError(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub phase: Phase,
    pub components: BTreeMap<String, ComponentStatus>,
}

/// Shared health state. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Health {
    inner: Arc<Mutex<HealthReport>>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            inner: Arc::new(Mutex::new(HealthReport {
                phase: Phase::Starting,
                components: BTreeMap::new(),
            })),
        }
    }
}

impl Health {
    pub fn set_phase(&self, phase: Phase) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).phase = phase;
    }

    pub fn report(&self, component: &str, status: ComponentStatus) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match g.components.get(component) {
            Some(s) if *s == status => {}
            _ => {
                g.components.insert(component.to_owned(), status);
            }
        }
    }

    pub fn snapshot(&self) -> HealthReport {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn is_ready(&self) -> bool {
        self.snapshot().phase == Phase::Ready
    }
}
