//! The memory budget: what authwatch holds, counted in bytes, and the admission decision taken on
//! it before a request body is read.
//!
//! One [`MemoryBudget`] is shared by every component of a run (it is in [`crate::Settings`]).
//! Components that keep data after they have acknowledged it (the `batch` processor, in-memory
//! sending queues) [`charge`](MemoryBudget::charge) its size as protobuf and release it when the
//! data leaves them; receivers charge the body they are reading. Receivers ask
//! [`admit`](MemoryBudget::admit) with the size a request declares *before* reading its body, so
//! a refusal costs no body read and no decode:
//!
//! - a `memory_limiter` sets the **limit** ([`MemoryBudget::limit_to`]): a request that would
//!   take the bytes held past it is refused with [`ConsumeError::Throttled`] (gRPC
//!   `RESOURCE_EXHAUSTED`, HTTP 429, with the retry hint);
//! - the `memory_limiter`'s resident-set backstop can refuse everything
//!   ([`MemoryBudget::set_backstop`]) with the same answer.
//!
//! With no `memory_limiter` everything is admitted (a full sending queue still refuses, after the
//! body was read, or makes a `batch` processor in front of it wait: that is backpressure, not
//! overload). The budget is process-wide, as memory is.
//!
//! Cost: a few relaxed atomic operations per request, none per item.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::consume::ConsumeError;

/// The limit when no `memory_limiter` set one.
const NO_LIMIT: u64 = u64::MAX;

#[derive(Debug)]
struct Inner {
    /// Bytes held now.
    held: AtomicU64,
    /// Admission limit on `held`, the smallest any `memory_limiter` set.
    limit: AtomicU64,
    /// Retry hint for refusals, in milliseconds (the `memory_limiter`'s `check_interval`).
    retry_ms: AtomicU64,
    /// `memory_limiter` backstops refusing now.
    backstops: AtomicU32,
}

/// What authwatch holds, and whether a request of a given size may come in. Cheap to clone (one
/// reference count); every clone is the same budget.
#[derive(Debug, Clone)]
pub struct MemoryBudget(Arc<Inner>);

impl Default for MemoryBudget {
    fn default() -> Self {
        MemoryBudget(Arc::new(Inner {
            held: AtomicU64::new(0),
            limit: AtomicU64::new(NO_LIMIT),
            retry_ms: AtomicU64::new(1000),
            backstops: AtomicU32::new(0),
        }))
    }
}

impl MemoryBudget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.0.held.load(Ordering::Relaxed)
    }

    /// The admission limit, if a `memory_limiter` set one.
    pub fn limit(&self) -> Option<u64> {
        Some(self.0.limit.load(Ordering::Relaxed)).filter(|l| *l != NO_LIMIT)
    }

    /// Sets the admission limit (the smallest of all calls wins) and the retry hint.
    pub fn limit_to(&self, bytes: u64, retry_after: Duration) {
        self.0.limit.fetch_min(bytes, Ordering::Relaxed);
        let ms = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
        self.0.retry_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Replaces the admission limit (a `memory_limiter` that learnt what a held byte costs).
    pub fn set_limit(&self, bytes: u64) {
        self.0.limit.store(bytes, Ordering::Relaxed);
    }

    fn retry_after(&self) -> Duration {
        Duration::from_millis(self.0.retry_ms.load(Ordering::Relaxed))
    }

    /// Counts `bytes` as held until the returned [`Charge`] is dropped.
    pub fn charge(&self, bytes: u64) -> Charge {
        self.0.held.fetch_add(bytes, Ordering::Relaxed);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }

    /// Whether a request that will bring `incoming` bytes may be read: `Ok`, or the refusal to
    /// answer with. A request is always admitted into an empty budget, so that one larger than
    /// the limit is not refused for ever.
    pub fn admit(&self, incoming: u64) -> Result<(), ConsumeError> {
        if self.0.backstops.load(Ordering::Relaxed) > 0 {
            return Err(ConsumeError::Throttled(self.retry_after()));
        }
        let held = self.held();
        if held > 0 && held.saturating_add(incoming) > self.0.limit.load(Ordering::Relaxed) {
            return Err(ConsumeError::Throttled(self.retry_after()));
        }
        Ok(())
    }

    /// A `memory_limiter`'s resident-set backstop starts (`true`) or stops refusing. Each call
    /// with `true` must be followed by one with `false`.
    pub fn set_backstop(&self, refusing: bool) {
        if refusing {
            self.0.backstops.fetch_add(1, Ordering::Relaxed);
        } else {
            // Never below zero, whatever a caller does.
            let _ = self
                .0
                .backstops
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

/// Bytes counted as held; released when dropped.
#[derive(Debug)]
#[must_use = "the bytes are released when the charge is dropped"]
pub struct Charge {
    budget: MemoryBudget,
    bytes: u64,
}

impl Charge {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Releases `bytes` of this charge now (at most what is left); the rest stays held.
    pub fn release(&mut self, bytes: u64) {
        let n = bytes.min(self.bytes);
        self.bytes -= n;
        self.budget.0.held.fetch_sub(n, Ordering::Relaxed);
    }

    /// Takes `other`'s bytes into this charge (they stay held).
    pub fn merge(&mut self, mut other: Charge) {
        self.bytes += std::mem::take(&mut other.bytes);
    }

    /// Adds `bytes` to this charge.
    pub fn add(&mut self, bytes: u64) {
        self.bytes += bytes;
        self.budget.0.held.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.0.held.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_limit_everything_is_admitted() {
        let b = MemoryBudget::new();
        let _held = b.charge(1 << 40);
        assert_eq!(b.admit(1 << 40), Ok(()));
        assert_eq!(b.limit(), None);
    }

    #[test]
    fn charges_count_until_dropped_or_released() {
        let b = MemoryBudget::new();
        let mut c = b.charge(100);
        let d = b.clone().charge(50);
        assert_eq!(b.held(), 150);
        c.release(30);
        assert_eq!((b.held(), c.bytes()), (120, 70));
        c.release(1000);
        assert_eq!((b.held(), c.bytes()), (50, 0));
        c.add(5);
        c.merge(d);
        assert_eq!((b.held(), c.bytes()), (55, 55));
        c.release(50);
        assert_eq!(b.held(), 5);
        drop(c);
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn refuses_what_would_pass_the_limit_with_the_retry_hint() {
        let b = MemoryBudget::new();
        b.limit_to(1000, Duration::from_millis(250));
        b.limit_to(2000, Duration::from_millis(250));
        assert_eq!(b.limit(), Some(1000), "the smallest limit wins");
        // An empty budget takes anything, so a large request is not refused for ever.
        assert_eq!(b.admit(5000), Ok(()));
        let held = b.charge(600);
        assert_eq!(b.admit(400), Ok(()));
        assert_eq!(
            b.admit(401),
            Err(ConsumeError::Throttled(Duration::from_millis(250)))
        );
        drop(held);
        assert_eq!(b.admit(401), Ok(()));
        b.set_limit(3000);
        assert_eq!(b.limit(), Some(3000));
    }

    #[test]
    fn the_backstop_refuses_everything_until_it_stops() {
        let b = MemoryBudget::new();
        b.set_backstop(true);
        b.set_backstop(true);
        assert!(matches!(b.admit(0), Err(ConsumeError::Throttled(_))));
        b.set_backstop(false);
        assert!(b.admit(0).is_err(), "one backstop still refuses");
        b.set_backstop(false);
        b.set_backstop(false);
        assert_eq!(b.admit(0), Ok(()));
    }
}
