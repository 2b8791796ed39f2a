//! The leak detector on scenario programs: each scenario runs in a fresh child process (the
//! snapshot history is process-wide), allocates in ticks with a snapshot after each, and checks
//! the detector's verdict on its own call sites. Sampled mode (one sample per 16 KiB on
//! average, fixed seed), as in production, only denser.
//!
//! Deterministic: each snapshot is stamped with the tick's time on an injected clock
//! ([`heaptide::snapshot_at`], 100 ms per tick), so nothing sleeps and the verdicts do not
//! depend on how busy the machine is.

use std::collections::HashMap;
use std::hint::black_box;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use heaptide::Report;
use heaptide::report::{Pattern, Severity};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(16 * 1024).seed(7);

const SCENARIO: &str = "HEAPTIDE_TEST_SCENARIO";
const TICKS: usize = 60;

/// Time between ticks on the injected clock.
const PERIOD: Duration = Duration::from_millis(100);

/// Runs `tick(i)` for every tick, with a snapshot stamped `i * PERIOD` after each, then
/// reports.
fn run_ticks(mut tick: impl FnMut(usize)) -> Report {
    for i in 0..TICKS {
        tick(i);
        heaptide::snapshot_at(PERIOD * i as u32);
    }
    heaptide::report()
}

/// The leak candidates whose stack mentions `name`.
fn leaks_at<'a>(r: &'a Report, name: &str) -> Vec<&'a heaptide::report::Leak> {
    r.leaks
        .iter()
        .filter(|l| l.frames.iter().any(|f| f.function.contains(name)))
        .collect()
}

/// The detector's pattern for the sites mentioning `name` (the site with most live bytes).
fn pattern_at(r: &Report, name: &str) -> Option<Pattern> {
    r.sites_mentioning(name)
        .max_by_key(|s| s.live_bytes)
        .and_then(|s| s.pattern)
}

fn describe(r: &Report) -> String {
    let mut out = String::new();
    for l in &r.leaks {
        out += &format!(
            "leak {:?} {:?} {:.0} B/h conf {:.2} at {:?}: {}\n",
            l.pattern,
            l.severity,
            l.growth_bytes_per_hour,
            l.confidence,
            l.frames
                .iter()
                .find(|f| f.function.starts_with("leak_detector::"))
                .map(|f| &f.function),
            l.reason
        );
    }
    for s in r.top_by_live(8) {
        out += &format!(
            "site {:?} live {} at {:?}\n",
            s.pattern,
            s.live_bytes,
            s.frames
                .iter()
                .find(|f| f.function.starts_with("leak_detector::"))
                .map(|f| &f.function)
        );
    }
    out
}

fn assert_leak<'a>(r: &'a Report, name: &str, pattern: Pattern) -> &'a heaptide::report::Leak {
    let found = leaks_at(r, name);
    assert_eq!(
        found.len(),
        1,
        "one leak at {name} expected:\n{}",
        describe(r)
    );
    let leak = found[0];
    assert_eq!(leak.pattern, pattern, "{}", describe(r));
    // The JSON names the frame to blame: the test's function, not the standard library's.
    let blamed = leak.blamed.as_ref().expect("a leak names its blamed frame");
    assert!(
        blamed.function.starts_with("leak_detector::"),
        "blamed {blamed:?}"
    );
    assert!(leak.growth_bytes_per_hour > 0.0);
    assert!((0.0..=1.0).contains(&leak.confidence));
    assert!(leak.confidence >= 0.5, "{}", describe(r));
    assert!(!leak.reason.is_empty());
    assert!(leak.live_bytes > 0 && leak.live_samples > 0);
    assert!(leak.history.len() >= TICKS);
    // Ages are measured on the real clock (the injected one stamps snapshots only): how far
    // apart they are depends on how fast the machine ran the ticks, and a stall before the
    // report can put them all in one bucket of the histogram. So: there are ages, in order.
    let ages = leak.age_ns.expect("a leak has live objects with ages");
    assert!(
        ages.count > 0 && ages.p50 <= ages.p90 && ages.p90 <= ages.max,
        "{ages:?}"
    );
    leak
}

fn assert_not_leak(r: &Report, name: &str) {
    assert!(
        leaks_at(r, name).is_empty(),
        "{name} must not be a leak:\n{}",
        describe(r)
    );
}

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn leak_steady(n: usize) {
    let mut kept = KEPT.lock().unwrap();
    for _ in 0..n {
        kept.push(black_box(vec![1u8; 1024]));
    }
}

#[inline(never)]
fn leak_fast(n: usize) {
    let mut kept = KEPT.lock().unwrap();
    for _ in 0..n {
        kept.push(black_box(vec![2u8; 1024]));
    }
}

