//! Verdicts: whose fault an alert is (the provider, the tenant, the application, or a failure
//! that did not repeat; or, for latency alerts, nobody's yet: slow but not failing), drawn from probes, real traffic and the status page together, and from
//! what kind of failure each one saw and when.
//!
//! The kind of failure decides first: a probe that got an answer with a missing claim, a wrong
//! issuer or an OAuth error (`invalid_client`, `unauthorized_client`, an Action's
//! `access_denied`, a locked user) shows a tenant problem, never an outage; 5xx, timeouts and
//! connect failures on the provider's endpoints show the provider; real calls that fail while
//! the probes reach the provider, or only on endpoints the probes do not use, or with 4xx or 429,
//! show the application. Recency decides between what fails now and what failed minutes ago:
//! every run and call weighs `0.5^(age / verdict.half_life)`.
//!
//! A latency alert ([`with_latency`]) keeps the failure verdict when calls fail too, and says
//! they are slow as well; when nothing fails it is `degraded`, with the quantile (or share) and
//! the bound.

use std::time::Duration;

use super::evidence::{Fault, TrafficFault};
use super::reason::{human, window, Reason};
use super::signals::{clean_run, Latest};
pub use super::signals::Signals;
use super::VerdictConfig;

/// Whose fault it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    ProviderOutage,
    TenantIssue,
    ApplicationIssue,
    Transient,
    /// Slow but not failing (latency rules and latency objectives only).
    Degraded,
    /// Logins fail by the users' own doing (wrong passwords, blocked accounts, MFA), as the
    /// tenant's log shows: nobody's outage.
    NoOutage,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ProviderOutage => "provider_outage",
            Verdict::TenantIssue => "tenant_issue",
            Verdict::ApplicationIssue => "application_issue",
            Verdict::Transient => "transient",
            Verdict::Degraded => authwatch_core::semconv::VERDICT_DEGRADED,
            Verdict::NoOutage => "no_outage",
        }
    }
}

/// The verdict and why, from the signals together. `probe_alert` / `traffic_alert` say that the
/// alert itself is about probes / real traffic and its condition holds.
pub fn verdict(
    s: &Signals,
    cfg: &VerdictConfig,
    probe_alert: bool,
    traffic_alert: bool,
) -> (Verdict, String) {
    let (v, r) = Judge::new(s, cfg).verdict(probe_alert, traffic_alert);
    (v, r.text())
}

/// The verdict of a login alert (`threshold.logins`): the tenant's log says which side the
/// provider-side failures are on (the provider's own errors, or the tenant's Actions, rules and
/// custom database scripts), with the probes and real traffic for or against; without
/// provider-side failures in the window, the verdict of the other signals.
pub fn for_logins(s: &Signals, cfg: &VerdictConfig) -> (Verdict, String) {
    let j = Judge::new(s, cfg);
    let (v, r) = match s.status_indicator.filter(|i| *i >= 1) {
        None => j.login_verdict().unwrap_or_else(|| j.verdict(false, false)),
        Some(_) => j.verdict(false, false),
    };
    (v, r.text())
}

/// The verdict of a latency alert (`slow` names the quantile or share and the bound): the
/// failure verdict when calls fail too, its headline adding that they are slow; else
/// `degraded`, with what says nothing fails for it and any failure that did not repeat against.
pub fn with_latency(
    s: &Signals,
    cfg: &VerdictConfig,
    probe_alert: bool,
    traffic_alert: bool,
    slow: &str,
) -> (Verdict, String) {
    let j = Judge::new(s, cfg);
    let (v, mut r) = j.verdict(probe_alert, traffic_alert);
    if v != Verdict::Transient {
        r.add_to_headline(&format!("Calls are slow too: {slow}."));
        return (v, r.text());
    }
    let mut r = Reason::new(format!("Slow but not failing: {slow}."));
    j.traffic_evidence(&mut r, false);
    // Passing probes count for "not failing"; failed runs, even ones that did not repeat, against.
    let passing = s.probe_failures == 0 || (!j.probes_failing && j.reaches == Some(true));
    let mut p = Reason::new("");
    j.probe_evidence(&mut p, None);
    if passing {
        r.pros.append(&mut p.pros);
    } else {
        r.cons.append(&mut p.pros);
    }
    r.cons.append(&mut p.cons);
    (Verdict::Degraded, r.text())
}

