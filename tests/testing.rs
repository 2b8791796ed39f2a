//! `heaptide::testing`: leak, growth and peak assertions under the default parallel runner,
//! with the allocator in its default (sampled) mode, as a user's test crate would have it.

use std::hint::black_box;
use std::sync::{Arc, Barrier, LazyLock, Mutex};

use heaptide::testing::{self, assert_no_growth, assert_no_leaks, assert_peak_below, track};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new();

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn leaky_function(bytes: usize) {
    KEPT.lock().unwrap().push(black_box(vec![7u8; bytes]));
}

#[inline(never)]
fn tidy_function() -> usize {
    let v: Vec<u64> = (0..1000).collect();
    let s = format!("{:?}", &v[..10]);
    v.len() + s.len()
}

#[test]
fn no_leak_passes_and_the_return_value_is_dropped() {
    assert_no_leaks(tidy_function);
    assert_no_leaks(|| vec![1u8; 4096]);
}

#[test]
#[should_panic(expected = "leaky_function")]
fn a_leak_fails_naming_the_function() {
    assert_no_leaks(|| leaky_function(1000));
}

#[test]
#[should_panic(expected = "3 KiB in 3 blocks")]
fn the_message_gives_bytes_and_blocks() {
    assert_no_leaks(|| {
        for _ in 0..3 {
            Box::leak(black_box(Box::new([0u8; 1024])));
        }
    });
}

#[inline(never)]
fn leak_boxes(n: usize) {
    for i in 0..10 {
        let b = black_box(Box::new([i as u8; 1000]));
        if i < n {
            Box::leak(b);
        }
    }
}

#[test]
fn track_counts_exactly() {
    let t = track(|| leak_boxes(3));
    assert_eq!(t.leaked_bytes, 3000, "{t}");
    assert_eq!(t.leaked_blocks, 3, "{t}");
    assert_eq!(t.alloc_count, 10, "{t}");
    assert_eq!(t.alloc_bytes, 10_000, "{t}");
    assert_eq!(t.peak_bytes, 4000, "{t}");
    assert_eq!(t.leaks.len(), 1, "{t}");
    let blamed = t.leaks[0].blamed_frame().unwrap();
    assert!(blamed.function.contains("leak_boxes"), "{t}");
    assert!(
        blamed.file.as_deref().unwrap().ends_with("testing.rs"),
        "{t}"
    );
    assert!(blamed.line.is_some(), "{t}");
}

#[test]
fn frees_on_another_thread_count_as_freed() {
    let t = track(|| {
        let data = black_box(vec![1u8; 50_000]);
        let handle = std::thread::spawn(move || drop(data));
        handle.join().unwrap();
    });
    assert!(!t.leaked(), "{t}");
    assert!(t.alloc_bytes >= 50_000, "{t}");
}

#[test]
fn threads_spawned_inside_are_not_tracked() {
    let t = track(|| {
        std::thread::spawn(|| {
            // The spawned thread's own allocation (and leak) is not the closure's.
            Box::leak(black_box(vec![0u8; 1 << 20]).into_boxed_slice());
        })
        .join()
        .unwrap();
    });
    assert!(!t.leaked(), "{t}");
    assert!(t.alloc_bytes < 1 << 20, "{t}");
}

#[test]
fn sixteen_parallel_tracked_closures_get_their_own_verdicts() {
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let t = track(|| {
                    let mut scratch = Vec::new();
                    for j in 0..200 {
                        scratch.push(black_box(vec![j as u8; 64 + i]));
                    }
                    if i % 2 == 1 {
                        Box::leak(black_box(vec![0u8; 1000 * i]).into_boxed_slice());
                    }
                    drop(scratch);
                });
                (i, t)
            })
        })
        .collect();
    for h in handles {
        let (i, t) = h.join().unwrap();
        if i % 2 == 1 {
            assert_eq!(
                (t.leaked_bytes, t.leaked_blocks),
                (1000 * i as u64, 1),
                "{i}: {t}"
            );
        } else {
            assert!(!t.leaked(), "{i}: {t}");
        }
        // Each saw only its own 200 scratch blocks (+ the scratch vector's growth, + leak).
        let scratch = 200 * (64 + i as u64);
        assert!(t.alloc_bytes >= scratch, "{i}: {t}");
        assert!(t.alloc_count <= 200 + 12, "{i}: {t}");
    }
}

