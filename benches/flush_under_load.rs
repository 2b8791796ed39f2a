//! How long `heaptide::flush()` takes in exact mode while 4 threads per core allocate flat
//! out (the speed side of `tests/exact_under_load.rs`, which checks only that every flush
//! returns and memory stays bounded). Flushes are made 10 ms apart for `--seconds` (3 by
//! default); the bench prints their median, 90th percentile and maximum. Target: median under
//! 2 s. `--check` exits with status 1 if it is missed.
//!
//! ```text
//! cargo bench --bench flush_under_load -- [--seconds N] [--check]
//! ```

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[inline(never)]
fn churn(k: u64) {
    black_box(Box::new(k));
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let seconds: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3.0);
    let threads = 4 * std::thread::available_parallelism().map_or(2, |n| n.get());
    heaptide::flush();
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    churn(k);
                    k += 1;
                }
            })
        })
        .collect();
    let run = Duration::from_secs_f64(seconds);
    let start = Instant::now();
    let mut times = Vec::new();
    while times.len() < 3 || start.elapsed() < run {
        std::thread::sleep(Duration::from_millis(10));
        let t = Instant::now();
        heaptide::flush();
        times.push(t.elapsed().as_secs_f64());
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (median, p90, max) = (at(0.5), at(0.9), at(1.0));
    println!(
        "flush_under_load: {} flushes while {threads} threads allocate (exact mode): median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        times.len(),
        median * 1e3,
        p90 * 1e3,
        max * 1e3
    );
    if check && median >= 2.0 {
        eprintln!("flush_under_load: median flush {median:.2} s (target < 2 s)");
        std::process::exit(1);
    }
}
