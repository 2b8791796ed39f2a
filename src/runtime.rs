//! The profiler's side effects, at the top of the module graph: what happens once the allocator
//! has started the profiler (the fork handlers, the dump signal's handler and the exit dump,
//! the HTTP server, the OTLP exporter) and what the drain thread does after each pass (a dump
//! a signal asked for, snapshots, alerts, automatic dumps).
//!
//! The allocator and the drain sit below the modules that do these things, so they reach them
//! through [`HOOKS`]: the `Heaptide` handle carries a reference to it (`Heaptide::new` in
//! `lib.rs` wires it in), and the first allocation publishes it in `state` for the drain.

use std::time::Duration;

use crate::analysis::history::{self, History};
use crate::analysis::{self, health};
use crate::drain::{self, aggregate::Aggregate};
#[cfg(feature = "http")]
use crate::http;
#[cfg(feature = "otlp")]
use crate::otlp;
use crate::sample::scope::ProfilerScope;
use crate::sample::thread;
use crate::state::Hooks;
use crate::symbolize::{self, Symbols};
use crate::sync::MutexGuard;

/// What the allocator and the drain call above themselves.
pub(crate) static HOOKS: Hooks = Hooks {
    before_on,
    started,
    after_pass,
    max_sleep,
};

// === start-up ===

/// The sampled arena exists and profiling is about to be published as on: the fork handlers
/// go in first, so no `fork()` can see the profiler on without them.
fn before_on() {
    install_fork_handlers();
}

/// Start-up is over (`on`: profiling is on). Runs on the thread of the first allocation,
/// inside its profiler scope.
fn started(on: bool) {
    if on {
        // Allocates (in the profiler scope): fine now that ON is published.
        crate::dump::install();
        // The leak detector's settings too, now rather than on the drain thread's first
        // pass: a fork while another thread was filling a `OnceLock` would leave the child
        // waiting on it for ever (the fork handlers cover locks, not `OnceLock`s).
        let _scope = ProfilerScope::enter();
        analysis::settings::get();
    }
    #[cfg(feature = "http")]
    http::install();
    #[cfg(feature = "otlp")]
    otlp::install();
}

// === after each drain pass ===

/// Called by the drain thread after each pass, outside the drain lock: a dump takes a report,
/// which takes the lock itself; so do snapshots and the leak detector's alerts. Then the
/// automatic dumps that are due (`HEAPTIDE_DUMP_ON_PEAK`, `_ON_CRITICAL`, `_NEAR_LIMIT`).
fn after_pass() {
    crate::dump::service_signal();
    tick();
    // After `tick`, so a health transition its evaluation recorded is dumped in this pass.
    crate::dump::service_auto();
}

/// Takes a snapshot when one is due; then, if anyone listens for alerts or a threshold is set,
/// takes a report and records the alerts its health and leaks raise
/// ([`crate::report::evaluate`]); and hands pending alerts to the callback.
fn tick() {
    if history::due() {
        history::take();
        let s = analysis::settings::get();
        if health::has_callback() || s.warn.is_some() || s.critical.is_some() || s.limit.is_some() {
            crate::report::evaluate();
        }
    }
    health::deliver();
}

/// How long the drain thread may sleep between passes: its own pace, or less if snapshots are
/// due more often.
fn max_sleep(pass_interval: Duration) -> Duration {
    analysis::max_sleep(pass_interval)
}

// === fork ===

/// The locks heaptide owns, held by the forking thread from its prepare handler to its parent
/// and child handlers.
struct ForkLocks {
    drain: MutexGuard<'static, Option<Aggregate>>,
    symbols: MutexGuard<'static, Option<Symbols>>,
    history: MutexGuard<'static, History>,
    health: health::Guard,
    /// The HTTP endpoints' report cache (a leaf: nothing is taken while it is held).
    #[cfg(feature = "http")]
    http_cache: http::ForkLock,
    /// The marks (a leaf).
    marks: MutexGuard<'static, Vec<(String, crate::Report)>>,
    /// The label table (a leaf, taken last).
    labels: MutexGuard<'static, Option<crate::label::table::Table>>,
}

struct ForkGuard(std::cell::UnsafeCell<Option<ForkLocks>>);
// SAFETY: only touched by the forking thread, between its prepare and parent/child handlers.
unsafe impl Sync for ForkGuard {}
static FORK_GUARD: ForkGuard = ForkGuard(std::cell::UnsafeCell::new(None));

/// Makes `fork()` safe: every lock heaptide owns is taken before the fork (so the child never
/// inherits one locked by a thread that does not exist there) and released on both sides; the
/// child gets a fresh drain thread on its next sample. Rings of the parent's other threads
/// stay readable in the child; their events are drained there too.
///
/// The locks are taken in the order the code nests them: the drain lock (never taken while
/// one of the others is held), then the symbol cache (which also covers the `backtrace`
/// crate's global lock: heaptide resolves only under it), the snapshot history and the health
/// state (both taken while a report holds the symbol cache), then the HTTP endpoints' report
/// cache (held only to swap a pointer), then the marks (held to insert or read one), then the
/// label table (held to intern a label set or copy the table). The
/// settings (`OnceLock`s) are read while heaptide starts, before the program can fork.
/// jemalloc's own handlers run after heaptide's prepare handler and before its child handler
/// (they were registered first).
fn install_fork_handlers() {
    // SAFETY: registering handlers that are valid `extern "C" fn()` for the life of the process.
    unsafe {
        libc::pthread_atfork(
            Some(before_fork),
            Some(after_fork_parent),
            Some(after_fork_child),
        )
    };
}

extern "C" fn before_fork() {
    let drain = drain::fork_lock();
    let symbols = symbolize::lock();
    let history = history::lock();
    let health = health::lock();
    #[cfg(feature = "http")]
    let http_cache = http::fork_lock();
    let marks = crate::report::marks::fork_lock();
    let labels = crate::label::table::fork_lock();
    // SAFETY: see `ForkGuard`.
    unsafe {
        *FORK_GUARD.0.get() = Some(ForkLocks {
            drain,
            symbols,
            history,
            health,
            #[cfg(feature = "http")]
            http_cache,
            marks,
            labels,
        })
    };
}

/// Releases the locks in the reverse order.
fn release_fork_locks() {
    // SAFETY: see `ForkGuard`.
    if let Some(locks) = unsafe { (*FORK_GUARD.0.get()).take() } {
        let ForkLocks {
            drain,
            symbols,
            history,
            health,
            #[cfg(feature = "http")]
            http_cache,
            marks,
            labels,
        } = locks;
        drop(labels);
        drop(marks);
        #[cfg(feature = "http")]
        drop(http_cache);
        drop(health);
        drop(history);
        drop(symbols);
        drop(drain);
    }
}

extern "C" fn after_fork_parent() {
    release_fork_locks();
}

extern "C" fn after_fork_child() {
    release_fork_locks();
    // jemalloc's own child handler has run (it was registered first), so jemalloc is usable.
    thread::renew_cache_after_fork();
    drain::after_fork_child();
}
