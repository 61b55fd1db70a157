//! # `synthetic` receiver
//!
//! Runs synthetic transactions against the identity provider on a schedule, as Auth0's "Monitor
//! Applications" guide recommends: by default once a minute, an authentication through the
//! Resource Owner Password Grant (so that rules, Actions and custom database scripts run too),
//! with the returned token validated. Every run yields one trace (a root span per check, a
//! CLIENT span per HTTP request, child spans per phase) and a set of metrics, built as OTLP
//! data and sent into the pipelines that list this receiver (`traces` and/or `metrics`).
//!
//! ```yaml
//! receivers:
//!   synthetic/auth0:
//!     interval: 60s
//!     timeout: 10s
//!     checks:
//!       - name: login
//!         type: password_grant
//!         token_url: https://${env:AUTH0_DOMAIN}/oauth/token
//!         client_id: ${env:AUTH0_CLIENT_ID}
//!         client_secret: ${env:AUTH0_CLIENT_SECRET}
//!         username: probe@example.com
//!         password: ${env:AUTH0_PROBE_PASSWORD}
//!         realm: Username-Password-Authentication
//!         audience: https://api.example.com
//!         scope: openid
//!         validate_token:
//!           issuer: https://${env:AUTH0_DOMAIN}/
//!           audience: https://api.example.com
//!           require_claims:
//!             https://probe.example.com/actions_ran: true
//! ```
//!
//! The `authorization_code` check logs in the way users do, through the hosted login page
//! (Auth0 Universal Login, Okta, Keycloak, Entra), without a browser: the authorize request with
//! PKCE, redirects followed by hand with a per-run cookie jar, the login form found and filled
//! (one page, or identifier then password; an MFA page answered from `totp_secret`; consent
//! accepted with `consent: accept`), stopped at the redirect to `redirect_uri` (never called),
//! the code exchanged, the id_token validated. Credentials go only to the authorize URL's host
//! or `allowed_hosts`. Outcomes add `login_page_changed`, `login_rejected`, `mfa_required`,
//! `consent_required`, `bot_challenge` and `redirect_loop`.
//!
//! ```yaml
//! receivers:
//!   synthetic/login_page:
//!     interval: 5m
//!     checks:
//!       - name: universal_login
//!         type: authorization_code
//!         issuer: https://${env:AUTH0_DOMAIN}/
//!         client_id: ${env:AUTH0_WEB_CLIENT_ID}
//!         redirect_uri: https://authwatch.invalid/callback
//!         params:
//!           connection: Username-Password-Authentication
//!         username: probe@example.com
//!         password: ${env:AUTH0_PROBE_PASSWORD}
//! ```
//!
//! The full reference (every option and default, the check types, the outcome taxonomy, every
//! metric and span attribute) is in [the synthetic checks guide](../../synthetic.md).
//!
//! Care for the tenant: runs of one check never overlap (the timeout must not exceed the
//! interval); a `429` with `Retry-After` (or `x-ratelimit-reset`) delays the next run until then;
//! `too_many_attempts` (brute-force protection blocking the probe user) pauses the check for
//! `blocked_backoff` and says so in a warning, rather than keep the account locked. `validate`
//! warns when the checks would use more than `rate_limit_budget.max_share` of a stated budget.
//!
//! Secrets (`client_secret`, `password`, `totp_secret`, header values, request bodies, and the
//! tokens, codes, PKCE verifiers and cookies of a run) never appear in spans, metrics, logs, error messages or `print-config` output.

mod assert;
pub(crate) mod authcode;
mod board;
mod client;
mod config;
mod emit;
mod metrics;
pub(crate) mod jwt;
mod newtypes;
mod oauth;
mod outcome;
mod probe;
mod result;
mod run;
mod schedule;
mod validate;

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::info;

use authwatch_core::config::duration;
use authwatch_core::{
    BuildError, ComponentConfig, ReceiverConfig, ReceiverContext, Running, Signals, Validator,
};

pub use config::{
    Algorithm, AuthCodeCheck, BodyFormat, Check, ClientAuth, ConsentAction, Expect, FormFields,
    HeaderAssertion, HttpCheck, JsonAssertion, OAuthCheck, RateLimitBudget, TlsConfig, TokenKind,
    TokenValidation,
};
pub use newtypes::{JsonPath, JsonPathError, Pattern, StatusMatch};
pub use outcome::Outcome;
pub use probe::{configs_in_document, probe_document, probe_once, ProbeError, ProbeReport};
pub use result::RunResult;

