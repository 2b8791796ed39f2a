//! The README's examples of `heaptide::testing` failures. Each test fails on purpose, so they
//! are ignored; the README pastes what they print:
//! `RUST_BACKTRACE=0 cargo test --test readme_examples -- --ignored` (and
//! `worker_threads_do_not_leak` alone, as `all_threads` tracks the runner's other threads).

use std::hint::black_box;
use std::sync::Mutex;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

static SESSIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[inline(never)]
fn handle_request(user: &str) -> usize {
    let greeting = format!("hello, {user}");
    SESSIONS.lock().unwrap().push(greeting.clone()); // kept: a leak per call
    greeting.len()
}

#[inline(never)]
fn render_page() -> usize {
    black_box(vec![0u8; 1 << 20]).len()
}

#[test]
#[ignore = "fails on purpose: the README's example output"]
fn handler_does_not_leak() {
    heaptide::testing::assert_no_leaks(|| handle_request("ada"));
}

#[test]
#[ignore = "fails on purpose: the README's example output"]
fn handler_does_not_grow_per_call() {
    heaptide::testing::assert_no_growth(10, 100, || {
        handle_request("ada");
    });
}

#[test]
#[ignore = "fails on purpose: the README's example output"]
fn page_stays_under_1_mib() {
    heaptide::testing::assert_peak_below(1 << 20, render_page);
}

#[test]
#[ignore = "fails on purpose: the README's example output"]
fn worker_threads_do_not_leak() {
    heaptide::testing::options()
        .all_threads()
        .assert_no_leaks(|| std::thread::spawn(|| handle_request("bob")).join().unwrap());
}

#[test]
#[ignore = "fails on purpose: the README's example output"]
fn small_leaks_per_site_allowed() {
    heaptide::testing::options()
        .leak_limit_per_site(16)
        .assert_no_leaks(|| handle_request("a-rather-long-user-name"));
}
