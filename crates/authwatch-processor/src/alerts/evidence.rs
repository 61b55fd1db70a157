//! The evidence verdicts weigh, beyond "which signal failed": what kind of failure each probe
//! run and each real call ended as, on which endpoints, and when. The store feeds it as metrics
//! arrive; `verdict` reads it.
//!
//! Memory: per dependency, one bucket per second that saw real traffic within `verdict.window`
//! (at most `window` seconds of buckets, 64 bytes each) and at most [`MAX_PROBE_ENDPOINTS`]
//! endpoint names the probes were seen on.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use authwatch_core::semconv::{self, ErrorClass};

/// Endpoints remembered per dependency as "used by the probes".
pub const MAX_PROBE_ENDPOINTS: usize = 64;

/// What a failure points at, read from its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// 5xx, timeouts, DNS / connect / TLS failures: the provider's side of the wire.
    Provider,
    /// The provider answered, but the tenant's setup said no or said it wrong: a missing claim,
    /// a token with the wrong issuer or audience, an OAuth error (`invalid_client`,
    /// `unauthorized_client`, an Action's `access_denied`, a locked user), a failed assertion.
    Tenant,
    /// HTTP 429: the tenant's rate limit is spent.
    RateLimited,
}

impl Fault {
    /// What a probe outcome (`synthetic.outcome`) points at; `None` for `success` and names
    /// this version does not know.
    pub fn of_outcome(outcome: &str) -> Option<Fault> {
        Some(match outcome {
            "dns" | "connect" | "tls" | "timeout" | "http_status" => Fault::Provider,
            "missing_claim" | "invalid_token" | "oauth_error" | "assertion" => Fault::Tenant,
            // The hosted login page (`authorization_code`): its markup, the probe user, MFA,
            // consent, bot detection and redirects are the tenant's settings.
            "login_page_changed" | "login_rejected" | "mfa_required" | "consent_required"
            | "bot_challenge" | "redirect_loop" => Fault::Tenant,
            "rate_limited" => Fault::RateLimited,
            _ => return None,
        })
    }
}

/// The `synthetic.outcome` value as a static string (`other` for unknown values).
pub fn outcome_name(outcome: &str) -> &'static str {
    semconv::SYNTHETIC_OUTCOMES
        .iter()
        .find(|o| **o == outcome)
        .copied()
        .unwrap_or("other")
}

/// What a real call's error points at, by `error.class` and endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TrafficFault {
    /// 5xx, timeouts or network errors on an endpoint the probes use (or any endpoint when the
    /// probes' endpoints are not known).
    Provider = 0,
    /// 5xx, timeouts or network errors only on endpoints the probes do not use.
    OffPath = 1,
    /// 429.
    RateLimited = 2,
    /// Any other 4xx counted as an error.
    Client = 3,
}

impl TrafficFault {
    pub const ALL: [TrafficFault; 4] = [
        TrafficFault::Provider,
        TrafficFault::OffPath,
        TrafficFault::RateLimited,
        TrafficFault::Client,
    ];

    /// A few words for a verdict reason.
    pub fn describe(self) -> &'static str {
        match self {
            TrafficFault::Provider => "5xx, timeouts or network errors",
            TrafficFault::OffPath => "5xx, timeouts or network errors on endpoints the probes do not use",
            TrafficFault::RateLimited => "rate limiting (429)",
            TrafficFault::Client => "4xx errors",
        }
    }
}

/// Real calls of one dependency during one second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bucket {
    pub second: u64,
    pub calls: f64,
    pub errors: [f64; 4],
}

/// Real traffic of one dependency, second by second, and where its probes go.
#[derive(Debug, Default)]
pub struct DependencyEvidence {
    pub buckets: VecDeque<Bucket>,
    pub probe_endpoints: BTreeSet<String>,
}

/// Evidence of every dependency.
#[derive(Debug, Default)]
pub struct Evidence {
    /// How far back buckets reach (`verdict.window`).
    pub window: Duration,
    pub deps: BTreeMap<String, DependencyEvidence>,
}

impl Evidence {
    pub fn new(window: Duration) -> Self {
        Evidence {
            window,
            deps: BTreeMap::new(),
        }
    }

    /// The evidence of `dep`, created on first sight (no allocation after that).
    fn dep(&mut self, dep: &str) -> Option<&mut DependencyEvidence> {
        if !self.deps.contains_key(dep) {
            self.deps.insert(dep.to_owned(), DependencyEvidence::default());
        }
        self.deps.get_mut(dep)
    }

    /// An endpoint a probe call went to.
    pub fn probe_endpoint(&mut self, dep: &str, endpoint: &str) {
        let Some(d) = self.dep(dep) else { return };
        if d.probe_endpoints.len() < MAX_PROBE_ENDPOINTS && !d.probe_endpoints.contains(endpoint) {
            d.probe_endpoints.insert(endpoint.to_owned());
        }
    }

