//! Exact mode: every allocation is recorded with weight 1, so the figures of a call site must
//! equal the truth exactly (sizes are the requested `Layout` sizes).
//!
//! Tests in this binary run in parallel and share one profile, so each one looks only at its
//! own call sites: `#[inline(never)]` leaf functions with distinctive names, found with
//! `Report::sites_mentioning`. Each leaf makes exactly one allocation, and `black_box` on the
//! result keeps the call from becoming a tail call (which would drop the leaf's frame).

use std::alloc::alloc;
use std::collections::HashSet;
use std::hint::black_box;
use std::sync::mpsc;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

mod common;

use common::{Block, figures, layout, leaf, settled_report, truth};

// === helpers ===

// `common::serial()` serializes the address-reuse tests with the ring-overflow test: that one
// keeps the drain busy on purpose, and while rings are full, frees wait on the deferred stack,
// so their addresses are not handed out again until the drain catches up.
use common::serial as no_burst;

fn check_mode(report: &heaptide::Report) {
    assert!(
        report.exact,
        "exact mode expected: {:?}",
        report.sample_interval
    );
    assert_eq!(report.sample_interval, 1);
    assert_eq!(
        report.profiler.dropped, 0,
        "exact mode must drop nothing: {:?}",
        report.profiler
    );
}

/// Deterministic sizes: 1 to `max` bytes, spread out.
fn size_of_nth(i: usize, max: usize) -> usize {
    1 + (i.wrapping_mul(7919) ^ (i >> 3)) % max
}

// === 1. known site, counts and bytes, symbolized frames ===

const KNOWN_LEAF_FIRST_LINE: u32 = line!();
#[inline(never)]
fn ex_known_leaf(size: usize) -> Block {
    // SAFETY: non-zero size.
    let p = unsafe { alloc(layout(size)) };
    assert!(!p.is_null());
    Block(black_box(p), size)
}
const KNOWN_LEAF_LAST_LINE: u32 = line!();

#[test]
fn known_site_figures_equal_the_truth() {
    const N: usize = 6_000;
    let sizes: Vec<usize> = (0..N).map(|i| size_of_nth(i, 4_000)).collect();
    let mut blocks: Vec<Block> = Vec::with_capacity(N);
    for &s in &sizes {
        blocks.push(ex_known_leaf(s));
    }
    // Free two thirds, keep the rest.
    let mut kept = Vec::new();
    let mut kept_sizes = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i % 3 == 0 {
            kept_sizes.push(b.1);
            kept.push(b);
        } else {
            b.free();
        }
    }

    let r = heaptide::report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_known_leaf"), truth(&sizes, &kept_sizes));

    // The site is symbolized: the leaf's own frame, in this file, at a line inside the leaf.
    let site = r.sites_mentioning("ex_known_leaf").next().unwrap();
    let frame = site
        .frames
        .iter()
        .find(|f| f.function.ends_with("ex_known_leaf"))
        .unwrap_or_else(|| panic!("no frame of ex_known_leaf in {:#?}", site.frames));
    assert!(
        frame.function.starts_with("exact::"),
        "frame function {:?}",
        frame.function
    );
    let file = frame
        .file
        .as_deref()
        .unwrap_or_else(|| panic!("frame without file: {frame:?}"));
    assert!(file.ends_with("exact.rs"), "frame file {file:?}");
    let line = frame
        .line
        .unwrap_or_else(|| panic!("frame without line: {frame:?}"));
    assert!(
        (KNOWN_LEAF_FIRST_LINE..=KNOWN_LEAF_LAST_LINE).contains(&line),
        "line {line} not inside ex_known_leaf ({KNOWN_LEAF_FIRST_LINE}..={KNOWN_LEAF_LAST_LINE})"
    );
    // The caller (this test) is in the stack too, and the site is blamed on the leaf.
    assert!(
        site.mentions("known_site_figures_equal_the_truth"),
        "{:#?}",
        site.frames
    );
    assert_eq!(
        site.blamed_frame().map(|f| f.function.as_str()),
        Some(frame.function.as_str())
    );

    for b in kept {
        b.free();
    }
    let r = heaptide::report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_known_leaf"), truth(&sizes, &[]));
}

