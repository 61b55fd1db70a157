//! The decision taken at each memory reading: refuse or let data in.
//!
//! The reading is the resident set size (RSS), and glibc's allocator keeps most memory that was
//! freed resident (on its free lists) to reuse it, rather than handing it back to the system.
//! So after a burst the RSS stays near its peak although the data is gone: a limiter that
//! refuses whenever the RSS is above the soft limit can refuse for ever once a burst has pushed
//! the RSS there (measured: 2 runs of 4 of the overload test, `tests/overload.rs`).
//!
//! What the RSS does show is *growth*: memory the allocator keeps is reused before it asks the
//! system for more. So above the soft limit the gate refuses while memory grows, and when it
//! has stopped growing for `hold` readings while refusing, it lets data in again; if memory
//! grows at the next reading it refuses again and waits twice as long before the next try (up
//! to [`MAX_HOLD`] readings). At or above the hard limit it always refuses. Below the soft limit
//! it never refuses.
//!
//! Bound: memory can only pass the soft limit by growing, and every reading that shows growth
//! above the soft limit starts a refusal, so the RSS exceeds the last reading below the hard
//! limit by at most what arrives in one `check_interval`: the spike limit is the room for that.

/// Readings without growth, while refusing above the soft limit, before data is let in again.
pub(crate) const INITIAL_HOLD: u32 = 5;
/// The longest wait, in readings, after tries that made memory grow.
pub(crate) const MAX_HOLD: u32 = 64;

use super::Limits;

/// What a reading changed, for the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    Unchanged,
    /// Refusing, because memory crossed or grew above the soft limit.
    Refusing,
    /// Refusing, because memory is at or above the hard limit.
    HardLimit,
    /// Letting data in again above the soft limit: memory stopped growing while refusing.
    Trying,
    /// Memory did not grow after letting data in again: the allocator is reusing what it kept.
    Reusing,
    /// Letting data in again: memory is below the soft limit.
    BelowSoft,
}

/// The refusal state, updated at each reading.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    limits: Limits,
    /// Growth smaller than this is noise (thread stacks, buffers): 1/16 of the spike limit.
    tolerance: u64,
    refusing: bool,
    /// The last reading was below the soft limit (or there was none).
    below: bool,
    /// The reading growth is measured from: when refusing or trying started, or the last growth.
    mark: u64,
    /// Readings without growth since `mark`, while refusing.
    flat: u32,
    /// Readings to wait before the next try.
    hold: u32,
    /// Data was let in again above the soft limit at the last reading.
    trying: bool,
}

impl Gate {
    pub(crate) fn new(limits: Limits) -> Gate {
        Gate {
            limits,
            tolerance: ((limits.hard - limits.soft) / 16).max(4096),
            refusing: false,
            below: true,
            mark: 0,
            flat: 0,
            hold: INITIAL_HOLD,
            trying: false,
        }
    }

    pub(crate) fn refusing(&self) -> bool {
        self.refusing
    }

