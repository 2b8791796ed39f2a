//! Per-thread state: the hot countdown, the cold sampling state, the thread's ring slot and
//! sampled-only cache. The profiler scope that reads and sets part of it is in [`super::scope`].
//!
//! Only [`COUNTDOWN`] is touched by an unsampled allocation: a `const`-initialised `Cell<u64>`
//! with no destructor, i.e. one `sub` on an `fs:`-relative memory operand. Everything else is
//! read on the sampling path only.
//!
//! The slot is released by the destructor of a separate thread-local ([`SlotOwner`]), so the
//! hot and cold cells themselves never have a destructor and stay usable during thread
//! teardown: an allocation from another thread-local's destructor after the slot is gone is
//! still sampled, its event in an overflow node and its id from the shared counter of
//! slotless threads (`registry::orphan_id`), and a sampled free then goes to the deferred-free
//! stack.

use std::cell::Cell;

use crate::backend::sampled_arena::Cache;
use crate::buffer::event::Event;
use crate::buffer::registry::Slot;
use crate::sample::scope::ProfilerScope;
use crate::sample::weight::Rng;
use crate::sync::{AtomicU64, Ordering};

thread_local! {
    /// Bytes this thread may still allocate before its next sample point. An allocation
    /// larger than what is left (the subtraction borrows, leaving it wrapped around) takes the
    /// slow path, which always sets it again. Starts at 0 so a thread's first allocation
    /// initialises the thread (and, for the first thread, the profiler).
    pub(crate) static COUNTDOWN: Cell<u64> = const { Cell::new(0) };

    pub(super) static THREAD: ThreadState = const { ThreadState::new() };

    static SLOT_OWNER: SlotOwner = const { SlotOwner };
}