    /// `n` real calls (`errors: false`) or real errors of `class` (`errors: true`) at `now`.
    pub fn traffic(&mut self, dep: &str, endpoint: Option<&str>, class: Option<&str>, errors: bool, n: f64, now: Duration) {
        if n <= 0.0 {
            return;
        }
        let window = self.window;
        let Some(d) = self.dep(dep) else { return };
        let fault = errors.then(|| {
            let class = ErrorClass::ALL.iter().find(|c| Some(c.as_str()) == class);
            match class {
                Some(ErrorClass::RateLimited) => TrafficFault::RateLimited,
                Some(c) if c.is_provider_side() => {
                    let probed = d.probe_endpoints.is_empty()
                        || endpoint.is_none_or(|e| d.probe_endpoints.contains(e));
                    if probed {
                        TrafficFault::Provider
                    } else {
                        TrafficFault::OffPath
                    }
                }
                _ => TrafficFault::Client,
            }
        });
        let second = now.as_secs();
        if d.buckets.back().is_none_or(|b| b.second != second) {
            d.buckets.push_back(Bucket {
                second,
                ..Default::default()
            });
        }
        if let Some(b) = d.buckets.back_mut() {
            match fault {
                Some(f) => b.errors[f as usize] += n,
                None => b.calls += n,
            }
        }
        let oldest = second.saturating_sub(window.as_secs());
        while d.buckets.front().is_some_and(|b| b.second < oldest) {
            d.buckets.pop_front();
        }
    }

    /// Buckets of one dependency, or of all merged (by second), within the window ending now.
    pub fn buckets(&self, dep: Option<&str>, now: Duration) -> Vec<Bucket> {
        let oldest = now.as_secs().saturating_sub(self.window.as_secs());
        let mut merged: BTreeMap<u64, Bucket> = BTreeMap::new();
        for (d, e) in &self.deps {
            if dep.is_some_and(|x| x != d) {
                continue;
            }
            for b in e.buckets.iter().filter(|b| b.second >= oldest) {
                let m = merged.entry(b.second).or_insert(Bucket {
                    second: b.second,
                    ..Default::default()
                });
                m.calls += b.calls;
                for (i, e) in b.errors.iter().enumerate() {
                    m.errors[i] += e;
                }
            }
        }
        merged.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_point_at_the_provider_the_tenant_or_the_rate_limit() {
        for o in ["dns", "connect", "tls", "timeout", "http_status"] {
            assert_eq!(Fault::of_outcome(o), Some(Fault::Provider), "{o}");
        }
        for o in ["missing_claim", "invalid_token", "oauth_error", "assertion"] {
            assert_eq!(Fault::of_outcome(o), Some(Fault::Tenant), "{o}");
        }
        assert_eq!(Fault::of_outcome("rate_limited"), Some(Fault::RateLimited));
        assert_eq!(Fault::of_outcome("success"), None);
        assert_eq!(Fault::of_outcome("made_up"), None);
        assert_eq!(outcome_name("missing_claim"), "missing_claim");
        assert_eq!(outcome_name("<script>"), "other");
    }

    #[test]
    fn traffic_errors_are_sorted_by_kind_and_endpoint() {
        let s = Duration::from_secs;
        let mut e = Evidence::new(s(60));
        // Before any probe endpoint is known, every provider-side error counts as on-path.
        e.traffic("auth0", Some("/api/v2/users"), Some("network"), true, 1.0, s(1));
        e.probe_endpoint("auth0", "/oauth/token");
        e.traffic("auth0", Some("/oauth/token"), Some("ok"), false, 10.0, s(2));
        e.traffic("auth0", Some("/oauth/token"), Some("timeout"), true, 2.0, s(2));
        e.traffic("auth0", Some("/api/v2/users"), Some("server_error"), true, 3.0, s(2));
        e.traffic("auth0", Some("/api/v2/users"), Some("rate_limited"), true, 4.0, s(2));
        e.traffic("auth0", Some("/oauth/token"), Some("client_error"), true, 5.0, s(2));
        let b = e.buckets(Some("auth0"), s(2));
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].errors, [1.0, 0.0, 0.0, 0.0]);
        assert_eq!(b[1].calls, 10.0);
        assert_eq!(b[1].errors, [2.0, 3.0, 4.0, 5.0]);
        // Buckets older than the window are dropped as new ones come.
        e.traffic("auth0", Some("/oauth/token"), Some("ok"), false, 1.0, s(70));
        assert_eq!(e.deps["auth0"].buckets.len(), 1);
        assert!(e.buckets(Some("other"), s(70)).is_empty());
    }

    #[test]
    fn probe_endpoints_are_bounded() {
        let mut e = Evidence::new(Duration::from_secs(60));
        for i in 0..1000 {
            e.probe_endpoint("auth0", &format!("/e{i}"));
        }
        assert_eq!(e.deps["auth0"].probe_endpoints.len(), MAX_PROBE_ENDPOINTS);
    }
}
