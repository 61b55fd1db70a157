//! # `statuspage` receiver
//!
//! Polls providers' public status pages and turns what they say into metrics and log records, so
//! that the provider's own view ("is Auth0 having an incident?") sits in the same pipelines as
//! the probes and the error rates. It can feed `metrics` and `logs` pipelines.
//!
//! ```yaml
//! receivers:
//!   statuspage:
//!     interval: 60s          # time between polls of each page
//!     timeout: 10s           # per request, connect to last byte
//!     max_backoff: 5m        # longest wait between polls of a failing page
//!     pages:
//!       - name: auth0        # Auth0's status site: an Atom feed per tenant domain
//!         url: https://status.auth0.com/feed?domain=${env:AUTH0_DOMAIN}
//!         format: atom
//!       - name: github       # any Atlassian Statuspage
//!         url: https://www.githubstatus.com/api/v2/summary.json
//!         format: statuspage_v2
//!         components: [Git Operations, API Requests]
//! ```
//!
//! ## Options
//!
//! | option | default | meaning |
//! | --- | --- | --- |
//! | `interval` | `60s` | time between two polls of a page |
//! | `timeout` | `10s` | longest a poll may take, connect to last byte |
//! | `max_backoff` | `5m` | longest wait between polls of a page that keeps failing |
//! | `pages` | (required) | the pages to poll, at least one |
//! | `pages[].name` | (required) | short name, the `status.page` attribute; unique |
//! | `pages[].url` | (required) | `http(s)` URL of the document |
//! | `pages[].format` | `statuspage_v2` | `statuspage_v2` (`/api/v2/summary.json`), `atom` or `rss` |
//! | `pages[].components` | all | `statuspage_v2` only: component names or ids to report |
//!
//! ## What it sends
//!
//! Every poll sends gauges (resource `service.name=authwatch`, scope `authwatch.statuspage`):
//!
//! | metric | attributes | value |
//! | --- | --- | --- |
//! | `authwatch.status.up` | `status.page`, `status.page.url` | 1 page fetched and understood, 0 unreachable or malformed |
//! | `authwatch.status.indicator` | `status.page`, `status.page.url` | 0 none, 1 minor, 2 major, 3 critical |
//! | `authwatch.status.incidents.active` | `status.page`, `status.page.url` | incidents not resolved |
//! | `authwatch.status.component` | `status.page`, `status.component.name`, `status.component.id` | 0 operational, 1 degraded performance, 2 partial outage, 3 major outage, 4 under maintenance |
//!
//! When a page is down only `authwatch.status.up` 0 is sent: a page that cannot be read is never
//! reported as operational. A `304 Not Modified` answer re-sends the last state.
//!
//! Log records (event names in `event_name`):
//!
//! - `authwatch.status.incident.opened` / `.updated` / `.resolved` with `status.incident.id`,
//!   `.name`, `.impact`, `.status`, `.url` (and `.previous_status` on updates); body: the latest
//!   update's text. Incidents already open at the first poll are reported as opened.
//! - `authwatch.status.page.down` (ERROR, with `error.type`: `timeout`, `unreachable`,
//!   `http_status`, `malformed`) when a page stops answering or answers something else than
//!   before, and `authwatch.status.page.recovered` when it answers again.
//!
//! ## Formats
//!
//! - `statuspage_v2`: Atlassian Statuspage's `summary.json`: `status.indicator` (`maintenance`
//!   counts as 0), `components[]`, unresolved `incidents[]`. An incident that leaves the list is
//!   resolved.
//! - `atom` / `rss`: incident feeds, e.g. Auth0's `https://status.auth0.com/feed?domain=TENANT`
//!   or a Statuspage's `/history.atom`. Each entry is an incident; its status is the first
//!   `<strong>Status</strong>` of its content (updates are newest first), else `resolved` when
//!   the text says so, else `unknown`, which counts as open. Feeds carry no impact: it is `major`
//!   when the title or latest update says "outage", `maintenance` when it says "maintenance"
//!   (indicator 0), otherwise `minor`. The indicator is the highest impact among open incidents.
//!   At the first poll only open entries are reported; later, new entries are reported (as
//!   resolved if they already are).
//!
//! ## Requests
//!
//! Plain `GET` with `If-None-Match` / `If-Modified-Since` from the last good answer. Bodies over
//! 10 MiB are refused as malformed. After a failure the next poll of that page waits
//! `interval × 2^(failures-1)`, at most `max_backoff`; one success resets it.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use authwatch_core::{
    BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, RunError, Running, Signals,
    Validator,
};
use serde::{Deserialize, Serialize};
use tracing::{info, Instrument};

pub(crate) mod emit;
mod fetch;
pub(crate) mod parse;
mod poller;

pub(crate) use poller::Poller;

/// Default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Default `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `max_backoff`.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Largest document accepted, in bytes.
pub const MAX_DOCUMENT_SIZE: usize = 10 * 1024 * 1024;

/// The `statuspage` receiver's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(with = "authwatch_core::config::duration")]
    pub interval: Duration,
    #[serde(with = "authwatch_core::config::duration")]
    pub timeout: Duration,
    #[serde(with = "authwatch_core::config::duration")]
    pub max_backoff: Duration,
    pub pages: Vec<PageConfig>,
}

