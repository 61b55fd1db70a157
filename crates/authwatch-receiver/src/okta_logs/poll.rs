//! The polling loop: one request at a time, the `next` link followed as given, the checkpoint
//! stored once the pipeline accepted a page, backoff and rate-limit waits.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use authwatch_core::config::Secret;
use authwatch_core::data::kv_str;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use authwatch_core::otlp::common::v1::InstrumentationScope;
use authwatch_core::otlp::logs::v1::{ResourceLogs, ScopeLogs};
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum,
};
use authwatch_core::otlp::resource::v1::Resource;
use authwatch_core::telemetry::ReceiverTelemetry;
use authwatch_core::time::otlp_time;
use authwatch_core::{semconv, BuildError, ReceiverContext, Router, RunError, Running, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use url::Url;

use super::events::{decode_page, login, record, Event, PageError};
use super::{Config, StartAt};
use authwatch_tenant_logs::checkpoint::Checkpoint;
use authwatch_tenant_logs::link::{check_origin, next_link, LinkError};
use authwatch_tenant_logs::logins::Logins;
use authwatch_tenant_logs::ratelimit::{unix_now, Pacer, RateLimit};

/// The checkpoint's file name in `storage`.
pub(crate) const CHECKPOINT_FILE: &str = "okta_logs.checkpoint";
/// Scope name of everything this receiver sends.
pub(crate) const SCOPE: &str = "authwatch.okta_logs";
/// Largest page body read.
const MAX_PAGE: usize = 16 * 1024 * 1024;
/// Distinct (event type, result) series at most.
const MAX_SERIES: usize = 1000;
/// Okta's System Log budget is per minute and org-wide; the pacer assumes one request per
/// second sustained, of which it takes `rate_limit_share`.
const REQUESTS_PER_SECOND: f64 = 1.0;

/// Why a poll failed. Never holds the token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PollError {
    #[error("the System Log request timed out")]
    Timeout,
    #[error("cannot reach Okta: {0}")]
    Unreachable(String),
    #[error("Okta answered HTTP {0}")]
    Status(u16),
    #[error("Okta answered HTTP {0}: the API token is wrong, expired or lacks the rights to read the System Log")]
    Unauthorized(u16),
    #[error("Okta answered 429: rate limited for {0:?}")]
    RateLimited(Duration),
    #[error("the page is larger than {MAX_PAGE} bytes")]
    TooLarge,
    #[error(transparent)]
    Malformed(#[from] PageError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("the pipeline refused the page: {0}")]
    Refused(String),
}

impl PollError {
    fn kind(&self) -> &'static str {
        match self {
            PollError::Timeout => "timeout",
            PollError::Unreachable(_) => "unreachable",
            PollError::Status(_) => "http_status",
            PollError::Unauthorized(_) => "unauthorized",
            PollError::RateLimited(_) => "rate_limited",
            PollError::TooLarge | PollError::Malformed(_) => "malformed",
            PollError::Link(_) => "link_refused",
            PollError::Refused(_) => "refused",
        }
    }
}

/// A page and where to go next.
struct Page {
    events: Vec<Event>,
    next: Option<Url>,
}

