//! One page's poll: fetch, parse, compare with the last poll, send metrics and log records.

use std::collections::BTreeMap;
use std::time::SystemTime;

use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::logs::v1::{LogRecord, SeverityNumber};
use authwatch_core::board::StatusBoard;
use authwatch_core::semconv;
use authwatch_core::telemetry::ReceiverTelemetry;
use authwatch_core::time::otlp_time;
use authwatch_core::{Router, Signal, SignalKind};
use tracing::{debug, warn};

use super::emit::{self, kv, point};
use super::fetch::{fetch, FetchError, Fetched, Validators};
use super::parse::{parse, Incident, Snapshot};
use super::{Format, PageConfig};

/// What one poll found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Polled {
    /// A new document was read.
    Fresh,
    /// `304`: the last state was sent again.
    NotModified,
    /// The page is down; the `error.type`.
    Failed(&'static str),
}

/// Polls one page and remembers what it said.
pub(crate) struct Poller {
    page: PageConfig,
    client: reqwest::Client,
    next: Router,
    telemetry: ReceiverTelemetry,
    /// Start time of the gauges (receiver start).
    start: u64,
    validators: Validators,
    last: Option<Snapshot>,
    /// Incidents by id from the last good document; `None` before the first.
    known: Option<BTreeMap<String, Incident>>,
    /// `error.type` while the page is down.
    down: Option<&'static str>,
    failures: u32,
    /// Where the status page reads this page's state (section `provider_status`).
    board: Option<StatusBoard>,
}

impl Poller {
    pub(crate) fn new(
        page: PageConfig,
        client: reqwest::Client,
        next: Router,
        telemetry: ReceiverTelemetry,
        started: SystemTime,
    ) -> Self {
        Poller {
            page,
            client,
            next,
            telemetry,
            start: otlp_time(started),
            validators: Validators::default(),
            last: None,
            known: None,
            down: None,
            failures: 0,
            board: None,
        }
    }

    /// Publishes every poll's outcome on `board`.
    pub(crate) fn with_board(mut self, board: StatusBoard) -> Self {
        self.board = Some(board);
        self
    }