#[inline(never)]
fn leak_slow(n: usize) {
    let mut kept = KEPT.lock().unwrap();
    for _ in 0..n {
        kept.push(black_box(vec![3u8; 1024]));
    }
}

#[inline(never)]
fn leak_accelerating(n: usize) {
    let mut kept = KEPT.lock().unwrap();
    for _ in 0..n {
        kept.push(black_box(vec![4u8; 1024]));
    }
}

static CACHE: Mutex<Option<HashMap<usize, Vec<u8>>>> = Mutex::new(None);

#[inline(never)]
fn cache_fill(key: usize) -> usize {
    let mut cache = CACHE.lock().unwrap();
    let cache = cache.get_or_insert_with(HashMap::new);
    cache
        .entry(key % 2000)
        .or_insert_with(|| black_box(vec![5u8; 1024]))
        .len()
}

static SAW: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn sawtooth_buffer(i: usize) {
    let mut saw = SAW.lock().unwrap();
    if i % 12 == 11 {
        saw.clear();
        saw.shrink_to_fit();
    } else {
        for _ in 0..128 {
            saw.push(black_box(vec![6u8; 1024]));
        }
    }
}

static SLOW_SAW: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn slow_saw(release: bool) {
    let mut saw = SLOW_SAW.lock().unwrap();
    if release {
        saw.clear();
        saw.shrink_to_fit();
    } else {
        for _ in 0..64 {
            saw.push(black_box(vec![9u8; 1024]));
        }
    }
}

#[inline(never)]
fn leak_late(n: usize) {
    let mut kept = KEPT.lock().unwrap();
    for _ in 0..n {
        kept.push(black_box(vec![10u8; 1024]));
    }
}

static BIG: Mutex<Option<Vec<u8>>> = Mutex::new(None);

#[inline(never)]
fn big_buffer_once() {
    let mut big = BIG.lock().unwrap();
    if big.is_none() {
        *big = Some(black_box(vec![7u8; 8 << 20]));
    }
}

#[inline(never)]
fn churn(rounds: usize) -> usize {
    let mut total = 0;
    for i in 0..rounds {
        let v = black_box(vec![0u8; 16 + (i * 37) % 4000]);
        total += v.len();
        let s = black_box(format!("request {i} of {rounds}"));
        total += s.len();
    }
    total
}

