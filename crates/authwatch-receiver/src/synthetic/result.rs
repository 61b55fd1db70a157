//! What one run of one check found: the outcome and its details, the HTTP exchanges, the
//! phases, rate-limit headroom and certificate expiry, for the report, the spans and the metrics.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::client::{Exchange, PhaseName};
use super::outcome::Outcome;
use super::Backoff;

/// What an HTTP exchange of a run was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The check's own request (the token request, or the `http` check's request).
    Main,
    Discovery,
    Jwks,
}

/// What a request of an `authorization_code` walk was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HopKind {
    Authorize,
    Redirect,
    Submit,
    Token,
}

impl HopKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            HopKind::Authorize => "authorize",
            HopKind::Redirect => "redirect",
            HopKind::Submit => "submit",
            HopKind::Token => "token",
        }
    }
}

/// One hop of a walk: what the request was, and the page it got (or submitted, for a form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hop {
    pub kind: HopKind,
    /// The page kind (`login`, `identifier`, `password`, `mfa_otp`, `consent`, `captcha`,
    /// `unknown`) the response showed.
    pub page: Option<&'static str>,
}

#[derive(Debug)]
pub(crate) struct Step {
    pub purpose: Purpose,
    pub exchange: Exchange,
    /// Set for the hops of an `authorization_code` walk.
    pub hop: Option<Hop>,
}

/// Rate-limit headroom from the `x-ratelimit-*` headers of the main response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    /// Unix time (seconds) at which the window resets.
    pub reset: Option<i64>,
}

impl RateLimit {
    pub(crate) fn from_headers(h: &http::HeaderMap) -> RateLimit {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<i64>().ok())
        };
        RateLimit {
            limit: get("x-ratelimit-limit"),
            remaining: get("x-ratelimit-remaining"),
            reset: get("x-ratelimit-reset"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset.is_none()
    }
}

/// The result of one run of one check. Holds no secret: no token, no response body.
#[derive(Debug)]
pub struct RunResult {
    pub check: String,
    pub check_type: &'static str,
    /// Wall-clock start, for timestamps.
    pub started_at: SystemTime,
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub outcome: Outcome,
    /// The check's `degraded_response_time`, when it has one.
    pub degraded_after: Option<Duration>,
    /// The run succeeded but took longer than `degraded_after`.
    pub degraded: bool,
    /// The provider's OAuth `error` code, when it sent one.
    pub oauth_error: Option<String>,
    /// Low-cardinality `error.type` (absent on success).
    pub error_type: Option<String>,
    /// What went wrong, for people (secrets removed).
    pub message: Option<String>,
    /// The main response's HTTP status.
    pub status: Option<u16>,
    pub(crate) steps: Vec<Step>,
    /// Discovery and JWKS fetching, when it happened this run.
    pub(crate) jwks: Option<(Instant, Instant)>,
    /// Token validation, when it happened.
    pub(crate) validation: Option<(Instant, Instant)>,
    pub ratelimit: RateLimit,
    /// The main server certificate's `notAfter`, Unix seconds.
    pub cert_not_after: Option<i64>,
    /// How long the provider asked to wait (429).
    pub retry_after: Option<Duration>,
    /// Required claims that were checked, with their values.
    pub claims: Vec<(String, String)>,
}

impl RunResult {
    pub fn duration(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }

    /// The phases of the run: those of the main request (summed per phase over the hops of a
    /// walk), then `jwks` and `validate`.
    pub fn phases(&self) -> Vec<(&'static str, Duration)> {
        let mut out: Vec<(&'static str, Duration)> = Vec::new();
        for t in self
            .steps
            .iter()
            .filter(|s| s.purpose == Purpose::Main)
            .flat_map(|s| s.exchange.phases.iter())
        {
            match out.iter_mut().find(|(p, _)| *p == t.phase.as_str()) {
                Some((_, d)) => *d += t.duration(),
                None => out.push((t.phase.as_str(), t.duration())),
            }
        }
        if let Some((a, b)) = self.jwks {
            out.push(("jwks", b.saturating_duration_since(a)));
        }
        if let Some((a, b)) = self.validation {
            out.push(("validate", b.saturating_duration_since(a)));
        }
        out
    }

    /// The hops of an `authorization_code` walk, in order.
    pub(crate) fn hops(&self) -> impl Iterator<Item = (&Hop, &Exchange)> {
        self.steps
            .iter()
            .filter_map(|s| s.hop.as_ref().map(|h| (h, &s.exchange)))
    }

    pub(crate) fn backoff(&self) -> Backoff {
        if self.oauth_error.as_deref() == Some("too_many_attempts") {
            Backoff::Blocked
        } else if let Some(d) = self.retry_after {
            Backoff::RetryAfter(d)
        } else {
            Backoff::None
        }
    }

    pub(crate) fn phase_names() -> [&'static str; 7] {
        [
            PhaseName::Dns.as_str(),
            PhaseName::Connect.as_str(),
            PhaseName::Tls.as_str(),
            PhaseName::Request.as_str(),
            PhaseName::Transfer.as_str(),
            "jwks",
            "validate",
        ]
    }
}