/// The `uuid`s of the newest events, so an event seen twice is sent once.
struct Seen {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    fn mark(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

pub(crate) struct Poller {
    client: reqwest::Client,
    base: Url,
    first: Url,
    token: Secret,
    interval: Duration,
    max_backoff: Duration,
    include_user_ids: bool,
    checkpoint: Option<Checkpoint>,
    pacer: Pacer,
    next: Router,
    telemetry: ReceiverTelemetry,
    shutdown: CancellationToken,
    start: u64,
    seen: Seen,
    counts: BTreeMap<(String, String), u64>,
    duplicates: u64,
    errors: BTreeMap<&'static str, u64>,
    logins: Logins,
    ratelimit: RateLimit,
}


fn resource() -> Resource {
    Resource {
        attributes: vec![kv_str(semconv::SERVICE_NAME, "okta")],
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// An event type as a metric attribute: kept when it looks like one, else `invalid`.
fn metric_name(s: &str) -> String {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok { s.to_owned() } else { "invalid".to_owned() }
}

impl Poller {
    pub(crate) fn new(c: &Config, cx: ReceiverContext) -> Result<Self, BuildError> {
        let base = authwatch_net::HttpUrl::check(c.org_url.as_str()).map_err(BuildError::component)?;
        let mut first = base.clone();
        first.set_path("/api/v1/logs");
        first.set_query(None);
        let since = match c.start_at {
            StartAt::Now => SystemTime::now(),
            StartAt::Ago(d) => SystemTime::now() - d,
        };
        first
            .query_pairs_mut()
            .append_pair("since", &authwatch_core::time::format_rfc3339(since, authwatch_core::time::Precision::Millis))
            .append_pair("sortOrder", "ASCENDING")
            .append_pair("limit", &c.limit.get().to_string());
        let client = authwatch_net::http_client(c.timeout, &c.tls)?;
        Ok(Poller {
            client,
            base,
            first,
            token: c.api_token.clone(),
            interval: c.interval,
            max_backoff: c.max_backoff,
            include_user_ids: c.include_user_ids,
            checkpoint: c.storage.as_ref().map(|d| Checkpoint::new(d, CHECKPOINT_FILE)),
            pacer: Pacer::new(c.rate_limit_share, REQUESTS_PER_SECOND),
            telemetry: cx.settings.telemetry.receiver(&cx.settings.id, "http"),
            next: cx.next,
            shutdown: cx.settings.shutdown,
            start: otlp_time(SystemTime::now()),
            seen: Seen {
                set: HashSet::new(),
                order: VecDeque::new(),
                capacity: c.dedupe_max_entries.get(),
            },
            counts: BTreeMap::new(),
            duplicates: 0,
            errors: BTreeMap::new(),
            logins: Logins::with_users_window(c.dependency.clone(), c.users_window.get()),
            ratelimit: RateLimit::default(),
        })
    }

    pub(crate) fn run(mut self) -> Running {
        Box::pin(async move {
            let mut url = self.resume();
            info!(org = %self.base.origin().ascii_serialization(), "Okta System Log receiver polling.");
            let mut backoff = Duration::from_secs(1);
            loop {
                tokio::select! {
                    biased;
                    () = self.shutdown.cancelled() => break,
                    () = self.pacer.ready() => {}
                }
                let wait = match self.poll_once(&url).await {
                    Ok((next, n)) => {
                        backoff = Duration::from_secs(1);
                        if let Some(next) = next {
                            url = next;
                        }
                        if n == 0 { self.interval } else { Duration::ZERO }
                    }
                    Err(e) => {
                        *self.errors.entry(e.kind()).or_default() += 1;
                        warn!(error = %e, error_type = e.kind(), "Okta System Log poll failed; the same page is asked for again.");
                        self.send_metrics().await;
                        let wait = match e {
                            PollError::RateLimited(d) => d.min(self.max_backoff),
                            _ => backoff,
                        };
                        backoff = (backoff * 2).min(self.max_backoff);
                        wait
                    }
                };
                if !wait.is_zero() {
                    tokio::select! {
                        biased;
                        () = self.shutdown.cancelled() => break,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
            info!("Okta System Log receiver stopped.");
            Ok::<(), RunError>(())
        })
    }

    /// Where to start: the stored next link, or `since = start_at`.
    fn resume(&mut self) -> Url {
        let Some(cp) = &self.checkpoint else {
            return self.first.clone();
        };
        match cp.load() {
            Ok(l) => {
                if let Some(p) = &l.moved_aside {
                    *self.errors.entry("checkpoint").or_default() += 1;
                    warn!(moved_to = %p.display(), "The Okta checkpoint was corrupt and moved aside; reading from `start_at`.");
                }
                match l.cursor.as_deref().map(Url::parse) {
                    Some(Ok(u)) if check_origin(&u, &self.base).is_ok() => {
                        info!("Resuming the Okta System Log from the stored next link.");
                        u
                    }
                    Some(_) => {
                        *self.errors.entry("checkpoint").or_default() += 1;
                        warn!("The stored Okta next link is not a URL on `org_url`; reading from `start_at`.");
                        self.first.clone()
                    }
                    None => self.first.clone(),
                }
            }
            Err(e) => {
                *self.errors.entry("checkpoint").or_default() += 1;
                warn!(error = %e, "Cannot read the Okta checkpoint; reading from `start_at`.");
                self.first.clone()
            }
        }
    }

    /// One page: fetched, sent, checkpointed. `(next link, events on the page)`.
    async fn poll_once(&mut self, url: &Url) -> Result<(Option<Url>, usize), PollError> {
        let page = self.fetch(url).await?;
        let n = page.events.len();
        self.ingest(page.events).await?;
        if let (Some(next), Some(cp)) = (&page.next, &self.checkpoint) {
            if let Err(e) = cp.store(next.as_str()) {
                *self.errors.entry("checkpoint").or_default() += 1;
                warn!(error = %e, "Cannot store the Okta checkpoint; a restart reads this page again.");
            }
        }
        Ok((page.next, n))
    }

    async fn fetch(&mut self, url: &Url) -> Result<Page, PollError> {
        let resp = self
            .client
            .get(url.clone())
            .header(http::header::AUTHORIZATION, format!("SSWS {}", self.token.expose()))
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    PollError::Timeout
                } else {
                    PollError::Unreachable(chain(&e.without_url()))
                }
            })?;
        let rl = RateLimit::from_headers(resp.headers());
        if !rl.is_empty() {
            self.ratelimit = rl;
            self.pacer.observe(&rl, tokio::time::Instant::now(), unix_now());
        }
        let status = resp.status().as_u16();
        match status {
            200..=299 => {}
            429 => {
                let wait = authwatch_net::retry_after(resp.headers())
                    .or_else(|| rl.reset.map(|r| Duration::from_secs(r.saturating_sub(unix_now()))))
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_secs(1));
                return Err(PollError::RateLimited(wait));
            }
            401 | 403 => return Err(PollError::Unauthorized(status)),
            s => return Err(PollError::Status(s)),
        }
        let next = next_link(resp.headers(), url, &self.base)?;
        let mut body = Vec::new();
        let mut resp = resp;
        loop {
            let chunk = resp.chunk().await.map_err(|e| {
                if e.is_timeout() { PollError::Timeout } else { PollError::Unreachable(chain(&e.without_url())) }
            })?;
            let Some(chunk) = chunk else { break };
            if body.len() + chunk.len() > MAX_PAGE {
                return Err(PollError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Page {
            events: decode_page(&body)?,
            next,
        })
    }

    async fn ingest(&mut self, events: Vec<Event>) -> Result<(), PollError> {
        let mut fresh = Vec::with_capacity(events.len());
        let mut in_page = HashSet::new();
        let mut dups = 0u64;
        for e in events {
            if let Some(id) = e.uuid() {
                if self.seen.contains(id) || !in_page.insert(id.to_owned()) {
                    dups += 1;
                    continue;
                }
            }
            fresh.push(e);
        }
        let observed = otlp_time(SystemTime::now());
        let logs_on = self.next.accepts(SignalKind::Logs);
        if logs_on && !fresh.is_empty() {
            let records = fresh.iter().map(|e| record(e, self.include_user_ids, observed)).collect();
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
            if let Err(e) = self.next.route(Signal::Logs(req)).await {
                self.telemetry.refused(SignalKind::Logs, fresh.len());
                return Err(PollError::Refused(e.to_string()));
            }
            self.telemetry.accepted(SignalKind::Logs, fresh.len());
        }
        let wall = SystemTime::now();
        for e in &fresh {
            let mut key = (metric_name(e.event_type()), metric_name(e.result()));
            if !self.counts.contains_key(&key) && self.counts.len() >= MAX_SERIES {
                key = ("_overflow".into(), "_overflow".into());
            }
            *self.counts.entry(key).or_default() += 1;
            if let Some(l) = login(e) {
                self.logins.record(&l, wall);
            }
            if let Some(id) = e.uuid() {
                self.seen.mark(id.to_owned());
            }
        }
        self.duplicates += dups;
        let sent = self.send_metrics().await;
        if !sent && !logs_on {
            return Err(PollError::Refused("the metrics pipeline refused the counts".into()));
        }
        Ok(())
    }

    /// Sends the counters and gauges; `false` when the pipeline refused them.
    async fn send_metrics(&mut self) -> bool {
        if !self.next.accepts(SignalKind::Metrics) {
            return true;
        }
        let now = SystemTime::now();
        let t = otlp_time(now);
        let start = self.start;
        let point = |attributes, v: u64, start| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsInt(i64::try_from(v).unwrap_or(i64::MAX))),
            ..Default::default()
        };
        let sum = |name: &str, unit: &str, description: &str, data_points| Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data: Some(metric::Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        };
        let mut metrics = vec![
            sum(
                "authwatch.okta.events",
                "{event}",
                "Okta System Log events received, by event type and outcome",
                self.counts
                    .iter()
                    .map(|((ty, res), n)| point(vec![kv_str("okta.event_type", ty), kv_str("okta.outcome.result", res)], *n, start))
                    .collect(),
            ),
            sum(
                "authwatch.okta.events.duplicates",
                "{event}",
                "Okta System Log events dropped as already received (same uuid)",
                vec![point(Vec::new(), self.duplicates, start)],
            ),
            sum(
                "authwatch.okta.poll.errors",
                "{error}",
                "Failed System Log polls, by error.type",
                self.errors
                    .iter()
                    .map(|(k, n)| point(vec![kv_str(semconv::ERROR_TYPE, *k)], *n, start))
                    .collect(),
            ),
        ];
        let host = self.base.host_str().unwrap_or("");
        metrics.extend(
            self.ratelimit
                .gauges(&[kv_str(semconv::SERVER_ADDRESS, host)], t),
        );
        if self.logins.total() > 0 {
            metrics.extend(self.logins.metrics(start, now));
        }
        let req = Signal::Metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource()),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope()),
                    metrics,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        });
        let n = req.item_count();
        match self.next.route(req).await {
            Ok(()) => {
                self.telemetry.accepted(SignalKind::Metrics, n);
                true
            }
            Err(_) => {
                self.telemetry.refused(SignalKind::Metrics, n);
                false
            }
        }
    }
}

/// An error with its sources, `: `-separated.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(x) = source {
        s.push_str(": ");
        s.push_str(&x.to_string());
        source = x.source();
    }
    s
}
