//! A small service that runs for a while, to try the heaptide command on: two workers handle
//! requests (a fresh buffer each, freed at once), a cache fills up to a bound, and
//! `remember_session` keeps about 1 KiB per request in a list nobody trims (a slow leak).
//!
//! It serves heaptide's HTTP endpoints where `HEAPTIDE_HTTP` says, writes a dump on
//! `kill -USR1 <pid>` (into `HEAPTIDE_DIR`), prints its pid, and stops after the number of
//! seconds its argument gives (default 300):
//!
//! ```text
//! HEAPTIDE_HTTP=127.0.0.1:6060 HEAPTIDE_DIR=/tmp cargo run --release -p heaptide-cli --example service
//! heaptide top 127.0.0.1:6060
//! ```

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

/// Entries the cache holds at most.
const CACHE_CAPACITY: u64 = 2_000;

/// Requests each worker handles per second.
const REQUESTS_PER_SECOND: u64 = 200;

/// The sessions nobody trims.
static SESSIONS: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Keeps about 1 KiB of session state per request, for ever: the leak.
#[inline(never)]
fn remember_session(request: u64) {
    let state = vec![(request % 251) as u8; 1000 + (request % 48) as usize];
    SESSIONS.lock().unwrap().push(state);
}

/// A page of 1-3 KiB, kept by the cache.
#[inline(never)]
fn render_page(key: u64) -> Vec<u8> {
    vec![(key % 256) as u8; 1024 + (key % 2048) as usize]
}

/// Reads a request into a fresh buffer and answers it: churn, freed before the next one.
#[inline(never)]
fn handle_request(cache: &Mutex<HashMap<u64, Vec<u8>>>, request: u64) -> usize {
    let body = black_box(vec![0u8; 16 << 10]);
    let key = request % (2 * CACHE_CAPACITY);
    let page_len = {
        let mut cache = cache.lock().unwrap();
        if (cache.len() as u64) < CACHE_CAPACITY || cache.contains_key(&key) {
            cache.entry(key).or_insert_with(|| render_page(key)).len()
        } else {
            render_page(key).len()
        }
    };
    remember_session(request);
    body.len() + page_len
}

fn main() {
    let seconds: u64 = match std::env::args().nth(1) {
        None => 300,
        Some(arg) => arg.parse().unwrap_or_else(|_| {
            eprintln!("usage: service [SECONDS]");
            std::process::exit(2)
        }),
    };
    println!(
        "service: pid {}, running for {seconds} s (kill -USR1 {} writes a dump)",
        std::process::id(),
        std::process::id()
    );
    let cache = Mutex::new(HashMap::new());
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for worker in 0..2u64 {
            let (cache, stop) = (&cache, &stop);
            s.spawn(move || {
                let mut request = worker << 40;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..REQUESTS_PER_SECOND / 10 {
                        black_box(handle_request(cache, request));
                        request += 1;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    println!(
        "service: {} sessions remembered in {:.0?}",
        SESSIONS.lock().unwrap().len(),
        started.elapsed()
    );
}
