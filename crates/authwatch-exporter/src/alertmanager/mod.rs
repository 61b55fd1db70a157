//! # `alertmanager` exporter
//!
//! `alertmanager` exporter: sends alert events (the `alerts` connector's log records with
//! event name `authwatch.alert`) to Prometheus Alertmanager's `POST /api/v2/alerts`, keeps
//! firing alerts alive by re-sending them, and sends their resolution.
//!
//! ```yaml
//! exporters:
//!   alertmanager:
//!     endpoint: http://alertmanager:9093        # or `endpoints` (an HA set), not both
//!     # endpoints: [http://am-0:9093, http://am-1:9093]
//!     timeout: 10s                              # per request
//!     headers: { x-scope-orgid: tenant-1 }      # values are secrets
//!     auth: { bearer_token: "${env:AM_TOKEN}" } # or { username: u, password: p }
//!     generator_url: https://grafana.example.com/d/authwatch   # when the event has none
//!     resend_interval: 1m                       # re-send firing alerts this often
//!     alert_ttl: 5m                             # endsAt of a firing alert = send time + this
//!     sending_queue: { enabled: true, num_consumers: 10, queue_size: 1000, block_on_overflow: false }
//!     retry_on_failure: { enabled: true, initial_interval: 5s, max_interval: 30s, max_elapsed_time: 300s }
//! ```
//!
//! ## What is sent
//!
//! Every alert event becomes one Alertmanager alert:
//!
//! | Alertmanager | from the event |
//! | --- | --- |
//! | `labels` | `alert.label.*`; plus `alertname` (`alert.name`), `severity` (`alert.severity`) and `verdict` (`alert.verdict`) unless the labels set them |
//! | `annotations` | `alert.annotation.*`; plus `runbook_url`, `status_page_url`, `verdict_reason`, `rule_kind`, `value`, `threshold` and `signal_<name>` for every `alert.signal.<name>` number, unless the annotations set them |
//! | `startsAt` | `alert.starts_at`, else the record's time |
//! | `endsAt` | firing: the send time plus `alert_ttl`; resolved: `alert.ends_at`, else the record's time |
//! | `generatorURL` | `alert.generator_url`, else `generator_url` |
//!
//! Label and annotation names are made valid for Alertmanager (`[a-zA-Z_][a-zA-Z0-9_]*`; other
//! characters become `_`). Alerts are identified by `alert.fingerprint` (else the rule name
//! and labels); if a firing alert's labels change (say its verdict goes from `transient` to
//! `provider_outage`), the old label set is sent as resolved, so that it does not linger.
//!
//! `pending` events and log records that are not alert events are not sent (Alertmanager has
//! no pending state, as with Prometheus); they are counted in
//! `authwatch_exporter_ignored_log_records_total{exporter}`, not as sent or failed.
//!
//! ## Re-sending and expiry
//!
//! The exporter keeps the newest state of every alert. A firing alert is re-sent every
//! `resend_interval` even when no event arrives, with `endsAt` moved on each time; if authwatch
//! dies, Alertmanager resolves the alert by itself `alert_ttl` after the last send (Prometheus
//! uses the same scheme, with 4 × its evaluation interval). `alert_ttl` must be longer than
//! `resend_interval`, and several times longer to ride out a failed send. Resolved alerts are
//! re-sent for 15 minutes after their resolution (Prometheus does the same), so that a replica
//! that missed it catches up; then they are forgotten. At most 10 000 alerts are kept.
//!
//! Every send carries the newest state: a firing event still queued when its resolution
//! arrives is sent as resolved, so the sending queue's parallel consumers cannot reorder a
//! resolution before its alert. Re-sends go through the sending queue and count as sent log
//! records.
//!
//! ## Several Alertmanagers
//!
//! With `endpoints`, every request goes to every endpoint (as Prometheus does for an
//! Alertmanager cluster; the cluster deduplicates notifications). A request succeeds when at
//! least one endpoint accepted it; each endpoint's failures are logged (rate limited) and
//! counted in `authwatch_exporter_endpoint_failures_total{exporter,endpoint}`, and the next
//! re-send catches the failed endpoint up. When every endpoint fails the request is retried
//! if any failure is retryable.
//!
//! ## Retries
//!
//! No response, 408, 429 and 5xx are retried with `retry_on_failure` (429 and 503 honour
//! `Retry-After`); any other 4xx is permanent (Alertmanager refused the alerts as invalid, or
//! the credentials). Header values, tokens and passwords never appear in errors or logs.

mod failures;
mod table;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use authwatch_core::config::Secret;
use authwatch_core::{BuildError, Built, ComponentConfig, ExporterConfig, Settings, Signals, Validator};
use futures::future::BoxFuture;
use http::HeaderMap;
use authwatch_core::telemetry::{Counter, Family};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::helper::alert::http::{client, post, request_headers, Auth};
use crate::helper::alert::{ignored_counter, MissingEndpoint};
use crate::helper::config::validate_headers;
use crate::helper::{build_items, ItemSender, QueueConfig, RetryConfig, Sent};
use authwatch_net::HttpUrl;

