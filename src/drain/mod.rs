//! The drain: one thread, started by the first sample, that empties the rings into the
//! aggregate. Reports and `flush()` run the same pass on the caller's thread under the same
//! lock, so a report always includes every event pushed before it was asked for.
//!
//! The allocation path never takes the drain lock: it only pushes to its own ring, to the
//! lock-free stacks, or bumps counters. The drain and report callers run inside a
//! [`ProfilerScope`], so their own allocations are neither sampled nor counted as the user's.

pub(crate) mod aggregate;
pub(crate) mod ledger;
pub(crate) mod order;
pub(crate) mod peak;
pub(crate) mod room;
pub(crate) mod scope;

use std::time::{Duration, Instant};

use crate::backend::sampled_arena::{self, Header};
use crate::buffer::event::Record;
use crate::buffer::queues::{self, DEFERRED, OVERFLOW, OVERFLOW_NODES, REGISTRY, wake};
use crate::buffer::stack::Node;
use crate::sample::scope::ProfilerScope;
use crate::sync::{AtomicU8, AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering};

use aggregate::Aggregate;
use order::{DeferredFree, Queues};

/// How often the drain wakes by itself.
const PASS_INTERVAL: Duration = Duration::from_millis(100);
/// An event rate at which the drain thread polls instead of parking: one per this many ns.
const POLL_RATE_NS: u128 = 1_000;
/// How long the drain thread keeps polling after it last saw that rate.
const POLL_GRACE: Duration = Duration::from_micros(200);
/// The drain thread's sleep between polls.
const POLL_SLEEP: Duration = Duration::from_micros(20);
/// Bytes of the blocks on [`DEFERRED`] (their frees not yet recorded, so not yet given back).
pub(crate) static DEFERRED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The deferred stack's mark: a thread whose free finds this many bytes waiting helps the
/// drain or yields until they are given back. See [`defer`].
pub(crate) const DEFERRED_MARK: usize = 32 << 20;

/// Puts a sampled block whose free could not be queued (its thread's ring full even after
/// helping, or no ring) on the deferred stack, then waits while the stack holds
/// [`DEFERRED_MARK`] bytes or more: runs a full pass if the drain lock is free (which records
/// the frees and gives the blocks back), else yields to whoever holds it; never waits on the
/// lock. Without the mark, threads freeing faster than the drain applies events kept the
/// freed memory from jemalloc for as long as they ran: 16 threads replacing blocks of a
/// 128 MiB heap in exact mode peaked at 0.76-1.11 GiB after 3.4 M allocations. Profiler code
/// (which may hold the drain lock) only pushes.
///
/// # Safety
/// `header` is a sampled block the program freed, with its `id`, `size` and `freed_ns` set;
/// nobody else touches it.
pub(crate) unsafe fn defer(header: *mut Header) {
    // SAFETY: per the contract, the block is ours until pushed.
    let size = unsafe { (*header).size } as usize;
    DEFERRED_BYTES.fetch_add(size, Ordering::Relaxed);
    // SAFETY: per the contract; `pass` takes it, records the free and releases the block.
    unsafe { DEFERRED.push(header) };
    wake();
    if crate::sample::scope::in_profiler() {
        return;
    }
    wait_below(&DEFERRED_BYTES, DEFERRED_MARK, || {
        WAITING.load(Ordering::Relaxed) == 0 && flush_counting().is_some()
    });
}

/// While `backlog` is at `mark` or above: wakes the drain, runs `help` (a pass, if the drain
/// lock is free; `false` if it could not) or yields. Counts the wait in [`WAITS`].
fn wait_below(backlog: &AtomicUsize, mark: usize, help: impl Fn() -> bool) {
    if backlog.load(Ordering::Relaxed) < mark {
        return;
    }
    WAITS.fetch_add(1, Ordering::Relaxed);
    while backlog.load(Ordering::Relaxed) >= mark {
        wake();
        if !help() {
            std::thread::yield_now();
        }
    }
}

/// Times a thread found a backlog at its mark ([`backpressure`], [`defer`]) and waited for the
/// drain: how often the program ran ahead of the profiler.
pub(crate) static WAITS: AtomicU64 = AtomicU64::new(0);
/// Sampled mode's backlog mark: a thread that finds this many overflow nodes waiting (about
/// 600 KiB) helps the drain or yields until the backlog is under it. See [`backpressure`].
pub(crate) const SAMPLED_BACKLOG_MARK: usize = 1024;
/// Exact mode's backlog mark (about 40 MiB): exact mode makes every allocation an event, so
/// its backlog is allowed to absorb longer stalls of the drain before threads wait.
pub(crate) const EXACT_BACKLOG_MARK: usize = 1 << 16;