/// The children: one scenario each.
fn scenario(name: &str) {
    match name {
        "steady" => {
            let r = run_ticks(|_| leak_steady(64));
            // The text report, for a person running the child by hand.
            println!("{r}");
            let l = assert_leak(&r, "leak_steady", Pattern::SteadyGrowth);
            // The JSON paths outside tools read.
            let mut json = Vec::new();
            r.write_json(&mut json).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
            let leak = &v["leaks"][0];
            assert!(leak["site_id"].is_u64() && leak["frames"][0]["function"].is_string());
            assert!(leak["live_bytes"].as_u64().unwrap() > 0);
            assert!(leak["growth_bytes_per_hour"].as_f64().unwrap() > 0.0);
            assert_eq!(leak["pattern"], "steady_growth");
            assert_eq!(leak["severity"], "critical");
            assert!(leak["confidence"].as_f64().unwrap() > 0.5);
            assert!(
                v["trend"]["heap"]["growth_bytes_per_hour"]
                    .as_f64()
                    .unwrap()
                    > 0.0
            );
            assert!(v["trend"]["rss"]["peak_bytes"].as_f64().unwrap() > 0.0);
            assert_eq!(v["health"]["status"], "warning");
            assert!(v["alerts"].is_array());
            assert_eq!(v["snapshots"]["points"].as_array().unwrap().len(), TICKS);
            // The text report shows the leaks first.
            let text = r.to_string();
            let leaks_at_line = text.find("Leak candidates").unwrap();
            assert!(leaks_at_line < text.find("Top sites by live bytes").unwrap());
            // 64 KiB per tick: the rate must be of the right order (noise, uneven ticks).
            assert!(
                l.live_bytes > 2 << 20 && l.live_bytes < 6 << 20,
                "{}",
                describe(&r)
            );
        }
        "accelerating" => {
            // Cubic growth: the amount leaked per tick grows with the square of the tick.
            let r = run_ticks(|i| leak_accelerating(1 + i * i / 16));
            assert_leak(&r, "leak_accelerating", Pattern::AcceleratingGrowth);
        }
        "two_leaks" => {
            let r = run_ticks(|_| {
                leak_fast(128);
                leak_slow(24);
            });
            let fast = assert_leak(&r, "leak_fast", Pattern::SteadyGrowth);
            let slow = assert_leak(&r, "leak_slow", Pattern::SteadyGrowth);
            assert!(fast.severity >= slow.severity);
            assert!(
                fast.growth_bytes_per_hour > 2.0 * slow.growth_bytes_per_hour,
                "{}",
                describe(&r)
            );
            let rank = |name: &str| {
                r.leaks
                    .iter()
                    .position(|l| l.frames.iter().any(|f| f.function.contains(name)))
                    .unwrap()
            };
            assert!(rank("leak_fast") < rank("leak_slow"), "{}", describe(&r));
        }
        "cache" => {
            // 100 new keys per tick for 20 ticks fill the 2,000-entry cache; then only hits.
            let r = run_ticks(|i| {
                for k in 0..100 {
                    black_box(cache_fill(if i < 20 { i * 100 + k } else { k * 7 }));
                }
            });
            assert_not_leak(&r, "cache_fill");
            assert_eq!(
                pattern_at(&r, "cache_fill"),
                Some(Pattern::Plateau),
                "{}",
                describe(&r)
            );
        }
        "sawtooth" => {
            let r = run_ticks(sawtooth_buffer);
            assert_not_leak(&r, "sawtooth_buffer");
            // Cleared on the last tick of each tooth; the site may be empty at the end.
            if let Some(p) = pattern_at(&r, "sawtooth_buffer") {
                assert_eq!(p, Pattern::Sawtooth, "{}", describe(&r));
            }
        }
        "big_buffer" => {
            let r = run_ticks(|_| big_buffer_once());
            assert_not_leak(&r, "big_buffer_once");
            let p = pattern_at(&r, "big_buffer_once");
            assert_eq!(p, Some(Pattern::StableLongLived), "{}", describe(&r));
        }
        "churn" => {
            let r = run_ticks(|_| {
                black_box(churn(3000));
                leak_slow(16);
            });
            assert_leak(&r, "leak_slow", Pattern::SteadyGrowth);
            assert_not_leak(&r, "churn");
            // Only the leak is flagged among the scenario's functions.
            for l in &r.leaks {
                let ours = l
                    .frames
                    .iter()
                    .any(|f| f.function.starts_with("leak_detector::"));
                if ours {
                    assert!(
                        l.frames.iter().any(|f| f.function.contains("leak_slow")),
                        "{}",
                        describe(&r)
                    );
                }
            }
        }
        "cross_thread" => {
            // A producer allocates 64 blocks a tick; a consumer thread frees 48 of them and keeps
            // 16: the producer's site leaks, and every free happens on the other thread.
            let (tx, rx) = std::sync::mpsc::channel::<Vec<Vec<u8>>>();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let kept = std::thread::spawn(move || {
                let mut kept = Vec::new();
                for mut batch in rx {
                    kept.extend(batch.drain(..16));
                    drop(batch);
                    done_tx.send(()).unwrap();
                }
                kept.len()
            });
            let r = run_ticks(|_| {
                tx.send(produce_batch(64)).unwrap();
                // The consumer has taken the batch before the snapshot.
                done_rx.recv().unwrap();
            });
            assert_leak(&r, "produce_batch", Pattern::SteadyGrowth);
            drop(tx);
            assert_eq!(kept.join().unwrap(), 16 * TICKS);
        }
        "real_after_injected" => {
            // Once snapshots are stamped on the caller's clock, one at a real time is not
            // recorded (nor is the drain thread's periodic one, which may have begun before).
            heaptide::snapshot_at(Duration::ZERO);
            heaptide::snapshot_at(PERIOD);
            heaptide::snapshot_now();
            let r = heaptide::report();
            let times: Vec<u64> = r.snapshots.points.iter().map(|p| p.timestamp_ms).collect();
            assert_eq!(times.len(), 2, "{times:?}");
            assert_eq!(times[1] - times[0], PERIOD.as_millis() as u64, "{times:?}");
        }
        "short_window" => {
            // Five ticks of a plain leak: no verdict yet, and the report says how many more
            // snapshots the detector needs.
            for i in 0..5 {
                leak_steady(64);
                heaptide::snapshot_at(PERIOD * i);
            }
            let r = heaptide::report();
            assert!(r.leaks.is_empty(), "{}", describe(&r));
            assert_eq!(
                pattern_at(&r, "leak_steady"),
                Some(Pattern::InsufficientEvidence)
            );
            let site = r.sites_mentioning("leak_steady").next().unwrap();
            assert_eq!(site.needs_snapshots, Some(4), "{site:?}");
            let text = r.to_string();
            assert!(
                text.contains("insufficient evidence") && text.contains("4 more snapshots"),
                "{text}"
            );
        }
        "slow_sawtooth" => {
            // Teeth of 25 ticks: two releases in the window. Never a leak.
            let r = run_ticks(|i| slow_saw(i % 25 == 24));
            assert_not_leak(&r, "slow_saw");
        }
        "late_leak" => {
            // Nothing for 30 ticks, then 64 KiB a tick: a leak.
            let r = run_ticks(|i| {
                if i >= 30 {
                    leak_late(64);
                }
            });
            let p = pattern_at(&r, "leak_late");
            assert!(p.is_some_and(Pattern::is_leak), "{p:?}\n{}", describe(&r));
        }
        "alerts" => alerts_child(),
        other => panic!("unknown scenario {other}"),
    }
}

