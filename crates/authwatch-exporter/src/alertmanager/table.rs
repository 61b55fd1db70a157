//! The table of alerts the `alertmanager` exporter keeps: the newest state of each alert
//! instance, re-sent every `resend_interval` (firing ones so that they do not expire, resolved
//! ones for 15 minutes so that a replica that missed the resolution still gets it, as
//! Prometheus does), and what one POST of a set of alerts looks like.
//!
//! Queue items carry only alert keys ([`AlertKeys`]); the sender looks the alert up when it
//! sends. A send therefore always carries the newest state: a firing event that waited in the
//! queue behind its resolution goes out as resolved, and a retried firing alert gets a fresh
//! `endsAt`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use authwatch_core::time::{format_rfc3339, parse_rfc3339, Precision};
use authwatch_core::{ConsumeError, Consumer, Signal, SignalKind};
use futures::future::BoxFuture;
use authwatch_core::telemetry::Counter;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::helper::alert::event::{AlertEvent, State};
use crate::helper::alert::records;
use crate::helper::{QueueItem, SharedEnqueue};

/// How long resolved alerts are kept and re-sent (Prometheus `resolvedRetention`).
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);
/// The most alert instances the table holds; beyond it the stalest entry is forgotten.
pub const MAX_ALERTS: usize = 10_000;

/// One alert as `POST /api/v2/alerts` takes it (Alertmanager's `postableAlert`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableAlert {
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    #[serde(
        rename = "generatorURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub generator_url: String,
}

/// A label or annotation name Alertmanager accepts: `[a-zA-Z_][a-zA-Z0-9_]*`; other
/// characters become `_` (`probe.failures` → `probe_failures`).
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Times in alerts: RFC 3339 with milliseconds, UTC.
fn format_time(t: SystemTime) -> String {
    format_rfc3339(t, Precision::Millis)
}