/// Backpressure instead of dropping: while `mark` or more overflow nodes wait, run a pass if
/// the drain lock is free, otherwise yield the CPU to whoever holds it (never waits on the
/// lock). Only the thread that is taking a sample and found its ring full gets here, in its
/// profiler scope; unsampled allocations never do. Dropping samples instead biased estimates
/// low (16 threads churning on 2 cores lost 78% of the samples and of the estimated bytes, in
/// `tests/sampling_under_churn.rs`), since a dropped sample's weight is lost with it.
pub(crate) fn backpressure(mark: usize) {
    wait_below(&OVERFLOW_NODES, mark, try_help);
}

static STATE: Mutex<Option<Aggregate>> = Mutex::new(None);

/// The recorded peak of the estimated live heap ([`peak`]) as of the last full pass, bytes.
static PEAK_BYTES: AtomicU64 = AtomicU64::new(0);

/// The recorded peak of the estimated live heap as of the last full pass (a report's, a
/// flush's or the drain thread's), bytes; 0 before any. Reads an atomic: no lock.
pub(crate) fn peak_bytes() -> u64 {
    PEAK_BYTES.load(Ordering::Relaxed)
}

const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
const FAILED: u8 = 3;
static STATUS: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// Starts the drain thread if it is not running. Called on the sampling path inside a
/// profiler scope; spawning allocates, which the scope keeps out of the user's numbers.
pub(crate) fn ensure_started() {
    if STATUS.load(Ordering::Relaxed) != NOT_STARTED {
        return;
    }
    if STATUS
        .compare_exchange(NOT_STARTED, STARTING, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    match spawn_profiler_thread(c"heaptide-drain", Box::new(drain_thread)) {
        Ok(()) => STATUS.store(RUNNING, Ordering::Release),
        Err(()) => {
            crate::diag::stderr_line(format_args!(
                "heaptide: could not start the drain thread; reports still work, events are drained when a report is taken"
            ));
            STATUS.store(FAILED, Ordering::Release);
        }
    }
}

/// Starts `entry` on a thread of the profiler's own, named `name` (as `ps`, `top` and
/// `/proc/<pid>/task/*/comm` show it; at most 15 bytes).
///
/// The thread is made with `pthread_create`, not `std::thread`: std's thread start-up allocates
/// on the new thread before the closure runs (the name and the stack-overflow handler's
/// bookkeeping, in `thread_start`), and nothing could mark those allocations as the profiler's.
/// Exact mode recorded them as a program site, and sampling drew them from the program's
/// sequence of thread seeds (`HEAPTIDE_SEED` runs then differed with the moment the drain
/// started). Here the thread marks itself as the profiler's before anything on it allocates.
/// `std::thread::current()` works on it (park, unpark), but has no name. Any thread of the
/// profiler's own starts this way (the HTTP server's threads too, for the same reasons).
pub(crate) fn spawn_profiler_thread(
    name: &std::ffi::CStr,
    entry: Box<dyn FnOnce() + Send>,
) -> Result<(), ()> {
    /// What the new thread runs: a thin pointer to the boxed closure.
    type Entry = Box<dyn FnOnce() + Send>;
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        crate::sample::scope::mark_profiler_thread();
        // SAFETY: `arg` is the `Box<Entry>` the spawner leaked for this thread alone, below;
        // it is taken back exactly once, here.
        let entry = unsafe { Box::from_raw(arg.cast::<Entry>()) };
        // A panic must not unwind out of an `extern "C"` function (that aborts the host): the
        // thread just ends, as a std thread would.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(*entry));
        std::ptr::null_mut()
    }
    // std's default for its threads; the drain symbolizes on this stack.
    const STACK_BYTES: usize = 2 << 20;
    let arg = Box::into_raw(Box::new(entry)).cast::<libc::c_void>();
    // SAFETY: `attr` is initialised before use and destroyed after; `start` is a valid thread
    // function and `arg` a leaked `Box<Entry>` that only the new thread takes back (or this
    // function, when no thread was made); the thread is detached (no join, its resources go
    // back to the system when it ends); `name` is NUL-terminated and copied by the call.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            drop(Box::from_raw(arg.cast::<Entry>()));
            return Err(());
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, STACK_BYTES.max(libc::PTHREAD_STACK_MIN));
        let mut thread: libc::pthread_t = std::mem::zeroed();
        let rc = libc::pthread_create(&mut thread, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            drop(Box::from_raw(arg.cast::<Entry>()));
            return Err(());
        }
        // Best effort: a thread without its name works the same.
        let _ = libc::pthread_setname_np(thread, name.as_ptr());
    }
    Ok(())
}

