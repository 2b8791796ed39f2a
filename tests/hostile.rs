//! Hostile conditions the profiler must survive without taking its host down (issue 6): every
//! `HEAPTIDE_*` variable invalid at once; allocation before `main` (an ELF constructor), in
//! `atexit` handlers and while `main` returns with other threads allocating; a dump directory
//! on a full disk. Each case runs in a fresh child process (settings are read once per process).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;

use common::child::{CHILD, Scratch, run_child};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

// === allocation before main ===

static BEFORE_MAIN: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
static BEFORE_MAIN_RAN: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
fn allocated_before_main() {
    let mut kept = BEFORE_MAIN.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..10 {
        kept.push(black_box(vec![i as u8; 4000]));
    }
    BEFORE_MAIN_RAN.fetch_add(1, Ordering::Relaxed);
}

extern "C" fn constructor() {
    allocated_before_main();
}

/// Runs before `main` (and before the test harness): the allocator initialises here.
#[used]
#[unsafe(link_section = ".init_array")]
static CONSTRUCTOR: extern "C" fn() = constructor;

fn child_before_main() {
    assert_eq!(BEFORE_MAIN_RAN.load(Ordering::Relaxed), 1);
    let report = heaptide::report();
    let live: u64 = report
        .sites_mentioning("allocated_before_main")
        .map(|s| s.live_bytes)
        .sum();
    // Ten blocks of 4000 bytes, exact mode (plus the vector holding them).
    assert!(live >= 40_000, "pre-main allocations recorded: {live}");
    println!("before-main ok {live}");
}

// === allocation in atexit handlers and while main returns ===

extern "C" fn at_exit_allocates() {
    let v: Vec<String> = (0..1000).map(|i| format!("exit {i}")).collect();
    let report = heaptide::report();
    println!(
        "atexit ok {} {}",
        v.len(),
        report.profiler.samples > 0 && report.profiler.dropped == 0
    );
}

fn child_exit() {
    // SAFETY: registers a handler that is valid for the life of the process.
    assert_eq!(unsafe { libc::atexit(at_exit_allocates) }, 0);
    // Threads that keep allocating (and freeing on each other's behalf) while main returns.
    for t in 0..3 {
        std::thread::spawn(move || {
            let mut keep: Vec<Vec<u8>> = Vec::new();
            loop {
                keep.push(black_box(vec![t as u8; 64 + keep.len() % 512]));
                if keep.len() > 500 {
                    keep.clear();
                }
            }
        });
    }
    std::thread::sleep(Duration::from_millis(50));
    println!("main returns");
    // The test harness returns from main: exit() runs the atexit handlers (ours, and heaptide's
    // exit dump when asked) while the threads above still allocate.
}

// === full disk ===

fn child_full_disk() {
    let dir = PathBuf::from(std::env::var("HEAPTIDE_DIR").unwrap());
    for round in 0..3 {
        let err = heaptide::dump().expect_err("a full disk cannot take a dump");
        println!("dump {round} failed: {err}");
        // Nothing under a final name, and no temporary file left behind.
        let left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "filler")
            .collect();
        assert!(left.is_empty(), "files left on the full disk: {left:?}");
    }
    // The program carries on.
    let v: Vec<u64> = (0..100_000).collect();
    println!("full-disk ok {}", v.len());
}

// === every variable invalid ===

fn child_bad_everything() {
    let v: Vec<u64> = black_box((0..10_000).collect());
    heaptide::snapshot_now();
    let report = heaptide::report();
    println!(
        "bad-values ok {} interval_ms={} max={} sample_interval={}",
        v.len(),
        report.snapshots.interval_ms,
        report.snapshots.max,
        report.sample_interval
    );
}

// === a writer that panics ===

/// A writer that panics on its first write.
struct Panics;

