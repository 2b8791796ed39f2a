//! The label sets a sample can carry, interned: a sample records one `u32`, the id of the set of
//! `key=value` pairs its thread had when it was taken, and reports turn ids back into pairs.
//!
//! Set 0 is the empty set (an unlabelled sample). A set is made by adding one pair to a set
//! (nesting): a pair whose key the set has already replaces that key's value, so the inner
//! label wins. Sets are canonical (pairs ordered by key), so two orders of nesting that give
//! the same pairs give the same id.
//!
//! The table is bounded: at most [`MAX_SETS`] sets. Past that, adding a pair gives
//! [`OVERFLOW`], the set `heaptide.overflow=true`, and one line on stderr: bytes stay counted,
//! under that label instead of theirs. So per-label series and report rows stay bounded
//! whatever a program labels by (a request id, say).
//!
//! The table is the profiler's memory (built in a profiler scope). Its lock is a leaf: nothing
//! else is taken while it is held; it is held across `fork()` (see `runtime`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::sample::scope::ProfilerScope;
use crate::sync::{Mutex, MutexGuard};

/// Label sets kept at most (the empty set and [`OVERFLOW`] included).
pub(crate) const MAX_SETS: usize = crate::buffer::event::LABEL_SETS;
/// The set of samples labelled past [`MAX_SETS`].
pub(crate) const OVERFLOW: u32 = 1;
/// The pair [`OVERFLOW`] holds.
pub(crate) const OVERFLOW_PAIR: (&str, &str) = ("heaptide.overflow", "true");

/// A label's key and value.
pub(crate) type Pair = (Arc<str>, Arc<str>);

/// The interned pairs and sets.
#[derive(Default)]
pub(crate) struct Table {
    /// Pair ids by key, then value.
    pair_ids: HashMap<Box<str>, HashMap<Box<str>, u32>>,
    /// Pairs by id.
    pairs: Vec<Pair>,
    /// Each set's pair ids, ordered by key; by set id.
    sets: Vec<Box<[u32]>>,
    /// Set ids by their pair ids.
    set_ids: HashMap<Box<[u32]>, u32>,
    /// `(set, pair)` to the set adding the pair gives: what a nesting asks for again and again.
    nested: HashMap<(u32, u32), u32>,
    warned: bool,
}

impl Table {
    fn new() -> Self {
        let mut t = Table::default();
        t.sets.push(Box::new([]));
        t.set_ids.insert(Box::new([]), 0);
        let pair = t.pair_id(OVERFLOW_PAIR.0, OVERFLOW_PAIR.1);
        t.sets.push(Box::new([pair]));
        t.set_ids.insert(Box::new([pair]), OVERFLOW);
        t
    }

    /// The id of a pair, made if new.
    fn pair_id(&mut self, key: &str, value: &str) -> u32 {
        if let Some(&id) = self.pair_ids.get(key).and_then(|v| v.get(value)) {
            return id;
        }
        let id = self.pairs.len() as u32;
        self.pairs.push((key.into(), value.into()));
        self.pair_ids
            .entry(key.into())
            .or_default()
            .insert(value.into(), id);
        id
    }

    /// The set `set` plus `key=value` (replacing `key`'s value if `set` has one).
    fn with(&mut self, set: u32, key: &str, value: &str) -> u32 {
        let Some(base) = self.sets.get(set as usize) else {
            return set;
        };
        if set == OVERFLOW {
            return OVERFLOW;
        }
        // A pair the table has never seen makes a new set: past the bound, the overflow set.
        let known = self.pair_ids.get(key).and_then(|v| v.get(value)).copied();
        if let Some(pair) = known
            && let Some(&to) = self.nested.get(&(set, pair))
        {
            return to;
        }
        if known.is_none() && self.sets.len() >= MAX_SETS {
            return self.overflow();
        }
        let mut ids: Vec<u32> = base
            .iter()
            .copied()
            .filter(|&p| &*self.pairs[p as usize].0 != key)
            .collect();
        let pair = match known {
            Some(pair) => pair,
            None => self.pair_id(key, value),
        };
        ids.push(pair);
        ids.sort_by(|&a, &b| {
            let (pa, pb) = (&self.pairs[a as usize], &self.pairs[b as usize]);
            pa.0.cmp(&pb.0)
        });
        let to = match self.set_ids.get(ids.as_slice()) {
            Some(&to) => to,
            None if self.sets.len() >= MAX_SETS => return self.overflow(),
            None => {
                let to = self.sets.len() as u32;
                let ids: Box<[u32]> = ids.into();
                self.sets.push(ids.clone());
                self.set_ids.insert(ids, to);
                to
            }
        };
        self.nested.insert((set, pair), to);
        to
    }

