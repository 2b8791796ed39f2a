//! Exact mode under allocation pressure: `flush()` returns (every time, however long the
//! machine takes) and the process's memory stays bounded while more threads than cores
//! allocate flat out. How fast a flush returns is measured by `benches/flush_under_load.rs`,
//! not asserted here: on a machine busy with other work any time limit is a guess.
//!
//! Alone in its binary: it measures the process's memory, and if the profiler cannot keep up
//! its watchdog has to abort the process.

use std::hint::black_box;
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

/// Flushes made while the threads allocate (10 ms apart), at least...
const FLUSHES: usize = 3;
/// ... and for at least this long (a loop bound, not a limit: nothing here is timed).
const RUN: Duration = Duration::from_secs(3);
/// The process must stay below this resident size (the workload itself holds next to nothing).
const RSS_LIMIT: u64 = 1 << 30;
/// The watchdog aborts the process above `RSS_LIMIT`, or after this: not a speed limit (the
/// run takes a few seconds even on a loaded machine) but a guard against a flush that never
/// returns, which would otherwise hang the suite.
const WATCHDOG: Duration = Duration::from_secs(600);

#[inline(never)]
fn eul_churn(k: u64) {
    black_box(Box::new(k));
}

/// Resident bytes, from /proc/self/statm, without allocating (the watchdog must not allocate:
/// in exact mode an allocation can end up draining rings).
fn rss_bytes() -> u64 {
    let mut buf = [0u8; 128];
    let Ok(mut f) = std::fs::File::open("/proc/self/statm") else {
        return 0;
    };
    let n = f.read(&mut buf).unwrap_or(0);
    let mut fields = buf[..n].split(|&b| b == b' ');
    let _size = fields.next();
    let pages = fields.next().map_or(0, |d| {
        d.iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |a, b| a * 10 + u64::from(b - b'0'))
    });
    pages * 4096
}

/// Writes `n` in decimal without allocating.
fn write_u64(w: &mut impl Write, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let _ = w.write_all(&digits[i..]);
}

static PEAK_RSS: AtomicU64 = AtomicU64::new(0);

#[test]
fn flush_latency_and_memory_stay_bounded_under_load() {
    // In exact mode an allocating thread never waits: an event that does not fit in its ring
    // goes to an overflow node (heap memory), and events are applied by one thread at a time
    // under the drain lock. With more allocating threads than cores the producers outrun that
    // single consumer, and:
    // - a pass pops each ring until it is empty, so it also applies what producers push while
    //   it runs, and need not end while they keep pushing;
    // - an allocating thread whose ring is full takes the drain lock itself (`try_help`) and
    //   runs such a pass inside `alloc`;
    // - `flush()` and `report()` wait on the drain lock behind those passes;
    // - the overflow backlog grows for as long as the threads allocate.
    // Measured on a 2-core machine, debug build, 8 threads: one flush had not returned after
    // 40 s, and the process had grown to 8 GB.
    let threads = 4 * std::thread::available_parallelism().map_or(2, |n| n.get());
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                let rss = rss_bytes();
                PEAK_RSS.fetch_max(rss, Ordering::Relaxed);
                if start.elapsed() > WATCHDOG || rss > RSS_LIMIT {
                    let mut e = std::io::stderr();
                    let _ = e.write_all(
                        b"exact_under_load: no progress or unbounded memory, aborting: RSS ",
                    );
                    write_u64(&mut e, rss >> 20);
                    let _ = e.write_all(b" MiB (limit ");
                    write_u64(&mut e, RSS_LIMIT >> 20);
                    let _ = e.write_all(b" MiB) after ");
                    write_u64(&mut e, start.elapsed().as_millis() as u64);
                    let _ = e.write_all(b" ms; flush() must return while ");
                    write_u64(&mut e, threads as u64);
                    let _ = e.write_all(b" threads allocate\n");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
    }

    heaptide::flush();
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    eul_churn(k);
                    k += 1;
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut flushes = 0;
    while flushes < FLUSHES || start.elapsed() < RUN {
        std::thread::sleep(Duration::from_millis(10));
        heaptide::flush();
        flushes += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let peak = PEAK_RSS.load(Ordering::Relaxed).max(rss_bytes());
    // No final report: after a backlog, it could take minutes.
    assert!(
        peak <= RSS_LIMIT,
        "peak RSS {} MiB while {threads} threads allocate and {flushes} flushes returned",
        peak >> 20
    );
}