/// The drain thread's body: publishes its handle for [`queues::wake`], then [`run`]s.
fn drain_thread() {
    queues::set_drain_thread(Box::into_raw(Box::new(std::thread::current())));
    run();
}

/// The drain thread. It parks (a producer wakes it when its ring is half full; it wakes by
/// itself every `PASS_INTERVAL` anyway) unless events are arriving fast: at one per
/// `POLL_RATE_NS` or faster (exact mode, a tracked test; sampled mode's rates are orders of
/// magnitude lower) it polls instead, a pass every `POLL_SLEEP`, until it has seen no such
/// rate for `POLL_GRACE`. While it polls, producers do not wake it: a futex wake costs the
/// waking thread, the program's (an IPI to an idle CPU), and at exact mode's rates those wakes
/// dominated a tracked test. Polling costs the drain thread a good part of a core while it
/// lasts, which is why it needs the rate and ends after the grace period. The figures (futex
/// calls per tracked run, time per op, the drain's CPU while polling) are in
/// `docs/performance.md`, "Exact mode".
fn run() {
    step_aside();
    let mut last_end = Instant::now();
    let mut last_fast: Option<Instant> = None;
    loop {
        let polling = last_fast.is_some_and(|t| last_end.duration_since(t) < POLL_GRACE);
        if polling {
            queues::set_polling(true);
            std::thread::sleep(POLL_SLEEP);
        } else {
            queues::set_polling(false);
            std::thread::park_timeout((crate::state::hooks().max_sleep)(PASS_INTERVAL));
        }
        let start = Instant::now();
        let applied = flush_counting();
        let window = start.duration_since(last_end).as_nanos().max(1);
        last_end = Instant::now();
        let fast = match applied {
            // A busy lock: a thread whose ring filled is draining (at exact mode's rates, the
            // usual case), or a report is (then the drain polls, cheaply, until it is done).
            // Counting it as fast made tracked runs 4-6% quicker than counting it as nothing.
            None => true,
            Some(n) => n > 0 && n as u128 * POLL_RATE_NS >= window,
        };
        if fast {
            last_fast = Some(last_end);
        }
        // Outside the drain lock: a dump takes a report, which takes the lock itself; so do
        // snapshots and the leak detector's alerts.
        (crate::state::hooks().after_pass)();
        sampled_arena::decay();
    }
}