pub use crate::helper::alert::http::SendError;
pub use failures::Failures;
pub use table::{
    sanitize, AlertKeys, PostableAlert, TableConfig, MAX_ALERTS, RESOLVED_RETENTION,
};

/// `alertmanager` exporter config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL of one Alertmanager; alerts go to `<endpoint>/api/v2/alerts`.
    pub endpoint: HttpUrl,
    /// Base URLs of several Alertmanagers (an HA set); every alert goes to each.
    pub endpoints: Vec<HttpUrl>,
    /// Per request.
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    /// Sent with every request. Values are secrets.
    pub headers: BTreeMap<String, Secret>,
    pub auth: Option<AuthConfig>,
    /// `generatorURL` of alerts whose event has none. Empty: none.
    pub generator_url: HttpUrl,
    /// How often alerts are re-sent while they last.
    #[serde(with = "authwatch_core::config::duration")]
    pub resend_interval: Duration,
    /// How long after a send a firing alert expires unless re-sent (its `endsAt`).
    #[serde(with = "authwatch_core::config::duration")]
    pub alert_ttl: Duration,
    pub sending_queue: QueueConfig,
    pub retry_on_failure: RetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: HttpUrl::default(),
            endpoints: Vec::new(),
            timeout: Duration::from_secs(10),
            headers: BTreeMap::new(),
            auth: None,
            generator_url: HttpUrl::default(),
            resend_interval: Duration::from_secs(60),
            alert_ttl: Duration::from_secs(300),
            sending_queue: QueueConfig::default(),
            retry_on_failure: RetryConfig::default(),
        }
    }
}

/// `auth`: a bearer token, or basic auth.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Basic auth user (with `password`).
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl AuthConfig {
    /// Cross-field rules, reported below `at`.
    pub(crate) fn validate(&self, v: &mut Validator, at: &str) {
        let path = |f: &str| format!("{at}::{f}");
        match (&self.bearer_token, &self.username, &self.password) {
            (Some(t), None, None) if t.is_empty() => {
                v.error(&path("bearer_token"), "must not be empty")
            }
            (Some(_), None, None) => {}
            (None, Some(u), Some(_)) if u.is_empty() => {
                v.error(&path("username"), "must not be empty")
            }
            (None, Some(_), Some(_)) => {}
            (None, Some(_), None) => {
                v.error(&path("password"), "must be set when `username` is set")
            }
            (None, None, Some(_)) => {
                v.error(&path("username"), "must be set when `password` is set")
            }
            (None, None, None) => v.error(
                at,
                "set `bearer_token`, or `username` and `password`; leave `auth` out for none",
            ),
            (Some(_), _, _) => v.error(
                at,
                "set either `bearer_token` or `username` and `password`, not both",
            ),
        }
    }

    pub(crate) fn to_auth(&self) -> Auth {
        match (&self.bearer_token, &self.username, &self.password) {
            (Some(t), _, _) => Auth::Bearer(t.clone()),
            (None, Some(u), Some(p)) => Auth::Basic(u.clone(), p.clone()),
            _ => Auth::None,
        }
    }
}

// === impl Config ===

impl Config {
    /// The base URLs alerts go to.
    pub fn base_urls(&self) -> Vec<&HttpUrl> {
        if self.endpoints.is_empty() {
            [&self.endpoint]
                .into_iter()
                .filter(|u| !u.is_empty())
                .collect()
        } else {
            self.endpoints.iter().collect()
        }
    }

