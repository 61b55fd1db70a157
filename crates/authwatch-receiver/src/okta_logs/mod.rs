//! # `okta_logs` receiver
//!
//! Polls an Okta org's **System Log** (`GET /api/v1/logs`) the way Okta documents for polling
//! (<https://developer.okta.com/docs/reference/system-log-query/>,
//! <https://developer.okta.com/docs/api/openapi/okta-management/management/tag/SystemLog/>): the
//! first request asks for `since` (the configured `start_at`) with `sortOrder=ASCENDING` and no
//! `until`; every later request is the `Link: <...>; rel="next"` URL of the previous answer,
//! followed as given (the `after` cursor is never built by hand), also after an empty page, which
//! is how a polling client waits for new events. Every event becomes an OTLP log record, and
//! logins (`user.session.start`, `user.authentication.*`) feed the same login counters as the
//! `auth0_logs` receiver, so the `alerts` connector can alert on provider-side login failures. It
//! can feed `logs` and `metrics` pipelines.
//!
//! ```yaml
//! receivers:
//!   okta_logs:
//!     org_url: https://example.okta.com
//!     api_token: ${env:OKTA_API_TOKEN}     # an API token, sent as `Authorization: SSWS <token>`
//!     start_at: 10m                         # first start: read from 10 minutes ago (`now`: from now)
//!     interval: 10s                         # wait after an empty page
//!     limit: 100                            # events per page (Okta allows up to 1000)
//!     storage: /var/lib/authwatch/okta      # where the next link is kept across restarts
//!     rate_limit_share: 0.5                 # use at most half of the endpoint's rate limit
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `org_url` | (required) | the org's base URL, `https://<org>.okta.com`; every request and every followed `next` link must stay on this origin |
//! | `api_token` | (required) | an Okta API token (Admin Console → Security → API → Tokens; the token acts with its creator's admin rights, read-only admin is enough), sent as `SSWS`. OAuth service apps (`okta.logs.read`) are not supported yet |
//! | `start_at` | `now` | where the first start reads from: `now`, or a duration to read back (Okta keeps 90 days) |
//! | `interval` | `10s` | wait after an empty page (a full page is followed at once) |
//! | `limit` | `100` | events per page, 1 to 1000 |
//! | `timeout` | `10s` | per request, connect to last byte |
//! | `max_backoff` | `5m` | longest wait after failures (5xx, malformed answers, refused links) |
//! | `rate_limit_share` | `0.5` | share (0..1] of the endpoint's rate limit this poller may use: it spaces requests and, once `X-Rate-Limit-Remaining` falls below the rest, waits for `X-Rate-Limit-Reset` |
//! | `storage` | (none) | directory of the durable checkpoint (`okta_logs-<name>.checkpoint`: the next link, stored after the pipeline accepted the page); without it a restart reads from `start_at` again |
//! | `include_user_ids` | `false` | keep the actor's and client's personal fields (`actor.alternateId`, `actor.displayName`, `client.ipAddress`, ...) |
//! | `dependency` | `okta` | the `dependency` attribute of the login counters (the alerts connector's name for Okta) |
//! | `dedupe_max_entries` | `100000` | event `uuid`s remembered (an hour at most) so an event seen twice is sent once |
//! | `users_window` | `5m` | window of `authwatch.logins.users_affected` (distinct users with a failed login), whole minutes from `1m` to `1h`; match it to the `alerts` connector's `verdict.window` |
//! | `tls` | system roots | client TLS (`ca_file`, ...) as for every client |
//!
//! ## Faults
//!
//! | what happened | what it does |
//! | --- | --- |
//! | `429` | waits for `X-Rate-Limit-Reset` (or `Retry-After`), at most `max_backoff`; `authwatch.okta.poll.errors{error.type=rate_limited}` |
//! | `5xx`, timeout, connection refused | backs off (1s, doubling, at most `max_backoff`), same URL again |
//! | `401` / `403` | logs that the token is wrong or lacks rights (never the token), backs off |
//! | a page that is not a JSON array of objects | logged, `error.type=malformed`, same URL again after a backoff: nothing is skipped |
//! | `Link: rel="next"` on another scheme, host or port | refused (the token would go there), `error.type=link_refused`, same URL again after a backoff |
//! | a checkpoint file that cannot be read | moved aside (`.corrupt-<time>`), logged, reads from `start_at` |
//! | the pipeline refuses a page | the page is asked for again (the checkpoint is not advanced) |
//!
//! ## What it sends
//!
//! Resource `service.name=okta`, scope `authwatch.okta_logs`.
//!
//! Log records (`event_name` `okta.log`): time from `published`, body `displayMessage`, severity
//! from `severity` (DEBUG, INFO, WARN, ERROR), attributes `okta.event_type`, `okta.uuid`,
//! `okta.outcome.result`, `okta.outcome.reason` and every other field flattened under `okta.`
//! (`okta.authenticationContext.authenticationProvider`, `okta.debugContext.debugData.requestUri`;
//! at most 128 attributes). Unless `include_user_ids` is on, these keys are removed at any depth:
//! `alternateId`, `displayName` (of the actor), `ipAddress`, `ip`, `rawUserAgent`,
//! `geographicalContext`, `email`, `login`.
//!
//! Metrics, **cumulative** since the receiver started:
//!
//! - `authwatch.okta.events` `{event}` by `okta.event_type` and `okta.outcome.result`;
//! - `authwatch.okta.events.duplicates` `{event}`: events dropped as already seen;
//! - `authwatch.logins` and `authwatch.logins.users_affected` (see
//!   [provider signals](../../provider-signals.md#logins-from-tenant-logs)): `user.session.start`
//!   and `user.authentication.*` events with `SUCCESS` / `FAILURE` / `DENY`, the category from
//!   `outcome.reason` (`INVALID_CREDENTIALS` wrong credentials, `LOCKED_OUT` blocked,
//!   `VERIFICATION_ERROR` / MFA factors MFA, `RATE_LIMIT` rate limit, errors of the org's own
//!   setup such as a policy or an inline hook the tenant's, internal errors the provider's),
//!   the client from the `AppInstance` target, the connection from
//!   `authenticationContext.authenticationProvider`;
//! - `authwatch.okta.poll.errors` `{error}` by `error.type` (`rate_limited`, `http_status`,
//!   `unreachable`, `timeout`, `malformed`, `link_refused`, `unauthorized`, `checkpoint`);
//! - gauges `authwatch.ratelimit.limit`, `.remaining`, `.reset` (Unix seconds) with
//!   `server.address`: the `X-Rate-Limit-*` headroom of the last answer.
//!
//! Okta's own rate-limit events (`system.org.rate_limit.warning`, `.violation`) arrive as log
//! records like any other event.

