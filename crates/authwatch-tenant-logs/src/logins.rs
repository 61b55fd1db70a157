//! Logins as an error rate, shared by the tenant-log receivers (`auth0_logs`, `okta_logs`):
//! each receiver maps its own events onto a [`Login`] (outcome, failure category, client,
//! connection, and the user only as a hash for the sketch), and [`Logins`] keeps the
//! cumulative counters and the distinct users affected by failures, and writes them as
//! metrics:
//!
//! - `authwatch.logins` `{login}`, cumulative monotonic sum, by `dependency`,
//!   `login.outcome` (`success` / `failure`), `login.failure.category` (failures only),
//!   `login.client` and `login.connection`;
//! - `authwatch.logins.users_affected` `{user}`, gauge, by `dependency` and
//!   `login.failure.scope` (`provider_side`: provider or tenant errors; `all`: any failure):
//!   the distinct users with a failed login in the last `users_window` (default
//!   [`USERS_WINDOW`], whole minutes up to [`MAX_USERS_WINDOW`]), estimated with a
//!   HyperLogLog sketch (`hyperloglogplus`, precision 12: 4096 five-bit registers packed in
//!   about 2.7 KiB per sketch, typical error 1.6%; below a few hundred users linear counting
//!   is within one or two of the truth). Two scopes × one sketch per minute of the window plus
//!   the minute in progress: about 33 KiB per receiver at 5 minutes and 330 KiB at an hour,
//!   whatever the number of users. No user id is kept: the sketch holds only the maxima of hash
//!   bits, hashed with a key drawn at random per process.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use authwatch_core::data::kv_str;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Metric, NumberDataPoint, Sum,
};
use hyperloglogplus::{HyperLogLog, HyperLogLogPF};

use authwatch_core::semconv::{
    DEPENDENCY, LOGINS, LOGINS_USERS_AFFECTED as USERS_AFFECTED, LOGIN_CLIENT as CLIENT,
    LOGIN_CONNECTION as CONNECTION, LOGIN_FAILURE_CATEGORY as FAILURE_CATEGORY,
    LOGIN_FAILURE_SCOPE as FAILURE_SCOPE, LOGIN_OUTCOME as OUTCOME,
};
use authwatch_core::time::{otlp_time, Window};

/// The window the users gauge covers by default.
pub const USERS_WINDOW: Duration = Duration::from_secs(300);
/// The longest users window: an hour.
pub const MAX_USERS_WINDOW: Duration = Duration::from_secs(3600);
/// HyperLogLog precision: 2^12 registers.
const PRECISION: u8 = 12;
/// Distinct counter series at most; further (client, connection) pairs count as `_other`.
const MAX_SERIES: usize = 1000;
/// Longest client or connection name kept as an attribute.
const MAX_NAME: usize = 128;

/// Why a `users_window` is refused: it must be whole minutes from `1m` to `1h`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be whole minutes from `1m` to `1h` (one sketch is kept per minute), e.g. `15m`; got `{0}`")]
pub struct UsersWindowError(pub Window);

/// Checks a configured `users_window`.
pub fn check_users_window(window: Window) -> Result<(), UsersWindowError> {
    let d = window.get();
    let whole_minutes = Duration::from_secs(d.as_secs() / 60 * 60) == d;
    if !whole_minutes || d < Duration::from_secs(60) || d > MAX_USERS_WINDOW {
        return Err(UsersWindowError(window));
    }
    Ok(())
}

/// Why a login failed, for error rates and verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureCategory {
    /// Wrong password or unknown user: the user's mistake.
    WrongCredentials,
    /// The account or IP is blocked or locked (brute-force protection, breached password).
    Blocked,
    /// A second factor was required or failed.
    Mfa,
    /// Refused by a rate limit.
    RateLimit,
    /// The provider failed (an internal error, a timeout, a dependency of the provider).
    ProviderError,
    /// The tenant's own setup failed (an Action, rule or custom database script error, a
    /// connector, a misconfigured application).
    TenantError,
    /// A failure the log does not say more about.
    Other,
}

