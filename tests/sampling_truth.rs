//! Truthful numbers, in fresh processes (heaptide reads `HEAPTIDE_SAMPLE` and `HEAPTIDE_SEED`
//! once, at the process's first allocation): the test binary re-runs itself as a child with the
//! variables set, and the child prints the figures it found on stdout.
//!
//! - no phantom sample: a program that allocates next to nothing is not charged an interval's
//!   worth of bytes by its first allocation, nor by what heaptide's initialisation allocates;
//! - same seed, same report: a program with one worker thread gets identical estimates in
//!   every run with the same `HEAPTIDE_SEED`;
//! - exact mode counts everything: blocks too large for the sampled range, and nothing of the
//!   drain thread's own start-up shows up as a program site.

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new();

mod common;

use common::Rng;
use common::child::{CHILD, Scratch, run_child};

// === the children ===

/// Starts what a child prints for the parent.
const MARK: &str = "figures: ";

/// Dispatches on `HEAPTIDE_TEST_CHILD`; a no-op in a normal test run.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    match case.as_str() {
        "idle" => idle(),
        "one_worker" => one_worker(),
        "exact_drain" => exact_drain(),
        "exact_big_limited" => exact_big_limited(),
        "exact_big" => exact_big(),
        other => panic!("unknown child case {other}"),
    }
}

/// Allocates nothing itself; prints the estimated bytes of every site (program and harness).
fn idle() {
    let r = heaptide::report();
    println!(
        "{MARK}estimate {} live {} samples {}",
        r.totals.alloc_bytes, r.totals.live_bytes, r.profiler.samples
    );
}

#[inline(never)]
fn worker_leaf(size: usize) -> Vec<u8> {
    std::hint::black_box(vec![1u8; size])
}

/// One worker thread allocates a fixed sequence of mixed sizes (keeping a quarter of them);
/// prints the estimates of the worker's site and of the whole report.
fn one_worker() {
    let kept = std::thread::spawn(|| {
        let mut rng = Rng(0x5eed);
        let mut kept = Vec::new();
        for i in 0..20_000 {
            let size = 16 + (rng.next() % 8192) as usize;
            let v = worker_leaf(size);
            if i % 4 == 0 {
                kept.push(v);
            }
        }
        kept
    })
    .join()
    .unwrap();
    let r = heaptide::report();
    let mut line = String::new();
    for s in r.sites_mentioning("worker_leaf") {
        line += &format!(
            "site alloc {} {} live {} {} samples {}; ",
            s.alloc_bytes, s.alloc_count, s.live_bytes, s.live_count, s.samples
        );
    }
    println!(
        "{MARK}{line}total alloc {} {} live {} {} samples {} dropped {}",
        r.totals.alloc_bytes,
        r.totals.alloc_count,
        r.totals.live_bytes,
        r.totals.live_count,
        r.profiler.samples,
        r.profiler.dropped
    );
    drop(kept);
}

/// Exact mode: every allocation starts the drain thread if it is not running; prints how many
/// threads took a ring slot (a thread takes one on its first recorded allocation) and the
/// bytes of the sites rooted in a thread's start (std's `thread_start`).
fn exact_drain() {
    let _v = worker_leaf(100);
    // std names a thread after its start-up allocations: once the drain thread has its name,
    // they have been recorded if they are recorded at all.
    let named = common::child::wait_until(std::time::Duration::from_secs(20), || {
        std::fs::read_dir("/proc/self/task").unwrap().any(|t| {
            let comm = t.unwrap().path().join("comm");
            std::fs::read_to_string(comm).is_ok_and(|c| c.trim() == "heaptide-drain")
        })
    });
    assert!(named, "no drain thread");
    let r = heaptide::report();
    let start_up: u64 = r
        .sites_mentioning("thread_start")
        .filter(|s| !s.mentions("sampling_truth"))
        .map(|s| s.alloc_bytes)
        .sum();
    println!(
        "{MARK}slots {} start_up {start_up}",
        r.profiler.thread_slots
    );
}

/// Limits the address space to 3 GiB, so the sampled range falls back to its smallest size
/// (1 GiB), and runs `exact_big` in this process under the limit.
fn exact_big_limited() {
    use std::os::unix::process::CommandExt as _;
    let limit = libc::rlimit {
        rlim_cur: 3 << 30,
        rlim_max: 3 << 30,
    };
    // SAFETY: a valid rlimit value; lowering a soft and hard limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
    let err = std::process::Command::new(std::env::current_exe().unwrap())
        .args(std::env::args_os().skip(1))
        .env(CHILD, "exact_big")
        .exec();
    panic!("exec failed: {err}");
}

