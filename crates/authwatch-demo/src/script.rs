//! The scripted incident: its phases, when each starts (as a share of the demo's duration,
//! the table in the crate docs), and the clock that tells which one is current.

use std::time::Duration;

use tokio::time::Instant;

/// Where the scripted incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Healthy,
    ServerErrors,
    RateLimited,
    ProbeUserLocked,
    Recovered,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::Healthy,
        Phase::ServerErrors,
        Phase::RateLimited,
        Phase::ProbeUserLocked,
        Phase::Recovered,
    ];

    /// When the phase starts, as a share of the demo's duration.
    fn starts_at(self) -> f64 {
        match self {
            Phase::Healthy => 0.0,
            Phase::ServerErrors => 0.15,
            Phase::RateLimited => 0.40,
            Phase::ProbeUserLocked => 0.52,
            Phase::Recovered => 0.75,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::ServerErrors => "server_errors",
            Phase::RateLimited => "rate_limited",
            Phase::ProbeUserLocked => "probe_user_locked",
            Phase::Recovered => "recovered",
        }
    }

    /// What the stand-in does from now on, for the terminal.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Healthy => "The provider is healthy: logins succeed, the status page is green.",
            Phase::ServerErrors => "A burst of 5xx: 60% of logins and every probe login fail; the provider's status page opens a major incident.",
            Phase::RateLimited => "Rate limiting: half the logins and the probe get 429 with Retry-After; the incident is being monitored.",
            Phase::ProbeUserLocked => "The probe user is locked (too_many_attempts): real traffic is fine, only the probe fails; the incident is resolved.",
            Phase::Recovered => "Recovery: everything succeeds again; alerts resolve.",
        }
    }
}

/// The scripted incident's clock.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    start: Instant,
    duration: Duration,
}

impl Script {
    /// A script that starts now and lasts `duration`.
    pub fn new(duration: Duration) -> Self {
        Script {
            start: Instant::now(),
            duration,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The phase at `elapsed` into the demo.
    pub fn phase_at(&self, elapsed: Duration) -> Phase {
        let share = elapsed.as_secs_f64() / self.duration.as_secs_f64().max(0.001);
        Phase::ALL
            .into_iter()
            .rev()
            .find(|p| share >= p.starts_at())
            .unwrap_or(Phase::Healthy)
    }

    pub fn phase(&self) -> Phase {
        self.phase_at(self.elapsed())
    }

    /// When the demo is over.
    pub fn ends_at(&self) -> Instant {
        self.start + self.duration
    }

    /// When `phase` starts, from the demo's start.
    pub fn start_of(&self, phase: Phase) -> Duration {
        self.duration.mul_f64(phase.starts_at())
    }
}
