//! Hands a decoded batch to the pipelines: dedupe, log records, the cumulative event counter.
//! Ids are marked as seen and counts committed only once the pipeline has accepted the batch, so
//! a batch refused with 503 and retried by Auth0 is counted once.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authwatch_core::data::kv_str;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::InstrumentationScope;
use authwatch_core::otlp::logs::v1::{ResourceLogs, ScopeLogs};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum,
};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::semconv;
use authwatch_core::telemetry::ReceiverTelemetry;
use authwatch_core::time::otlp_time;
use authwatch_core::{ConsumeError, Router, Signal, SignalKind};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::decode::{record, Event};
use super::dedupe::Dedupe;
use super::types::{category, Category};
use authwatch_tenant_logs::logins::Logins;
use authwatch_tenant_logs::seen::SeenFile;

/// The `dependency` the login counters are reported under.
pub(crate) const DEPENDENCY: &str = "auth0";

/// Scope name of everything this receiver sends.
pub(crate) const SCOPE: &str = "authwatch.auth0_logs";
/// Distinct (type, category) series at most; further codes are counted as `_overflow`.
const MAX_SERIES: usize = 1000;

/// What a batch came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub accepted: usize,
    pub duplicates: usize,
}

struct State {
    dedupe: Dedupe,
    counts: BTreeMap<(String, Category), u64>,
    duplicates: u64,
    logins: Logins,
}

/// Shared by every request of one receiver.
pub(crate) struct Ingest {
    next: Router,
    telemetry: ReceiverTelemetry,
    include_user_ids: bool,
    /// Start time of the cumulative counters (receiver start).
    start: u64,
    started: SystemTime,
    /// When the log stream last pushed a record that was accepted.
    last_push: std::sync::Mutex<Option<SystemTime>>,
    state: Mutex<State>,
    /// The durable record of accepted ids (pull with a `storage` directory).
    seen: Option<Arc<std::sync::Mutex<SeenFile>>>,
}

pub(crate) fn resource() -> Resource {
    Resource {
        attributes: vec![kv_str(semconv::SERVICE_NAME, "auth0")],
        ..Default::default()
    }
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// The type code as a metric attribute: kept when it looks like a code, else `invalid`.
fn metric_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        code.to_owned()
    } else {
        "invalid".to_owned()
    }
}

impl Ingest {
    /// The ingest of `config`'s receiver: its user-id, dedupe and users-window options.
    pub(crate) fn new(
        next: Router,
        telemetry: ReceiverTelemetry,
        config: &super::Config,
        started: SystemTime,
    ) -> Self {
        Ingest {
            next,
            telemetry,
            include_user_ids: config.include_user_ids,
            start: otlp_time(started),
            started,
            last_push: std::sync::Mutex::new(None),
            state: Mutex::new(State {
                dedupe: Dedupe::new(config.dedupe_window, config.dedupe_max_entries.get()),
                counts: BTreeMap::new(),
                duplicates: 0,
                logins: Logins::with_users_window(DEPENDENCY, config.users_window.get()),
            }),
            seen: None,
        }
    }

    /// Appends every accepted id to `file` from now on, and remembers `entries` (ids accepted
    /// before a restart, oldest first, with their accept time) as seen.
    pub(crate) fn with_seen(mut self, file: SeenFile, entries: Vec<(String, SystemTime)>) -> Self {
        let state = self.state.get_mut();
        let now_wall = SystemTime::now();
        let now = Instant::now();
        for (id, at) in entries {
            let age = now_wall.duration_since(at).unwrap_or(Duration::ZERO);
            let at = now.checked_sub(age).unwrap_or(now);
            state.dedupe.mark(id, at);
        }
        self.seen = Some(Arc::new(std::sync::Mutex::new(file)));
        self
    }