/// The cold per-thread state.
pub(super) struct ThreadState {
    pub(super) in_profiler: Cell<bool>,
    /// Generator state; `None` until the thread first samples.
    rng: Cell<Option<Rng>>,
    slot: Cell<*const Slot<Event>>,
    slot_status: Cell<SlotStatus>,
    /// jemalloc's per-thread allocated/deallocated counters (null until looked up).
    pub(super) counters: Cell<(*const u64, *const u64)>,
    /// This thread's stack, `(lowest, highest)` address; `(0, 0)` until the thread samples.
    stack: Cell<(usize, usize)>,
    /// The `heaptide::testing` scope tracking this thread's allocations (0: none).
    scope: Cell<u64>,
    /// The label set this thread's samples carry (`label::table`; 0: none).
    label: Cell<u32>,
    /// Bytes allocated and freed inside the current profiler scope on the program's behalf
    /// ([`super::scope::not_profiler_work`]), left out of the scope's overhead when it ends.
    pub(super) excluded: Cell<(u64, u64)>,
    /// The thread's sampled-only jemalloc cache, made with the slot and destroyed with it.
    cache: Cell<Cache>,
    /// jemalloc's counters when the thread's outermost open profiler scope began.
    pub(super) scope_start: Cell<(u64, u64)>,
    /// The program's countdown while a profiler scope is open: the scope leaves it as it was
    /// (see [`ProfilerScope`]).
    pub(super) saved_countdown: Cell<u64>,
    /// A thread of the profiler's own (the drain thread): nothing it allocates is sampled or
    /// recorded, even outside a profiler scope.
    pub(super) profiler_thread: Cell<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotStatus {
    /// Never asked for one.
    None,
    /// Holds `slot`.
    Owned,
    /// The registry had no slot to give (all 65,535 in use, or no memory). Not retried.
    Unavailable,
    /// The thread is exiting and gave its slot back.
    Gone,
}

impl ThreadState {
    const fn new() -> Self {
        Self {
            in_profiler: Cell::new(false),
            rng: Cell::new(None),
            slot: Cell::new(std::ptr::null()),
            slot_status: Cell::new(SlotStatus::None),
            counters: Cell::new((std::ptr::null(), std::ptr::null())),
            stack: Cell::new((0, 0)),
            scope: Cell::new(0),
            label: Cell::new(0),
            excluded: Cell::new((0, 0)),
            cache: Cell::new(Cache::NONE),
            scope_start: Cell::new((0, 0)),
            saved_countdown: Cell::new(0),
            profiler_thread: Cell::new(false),
        }
    }
}

/// Releases the thread's slot and destroys its sampled cache at thread exit.
struct SlotOwner;

impl Drop for SlotOwner {
    fn drop(&mut self) {
        THREAD.with(|t| {
            let slot = t.slot.replace(std::ptr::null());
            t.slot_status.set(SlotStatus::Gone);
            // Later sampled frees on this thread (other thread-locals' destructors) go straight
            // to the arena.
            t.cache.replace(Cache::NONE).destroy();
            if !slot.is_null() {
                // SAFETY: `slot` came from the global registry, whose slots live forever.
                crate::buffer::queues::registry().release(unsafe { &*slot });
                crate::buffer::queues::wake();
            }
        });
    }
}

/// Sets the program's countdown on this thread: the live one, or, inside a profiler scope, the
/// one the scope restores when it ends.
fn set_countdown(value: u64) {
    THREAD.with(|t| {
        if t.in_profiler.get() {
            t.saved_countdown.set(value);
        } else {
            COUNTDOWN.with(|c| c.set(value));
        }
    });
}

/// Re-arms the countdown after the thread crossed a sample point with an allocation of `size`
/// bytes, and says whether that allocation is sampled.
///
/// A thread's countdown starts at 0, so its first allocation always arrives here before the
/// thread has drawn any distance: that first visit draws the initial distance and charges this
/// allocation against it like any other (sampled only if it reaches the point), so a thread's
/// first allocation is not favoured. The generator is only ever touched here and when a
/// tracking scope ends, never for the profiler's own allocations (see
/// [`ProfilerScope`]), so "no generator yet" means exactly "no distance drawn yet", even for
/// the allocation that initialises the profiler (initialisation allocates in a scope).
pub(crate) fn rearm_countdown(mean: u64, seed: Option<u64>, size: usize) -> bool {
    THREAD.with(|t| {
        let (mut rng, first) = match t.rng.get() {
            Some(rng) => (rng, false),
            None => (Rng::new(thread_seed(seed)), true),
        };
        let mut next = rng.next_countdown(mean);
        let sampled = if first {
            if let Some(left) = next.checked_sub(size as u64) {
                next = left;
                false
            } else {
                next = rng.next_countdown(mean);
                true
            }
        } else {
            true
        };
        t.rng.set(Some(rng));
        COUNTDOWN.with(|c| c.set(next));
        sampled
    })
}

/// The tracking scope of this thread (0: none). Read on the slow path only.
#[inline]
pub(crate) fn tracking_scope() -> u64 {
    THREAD.with(|t| t.scope.get())
}

/// The label set of this thread's samples (0: none). Read on the sampling path only.
#[inline]
pub(crate) fn label() -> u32 {
    THREAD.with(|t| t.label.get())
}

/// Makes `set` this thread's label set and returns the previous one.
pub(crate) fn set_label(set: u32) -> u32 {
    THREAD.with(|t| t.label.replace(set))
}

/// Makes `scope` (0: none) this thread's tracking scope and returns the previous one. While a
/// scope is set the countdown stays at 0, so every allocation takes the slow path and is
/// recorded; when it is cleared the thread resumes sampling with a fresh distance to its next
/// sample point (the process is memoryless, so the estimate stays unbiased).
pub(crate) fn set_tracking_scope(
    scope: u64,
    sampling: crate::config::Sampling,
    seed: Option<u64>,
) -> u64 {
    let previous = THREAD.with(|t| t.scope.replace(scope));
    let countdown = match (scope, sampling) {
        (0, crate::config::Sampling::MeanBytes(mean)) => THREAD.with(|t| {
            let mut rng = t.rng.get().unwrap_or_else(|| Rng::new(thread_seed(seed)));
            let next = rng.next_countdown(mean);
            t.rng.set(Some(rng));
            next
        }),
        (0, crate::config::Sampling::Off) => u64::MAX,
        _ => 0,
    };
    set_countdown(countdown);
    previous
}

// === all-threads tracking scopes (`heaptide::testing`) ===

/// The all-threads scope running now (0: none): threads that start while it is set record into
/// it ([`inherit`]).
static ALL_THREADS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The all-threads scope this thread joined when it started (0: none).
    static ADOPTED: Cell<u64> = const { Cell::new(0) };
    /// Whether this thread has allocated through the slow path before (every thread's first
    /// allocation does).
    static SEEN: Cell<bool> = const { Cell::new(false) };
}

/// Makes `scope` the all-threads scope that threads starting from now on join (0: none).
pub(crate) fn set_all_threads_scope(scope: u64) {
    ALL_THREADS.store(scope, Ordering::Release);
}

/// The all-threads scope running now (0: none).
pub(crate) fn all_threads_scope() -> u64 {
    ALL_THREADS.load(Ordering::Relaxed)
}

/// Whether `scope` is the all-threads scope this thread joined when it started; if so, the
/// thread leaves it (its own scope replaces it).
pub(crate) fn forget_adopted(scope: u64) -> bool {
    if scope == ADOPTED.get() {
        ADOPTED.set(0);
        return true;
    }
    false
}