impl FailureCategory {
    #[cfg(test)]
    pub const ALL: [FailureCategory; 7] = [
        FailureCategory::WrongCredentials,
        FailureCategory::Blocked,
        FailureCategory::Mfa,
        FailureCategory::RateLimit,
        FailureCategory::ProviderError,
        FailureCategory::TenantError,
        FailureCategory::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureCategory::WrongCredentials => "wrong_credentials",
            FailureCategory::Blocked => "blocked",
            FailureCategory::Mfa => "mfa",
            FailureCategory::RateLimit => "rate_limit",
            FailureCategory::ProviderError => authwatch_core::semconv::LOGIN_PROVIDER_ERROR,
            FailureCategory::TenantError => authwatch_core::semconv::LOGIN_TENANT_ERROR,
            FailureCategory::Other => "other",
        }
    }

    /// Failed on the identity provider's side (the provider's or the tenant's setup), not
    /// by the user's own doing: what the login error-rate alert counts.
    pub fn is_provider_side(self) -> bool {
        matches!(
            self,
            FailureCategory::ProviderError | FailureCategory::TenantError
        )
    }

    /// Reads a category name as [`FailureCategory::as_str`] writes it.
    #[cfg(test)]
    pub fn parse(s: &str) -> Option<FailureCategory> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for FailureCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A login's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Success,
    Failure(FailureCategory),
}

/// One login read from a tenant log.
#[derive(Debug, Clone, PartialEq)]
pub struct Login<'a> {
    pub outcome: Outcome,
    pub client: &'a str,
    pub connection: &'a str,
    /// Who tried: only hashed into the sketch, never stored or sent.
    pub user: Option<&'a str>,
    /// When the log says it happened (`None`: now).
    pub at: Option<SystemTime>,
}

type Key = (Outcome, String, String);

/// One minute's sketches of users with failed logins.
#[derive(Debug, Clone)]
struct Bucket {
    minute: u64,
    provider_side: HyperLogLogPF<String, RandomState>,
    all: HyperLogLogPF<String, RandomState>,
}

/// The login counters and the users sketch of one receiver. Cloned for each batch and kept
/// only when the pipeline accepted it, like the receivers' other counters.
#[derive(Debug, Clone)]
pub struct Logins {
    dependency: String,
    counts: BTreeMap<Key, u64>,
    hasher: RandomState,
    buckets: Vec<Bucket>,
    /// The users window, in whole minutes (1 to 60).
    window_minutes: u64,
}

