//! `log_id`s seen within the dedupe window, with bounded memory.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Remembers ids for `window`, at most `capacity` of them (the oldest are forgotten first).
#[derive(Debug)]
pub(crate) struct Dedupe {
    window: Duration,
    capacity: usize,
    seen: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl Dedupe {
    pub(crate) fn new(window: Duration, capacity: usize) -> Self {
        Dedupe {
            window,
            capacity,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            let expired = now.saturating_duration_since(*at) >= self.window;
            if !expired && self.order.len() <= self.capacity {
                break;
            }
            if let Some((at, id)) = self.order.pop_front() {
                // Only forget the id if this entry is its latest sighting.
                if self.seen.get(&id) == Some(&at) {
                    self.seen.remove(&id);
                }
            }
        }
    }

    /// Whether `id` was marked within the window.
    pub(crate) fn contains(&mut self, id: &str, now: Instant) -> bool {
        if self.window.is_zero() {
            return false;
        }
        self.expire(now);
        self.seen.contains_key(id)
    }

    /// Marks `id` as seen at `now`.
    pub(crate) fn mark(&mut self, id: String, now: Instant) {
        if self.window.is_zero() {
            return;
        }
        self.seen.insert(id.clone(), now);
        self.order.push_back((now, id));
        self.expire(now);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn forgets_after_the_window() {
        let mut d = Dedupe::new(Duration::from_secs(60), 100);
        d.mark("a".into(), Instant::now());
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(d.contains("a", Instant::now()));
        assert!(!d.contains("b", Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!d.contains("a", Instant::now()));
        assert_eq!(d.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded() {
        let mut d = Dedupe::new(Duration::from_secs(3600), 3);
        for id in ["a", "b", "c", "d"] {
            d.mark(id.into(), Instant::now());
        }
        assert_eq!(d.len(), 3);
        assert!(!d.contains("a", Instant::now()));
        assert!(d.contains("d", Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_window_disables() {
        let mut d = Dedupe::new(Duration::ZERO, 3);
        d.mark("a".into(), Instant::now());
        assert!(!d.contains("a", Instant::now()));
    }
}
