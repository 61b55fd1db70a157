//! A sliding window as a ring of time buckets: (requests, errors) per bucket, one ring per
//! dependency, source and configured window.

use std::time::Duration;

/// Buckets per window ring (windows up to 5m get 1s buckets).
const RING_BUCKETS: u64 = 300;

/// A sliding window as a ring of time buckets: bounded memory whatever the traffic.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    width_secs: u64,
    buckets: Vec<(u64, u64)>,
    /// Absolute index (seconds / width) of the newest bucket.
    head: u64,
}

impl Ring {
    pub(crate) fn new(window: Duration) -> Self {
        let secs = window.as_secs().max(1);
        let width_secs = secs.div_ceil(RING_BUCKETS).max(1);
        let n = secs.div_ceil(width_secs).max(1) as usize;
        Ring {
            width_secs,
            buckets: vec![(0, 0); n],
            head: 0,
        }
    }

    fn advance(&mut self, now: Duration) -> usize {
        let idx = now.as_secs() / self.width_secs;
        let n = self.buckets.len() as u64;
        if idx > self.head {
            let gap = (idx - self.head).min(n);
            for i in 0..gap {
                let slot = ((idx - i) % n) as usize;
                self.buckets[slot] = (0, 0);
            }
            self.head = idx;
        }
        (self.head % n) as usize
    }

    pub(crate) fn add(&mut self, now: Duration, requests: u64, errors: u64) {
        let slot = self.advance(now);
        let b = &mut self.buckets[slot];
        b.0 += requests;
        b.1 += errors;
    }

    /// (requests, errors) in the window ending now.
    pub(crate) fn totals(&mut self, now: Duration) -> (u64, u64) {
        self.advance(now);
        self.buckets
            .iter()
            .fold((0, 0), |(r, e), b| (r + b.0, e + b.1))
    }
}
