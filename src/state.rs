//! What every stage shares, at the bottom of the module graph: whether the profiler has
//! started and is on, the settings in force, when it started, and the clock.
//!
//! The allocator's first allocation initialises the profiler (`alloc.rs`): it wins the
//! `UNINIT -> BUSY` transition of [`INIT`], writes the settings, and publishes `ON` or `OFF`.
//! Everyone else only reads.

use std::cell::UnsafeCell;

use crate::config::Config;
use crate::sync::{AtomicPtr, AtomicU8, AtomicU64, Ordering};

// === start-up state ===

/// Not initialised yet.
pub(crate) const UNINIT: u8 = 0;
/// A thread is initialising.
pub(crate) const BUSY: u8 = 1;
/// Initialised, sampling on.
pub(crate) const ON: u8 = 2;
/// Initialised, sampling off.
pub(crate) const OFF: u8 = 3;
/// The profiler's start-up state: [`UNINIT`], [`BUSY`], [`ON`] or [`OFF`].
pub(crate) static INIT: AtomicU8 = AtomicU8::new(UNINIT);

struct ConfigCell(UnsafeCell<Config>);
// SAFETY: written once by the thread that wins INIT's UNINIT->BUSY transition, before it
// publishes ON/OFF with Release; read only after an Acquire load sees ON/OFF.
unsafe impl Sync for ConfigCell {}
static CONFIG: ConfigCell = ConfigCell(UnsafeCell::new(Config::DEFAULT));

/// The settings in force (the defaults until the first allocation initialises them).
pub(crate) fn config() -> Config {
    match INIT.load(Ordering::Acquire) {
        // SAFETY: see `ConfigCell`.
        ON | OFF => unsafe { *CONFIG.0.get() },
        _ => Config::DEFAULT,
    }
}

/// The settings, without looking at [`INIT`].
///
/// # Safety
/// The caller saw `ON` or `OFF` in [`INIT`] with an `Acquire` load.
#[inline]
pub(crate) unsafe fn published_config() -> Config {
    // SAFETY: see `ConfigCell`; the caller saw ON/OFF with Acquire.
    unsafe { *CONFIG.0.get() }
}

/// Writes the settings.
///
/// # Safety
/// The caller won [`INIT`]'s `UNINIT -> BUSY` transition and has not published `ON`/`OFF`
/// yet: no reader looks before that.
pub(crate) unsafe fn set_config(config: Config) {
    // SAFETY: per the caller, the only access until ON/OFF is published.
    unsafe { *CONFIG.0.get() = config };
}

/// Whether sampling is on (after start-up).
pub(crate) fn is_on() -> bool {
    INIT.load(Ordering::Acquire) == ON
}

/// When the allocator started (monotonic ns; 0 before).
static STARTED_NS: AtomicU64 = AtomicU64::new(0);

/// Notes the start: now.
pub(crate) fn mark_started() {
    STARTED_NS.store(now_ns(), Ordering::Relaxed);
}

/// When the allocator started, monotonic ns (now, if it has not).
pub(crate) fn started_ns() -> u64 {
    match STARTED_NS.load(Ordering::Relaxed) {
        0 => now_ns(),
        t => t,
    }
}

// === hooks ===

/// What the allocator and the drain call above themselves: the profiler's side effects, done
/// by `runtime.rs` (`runtime::HOOKS`), at the top of the module graph. The `Heaptide` handle
/// carries a reference to them; the first allocation publishes it here ([`set_hooks`]).
#[derive(Debug)]
pub(crate) struct Hooks {
    /// The sampled arena exists and `ON` is about to be published (the fork handlers).
    pub(crate) before_on: fn(),
    /// Start-up is over; the argument says whether profiling is on (the dump signal's handler,
    /// the exit dump, the leak detector's settings, the HTTP server, the OTLP exporter).
    pub(crate) started: fn(bool),
    /// After each pass of the drain thread, outside the drain lock (signal dumps, snapshots,
    /// alerts).
    pub(crate) after_pass: fn(),
    /// How long the drain thread may sleep, given its own pace.
    pub(crate) max_sleep: fn(std::time::Duration) -> std::time::Duration,
}

/// No side effects: what the drain sees before the allocator started the profiler.
static NO_HOOKS: Hooks = Hooks {
    before_on: || {},
    started: |_| {},
    after_pass: || {},
    max_sleep: |pace| pace,
};

/// The hooks the allocator brought (null until it starts the profiler).
static HOOKS: AtomicPtr<Hooks> = AtomicPtr::new(std::ptr::null_mut());

/// Publishes the hooks of the handle that starts the profiler.
pub(crate) fn set_hooks(hooks: &'static Hooks) {
    HOOKS.store(std::ptr::from_ref(hooks).cast_mut(), Ordering::Release);
}

/// The hooks in force (none before the allocator started the profiler).
pub(crate) fn hooks() -> &'static Hooks {
    let hooks = HOOKS.load(Ordering::Acquire);
    if hooks.is_null() {
        return &NO_HOOKS;
    }
    // SAFETY: non-null, so it came from a `&'static Hooks` in `set_hooks`; never written
    // through.
    unsafe { &*hooks }
}

// === clock ===

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall on Linux).
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
