//! Leak and peak assertions for test suites.
//!
//! Install the allocator once in the test binary (the test file, or a `tests/common` module it
//! includes), then check any closure:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
//!
//! # fn handle_request(_: &str) -> String { String::new() }
//! #[test]
//! fn handler_does_not_leak() {
//!     heaptide::testing::assert_no_leaks(|| handle_request("GET /"));
//! }
//! # fn main() {}
//! ```
//!
//! # How it works
//!
//! [`track`] gives the closure a tracking scope of its own: while it runs, **every** allocation
//! of the calling thread is recorded (with its stack) and tagged with the scope; a free of such
//! a block, on any thread, is recorded too. What is still live when the closure returns has
//! leaked from it. Nothing else changes: other threads keep their normal sampling, so
//!
//! - tests running in parallel (the default `cargo test` runner gives each test its own
//!   thread) never see each other's allocations, and untracked tests are not slowed down;
//! - the rest of the process keeps its sampled profile; a tracked allocation enters it with
//!   weight 1 (it was recorded with certainty), so the estimates stay unbiased.
//!
//! The closure's return value is dropped inside the scope (a result you throw away is not a
//! leak). Tracked blocks are recorded exactly; the figures are not estimates.
//!
//! # Threads spawned inside the closure
//!
//! By default tracking follows the calling thread only (so tests running in parallel never see
//! each other); [`Options::all_threads`] also tracks every thread that starts while the closure
//! runs (a multi-threaded runtime's workers, a pool), process-wide. By default:
//! - allocations made **by** a thread the closure spawns are not attributed to the closure (call
//!   `track` inside that thread to check it);
//! - blocks the closure allocated and a spawned thread (or any other thread) freed before
//!   `track` returned count as freed;
//! - spawning allocates on the calling thread (the thread's handle and result slot): joined
//!   threads give those back, so `spawn` + `join` inside the closure is leak-free, while a thread
//!   left running (never joined) shows up as a leak of its handle, which it is until it exits.
//!
//! # Ignoring intended allocations
//!
//! Four ways, documented on each:
//! - [`untracked`]: a scope guard inside the closure; what it allocates is not tracked (a global
//!   cache filled on purpose, a lazy static, a log buffer);
//! - [`Tracking::ignoring`]: after the fact, drop the leak sites whose stack has a frame
//!   matching a predicate (e.g. a function name), then assert on what remains;
//! - [`Tracking::ignoring_stacks`] and [`Options::ignore_stacks`]: the same with a predicate
//!   over the whole stack (frames in order);
//! - [`Options::leak_limit_per_site`]: let each call site keep up to a number of bytes; the
//!   process-wide default is `HEAPTIDE_TEST_LEAK_LIMIT` (a byte size such as `4KiB`; a bad
//!   value gives one stderr line and 0).
//!
//! # Lazy statics and other first-use allocations
//!
//! A `LazyLock`, `OnceLock`, `thread_local!` or a cache filled on its first use allocates in
//! whichever tracked closure touches it first, and what it allocates lives on: that closure
//! "leaks" it, and the result depends on the order the tests run in. Fixes, best first:
//! - check the code with [`assert_no_growth`], which runs warm-up calls and fails only on memory
//!   that keeps growing with the calls;
//! - touch the static once before the check (a warm-up call outside `assert_no_leaks`);
//! - allocate it under [`untracked`], or filter it out ([`Options::ignore_stacks`]).
//!
//! # Limits
//!
//! - One scope per thread at a time: `track` inside `track` on the same thread panics.
//! - Each tracked allocation costs a stack capture (about a microsecond with frame pointers,
//!   see the crate docs); the drain keeps each scope's allocation and free times until it ends,
//!   to find the peak (24 bytes per event, counted as profiler memory).
//! - Profiling must be on (`HEAPTIDE_SAMPLE` not `off`) and heaptide must be the global
//!   allocator of the test binary; otherwise `track` panics saying so.

mod assert;
mod tracking;

pub use assert::{
    LEAK_LIMIT_VAR, Options, assert_no_growth, assert_no_leaks, assert_peak_below, options,
};
pub use tracking::{SiteBytes, Tracking, track, untracked};
