//! The profiler scope: the reentrancy guard that keeps the profiler's own work (its
//! allocations, and the sample points they would move) out of the program's figures, and the
//! count of what that work allocated ([`OVERHEAD`]).

use std::cell::Cell;

use super::thread::{COUNTDOWN, THREAD, ThreadState};
use crate::sync::{AtomicU64, Ordering};

/// Whether this thread is inside the profiler's own code right now.
#[inline]
pub(crate) fn in_profiler() -> bool {
    THREAD.with(|t| t.in_profiler.get())
}

/// Whether what this thread allocates now is the profiler's: inside a profiler scope, or on a
/// thread of the profiler's own ([`mark_profiler_thread`]).
#[inline]
pub(crate) fn allocating_for_profiler() -> bool {
    THREAD.with(|t| t.in_profiler.get() || t.profiler_thread.get())
}

/// Marks the calling thread as the profiler's own for the rest of its life: its allocations
/// are never sampled, recorded or charged to a countdown. Called first thing by the drain
/// thread, before anything on it allocates.
pub(crate) fn mark_profiler_thread() {
    THREAD.with(|t| t.profiler_thread.set(true));
}

/// Bytes allocated and freed by heaptide's own code, measured with jemalloc's per-thread
/// counters across every [`ProfilerScope`].
#[derive(Debug)]
pub(crate) struct Overhead {
    pub(crate) allocated: AtomicU64,
    pub(crate) freed: AtomicU64,
}

pub(crate) static OVERHEAD: Overhead = Overhead {
    allocated: AtomicU64::new(0),
    freed: AtomicU64::new(0),
};

impl Overhead {
    /// Bytes heaptide's own code holds right now (allocated minus freed, never negative), as
    /// of the profiler scopes that have ended.
    pub(crate) fn live_bytes(&self) -> u64 {
        let a = self.allocated.load(Ordering::Relaxed);
        let f = self.freed.load(Ordering::Relaxed);
        a.saturating_sub(f)
    }

    /// [`live_bytes`](Self::live_bytes) plus what the calling thread's open profiler scope has
    /// taken so far. A report is built inside a scope, and the first one symbolizes (loading
    /// debug info into the symbol cache, tens of MiB for a large binary): without this, a
    /// report would not count what building it just took, only the next one would.
    pub(crate) fn live_bytes_now(&self) -> u64 {
        let open = THREAD.with(|t| {
            if !t.in_profiler.get() {
                return 0i128;
            }
            let (allocated, freed) = open_scope_bytes(t);
            allocated as i128 - freed as i128
        });
        (self.live_bytes() as i128 + open).max(0) as u64
    }
}

/// Runs `f`, whose allocations and frees are the program's, not the profiler's, even inside a
/// profiler scope (e.g. a drain pass giving the program's deferred blocks back to jemalloc while
/// a dump holds a scope): what `f` moves on jemalloc's counters is left out of the overhead.
pub(crate) fn not_profiler_work<R>(f: impl FnOnce() -> R) -> R {
    if !in_profiler() {
        return f();
    }
    let before = THREAD.with(read_counters);
    let result = f();
    THREAD.with(|t| {
        let after = read_counters(t);
        let (a, d) = t.excluded.get();
        t.excluded.set((
            a.wrapping_add(after.0.wrapping_sub(before.0)),
            d.wrapping_add(after.1.wrapping_sub(before.1)),
        ));
    });
    result
}

/// Drops a value allocated inside a profiler scope, inside one, so the profiler's own-memory
/// figure stays balanced.
pub(crate) fn drop_in_scope<T>(value: T) {
    let _scope = ProfilerScope::enter();
    drop(value);
}

/// Hands a value built inside a profiler scope to the program: the program gets a copy
/// allocated outside the scope (its memory, as any value it asks for), and the original is
/// freed inside the scope.
pub(crate) fn hand_out<T: Clone>(inner: T) -> T {
    let out = inner.clone();
    drop_in_scope(inner);
    out
}

/// While alive, the thread runs profiler code: its allocations are not sampled and are counted
/// as profiler overhead. Nested scopes are no-ops.
///
/// The scope also leaves the program's sampling where it was: the countdown is saved when the
/// outermost scope begins and put back when it ends, and an allocation inside that reaches the
/// slow path parks the countdown (`u64::MAX`) without touching the generator. So the program's
/// sample points, and with a seed its whole report, do not depend on what the profiler
/// allocates on its threads (a pass of the drain run by a thread whose ring was full, a dump,
/// initialisation).
#[derive(Debug)]
pub(crate) struct ProfilerScope {
    outermost: bool,
}

/// What the thread's outermost open profiler scope has allocated and freed so far, as the
/// profiler's own (the program's work inside it, [`not_profiler_work`], left out); (0, 0)
/// without jemalloc's counters.
fn open_scope_bytes(t: &ThreadState) -> (u64, u64) {
    if t.counters.get().0.is_null() {
        return (0, 0);
    }
    let (a, d) = read_counters(t);
    let (sa, sd) = t.scope_start.get();
    let (xa, xd) = t.excluded.get();
    (
        a.wrapping_sub(sa).wrapping_sub(xa),
        d.wrapping_sub(sd).wrapping_sub(xd),
    )
}

impl ProfilerScope {
    /// Enters the profiler scope on this thread.
    pub(crate) fn enter() -> Self {
        THREAD.with(|t| {
            if t.in_profiler.replace(true) {
                return ProfilerScope { outermost: false };
            }
            t.saved_countdown.set(COUNTDOWN.with(Cell::get));
            t.scope_start.set(read_counters(t));
            ProfilerScope { outermost: true }
        })
    }
}

fn read_counters(t: &ThreadState) -> (u64, u64) {
    let (mut a, mut d) = t.counters.get();
    if a.is_null() {
        match crate::backend::ctl::thread_counters() {
            Some((pa, pd)) => {
                t.counters.set((pa, pd));
                (a, d) = (pa, pd);
            }
            None => return (0, 0),
        }
    }
    // SAFETY: jemalloc's per-thread counters stay valid for the life of the thread.
    unsafe { (a.read_volatile(), d.read_volatile()) }
}

impl Drop for ProfilerScope {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        THREAD.with(|t| {
            let (allocated, freed) = open_scope_bytes(t);
            t.excluded.set((0, 0));
            OVERHEAD.allocated.fetch_add(allocated, Ordering::Relaxed);
            OVERHEAD.freed.fetch_add(freed, Ordering::Relaxed);
            t.in_profiler.set(false);
            COUNTDOWN.with(|c| c.set(t.saved_countdown.get()));
        });
    }
}