// === 2. frees on another thread ===

leaf!(ex_xthread_leaf);

#[test]
fn frees_on_another_thread() {
    const N: usize = 8_000;
    let sizes: Vec<usize> = (0..N).map(|i| 64 + size_of_nth(i, 2_000)).collect();
    let (to_freer, freer_rx) = mpsc::sync_channel::<Block>(64);
    let (to_main, main_rx) = mpsc::channel::<Block>();

    // B frees what A sends it, as it arrives (the drain sees frees on B's ring and
    // allocations on A's ring in any order).
    let freer = std::thread::spawn(move || {
        let mut n = 0;
        for b in freer_rx {
            b.free();
            n += 1;
        }
        n
    });
    let sizes_a = sizes.clone();
    let allocator = std::thread::spawn(move || {
        for (i, &s) in sizes_a.iter().enumerate() {
            let b = ex_xthread_leaf(s);
            if i % 4 == 3 {
                to_main.send(b).unwrap()
            } else {
                to_freer.send(b).unwrap()
            }
        }
    });
    allocator.join().unwrap();
    let freed_by_b = freer.join().unwrap();
    assert_eq!(freed_by_b, N - N / 4);

    // A is gone; the blocks it sent the main thread are still live.
    let held: Vec<Block> = main_rx.into_iter().collect();
    let held_sizes: Vec<usize> = held.iter().map(|b| b.1).collect();
    assert_eq!(held.len(), N / 4);
    let r = settled_report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_xthread_leaf"), truth(&sizes, &held_sizes));

    for b in held {
        b.free();
    }
    let r = settled_report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_xthread_leaf"), truth(&sizes, &[]));
    assert_eq!(
        r.profiler.pending_frees, 0,
        "frees never matched: {:?}",
        r.profiler
    );
}

// === 3. address reuse ===

leaf!(ex_reuse_leaf);
leaf!(ex_reuse_pingpong_leaf);

#[test]
fn address_reuse_keeps_live_figures_exact() {
    let _serial = no_burst();
    // Same thread: allocate and free one size over and over; jemalloc hands the same addresses
    // out again. Every 500th block is kept. A flush every 50 rounds (100 events: the ring holds
    // 128) keeps frees from waiting on the deferred stack, so each freed address really is
    // handed out again, and each drain pass sees many alloc/free/alloc triples at one address.
    // A size class no other test of this binary uses (6,000 + 32 header bytes: jemalloc's
    // 6 KiB class), so their blocks do not take the freed addresses first.
    const N: usize = 20_000;
    const SIZE: usize = 6_000;
    let mut addresses = HashSet::new();
    let mut kept = Vec::new();
    for i in 0..N {
        let b = ex_reuse_leaf(SIZE);
        addresses.insert(b.0 as usize);
        if i % 500 == 0 {
            kept.push(b)
        } else {
            b.free()
        }
        if i % 50 == 49 {
            heaptide::flush();
        }
    }
    // Most allocations must land on an address used before, or the test proves nothing.
    assert!(
        addresses.len() < N / 10,
        "addresses were not reused ({} distinct of {N}); the test proves nothing",
        addresses.len()
    );
    let sizes = vec![SIZE; N];
    let kept_sizes = vec![SIZE; kept.len()];
    let r = settled_report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_reuse_leaf"), truth(&sizes, &kept_sizes));
    for b in kept {
        b.free();
    }
    let r = settled_report();
    assert_eq!(figures(&r, "ex_reuse_leaf"), truth(&sizes, &[]));
}

