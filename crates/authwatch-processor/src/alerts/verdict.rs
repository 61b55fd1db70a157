//! Verdicts: whose fault an alert is (the provider, the tenant, the application, or a failure
//! that did not repeat), drawn from probes, real traffic and the status page together.

use std::time::Duration;

use authwatch_core::semconv::Source;

use super::store::{Increase, Store};
use super::VerdictConfig;

/// Whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    ProviderOutage,
    TenantIssue,
    ApplicationIssue,
    Transient,
    /// Slow but not failing (latency rules only).
    Degraded,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ProviderOutage => "provider_outage",
            Verdict::TenantIssue => "tenant_issue",
            Verdict::ApplicationIssue => "application_issue",
            Verdict::Transient => "transient",
            Verdict::Degraded => authwatch_core::semconv::VERDICT_DEGRADED,
        }
    }
}

/// The signals a verdict is drawn from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Signals {
    pub probe_runs: u64,
    pub probe_failures: u64,
    pub probe_consecutive_failures: u64,
    /// `None`: no probe data at all.
    pub last_probe_ok: Option<bool>,
    pub traffic: Increase,
    /// Highest status-page indicator, if a page is watched.
    pub status_indicator: Option<i64>,
}

impl Signals {
    /// The signals behind verdicts, over the verdict window.
    pub fn gather(store: &Store, cfg: &VerdictConfig, dep: Option<&str>, now: Duration) -> Signals {
        let w = cfg.window;
        let start = now.saturating_sub(w);
        let mut s = Signals::default();
        for p in store.probes.values() {
            for (at, ok) in p.runs.iter().filter(|(at, _)| *at >= start || now < w) {
                let _ = at;
                s.probe_runs += 1;
                if !ok {
                    s.probe_failures += 1;
                }
            }
            s.probe_consecutive_failures = s.probe_consecutive_failures.max(p.consecutive_failures);
            if let Some((_, ok)) = p.runs.back() {
                s.last_probe_ok = Some(s.last_probe_ok.unwrap_or(true) && *ok);
            }
        }
        if store.probes.is_empty() {
            // No probe metrics: fall back to probe spans counted by error_rate.
            let p = store.increase(dep, Some(Source::Probe), now, w);
            if p.requests > 0.0 {
                s.probe_runs = p.requests as u64;
                s.probe_failures = p.errors as u64;
                s.last_probe_ok = Some(p.errors == 0.0);
            }
        }
        s.traffic = store.increase(dep, Some(Source::Traffic), now, w);
        s.status_indicator = store.status.values().filter(|x| x.up).map(|x| x.indicator).max();
        s
    }
}

/// The verdict of a latency alert: the failure verdict when calls fail too, else `degraded`
/// with how slow (`slow` names the quantile or share and the bound).
pub fn with_latency(v: (Verdict, String), slow: &str, s: &Signals) -> (Verdict, String) {
    if v.0 != Verdict::Transient {
        return (v.0, format!("{} Calls are slow too: {slow}.", v.1));
    }
    (
        Verdict::Degraded,
        format!(
            "Slow but not failing: {slow}; {} of {} calls and {} of {} probe runs failed.",
            s.traffic.errors, s.traffic.requests, s.probe_failures, s.probe_runs
        ),
    )
}

/// The verdict and why, from the signals together. `probe_alert` / `traffic_alert` say that the
/// alert itself is about probes / real traffic and its condition holds.
pub fn verdict(
    s: &Signals,
    cfg: &VerdictConfig,
    probe_alert: bool,
    traffic_alert: bool,
) -> (Verdict, String) {
    let t = &s.traffic;
    let ratio = t.ratio().unwrap_or(0.0);
    let traffic_failing = traffic_alert
        || (t.requests >= cfg.min_requests as f64
            && t.errors >= 2.0
            && ratio >= cfg.traffic_error_ratio);
    let probes_failing = probe_alert
        || s.probe_consecutive_failures >= cfg.probe_failures.get() as u64
        || s.probe_failures >= cfg.probe_failures.get() as u64;
    if let Some(i) = s.status_indicator.filter(|i| *i >= 1) {
        return (
            Verdict::ProviderOutage,
            format!("The provider's status page reports an incident (indicator {i})."),
        );
    }
    if probes_failing && traffic_failing {
        return (
            Verdict::ProviderOutage,
            format!(
                "Probes and real traffic fail together: {} of {} probe runs and {} of {} calls failed.",
                s.probe_failures, s.probe_runs, t.errors, t.requests
            ),
        );
    }
    if probes_failing {
        return (
            Verdict::TenantIssue,
            format!(
                "Probes fail ({} of {} runs, {} in a row) while the status page is green and real traffic is not failing.",
                s.probe_failures, s.probe_runs, s.probe_consecutive_failures
            ),
        );
    }
    if traffic_failing {
        return match s.last_probe_ok {
            Some(_) => (
                Verdict::ApplicationIssue,
                format!(
                    "Real traffic fails ({} of {} calls) while probes pass ({} of {} runs failed).",
                    t.errors, t.requests, s.probe_failures, s.probe_runs
                ),
            ),
            None if t.provider_errors * 2.0 >= t.errors && t.errors > 0.0 => (
                Verdict::ProviderOutage,
                format!(
                    "Real traffic fails ({} of {} calls), mostly with 5xx, timeouts or network errors ({}), and no probe runs to compare with.",
                    t.errors, t.requests, t.provider_errors
                ),
            ),
            None => (
                Verdict::ApplicationIssue,
                format!(
                    "Real traffic fails ({} of {} calls), mostly with 4xx or rate limiting, and no probe runs to compare with.",
                    t.errors, t.requests
                ),
            ),
        };
    }
    (
        Verdict::Transient,
        format!(
            "A failure that did not repeat: {} of {} probe runs and {} of {} calls failed.",
            s.probe_failures, s.probe_runs, t.errors, t.requests
        ),
    )
}
