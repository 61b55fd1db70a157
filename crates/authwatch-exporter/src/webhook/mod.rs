//! # `webhook` exporter
//!
//! `webhook` exporter: one JSON `POST` per alert event (the `alerts` connector's log records
//! with event name `authwatch.alert`) to any HTTP endpoint: a chat bridge, an incident tool,
//! a serverless function.
//!
//! ```yaml
//! exporters:
//!   webhook:
//!     endpoint: https://hooks.example.com/authwatch   # required; the full URL
//!     bearer_token: "${env:WEBHOOK_TOKEN}"            # optional: Authorization: Bearer <token>
//!     headers: { x-api-key: "${env:HOOK_KEY}" }       # values are secrets
//!     timeout: 10s                                    # per request
//!     send_pending: false                             # also post `pending` events
//!     send_resends: false                             # also post re-sends of firing alerts
//!     sending_queue: { enabled: true, num_consumers: 10, queue_size: 1000, storage: /var/lib/authwatch/queue }
//!     retry_on_failure: { enabled: true, initial_interval: 5s, max_interval: 30s, max_elapsed_time: 300s }
//! ```
//!
//! By default one request is posted per transition: when an alert fires and when it resolves.
//! Each event is queued and retried on its own (so `sending_queue.batch` is refused); with
//! `sending_queue.storage` the queued events survive a restart. No response, 408, 429 and 5xx
//! are retried (`Retry-After` honoured); any other 4xx is permanent. Log records that are not alert events,
//! and pending events and re-sends unless asked for, are not posted; they are counted in
//! `authwatch_exporter_ignored_log_records_total{exporter}`. The token and header values never
//! appear in errors or logs.
//!
//! ## Payload (`Content-Type: application/json`)
//!
//! ```json
//! {
//!   "version": "1",
//!   "event": "authwatch.alert",
//!   "name": "auth0_errors",
//!   "state": "firing",
//!   "resend": false,
//!   "severity": "page",
//!   "rule_kind": "threshold",
//!   "fingerprint": "9f0c1e...",
//!   "verdict": "provider_outage",
//!   "verdict_reason": "probes and real traffic both fail",
//!   "labels": { "alertname": "auth0_errors", "dependency": "auth0" },
//!   "annotations": { "summary": "Auth0 token endpoint failing" },
//!   "value": 0.42,
//!   "threshold": 0.05,
//!   "signals": { "probe.failures": 3, "traffic.error_ratio": 0.42 },
//!   "starts_at": "2024-05-01T12:00:00Z",
//!   "ends_at": null,
//!   "time": "2024-05-01T12:00:01.000Z",
//!   "generator_url": null,
//!   "runbook_url": "https://runbooks.example.com/auth0",
//!   "status_page_url": "https://status.auth0.com"
//! }
//! ```
//!
//! Every key is always present (`null` when the event does not say). `state` is `pending`,
//! `firing` or `resolved`; `labels`, `annotations` and `signals` are the event's
//! `alert.label.*`, `alert.annotation.*` and `alert.signal.*` attributes with the prefix
//! removed; `starts_at` and `ends_at` are passed through as the connector wrote them (RFC 3339);
//! `time` is the event's time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use authwatch_core::config::Secret;
use authwatch_core::otlp::collector::logs::v1::ExportLogsServiceRequest;
use authwatch_core::otlp::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use authwatch_core::time::{format_rfc3339, Precision};
use authwatch_core::{
    BuildError, Built, ComponentConfig, ConsumeError, Consumer, ExporterConfig, Settings,
    SharedConsumer, Signal, Signals, Validator,
};
use futures::future::BoxFuture;
use http::HeaderMap;
use authwatch_core::telemetry::Counter;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::helper::alert::event::{AlertEvent, State};
use crate::helper::alert::http::{client, post, request_headers, Auth, SendError};
use crate::helper::alert::{ignored_counter, records, MissingEndpoint};
use crate::helper::config::validate_headers;
use crate::helper::{try_build_queued, QueueConfig, RetryConfig, Sent, Sender};
use authwatch_net::HttpUrl;

/// `webhook` exporter config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The URL every event is posted to.
    pub endpoint: HttpUrl,
    /// Sent as `Authorization: Bearer <token>`.
    pub bearer_token: Option<Secret>,
    /// Sent with every request. Values are secrets.
    pub headers: BTreeMap<String, Secret>,
    /// Per request.
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    /// Also post `pending` events.
    pub send_pending: bool,
    /// Also post the re-sends of firing alerts (`alert.resend: true`).
    pub send_resends: bool,
    pub sending_queue: QueueConfig,
    pub retry_on_failure: RetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: HttpUrl::default(),
            bearer_token: None,
            headers: BTreeMap::new(),
            timeout: Duration::from_secs(10),
            send_pending: false,
            send_resends: false,
            sending_queue: QueueConfig::default(),
            retry_on_failure: RetryConfig::default(),
        }
    }
}

/// The JSON body of one request (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub version: String,
    pub event: String,
    pub name: String,
    pub state: String,
    pub resend: bool,
    pub severity: Option<String>,
    pub rule_kind: Option<String>,
    pub fingerprint: Option<String>,
    pub verdict: Option<String>,
    pub verdict_reason: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub signals: BTreeMap<String, f64>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub time: Option<String>,
    pub generator_url: Option<String>,
    pub runbook_url: Option<String>,
    pub status_page_url: Option<String>,
}

/// The payload format version.
pub const PAYLOAD_VERSION: &str = "1";

