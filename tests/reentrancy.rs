//! Reports and flushes while other threads allocate hard: no deadlock (a watchdog aborts the
//! process after 60 s), and every report is internally consistent and consistent with the
//! previous one.
//!
//! Exact mode, so every allocation of the churning threads (and of the report calls
//! themselves) goes through the sampling path, rings overflow, threads whose ring is full drain
//! the rings themselves from inside the allocator, and the figures obey exact identities: total
//! samples equal total allocations, live samples equal live blocks.
//!
//! The churning threads allocate as fast as they can, but each has a budget of operations that
//! the reporting thread tops up at each report: in exact mode the drain applies events on one
//! thread and producers never wait for it, so unthrottled producers on more threads than cores
//! (or in a debug build) outrun it and the backlog, and the time a report takes, grow without
//! bound (see `tests/exact_under_load.rs`). The budget keeps the backlog bounded and the test
//! about deadlocks and consistency.

use std::collections::{HashSet, VecDeque};
use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

mod common;

const WATCHDOG: Duration = Duration::from_secs(60);

/// Aborts the process, with a message on stderr, if not disarmed within `WATCHDOG`. The message
/// is written to the stderr file directly: the test harness's output capture would swallow it.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn arm(what: &'static str) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !d.load(Ordering::Relaxed) {
                if start.elapsed() > WATCHDOG {
                    let _ = std::io::stderr().write_all(
                        b"reentrancy watchdog: no progress for 60 s (deadlock?), aborting: ",
                    );
                    let _ = std::io::stderr().write_all(what.as_bytes());
                    let _ = std::io::stderr().write_all(b"\n");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

// === the churn ===

#[inline(never)]
fn rt_vec_churn(n: usize) -> Vec<u64> {
    // Grows by doubling: an allocation and a few reallocs.
    let mut v = Vec::new();
    for i in 0..n as u64 {
        v.push(i);
    }
    v
}

#[inline(never)]
fn rt_box_churn(i: usize) -> Box<[u8]> {
    vec![i as u8; 1 + i % 700].into_boxed_slice()
}

#[inline(never)]
fn rt_string_churn(i: usize) -> String {
    let mut s = format!("item {i} of the churn");
    for _ in 0..i % 5 {
        s.push_str(" and some more text");
    }
    s
}

#[inline(never)]
fn rt_realloc_churn(v: &mut Vec<u8>, i: usize) {
    v.resize(1 + (i * 37) % 20_000, i as u8);
    if i % 3 == 0 {
        v.shrink_to_fit();
    }
}

/// Allocates, reallocates and frees until `stop`, as fast as `budget` allows; sends some blocks
/// to the next thread to free.
fn churn(
    t: usize,
    stop: &AtomicBool,
    budget: &AtomicU64,
    to_next: mpsc::Sender<Box<[u8]>>,
    from_prev: mpsc::Receiver<Box<[u8]>>,
) -> u64 {
    let mut keep: VecDeque<Box<[u8]>> = VecDeque::with_capacity(512);
    let mut strings: VecDeque<String> = VecDeque::with_capacity(256);
    let mut buf = Vec::new();
    let mut i = t * 1_000_003;
    let mut ops = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if ops >= budget.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        i += 1;
        let v = rt_vec_churn(i % 40);
        black_box(&v);
        let b = rt_box_churn(i);
        if i % 4 == 0 {
            let _ = to_next.send(b);
        } else {
            keep.push_back(b);
            if keep.len() > 500 {
                keep.pop_front();
            }
        }
        strings.push_back(rt_string_churn(i));
        if strings.len() > 200 {
            strings.pop_front();
        }
        rt_realloc_churn(&mut buf, i);
        while let Ok(b) = from_prev.try_recv() {
            drop(b);
        }
        ops += 1;
    }
    ops
}

// === consistency ===

