//! The tracked-run comparison, dhat side: the closure of `tracked_work.rs` under dhat-rs's
//! testing mode. Driven by `benches/vs_dhat.rs`; see `tracked_work.rs` for the command line and
//! output.
//!
//! - `--variant per-run` (default): each run inside its own
//!   `dhat::Profiler::builder().testing().build()` profiler, built before and dropped after
//!   (what a test using dhat pays: dhat allows one profiler at a time, so each test builds its
//!   own); the leak check is `dhat::HeapStats::get()` before and after the closure.
//! - `--variant one-profiler`: one profiler for the whole process; only the closure and the
//!   `HeapStats` check are timed (dhat's profiler construction and drop left out).

use std::time::Instant;

#[global_allocator]
static A: dhat::Alloc = dhat::Alloc;

#[path = "tracked_work.rs"]
mod tracked_work;

use tracked_work::Tracked;

/// The closure with dhat's leak check around it; a profiler must be running.
fn checked_closure() -> (u64, u64) {
    let mut closure_ns = 0;
    let before = dhat::HeapStats::get();
    tracked_work::timed_work(&mut closure_ns);
    let after = dhat::HeapStats::get();
    assert_eq!(
        after.curr_blocks,
        before.curr_blocks,
        "the tracked closure leaked {} blocks ({} bytes)",
        after.curr_blocks as i64 - before.curr_blocks as i64,
        after.curr_bytes as i64 - before.curr_bytes as i64
    );
    let allocs = after.total_blocks - before.total_blocks;
    assert!(allocs > 100, "too few allocations tracked: {allocs}");
    (closure_ns, allocs)
}

fn main() {
    let o = tracked_work::parse_args("track_dhat");
    if o.one_profiler {
        let _profiler = dhat::Profiler::builder().testing().build();
        // Every run is inside the profiler: no untracked baseline in this variant.
        tracked_work::child_main(&o, false, || {
            let t = Instant::now();
            let (closure_ns, allocs) = checked_closure();
            Tracked {
                total_ns: t.elapsed().as_nanos() as u64,
                closure_ns,
                allocs,
            }
        });
    } else {
        tracked_work::child_main(&o, true, || {
            let t = Instant::now();
            let profiler = dhat::Profiler::builder().testing().build();
            let (closure_ns, allocs) = checked_closure();
            drop(profiler);
            Tracked {
                total_ns: t.elapsed().as_nanos() as u64,
                closure_ns,
                allocs,
            }
        });
    }
}