#[inline(never)]
fn produce_batch(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|_| black_box(vec![8u8; 1024])).collect()
}

/// Health thresholds and the alert callback: a warning threshold crossed, a critical leak;
/// the callback runs on the drain thread, once per transition. Snapshots on the injected clock,
/// each followed by a report (which judges health and leaks and raises the alerts).
fn alerts_child() {
    static SEEN: Mutex<
        Vec<(
            String,
            heaptide::report::AlertKind,
            heaptide::report::HealthStatus,
        )>,
    > = Mutex::new(Vec::new());
    heaptide::on_alert(|alert| {
        // The kernel's name of the thread (the drain thread is not a std thread).
        let thread = std::fs::read_to_string("/proc/thread-self/comm")
            .unwrap_or_default()
            .trim()
            .to_string();
        SEEN.lock()
            .unwrap()
            .push((thread, alert.kind, alert.status));
    });
    let mut r = heaptide::report();
    for i in 0..TICKS {
        leak_steady(64);
        heaptide::snapshot_at(PERIOD * i as u32);
        r = heaptide::report();
    }
    assert_eq!(
        r.health.status,
        heaptide::report::HealthStatus::Warning,
        "{:?}",
        r.health
    );
    assert!(
        r.health.reasons.iter().any(|s| s.contains("HEAPTIDE_WARN")),
        "{:?}",
        r.health
    );
    let leak = &leaks_at(&r, "leak_steady")[0];
    assert!(leak.severity >= Severity::High, "{leak:?}");
    let alerts = r.alerts;
    // The drain thread hands the alerts to the callback on its next passes. Waiting for that
    // is not timed: the deadline only keeps a broken build from hanging the suite.
    let deadline = Instant::now() + Duration::from_secs(600);
    while SEEN.lock().unwrap().len() < alerts.len() {
        assert!(
            Instant::now() < deadline,
            "the drain thread never delivered {alerts:#?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let seen = SEEN.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(t, _, _)| t == "heaptide-drain"),
        "callback ran off the drain thread: {seen:?}"
    );
    let count = |kind| seen.iter().filter(|(_, k, _)| *k == kind).count();
    assert_eq!(
        count(heaptide::report::AlertKind::Health),
        1,
        "one transition ok -> warning: {seen:?}"
    );
    // Once per transition, not per evaluation (there were 60).
    assert_eq!(
        count(heaptide::report::AlertKind::Leak),
        1,
        "the leak was alerted once: {alerts:#?}"
    );
    assert_eq!(
        alerts.len(),
        seen.len(),
        "every alert was delivered, once: {alerts:#?} {seen:?}"
    );
}

fn run(name: &str, extra_env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, name);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "scenario {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn child() {
    if let Ok(name) = std::env::var(SCENARIO) {
        scenario(&name);
    }
}

#[test]
fn steady_leak_is_found() {
    run("steady", &[]);
}

#[test]
fn accelerating_leak_is_found() {
    run("accelerating", &[]);
}

#[test]
fn two_leaks_are_ranked_by_growth() {
    run("two_leaks", &[]);
}

#[test]
fn a_cache_that_fills_and_stops_is_not_a_leak() {
    run("cache", &[]);
}

#[test]
fn a_sawtooth_is_not_a_leak() {
    run("sawtooth", &[]);
}

#[test]
fn a_big_buffer_kept_is_not_a_leak() {
    run("big_buffer", &[]);
}

#[test]
fn a_leak_under_heavy_churn_is_found_and_only_it() {
    run("churn", &[]);
}

#[test]
fn a_leak_freed_in_part_on_another_thread_is_found() {
    run("cross_thread", &[]);
}

#[test]
fn thresholds_and_alerts_fire_once_per_transition_on_the_drain_thread() {
    run("alerts", &[("HEAPTIDE_WARN", "1MiB")]);
}

#[test]
fn snapshots_at_real_times_are_not_mixed_with_injected_ones() {
    run("real_after_injected", &[]);
}

#[test]
fn a_short_window_gives_insufficient_evidence() {
    run("short_window", &[]);
}

#[test]
fn a_slow_sawtooth_is_not_a_leak() {
    run("slow_sawtooth", &[]);
}

#[test]
fn a_leak_that_starts_late_is_found() {
    run("late_leak", &[]);
}