#[inline(never)]
fn big_leaf(size: usize) -> Vec<u8> {
    std::hint::black_box(vec![0u8; size])
}

/// Exact mode, a range of 1 GiB: a block of 1.25 GiB, then resized down to 1 MiB, then freed;
/// prints the live bytes of its site at each step.
fn exact_big() {
    const BIG: usize = 1280 << 20;
    let live = |needle: &str| -> u64 {
        heaptide::report()
            .sites_mentioning(needle)
            .map(|s| s.live_bytes)
            .sum()
    };
    let mut v = big_leaf(BIG);
    v[BIG - 1] = 1;
    let whole = live("big_leaf");
    v.truncate(1 << 20);
    v.shrink_to_fit();
    let shrunk = live("exact_big") - live("big_leaf");
    drop(v);
    let freed = live("exact_big");
    println!(
        "{MARK}whole {whole} shrunk {shrunk} freed {freed} dropped {}",
        heaptide::report().profiler.dropped
    );
}

// === the tests ===

/// What the child printed (after libtest's `test child ... `), up to the end of that line.
fn printed(stdout: &str) -> String {
    let at = stdout
        .find(MARK)
        .unwrap_or_else(|| panic!("no figures in {stdout:?}"));
    stdout[at + MARK.len()..]
        .lines()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn no_phantom_first_sample() {
    let scratch = Scratch::new("phantom");
    const R: u64 = 64 << 20;
    let mut big = Vec::new();
    for seed in 0..20 {
        let run = run_child(
            "idle",
            &scratch,
            &[
                ("HEAPTIDE_SAMPLE", "64MiB".to_string()),
                ("HEAPTIDE_SEED", seed.to_string()),
            ],
        );
        let line = printed(&run.stdout);
        let estimate: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        if estimate >= R / 2 {
            big.push((seed, line.to_string()));
        }
    }
    assert!(big.len() <= 2, "phantom samples: {big:?}");
}

/// Runs child `case` `runs` times with `vars`; returns what each run printed.
fn runs(case: &str, tag: &str, n: usize, vars: &[(&str, &str)]) -> Vec<String> {
    let scratch = Scratch::new(tag);
    (0..n)
        .map(|_| printed(&run_child(case, &scratch, vars).stdout))
        .collect()
}

#[test]
fn same_seed_same_report_with_one_worker_thread() {
    let vars = [("HEAPTIDE_SAMPLE", "64KiB"), ("HEAPTIDE_SEED", "7")];
    let seen = runs("one_worker", "seeded", 4, &vars);
    assert!(seen[0].contains("site alloc"), "{seen:?}");
    assert!(
        seen.iter().all(|s| *s == seen[0]),
        "runs with the same seed differ:\n{}",
        seen.join("\n")
    );
    // Another seed gives another report (the seed is used at all).
    let other = runs(
        "one_worker",
        "seeded2",
        1,
        &[("HEAPTIDE_SAMPLE", "64KiB"), ("HEAPTIDE_SEED", "8")],
    );
    assert_ne!(other[0], seen[0]);
}

#[test]
fn exact_mode_records_nothing_of_the_drain_thread() {
    // The child's threads: main and libtest's thread for the test. The drain thread must take
    // no ring slot (it records nothing) and add nothing to the thread start-up sites.
    let seen = runs("exact_drain", "drain", 1, &[("HEAPTIDE_SAMPLE", "1")]);
    let fields: Vec<&str> = seen[0].split_whitespace().collect();
    let slots: u64 = fields[1].parse().unwrap();
    assert!(slots <= 2, "{}", seen[0]);
}

#[test]
fn exact_mode_counts_blocks_larger_than_the_sampled_range() {
    let seen = runs("exact_big_limited", "big", 1, &[("HEAPTIDE_SAMPLE", "1")]);
    assert_eq!(
        seen[0],
        format!(
            "whole {} shrunk {} freed 0 dropped 0",
            1280u64 << 20,
            1u64 << 20
        ),
        "a block the sampled range cannot hold must be counted in exact mode"
    );
}