/// The scope an allocation of this thread records into, given the thread's own (`own`).
/// Called on the allocation slow path only (a sample point crossed, a tracked thread, a
/// thread's first allocation), never on the unsampled fast path: a thread starting while an
/// all-threads scope runs joins it at its first allocation, and a thread that joined one
/// leaves it at its first allocation after it ended.
#[inline]
pub(crate) fn inherit(own: u64) -> u64 {
    let all = ALL_THREADS.load(Ordering::Acquire);
    let fresh = !SEEN.replace(true);
    if own != 0 {
        if all != own && ADOPTED.get() == own {
            ADOPTED.set(0);
            let config = crate::state::config();
            set_tracking_scope(0, config.sampling, config.seed);
            return 0;
        }
        return own;
    }
    if all != 0 && fresh {
        let config = crate::state::config();
        set_tracking_scope(all, config.sampling, config.seed);
        ADOPTED.set(all);
        return all;
    }
    0
}

// === generators, slots, caches ===

/// Seeds differ per thread: the configured seed (or the clock) mixed with a thread counter.
fn thread_seed(seed: Option<u64>) -> u64 {
    static THREADS: AtomicU64 = AtomicU64::new(0);
    let n = THREADS.fetch_add(1, Ordering::Relaxed);
    let base = seed.unwrap_or_else(|| {
        crate::state::now_ns() ^ THREAD.with(|t| t as *const ThreadState as u64)
    });
    base ^ crate::sample::weight::splitmix64(n)
}

/// The thread's ring slot, taken from the registry on first use. `None` when the thread is
/// exiting or no slot can be had. Taking a slot may allocate (ring, destructor registration,
/// stack bounds), so that branch runs in a [`ProfilerScope`]; the common case is a cell read.
pub(crate) fn slot() -> Option<&'static Slot<Event>> {
    THREAD.with(|t| match t.slot_status.get() {
        // SAFETY: registry slots live for the whole process.
        SlotStatus::Owned => Some(unsafe { &*t.slot.get() }),
        SlotStatus::Unavailable | SlotStatus::Gone => None,
        SlotStatus::None => {
            let _scope = ProfilerScope::enter();
            // Register the destructor that will give the slot back; if the thread is already
            // tearing down its thread-locals this fails and we take no slot.
            if SLOT_OWNER.try_with(|_| ()).is_err() {
                t.slot_status.set(SlotStatus::Gone);
                return None;
            }
            match crate::buffer::queues::registry().acquire() {
                Some(slot) => {
                    t.stack.set(current_stack().unwrap_or((0, 0)));
                    t.cache.set(Cache::create().unwrap_or(Cache::NONE));
                    t.slot.set(slot);
                    t.slot_status.set(SlotStatus::Owned);
                    Some(slot)
                }
                None => {
                    t.slot_status.set(SlotStatus::Unavailable);
                    None
                }
            }
        }
    })
}

/// In the child of `fork()`, on the forking thread (the child's only thread): its sampled cache
/// was made before the fork and must never be destroyed in the child (see [`Cache::abandon`]);
/// it is flushed and abandoned, and the thread gets a fresh one.
pub(crate) fn renew_cache_after_fork() {
    let _ = THREAD.try_with(|t| {
        let old = t.cache.get();
        if old != Cache::NONE {
            old.abandon();
            t.cache.set(Cache::create().unwrap_or(Cache::NONE));
        }
    });
}

/// This thread's sampled-only jemalloc cache ([`Cache::NONE`] before the thread has a slot,
/// after it gave it back, or when jemalloc had no cache to give).
#[inline]
pub(crate) fn cache() -> Cache {
    THREAD.with(|t| t.cache.get())
}

/// This thread's stack bounds, known once the thread has a slot (for the frame-pointer walk).
#[cfg_attr(
    not(heaptide_frame_pointers),
    allow(dead_code, reason = "only the frame-pointer walk needs the bounds")
)]
pub(crate) fn stack_bounds() -> Option<(usize, usize)> {
    let (low, high) = THREAD.with(|t| t.stack.get());
    (high > low).then_some((low, high))
}

/// Asks the thread library where this thread's stack is. Runs once per sampling thread, in
/// the profiler scope (glibc may read /proc/self/maps for the main thread, with libc's malloc).
fn current_stack() -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialised by pthread_getattr_np before use and destroyed after;
    // the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        (rc == 0 && !addr.is_null()).then(|| (addr as usize, addr as usize + size))
    }
}
