//! Pull mode: the tenant's logs from the Management API (`GET /api/v2/logs?from=&take=`), a
//! durable checkpoint, and the log streams' health.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authwatch_core::time::{format_rfc3339, Precision};
use authwatch_core::{ConsumeError, Router, Signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use url::Url;

use super::decode::{decode_body, Event};
use super::ingest::Ingest;
use authwatch_tenant_logs::checkpoint::Checkpoint;
use authwatch_tenant_logs::link::next_link;

pub(crate) mod api;
pub mod config;
pub(crate) mod stats;
pub(crate) mod streams;
pub(crate) mod token;

use api::{Api, ApiError};
use stats::Stats;

/// The checkpoint's file name inside `<storage>/<receiver id>/`.
pub const CHECKPOINT_FILE: &str = "auth0_logs.checkpoint";
/// The longest wait between two tries after errors.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The running puller.
pub(crate) struct Puller {
    pub api: Api,
    pub ingest: Arc<Ingest>,
    pub next: Router,
    pub stats: Arc<Stats>,
    pub checkpoint: Checkpoint,
    pub interval: Duration,
    pub take: usize,
    pub start_at: config::StartAt,
    pub started: SystemTime,
    pub shutdown: CancellationToken,
}

enum Step {
    /// Caught up (a short or empty page); wait `interval`.
    CaughtUp,
    /// Something failed; wait the backoff (or this long).
    Failed(Option<Duration>),
}

impl Puller {
    /// Sleeps `d`; `false` when shutdown came first.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.shutdown.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    async fn send_metrics(&self) {
        self.stats.ratelimit(self.api.ratelimit);
        if self.next.accepts(SignalKind::Metrics) {
            let _ = self
                .next
                .route(Signal::Metrics(self.stats.export()))
                .await;
        }
    }

    async fn load_checkpoint(&self) -> Option<String> {
        let cp = self.checkpoint.clone();
        match tokio::task::spawn_blocking(move || cp.load()).await {
            Ok(Ok(loaded)) => {
                if loaded.moved_aside.is_some() {
                    self.stats.checkpoint_reset();
                }
                loaded.cursor
            }
            Ok(Err(e)) => {
                warn!(error = %e, "Cannot read the Auth0 logs checkpoint; reading from start_at.");
                self.stats.checkpoint_reset();
                None
            }
            Err(_) => None,
        }
    }

    async fn store_checkpoint(&self, cursor: String) {
        let cp = self.checkpoint.clone();
        match tokio::task::spawn_blocking(move || cp.store(&cursor)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "Cannot store the Auth0 logs checkpoint; a restart will read some events again."),
            Err(_) => warn!("Cannot store the Auth0 logs checkpoint."),
        }
    }

    /// Hands events to the pipelines until they take them (or shutdown); `false` on shutdown.
    async fn deliver(&self, events: Vec<Event>) -> bool {
        let mut wait = Duration::from_millis(200);
        loop {
            match self.ingest.ingest(events.clone()).await {
                Ok(_) => return true,
                Err(e) => {
                    let d = retry_delay(&e).unwrap_or(wait);
                    warn!(error = %e, "The pipeline refused pulled Auth0 events; trying again.");
                    if !self.sleep(d).await {
                        return false;
                    }
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// The first event at or after the start time, by search (`q=date:[T TO *]`).
    async fn first_event(&mut self, since: SystemTime) -> Result<Option<Event>, ApiError> {
        let mut url = self.api.base.join("/api/v2/logs").map_err(|_| ApiError::Malformed("base URL".into()))?;
        url.query_pairs_mut()
            .append_pair("q", &format!("date:[{} TO *]", format_rfc3339(since, Precision::Millis)))
            .append_pair("sort", "date:1")
            .append_pair("per_page", "1")
            .append_pair("page", "0");
        let answer = self.api.get(&url).await?;
        let events = decode_body(&answer.body).map_err(|e| ApiError::Malformed(e.to_string()))?;
        Ok(events.into_iter().find(|e| e.log_id.is_some()))
    }

    fn checkpoint_url(&self, cursor: &str) -> Url {
        let mut url = self.api.base.clone();
        url.set_path("/api/v2/logs");
        url.query_pairs_mut()
            .append_pair("from", cursor)
            .append_pair("take", &self.take.to_string());
        url
    }

    /// Reads pages from `cursor` until caught up or an error.
    async fn read(&mut self, cursor: &mut Option<String>, next: &mut Option<Url>) -> Step {
        if cursor.is_none() {
            let since = match self.start_at {
                config::StartAt::Now => self.started,
                config::StartAt::Ago(d) => self.started.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH),
            };
            match self.first_event(since).await {
                Ok(Some(first)) => {
                    self.stats.request("logs", "ok");
                    let id = first.log_id.clone().unwrap_or_default();
                    if !self.deliver(vec![first]).await {
                        return Step::CaughtUp;
                    }
                    self.store_checkpoint(id.clone()).await;
                    info!("Auth0 logs: reading from the first event since the start point.");
                    *cursor = Some(id);
                }
                Ok(None) => {
                    self.stats.request("logs", "ok");
                    return Step::CaughtUp;
                }
                Err(e) => return self.failed(e),
            }
        }
        loop {
            if self.shutdown.is_cancelled() {
                return Step::CaughtUp;
            }
            let Some(from) = cursor.clone() else {
                return Step::CaughtUp;
            };
            let url = next.clone().unwrap_or_else(|| self.checkpoint_url(&from));
            let answer = match self.api.get(&url).await {
                Ok(a) => a,
                Err(e) => {
                    *next = None;
                    return self.failed(e);
                }
            };
            let events = match decode_body(&answer.body) {
                Ok(ev) => ev,
                Err(e) => {
                    *next = None;
                    return self.failed(ApiError::Malformed(e.to_string()));
                }
            };
            let link = next_link(&answer.headers, &url, &self.api.base);
            self.stats.request("logs", "ok");
            let n = events.len();
            let last = events.iter().rev().find_map(|e| e.log_id.clone());
            if n > 0 {
                if !self.deliver(events).await {
                    return Step::CaughtUp;
                }
                if let Some(last) = &last {
                    self.store_checkpoint(last.clone()).await;
                    *cursor = Some(last.clone());
                }
            }
            match link {
                Ok(l) => *next = l,
                Err(e) => {
                    *next = None;
                    return self.failed(ApiError::Link(e));
                }
            }
            if n < self.take {
                return Step::CaughtUp;
            }
            if last.is_none() {
                // A full page with no ids cannot move the checkpoint.
                *next = None;
                return self.failed(ApiError::Malformed("a page without log_id".into()));
            }
        }
    }

    fn failed(&self, e: ApiError) -> Step {
        self.stats.request(
            if matches!(e, ApiError::Token(_)) { "token" } else { "logs" },
            e.outcome(),
        );
        warn!(error = %e, "Auth0 logs: reading from the Management API failed; trying again later.");
        match e {
            ApiError::RateLimited(d) => Step::Failed(Some(d)),
            _ => Step::Failed(None),
        }
    }

    /// Runs until shutdown.
    pub(crate) async fn run(mut self) {
        let mut cursor = self.load_checkpoint().await;
        if cursor.is_some() {
            info!("Auth0 logs: resuming from the checkpoint.");
        }
        let mut next: Option<Url> = None;
        let mut backoff = Duration::from_secs(1);
        loop {
            let step = self.read(&mut cursor, &mut next).await;
            self.send_metrics().await;
            let wait = match step {
                Step::CaughtUp => {
                    backoff = Duration::from_secs(1);
                    self.interval
                }
                Step::Failed(hint) => {
                    let d = hint.unwrap_or(backoff).max(backoff.min(self.interval));
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    d
                }
            };
            if !self.sleep(wait).await {
                break;
            }
        }
        info!("Auth0 logs puller stopped.");
    }
}

fn retry_delay(e: &ConsumeError) -> Option<Duration> {
    match e.cause() {
        ConsumeError::Throttled(d) => Some(*d),
        _ => e.retry_after(),
    }
}