fn check(r: &heaptide::Report, prev: Option<&heaptide::Report>) {
    assert_eq!(r.version, heaptide::report::REPORT_VERSION);
    assert!(r.exact && r.sample_interval == 1);
    assert_eq!(
        r.profiler.dropped, 0,
        "exact mode drops nothing: {:?}",
        r.profiler
    );
    let t = &r.totals;
    assert!(
        t.live_bytes <= t.alloc_bytes && t.live_count <= t.alloc_count,
        "{t:?}"
    );
    // Exact identities: one sample per allocation, one live sample per live block.
    assert_eq!(r.profiler.samples, t.alloc_count, "{t:?} {:?}", r.profiler);
    assert_eq!(
        r.profiler.live_samples, t.live_count,
        "{t:?} {:?}",
        r.profiler
    );
    assert!(r.sites.len() as u64 <= r.sites_seen);
    assert!(r.sites.len() <= 2 * heaptide::report::TOP_SITES);
    let mut ids = HashSet::new();
    let (mut ab, mut lb, mut ac, mut lc) = (0u64, 0u64, 0u64, 0u64);
    for s in &r.sites {
        assert!(ids.insert(s.id), "site {} listed twice", s.id);
        assert!(!s.frames.is_empty(), "site {} has no frames", s.id);
        assert!(
            s.live_bytes <= s.alloc_bytes && s.live_count <= s.alloc_count,
            "site {}: {s:?}",
            s.id
        );
        assert!(s.alloc_count >= 1);
        assert_eq!(s.samples, s.alloc_count, "exact mode: site {}", s.id);
        ab += s.alloc_bytes;
        lb += s.live_bytes;
        ac += s.alloc_count;
        lc += s.live_count;
    }
    // The listed sites are a subset of all sites.
    assert!(ab <= t.alloc_bytes && lb <= t.live_bytes && ac <= t.alloc_count && lc <= t.live_count);
    // Ordered by live bytes, then allocated bytes.
    for w in r.sites.windows(2) {
        assert!(
            (w[0].live_bytes, w[0].alloc_bytes) >= (w[1].live_bytes, w[1].alloc_bytes),
            "sites out of order"
        );
    }
    if let Some(p) = prev {
        // Allocated figures only grow.
        assert!(t.alloc_bytes >= p.totals.alloc_bytes && t.alloc_count >= p.totals.alloc_count);
        assert!(r.profiler.samples >= p.profiler.samples);
        assert!(r.sites_seen >= p.sites_seen);
        assert!(r.profiler.thread_slots >= p.profiler.thread_slots);
        assert!(r.timestamp >= p.timestamp);
    }
}

#[test]
fn reports_while_four_threads_allocate_hard() {
    let _watchdog = Watchdog::arm("reports_while_four_threads_allocate_hard");
    const THREADS: usize = 4;
    const REPORTS: usize = 50;
    /// Operations each churning thread may do per report taken.
    const OPS_PER_REPORT: u64 = 100;
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicU64::new(OPS_PER_REPORT));
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel::<Box<[u8]>>()).unzip();
    let churners: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let (stop, budget) = (stop.clone(), budget.clone());
            let next = txs[(t + 1) % THREADS].clone();
            std::thread::spawn(move || churn(t, &stop, &budget, next, rx))
        })
        .collect();
    drop(txs);
    // Another thread flushes meanwhile, so report callers, the drain thread and a flusher
    // contend for the drain.
    let flushes = Arc::new(AtomicU64::new(0));
    let flusher = {
        let (stop, flushes) = (stop.clone(), flushes.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                heaptide::flush();
                flushes.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };

    let mut prev: Option<heaptide::Report> = None;
    for i in 0..REPORTS {
        budget.fetch_add(OPS_PER_REPORT, Ordering::Relaxed);
        let r = heaptide::report();
        check(&r, prev.as_ref());
        if i % 10 == 0 {
            // The text writer and the rankings, on a report taken under load.
            let text = r.to_string();
            assert!(text.contains("heaptide report"), "{text}");
            assert!(
                r.top_by_live(5)
                    .windows(2)
                    .all(|w| w[0].live_bytes >= w[1].live_bytes)
            );
            assert!(
                r.top_by_alloc(5)
                    .windows(2)
                    .all(|w| w[0].alloc_bytes >= w[1].alloc_bytes)
            );
        }
        prev = Some(r);
    }
    stop.store(true, Ordering::Relaxed);
    let ops: Vec<u64> = churners.into_iter().map(|h| h.join().unwrap()).collect();
    flusher.join().unwrap();
    assert!(
        ops.iter().all(|&n| n > 0),
        "a churning thread made no progress: {ops:?}"
    );
    assert!(flushes.load(Ordering::Relaxed) > 0);

    // Everything the churn kept was freed when its threads ended: none of its sites is live.
    let r = common::settled_report();
    check(&r, prev.as_ref());
    assert_eq!(r.profiler.pending_frees, 0, "{:?}", r.profiler);
    for name in [
        "rt_vec_churn",
        "rt_box_churn",
        "rt_string_churn",
        "rt_realloc_churn",
    ] {
        let sites: Vec<_> = r.sites_mentioning(name).collect();
        assert!(!sites.is_empty(), "no site of {name}");
        for s in sites {
            assert_eq!(
                (s.live_bytes, s.live_count),
                (0, 0),
                "{name} still live after its threads ended: {s:?}"
            );
        }
    }
    eprintln!(
        "churn ops per thread: {ops:?}; {} flushes; {:?}",
        flushes.load(Ordering::Relaxed),
        r.profiler
    );
}