    fn overflow(&mut self) -> u32 {
        if !self.warned {
            self.warned = true;
            crate::diag::stderr_line(format_args!(
                "heaptide: more than {MAX_SETS} distinct label sets; further ones are counted under {}={}",
                OVERFLOW_PAIR.0, OVERFLOW_PAIR.1
            ));
        }
        OVERFLOW
    }

    fn pairs_of(&self, set: u32) -> Vec<Pair> {
        self.sets
            .get(set as usize)
            .map(|ids| {
                ids.iter()
                    .map(|&p| self.pairs[p as usize].clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn lock() -> MutexGuard<'static, Option<Table>> {
    TABLE.lock()
}

/// The set `set` with `key=value` added (the inner value wins for a key `set` already has).
pub(crate) fn with(set: u32, key: &str, value: &str) -> u32 {
    let _scope = ProfilerScope::enter();
    lock().get_or_insert_with(Table::new).with(set, key, value)
}

/// The pairs of each set, by id (index 0: the empty set). Copied under the lock once per
/// report.
pub(crate) fn all() -> Vec<Vec<Pair>> {
    let guard = lock();
    match guard.as_ref() {
        Some(t) => (0..t.sets.len() as u32).map(|s| t.pairs_of(s)).collect(),
        None => vec![Vec::new()],
    }
}

/// The lock, for the fork handlers.
pub(crate) fn fork_lock() -> MutexGuard<'static, Option<Table>> {
    lock()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(t: &Table, set: u32) -> Vec<(String, String)> {
        t.pairs_of(set)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kv(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn nesting_adds_and_the_inner_value_wins() {
        let mut t = Table::new();
        let cache = t.with(0, "component", "cache");
        assert_eq!(pairs(&t, cache), [kv("component", "cache")]);
        let insert = t.with(cache, "op", "insert");
        assert_eq!(
            pairs(&t, insert),
            [kv("component", "cache"), kv("op", "insert")]
        );
        let db = t.with(insert, "component", "db");
        assert_eq!(pairs(&t, db), [kv("component", "db"), kv("op", "insert")]);
        // Same pairs in another order: the same set.
        let op = t.with(0, "op", "insert");
        let other_way = t.with(op, "component", "db");
        assert_eq!(other_way, db);
        // Asking again gives the same id; re-adding a pair the set has changes nothing.
        assert_eq!(t.with(0, "component", "cache"), cache);
        assert_eq!(t.with(cache, "component", "cache"), cache);
    }

    #[test]
    fn past_the_bound_labels_go_to_the_overflow_set() {
        let mut t = Table::new();
        let mut ids = Vec::new();
        for i in 0..MAX_SETS + 10 {
            ids.push(t.with(0, "request", &i.to_string()));
        }
        // The empty set and the overflow set take two of the places.
        let kept = MAX_SETS - 2;
        assert!(ids[..kept].iter().all(|&id| id > OVERFLOW));
        assert!(ids[kept..].iter().all(|&id| id == OVERFLOW));
        assert_eq!(t.sets.len(), MAX_SETS);
        assert_eq!(pairs(&t, OVERFLOW), [kv("heaptide.overflow", "true")]);
        // Known sets still resolve, and the overflow set stays itself when nested.
        assert_eq!(t.with(0, "request", "0"), ids[0]);
        assert_eq!(t.with(OVERFLOW, "component", "x"), OVERFLOW);
        assert!(t.pairs.len() <= MAX_SETS + 1);
    }
}