static LAZY_TABLE: LazyLock<Mutex<Vec<String>>> =
    LazyLock::new(|| Mutex::new((0..100).map(|i| i.to_string()).collect()));

#[inline(never)]
fn uses_lazy_table() -> usize {
    let table = LAZY_TABLE.lock().unwrap();
    let s = format!("{}", table.len());
    s.len()
}

#[test]
fn growth_mode_tolerates_lazy_init_in_warmup_or_first_calls() {
    assert_no_growth(1, 50, || {
        black_box(uses_lazy_table());
    });
    // Without warm-up, a one-time cache fill in the first call is not growth either.
    static CACHE: LazyLock<Mutex<Vec<String>>> = LazyLock::new(Default::default);
    assert_no_growth(0, 50, || {
        let mut c = CACHE.lock().unwrap();
        if c.is_empty() {
            c.extend((0..64).map(|i| format!("entry {i}")));
        }
    });
}

static GROWING: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[inline(never)]
fn grows_per_call() {
    GROWING.lock().unwrap().push(black_box("x".repeat(100)));
}

#[test]
#[should_panic(expected = "grows_per_call")]
fn growth_mode_catches_a_per_call_leak() {
    assert_no_growth(5, 40, grows_per_call);
}

#[inline(never)]
fn big_buffer() -> usize {
    let buf = black_box(vec![0u8; 1 << 20]);
    buf.len()
}

#[test]
fn peak_is_the_highest_moment() {
    let t = track(|| {
        let a = black_box(vec![0u8; 100_000]);
        drop(a);
        let b = black_box(vec![0u8; 50_000]);
        drop(b);
    });
    assert_eq!(t.peak_bytes, 100_000, "{t}");
    assert!(!t.leaked(), "{t}");
    assert_peak_below(200_000, big_buffer_small);
}

#[inline(never)]
fn big_buffer_small() -> usize {
    black_box(vec![0u8; 100_000]).len()
}

#[test]
#[should_panic(expected = "big_buffer")]
fn peak_over_the_limit_names_the_holder() {
    assert_peak_below(512 * 1024, big_buffer);
}

#[test]
fn untracked_guard_and_frame_filter_allow_intended_allocations() {
    static REGISTRY: Mutex<Vec<String>> = Mutex::new(Vec::new());
    assert_no_leaks(|| {
        let name = format!("worker-{}", 7);
        testing::untracked(|| REGISTRY.lock().unwrap().push(name.clone()));
    });
    let t = track(|| leaky_function(10)).ignoring(|f| f.function.contains("leaky_function"));
    assert!(!t.leaked(), "{t}");
    let t = track(|| leaky_function(10));
    assert!(t.leaked(), "{t}");
}

#[test]
fn a_panic_inside_ends_tracking_and_nesting_is_refused() {
    let r = std::panic::catch_unwind(|| track(|| panic!("boom")));
    assert!(r.is_err());
    // The thread is no longer tracked: a new scope can start.
    assert_no_leaks(tidy_function);
    let nested = std::panic::catch_unwind(|| track(|| track(tidy_function)));
    let msg = nested.unwrap_err();
    let msg = msg.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(msg.contains("cannot be nested"), "{msg}");
    assert_no_leaks(tidy_function);
}

#[test]
fn process_profile_keeps_working_around_tracked_scopes() {
    let t = track(|| leak_boxes(2));
    assert_eq!(t.leaked_bytes, 2000);
    let report = heaptide::report();
    // Tracked allocations enter the process profile with weight 1: exact, not inflated.
    let site: u64 = report
        .sites_mentioning("leak_boxes")
        .map(|s| s.live_bytes)
        .sum();
    assert!(site >= 2000 && site % 1000 == 0, "{site}");
}

