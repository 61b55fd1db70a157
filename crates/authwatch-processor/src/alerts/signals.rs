//! The signals a verdict is drawn from: probe runs, real calls and status pages over the
//! verdict window, each weighed by how recent it is (`0.5^(age / verdict.half_life)`).

use std::time::Duration;

use authwatch_core::semconv::Source;

use super::evidence::{Fault, TrafficFault};
use super::store::{Increase, LoginIncrease, Store};
use super::VerdictConfig;

/// How the latest probe run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Latest {
    Passed,
    /// Failed, with what its outcome points at (`None`: not said).
    Failed(Option<Fault>),
}

/// Probe runs in the verdict window, weighed by recency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeEvidence {
    /// Weight of the passing runs.
    pub passed: f64,
    /// Weight of the failed runs: provider, tenant, rate-limited, outcome not known.
    pub failed: [f64; 4],
    /// Failed runs by outcome (`unknown` when not said): `(outcome, runs, weight)`, heaviest first.
    pub outcomes: Vec<(&'static str, u64, f64)>,
    pub latest: Option<Latest>,
    /// Age of the first failed run after the last passing one (the probes fail since then).
    pub failing_for: Option<Duration>,
}

/// Real calls in the verdict window, weighed by recency.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TrafficEvidence {
    /// Weight of all calls.
    pub calls: f64,
    /// Weight of the errors, by [`TrafficFault`].
    pub errors: [f64; 4],
    /// Errors in the window, by [`TrafficFault`].
    pub counts: [f64; 4],
    /// Age of the last error, by [`TrafficFault`].
    pub last_error: [Option<Duration>; 4],
    /// Calls and their errors (all kinds, provider-side on the probes' endpoints) since the
    /// probes began failing.
    pub since_probes_fail: (f64, f64, f64),
    /// Calls in the seconds after the last error.
    pub since_last_error: f64,
    /// The current run of errors (it starts with the first error after [`clean_run`] calls
    /// without one): its errors by [`TrafficFault`], weighed, and their number.
    pub episode: [f64; 4],
    pub episode_errors: f64,
}

/// Calls in a row without an error after which real traffic's failures are over: enough that
/// an error ratio at the limit would almost surely have shown one (3 / ratio), at least
/// `min_requests`.
pub fn clean_run(cfg: &VerdictConfig) -> f64 {
    (cfg.min_requests as f64).max(3.0 / cfg.traffic_error_ratio.max(0.01))
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
    pub probes: ProbeEvidence,
    pub calls: TrafficEvidence,
    /// Logins in the tenant's own log over the window, if a tenant-log receiver feeds them.
    pub logins: Option<LoginEvidence>,
}

/// Logins from the tenant's log over the verdict window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoginEvidence {
    pub window: LoginIncrease,
    /// Distinct users with a failed login (last estimate): `(provider_side, all)`.
    pub users_affected: Option<(f64, f64)>,
}

impl LoginEvidence {
    /// Users affected by provider-side failures, `?` when no estimate came.
    pub fn users_provider_side(&self) -> String {
        self.users_affected.map_or("?".into(), |u| format!("{}", u.0))
    }
    pub fn users_all(&self) -> String {
        self.users_affected.map_or("?".into(), |u| format!("{}", u.1))
    }
}

fn weight(age: Duration, half_life: Duration) -> f64 {
    (-age.as_secs_f64() / half_life.as_secs_f64().max(1e-3)).exp2()
}

