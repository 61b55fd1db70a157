//! The `pull:` section: reading the tenant's logs from the Management API.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use authwatch_core::config::{Positive, Secret};
use authwatch_core::Validator;
use authwatch_net::{HttpUrl, TlsClientConfig};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default and largest `take` (Auth0 answers at most 100 events a page).
pub const MAX_TAKE: usize = 100;
/// Default `requests_per_second`: a free tenant's Management API rate.
pub const DEFAULT_REQUESTS_PER_SECOND: f64 = 2.0;
/// Default `max_share`.
pub const DEFAULT_MAX_SHARE: f64 = 0.5;
/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `log_streams.interval`.
pub const DEFAULT_STREAMS_INTERVAL: Duration = Duration::from_secs(60);

/// Where the first start reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Events from the first start on.
    #[default]
    Now,
    /// Events of this long before the first start (bounded by the tenant's retention).
    Ago(Duration),
}

impl Serialize for StartAt {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartAt::Now => s.serialize_str("now"),
            StartAt::Ago(d) => s.collect_str(&humantime_like(*d)),
        }
    }
}

fn humantime_like(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

impl<'de> Deserialize<'de> for StartAt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.trim() == "now" {
            return Ok(StartAt::Now);
        }
        authwatch_core::config::duration::parse(&s)
            .map(StartAt::Ago)
            .map_err(|e| serde::de::Error::custom(format!("must be `now` or a duration: {e}")))
    }
}

/// `pull.log_streams`: watch the tenant's log streams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogStreams {
    /// Poll one stream by id; empty: every stream (`GET /api/v2/log-streams`).
    pub id: String,
    #[serde(with = "authwatch_core::config::duration")]
    pub interval: Duration,
}

impl Default for LogStreams {
    fn default() -> Self {
        LogStreams {
            id: String::new(),
            interval: DEFAULT_STREAMS_INTERVAL,
        }
    }
}

/// The `pull:` options.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PullConfig {
    /// The tenant's domain, e.g. `my-tenant.us.auth0.com`.
    pub domain: String,
    pub client_id: String,
    pub client_secret: Secret,
    /// Default `https://{domain}/api/v2/`.
    pub audience: String,
    /// Where the Management API and `/oauth/token` are; default `https://{domain}`.
    pub endpoint: HttpUrl,
    #[serde(with = "authwatch_core::config::duration")]
    pub interval: Duration,
    pub start_at: StartAt,
    pub take: Positive,
    /// The tenant's sustained Management API rate (requests per second).
    pub requests_per_second: f64,
    /// The share of that rate (and of each `x-ratelimit-limit` bucket) this receiver may use.
    pub max_share: f64,
    /// Directory for the checkpoint (the same one `sending_queue.storage` can use).
    pub storage: Option<PathBuf>,
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    pub tls: TlsClientConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_streams: Option<LogStreams>,
}

impl fmt::Debug for PullConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PullConfig")
            .field("domain", &self.domain)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("endpoint", &self.endpoint)
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

impl Default for PullConfig {
    fn default() -> Self {
        PullConfig {
            domain: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            audience: String::new(),
            endpoint: HttpUrl::default(),
            interval: DEFAULT_INTERVAL,
            start_at: StartAt::Now,
            take: Positive(MAX_TAKE),
            requests_per_second: DEFAULT_REQUESTS_PER_SECOND,
            max_share: DEFAULT_MAX_SHARE,
            storage: None,
            timeout: DEFAULT_TIMEOUT,
            tls: TlsClientConfig::default(),
            log_streams: None,
        }
    }
}

impl PullConfig {
    /// The Management API's origin.
    pub fn base_url(&self) -> String {
        if self.endpoint.is_empty() {
            format!("https://{}", self.domain.trim_end_matches('/'))
        } else {
            self.endpoint.as_str().trim_end_matches('/').to_owned()
        }
    }

    /// The token's `audience`.
    pub fn audience(&self) -> String {
        if self.audience.is_empty() {
            format!("https://{}/api/v2/", self.domain)
        } else {
            self.audience.clone()
        }
    }

    pub(crate) fn validate(&self, v: &mut Validator) {
        let domain_ok = !self.domain.is_empty()
            && !self.domain.contains("://")
            && !self.domain.contains('/')
            && url::Url::parse(&format!("https://{}/", self.domain)).is_ok();
        if !domain_ok {
            v.error(
                "pull::domain",
                "must be the tenant's domain without a scheme, e.g. `my-tenant.us.auth0.com`",
            );
        }
        if self.client_id.is_empty() {
            v.error(
                "pull::client_id",
                "must be set to the client ID of an M2M application authorized for the Management API with `read:logs`",
            );
        }
        if self.client_secret.is_empty() {
            v.error(
                "pull::client_secret",
                "must be set, e.g. `${env:AUTH0_LOGS_CLIENT_SECRET}`",
            );
        }
        if self.storage.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
            v.error(
                "pull::storage",
                "must be a directory for the checkpoint (the last log_id read), e.g. `/var/lib/authwatch`; without it a restart would re-read or skip events",
            );
        }
        if self.interval.is_zero() {
            v.error("pull::interval", "must be more than 0s");
        }
        if self.timeout.is_zero() {
            v.error("pull::timeout", "must be more than 0s");
        }
        if self.take.get() > MAX_TAKE {
            v.error(
                "pull::take",
                format!("must be at most {MAX_TAKE}: the Management API answers at most {MAX_TAKE} events a page"),
            );
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            v.error(
                "pull::requests_per_second",
                "must be more than 0 (a free tenant's Management API allows 2)",
            );
        }
        if !(self.max_share.is_finite() && self.max_share > 0.0 && self.max_share <= 1.0) {
            v.error("pull::max_share", "must be more than 0 and at most 1");
        }
        if let Some(ls) = &self.log_streams {
            if ls.interval.is_zero() {
                v.error("pull::log_streams::interval", "must be more than 0s");
            }
            if ls.id.contains(['/', '?', '#']) {
                v.error(
                    "pull::log_streams::id",
                    "must be a log stream id such as `lst_0000000000012345`",
                );
            }
        }
        self.tls.validate(v, "pull::tls");
    }
}
