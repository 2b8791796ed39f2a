//! Ring slots of exited threads are reused even while a report is being built.
//!
//! Alone in its binary: it needs the process's first report (the one that loads debug info to
//! symbolize, which takes a while) to happen while threads come and go.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

const BATCH: usize = 8;

#[inline(never)]
fn tdr_thread_work(i: usize) {
    for k in 0..4 {
        black_box(vec![k as u8; 64 + i % 512]);
    }
}

#[test]
fn ring_slots_are_reused_while_a_report_is_built() {
    // Threads come and go in batches of 8, as in a server that spawns a thread per request.
    // Each exiting thread gives its ring slot back; the drain empties it and marks it free for
    // the next thread. docs/design.md, section 4: rings of exited threads are drained, then
    // reused; ring memory is bounded. Taking a report must not suspend that: every ring slot
    // ever created stays allocated (about 76 KiB of ring each) for the life of the process.
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let churner = {
        let (stop, batches) = (stop.clone(), batches.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let hs: Vec<_> = (0..BATCH)
                    .map(|_| {
                        i += 1;
                        let n = i;
                        std::thread::spawn(move || tdr_thread_work(n))
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                batches.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    while batches.load(Ordering::Relaxed) < 20 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let t = Instant::now();
    let first = heaptide::report();
    let report_took = t.elapsed();
    let during = batches.load(Ordering::Relaxed);
    // Keep churning a little after the report, so the drain has run many passes since.
    let target = during + 50;
    while batches.load(Ordering::Relaxed) < target {
        std::thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    churner.join().unwrap();
    let total_batches = batches.load(Ordering::Relaxed);
    let r = heaptide::report();
    eprintln!(
        "first report took {report_took:?}; {total_batches} batches of {BATCH} threads; slots after the first report {}, at the end {}",
        first.profiler.thread_slots, r.profiler.thread_slots
    );
    assert_eq!(r.profiler.dropped, 0);
    // Alone, the drain recycles slots at each thread exit: about 30 slots serve 10,000
    // threads (tests/threads.rs). Allow 128: a drain late by a dozen batches.
    assert!(
        r.profiler.thread_slots <= 128,
        "{} ring slots ({} KiB of rings) for {} threads: slots were not reused while the report \
         (which took {report_took:?}) was being built",
        r.profiler.thread_slots,
        r.profiler.ring_bytes / 1024,
        total_batches * BATCH
    );
}
