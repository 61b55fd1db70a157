//! Spans counted recently, so that a span that comes back is not counted twice.
//!
//! An OTLP client whose request was refused (`UNAVAILABLE`, `429`) sends the same request again,
//! and a pipeline that has several consumers may have refused it while the connector had
//! already counted it. The connector remembers the last `dedupe_spans` spans it counted, by a
//! 64-bit fingerprint of `(trace_id, span_id)`, and skips a span it finds there.
//!
//! Memory is bounded: a ring of fingerprints (8 bytes each) in counting order and a hash set of
//! the same fingerprints (about 18 bytes each, hashbrown's buckets at their load factor), so at
//! most about 26 bytes per remembered span; the default 65,536 spans take at most about 1.7 MB,
//! allocated as spans arrive. The oldest fingerprint is forgotten first. Per span: one keyed
//! multiply-fold hash of 24 bytes, one set lookup and, for a new span, one insert and one
//! removal.
//!
//! The fingerprint is keyed with a random per-process seed, so a sender cannot make its spans
//! collide with another sender's on purpose; two distinct spans collide by chance with
//! probability about `dedupe_spans / 2^64` per span (below one in 10^14 for the default). A span
//! without ids (an empty `trace_id` and `span_id`) is always counted.

use rustc_hash::FxHashSet;

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
    seen: FxHashSet<u64>,
    seed: [u64; 3],
}

impl Dedupe {
    /// Remembers up to `capacity` spans; `0` remembers none (every span is counted).
    pub fn new(capacity: usize) -> Self {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new();
        Dedupe {
            capacity,
            ring: Vec::new(),
            next: 0,
            seen: FxHashSet::default(),
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
        let h = fold(h ^ ids.span, self.seed[2]);
        if !self.seen.insert(h) {
            return false;
        }
        if self.ring.len() < self.capacity {
            self.ring.push(h);
        } else {
            let old = std::mem::replace(&mut self.ring[self.next], h);
            self.seen.remove(&old);
            self.next = (self.next + 1) % self.capacity;
        }
        true
    }

    /// Spans remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.seen.len()
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

    #[test]
    fn many_distinct_spans_do_not_collide() {
        let mut d = Dedupe::new(1 << 16);
        for i in 0..(1u64 << 16) {
            assert!(d.first_time(&ids(i * 7919)), "span {i} taken for another");
        }
    }
}