/// Puts the drain thread under `SCHED_BATCH`: the same fair share of CPU as before (its nice
/// value is unchanged), but its wake-ups no longer preempt the thread running on the CPU it
/// wakes on. A ring half full wakes the drain many times a second under a malloc-heavy load;
/// under the default policy each wake-up took a core from an allocating thread at once
/// (`docs/performance.md`, "The drain thread", has the measured difference). Nothing waits on
/// the drain's latency: a full ring makes the allocating thread drain it itself (`try_help`),
/// and reports run their own pass.
/// Unprivileged and per thread; if the call fails the drain keeps the default policy.
fn step_aside() {
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param`; pid 0 names the calling thread, and
        // SCHED_BATCH with priority 0 needs no privilege. The result is not needed: on failure
        // the thread simply stays SCHED_OTHER.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// Threads waiting in [`lock`]; allocating threads do not `try_help` while there are any, so
/// `flush`, `report` and the drain thread cannot be starved by a stream of helpers.
static WAITING: AtomicUsize = AtomicUsize::new(0);

fn lock() -> MutexGuard<'static, Option<Aggregate>> {
    WAITING.fetch_add(1, Ordering::Relaxed);
    // A panic inside a pass would be a bug, but must not take the host down with it later:
    // the lock ignores poisoning and the state stays in use.
    let guard = STATE.lock();
    WAITING.fetch_sub(1, Ordering::Relaxed);
    guard
}

/// The drain lock if it is free now (`None`: someone holds it); never waits.
fn try_lock() -> Option<MutexGuard<'static, Option<Aggregate>>> {
    STATE.try_lock()
}

/// A full pass under the held drain lock, then `f` on the aggregate; the deferred blocks are
/// given back after the lock is released. Returns the number of events applied and `f`'s
/// result. Runs in the profiler scope.
fn flushed_under<R>(
    mut state: MutexGuard<'static, Option<Aggregate>>,
    f: impl FnOnce(&mut Aggregate) -> R,
) -> (usize, R) {
    let _scope = ProfilerScope::enter();
    let agg = state.get_or_insert_with(new_aggregate);
    let (deferred, applied) = pass(agg);
    agg.tick(crate::state::now_ns());
    PEAK_BYTES.store(agg.peak().bytes as u64, Ordering::Relaxed);
    let result = f(agg);
    drop(state);
    release_deferred(deferred);
    (applied, result)
}

/// Drains everything pushed so far into the aggregate, then runs `f` on it, inside the
/// profiler scope. Deferred blocks are given back to jemalloc after the drain lock is released
/// (freeing the user's memory is not counted as the profiler's: see [`release_deferred`]).
pub(crate) fn with_flushed<R>(f: impl FnOnce(&mut Aggregate) -> R) -> R {
    flushed_under(lock(), f).1
}

/// The drain thread's pass: as `with_flushed(|_| ())`, returning how many events it applied,
/// except that it never waits for the lock (`None`: busy). Whoever holds it (a report,
/// `flush`, a thread whose ring filled) is draining already; and a drain thread asleep on the
/// lock would cost that holder a futex wake at unlock.
fn flush_counting() -> Option<usize> {
    Some(flushed_under(try_lock()?, |_| ()).0)
}

fn new_aggregate() -> Aggregate {
    let config = crate::state::config();
    Aggregate::new(config.sampling.mean_bytes(), config.site_budget)
}

/// Called by a sampling thread whose ring is full (inside its profiler scope): if nobody holds
/// the drain lock, empty the rings right here instead of dropping the sample. Never waits.
/// Returns whether a pass ran. (On a busy machine the drain thread may not get a core for a
/// while; the threads that fill rings do.)
pub(crate) fn try_help() -> bool {
    if WAITING.load(Ordering::Relaxed) > 0 {
        return false;
    }
    let Some(mut state) = try_lock() else {
        return false;
    };
    drain_rings(state.get_or_insert_with(new_aggregate));
    true
}

/// The process's queues, in the order a pass empties them ([`order`]).
static QUEUES: Queues<'static, Header> = Queues {
    registry: &REGISTRY,
    overflow: &OVERFLOW,
    overflow_nodes: &OVERFLOW_NODES,
    deferred: &DEFERRED,
};

impl DeferredFree for Header {
    unsafe fn free_record(this: *const Self) -> Record<'static> {
        // SAFETY: the caller owns the block; `defer`'s caller wrote `id` and `freed_ns` before
        // the push that published it.
        unsafe {
            Record::Free {
                id: (*this).id,
                time_ns: (*this).freed_ns,
            }
        }
    }
}

/// One pass ([`Queues::pass`]: the deferred frees are taken first, so each is settled in
/// this pass); returns the deferred blocks to release, linked through their headers, and the
/// number of events applied. Caller holds the lock.
fn pass(agg: &mut Aggregate) -> (*mut Header, usize) {
    let mut head: *mut Header = std::ptr::null_mut();
    let recorded = |block: *mut Header| {
        // SAFETY: a block whose free was just recorded is ours until released; the pass has
        // already read its link, so it can be relinked.
        unsafe {
            DEFERRED_BYTES.fetch_sub((*block).size as usize, Ordering::Relaxed);
            Header::set_next(block, head);
        }
        head = block;
    };
    // SAFETY: the caller holds the drain lock: the only consumer of every queue; the
    // sampling path makes each overflow node with `raw_alloc` and the node layout.
    let applied = unsafe { QUEUES.pass(&mut |event| agg.apply(event), recorded) };
    (head, applied)
}

/// Empties every ring and the overflow stack into the aggregate; returns the number of events
/// applied. Caller holds the lock.
fn drain_rings(agg: &mut Aggregate) -> usize {
    // SAFETY: as in `pass`.
    unsafe { QUEUES.drain_rings(&mut |event| agg.apply(event)) }
}

/// Gives deferred blocks back to jemalloc (after their frees are recorded). They are the
/// program's memory: freeing them is not profiler work, whatever scope the caller is in.
fn release_deferred(mut head: *mut Header) {
    crate::sample::scope::not_profiler_work(|| {
        while !head.is_null() {
            // SAFETY: the list was built by `pass` from blocks that are ours; read `next` first.
            unsafe {
                let next = Header::next(head);
                sampled_arena::free_unsized(head);
                head = next;
            }
        }
    });
}

// === fork ===

/// The drain lock, for the fork handlers (`runtime.rs`), which hold it across `fork()`.
pub(crate) fn fork_lock() -> MutexGuard<'static, Option<Aggregate>> {
    lock()
}

/// In the child of `fork()`: no drain thread runs there; the next sample starts one.
pub(crate) fn after_fork_child() {
    queues::set_drain_thread(std::ptr::null_mut());
    STATUS.store(NOT_STARTED, Ordering::Release);
}
