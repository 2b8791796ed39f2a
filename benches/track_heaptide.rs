//! The tracked-run comparison, heaptide side: the closure of `tracked_work.rs` run inside
//! `heaptide::testing::track` (exact tracking of this thread for the closure; the rest of the
//! process keeps the default sampling). Driven by `benches/vs_dhat.rs`; see `tracked_work.rs`
//! for the command line and output.

use std::time::Instant;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new();

#[path = "tracked_work.rs"]
mod tracked_work;

use tracked_work::Tracked;

/// One tracked run, as a test calling `track` pays for it: scope start, the closure, the drain
/// catching up, the record symbolized into a `Tracking`.
fn tracked_run() -> Tracked {
    let mut closure_ns = 0;
    let t = Instant::now();
    let tracking = heaptide::testing::track(|| tracked_work::timed_work(&mut closure_ns));
    let total_ns = t.elapsed().as_nanos() as u64;
    assert!(
        !tracking.leaked(),
        "the tracked closure leaked:\n{tracking}"
    );
    assert!(
        tracking.alloc_count > 100,
        "too few allocations tracked:\n{tracking}"
    );
    Tracked {
        total_ns,
        closure_ns,
        allocs: tracking.alloc_count,
    }
}

fn main() {
    let o = tracked_work::parse_args("track_heaptide");
    if o.one_profiler {
        tracked_work::die(
            "track_heaptide",
            "--variant one-profiler is dhat's (heaptide's tracking is per closure)",
        );
    }
    tracked_work::child_main(&o, true, tracked_run);
}