use std::path::PathBuf;
use std::time::Duration;

use authwatch_core::config::{Positive, Secret};
use authwatch_core::time::Window;
use authwatch_core::{
    BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, Resource, Running, Signals,
    Validator,
};
use authwatch_net::{HttpUrl, TlsClientConfig};
use authwatch_tenant_logs::logins::{check_users_window, USERS_WINDOW};
use serde::{Deserialize, Serialize};

pub(crate) mod events;
mod poll;

/// Default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Where the first start reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    #[default]
    Now,
    /// This long ago.
    Ago(Duration),
}

impl Serialize for StartAt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartAt::Now => s.serialize_str("now"),
            StartAt::Ago(d) => s.serialize_str(&authwatch_core::time::Window(*d).to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for StartAt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "now" {
            return Ok(StartAt::Now);
        }
        authwatch_core::config::duration::parse(&s)
            .map(StartAt::Ago)
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is neither `now` nor a duration such as `10m`")))
    }
}

/// The `okta_logs` receiver's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub org_url: HttpUrl,
    /// The API token, sent as `Authorization: SSWS <token>`.
    pub api_token: Secret,
    pub start_at: StartAt,
    #[serde(with = "authwatch_core::config::duration")]
    pub interval: Duration,
    pub limit: Positive,
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    #[serde(with = "authwatch_core::config::duration")]
    pub max_backoff: Duration,
    pub rate_limit_share: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<PathBuf>,
    pub include_user_ids: bool,
    pub dependency: String,
    pub dedupe_max_entries: Positive,
    /// The window of `authwatch.logins.users_affected`: whole minutes from `1m` to `1h`.
    pub users_window: Window,
    pub tls: TlsClientConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            org_url: HttpUrl::default(),
            api_token: Secret::default(),
            start_at: StartAt::Now,
            interval: DEFAULT_INTERVAL,
            limit: Positive(DEFAULT_LIMIT),
            timeout: Duration::from_secs(10),
            max_backoff: Duration::from_secs(300),
            rate_limit_share: 0.5,
            storage: None,
            include_user_ids: false,
            dependency: "okta".into(),
            dedupe_max_entries: Positive(100_000),
            users_window: Window(USERS_WINDOW),
            tls: TlsClientConfig::default(),
        }
    }
}

impl ComponentConfig for Config {
    const TYPE: &'static str = "okta_logs";

    fn validate(&self, v: &mut Validator) {
        if self.org_url.is_empty() {
            v.error("org_url", "is required: the org's base URL, e.g. https://example.okta.com");
        }
        if self.api_token.is_empty() {
            v.error(
                "api_token",
                "is required: an Okta API token, e.g. `${env:OKTA_API_TOKEN}`",
            );
        } else if self.api_token.expose().trim() != self.api_token.expose() {
            v.error("api_token", "must not start or end with whitespace");
        }
        if self.limit.get() > MAX_LIMIT {
            v.error("limit", format!("must be at most {MAX_LIMIT} (Okta's largest page)"));
        }
        if self.interval.is_zero() {
            v.error("interval", "must be longer than zero, e.g. `10s`");
        }
        if self.timeout.is_zero() {
            v.error("timeout", "must be longer than zero, e.g. `10s`");
        }
        if self.max_backoff < Duration::from_secs(1) {
            v.error("max_backoff", "must be at least `1s`");
        }
        if !(self.rate_limit_share > 0.0 && self.rate_limit_share <= 1.0) {
            v.error("rate_limit_share", "must be above 0 and at most 1, e.g. 0.5");
        }
        if self.dependency.trim().is_empty() {
            v.error("dependency", "must not be empty, e.g. `okta`");
        }
        if let Err(e) = check_users_window(self.users_window) {
            v.error("users_window", e.to_string());
        }
        self.tls.validate_for_urls(v, "tls");
    }

    fn resources(&self) -> Vec<Resource> {
        self.storage
            .iter()
            .map(|d| Resource::Path(d.join(poll::CHECKPOINT_FILE)))
            .collect()
    }
}

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::LOGS | Signals::METRICS
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        Ok(poll::Poller::new(self, cx)?.run())
    }
}

#[cfg(test)]
mod tests;
