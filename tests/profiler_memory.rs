//! The profiler's own memory in a report includes what building that report took, and stays
//! small: the first report symbolizes, which makes the resolver load the binary's debug info
//! (tens of MiB for a test binary); heaptide keeps the frames it resolved and lets the
//! resolver's cache go.

use std::hint::black_box;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[inline(never)]
fn pm_keep(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| black_box(vec![i as u8; 64 + i])).collect()
}

#[test]
fn reports_count_their_own_symbolization_and_do_not_keep_the_debug_info() {
    let kept = pm_keep(200);
    heaptide::flush();
    let first = heaptide::report();
    assert!(first.sites_mentioning("pm_keep").next().is_some());
    let second = heaptide::report();
    let third = heaptide::report();
    let (a, b, c) = (
        first.profiler.overhead_bytes,
        second.profiler.overhead_bytes,
        third.profiler.overhead_bytes,
    );
    // Later reports symbolize nothing new; what they show differs from the first by the
    // aggregation's and the reports' own small changes, not by the symbol cache.
    let tolerance = 2 << 20;
    assert!(
        a + tolerance >= c && c + tolerance >= a,
        "own memory: first report {a} B, second {b} B, third {c} B"
    );
    // Without letting the resolver's cache go this is 50 MiB here.
    assert!(
        a.max(b).max(c) < 16 << 20,
        "own memory: first report {a} B, second {b} B, third {c} B"
    );
    drop(kept);
}
