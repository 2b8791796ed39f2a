//! The assertions: no leaks, no growth per iteration, peak under a limit. Each panics with a
//! message that names the call sites (blamed frame first, then its callers, with file:line).

use std::fmt::Write;

use super::tracking::{self, EndScope, Tracking, write_sites};
use crate::config::ByteSize;

/// Panics if anything `f` allocated (on the calling thread) is still live when it returns.
///
/// The message gives the leaked bytes and blocks and the top leaking sites with their frames.
/// The value `f` returns is dropped before the check. See [`track`](super::track) for what is
/// tracked, and [`untracked`](super::untracked) / [`Tracking::ignoring`] to allow intended
/// allocations.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// heaptide::testing::assert_no_leaks(|| {
///     let v: Vec<u64> = (0..1000).collect();
///     v.iter().sum::<u64>()
/// });
/// ```
#[track_caller]
pub fn assert_no_leaks<R>(f: impl FnOnce() -> R) {
    let t = super::track(f);
    if t.leaked() {
        panic!("{}", leak_message(&t));
    }
}

fn leak_message(t: &Tracking) -> String {
    let mut m = String::new();
    let blocks = if t.leaked_blocks == 1 {
        "block"
    } else {
        "blocks"
    };
    let _ = writeln!(
        m,
        "heaptide: leak: {} in {} {blocks} allocated by the closure still live when it returned \
         ({} allocated in {} allocations in all)",
        ByteSize(t.leaked_bytes),
        t.leaked_blocks,
        ByteSize(t.alloc_bytes),
        t.alloc_count
    );
    let _ = write_sites(&mut m, &t.leaks);
    m
}

/// Runs `f` `warmup` times untracked, then `iterations` times tracked, and panics if the
/// memory it keeps grows with the number of calls.
///
/// The rule: live bytes of the tracked calls are measured after call `iterations / 2` and after
/// the last call; if they are higher at the end, memory is still growing after half the run,
/// which a per-call leak does and a one-time initialisation (lazy static, cache filled by the
/// warm-up, a buffer grown to its working size in the first calls) does not. The message gives
/// the growth per call and the sites that grew. Warm-up calls fill caches and lazy statics
/// before tracking starts; with `warmup == 0` they are filled in the first tracked calls,
/// which the rule tolerates as long as it happens in the first half.
///
/// # Panics
/// Also if `iterations < 2` (the rule needs two measurements).
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// use std::collections::HashMap;
/// use std::sync::{LazyLock, Mutex};
/// static CACHE: LazyLock<Mutex<HashMap<u32, String>>> = LazyLock::new(Default::default);
///
/// heaptide::testing::assert_no_growth(1, 100, || {
///     // Filled once, on the first call: not a leak.
///     CACHE.lock().unwrap().entry(7).or_insert_with(|| "seven".to_string());
/// });
/// ```
#[track_caller]
pub fn assert_no_growth(warmup: usize, iterations: usize, mut f: impl FnMut()) {
    assert!(
        iterations >= 2,
        "heaptide::testing::assert_no_growth needs at least 2 iterations"
    );
    for _ in 0..warmup {
        f();
    }
    let mid_at = iterations / 2;
    let scope = tracking::begin();
    let mid = {
        let _end = EndScope(scope);
        for _ in 0..mid_at {
            f();
        }
        let mid = tracking::live_now(scope);
        for _ in mid_at..iterations {
            f();
        }
        mid
    };
    let mid_bytes: u64 = mid.values().map(|h| h.bytes).sum();
    let (t, growth) = tracking::finish(scope, Some(&mid));
    crate::sample::thread::drop_in_scope(mid);
    if t.leaked_bytes > mid_bytes {
        let grew = t.leaked_bytes - mid_bytes;
        let calls = (iterations - mid_at) as u64;
        let mut m = String::new();
        let _ = writeln!(
            m,
            "heaptide: growth: live memory kept growing with the number of calls: {} after call \
             {mid_at}, {} after call {iterations} (+{} over {calls} calls, about {} per call); \
             sites that grew:",
            ByteSize(mid_bytes),
            ByteSize(t.leaked_bytes),
            ByteSize(grew),
            ByteSize(grew / calls.max(1)),
        );
        let _ = write_sites(&mut m, &growth);
        panic!("{m}");
    }
}

/// Panics if, while `f` runs, the bytes it has allocated and not yet freed ever exceed
/// `limit` bytes. The message names what each site held at the peak.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// heaptide::testing::assert_peak_below(64 * 1024, || {
///     let chunk = vec![0u8; 16 * 1024];
///     chunk.len()
/// });
/// ```
#[track_caller]
pub fn assert_peak_below<R>(limit: u64, f: impl FnOnce() -> R) {
    let t = super::track(f);
    if t.peak_bytes > limit {
        let mut m = String::new();
        let _ = writeln!(
            m,
            "heaptide: peak: {} live at the peak, over the limit of {} ({} bytes > {limit}); held \
             at the peak:",
            ByteSize(t.peak_bytes),
            ByteSize(limit),
            t.peak_bytes
        );
        let _ = write_sites(&mut m, &t.at_peak());
        panic!("{m}");
    }
}