#[inline(never)]
fn exactly(bytes: usize) -> usize {
    black_box(vec![0u8; bytes]).len()
}

#[test]
fn a_peak_equal_to_the_limit_fails() {
    // The closure's peak is exactly one 100,000-byte buffer.
    assert_eq!(track(|| exactly(100_000)).peak_bytes, 100_000);
    assert_peak_below(100_001, || exactly(100_000));
    let r = std::panic::catch_unwind(|| assert_peak_below(100_000, || exactly(100_000)));
    let msg = panic_message(r.unwrap_err());
    assert!(
        msg.contains("97.7 KiB (100,000 B) live at the peak, not below the limit of 97.7 KiB"),
        "{msg}"
    );
    assert!(msg.contains("testing::exactly"), "{msg}");
    assert!(msg.contains("To fix:"), "{msg}");
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn a_per_site_limit_allows_small_leaks() {
    // 1000 bytes kept, plus the global Vec's own growth: each site under 4 KiB.
    testing::options()
        .leak_limit_per_site(4096)
        .assert_no_leaks(|| leaky_function(1000));
    let r = std::panic::catch_unwind(|| {
        testing::options()
            .leak_limit_per_site(512)
            .assert_no_leaks(|| leaky_function(1000))
    });
    let msg = panic_message(r.unwrap_err());
    assert!(
        msg.contains("1 site is over the limit of 512 B per site"),
        "{msg}"
    );
    assert!(
        msg.contains("1000 B in 1 block allocated at testing::leaky_function"),
        "{msg}"
    );
}

#[test]
fn a_whole_stack_filter_ignores_known_allocations() {
    // Ignored only when leaky_function is called from this test's closure: the filter sees
    // the whole stack.
    testing::options()
        .ignore_stacks(|frames| {
            let at = |name: &str| frames.iter().position(|f| f.function.contains(name));
            matches!(
                (at("leaky_function"), at("a_whole_stack_filter_ignores")),
                (Some(a), Some(b)) if a < b
            )
        })
        .assert_no_leaks(|| leaky_function(100));
    let t = track(|| leaky_function(100)).ignoring_stacks(|frames| frames.is_empty());
    assert!(t.leaked(), "{t}");
}

/// A bounded LRU cache: at most `cap` entries; a hit moves the key to the back, a miss past
/// the bound evicts the front. Its map hashes with fixed keys, so when the table rehashes or
/// doubles (deletions leave tombstones) depends on the seed alone, not on the process's random
/// hash keys: each seed's run is the same every time.
struct Lru {
    cap: usize,
    map: std::collections::HashMap<
        u64,
        String,
        std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>,
    >,
    order: std::collections::VecDeque<u64>,
}

impl Lru {
    fn new(cap: usize) -> Lru {
        Lru {
            cap,
            map: std::collections::HashMap::with_capacity_and_hasher(cap + 1, Default::default()),
            order: std::collections::VecDeque::with_capacity(cap + 1),
        }
    }

    #[inline(never)]
    fn get(&mut self, key: u64) -> usize {
        if let Some(v) = self.map.get(&key) {
            let len = v.len();
            let i = self.order.iter().position(|&k| k == key).unwrap();
            self.order.remove(i);
            self.order.push_back(key);
            return len;
        }
        let value = "v".repeat(8 + (key % 33) as usize);
        let len = value.len();
        self.map.insert(key, value);
        self.order.push_back(key);
        if self.order.len() > self.cap {
            let old = self.order.pop_front().unwrap();
            self.map.remove(&old);
        }
        len
    }
}

/// xorshift64*: keys for the cache.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[inline(never)]
fn leak_one_block() {
    Box::leak(black_box(Box::new([0u8; 128])));
}

#[test]
fn a_bounded_lru_cache_passes_and_a_block_per_call_fails_ten_seeds_of_ten() {
    for seed in 1..=10u64 {
        let mut cache = Lru::new(64);
        let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        // 200 warm-up calls fill the cache; then 200 tracked calls evict and refill.
        assert_no_growth(200, 200, || {
            black_box(cache.get(next(&mut state) % 500));
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_no_growth(200, 200, || {
                black_box(cache.get(next(&mut state) % 500));
                leak_one_block();
            })
        }));
        let msg = panic_message(r.expect_err("one 128-byte block per call must fail"));
        // One site for the leak, keyed by the user's frames (not one per line of the
        // assertion that calls the closure).
        assert_eq!(
            msg.matches("allocated at testing::leak_one_block").count(),
            1,
            "seed {seed}: {msg}"
        );
        // About 128 B per call (least squares over the second half, with the cache's own
        // jitter and, in some seeds, its hash table doubling once in that half): 126-148 B,
        // and 228 and 233 B for seeds 9 and 4, whose tables double there.
        let per_call: u64 = msg
            .split("about ")
            .nth(1)
            .and_then(|rest| rest.split(" B per call").next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("seed {seed}: {msg}"));
        assert!((112..=256).contains(&per_call), "seed {seed}: {msg}");
    }
}

