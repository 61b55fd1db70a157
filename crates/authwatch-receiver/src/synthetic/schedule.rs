//! When checks run: the interval grid, jitter, `Retry-After` and `blocked_backoff`, and the lag
//! of each run behind its plan (`authwatch_synthetic_schedule_lag_seconds`).

use std::time::Duration;

use authwatch_core::telemetry::{Family, Histogram};
use tokio::time::Instant;
use tracing::warn;

use super::{board, emit, run};

/// When a check runs.
#[derive(Debug, Clone)]
pub(super) struct Schedule {
    pub interval: Duration,
    pub initial_delay: Duration,
    pub jitter: Duration,
    pub blocked_backoff: Duration,
    /// Where to record how late each run starts (`authwatch_synthetic_schedule_lag_seconds`).
    pub lag: Option<Histogram>,
}

/// Bucket bounds of the schedule lag, in seconds: fine around the 50 ms drift target.
const LAG_BUCKETS: [f64; 17] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

type LagFamily = Family<Vec<(String, String)>, Histogram, fn() -> Histogram>;

pub(super) fn lag_histogram() -> Histogram {
    Histogram::new(LAG_BUCKETS)
}

/// This receiver's series of `authwatch_synthetic_schedule_lag_seconds`: how long after its
/// planned time each run of a check started (timer and scheduling delay; the planned time
/// already includes jitter, `Retry-After` and `blocked_backoff`).
pub(super) fn schedule_lag(telemetry: &authwatch_core::telemetry::Telemetry, receiver: &str) -> Histogram {
    let family: LagFamily = telemetry.metric(
        "synthetic_schedule_lag_seconds",
        "How late synthetic check runs started compared with their schedule",
        || LagFamily::new_with_constructor(lag_histogram),
    );
    family.get_or_create(&vec![("receiver".to_owned(), receiver.to_owned())])
}

/// What a run asks of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Backoff {
    /// Next run at the next interval.
    #[default]
    None,
    /// The provider asked to wait this long (429 `Retry-After` / `x-ratelimit-reset`).
    RetryAfter(Duration),
    /// The probe user is blocked (`too_many_attempts`): pause for `blocked_backoff`.
    Blocked,
}

/// Longest wait a `Retry-After` may impose (a broken header must not stop probing for days).
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

impl Schedule {
    /// The next planned run after one planned at `planned` finished at `now`.
    pub(super) fn next(&self, planned: Instant, now: Instant, backoff: Backoff) -> Instant {
        let mut next = planned + self.interval;
        // A run that overran (it cannot, timeout <= interval, but be safe): skip missed ticks.
        while next <= now {
            next += self.interval.max(Duration::from_millis(1));
        }
        let not_before = match backoff {
            Backoff::None => now,
            Backoff::RetryAfter(d) => now + d.min(MAX_RETRY_AFTER),
            Backoff::Blocked => now + self.blocked_backoff,
        };
        // Stay on the interval grid.
        while next < not_before {
            next += self.interval.max(Duration::from_millis(1));
        }
        next
    }
}

/// One run of something on a schedule (a check; a stand-in in tests).
pub(crate) trait Probe: Send {
    fn run_once(&mut self) -> impl std::future::Future<Output = Backoff> + Send;
}

/// A check and where its results go.
pub(super) struct CheckTask {
    pub runner: run::CheckRunner,
    pub emitter: emit::Emitter,
    pub board: board::ProbeBoard,
}

impl Probe for CheckTask {
    async fn run_once(&mut self) -> Backoff {
        let result = self.runner.run().await;
        self.emitter.emit(&result).await;
        self.board.publish(&result);
        result.backoff()
    }
}

/// Runs `probe` on `schedule` until `shutdown` is cancelled. A run in flight is finished first.
pub(super) async fn run_schedule<P: Probe>(
    schedule: &Schedule,
    shutdown: &tokio_util::sync::CancellationToken,
    probe: &mut P,
) {
    let jitter = if schedule.jitter.is_zero() {
        Duration::ZERO
    } else {
        schedule.jitter.mul_f64(rand::random::<f64>())
    };
    let mut planned = Instant::now() + schedule.initial_delay + jitter;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(planned) => {}
        }
        if let Some(lag) = &schedule.lag {
            lag.observe(
                Instant::now()
                    .saturating_duration_since(planned)
                    .as_secs_f64(),
            );
        }
        let backoff = probe.run_once().await;
        let now = Instant::now();
        match backoff {
            Backoff::Blocked => warn!(
                pause = %humantime(schedule.blocked_backoff),
                "The provider blocked the probe user (too_many_attempts); pausing the check. Unblock the user or allow-list the probe's IP in Attack Protection."
            ),
            Backoff::RetryAfter(d) => warn!(
                retry_after = %humantime(d.min(MAX_RETRY_AFTER)),
                "The provider rate-limited the probe; delaying the next run."
            ),
            Backoff::None => {}
        }
        planned = schedule.next(planned, now, backoff);
        if shutdown.is_cancelled() {
            return;
        }
    }
}

/// `30s`, or `1500ms` when not whole seconds.
pub(super) fn humantime(d: Duration) -> impl std::fmt::Display {
    struct H(Duration);
    impl std::fmt::Display for H {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            if self.0.subsec_millis() == 0 {
                write!(f, "{}s", self.0.as_secs())
            } else {
                write!(f, "{}ms", self.0.as_millis())
            }
        }
    }
    H(d)
}