    /// Appends the accepted ids to the seen file and fsyncs it (before a checkpoint moves past
    /// them). A failure is logged: the ids are still deduplicated in memory.
    async fn persist(&self, ids: Vec<String>) {
        let Some(seen) = self.seen.clone() else {
            return;
        };
        if ids.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            let mut f = seen.lock().unwrap_or_else(|p| p.into_inner());
            f.append(ids.iter().map(String::as_str), SystemTime::now())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "Cannot record accepted Auth0 log_ids; after a restart some events may be delivered again."),
            Err(_) => warn!("Cannot record accepted Auth0 log_ids."),
        }
    }

    /// The receiver's start.
    pub(crate) fn started(&self) -> SystemTime {
        self.started
    }

    /// A pushed batch was accepted now.
    pub(crate) fn note_push(&self) {
        *self.last_push.lock().unwrap_or_else(|p| p.into_inner()) = Some(SystemTime::now());
    }

    /// When a pushed batch was last accepted.
    pub(crate) fn last_push(&self) -> Option<SystemTime> {
        *self.last_push.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends the batch; `Err` means nothing of it was taken and Auth0 should send it again.
    pub(crate) async fn ingest(&self, events: Vec<Event>) -> Result<Outcome, ConsumeError> {
        // One batch at a time: check, send, mark must not interleave, or two copies of a
        // record in concurrent requests would both pass.
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let mut in_batch = HashSet::new();
        let mut fresh = Vec::with_capacity(events.len());
        let mut duplicates = 0usize;
        for e in events {
            if let Some(id) = &e.log_id {
                if state.dedupe.contains(id, now) || !in_batch.insert(id.clone()) {
                    duplicates += 1;
                    continue;
                }
            }
            fresh.push(e);
        }
        let observed = otlp_time(SystemTime::now());

        let logs_on = self.next.accepts(SignalKind::Logs);
        if logs_on && !fresh.is_empty() {
            let records = fresh
                .iter()
                .map(|e| record(e, self.include_user_ids, observed))
                .collect();
            let req = ExportLogsServiceRequest {
                resource_logs: vec![ResourceLogs {
                    resource: Some(resource()),
                    scope_logs: vec![ScopeLogs {
                        scope: Some(scope()),
                        log_records: records,
                        schema_url: String::new(),
                    }],
                    schema_url: String::new(),
                }],
            };
            let n = fresh.len();
            if let Err(e) = self.next.route(Signal::Logs(req)).await {
                self.telemetry.refused(SignalKind::Logs, n);
                return Err(e);
            }
            self.telemetry.accepted(SignalKind::Logs, n);
        }

        let mut counts = state.counts.clone();
        for e in &fresh {
            let code = e.type_code();
            let mut key = (metric_code(code), category(code));
            if !counts.contains_key(&key) && counts.len() >= MAX_SERIES {
                key = ("_overflow".to_owned(), Category::Other);
            }
            *counts.entry(key).or_default() += 1;
        }
        let total_duplicates = state.duplicates + duplicates as u64;
        let mut logins = state.logins.clone();
        let wall = SystemTime::now();
        for l in fresh.iter().filter_map(super::logins::login) {
            logins.record(&l, wall);
        }

        if self.next.accepts(SignalKind::Metrics) && (!fresh.is_empty() || duplicates > 0) {
            let mut req = self.metrics(&counts, total_duplicates, observed);
            if logins.total() > 0 {
                let m = logins.metrics(self.start, wall);
                if let Some(s) = req
                    .resource_metrics
                    .first_mut()
                    .and_then(|r| r.scope_metrics.first_mut())
                {
                    s.metrics.extend(m);
                }
            }
            let points = Signal::Metrics(req);
            let n = points.item_count();
            match self.next.route(points).await {
                Ok(()) => self.telemetry.accepted(SignalKind::Metrics, n),
                Err(e) => {
                    self.telemetry.refused(SignalKind::Metrics, n);
                    if !logs_on {
                        return Err(e);
                    }
                    // The records are in; the cumulative counts go out with the next batch.
                    debug!(error = %e, "Pipeline refused Auth0 event counts; they are sent with the next batch.");
                }
            }
        }

        state.counts = counts;
        state.duplicates = total_duplicates;
        state.logins = logins;
        self.persist(fresh.iter().filter_map(|e| e.log_id.clone()).collect())
            .await;
        for e in &fresh {
            if let Some(id) = &e.log_id {
                state.dedupe.mark(id.clone(), now);
            }
        }
        Ok(Outcome {
            accepted: fresh.len(),
            duplicates,
        })
    }

    fn metrics(
        &self,
        counts: &BTreeMap<(String, Category), u64>,
        duplicates: u64,
        now: u64,
    ) -> ExportMetricsServiceRequest {
        let point = |attributes, value: u64| NumberDataPoint {
            attributes,
            start_time_unix_nano: self.start,
            time_unix_nano: now,
            value: Some(number_data_point::Value::AsInt(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
            ..Default::default()
        };
        let sum = |name: &str, description: &str, data_points| Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: "{event}".to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let events = counts
            .iter()
            .map(|((code, cat), n)| {
                point(
                    vec![
                        kv_str(semconv::AUTH0_LOG_TYPE, code),
                        kv_str(semconv::AUTH0_LOG_CATEGORY, cat.as_str()),
                    ],
                    *n,
                )
            })
            .collect();
        let mut metrics = vec![sum(
            semconv::AUTH0_EVENTS,
            "Auth0 log events received, by type code and category",
            events,
        )];
        metrics.push(sum(
            semconv::AUTH0_EVENTS_DUPLICATES,
            "Auth0 log events dropped as duplicates of a log_id already received",
            vec![point(Vec::new(), duplicates)],
        ));
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }
}
