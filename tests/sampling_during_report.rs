//! Sampled mode: a thread that allocates while a report is being built keeps its estimate.
//!
//! Alone in its binary: it needs the process's first report (the one that loads debug info to
//! symbolize, which takes a while) to be built while another thread allocates.

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const R: u64 = 64 * 1024;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(R).seed(7);

#[inline(never)]
fn sdr_alloc_free_leaf(size: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero size; freed with the same layout.
    unsafe {
        let p = alloc(layout);
        assert!(!p.is_null());
        p.write(1);
        dealloc(black_box(p), layout);
    }
}

#[test]
fn allocating_thread_keeps_its_samples_while_a_report_is_built() {
    // The allocating thread's ring holds 128 events. The drain empties it when woken, but a
    // report holds the drain lock while it symbolizes (the first report of a process loads
    // debug info: about a second in a debug build), and meanwhile the ring fills and every
    // further sample is dropped: the estimate of a site that allocates during a report is too
    // low by the share of the time the report took. Dropped samples are counted, but estimates
    // must converge to the truth (docs/design.md, section 3).
    let report_done = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let worker = {
        let (report_done, started) = (report_done.clone(), started.clone());
        std::thread::spawn(move || {
            // Sizes 1 B .. 64 KiB; bytes-estimate variance sum of s^2 (1-p)/p, p = 1-exp(-s/R)
            // (see tests/sampling_bound.rs).
            let (mut total, mut var) = (0f64, 0f64);
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut after = 0;
            let t = Instant::now();
            // Allocate until the report is done, then as long again (at least 50 ms).
            let mut until = None;
            loop {
                for _ in 0..1_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let s = 1 + (x % (64 << 10)) as usize;
                    sdr_alloc_free_leaf(s);
                    let (sf, p) = (s as f64, -(-(s as f64) / R as f64).exp_m1());
                    total += sf;
                    var += sf * sf * (1.0 - p) / p;
                }
                started.store(true, Ordering::Relaxed);
                if until.is_none() && report_done.load(Ordering::Relaxed) {
                    until = Some(t.elapsed() * 2 + Duration::from_millis(50));
                }
                if let Some(u) = until {
                    after += 1;
                    if t.elapsed() >= u && after > 10 {
                        break;
                    }
                }
            }
            (total, var)
        })
    };
    while !started.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let first = heaptide::report();
    let report_took = t.elapsed();
    report_done.store(true, Ordering::Relaxed);
    let (total, var) = worker.join().unwrap();

    let r = heaptide::report();
    let (est, samples): (u64, u64) = r
        .sites_mentioning("sdr_alloc_free_leaf")
        .fold((0, 0), |(b, n), s| (b + s.alloc_bytes, n + s.samples));
    let sd = var.sqrt();
    let err = est as f64 - total;
    eprintln!(
        "first report took {report_took:?} (dropped {} by then); estimate {est} vs truth {total} ({:+.1}%, 4 sd = {:.1}%); \
         {samples} samples, {} dropped",
        first.profiler.dropped,
        100.0 * err / total,
        400.0 * sd / total,
        r.profiler.dropped
    );
    assert!(
        err.abs() <= 4.0 * sd,
        "estimate {est} for {total} bytes ({:+.1}%, bound 4 sd = {:.1}%): {} samples dropped while a report \
         (taking {report_took:?}) held the drain",
        100.0 * err / total,
        400.0 * sd / total,
        r.profiler.dropped
    );
}
