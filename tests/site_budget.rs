//! The call-site table is bounded: 2^18 distinct call stacks in exact mode, each keeping a
//! 64-byte block (16 MiB live), keep the process's peak RSS under 512 MiB, report building
//! included; past the table's budget the coldest stacks are merged into "other" sites, the
//! totals stay exact, and the report, `/metrics` and one stderr line say so.
//!
//! Each case runs in a child process (heaptide reads its settings at the first allocation, and
//! the peak RSS, `VmHWM`, is the process's). How long the report takes is measured by
//! `benches/site_budget.rs` (a CI step), not here.

#[path = "common/stacks.rs"]
mod stacks;

use std::process::Command;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

const CHILD: &str = "HEAPTIDE_TEST_CHILD";
const LEVELS: &str = "HEAPTIDE_TEST_LEVELS";

/// In the child: the distinct stacks, a report, and the figures the parent checks.
fn child_main() {
    let levels: u32 = std::env::var(LEVELS).unwrap().parse().unwrap();
    let mut keep = Vec::new();
    stacks::distinct_stacks(levels, &mut keep);
    let r = heaptide::report();
    let t = &r.site_table;
    let sum =
        |f: fn(&heaptide::report::SizeBucket) -> u64| -> u64 { r.size_buckets.iter().map(f).sum() };
    let sites = r.sites.iter().filter(|s| s.is_other()).count();
    println!(
        "live_count={} buckets_live_count={} alloc_count={} buckets_alloc_count={}",
        r.totals.live_count,
        sum(|b| b.live_count),
        r.totals.alloc_count,
        sum(|b| b.alloc_count)
    );
    println!(
        "stacks={} merged={} other_sites={} table_bytes={} budget={} listed_other={sites}",
        t.stacks, t.merged_stacks, t.other_sites, t.bytes, t.budget_bytes
    );
    let text = r.to_string();
    println!(
        "text_line={}",
        text.lines()
            .any(|l| l.contains("merged into") && l.contains("HEAPTIDE_SITE_BUDGET"))
    );
    println!("peak_rss={}", stacks::peak_rss());
    drop(keep);
}

#[test]
fn child() {
    if std::env::var_os(CHILD).is_some() {
        child_main();
    }
}

/// Runs the child with `levels` and the variables; its stdout's `key=value` pairs and its
/// heaptide stderr lines.
fn run_child(levels: u32, vars: &[(&str, &str)]) -> (Vec<(String, String)>, Vec<String>) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(LEVELS, levels.to_string())
        .env("HEAPTIDE_SAMPLE", "1")
        .env_remove("HEAPTIDE_SITE_BUDGET");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    let pairs = stdout
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lines = stderr
        .lines()
        .filter(|l| l.starts_with("heaptide:"))
        .map(str::to_string)
        .collect();
    (pairs, lines)
}

fn get(pairs: &[(String, String)], key: &str) -> u64 {
    let v = &pairs.iter().find(|(k, _)| k == key).unwrap().1;
    match v.as_str() {
        "true" => 1,
        "false" => 0,
        v => v.parse().unwrap(),
    }
}

#[test]
fn many_distinct_stacks_stay_within_512_mib() {
    let levels = 18;
    let (p, lines) = run_child(levels, &[]);
    let n = 1u64 << levels;
    // Every distinct stack was recorded: in the table, or merged.
    assert!(get(&p, "stacks") + get(&p, "merged") >= n, "{p:?}");
    // The default budget (64 MiB: the live heap is 16 MiB) was reached, and kept.
    assert_eq!(get(&p, "budget"), 64 << 20, "{p:?}");
    assert!(get(&p, "merged") > 0, "{p:?}");
    assert!(get(&p, "table_bytes") <= get(&p, "budget"), "{p:?}");
    // Totals stay exact: the sites' sums equal the size buckets' (counted apart from sites).
    assert!(get(&p, "live_count") >= n, "{p:?}");
    assert_eq!(
        get(&p, "live_count"),
        get(&p, "buckets_live_count"),
        "{p:?}"
    );
    assert_eq!(
        get(&p, "alloc_count"),
        get(&p, "buckets_alloc_count"),
        "{p:?}"
    );
    // Visible: the text report's line, and one stderr line.
    assert_eq!(get(&p, "text_line"), 1, "{p:?}");
    let budget_lines: Vec<_> = lines.iter().filter(|l| l.contains("budget")).collect();
    assert_eq!(budget_lines.len(), 1, "{lines:?}");
    assert!(
        budget_lines[0].contains("HEAPTIDE_SITE_BUDGET"),
        "{lines:?}"
    );
    let peak = get(&p, "peak_rss");
    assert!(
        peak < 512 << 20,
        "peak RSS {} MiB with {n} distinct stacks: {p:?}",
        peak >> 20
    );
}

#[test]
fn the_budget_is_configurable() {
    let (p, lines) = run_child(12, &[("HEAPTIDE_SITE_BUDGET", "256KiB")]);
    assert_eq!(get(&p, "budget"), 256 << 10, "{p:?}");
    assert!(
        get(&p, "merged") > 0 && get(&p, "table_bytes") <= 256 << 10,
        "{p:?}"
    );
    assert!(get(&p, "stacks") + get(&p, "merged") >= 1 << 12, "{p:?}");
    assert_eq!(
        get(&p, "live_count"),
        get(&p, "buckets_live_count"),
        "{p:?}"
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn a_bad_budget_gives_one_line_and_the_default() {
    let (p, lines) = run_child(4, &[("HEAPTIDE_SITE_BUDGET", "tiny")]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("HEAPTIDE_SITE_BUDGET") && lines[0].contains("\"tiny\""),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("64KiB"),
        "names the accepted forms: {lines:?}"
    );
    assert_eq!(get(&p, "budget"), 64 << 20, "{p:?}");
    assert_eq!(get(&p, "merged"), 0, "{p:?}");
}