/// What the verdict reads, worked out once.
struct Judge<'a> {
    s: &'a Signals,
    cfg: &'a VerdictConfig,
    probes_failing: bool,
    traffic_failing: bool,
    probe_fault: Option<Option<Fault>>,
    traffic_fault: Option<TrafficFault>,
    /// The latest probe run got an answer from the provider (`None`: not known).
    reaches: Option<bool>,
}

impl<'a> Judge<'a> {
    fn new(s: &'a Signals, cfg: &'a VerdictConfig) -> Self {
        let n = cfg.probe_failures.get() as u64;
        let p = &s.probes;
        let probes_failing = s.probe_consecutive_failures >= n
            || (s.probe_failures >= n && p.passed <= p.failed_weight());
        let t = &s.traffic;
        let raw = t.ratio().unwrap_or(0.0);
        // Failures are over after a clean run of calls; one error after it is a single failure.
        let c = &s.calls;
        let measured = c.calls > 0.0;
        let over = measured && (c.since_last_error >= clean_run(cfg) || c.episode_errors < 2.0);
        let traffic_failing = t.requests >= cfg.min_requests as f64
            && t.errors >= 2.0
            && !over
            && s.calls.ratio().unwrap_or(raw) >= cfg.traffic_error_ratio;
        let traffic_fault = s.calls.fault().or_else(|| {
            (t.errors > 0.0).then_some(if t.provider_errors * 2.0 >= t.errors {
                TrafficFault::Provider
            } else {
                TrafficFault::Client
            })
        });
        let reaches = match p.latest {
            Some(Latest::Passed) => Some(true),
            Some(Latest::Failed(Some(Fault::Provider))) => Some(false),
            Some(Latest::Failed(Some(_))) => Some(true),
            Some(Latest::Failed(None)) => None,
            None => s.last_probe_ok.filter(|ok| *ok),
        };
        Judge {
            s,
            cfg,
            probes_failing,
            traffic_failing,
            probe_fault: p.fault(),
            traffic_fault,
            reaches,
        }
    }

    fn verdict(&self, probe_alert: bool, traffic_alert: bool) -> (Verdict, Reason) {
        if let Some(i) = self.s.status_indicator.filter(|i| *i >= 1) {
            let mut r = Reason::new(format!(
                "The provider's status page reports an incident (indicator {i})."
            ));
            r.pros.push(format!("status page indicator {i}"));
            self.probe_evidence(&mut r, Some(Fault::Provider));
            self.traffic_evidence(&mut r, true);
            return (Verdict::ProviderOutage, r);
        }
        let probes = probe_alert || (!traffic_alert && self.probes_failing);
        let traffic = traffic_alert || self.traffic_failing;
        if !probes && traffic {
            if let Some(r) = self.users_own_failures() {
                return (Verdict::NoOutage, r);
            }
        }
        if probes {
            self.probe_verdict(probe_alert)
        } else if traffic {
            self.traffic_verdict()
        } else {
            let mut r = Reason::new("A failure that did not repeat.");
            let s = self.s;
            r.pros.push(format!(
                "{} of {} probe runs and {} of {} calls failed in {}",
                s.probe_failures,
                s.probe_runs,
                s.traffic.errors,
                s.traffic.requests,
                window(self.cfg.window)
            ));
            if s.probe_consecutive_failures > 0 {
                r.cons.push(format!("the last {} probe runs failed", s.probe_consecutive_failures));
            }
            (Verdict::Transient, r)
        }
    }