#[test]
fn address_reuse_across_threads_keeps_live_figures_exact() {
    let _serial = no_burst();
    // Ping-pong: A allocates, B frees, then A allocates again (often at the same address).
    // A's ring holds alloc(id1), alloc(id2), ...; B's ring holds free(id1), ...: the drain must
    // pair them by id, not by address.
    const N: usize = 5_000;
    // Another size class of its own (jemalloc's 10 KiB class).
    const SIZE: usize = 9_000;
    let (to_b, b_rx) = mpsc::sync_channel::<Block>(0);
    let (ack, ack_rx) = mpsc::sync_channel::<()>(0);
    let b = std::thread::spawn(move || {
        for blk in b_rx {
            blk.free();
            ack.send(()).unwrap();
        }
    });
    let mut addresses = HashSet::new();
    for i in 0..N {
        let blk = ex_reuse_pingpong_leaf(SIZE);
        addresses.insert(blk.0 as usize);
        to_b.send(blk).unwrap();
        ack_rx.recv().unwrap();
        if i % 50 == 49 {
            heaptide::flush();
        }
    }
    // One last block stays live.
    let last = ex_reuse_pingpong_leaf(SIZE);
    drop(to_b);
    b.join().unwrap();
    assert!(
        addresses.len() < N / 10,
        "addresses were not reused ({} distinct of {N}); the test proves nothing",
        addresses.len()
    );

    let r = settled_report();
    check_mode(&r);
    assert_eq!(
        figures(&r, "ex_reuse_pingpong_leaf"),
        truth(&vec![SIZE; N + 1], &[SIZE])
    );
    last.free();
    let r = settled_report();
    assert_eq!(
        figures(&r, "ex_reuse_pingpong_leaf"),
        truth(&vec![SIZE; N + 1], &[])
    );
    assert_eq!(
        r.profiler.pending_frees, 0,
        "frees never matched: {:?}",
        r.profiler
    );
}

// === 4. ring overflow ===

leaf!(ex_burst_leaf);

#[test]
fn ring_overflow_burst_drops_nothing() {
    let _serial = no_burst();
    // A thread's ring holds 128 events; one thread allocating 150,000 blocks as fast as it can
    // (and then freeing them as fast as it can) outruns the drain, which wakes every 100 ms or
    // when a ring is half full. In exact mode allocation events that do not fit go to overflow
    // nodes and frees that do not fit park their block on the deferred stack: nothing may be
    // lost. A second thread keeps taking reports meanwhile, which holds the drain lock (while it
    // symbolizes and copies sites) and keeps the drain from emptying the ring.
    const N: usize = 150_000;
    const KEEP_EVERY: usize = 100;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reporter = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                black_box(heaptide::report());
                n += 1;
            }
            n
        })
    };

    let sizes: Vec<usize> = (0..N).map(|i| 8 + i % 57).collect();
    let burst = {
        let sizes = sizes.clone();
        std::thread::spawn(move || {
            let mut blocks: Vec<Block> = Vec::with_capacity(N);
            for &s in &sizes {
                blocks.push(ex_burst_leaf(s));
            }
            let mut kept = Vec::with_capacity(N / KEEP_EVERY);
            for (i, b) in blocks.into_iter().enumerate() {
                if i % KEEP_EVERY == 0 {
                    kept.push(b)
                } else {
                    b.free()
                }
            }
            kept
        })
    };
    let kept = burst.join().unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reports = reporter.join().unwrap();
    assert!(reports > 0);

    let kept_sizes: Vec<usize> = kept.iter().map(|b| b.1).collect();
    assert_eq!(kept.len(), N / KEEP_EVERY);
    let r = settled_report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_burst_leaf"), truth(&sizes, &kept_sizes));

    for b in kept {
        b.free();
    }
    let r = settled_report();
    check_mode(&r);
    assert_eq!(figures(&r, "ex_burst_leaf"), truth(&sizes, &[]));
}
