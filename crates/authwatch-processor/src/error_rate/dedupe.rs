//! Spans counted recently, so that a span that comes back is not counted twice.
//!
//! An OTLP client whose request was refused (`UNAVAILABLE`, `429`) sends the same request again,
//! and a pipeline that has several consumers may have refused it while the connector had
//! already counted it. The connector remembers the last `dedupe_spans` spans it counted, by a
//! 64-bit fingerprint of `(trace_id, span_id)`, and skips a span it finds there.
//!
//! Memory is bounded: a ring of fingerprints (8 bytes each) in counting order and an
//! open-addressing table of the same fingerprints at most half full (8 bytes a slot, twice the
//! capacity rounded up to a power of two), so 24 bytes per remembered span for a power-of-two
//! capacity; the default 65,536 spans take 1.5 MB, of zeroed memory that becomes resident as
//! spans arrive. The oldest fingerprint is forgotten first. Per span: one keyed multiply-fold
//! hash of 24 bytes and one probe of the table; for a new span, once the ring is full, one
//! removal as well (usually a cache line each).
//!
//! The fingerprint is keyed with a random per-process seed, so a sender cannot make its spans
//! collide with another sender's on purpose; two distinct spans collide by chance with
//! probability about `dedupe_spans / 2^64` per span (below one in 10^14 for the default). A span
//! without ids (an empty `trace_id` and `span_id`) is always counted.

/// A span's ids, read as words (what the fingerprint is made of).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanIds {
    trace: [u64; 2],
    span: u64,
    /// Whether the span had any id at all.
    present: bool,
}

impl SpanIds {
    /// From the span's `trace_id` (16 bytes) and `span_id` (8 bytes); ids of other lengths are
    /// read as far as they go (longer ones folded in), so they are still told apart.
    pub fn of(trace_id: &[u8], span_id: &[u8]) -> Self {
        let mut trace = [0u64; 2];
        for (i, chunk) in trace_id.chunks(8).enumerate() {
            trace[i % 2] ^= word(chunk).rotate_left(i as u32);
        }
        let mut span = 0u64;
        for (i, chunk) in span_id.chunks(8).enumerate() {
            span ^= word(chunk).rotate_left(i as u32);
        }
        SpanIds {
            trace,
            span,
            present: !(trace_id.is_empty() && span_id.is_empty()),
        }
    }
}

/// Up to 8 bytes as a big-endian word, zero-padded.
fn word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w[..bytes.len()].copy_from_slice(bytes);
    u64::from_be_bytes(w)
}

/// The last `capacity` spans counted (see the module docs).
#[derive(Debug)]
pub struct Dedupe {
    capacity: usize,
    /// Fingerprints in counting order; once full, `next` is the oldest.
    ring: Vec<u64>,
    next: usize,
    /// Open addressing with linear probing, at most half full; `0` marks an empty slot (a
    /// fingerprint of 0 is stored as 1).
    table: Vec<u64>,
    mask: usize,
    seed: [u64; 3],
}

impl Dedupe {
    /// Remembers up to `capacity` spans; `0` remembers none (every span is counted).
    pub fn new(capacity: usize) -> Self {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new();
        let slots = if capacity == 0 {
            0
        } else {
            (capacity.saturating_mul(2)).next_power_of_two()
        };
        Dedupe {
            capacity,
            ring: Vec::new(),
            next: 0,
            // Zeroed memory: the pages are touched only as fingerprints land in them.
            table: vec![0; slots],
            mask: slots.saturating_sub(1),
            seed: [
                random.hash_one(1u8),
                random.hash_one(2u8),
                random.hash_one(3u8) | 1,
            ],
        }
    }