    /// This page on the status board: the last known state, and whether it answers now.
    fn publish(&self, now: SystemTime) {
        let Some(board) = &self.board else { return };
        let names = ["operational", "degraded_performance", "partial_outage", "major_outage", "under_maintenance"];
        let last = self.last.as_ref();
        let components: Vec<serde_json::Value> = last
            .map(|s| s.components.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id, "name": c.name, "level": c.level,
                    "status": usize::try_from(c.level).ok().and_then(|i| names.get(i)).copied().unwrap_or("unknown"),
                })
            })
            .collect();
        let incidents: Vec<serde_json::Value> = last
            .map(|s| s.incidents.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|i| i.is_active())
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "name": i.name, "impact": i.impact, "status": i.status,
                    "url": i.url, "updated_at": i.updated_at, "update": i.update_text,
                })
            })
            .collect();
        let checked_at = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_millis() as f64 / 1000.0);
        board.publish(
            authwatch_core::board::PROVIDER_STATUS,
            &self.page.name,
            serde_json::json!({
                "page": self.page.name,
                "url": self.page.url.as_str(),
                "format": self.page.format.as_str(),
                "checked_at": checked_at,
                "up": self.down.is_none(),
                "error": self.down,
                "indicator": last.map(|s| s.indicator),
                "components": components,
                "incidents": incidents,
            }),
        );
    }

    pub(crate) fn name(&self) -> &str {
        &self.page.name
    }

    /// Polls in a row that failed (0 after a success).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Fetches the page once and sends what it says.
    pub(crate) async fn poll_once(&mut self) -> Polled {
        let now = SystemTime::now();
        let fetched = fetch(&self.client, self.page.url.url(), &self.validators).await;
        match fetched {
            Ok(Fetched::Document(body, validators)) => {
                match parse(self.page.format, &body, &self.page.components) {
                    Ok(snapshot) => {
                        self.validators = validators;
                        let changes = self.incident_changes(&snapshot, now);
                        self.up(now, snapshot, changes).await;
                        Polled::Fresh
                    }
                    Err(e) => self.fail(now, e.into()).await,
                }
            }
            Ok(Fetched::NotModified) => match self.last.clone() {
                Some(snapshot) => {
                    self.up(now, snapshot, Vec::new()).await;
                    Polled::NotModified
                }
                None => {
                    self.fail(now, FetchError::NotModifiedFirst).await
                }
            },
            Err(e) => self.fail(now, e).await,
        }
    }

    fn page_attrs(&self) -> Vec<KeyValue> {
        vec![
            kv(semconv::STATUS_PAGE, self.page.name.clone()),
            kv(semconv::STATUS_PAGE_URL, self.page.url.as_str()),
        ]
    }

    async fn up(&mut self, now: SystemTime, snapshot: Snapshot, mut logs: Vec<LogRecord>) {
        self.failures = 0;
        let t = otlp_time(now);
        if let Some(kind) = self.down.take() {
            let mut attrs = self.page_attrs();
            attrs.push(kv(semconv::ERROR_TYPE, kind));
            logs.insert(
                0,
                emit::record(
                    semconv::STATUS_PAGE_RECOVERED,
                    SeverityNumber::Info,
                    format!("Status page {} answers again.", self.page.name),
                    attrs,
                    t,
                    t,
                ),
            );
        }
        let page = self.page_attrs();
        let active = snapshot.incidents.iter().filter(|i| i.is_active()).count();
        let components = snapshot
            .components
            .iter()
            .map(|c| {
                point(
                    vec![
                        kv(semconv::STATUS_PAGE, self.page.name.clone()),
                        kv(semconv::STATUS_COMPONENT_NAME, c.name.clone()),
                        kv(semconv::STATUS_COMPONENT_ID, c.id.clone()),
                    ],
                    c.level,
                    self.start,
                    t,
                )
            })
            .collect();
        let metrics = [
            emit::gauge(
                semconv::STATUS_UP,
                "Whether the status page could be fetched and understood (1) or not (0)",
                vec![point(page.clone(), 1, self.start, t)],
            ),
            emit::gauge(
                semconv::STATUS_INDICATOR,
                "Status page indicator: 0 none, 1 minor, 2 major, 3 critical",
                vec![point(page.clone(), snapshot.indicator, self.start, t)],
            ),
            emit::gauge(
                semconv::STATUS_INCIDENTS_ACTIVE,
                "Incidents the status page reports as not resolved",
                vec![point(page, active as i64, self.start, t)],
            ),
            emit::gauge(
                semconv::STATUS_COMPONENT,
                "Component status: 0 operational, 1 degraded performance, 2 partial outage, 3 major outage, 4 under maintenance",
                components,
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.last = Some(snapshot);
        self.publish(now);
        self.send(metrics, logs).await;
    }

    async fn fail(&mut self, now: SystemTime, e: FetchError) -> Polled {
        self.failures = self.failures.saturating_add(1);
        let kind = e.kind();
        let t = otlp_time(now);
        let mut logs = Vec::new();
        if self.down != Some(kind) {
            warn!(page = %self.page.name, url = %self.page.url, error = %e, "Status page is down.");
            let mut attrs = self.page_attrs();
            attrs.push(kv(semconv::ERROR_TYPE, kind));
            logs.push(emit::record(
                semconv::STATUS_PAGE_DOWN,
                SeverityNumber::Error,
                format!("Status page {} cannot be read: {e}", self.page.name),
                attrs,
                t,
                t,
            ));
            self.down = Some(kind);
        } else {
            debug!(page = %self.page.name, error = %e, "Status page is still down.");
        }
        let metrics = emit::gauge(
            semconv::STATUS_UP,
            "Whether the status page could be fetched and understood (1) or not (0)",
            vec![point(self.page_attrs(), 0, self.start, t)],
        )
        .into_iter()
        .collect();
        self.publish(now);
        self.send(metrics, logs).await;
        Polled::Failed(kind)
    }

    /// Log records for incidents that appeared, changed or resolved since the last document.
    fn incident_changes(&mut self, snapshot: &Snapshot, now: SystemTime) -> Vec<LogRecord> {
        let now_map: BTreeMap<String, Incident> = snapshot
            .incidents
            .iter()
            .map(|i| (i.id.clone(), i.clone()))
            .collect();
        let mut out = Vec::new();
        match &self.known {
            None => {
                for i in now_map.values().filter(|i| i.is_active()) {
                    out.push(self.incident_record(Change::Opened, i, None, now));
                }
            }
            Some(prev) => {
                for (id, i) in &now_map {
                    match prev.get(id) {
                        None if i.is_active() => {
                            out.push(self.incident_record(Change::Opened, i, None, now))
                        }
                        None => out.push(self.incident_record(Change::Resolved, i, None, now)),
                        Some(p)
                            if p.status != i.status
                                || p.impact != i.impact
                                || p.update_id != i.update_id =>
                        {
                            if i.is_active() {
                                out.push(self.incident_record(
                                    Change::Updated,
                                    i,
                                    Some(&p.status),
                                    now,
                                ));
                            } else if p.is_active() {
                                out.push(self.incident_record(
                                    Change::Resolved,
                                    i,
                                    Some(&p.status),
                                    now,
                                ));
                            }
                        }
                        Some(_) => {}
                    }
                }
                // Statuspage's summary lists unresolved incidents only: leaving it is resolving.
                if self.page.format == Format::StatuspageV2 {
                    for (id, p) in prev {
                        if !now_map.contains_key(id) && p.is_active() {
                            let mut r = p.clone();
                            r.status = "resolved".into();
                            r.update_text = String::new();
                            r.updated_at = String::new();
                            out.push(self.incident_record(
                                Change::Resolved,
                                &r,
                                Some(&p.status),
                                now,
                            ));
                        }
                    }
                }
            }
        }
        self.known = Some(now_map);
        out
    }

    fn incident_record(
        &self,
        change: Change,
        i: &Incident,
        previous: Option<&str>,
        now: SystemTime,
    ) -> LogRecord {
        let mut attrs = self.page_attrs();
        attrs.extend([
            kv(semconv::STATUS_INCIDENT_ID, i.id.clone()),
            kv(semconv::STATUS_INCIDENT_NAME, i.name.clone()),
            kv(semconv::STATUS_INCIDENT_IMPACT, i.impact.clone()),
            kv(semconv::STATUS_INCIDENT_STATUS, i.status.clone()),
            kv(semconv::STATUS_INCIDENT_URL, i.url.clone()),
        ]);
        if let Some(p) = previous {
            attrs.push(kv(semconv::STATUS_INCIDENT_PREVIOUS_STATUS, p));
        }
        let (event, severity) = match change {
            Change::Opened if matches!(i.impact.as_str(), "major" | "critical") => {
                (semconv::STATUS_INCIDENT_OPENED, SeverityNumber::Error)
            }
            Change::Opened => (semconv::STATUS_INCIDENT_OPENED, SeverityNumber::Warn),
            Change::Updated => (semconv::STATUS_INCIDENT_UPDATED, SeverityNumber::Warn),
            Change::Resolved => (semconv::STATUS_INCIDENT_RESOLVED, SeverityNumber::Info),
        };
        let body = if i.update_text.is_empty() {
            format!("{}: {}", i.name, i.status)
        } else {
            format!("{}: {}", i.name, i.update_text)
        };
        let observed = otlp_time(now);
        let time = emit::parse_time(&i.updated_at).unwrap_or(observed);
        emit::record(event, severity, body, attrs, time, observed)
    }

    async fn send(
        &self,
        metrics: Vec<authwatch_core::otlp::metrics::v1::Metric>,
        logs: Vec<LogRecord>,
    ) {
        if !metrics.is_empty() && self.next.accepts(SignalKind::Metrics) {
            self.route(Signal::Metrics(emit::metrics_request(metrics)))
                .await;
        }
        if !logs.is_empty() && self.next.accepts(SignalKind::Logs) {
            self.route(Signal::Logs(emit::logs_request(logs))).await;
        }
    }

    async fn route(&self, data: Signal) {
        let kind = data.kind();
        let n = data.item_count();
        // A poll reaches the alerts connector at once, whatever a `batch` waits for.
        if self.next.takes_live_for(kind) {
            if let Err(e) = self.next.route_live(data.clone()).await {
                debug!(page = %self.page.name, signal = %kind, error = %e, "Live status data refused.");
            }
        }
        match self.next.route(data).await {
            Ok(()) => self.telemetry.accepted(kind, n),
            Err(e) => {
                self.telemetry.refused(kind, n);
                debug!(page = %self.page.name, signal = %kind, error = %e, "Pipeline refused status data.");
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Change {
    Opened,
    Updated,
    Resolved,
}