/// One entry of `pages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageConfig {
    pub name: String,
    pub url: PageUrl,
    #[serde(default)]
    pub format: Format,
    /// `statuspage_v2` only: names or ids of the components to report; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

/// What kind of document a page serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Atlassian Statuspage `/api/v2/summary.json`.
    #[default]
    StatuspageV2,
    /// An Atom incident feed.
    Atom,
    /// An RSS 2.0 incident feed.
    Rss,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::StatuspageV2 => "statuspage_v2",
            Format::Atom => "atom",
            Format::Rss => "rss",
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: DEFAULT_INTERVAL,
            timeout: DEFAULT_TIMEOUT,
            max_backoff: DEFAULT_MAX_BACKOFF,
            pages: Vec::new(),
        }
    }
}

// === newtypes ===

/// An absolute `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageUrl(reqwest::Url);

/// Why a page URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageUrlError {
    #[error("invalid URL `{url}` ({source}); write it like `https://status.example.com/api/v2/summary.json`")]
    Parse {
        url: String,
        #[source]
        source: url::ParseError,
    },
    #[error(
        "invalid URL `{url}`: scheme `{scheme}` is not supported; use `https://` or `http://`"
    )]
    Scheme { url: String, scheme: String },
    #[error("invalid URL `{0}`: it has no host")]
    NoHost(String),
}

authwatch_net::string_newtype!(
    PageUrl,
    error = PageUrlError,
    parse = PageUrl::parse,
    display = |u| u.0.as_str()
);

impl PageUrl {
    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    fn parse(s: &str) -> Result<Self, PageUrlError> {
        let t = s.trim();
        let url = reqwest::Url::parse(t).map_err(|source| PageUrlError::Parse {
            url: t.to_owned(),
            source,
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(PageUrlError::Scheme {
                    url: t.to_owned(),
                    scheme: other.to_owned(),
                })
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(PageUrlError::NoHost(t.to_owned()));
        }
        Ok(PageUrl(url))
    }
}

// === impl Config ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "statuspage";

    fn validate(&self, v: &mut Validator) {
        if self.interval.is_zero() {
            v.error("interval", "must be longer than zero; write it like `60s`");
        }
        if self.timeout.is_zero() {
            v.error("timeout", "must be longer than zero; write it like `10s`");
        }
        if self.max_backoff < self.interval {
            v.error(
                "max_backoff",
                format!(
                    "must be at least `interval` ({}); raise it or lower `interval`",
                    humanize(self.interval)
                ),
            );
        }
        if self.pages.is_empty() {
            v.error(
                "pages",
                "add at least one page, e.g. `- {name: auth0, url: \"https://status.auth0.com/feed?domain=TENANT.auth0.com\", format: atom}`",
            );
        }
        let mut names = HashSet::new();
        for (i, p) in self.pages.iter().enumerate() {
            let name = p.name.trim();
            if name.is_empty() {
                v.error(&format!("pages::{i}::name"), "must not be empty");
            } else if !names.insert(name) {
                v.error(
                    &format!("pages::{i}::name"),
                    format!("`{name}` is used by another page; give each page its own name"),
                );
            }
            if !p.components.is_empty() && p.format != Format::StatuspageV2 {
                v.error(
                    &format!("pages::{i}::components"),
                    format!(
                        "only `statuspage_v2` pages have components; remove it or change `format` (is `{}`)",
                        p.format.as_str()
                    ),
                );
            }
        }
    }
}

fn humanize(d: Duration) -> String {
    format!("{d:?}")
}

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::METRICS | Signals::LOGS
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        let client = http_client(self.timeout)?;
        let telemetry = cx.settings.telemetry.receiver(&cx.settings.id, "poll");
        let started = SystemTime::now();
        let pollers: Vec<Poller> = self
            .pages
            .iter()
            .map(|p| {
                Poller::new(
                    p.clone(),
                    client.clone(),
                    cx.next.clone(),
                    telemetry.clone(),
                    started,
                )
                .with_board(cx.settings.board.clone())
            })
            .collect();
        let schedule = Schedule {
            interval: self.interval,
            max_backoff: self.max_backoff,
        };
        let shutdown = cx.settings.shutdown.clone();
        let id = cx.settings.id.clone();
        info!(receiver = %id, pages = pollers.len(), "Status page receiver started.");
        Ok(Box::pin(async move {
            let tasks = pollers.into_iter().map(|p| {
                let span = tracing::info_span!("status_page", page = %p.name());
                run_page(p, schedule, shutdown.clone()).instrument(span)
            });
            futures::future::join_all(tasks).await;
            info!(receiver = %id, "Status page receiver stopped.");
            Ok::<(), RunError>(())
        }))
    }
}

/// The reqwest client every page of one receiver shares.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, BuildError> {
    Ok(authwatch_net::http_client(
        timeout,
        &authwatch_net::TlsClientConfig::default(),
    )?)
}

// === impl Schedule ===

/// When the next poll of a page happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    pub interval: Duration,
    pub max_backoff: Duration,
}

impl Schedule {
    /// The wait after a poll, given how many polls in a row have failed.
    pub(crate) fn next_delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return self.interval;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.interval
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_backoff.max(self.interval))
    }
}

/// Polls one page until shutdown: at once, then per the schedule.
async fn run_page(
    mut poller: Poller,
    schedule: Schedule,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = poller.poll_once() => {}
        }
        let delay = schedule.next_delay(poller.failures());
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests;
