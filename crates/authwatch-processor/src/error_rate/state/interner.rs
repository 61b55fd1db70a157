//! Interned strings (endpoints, services, error keys): series and groups are keyed by small
//! ids, and a cap keeps memory bounded whatever the spans carry.

use std::collections::HashMap;

/// The id of every string past an [`Interner`]'s cap.
pub(super) const OVERFLOW: u32 = u32::MAX;

/// The name of the [`OVERFLOW`] id: endpoints, services or error keys past their cap.
const OTHER: &str = "{other}";

/// An interned string table: lookups by `&str` never allocate. With a `cap`, strings beyond it
/// get [`OVERFLOW`] instead of an id, so memory stays bounded whatever the spans carry.
#[derive(Debug, Default)]
pub(super) struct Interner {
    ids: HashMap<String, u32>,
    pub(super) names: Vec<String>,
    /// Most strings kept; 0 = no limit.
    cap: usize,
}

impl Interner {
    pub(super) fn with_cap(cap: usize) -> Self {
        Interner {
            cap,
            ..Default::default()
        }
    }

    pub(super) fn get_or_insert(&mut self, s: &str) -> u32 {
        if let Some(id) = self.ids.get(s) {
            return *id;
        }
        if self.cap > 0 && self.names.len() >= self.cap {
            return OVERFLOW;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_owned());
        self.ids.insert(s.to_owned(), id);
        id
    }
    #[cfg(test)]
    pub(super) fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }
    pub(super) fn name(&self, id: u32) -> &str {
        if id == OVERFLOW {
            return OTHER;
        }
        self.names.get(id as usize).map_or("", String::as_str)
    }
}