    /// The alert is about probes (or probes fail and it is about neither).
    fn probe_verdict(&self, probe_alert: bool) -> (Verdict, Reason) {
        let s = self.s;
        let c = &s.calls;
        let fault = self.probe_fault.flatten();
        let outcomes = self.s.probes.outcomes_of(fault);
        match fault {
            Some(Fault::Tenant) => {
                let mut r = Reason::new(format!(
                    "Probes fail with {outcomes}: the provider answers, but the tenant's setup (rules or Actions, application, user or API settings) gives the wrong answer."
                ));
                self.probe_evidence(&mut r, fault);
                self.traffic_evidence(&mut r, false);
                (Verdict::TenantIssue, r)
            }
            Some(Fault::RateLimited) => {
                let rl = TrafficFault::RateLimited as usize;
                let app_limited = c.errors[rl] >= 1.0
                    || c.last_error[rl].is_some_and(|a| a <= self.cfg.half_life);
                let (v, mut r) = if app_limited {
                    (Verdict::ApplicationIssue, Reason::new(format!(
                        "Probes and the application's own calls are rate-limited: the application spends the tenant's rate limit ({} calls got 429 in {}).",
                        c.counts[rl], window(self.cfg.window)
                    )))
                } else {
                    (Verdict::TenantIssue, Reason::new(
                        "Probes are rate-limited while the application's calls are not: the tenant's rate limit is spent elsewhere or set too low.",
                    ))
                };
                self.probe_evidence(&mut r, fault);
                self.traffic_evidence(&mut r, app_limited);
                (v, r)
            }
            Some(Fault::Provider) => {
                let (calls, errors, _) = c.since_probes_fail;
                let together = self.traffic_failing && self.traffic_fault == Some(TrafficFault::Provider);
                let traffic_fine = !together
                    && calls >= self.cfg.min_requests.max(1) as f64
                    && errors / calls < self.cfg.traffic_error_ratio;
                let (v, mut r) = if together {
                    (Verdict::ProviderOutage, Reason::new(format!(
                        "Probes ({outcomes}) and real traffic fail together on the provider's side."
                    )))
                } else if traffic_fine {
                    (Verdict::TenantIssue, Reason::new(format!(
                        "Probes fail with {outcomes}, but real calls to the provider kept succeeding meanwhile ({errors} of {calls} failed): not an outage of the provider; check the probe's tenant setup or network path."
                    )))
                } else {
                    (Verdict::ProviderOutage, Reason::new(format!(
                        "Probes fail with {outcomes} on the provider's endpoint."
                    )))
                };
                self.probe_evidence(&mut r, fault);
                self.traffic_evidence(&mut r, together);
                (v, r)
            }
            None => {
                // Outcomes not known: which signals fail, as before kinds were read.
                let mut r;
                let v = if self.traffic_failing {
                    r = Reason::new("Probes and real traffic fail together.");
                    Verdict::ProviderOutage
                } else {
                    r = Reason::new("Probes fail while the status page is green and real traffic is not failing.");
                    Verdict::TenantIssue
                };
                if !probe_alert && !self.probes_failing {
                    r.cons.push("the probes' failures did not repeat".into());
                }
                self.probe_evidence(&mut r, None);
                self.traffic_evidence(&mut r, v == Verdict::ProviderOutage);
                (v, r)
            }
        }
    }