/// A number as an annotation: shortest form (`0.25`, `14.4`, `3`).
fn num(v: f64) -> String {
    format!("{v}")
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Status {
    Firing,
    /// Resolved at `at`; forgotten after [`RESOLVED_RETENTION`] from `since`.
    Resolved { at: SystemTime, since: Instant },
}

/// A label set the alert was sent under before its labels changed (e.g. a new verdict); sent
/// as resolved so that Alertmanager does not keep it firing until it expires.
#[derive(Debug, Clone)]
struct Retired {
    alert: PostableAlert,
    since: Instant,
}

#[derive(Debug, Clone)]
struct Entry {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    starts_at: Option<SystemTime>,
    generator_url: String,
    status: Status,
    next_resend: Instant,
    updated: Instant,
    retired: Vec<Retired>,
}

/// What the table was built with.
#[derive(Debug, Clone)]
pub struct TableConfig {
    pub alert_ttl: Duration,
    pub resend_interval: Duration,
    pub generator_url: String,
}

/// The alerts the exporter knows, by key (`alert.fingerprint`, else name and labels).
pub struct Table {
    cfg: TableConfig,
    entries: Mutex<HashMap<String, Entry>>,
    changed: Notify,
}

impl Table {
    pub fn new(cfg: TableConfig) -> Self {
        Table {
            cfg,
            entries: Mutex::new(HashMap::new()),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Labels of an event: its `alert.label.*`, plus `alertname`, `severity` and `verdict`
    /// unless the event's labels set them.
    pub fn labels_of(ev: &AlertEvent) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = ev
            .labels
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (sanitize(k), v.clone()))
            .collect();
        labels
            .entry("alertname".into())
            .or_insert_with(|| ev.name.clone());
        if let Some(s) = &ev.severity {
            labels.entry("severity".into()).or_insert_with(|| s.clone());
        }
        if let Some(v) = &ev.verdict {
            labels.entry("verdict".into()).or_insert_with(|| v.clone());
        }
        labels
    }

    /// Annotations of an event: its `alert.annotation.*`, plus `runbook_url`,
    /// `status_page_url`, `verdict_reason`, `rule_kind`, `value`, `threshold` and
    /// `signal_<name>` for each `alert.signal.<name>`, unless the event's annotations set them.
    pub fn annotations_of(ev: &AlertEvent) -> BTreeMap<String, String> {
        let mut a: BTreeMap<String, String> = ev
            .annotations
            .iter()
            .map(|(k, v)| (sanitize(k), v.clone()))
            .collect();
        let mut add = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.entry(k.to_owned()).or_insert(v);
            }
        };
        add("runbook_url", ev.runbook_url.clone());
        add("status_page_url", ev.status_page_url.clone());
        add("verdict_reason", ev.verdict_reason.clone());
        add("rule_kind", ev.rule_kind.clone());
        add("value", ev.value.map(num));
        add("threshold", ev.threshold.map(num));
        for (k, v) in &ev.signals {
            add(&format!("signal_{}", sanitize(k)), Some(num(*v)));
        }
        a
    }

    /// Records an event. `None`: not for Alertmanager (pending, or an unknown state).
    pub fn apply(&self, ev: &AlertEvent) -> Option<String> {
        let state = ev.state?;
        if state == State::Pending {
            return None;
        }
        let now = Instant::now();
        let key = ev.key();
        let labels = Self::labels_of(ev);
        let annotations = Self::annotations_of(ev);
        let event_time = ev.time.unwrap_or_else(SystemTime::now);
        let starts_at = ev.starts_at.as_deref().and_then(parse_rfc3339);
        let status = match state {
            State::Firing => Status::Firing,
            _ => Status::Resolved {
                at: ev
                    .ends_at
                    .as_deref()
                    .and_then(parse_rfc3339)
                    .unwrap_or(event_time),
                since: now,
            },
        };
        let generator_url = ev
            .generator_url
            .clone()
            .unwrap_or_else(|| self.cfg.generator_url.clone());
        let mut entries = self.lock();
        let mut retired = Vec::new();
        let mut kept_start = None;
        if let Some(old) = entries.remove(&key) {
            retired = old.retired.clone();
            if old.status == Status::Firing && state == State::Firing {
                kept_start = old.starts_at;
            }
            if old.labels != labels && old.status == Status::Firing {
                let ended = SystemTime::now();
                retired.push(Retired {
                    alert: PostableAlert {
                        ends_at: Some(format_time(
                            old.starts_at.map_or(ended, |s| s.max(ended)),
                        )),
                        ..old.postable(&self.cfg, ended)
                    },
                    since: now,
                });
            }
        }
        // An alert that keeps firing keeps its first start if the event names none.
        let starts_at = starts_at.or(kept_start).or(ev.time);
        // A label set in use again is no longer retired.
        retired.retain(|r| r.alert.labels != labels);
        if entries.len() >= MAX_ALERTS {
            let stalest = entries
                .iter()
                .min_by_key(|(_, e)| (e.status == Status::Firing, e.updated))
                .map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                entries.remove(&k);
            }
        }
        entries.insert(
            key.clone(),
            Entry {
                labels,
                annotations,
                starts_at,
                generator_url,
                status,
                next_resend: now + self.cfg.resend_interval,
                updated: now,
                retired,
            },
        );
        drop(entries);
        self.changed.notify_one();
        Some(key)
    }

    /// What to POST for these keys now: each alert's newest state, plus label sets it retired.
    /// Unknown keys (forgotten since they were queued) are skipped.
    pub fn postable(&self, keys: &[String], now: SystemTime) -> Vec<PostableAlert> {
        let entries = self.lock();
        let mut out = Vec::new();
        for k in keys {
            if let Some(e) = entries.get(k) {
                out.extend(e.retired.iter().map(|r| r.alert.clone()));
                out.push(e.postable(&self.cfg, now));
            }
        }
        out
    }

    /// Keys due for a re-send (their next re-send moved on), forgetting resolved alerts older
    /// than [`RESOLVED_RETENTION`]; and when the next one is due.
    pub fn due(&self, now: Instant) -> (Vec<String>, Option<Instant>) {
        let mut entries = self.lock();
        entries.retain(|_, e| match e.status {
            Status::Resolved { since, .. } => now < since + RESOLVED_RETENTION,
            Status::Firing => true,
        });
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (k, e) in entries.iter_mut() {
            e.retired.retain(|r| now < r.since + RESOLVED_RETENTION);
            if e.next_resend <= now {
                due.push(k.clone());
                e.next_resend = now + self.cfg.resend_interval;
            }
            next = Some(next.map_or(e.next_resend, |n| n.min(e.next_resend)));
        }
        due.sort();
        (due, next)
    }

    /// Alerts currently firing.
    #[cfg(test)]
    pub fn firing(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.status == Status::Firing)
            .count()
    }
}