fn minute_of(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

fn name(s: &str) -> String {
    if s.is_empty() {
        return "unknown".to_owned();
    }
    let mut end = s.len().min(MAX_NAME);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn sketch(hasher: &RandomState) -> HyperLogLogPF<String, RandomState> {
    // PRECISION is within 4..=16, so this cannot fail; fall back to the minimum anyway.
    HyperLogLogPF::new(PRECISION, hasher.clone())
        .or_else(|_| HyperLogLogPF::new(4, hasher.clone()))
        .unwrap_or_else(|_| unreachable!("precision 4 is always valid"))
}

impl Logins {
    /// Logins with the default users window ([`USERS_WINDOW`]).
    pub fn new(dependency: impl Into<String>) -> Self {
        Logins::with_users_window(dependency, USERS_WINDOW)
    }

    /// Logins whose users gauge covers `window`, in whole minutes from 1 to 60 (rounded down
    /// and clamped: validate the config with [`check_users_window`]).
    pub fn with_users_window(dependency: impl Into<String>, window: Duration) -> Self {
        let max = MAX_USERS_WINDOW.as_secs() / 60;
        Logins {
            dependency: dependency.into(),
            counts: BTreeMap::new(),
            hasher: RandomState::new(),
            buckets: Vec::new(),
            window_minutes: (window.as_secs() / 60).clamp(1, max),
        }
    }

    /// One-minute sketches kept: the window plus the minute in progress.
    fn kept(&self) -> u64 {
        self.window_minutes + 1
    }

    /// Counts one login; `now` bounds the sketch's window.
    pub fn record(&mut self, login: &Login<'_>, now: SystemTime) {
        let mut key = (login.outcome, name(login.client), name(login.connection));
        if !self.counts.contains_key(&key) && self.counts.len() >= MAX_SERIES {
            key = (login.outcome, "_other".to_owned(), "_other".to_owned());
        }
        *self.counts.entry(key).or_default() += 1;
        let Outcome::Failure(cat) = login.outcome else {
            return;
        };
        let Some(user) = login.user.filter(|u| !u.is_empty()) else {
            return;
        };
        let now_min = minute_of(now);
        // Events from the future (clock skew) count as now; older than the window not at all.
        let minute = login.at.map_or(now_min, minute_of).min(now_min);
        if now_min.saturating_sub(minute) >= self.kept() {
            return;
        }
        self.expire(now_min);
        let i = match self.buckets.iter().position(|b| b.minute == minute) {
            Some(i) => i,
            None => {
                self.buckets.push(Bucket {
                    minute,
                    provider_side: sketch(&self.hasher),
                    all: sketch(&self.hasher),
                });
                self.buckets.len() - 1
            }
        };
        let b = &mut self.buckets[i];
        b.all.insert(user);
        if cat.is_provider_side() {
            b.provider_side.insert(user);
        }
    }

    fn expire(&mut self, now_min: u64) {
        let kept = self.kept();
        self.buckets
            .retain(|b| now_min.saturating_sub(b.minute) < kept);
    }

    /// Distinct users with a failed login in the users window (`provider_side`: with a
    /// provider-side failure).
    pub fn users_affected(&mut self, provider_side: bool, now: SystemTime) -> u64 {
        let now_min = minute_of(now);
        self.expire(now_min);
        let first = now_min.saturating_sub(self.window_minutes);
        let mut merged = sketch(&self.hasher);
        for b in self.buckets.iter().filter(|b| b.minute >= first) {
            let s = if provider_side {
                &b.provider_side
            } else {
                &b.all
            };
            // Same precision and hasher: merging cannot fail.
            let _ = merged.merge(s);
        }
        merged.count().round() as u64
    }

    /// Logins counted so far (all outcomes).
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// The counter and the gauge, as of `now`; `start` is the counters' start time (ns).
    pub fn metrics(&mut self, start: u64, now: SystemTime) -> Vec<Metric> {
        let t = otlp_time(now);
        let dep = self.dependency.clone();
        let point = |attributes, value: u64, start| NumberDataPoint {
            attributes,
            start_time_unix_nano: start,
            time_unix_nano: t,
            value: Some(number_data_point::Value::AsInt(
                i64::try_from(value).unwrap_or(i64::MAX),
            )),
            ..Default::default()
        };
        let logins = self
            .counts
            .iter()
            .map(|((outcome, client, connection), n)| {
                let mut attrs = vec![kv_str(DEPENDENCY, &dep)];
                match outcome {
                    Outcome::Success => attrs.push(kv_str(OUTCOME, "success")),
                    Outcome::Failure(c) => {
                        attrs.push(kv_str(OUTCOME, "failure"));
                        attrs.push(kv_str(FAILURE_CATEGORY, c.as_str()));
                    }
                }
                attrs.push(kv_str(CLIENT, client));
                attrs.push(kv_str(CONNECTION, connection));
                point(attrs, *n, start)
            })
            .collect();
        let users = [("provider_side", true), ("all", false)]
            .into_iter()
            .map(|(scope, provider)| {
                let n = self.users_affected(provider, now);
                point(
                    vec![kv_str(DEPENDENCY, &dep), kv_str(FAILURE_SCOPE, scope)],
                    n,
                    0,
                )
            })
            .collect();
        vec![
            Metric {
                name: LOGINS.to_owned(),
                description: "Logins read from the tenant's log, by outcome, failure category, client and connection".to_owned(),
                unit: "{login}".to_owned(),
                data: Some(metric::Data::Sum(Sum {
                    data_points: logins,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                })),
                ..Default::default()
            },
            Metric {
                name: USERS_AFFECTED.to_owned(),
                description: format!(
                    "Distinct users with a failed login over the last {} (HyperLogLog estimate)",
                    Window::secs(self.window_minutes * 60)
                ),
                unit: "{user}".to_owned(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: users,
                })),
                ..Default::default()
            },
        ]
    }
}

#[cfg(test)]
#[path = "tests/logins.rs"]
mod tests;
