//! The host's speed under a flood of report requests (feature `http`): the same allocating
//! work timed with the HTTP endpoints idle and while client threads request
//! `/debug/pprof/heap`, `/memory/allocations` and `/metrics` from 127.0.0.1 back to back, in
//! one interleaved run (the order of the two conditions alternates from round to round). The
//! figure is the ratio of the host's speed under the flood to its speed without, per round;
//! the median over the rounds must be at least 0.9 (`--check` exits with status 1 if not).
//!
//! ```text
//! cargo bench --features http --bench http_flood -- [--rounds N] [--clients N] [--short] [--check]
//! ```
//!
//! `--short` (CI) runs 10 rounds of about 0.2 s per condition; the default is 20 rounds of about
//! 0.5 s. The request loop is bounded: it runs only during a flood round, one request at a
//! time per client thread, and only to the loopback address the server listens on.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

/// The host's work: strings, vectors and a map, allocated and dropped (`units` of it).
#[inline(never)]
fn work(units: u64) -> u64 {
    let mut sum = 0u64;
    for i in 0..units {
        let words: Vec<String> = (0..24).map(|j| format!("w{i}-{j}")).collect();
        let mut map = BTreeMap::new();
        for (j, w) in words.iter().enumerate() {
            map.insert(w.clone(), vec![j as u8; 16 + j * 8]);
        }
        sum = sum.wrapping_add(map.values().map(|v| v.len() as u64).sum::<u64>());
    }
    black_box(sum)
}

/// One request on a new connection, read to the end; whether it was answered.
fn request(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut body = Vec::new();
    s.read_to_end(&mut body).is_ok() && body.starts_with(b"HTTP/1.1 200")
}

/// Times `units` of work, with `clients` threads flooding the server meanwhile if `flood`.
/// Returns the seconds and the requests answered.
fn round(addr: SocketAddr, units: u64, flood: bool, clients: usize) -> (f64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..if flood { clients } else { 0 })
        .map(|c| {
            let (stop, answered) = (stop.clone(), answered.clone());
            std::thread::spawn(move || {
                const PATHS: [&str; 3] = ["/debug/pprof/heap", "/memory/allocations", "/metrics"];
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    if request(addr, PATHS[i % PATHS.len()]) {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    work(units);
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    (seconds, answered.load(Ordering::Relaxed))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let short = flag("--short");
    let rounds = value("--rounds").unwrap_or(if short { 10 } else { 20 });
    let clients = value("--clients").unwrap_or(1) as usize;
    let round_seconds = if short { 0.2 } else { 0.5 };

    let addr = heaptide::serve("127.0.0.1:0").expect("serve on 127.0.0.1");
    // Calibrate the work to the round length, and let the first report (symbol loading) be
    // built before anything is timed.
    let t = Instant::now();
    work(200);
    let per_unit = t.elapsed().as_secs_f64() / 200.0;
    let units = ((round_seconds / per_unit) as u64).max(50);
    assert!(request(addr, "/debug/pprof/heap"), "the server answers");

    let mut ratios = Vec::new();
    let mut requests = 0;
    let (mut quiet_total, mut flood_total) = (0.0, 0.0);
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut times = [0.0; 2];
        for flood in order {
            let (seconds, answered) = round(addr, units, flood, clients);
            times[usize::from(flood)] = seconds;
            requests += answered;
        }
        quiet_total += times[0];
        flood_total += times[1];
        // Speed under the flood relative to speed without: time without / time with.
        ratios.push(times[0] / times[1]);
    }
    let ratio = median(&mut ratios);
    println!(
        "http_flood: {rounds} rounds of {units} units ({:.3} s quiet, {:.3} s flooded on average), {clients} client thread(s), {requests} requests answered ({:.0}/s)",
        quiet_total / rounds as f64,
        flood_total / rounds as f64,
        requests as f64 / flood_total
    );
    println!(
        "http_flood: host speed under the flood / without: median {ratio:.3} (rounds {:.3}..{:.3}); target >= 0.9",
        ratios.first().copied().unwrap_or(f64::NAN),
        ratios.last().copied().unwrap_or(f64::NAN)
    );
    let report = heaptide::report();
    println!(
        "http_flood: {} full reports built in all",
        report.profiler.reports_built
    );
    if flag("--check") && ratio < 0.9 {
        eprintln!("http_flood: the host ran at {ratio:.3}x of its speed under the flood (< 0.9)");
        std::process::exit(1);
    }
}
