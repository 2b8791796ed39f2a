//! Bad configuration never stops the host: one stderr line naming the variable, the value and
//! the accepted forms, and the default is used. Good values take effect.
//!
//! The test binary re-runs itself with the variable set (the environment is read once, at the
//! process's first allocation, so each case needs a fresh process).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::process::Command;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

const CHILD: &str = "HEAPTIDE_TEST_CHILD";

/// In the child: allocate (which reads the environment) and print the settings in force.
fn child_main() {
    let v: Vec<u64> = (0..1000).collect();
    std::hint::black_box(&v);
    let c = heaptide::config();
    println!(
        "sampling={:?} depth={} seed={:?}",
        c.sampling, c.depth, c.seed
    );
    let report = heaptide::report();
    println!("sample_interval={}", report.sample_interval);
    println!("snapshot_interval_ms={}", report.snapshots.interval_ms);
    println!("reservations={}", reservations());
}

/// `PROT_NONE` mappings of at least 1 GiB in this process: the sampled range's reservation
/// (and its unused part), nothing else in these test binaries.
fn reservations() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| {
            let mut f = l.split_whitespace();
            let (range, perms) = (f.next().unwrap(), f.next().unwrap());
            let (a, b) = range.split_once('-').unwrap();
            let len = usize::from_str_radix(b, 16).unwrap() - usize::from_str_radix(a, 16).unwrap();
            perms.starts_with("---") && len >= 1 << 30
        })
        .count()
}

fn run_child<V: AsRef<OsStr>>(vars: &[(&str, V)]) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1");
    for var in [
        "HEAPTIDE_SAMPLE",
        "HEAPTIDE_DEPTH",
        "HEAPTIDE_SEED",
        "HEAPTIDE_INTERVAL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn heaptide_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("heaptide:"))
        .collect()
}

#[test]
fn child() {
    if std::env::var_os(CHILD).is_some() {
        child_main();
    }
}

#[test]
fn bad_sample_value_gives_one_line_and_the_default() {
    let (stdout, stderr) = run_child(&[("HEAPTIDE_SAMPLE", "lots")]);
    let lines = heaptide_lines(&stderr);
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(
        lines[0].contains("HEAPTIDE_SAMPLE") && lines[0].contains("\"lots\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("512KiB") && lines[0].contains("off"),
        "names the accepted forms: {}",
        lines[0]
    );
    assert!(
        stdout.contains("sampling=MeanBytes(524288)"),
        "default in force: {stdout}"
    );
    assert!(stdout.contains("sample_interval=524288"), "{stdout}");
}

#[test]
fn bad_depth_and_seed_each_give_one_line() {
    let (stdout, stderr) = run_child(&[("HEAPTIDE_DEPTH", "999"), ("HEAPTIDE_SEED", "-4")]);
    let lines = heaptide_lines(&stderr);
    assert_eq!(lines.len(), 2, "stderr: {stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("HEAPTIDE_DEPTH") && l.contains("\"999\""))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("HEAPTIDE_SEED") && l.contains("\"-4\""))
    );
    assert!(stdout.contains("depth=32 seed=None"), "{stdout}");
}

#[test]
fn good_values_take_effect() {
    let (stdout, stderr) = run_child(&[
        ("HEAPTIDE_SAMPLE", "4MiB"),
        ("HEAPTIDE_DEPTH", "12"),
        ("HEAPTIDE_SEED", "7"),
    ]);
    assert!(heaptide_lines(&stderr).is_empty(), "stderr: {stderr}");
    assert!(
        stdout.contains("sampling=MeanBytes(4194304) depth=12 seed=Some(7)"),
        "{stdout}"
    );
}

#[test]
fn off_is_plain_jemalloc_and_an_empty_report() {
    let (stdout, stderr) = run_child(&[("HEAPTIDE_SAMPLE", "off")]);
    assert!(heaptide_lines(&stderr).is_empty(), "stderr: {stderr}");
    assert!(stdout.contains("sampling=Off"), "{stdout}");
    assert!(stdout.contains("sample_interval=0"), "{stdout}");
    // Off keeps no address space either: not reserved at load, and the range the first
    // allocation reserves (before it reads the settings) is given back.
    assert!(stdout.contains("reservations=0"), "{stdout}");
    // The load-time check reads the forms of off as the parser does.
    let (stdout, _) = run_child(&[("HEAPTIDE_SAMPLE", " None ")]);
    assert!(stdout.contains("sampling=Off"), "{stdout}");
    assert!(stdout.contains("reservations=0"), "{stdout}");
    let (stdout, _) = run_child::<&str>(&[]);
    assert!(stdout.contains("reservations=1"), "{stdout}");
}

#[test]
fn exact_via_env() {
    let (stdout, _) = run_child(&[("HEAPTIDE_SAMPLE", "1")]);
    assert!(
        stdout.contains("sampling=Exact") && stdout.contains("sample_interval=1"),
        "{stdout}"
    );
}

#[test]
fn a_value_that_is_not_utf8_gives_one_line_and_the_default() {
    let (stdout, stderr) = run_child(&[("HEAPTIDE_DEPTH", OsStr::from_bytes(b"1\xff2"))]);
    let lines = heaptide_lines(&stderr);
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(
        lines[0].contains("HEAPTIDE_DEPTH=") && lines[0].contains("UTF-8"),
        "{}",
        lines[0]
    );
    assert!(stdout.contains("depth=32"), "default in force: {stdout}");
}

#[test]
fn an_interval_under_a_millisecond_is_clamped_with_one_line() {
    let (stdout, stderr) = run_child(&[("HEAPTIDE_INTERVAL", "1ns")]);
    let lines = heaptide_lines(&stderr);
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(
        lines[0].contains("HEAPTIDE_INTERVAL=\"1ns\""),
        "{}",
        lines[0]
    );
    assert!(stdout.contains("snapshot_interval_ms=1"), "{stdout}");
}
