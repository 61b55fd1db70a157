//! Reading cumulative series once, by their timestamps. The same points come on the live lane
//! and again on the normal lane (see `authwatch_core::consume`), in either order, and a batch may
//! be re-sent: a point not newer than the last one read of its series adds nothing, a point from
//! before the series' last reset adds nothing, and a new start time is a reset. Counters and the
//! duration histogram are read the same way.

use std::collections::hash_map::{Entry, HashMap};

use authwatch_core::data::attr_str;
use authwatch_core::otlp::common::v1::KeyValue;

/// Series key: metric name and `(key, value)` attributes.
pub type SeriesId = (String, Vec<(String, String)>);

pub fn series_id(name: &str, attrs: &[KeyValue]) -> SeriesId {
    (
        name.to_owned(),
        attrs
            .iter()
            .map(|kv| (kv.key.clone(), attr_str(&kv.value).unwrap_or("").to_owned()))
            .collect(),
    )
}

/// How a cumulative point relates to the last one read of its series.
#[derive(Debug, PartialEq)]
pub enum Seen<V> {
    /// The series' first point: all it holds is new (counted since its producer started).
    First,
    /// A newer point of the same start time; the value last read.
    After(V),
    /// A new start time: the series started again, all it holds is new.
    Reset,
    /// Not newer than the last point read (a copy from the other lane, a re-sent batch, a late
    /// one) or from before the series' last reset: nothing new.
    Stale,
}

#[derive(Debug)]
struct Last<V> {
    start: u64,
    time: u64,
    value: V,
}

/// The last point read per cumulative series.
#[derive(Debug)]
pub struct Cumulative<V> {
    last: HashMap<SeriesId, Last<V>>,
}

impl<V> Default for Cumulative<V> {
    fn default() -> Self {
        Cumulative {
            last: HashMap::new(),
        }
    }
}

impl<V> Cumulative<V> {
    /// Reads a point of `id` (times in Unix ns, 0 when unknown); unless stale, it becomes the
    /// series' last.
    pub fn read(&mut self, id: SeriesId, start: u64, time: u64, value: V) -> Seen<V> {
        let point = Last { start, time, value };
        match self.last.entry(id) {
            Entry::Vacant(e) => {
                e.insert(point);
                Seen::First
            }
            Entry::Occupied(mut e) => {
                let last = e.get();
                let known = |t: u64| t != 0;
                let same_start = start == last.start;
                if same_start && known(time) && known(last.time) && time <= last.time {
                    return Seen::Stale;
                }
                if known(start) && known(last.start) && start < last.start {
                    return Seen::Stale;
                }
                let old = e.insert(point);
                if same_start {
                    Seen::After(old.value)
                } else {
                    Seen::Reset
                }
            }
        }
    }

    /// Whether the series was read cumulatively: its delta points (an `error_rate` connector
    /// exporting `delta` while its live lane sends cumulative points) are then left to those.
    pub fn has(&self, name: &str, attrs: &[KeyValue]) -> bool {
        !self.last.is_empty() && self.last.contains_key(&series_id(name, attrs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SeriesId {
        series_id("m", &[])
    }

    #[test]
    fn points_are_read_once_in_any_order() {
        let mut c = Cumulative::default();
        assert_eq!(c.read(id(), 1, 10, 5), Seen::First);
        assert_eq!(c.read(id(), 1, 10, 5), Seen::Stale);
        assert_eq!(c.read(id(), 1, 20, 8), Seen::After(5));
        assert_eq!(c.read(id(), 1, 15, 6), Seen::Stale);
        assert_eq!(c.read(id(), 30, 30, 1), Seen::Reset);
        assert_eq!(c.read(id(), 1, 40, 9), Seen::Stale);
        // Unknown times: every point is newer (as before timestamps were read).
        assert_eq!(c.read(series_id("n", &[]), 0, 0, 1), Seen::First);
        assert_eq!(c.read(series_id("n", &[]), 0, 0, 1), Seen::After(1));
        assert!(c.has("n", &[]));
        assert!(!c.has("o", &[]));
    }
}