impl Payload {
    pub fn from_event(ev: &AlertEvent) -> Payload {
        Payload {
            version: PAYLOAD_VERSION.into(),
            event: authwatch_core::semconv::ALERT_EVENT.into(),
            name: ev.name.clone(),
            state: ev.state_text.clone(),
            resend: ev.resend,
            severity: ev.severity.clone(),
            rule_kind: ev.rule_kind.clone(),
            fingerprint: ev.fingerprint.clone(),
            verdict: ev.verdict.clone(),
            verdict_reason: ev.verdict_reason.clone(),
            labels: ev.labels.clone(),
            annotations: ev.annotations.clone(),
            value: ev.value,
            threshold: ev.threshold,
            signals: ev.signals.clone(),
            starts_at: ev.starts_at.clone(),
            ends_at: ev.ends_at.clone(),
            time: ev.time.map(|t| format_rfc3339(t, Precision::Millis)),
            generator_url: ev.generator_url.clone(),
            runbook_url: ev.runbook_url.clone(),
            status_page_url: ev.status_page_url.clone(),
        }
    }
}

// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "webhook";

    fn validate(&self, v: &mut Validator) {
        if self.endpoint.is_empty() {
            v.error(
                "endpoint",
                "endpoint must be set, e.g. `https://hooks.example.com/authwatch`",
            );
        }
        if self.bearer_token.as_ref().is_some_and(Secret::is_empty) {
            v.error(
                "bearer_token",
                "must not be empty; leave it out to send no token",
            );
        }
        if self.timeout.is_zero() {
            v.error("timeout", "must be greater than 0, e.g. `10s`");
        }
        validate_headers(&self.headers, v, false);
        self.retry_on_failure.validate(v, "retry_on_failure");
        self.sending_queue.validate(v, "sending_queue");
        if self.sending_queue.batch.is_some() {
            v.error(
                "sending_queue::batch",
                "is not supported: each alert event is posted and retried on its own; remove it",
            );
        }
    }

    fn resources(&self) -> Vec<authwatch_core::Resource> {
        self.sending_queue.resources()
    }

    fn holds(&self) -> authwatch_core::Holds {
        self.sending_queue.holds()
    }
}

impl ExporterConfig for Config {
    fn signals(&self) -> Signals {
        Signals::LOGS
    }

    async fn build(&self, settings: Settings) -> Result<Built, BuildError> {
        if self.endpoint.is_empty() {
            return Err(BuildError::component(MissingEndpoint {
                what: "webhook",
                keys: "`endpoint`",
            }));
        }
        let auth = match &self.bearer_token {
            Some(t) => Auth::Bearer(t.clone()),
            None => Auth::None,
        };
        let sender = HookSender {
            client: client(self.timeout)?,
            headers: request_headers(&self.headers, &auth)?,
            url: self.endpoint.as_str().to_owned(),
        };
        info!(exporter = %settings.id, endpoint = %self.endpoint, "Webhook exporter started.");
        let ignored = ignored_counter(&settings);
        let built = try_build_queued(settings, sender, &self.sending_queue, &self.retry_on_failure)?;
        Ok(Built {
            consumer: Arc::new(EventConsumer {
                next: built.consumer,
                ignored,
                send_pending: self.send_pending,
                send_resends: self.send_resends,
            }),
            task: built.task,
        })
    }
}

// === impl EventConsumer ===

/// Queues each alert event to post as its own request; counts the rest as ignored.
struct EventConsumer {
    next: SharedConsumer,
    ignored: Counter,
    send_pending: bool,
    send_resends: bool,
}

impl EventConsumer {
    fn wanted(&self, ev: &AlertEvent) -> bool {
        match ev.state {
            Some(State::Pending) => self.send_pending,
            Some(State::Firing) => self.send_resends || !ev.resend,
            Some(State::Resolved) => true,
            None => false,
        }
    }
}

fn one_record(r: &LogRecord) -> Signal {
    Signal::Logs(ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![r.clone()],
                ..Default::default()
            }],
            ..Default::default()
        }],
    })
}

impl Consumer for EventConsumer {
    fn consume(&self, data: Signal) -> BoxFuture<'_, Result<(), ConsumeError>> {
        Box::pin(async move {
            let data = data.into_decoded()?;
            let mut wanted = Vec::new();
            let mut ignored = 0u64;
            for r in records(&data) {
                match AlertEvent::from_record(r) {
                    Some(ev) if self.wanted(&ev) => wanted.push(one_record(r)),
                    _ => ignored += 1,
                }
            }
            self.ignored.inc_by(ignored);
            for s in wanted {
                self.next.consume(s).await?;
            }
            Ok(())
        })
    }
}

// === impl HookSender ===

struct HookSender {
    client: reqwest::Client,
    headers: HeaderMap,
    url: String,
}

impl Sender for HookSender {
    type Error = SendError;

    fn send<'a>(&'a self, data: &'a Signal) -> BoxFuture<'a, Result<Sent, SendError>> {
        Box::pin(async move {
            for r in records(data) {
                let Some(ev) = AlertEvent::from_record(r) else {
                    continue;
                };
                let body = serde_json::to_vec(&Payload::from_event(&ev)).map_err(SendError::from)?;
                // The token is in `headers` (sensitive); `Auth::None` adds nothing more.
                post(&self.client, &self.url, &self.headers, &Auth::None, body).await?;
            }
            Ok(Sent::default())
        })
    }
}

#[cfg(test)]
mod tests;