    /// Whether this span is counted for the first time (and, if so, remembers it).
    #[inline]
    pub fn first_time(&mut self, ids: &SpanIds) -> bool {
        if self.capacity == 0 || !ids.present {
            return true;
        }
        let h = fold(ids.trace[0] ^ self.seed[0], ids.trace[1] ^ self.seed[1]);
        let h = fold(h ^ ids.span, self.seed[2]).max(1);
        if !self.insert(h) {
            return false;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(h);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], h);
            self.remove(old);
            self.next = (self.next + 1) % self.capacity;
        }
        true
    }

    /// Adds `h`; false when it is there already.
    #[inline]
    fn insert(&mut self, h: u64) -> bool {
        let mut i = h as usize & self.mask;
        loop {
            match self.table[i] {
                0 => {
                    self.table[i] = h;
                    return true;
                }
                x if x == h => return false,
                _ => i = (i + 1) & self.mask,
            }
        }
    }

    /// Removes `h`, shifting the entries after it back so that every probe sequence stays
    /// unbroken (no tombstones).
    fn remove(&mut self, h: u64) {
        let mask = self.mask;
        let mut i = h as usize & mask;
        loop {
            match self.table[i] {
                0 => return,
                x if x == h => break,
                _ => i = (i + 1) & mask,
            }
        }
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let x = self.table[j];
            if x == 0 {
                break;
            }
            // `x` may move to the hole at `i` unless its home slot lies cyclically in (i, j].
            let home = x as usize & mask;
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.table[i] = x;
                i = j;
            }
        }
        self.table[i] = 0;
    }

    /// Spans remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.iter().filter(|x| **x != 0).count()
    }
}

/// The 128-bit product of two words, folded to 64 bits (as foldhash and wyhash mix).
#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let p = u128::from(a).wrapping_mul(u128::from(b));
    (p as u64) ^ ((p >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(i: u64) -> SpanIds {
        let mut t = [0u8; 16];
        t[..8].copy_from_slice(&i.to_be_bytes());
        SpanIds::of(&t, &(i + 1).to_be_bytes())
    }

    #[test]
    fn a_span_is_counted_once_while_it_is_remembered() {
        let mut d = Dedupe::new(4);
        assert!(d.first_time(&ids(1)));
        assert!(!d.first_time(&ids(1)), "a re-sent span is skipped");
        for i in 2..=4 {
            assert!(d.first_time(&ids(i)));
        }
        assert!(!d.first_time(&ids(1)));
        // A fifth span pushes the oldest out: it would be counted again.
        assert!(d.first_time(&ids(5)));
        assert_eq!(d.len(), 4);
        assert!(d.first_time(&ids(1)));
        assert!(!d.first_time(&ids(5)));
        assert_eq!(d.len(), 4, "memory stays bounded");
    }

    #[test]
    fn spans_differing_in_either_id_are_told_apart() {
        let mut d = Dedupe::new(100);
        let t = [7u8; 16];
        assert!(d.first_time(&SpanIds::of(&t, &[1; 8])));
        assert!(d.first_time(&SpanIds::of(&t, &[2; 8])));
        let mut t2 = t;
        t2[15] = 8;
        assert!(d.first_time(&SpanIds::of(&t2, &[1; 8])));
        t2[0] = 8;
        assert!(d.first_time(&SpanIds::of(&t2, &[1; 8])));
        // Odd lengths are still read.
        assert!(d.first_time(&SpanIds::of(&[1, 2, 3], &[4])));
        assert!(!d.first_time(&SpanIds::of(&[1, 2, 3], &[4])));
    }

    #[test]
    fn spans_without_ids_and_a_zero_capacity_always_count() {
        let mut d = Dedupe::new(10);
        assert!(d.first_time(&SpanIds::of(&[], &[])));
        assert!(d.first_time(&SpanIds::of(&[], &[])));
        let mut off = Dedupe::new(0);
        assert!(off.first_time(&ids(1)));
        assert!(off.first_time(&ids(1)));
    }

    /// The table against a plain set, through many evictions in a small table (long probe runs
    /// and wrap-around at its end).
    #[test]
    fn the_table_agrees_with_a_set_through_evictions() {
        let mut d = Dedupe::new(64);
        let mut model = std::collections::VecDeque::new();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            // Ids from a small range, so that spans come back both before and after eviction.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = x % 200;
            let fresh = !model.contains(&i);
            assert_eq!(d.first_time(&ids(i)), fresh, "span {i}");
            if fresh {
                model.push_back(i);
                if model.len() > 64 {
                    model.pop_front();
                }
            }
            assert_eq!(d.len(), model.len());
        }
    }

    #[test]
    fn many_distinct_spans_do_not_collide() {
        let mut d = Dedupe::new(1 << 16);
        for i in 0..(1u64 << 16) {
            assert!(d.first_time(&ids(i * 7919)), "span {i} taken for another");
        }
    }
}