impl Entry {
    fn postable(&self, cfg: &TableConfig, now: SystemTime) -> PostableAlert {
        let ends_at = match self.status {
            // Expires unless re-sent: Alertmanager resolves it `alert_ttl` after the last send.
            Status::Firing => now + cfg.alert_ttl,
            Status::Resolved { at, .. } => self.starts_at.map_or(at, |s| s.max(at)),
        };
        PostableAlert {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: self.starts_at.map(format_time),
            ends_at: Some(format_time(ends_at)),
            generator_url: self.generator_url.clone(),
        }
    }
}

// === impl AlertKeys ===

/// What the sending queue carries: the keys of alerts to send, each once. Counted as log
/// records (one per alert) in the exporter's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertKeys(pub Vec<String>);

impl QueueItem for AlertKeys {
    fn kind(&self) -> SignalKind {
        SignalKind::Logs
    }

    fn item_count(&self) -> usize {
        self.0.len()
    }

    fn encoded_size(&self) -> usize {
        self.0.iter().map(String::len).sum()
    }

    fn merge(parts: Vec<Self>) -> Self {
        let mut keys: Vec<String> = Vec::new();
        for k in parts.into_iter().flat_map(|p| p.0) {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        AlertKeys(keys)
    }
}

// === impl AlertConsumer ===

/// What the pipeline feeds: records alert events in the table and queues their keys; other
/// records (and pending alerts) are counted as ignored.
pub struct AlertConsumer {
    pub table: Arc<Table>,
    pub next: SharedEnqueue<AlertKeys>,
    pub ignored: Counter,
}

impl Consumer for AlertConsumer {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let data = data.into_decoded()?;
            let mut keys: Vec<String> = Vec::new();
            let mut ignored = 0u64;
            for r in records(&data) {
                match AlertEvent::from_record(r).and_then(|ev| self.table.apply(&ev)) {
                    Some(k) => {
                        if !keys.contains(&k) {
                            keys.push(k);
                        }
                    }
                    None => ignored += 1,
                }
            }
            self.ignored.inc_by(ignored);
            if keys.is_empty() {
                return Ok(());
            }
            self.next.enqueue(AlertKeys(keys)).await
        })
    }
}

/// Re-sends due alerts through `next` (the sending queue) until `shutdown`.
pub async fn resend_loop(
    table: Arc<Table>,
    next: SharedEnqueue<AlertKeys>,
    shutdown: CancellationToken,
) {
    loop {
        let (due, next_at) = table.due(Instant::now());
        if !due.is_empty() {
            let n = due.len();
            if let Err(e) = next.enqueue(AlertKeys(due)).await {
                debug!(alerts = n, error = %e, "Could not queue the re-send of alerts.");
            }
        }
        let far = Instant::now() + Duration::from_secs(3600);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = table.changed.notified() => {}
            _ = tokio::time::sleep_until(next_at.unwrap_or(far)) => {}
        }
    }
}