    /// The alert is about real traffic (or traffic fails and it is about neither).
    fn traffic_verdict(&self) -> (Verdict, Reason) {
        let s = self.s;
        let no_probes = s.probe_runs == 0 && s.last_probe_ok.is_none();
        let probe_provider = self.reaches == Some(false)
            || (self.probes_failing && self.probe_fault == Some(Some(Fault::Provider)));
        let probe_tenant = self.probes_failing && self.probe_fault == Some(Some(Fault::Tenant));
        let kind = self.traffic_fault.unwrap_or(TrafficFault::Client);
        let t = &s.traffic;
        let (v, headline) = match kind {
            TrafficFault::Provider if no_probes => (
                Verdict::ProviderOutage,
                "Real traffic fails, mostly with 5xx, timeouts or network errors, and no probe runs to compare with.".to_owned(),
            ),
            TrafficFault::Provider | TrafficFault::OffPath if probe_provider => (
                Verdict::ProviderOutage,
                "Real traffic and probes fail together on the provider's side.".to_owned(),
            ),
            TrafficFault::Provider if self.reaches == Some(true) => (
                Verdict::ApplicationIssue,
                "Real traffic fails with 5xx, timeouts or network errors while the probes reach the provider: a wrong address, or the application's own network or client.".to_owned(),
            ),
            TrafficFault::Provider if self.probes_failing => (
                Verdict::ProviderOutage,
                "Probes and real traffic fail together.".to_owned(),
            ),
            TrafficFault::Provider => (
                Verdict::ApplicationIssue,
                "Real traffic fails while probes pass.".to_owned(),
            ),
            TrafficFault::OffPath => (
                Verdict::ApplicationIssue,
                "Real traffic fails only on endpoints the probes do not use, while the probes' endpoints answer.".to_owned(),
            ),
            TrafficFault::RateLimited => (
                Verdict::ApplicationIssue,
                "The application's own calls are rate-limited (429): it spends the tenant's rate limit.".to_owned(),
            ),
            TrafficFault::Client if probe_tenant => (
                Verdict::TenantIssue,
                format!(
                    "Real traffic gets 4xx and probes fail with {}: the tenant's setup refuses both.",
                    s.probes.outcomes_of(Some(Fault::Tenant))
                ),
            ),
            TrafficFault::Client if no_probes => (
                Verdict::ApplicationIssue,
                "Real traffic fails, mostly with 4xx or rate limiting, and no probe runs to compare with.".to_owned(),
            ),
            TrafficFault::Client => (
                Verdict::ApplicationIssue,
                "Real traffic fails, mostly with 4xx, while probes pass: the application's requests.".to_owned(),
            ),
        };
        let mut r = Reason::new(format!(
            "{headline} ({} of {} calls failed in {}.)",
            t.errors,
            t.requests,
            window(self.cfg.window)
        ));
        self.traffic_evidence(&mut r, true);
        self.probe_evidence(&mut r, if v == Verdict::ProviderOutage { Some(Fault::Provider) } else { None });
        (v, r)
    }

    /// Provider-side failures in the tenant's log: whose side they are on.
    fn login_verdict(&self) -> Option<(Verdict, Reason)> {
        let l = self.s.logins.as_ref()?;
        let w = &l.window;
        if w.provider_side <= 0.0 {
            return None;
        }
        let users = l.users_provider_side();
        let win = window(self.cfg.window);
        let (v, headline, fault) = if w.tenant > w.provider {
            (
                Verdict::TenantIssue,
                format!(
                    "The tenant's log shows logins failing in the tenant's own setup (Actions, rules, custom database scripts, connectors) for about {users} users: {} tenant errors of {} logins in {win}.",
                    w.tenant, w.logins
                ),
                Fault::Tenant,
            )
        } else {
            (
                Verdict::ProviderOutage,
                format!(
                    "The tenant's log shows logins failing with the provider's own errors for about {users} users: {} provider errors of {} logins in {win}.",
                    w.provider, w.logins
                ),
                Fault::Provider,
            )
        };
        let mut r = Reason::new(headline);
        r.pros.push(format!(
            "tenant log: {} of {} logins failed on the provider's side ({} provider, {} tenant errors), {} by the users' own doing",
            w.provider_side, w.logins, w.provider, w.tenant, w.user
        ));
        self.probe_evidence(&mut r, Some(fault));
        self.traffic_evidence(&mut r, v == Verdict::ProviderOutage);
        Some((v, r))
    }

