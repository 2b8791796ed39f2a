//! Named points in time: a report kept under a name ([`crate::mark`]), for a later report to be
//! compared with ([`crate::diff_since`]).
//!
//! A mark is a whole report (its top sites with their frames, about 100 KiB at most), kept as
//! the profiler's own memory (it counts in `profiler.overhead_bytes`). At most [`MAX_MARKS`]
//! are kept: marking a new name past that forgets the oldest mark; marking a name again
//! replaces its report.

use super::{Diff, Report};
use crate::sample::scope::{ProfilerScope, drop_in_scope, hand_out};
use crate::sync::{Mutex, MutexGuard};

/// Marks kept at most.
pub(crate) const MAX_MARKS: usize = 16;

/// The marks, oldest first. A leaf lock: nothing else is taken while it is held.
static MARKS: Mutex<Vec<(String, Report)>> = Mutex::new(Vec::new());

fn lock() -> MutexGuard<'static, Vec<(String, Report)>> {
    MARKS.lock()
}

/// Takes a report now and keeps it under `name`.
pub(crate) fn mark(name: &str) {
    let report = super::read_full();
    let _scope = ProfilerScope::enter();
    let name = name.to_string();
    let forgotten = {
        let mut marks = lock();
        let old = match marks.iter().position(|(n, _)| *n == name) {
            Some(i) => Some(marks.remove(i)),
            None if marks.len() >= MAX_MARKS => Some(marks.remove(0)),
            None => None,
        };
        marks.push((name, report));
        old
    };
    // Freed after the lock is let go (still in the profiler scope).
    drop(forgotten);
}

/// A copy of the report kept under `name`.
pub(crate) fn marked(name: &str) -> Option<Report> {
    let copy = {
        let _scope = ProfilerScope::enter();
        let marks = lock();
        marks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
    };
    copy.map(hand_out)
}

/// A report taken now, compared with the one kept under `name`; `None` if there is no such
/// mark (no report is taken then).
pub(crate) fn diff_since(name: &str) -> Option<Diff> {
    if !lock().iter().any(|(n, _)| n == name) {
        return None;
    }
    let now = super::read_full();
    let diff = {
        let _scope = ProfilerScope::enter();
        let marks = lock();
        // The mark may have been replaced or forgotten meanwhile by another thread.
        marks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, base)| now.diff(base))
    };
    drop_in_scope(now);
    diff.map(hand_out)
}

/// The marks' names and times (milliseconds since the Unix epoch), oldest first.
pub(crate) fn list() -> Vec<(String, u64)> {
    let names = {
        let _scope = ProfilerScope::enter();
        lock()
            .iter()
            .map(|(n, r)| (n.clone(), r.timestamp))
            .collect::<Vec<_>>()
    };
    hand_out(names)
}

/// The marks' lock, held across `fork()` by the fork handlers.
pub(crate) fn fork_lock() -> MutexGuard<'static, Vec<(String, Report)>> {
    lock()
}