pub(crate) use schedule::Backoff;
use schedule::{run_schedule, schedule_lag, CheckTask, Schedule};

// === Config ===

/// The `synthetic` receiver's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Time between the starts of two runs of a check.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Longest a run may take, every request included; must not exceed the interval.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Wait before the first run.
    #[serde(with = "duration")]
    pub initial_delay: Duration,
    /// A random extra delay, up to this, before each check's first run (spreads checks out).
    #[serde(with = "duration")]
    pub jitter: Duration,
    /// How long a check pauses after `too_many_attempts` (the probe user is blocked).
    #[serde(with = "duration")]
    pub blocked_backoff: Duration,
    /// A stated rate-limit budget; `validate` warns when the checks would use too much of it.
    pub rate_limit_budget: Option<RateLimitBudget>,
    pub checks: Vec<Check>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            initial_delay: Duration::from_secs(1),
            jitter: Duration::ZERO,
            blocked_backoff: Duration::from_secs(15 * 60),
            rate_limit_budget: None,
            checks: Vec::new(),
        }
    }
}

impl Config {
    /// The interval and timeout a check runs with (its overrides, else the receiver's).
    pub(crate) fn schedule_of(&self, c: &Check) -> (Duration, Duration) {
        (
            c.interval().unwrap_or(self.interval),
            c.timeout().unwrap_or(self.timeout),
        )
    }

    /// Requests per minute the checks send in steady state (one token or HTTP request per run;
    /// every request of an `authorization_code` walk; JWKS fetches are cached and not counted).
    pub fn requests_per_minute(&self) -> f64 {
        self.checks
            .iter()
            .map(|c| {
                let (interval, _) = self.schedule_of(c);
                if interval.is_zero() {
                    0.0
                } else {
                    c.requests_per_run() * 60.0 / interval.as_secs_f64()
                }
            })
            .sum()
    }
}

// === impl ReceiverConfig ===

impl ComponentConfig for Config {
    const TYPE: &'static str = "synthetic";

    fn validate(&self, v: &mut Validator) {
        validate::config(self, v);
    }
}

impl ReceiverConfig for Config {
    fn signals(&self) -> Signals {
        Signals::TRACES | Signals::METRICS
    }

    async fn build(&self, cx: ReceiverContext) -> Result<Running, BuildError> {
        let telemetry = cx.settings.telemetry.receiver(&cx.settings.id, "synthetic");
        let lag = schedule_lag(&cx.settings.telemetry, &cx.settings.id.to_string());
        let mut runners = Vec::new();
        for check in &self.checks {
            let (interval, timeout) = self.schedule_of(check);
            let runner = run::CheckRunner::new(check.clone(), timeout)
                .map_err(|e| BuildError::option(format!("check `{}`", check.name()), e))?;
            let board = board::ProbeBoard::new(
                cx.settings.board.clone(),
                &cx.settings.id.to_string(),
                check,
            );
            runners.push((runner, interval, board));
        }
        let settings = cx.settings;
        let next = cx.next;
        let schedule = Schedule {
            initial_delay: self.initial_delay,
            jitter: self.jitter,
            blocked_backoff: self.blocked_backoff,
            interval: Duration::ZERO,
            lag: Some(lag),
        };
        let id = settings.id.to_string();
        Ok(Box::pin(async move {
            info!(receiver = %id, checks = runners.len(), "Synthetic receiver started.");
            let mut tasks = tokio::task::JoinSet::new();
            for (runner, interval, board) in runners {
                let emitter = emit::Emitter::new(next.clone(), telemetry.clone());
                let shutdown = settings.shutdown.clone();
                let schedule = Schedule {
                    interval,
                    ..schedule.clone()
                };
                let mut task = CheckTask {
                    runner,
                    emitter,
                    board,
                };
                tasks.spawn(async move {
                    run_schedule(&schedule, &shutdown, &mut task).await;
                });
            }
            while tasks.join_next().await.is_some() {}
            info!(receiver = %id, "Synthetic receiver stopped.");
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests;