#[test]
fn growth_tolerance_is_stated_and_applied() {
    let mut n = 0u64;
    // 40 blocks of 128 B between the second and the last quarter: 5 KiB. A tolerance of
    // 64 KiB accepts it.
    testing::options()
        .growth_tolerance(64 * 1024)
        .assert_no_growth(0, 100, || {
            n += 1;
            leak_one_block();
        });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert_no_growth(0, 100, leak_one_block)
    }));
    let msg = panic_message(r.unwrap_err());
    assert!(msg.contains("(tolerance 0 B)"), "{msg}");
    assert_eq!(n, 100);
}

#[test]
fn the_default_leak_limit_comes_from_the_environment() {
    if std::env::var_os("HEAPTIDE_TESTING_CHILD").is_some() {
        // A 1000-byte leak passes under HEAPTIDE_TEST_LEAK_LIMIT=4KiB and fails otherwise.
        assert_no_leaks(|| leaky_function(1000));
        return;
    }
    let run = |value: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "the_default_leak_limit_comes_from_the_environment",
                "--test-threads=1",
            ])
            .env("HEAPTIDE_TESTING_CHILD", "1")
            .env(testing::LEAK_LIMIT_VAR, value)
            .output()
            .unwrap()
    };
    let ok = run("4KiB");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(
        ok.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = run("lots");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(
        err.lines()
            .filter(|l| l.starts_with("heaptide: ignoring HEAPTIDE_TEST_LEAK_LIMIT=\"lots\""))
            .count(),
        1,
        "{err}"
    );
}

static FIRST_USE: LazyLock<Vec<String>> =
    LazyLock::new(|| (0..10).map(|i| format!("entry {i}")).collect());

#[inline(never)]
fn reads_first_use() -> usize {
    FIRST_USE.len()
}

#[test]
fn a_lazy_static_leaks_in_the_first_closure_that_touches_it() {
    // The first tracked closure to touch it allocates it, and it lives on: a leak of that
    // closure (whichever test runs first).
    let t = track(reads_first_use);
    assert!(t.leaked_blocks >= 10, "{t}");
    // Once it is filled (a warm-up call), the same check passes...
    assert_no_leaks(reads_first_use);
    // ...and the growth check never counted it.
    assert_no_growth(0, 20, || {
        black_box(reads_first_use());
    });
}

#[test]
fn a_one_time_step_in_the_measured_calls_is_not_growth() {
    // A table that doubles once, in the third quarter of the calls, while the rest churns: a
    // step up, then flat. Growth needs the last quarter to keep rising.
    static TABLE: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    let mut call = 0;
    assert_no_growth(10, 200, || {
        call += 1;
        let mut table = TABLE.lock().unwrap();
        if call == 140 {
            table.reserve_exact(1024);
        }
        black_box(format!("request {call}"));
    });
}
