//! A small service-like program with heaptide swapped in.
//!
//! Two worker threads handle "requests": each request reads into a fresh buffer and builds a
//! response (short-lived churn), looks its key up in a cache that fills to a bound and then
//! stops growing (long-lived, not a leak), and — the bug — remembers about 1 KiB of session state
//! in a global list that nobody ever trims (`remember_session`, a slow leak).
//!
//! At the end it prints heaptide's report: the leak's call site is at the top of the live
//! bytes table, the cache below it, and the request buffers lead the allocated bytes table.
//! Then what changed over the second half of the run (`heaptide::mark` half-way,
//! `heaptide::diff_since` at the end): the sessions kept growing; the cache, full by then, did
//! not.
//!
//! Each part labels its allocations (`heaptide::label`, `heaptide::label_guard`):
//! `component=http` for request handling, `component=cache` for the cache and
//! `component=sessions` for the session list, so the report also gives memory by component.
//!
//! ```text
//! cargo run --release --example demo
//! HEAPTIDE_SAMPLE=64KiB cargo run --release --example demo   # denser sampling
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

/// Entries the cache holds at most.
const CACHE_CAPACITY: usize = 2_000;
/// Requests each worker handles.
const REQUESTS_PER_WORKER: u64 = 150_000;

static SESSIONS: Mutex<Vec<Session>> = Mutex::new(Vec::new());

#[allow(
    dead_code,
    reason = "kept only to hold memory, as a real session record would"
)]
struct Session {
    user: String,
    history: Vec<u64>,
}

struct Cache {
    entries: Mutex<HashMap<u64, Vec<u8>>>,
}

impl Cache {
    /// Returns the cached rendering of `key`, rendering and inserting it while there is room.
    #[inline(never)]
    fn lookup_or_render(&self, key: u64) -> usize {
        let mut entries = self.entries.lock().unwrap();
        if let Some(v) = entries.get(&key) {
            return v.len();
        }
        let rendered = heaptide::label("component", "cache", || render_page(key));
        let len = rendered.len();
        if entries.len() < CACHE_CAPACITY {
            entries.insert(key, rendered);
        }
        len
    }
}

/// 1-4 KiB of page per key.
#[inline(never)]
fn render_page(key: u64) -> Vec<u8> {
    vec![(key % 251) as u8; 1024 + (key as usize % 3) * 1024]
}

/// The bug: every 16th request adds a session record that is never removed.
#[inline(never)]
fn remember_session(request: u64) {
    if request % 16 != 0 {
        return;
    }
    heaptide::label("component", "sessions", || {
        let session = Session {
            user: format!("user-{request:08}"),
            history: vec![request; 128],
        };
        SESSIONS.lock().unwrap().push(session);
    });
}

/// Reads a request into a fresh buffer and builds the response: all short-lived.
#[inline(never)]
fn handle_request(cache: &Cache, request: u64) -> usize {
    let _label = heaptide::label_guard("component", "http");
    let mut body = Vec::with_capacity(512);
    body.extend((0..(256 + request % 768)).map(|i| (i ^ request) as u8));
    let key = request % 10_000;
    let page = cache.lookup_or_render(key);
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
        page + body.len()
    );
    remember_session(request);
    response.len() + body.len()
}

fn main() {
    let started = Instant::now();
    let cache = Cache {
        entries: Mutex::new(HashMap::new()),
    };
    // Two halves, with a mark between them.
    let half = REQUESTS_PER_WORKER / 2;
    let mut served = 0;
    for requests in [0..half, half..REQUESTS_PER_WORKER] {
        if requests.start > 0 {
            heaptide::mark("half-way");
        }
        served += std::thread::scope(|s| {
            let workers: Vec<_> = (0..2u64)
                .map(|w| {
                    let (cache, requests) = (&cache, requests.clone());
                    s.spawn(move || {
                        let mut bytes = 0u64;
                        for i in requests {
                            bytes += handle_request(cache, w * REQUESTS_PER_WORKER + i) as u64;
                        }
                        bytes
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum::<u64>()
        });
    }
    let elapsed = started.elapsed();

    let report = heaptide::report();
    println!("{report}");
    if let Some(diff) = heaptide::diff_since("half-way") {
        println!("Since half-way:\n{diff}");
    }
    let sessions = SESSIONS.lock().unwrap().len();
    println!(
        "demo: served {} requests ({} MiB of responses) in {:.2?}; {} sessions remembered, {} pages cached",
        2 * REQUESTS_PER_WORKER,
        served >> 20,
        elapsed.max(Duration::from_millis(1)),
        sessions,
        cache.entries.lock().unwrap().len(),
    );
}