    /// Takes a reading of `used` bytes; returns what changed.
    pub(crate) fn observe(&mut self, used: u64) -> Transition {
        let was_below = std::mem::replace(&mut self.below, used < self.limits.soft);
        if used < self.limits.soft {
            let was = std::mem::replace(&mut self.refusing, false);
            self.trying = false;
            self.hold = INITIAL_HOLD;
            self.flat = 0;
            return if was {
                Transition::BelowSoft
            } else {
                Transition::Unchanged
            };
        }
        if used >= self.limits.hard {
            let was = std::mem::replace(&mut self.refusing, true);
            self.trying = false;
            self.flat = 0;
            self.mark = used;
            return if was {
                Transition::Unchanged
            } else {
                Transition::HardLimit
            };
        }
        let grew = was_below || used > self.mark.saturating_add(self.tolerance);
        if self.refusing {
            if grew {
                self.mark = used;
                self.flat = 0;
                return Transition::Unchanged;
            }
            self.flat += 1;
            if self.flat < self.hold {
                return Transition::Unchanged;
            }
            self.refusing = false;
            self.trying = true;
            self.mark = used;
            self.flat = 0;
            return Transition::Trying;
        }
        if grew {
            if self.trying {
                self.hold = self.hold.saturating_mul(2).min(MAX_HOLD);
            }
            self.refusing = true;
            self.trying = false;
            self.mark = used;
            self.flat = 0;
            return Transition::Refusing;
        }
        if std::mem::replace(&mut self.trying, false) {
            self.hold = INITIAL_HOLD;
            return Transition::Reusing;
        }
        Transition::Unchanged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// Soft limit 64 MiB, hard 96 MiB, tolerance 2 MiB.
    fn gate() -> Gate {
        Gate::new(Limits {
            hard: 96 * MIB,
            soft: 64 * MIB,
        })
    }

    fn feed(g: &mut Gate, mib: &[u64]) -> Vec<(bool, Transition)> {
        mib.iter()
            .map(|m| {
                let t = g.observe(m * MIB);
                (g.refusing(), t)
            })
            .collect()
    }

    #[test]
    fn below_the_soft_limit_never_refuses() {
        let mut g = gate();
        assert!(feed(&mut g, &[10, 63, 20, 63])
            .iter()
            .all(|(r, t)| !r && *t == Transition::Unchanged));
    }

    #[test]
    fn crossing_the_soft_limit_refuses_and_going_below_ends_it() {
        let mut g = gate();
        assert_eq!(
            feed(&mut g, &[50, 64, 70, 60]),
            [
                (false, Transition::Unchanged),
                (true, Transition::Refusing),
                (true, Transition::Unchanged),
                (false, Transition::BelowSoft),
            ]
        );
        // The first reading counts as growth: already above at start means refusing.
        let mut g = gate();
        assert_eq!(feed(&mut g, &[80]), [(true, Transition::Refusing)]);
    }

    #[test]
    fn memory_kept_by_the_allocator_does_not_refuse_for_ever() {
        let mut g = gate();
        // A burst leaves the RSS at 70 MiB, flat: after INITIAL_HOLD flat readings, data is
        // let in; memory does not grow (freed memory is reused), so it stays in.
        let mut seen = feed(&mut g, &[70]);
        seen.extend(feed(&mut g, &[70; INITIAL_HOLD as usize]));
        assert_eq!(seen[0], (true, Transition::Refusing));
        assert!(seen[1..INITIAL_HOLD as usize]
            .iter()
            .all(|s| *s == (true, Transition::Unchanged)));
        assert_eq!(seen[INITIAL_HOLD as usize], (false, Transition::Trying));
        assert_eq!(
            feed(&mut g, &[71, 71, 71]),
            [
                (false, Transition::Reusing),
                (false, Transition::Unchanged),
                (false, Transition::Unchanged)
            ]
        );
    }

    #[test]
    fn tries_that_make_memory_grow_back_off_up_to_the_maximum() {
        let mut g = gate();
        let mut level = 66;
        feed(&mut g, &[level]);
        let mut holds = Vec::new();
        for _ in 0..8 {
            // Count the flat readings until the next try.
            let mut n = 0;
            while g.refusing() {
                g.observe(level * MIB);
                n += 1;
            }
            holds.push(n);
            // The try lets data in and memory grows: refused again.
            level += 3;
            assert_eq!(g.observe(level * MIB), Transition::Refusing);
            if level >= 90 {
                break;
            }
        }
        assert_eq!(holds[..4], [5, 10, 20, 40]);
        assert!(holds.iter().all(|h| *h <= MAX_HOLD));
        // Growth while refusing (data still in flight) restarts the count.
        let mut g = gate();
        feed(&mut g, &[70, 70, 70, 75]);
        assert!(g.refusing());
        assert_eq!(g.flat, 0);
    }

    #[test]
    fn the_hard_limit_always_refuses() {
        let mut g = gate();
        let seen = feed(&mut g, &[100; 200]);
        assert_eq!(seen[0], (true, Transition::HardLimit));
        assert!(seen[1..]
            .iter()
            .all(|s| *s == (true, Transition::Unchanged)));
        // Below the hard limit again, flat: the usual wait, then a try.
        let seen = feed(&mut g, &[90; INITIAL_HOLD as usize]);
        assert_eq!(seen.last(), Some(&(false, Transition::Trying)));
    }

    #[test]
    fn slow_creep_above_the_soft_limit_counts_as_growth() {
        let mut g = gate();
        // Trying at 70, then +1 MiB per reading: below the 2 MiB tolerance each time, but the
        // growth is measured from where the try started.
        feed(&mut g, &[70, 70, 70, 70, 70, 70]);
        assert!(!g.refusing());
        assert_eq!(
            feed(&mut g, &[71, 72, 73]),
            [
                (false, Transition::Reusing),
                (false, Transition::Unchanged),
                (true, Transition::Refusing)
            ]
        );
    }
}
