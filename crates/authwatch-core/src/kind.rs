//! The three OTLP signals, and sets of them.

use std::fmt;

/// The three OTLP signals.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SignalKind {
    Traces,
    Metrics,
    Logs,
}

impl SignalKind {
    pub const ALL: [SignalKind; 3] = [SignalKind::Traces, SignalKind::Metrics, SignalKind::Logs];

    /// Index 0..3, for per-signal arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            SignalKind::Traces => "traces",
            SignalKind::Metrics => "metrics",
            SignalKind::Logs => "logs",
        }
    }

    /// What one item of this signal is called in self-telemetry (`spans`, `metric_points`, `log_records`).
    pub const fn item_name(self) -> &'static str {
        match self {
            SignalKind::Traces => "spans",
            SignalKind::Metrics => "metric_points",
            SignalKind::Logs => "log_records",
        }
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Signals(u8);

impl Signals {
    pub const NONE: Signals = Signals(0);
    pub const ALL: Signals = Signals(0b111);
    pub const TRACES: Signals = Signals(1);
    pub const METRICS: Signals = Signals(2);
    pub const LOGS: Signals = Signals(4);

    pub const fn of(kind: SignalKind) -> Signals {
        Signals(1 << kind as u8)
    }
    pub const fn contains(self, kind: SignalKind) -> bool {
        self.0 & (1 << kind as u8) != 0
    }
    pub const fn with(self, kind: SignalKind) -> Signals {
        Signals(self.0 | (1 << kind as u8))
    }
    pub fn iter(self) -> impl Iterator<Item = SignalKind> {
        SignalKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }
}

impl std::ops::BitOr for Signals {
    type Output = Signals;
    fn bitor(self, rhs: Signals) -> Signals {
        Signals(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_set() {
        let s = Signals::TRACES | Signals::LOGS;
        assert!(s.contains(SignalKind::Traces));
        assert!(!s.contains(SignalKind::Metrics));
        assert_eq!(s.iter().count(), 2);
        assert!(Signals::ALL.contains(SignalKind::Metrics));
    }
}
