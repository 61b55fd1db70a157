//! Rate-limit headers, and a pacer that keeps a poller to a share of the provider's budget.
//!
//! Auth0 sends `x-ratelimit-limit` (the bucket size), `x-ratelimit-remaining` and
//! `x-ratelimit-reset` (Unix seconds when requests are added back)
//! (<https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy>);
//! Okta sends `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (Unix
//! seconds when the window resets)
//! (<https://developer.okta.com/docs/reference/rl-best-practices/>). [`RateLimit::from_headers`]
//! reads either.
//!
//! The budget is shared with the tenant's own applications, so a [`Pacer`] keeps two rules:
//! requests are spaced at least `1 / (share × requests_per_second)` apart, and once the bucket
//! has fewer than `(1 − share) × limit` requests left, it waits for the reset (bounded by
//! [`MAX_RESET_WAIT`], so a skewed clock cannot stall it) instead of eating into what the
//! applications need. A `429` with `Retry-After` holds it for that long ([`Pacer::hold`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authwatch_core::otlp::common::v1::KeyValue;
use authwatch_core::otlp::metrics::v1::{
    metric, number_data_point, Gauge, Metric, NumberDataPoint,
};
use authwatch_core::semconv::{RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET};
use http::HeaderMap;
use tokio::time::Instant;

/// The longest a pacer waits for an announced reset.
pub const MAX_RESET_WAIT: Duration = Duration::from_secs(60);

/// A response's rate-limit headers; each `None` when absent or not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Unix seconds.
    pub reset: Option<u64>,
}

impl RateLimit {
    /// Auth0's `x-ratelimit-*` or, when absent, Okta's `x-rate-limit-*`.
    pub fn from_headers(h: &HeaderMap) -> RateLimit {
        let get = |a: &str, b: &str| {
            h.get(a)
                .or_else(|| h.get(b))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            limit: get("x-ratelimit-limit", "x-rate-limit-limit"),
            remaining: get("x-ratelimit-remaining", "x-rate-limit-remaining"),
            reset: get("x-ratelimit-reset", "x-rate-limit-reset"),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == RateLimit::default()
    }

    /// The known headers as gauges (`authwatch.ratelimit.{limit,remaining,reset}`), each point
    /// with `attributes` and the time `now` (Unix nanoseconds); none for an absent header.
    pub fn gauges(&self, attributes: &[KeyValue], now: u64) -> Vec<Metric> {
        [
            (
                RATELIMIT_LIMIT,
                "{request}",
                "Requests allowed in the rate-limit window (x-ratelimit-limit).",
                self.limit,
            ),
            (
                RATELIMIT_REMAINING,
                "{request}",
                "Requests left in the rate-limit window (x-ratelimit-remaining).",
                self.remaining,
            ),
            (
                RATELIMIT_RESET,
                "s",
                "Unix time at which the rate-limit window resets (x-ratelimit-reset).",
                self.reset,
            ),
        ]
        .into_iter()
        .filter_map(|(name, unit, description, value)| {
            let v = i64::try_from(value?).unwrap_or(i64::MAX);
            Some(Metric {
                name: name.into(),
                unit: unit.into(),
                description: description.into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        attributes: attributes.to_vec(),
                        time_unix_nano: now,
                        value: Some(number_data_point::Value::AsInt(v)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            })
        })
        .collect()
    }

    /// `remaining / limit`, when both are known and `limit > 0`.
    #[cfg(test)]
    pub fn headroom(&self) -> Option<f64> {
        match (self.limit, self.remaining) {
            (Some(l), Some(r)) if l > 0 => Some((r.min(l)) as f64 / l as f64),
            _ => None,
        }
    }
}

/// Spaces a poller's requests to keep it within `share` of a rate budget.
#[derive(Debug)]
pub struct Pacer {
    share: f64,
    gap: Duration,
    next: Option<Instant>,
}

impl Pacer {
    /// `share` in `(0, 1]` of a budget of `requests_per_second` (the provider's sustained rate).
    pub fn new(share: f64, requests_per_second: f64) -> Pacer {
        let share = if share.is_finite() {
            share.clamp(0.001, 1.0)
        } else {
            1.0
        };
        let rate = share * requests_per_second;
        let gap = if rate.is_finite() && rate > 0.0 {
            Duration::from_secs_f64((1.0 / rate).min(3600.0))
        } else {
            Duration::ZERO
        };
        Pacer {
            share,
            gap,
            next: None,
        }
    }

    /// The least time between two requests.
    #[cfg(test)]
    pub fn gap(&self) -> Duration {
        self.gap
    }

    /// How long to wait before the next request.
    pub fn delay(&self, now: Instant) -> Duration {
        self.next
            .map(|n| n.saturating_duration_since(now))
            .unwrap_or(Duration::ZERO)
    }

    fn not_before(&mut self, at: Instant) {
        if self.next.is_none_or(|n| n < at) {
            self.next = Some(at);
        }
    }

    /// A request is being sent now.
    pub fn sent(&mut self, now: Instant) {
        self.not_before(now + self.gap);
    }

    /// What a response said about the budget, `unix_now` being the wall clock when it came.
    pub fn observe(&mut self, rl: &RateLimit, now: Instant, unix_now: u64) {
        let (Some(limit), Some(remaining)) = (rl.limit, rl.remaining) else {
            return;
        };
        let reserve = (1.0 - self.share) * limit as f64;
        if (remaining as f64) > reserve && remaining > 0 {
            return;
        }
        let wait = rl
            .reset
            .map(|r| Duration::from_secs(r.saturating_sub(unix_now)))
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_secs(1), MAX_RESET_WAIT);
        self.not_before(now + wait);
    }

    /// Waits at least `d` (a `Retry-After`, a backoff) before the next request.
    pub fn hold(&mut self, now: Instant, d: Duration) {
        self.not_before(now + d);
    }

    /// Sleeps until the next request may go, then records it as sent.
    pub async fn ready(&mut self) {
        let d = self.delay(Instant::now());
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        self.sent(Instant::now());
    }
}

/// The wall clock in Unix seconds (0 before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "tests/ratelimit.rs"]
mod tests;
