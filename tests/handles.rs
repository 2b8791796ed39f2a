//! More than one `Heaptide` handle, and the sampled blocks' thread cache.
//!
//! The free path tests a pointer against the handle's own copy of the sampled range, synced on
//! the handle's first slow path. A second handle that was never installed has never synced:
//! every pointer "may" be sampled for it, so it asks the authoritative range test. These tests
//! free and resize the global handle's sampled blocks through such a handle (and the other way
//! round) and check that the profile stays exact: the frees are recorded, nothing is left live,
//! contents survive.
//!
//! They also churn sampled blocks through the per-thread sampled cache (exact mode samples
//! every allocation) on threads that come and go, each creating and destroying its cache, and
//! check that everything freed is reported freed. (That ordinary blocks never come out of a
//! sampled cache is checked where both kinds interleave: `tests/realloc_sampled.rs`,
//! `tests/sampling_bound.rs` and the `alloc_sampled` fuzz target.)

use std::alloc::GlobalAlloc;
use std::hint::black_box;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

/// Never installed. A handle syncs its range filter on its first slow path, so each of these
/// is used for one call only: every call below meets an unsynced filter.
static FRESH_FREE: [heaptide::Heaptide; 6] = [const { heaptide::Heaptide::new() }; 6];
static FRESH_GROW: [heaptide::Heaptide; 6] = [const { heaptide::Heaptide::new() }; 6];
/// Never installed; used many times, so it syncs and then takes its fast paths.
static OTHER: heaptide::Heaptide = heaptide::Heaptide::new();

mod common;

use common::{figures, layout, settled_report, truth};

#[inline(never)]
fn handles_global_alloc(size: usize) -> *mut u8 {
    black_box("handles_global_alloc");
    // SAFETY: non-zero size.
    let p = black_box(unsafe { std::alloc::alloc(layout(size)) });
    assert!(!p.is_null());
    p
}

#[inline(never)]
fn handles_other_alloc(size: usize) -> *mut u8 {
    black_box("handles_other_alloc");
    // SAFETY: non-zero size.
    let p = black_box(unsafe { OTHER.alloc(layout(size)) });
    assert!(!p.is_null());
    p
}

fn fill(p: *mut u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: `p` is a live block of at least `len` bytes.
        unsafe { p.add(i).write((i as u8).wrapping_mul(7) ^ seed) };
    }
}

fn check(p: *const u8, len: usize, seed: u8) {
    for i in 0..len {
        // SAFETY: `p` is a live block of at least `len` bytes.
        let got = unsafe { p.add(i).read() };
        assert_eq!(got, (i as u8).wrapping_mul(7) ^ seed, "byte {i} changed");
    }
}

#[test]
fn a_second_handle_frees_and_resizes_sampled_blocks() {
    let sizes = [8usize, 24, 100, 1000, 5000, 70_000];
    // Allocated by the global handle (exact mode: every one is sampled), freed by a handle
    // that has not synced.
    for (i, &s) in sizes.iter().enumerate() {
        let p = handles_global_alloc(s);
        fill(p, s, 1);
        check(p, s, 1);
        // SAFETY: a live block of `layout(s)`, freed once.
        unsafe { FRESH_FREE[i].dealloc(p, layout(s)) };
    }
    // Allocated by the global handle, grown by an unsynced handle, shrunk by a synced one,
    // freed by the global one.
    let mut resized = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        let p = handles_global_alloc(s);
        fill(p, s, 2);
        let grown = s * 3;
        // SAFETY: a live block of `layout(s)`; the new size is non-zero.
        let q = unsafe { FRESH_GROW[i].realloc(p, layout(s), grown) };
        assert!(!q.is_null());
        check(q, s, 2);
        // SAFETY: as above.
        let r = unsafe { OTHER.realloc(q, layout(grown), s / 2 + 1) };
        assert!(!r.is_null());
        check(r, s / 2 + 1, 2);
        resized.push((r, s / 2 + 1));
    }
    for (p, len) in resized {
        // SAFETY: a live block of `layout(len)`, freed once.
        unsafe { std::alloc::dealloc(p, layout(len)) };
    }
    // Allocated through the other handle (sampled too: the profiler is process-wide), freed
    // by the global one; then allocated and freed by the other, synced now.
    for &s in &sizes {
        let p = handles_other_alloc(s);
        fill(p, s, 3);
        check(p, s, 3);
        // SAFETY: a live block of `layout(s)`, freed once.
        unsafe { std::alloc::dealloc(p, layout(s)) };
        let q = handles_other_alloc(s);
        // SAFETY: as above.
        unsafe { OTHER.dealloc(q, layout(s)) };
    }

    heaptide::flush();
    let report = settled_report();
    // Every block allocated directly at the leaf was freed: recorded, nothing live.
    let twice: Vec<usize> = sizes.iter().chain(sizes.iter()).copied().collect();
    assert_eq!(
        figures(&report, "handles_global_alloc"),
        truth(&twice, &[]),
        "blocks freed or resized through the second handle must be recorded as freed"
    );
    assert_eq!(
        figures(&report, "handles_other_alloc"),
        truth(&twice, &[]),
        "blocks of the second handle freed through the global one must be recorded as freed"
    );
}

#[inline(never)]
fn handles_churn(size: usize) -> Vec<u8> {
    black_box("handles_churn");
    Vec::with_capacity(size)
}

#[test]
fn sampled_caches_come_and_go_with_their_threads() {
    // Many threads, each churning sampled blocks through its own sampled cache (created with
    // its ring slot, destroyed when the thread exits); a third of the blocks outlive their
    // thread and are freed here, through this thread's cache.
    let rounds = 40;
    let per_thread = 400;
    let mut expected_count = 0u64;
    let mut expected_bytes = 0u64;
    for round in 0..rounds {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    let mut bytes = 0u64;
                    for i in 0..per_thread {
                        let size = 8 + ((i * 37 + t * 11 + round) % 600);
                        let mut v = handles_churn(size);
                        v.push(i as u8);
                        bytes += size as u64;
                        if i % 3 == 0 {
                            kept.push(v);
                        }
                    }
                    (kept, bytes)
                })
            })
            .collect();
        for h in handles {
            let (kept, bytes) = h.join().unwrap();
            expected_count += per_thread as u64;
            expected_bytes += bytes;
            // Freed on this thread, after its allocating thread exited and destroyed its cache.
            drop(kept);
        }
    }
    heaptide::flush();
    let report = settled_report();
    let f = figures(&report, "handles_churn");
    assert_eq!(f.alloc_count, expected_count);
    assert_eq!(f.alloc_bytes, expected_bytes);
    assert_eq!(
        (f.live_count, f.live_bytes),
        (0, 0),
        "everything was freed: {f:?}"
    );
    assert_eq!(report.profiler.dropped, 0, "exact mode drops nothing");
}