    /// The `POST /api/v2/alerts` URL of each endpoint.
    pub fn alert_urls(&self) -> Vec<String> {
        self.base_urls()
            .into_iter()
            .map(|u| format!("{}/api/v2/alerts", u.as_str().trim_end_matches('/')))
            .collect()
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "alertmanager";

    fn validate(&self, v: &mut Validator) {
        match (self.endpoint.is_empty(), self.endpoints.is_empty()) {
            (true, true) => v.error(
                "endpoint",
                "set `endpoint` (one Alertmanager) or `endpoints` (an HA set), e.g. `http://alertmanager:9093`",
            ),
            (false, false) => v.error("endpoints", "set either `endpoint` or `endpoints`, not both"),
            _ => {}
        }
        for (i, u) in self.endpoints.iter().enumerate() {
            if u.is_empty() {
                v.error(&format!("endpoints::{i}"), "must not be empty");
            } else if self.endpoints[..i].contains(u) {
                v.error(&format!("endpoints::{i}"), "is listed twice");
            }
        }
        if self.timeout.is_zero() {
            v.error("timeout", "must be greater than 0, e.g. `10s`");
        }
        if self.resend_interval.is_zero() {
            v.error("resend_interval", "must be greater than 0, e.g. `1m`");
        }
        if self.alert_ttl <= self.resend_interval {
            v.error(
                "alert_ttl",
                "must be longer than `resend_interval` (a few times longer, e.g. 5m for 1m), or firing alerts expire between re-sends",
            );
        }
        if self.sending_queue.storage.is_some() {
            v.error(
                "sending_queue::storage",
                "is not supported: alerts are kept in memory and re-sent, and Alertmanager resolves them by itself `alert_ttl` after authwatch stops; remove it",
            );
        }
        validate_headers(&self.headers, v, false);
        if let Some(a) = &self.auth {
            a.validate(v, "auth");
        }
        self.retry_on_failure.validate(v, "retry_on_failure");
    }
}

impl ExporterConfig for Config {
    fn signals(&self) -> Signals {
        Signals::LOGS
    }

    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        let urls = self.alert_urls();
        if urls.is_empty() {
            return Err(BuildError::component(MissingEndpoint {
                what: "Alertmanager",
                keys: "`endpoint` or `endpoints`",
            }));
        }
        let table = Arc::new(table::Table::new(TableConfig {
            alert_ttl: self.alert_ttl,
            resend_interval: self.resend_interval,
            generator_url: self.generator_url.as_str().to_owned(),
        }));
        let auth = self.auth.as_ref().map(AuthConfig::to_auth).unwrap_or_default();
        let failures: Family<EndpointLabels, Counter> = settings.telemetry.metric(
            "exporter_endpoint_failures",
            "Requests one endpoint of an exporter with several endpoints failed",
            Family::default,
        );
        let ignored = ignored_counter(&settings);
        let sender = AmSender {
            client: client(self.timeout)?,
            headers: request_headers(&self.headers, &auth)?,
            auth,
            endpoints: urls
                .iter()
                .map(|u| Endpoint {
                    url: u.clone(),
                    failures: failures
                        .get_or_create(&EndpointLabels {
                            exporter: settings.id.to_string(),
                            endpoint: u.clone(),
                        })
                        .clone(),
                    last_warn: Mutex::new(None),
                })
                .collect(),
            table: table.clone(),
            id: settings.id.to_string(),
        };
        info!(
            exporter = %settings.id, endpoints = ?urls, resend_interval = ?self.resend_interval,
            alert_ttl = ?self.alert_ttl, "Alertmanager exporter started."
        );
        let shutdown = settings.shutdown.clone();
        let built = build_items(settings, sender, &self.sending_queue, &self.retry_on_failure);
        let resend = table::resend_loop(table.clone(), built.queue.clone(), shutdown);
        let inner_task = built.task;
        let task = async move {
            let resend = tokio::spawn(resend);
            let result = match inner_task {
                Some(t) => t.await,
                None => Ok(()),
            };
            // The loop ends on the same token; wait for it (a panic there is reported).
            if resend.await.is_err() {
                return Err(authwatch_core::RunError::Panicked {
                    task: "the alertmanager exporter's re-send loop".into(),
                });
            }
            result
        };
        Ok(Built {
            consumer: Arc::new(table::AlertConsumer {
                table,
                next: built.queue,
                ignored,
            }),
            task: Some(Box::pin(task)),
        })
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct EndpointLabels {
    exporter: String,
    endpoint: String,
}
authwatch_core::label_set!(EndpointLabels { exporter, endpoint });

// === impl AmSender ===

/// Log an endpoint's failures at most this often (while another endpoint still accepts).
const WARN_EVERY: Duration = Duration::from_secs(10);

struct Endpoint {
    url: String,
    failures: Counter,
    last_warn: Mutex<Option<Instant>>,
}

struct AmSender {
    client: reqwest::Client,
    headers: HeaderMap,
    auth: Auth,
    endpoints: Vec<Endpoint>,
    table: Arc<table::Table>,
    id: String,
}

impl Endpoint {
    fn warn(&self, exporter: &str, error: &SendError) {
        let mut last = self.last_warn.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
            return;
        }
        *last = Some(now);
        warn!(
            exporter, endpoint = %self.url, error = %error,
            "Alertmanager endpoint failed; another endpoint took the alerts, the next re-send will retry this one."
        );
    }
}

impl ItemSender for AmSender {
    type Item = AlertKeys;
    type Error = Failures;

    fn send_item<'a>(&'a self, keys: &'a AlertKeys) -> BoxFuture<'a, Result<Sent, Failures>> {
        Box::pin(async move {
            let alerts = self.table.postable(&keys.0, SystemTime::now());
            if alerts.is_empty() {
                return Ok(Sent::default());
            }
            let body = serde_json::to_vec(&alerts)
                .map_err(|e| Failures(vec![SendError::Encode(e)]))?;
            let results = futures::future::join_all(self.endpoints.iter().map(|ep| {
                post(&self.client, &ep.url, &self.headers, &self.auth, body.clone())
            }))
            .await;
            let accepted = results.iter().any(Result::is_ok);
            let mut failures = Vec::new();
            for (ep, r) in self.endpoints.iter().zip(results) {
                if let Err(e) = r {
                    ep.failures.inc();
                    if accepted {
                        ep.warn(&self.id, &e);
                    }
                    failures.push(e);
                }
            }
            if accepted {
                Ok(Sent::default())
            } else {
                Err(Failures(failures))
            }
        })
    }
}

#[cfg(test)]
pub(crate) mod tests;
