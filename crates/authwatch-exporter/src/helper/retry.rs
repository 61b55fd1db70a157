//! `retry_on_failure`: exponential backoff with jitter, as the Collector's exporterhelper
//! (`initial_interval` 5s, `max_interval` 30s, `max_elapsed_time` 300s, `multiplier` 1.5,
//! `randomization_factor` 0.5). Errors say whether to retry through [`ExportError::retry`];
//! nothing here looks at messages.

use std::time::Duration;

use authwatch_core::Validator;
use serde::{Deserialize, Serialize};

/// The longest server retry hint (`Retry-After`, gRPC `RetryInfo`) that is honoured as is;
/// longer hints are cut to this.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(300);

/// Whether and when to try a failed request again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Permanent: the same request will fail again (bad data, auth refused).
    No,
    /// Transient: retry after the backoff delay.
    Yes,
    /// The destination asked to wait at least this long (`Retry-After`, gRPC `RetryInfo`).
    After(Duration),
}

/// An exporter's error: a description that never contains secrets, plus its retry class.
pub trait ExportError: std::error::Error + Send + Sync + 'static {
    fn retry(&self) -> Retry;
}

/// `retry_on_failure` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Retry transient failures at all (`false`: a failed request is dropped at once).
    pub enabled: bool,
    /// The first backoff delay.
    #[serde(with = "authwatch_core::config::duration")]
    pub initial_interval: Duration,
    /// The backoff delay never grows beyond this.
    #[serde(with = "authwatch_core::config::duration")]
    pub max_interval: Duration,
    /// Give up on a request after trying for this long; `0` retries forever.
    #[serde(with = "authwatch_core::config::duration")]
    pub max_elapsed_time: Duration,
    /// Each delay is the previous one times this.
    pub multiplier: f64,
    /// Each delay is drawn from `delay * [1 - factor, 1 + factor]`.
    pub randomization_factor: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            initial_interval: Duration::from_secs(5),
            max_interval: Duration::from_secs(30),
            max_elapsed_time: Duration::from_secs(300),
            multiplier: 1.5,
            randomization_factor: 0.5,
        }
    }
}

impl RetryConfig {
    /// Cross-field rules, reported below `at` (e.g. `retry_on_failure`).
    pub fn validate(&self, v: &mut Validator, at: &str) {
        let path = |f: &str| format!("{at}::{f}");
        if !self.enabled {
            return;
        }
        if self.initial_interval.is_zero() {
            v.error(
                &path("initial_interval"),
                "must be greater than 0, e.g. `5s`",
            );
        }
        if self.max_interval < self.initial_interval {
            v.error(
                &path("max_interval"),
                "must not be less than `initial_interval`",
            );
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            v.error(
                &path("multiplier"),
                "must be a number of at least 1, e.g. 1.5",
            );
        }
        if !(0.0..=1.0).contains(&self.randomization_factor) {
            v.error(&path("randomization_factor"), "must be between 0 and 1");
        }
    }
}

/// The delays of one request's retries.
#[derive(Debug)]
pub struct Backoff {
    current: Duration,
    max: Duration,
    multiplier: f64,
    randomization: f64,
}

impl Backoff {
    pub fn new(cfg: &RetryConfig) -> Self {
        Backoff {
            current: cfg.initial_interval,
            max: cfg.max_interval.max(cfg.initial_interval),
            multiplier: if cfg.multiplier.is_finite() {
                cfg.multiplier.max(1.0)
            } else {
                1.0
            },
            randomization: cfg.randomization_factor.clamp(0.0, 1.0),
        }
    }

    /// The next delay (jittered), and grows the base delay for the one after.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current.as_secs_f64();
        let delay = if self.randomization > 0.0 && base > 0.0 {
            let lo = base * (1.0 - self.randomization);
            let hi = base * (1.0 + self.randomization);
            rand::random_range(lo..=hi)
        } else {
            base
        };
        let grown = (base * self.multiplier).min(self.max.as_secs_f64());
        self.current = Duration::from_secs_f64(grown);
        Duration::from_secs_f64(delay)
    }
}

/// The delay before the next attempt: the backoff delay, or the server's hint if that is longer
/// (the Collector's throttle rule), the hint capped at [`MAX_RETRY_HINT`].
pub fn delay_for(retry: Retry, backoff: &mut Backoff) -> Option<Duration> {
    match retry {
        Retry::No => None,
        Retry::Yes => Some(backoff.next_delay()),
        Retry::After(hint) => Some(backoff.next_delay().max(hint.min(MAX_RETRY_HINT))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(jitter: f64) -> RetryConfig {
        RetryConfig {
            initial_interval: Duration::from_secs(1),
            max_interval: Duration::from_secs(4),
            multiplier: 2.0,
            randomization_factor: jitter,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let mut b = Backoff::new(&cfg(0.0));
        let d: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(d, vec![1, 2, 4, 4, 4]);
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut b = Backoff::new(&cfg(0.5));
        for base in [1.0, 2.0, 4.0, 4.0] {
            let d = b.next_delay().as_secs_f64();
            assert!(
                d >= base * 0.5 - 1e-9 && d <= base * 1.5 + 1e-9,
                "{d} vs {base}"
            );
        }
    }

    #[test]
    fn hints_win_when_longer_and_are_capped() {
        let mut b = Backoff::new(&cfg(0.0));
        assert_eq!(
            delay_for(Retry::After(Duration::from_secs(3)), &mut b),
            Some(Duration::from_secs(3))
        );
        // Backoff (2s) is longer than the hint.
        assert_eq!(
            delay_for(Retry::After(Duration::from_millis(1)), &mut b),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            delay_for(Retry::After(Duration::from_secs(100_000)), &mut b),
            Some(MAX_RETRY_HINT)
        );
        assert_eq!(delay_for(Retry::No, &mut b), None);
    }

    #[test]
    fn validation_messages() {
        let bad = RetryConfig {
            initial_interval: Duration::ZERO,
            max_interval: Duration::ZERO,
            multiplier: 0.5,
            randomization_factor: 2.0,
            ..RetryConfig::default()
        };
        let mut v = Validator::new("exporters::otlp");
        bad.validate(&mut v, "retry_on_failure");
        let lines: Vec<String> = v.errors().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            lines,
            vec![
                "exporters::otlp::retry_on_failure::initial_interval: must be greater than 0, e.g. `5s`",
                "exporters::otlp::retry_on_failure::multiplier: must be a number of at least 1, e.g. 1.5",
                "exporters::otlp::retry_on_failure::randomization_factor: must be between 0 and 1",
            ]
        );
        let mut v = Validator::new("x");
        RetryConfig {
            max_interval: Duration::from_secs(1),
            ..RetryConfig::default()
        }
        .validate(&mut v, "retry_on_failure");
        assert_eq!(
            v.errors()[0].to_string(),
            "x::retry_on_failure::max_interval: must not be less than `initial_interval`"
        );
        let mut v = Validator::new("x");
        RetryConfig::default().validate(&mut v, "retry_on_failure");
        assert!(!v.has_errors());
    }
}