    /// Real calls fail with 4xx while the tenant's log shows logins failing by the users' own
    /// doing (wrong passwords, blocked accounts, MFA) and hardly any on the provider's side: a
    /// wrong-password storm, nobody's outage.
    fn users_own_failures(&self) -> Option<Reason> {
        let l = self.s.logins.as_ref()?;
        let w = &l.window;
        let many = w.user >= 2.0 && w.user / w.logins >= self.cfg.traffic_error_ratio;
        let users_side = w.user >= 4.0 * w.provider_side;
        let client = self.traffic_fault.is_none_or(|f| f == TrafficFault::Client);
        if !(many && users_side && client) || self.probes_failing {
            return None;
        }
        let mut r = Reason::new(format!(
            "Logins fail by the users' own doing (wrong passwords, blocked accounts, MFA) for about {} users, as the tenant's log shows: nobody's outage.",
            l.users_all()
        ));
        r.pros.push(format!(
            "tenant log: {} of {} logins failed by the users' own doing, {} on the provider's side in {}",
            w.user,
            w.logins,
            w.provider_side,
            window(self.cfg.window)
        ));
        self.probe_evidence(&mut r, None);
        self.traffic_evidence(&mut r, false);
        Some(r)
    }

    /// Names what the probes say, for or against a verdict that `fault` would support.
    fn probe_evidence(&self, r: &mut Reason, supports: Option<Fault>) {
        let s = self.s;
        if s.probe_runs == 0 && s.last_probe_ok.is_none() {
            r.cons.push("no probe runs to compare with".into());
            return;
        }
        let w = window(self.cfg.window);
        if s.probe_failures == 0 || (!self.probes_failing && self.reaches == Some(true)) {
            let line = format!("probes pass ({} of {} runs failed in {w})", s.probe_failures, s.probe_runs);
            // Passing probes count against a provider outage and for anything else.
            if supports == Some(Fault::Provider) {
                r.cons.push(line);
            } else {
                r.pros.push(line);
            }
            return;
        }
        let mut line = format!(
            "probes: {} of {} runs failed in {w}, {} in a row",
            s.probe_failures, s.probe_runs, s.probe_consecutive_failures
        );
        let outcomes = s.probes.outcomes.iter().take(3).map(|o| format!("{} ({})", o.0, o.1)).collect::<Vec<_>>();
        if !outcomes.is_empty() && outcomes.iter().any(|o| !o.starts_with("unknown")) {
            line += &format!(", {}", outcomes.join(", "));
        }
        let fault = self.probe_fault.flatten();
        if fault.is_none() || supports.is_none() || fault == supports {
            r.pros.push(line);
        } else {
            r.cons.push(line);
        }
    }

    /// Names what real traffic says; `supports`: its failures count for the verdict.
    fn traffic_evidence(&self, r: &mut Reason, supports: bool) {
        let s = self.s;
        let t = &s.traffic;
        let c = &s.calls;
        if t.requests <= 0.0 {
            r.cons.push("no real traffic to compare with".into());
            return;
        }
        let w = window(self.cfg.window);
        if t.errors <= 0.0 {
            let line = format!("real traffic succeeds (0 of {} calls failed in {w})", t.requests);
            if supports {
                r.cons.push(line);
            } else {
                r.pros.push(line);
            }
            return;
        }
        let kind = self.traffic_fault.unwrap_or(TrafficFault::Client);
        let mut line = format!(
            "real traffic: {} of {} calls failed in {w}, mostly {}",
            t.errors,
            t.requests,
            kind.describe()
        );
        if let Some(age) = c.last_error[kind as usize].filter(|a| *a >= Duration::from_secs(2)) {
            line += &format!(", the last {}", human(age));
        }
        match c.ratio() {
            _ if !self.traffic_failing => line += " (not failing now)",
            Some(ratio) => line += &format!(", {:.0}% of recent calls", ratio * 100.0),
            None => {}
        }
        if supports && self.traffic_failing {
            r.pros.push(line);
        } else {
            r.cons.push(line);
        }
    }
}