impl std::io::Write for Panics {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        panic!("the writer panics");
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_panicking_writer_unwinds_out_of_every_writer() {
    let report = heaptide::report();
    // Each write must unwind to here (a panic while unwinding would abort the test binary).
    let outcomes = [
        std::panic::catch_unwind(|| report.write_pprof(&mut Panics)).is_err(),
        std::panic::catch_unwind(|| report.write_json(&mut Panics)).is_err(),
        std::panic::catch_unwind(|| report.write_text(&mut Panics)).is_err(),
        std::panic::catch_unwind(|| report.write_folded(&mut Panics)).is_err(),
    ];
    assert_eq!(outcomes, [true; 4]);
}

#[test]
fn child() {
    match std::env::var(CHILD).as_deref() {
        Ok("before_main") => child_before_main(),
        Ok("exit") => child_exit(),
        Ok("full_disk") => child_full_disk(),
        Ok("bad_everything") => child_bad_everything(),
        _ => {}
    }
}

#[test]
fn allocations_before_main_are_recorded() {
    let scratch = Scratch::new("before-main");
    let run = run_child::<&str>("before_main", &scratch, &[]);
    assert!(run.stdout.contains("before-main ok"), "{}", run.stdout);
}

#[test]
fn allocating_in_atexit_handlers_and_while_main_returns_is_safe() {
    let scratch = Scratch::new("exit");
    let dir = scratch.dumps();
    let run = run_child(
        "exit",
        &scratch,
        &[("HEAPTIDE_DUMP_AT_EXIT", "1"), ("HEAPTIDE_FORMATS", "json")],
    );
    let text = &run.stdout;
    assert!(text.contains("main returns"), "{text}");
    assert!(text.contains("atexit ok 1000 true"), "{text}");
    // heaptide's own exit dump ran too, and wrote a complete file.
    let dumps: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&dumps[0]).unwrap()).unwrap();
    assert!(json["pid"].is_u64());
}

#[test]
fn a_dump_to_a_full_disk_fails_cleanly() {
    let scratch = Scratch::new("full");
    let dir = scratch.dumps();
    // A 64 KiB tmpfs, filled up: every write fails with ENOSPC.
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!(
            "a_dump_to_a_full_disk_fails_cleanly: cannot mount a tmpfs here (not root?); the \
             atomic-write unit tests in src/dump/file.rs cover the clean-up path"
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&dir);
    let filler = vec![0u8; 1 << 20];
    let _ = std::fs::write(dir.join("filler"), &filler);
    let run = run_child("full_disk", &scratch, &[("HEAPTIDE_FORMATS", "json,text")]);
    let text = &run.stdout;
    assert!(text.contains("full-disk ok 100000"), "{text}");
    assert_eq!(text.matches("failed:").count(), 3, "{text}");
    assert!(
        text.contains("No space left on device") || text.contains("os error 28"),
        "{text}"
    );
}

#[test]
fn every_variable_invalid_at_once_gives_one_line_each_and_defaults() {
    let bad = [
        ("HEAPTIDE_SAMPLE", "lots"),
        ("HEAPTIDE_DEPTH", "0x10"),
        ("HEAPTIDE_SEED", "-1"),
        ("HEAPTIDE_SIGNAL", "TERM"),
        ("HEAPTIDE_FORMATS", "xml"),
        ("HEAPTIDE_DIR", ""),
        ("HEAPTIDE_DUMP_AT_EXIT", "maybe"),
        ("HEAPTIDE_INTERVAL", "soon"),
        ("HEAPTIDE_MAX_SNAPSHOTS", "3"),
        ("HEAPTIDE_LIMIT", "big"),
        ("HEAPTIDE_WARN", "-5"),
        ("HEAPTIDE_CRITICAL", "1e9"),
    ];
    let scratch = Scratch::new("bad-everything");
    let run = run_child("bad_everything", &scratch, &bad);
    let lines = run.heaptide_lines();
    for (var, value) in bad {
        let about: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains(&format!("{var}=")))
            .collect();
        assert_eq!(about.len(), 1, "{var}: one line expected in {lines:#?}");
        assert!(
            about[0].contains(&format!("{value:?}")),
            "{var}: names the value: {}",
            about[0]
        );
        assert!(about[0].contains("expected"), "{var}: names the forms");
    }
    assert_eq!(lines.len(), bad.len(), "{lines:#?}");
    let text = &run.stdout;
    assert!(
        text.contains("bad-values ok 10000 interval_ms=10000 max=500 sample_interval=1"),
        "defaults in force: {text}"
    );
}