impl Signals {
    /// The signals behind verdicts, over the verdict window.
    pub fn gather(store: &Store, cfg: &VerdictConfig, dep: Option<&str>, now: Duration) -> Signals {
        let w = cfg.window;
        let start = now.saturating_sub(w);
        let h = cfg.half_life;
        let mut s = Signals::default();
        let mut failing_since: Option<Duration> = None;
        for p in store.probes.values() {
            let mut streak_start = None;
            for r in p.runs.iter().filter(|r| r.at >= start || now < w) {
                s.probe_runs += 1;
                let wt = weight(now.saturating_sub(r.at), h);
                if r.ok {
                    s.probes.passed += wt;
                    streak_start = None;
                    continue;
                }
                s.probe_failures += 1;
                streak_start.get_or_insert(r.at);
                let fault = r.outcome.and_then(Fault::of_outcome);
                let i = fault.map_or(3, |f| f as usize);
                s.probes.failed[i] += wt;
                let name = r.outcome.unwrap_or("unknown");
                match s.probes.outcomes.iter_mut().find(|o| o.0 == name) {
                    Some(o) => {
                        o.1 += 1;
                        o.2 += wt;
                    }
                    None => s.probes.outcomes.push((name, 1, wt)),
                }
            }
            s.probe_consecutive_failures = s.probe_consecutive_failures.max(p.consecutive_failures);
            if let Some(r) = p.runs.back() {
                s.last_probe_ok = Some(s.last_probe_ok.unwrap_or(true) && r.ok);
                let latest = if r.ok {
                    Latest::Passed
                } else {
                    Latest::Failed(r.outcome.and_then(Fault::of_outcome))
                };
                // Of several checks, a failing one speaks louder than a passing one.
                if s.probes.latest.is_none_or(|l| l == Latest::Passed) {
                    s.probes.latest = Some(latest);
                }
            }
            if let Some(t) = streak_start {
                failing_since = Some(failing_since.map_or(t, |f: Duration| f.min(t)));
            }
        }
        s.probes
            .outcomes
            .sort_by(|a, b| b.2.total_cmp(&a.2).then(b.1.cmp(&a.1)));
        s.probes.failing_for = failing_since.map(|t| now.saturating_sub(t));
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
        let now_s = now.as_secs_f64();
        for b in store.evidence.buckets(dep, now) {
            let age = Duration::from_secs_f64((now_s - b.second as f64).max(0.0));
            let wt = weight(age, h);
            s.calls.calls += b.calls * wt;
            let errors: f64 = b.errors.iter().sum();
            if errors > 0.0 && s.calls.since_last_error >= clean_run(cfg) {
                s.calls.episode = [0.0; 4];
                s.calls.episode_errors = 0.0;
            }
            s.calls.since_last_error = if errors > 0.0 { 0.0 } else { s.calls.since_last_error + b.calls };
            s.calls.episode_errors += errors;
            for (i, e) in b.errors.iter().enumerate().filter(|(_, e)| **e > 0.0) {
                s.calls.episode[i] += e * wt;
                s.calls.errors[i] += e * wt;
                s.calls.counts[i] += e;
                s.calls.last_error[i] = Some(age);
            }
            if failing_since.is_some_and(|t| b.second >= t.as_secs()) {
                let c = &mut s.calls.since_probes_fail;
                c.0 += b.calls;
                c.1 += b.errors.iter().sum::<f64>();
                c.2 += b.errors[TrafficFault::Provider as usize];
            }
        }
        s.status_indicator = store.status.values().filter(|x| x.up).map(|x| x.indicator).max();
        let l = store.login_increase(dep, now, w);
        if l.logins > 0.0 {
            s.logins = Some(LoginEvidence {
                window: l,
                users_affected: store.users_affected(dep),
            });
        }
        s
    }
}

impl ProbeEvidence {
    pub(super) fn failed_weight(&self) -> f64 {
        self.failed.iter().sum()
    }

    /// What the failed runs point at, the recent ones weighing most: `None` without failed
    /// runs (or weights), `Some(None)` when their outcomes are not known.
    pub(super) fn fault(&self) -> Option<Option<Fault>> {
        if self.failed_weight() <= 0.0 {
            return None;
        }
        let known = [Fault::Provider, Fault::Tenant, Fault::RateLimited];
        let best = known
            .into_iter()
            .max_by(|a, b| self.failed[*a as usize].total_cmp(&self.failed[*b as usize]))
            .filter(|f| self.failed[*f as usize] > 0.0 && self.failed[*f as usize] >= self.failed[3]);
        Some(best)
    }

    /// The outcomes of the failed runs that point at `fault`, for a reason.
    pub(super) fn outcomes_of(&self, fault: Option<Fault>) -> String {
        let v: Vec<String> = self
            .outcomes
            .iter()
            .filter(|o| Fault::of_outcome(o.0) == fault)
            .take(3)
            .map(|o| format!("{} ({})", o.0, o.1))
            .collect();
        v.join(", ")
    }
}

impl TrafficEvidence {
    /// Recency-weighted error ratio of the current run of errors; `None` without weighed calls.
    pub(super) fn ratio(&self) -> Option<f64> {
        (self.calls > 0.0).then(|| (self.episode.iter().sum::<f64>() / self.calls).min(1.0))
    }

    /// What the errors point at, the recent ones weighing most (those of the current run of
    /// errors, if any).
    pub(super) fn fault(&self) -> Option<TrafficFault> {
        let e = if self.episode_errors > 0.0 { &self.episode } else { &self.errors };
        TrafficFault::ALL
            .into_iter()
            .filter(|f| e[*f as usize] > 0.0)
            .max_by(|a, b| e[*a as usize].total_cmp(&e[*b as usize]))
    }
}
