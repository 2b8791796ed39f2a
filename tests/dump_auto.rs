//! Automatic dumps: with `HEAPTIDE_DUMP_ON_PEAK` set low, a program whose heap passes it gets a
//! dump named for the peak, whose peak section names the function that allocated the peak
//! (the program frees it and waits for the file); an unusable dump directory
//! gives one stderr line and the program carries on; bad values give one line each and the
//! defaults (no automatic dump).
//!
//! Each case runs in a fresh process (the test binary re-runs itself, test `child`), in exact
//! mode, since the variables are read at the process's first allocation. The child waits for
//! the dump's files (or its stderr line) and exits; the parent waits for the child.

use std::path::Path;

use serde_json::Value;

mod common;

use common::child::*;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

/// 8 MiB in 64 blocks: the peak.
#[inline(never)]
fn build_peak_heap() -> Vec<Vec<u8>> {
    (0..64)
        .map(|i| std::hint::black_box(vec![i as u8 + 1; 128 << 10]))
        .collect()
}

/// Whether `dir` holds a file whose name ends with `suffix`.
fn has_file_ending(dir: &Path, suffix: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().ends_with(suffix))
        })
        .unwrap_or(false)
}

// === the child cases ===

#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    match case.as_str() {
        "peak" => child_peak(),
        "peak_unwritable" => child_peak_unwritable(),
        "bad_values" => child_bad_values(),
        other => panic!("unknown child case {other}"),
    }
}

/// Builds the peak and frees it, then waits for the peak dump's files.
fn child_peak() {
    let heap = build_peak_heap();
    drop(heap);
    let dir = dump_dir();
    let ok = wait_until(HANG_GUARD, || {
        has_file_ending(&dir, "-peak.json") && has_file_ending(&dir, "-peak.txt")
    });
    assert!(ok, "no peak dump in {}", dir.display());
    wait_stderr_lines("heaptide: wrote", 2);
    println!("peak dumped");
}

/// Builds the peak into an unusable directory: one error line, then business as usual.
fn child_peak_unwritable() {
    let heap = build_peak_heap();
    drop(heap);
    wait_stderr_lines("heaptide: cannot write dump", 1);
    let more = keep_some();
    assert_eq!(more.len(), 200);
    println!("still running");
}

/// Bad values: the heap passes every size; no automatic dump is configured.
fn child_bad_values() {
    let heap = build_peak_heap();
    drop(heap);
    heaptide::flush();
    println!("bad values ok");
}

// === the parent side ===

#[test]
fn a_peak_past_the_threshold_is_dumped_naming_who_allocated_it() {
    let scratch = Scratch::new("auto-peak");
    let run = run_child(
        "peak",
        &scratch,
        &[
            ("HEAPTIDE_SAMPLE", "1"),
            ("HEAPTIDE_SIGNAL", "none"),
            ("HEAPTIDE_FORMATS", "json,text"),
            ("HEAPTIDE_DUMP_ON_PEAK", "4MiB"),
        ],
    );
    assert!(run.stdout.contains("peak dumped"), "{}", run.stdout);
    let files = listing(&scratch.dumps());
    let pid = run.pid;
    // One dump (later peaks are within 60 s of it), its files named for the peak.
    assert_eq!(
        files,
        [
            format!("heaptide-{pid}-1-peak.json"),
            format!("heaptide-{pid}-1-peak.txt")
        ],
        "{}",
        run.stderr
    );
    for line in run.heaptide_lines() {
        assert!(line.starts_with("heaptide: wrote "), "{line}");
        assert!(line.contains("-peak."), "{line}");
    }

    let json = std::fs::read(scratch.dumps().join(&files[0])).unwrap();
    let v: Value = serde_json::from_slice(&json).unwrap();
    let peak = &v["peak"];
    let live = peak["live_bytes"].as_u64().unwrap();
    assert!(live >= 4 << 20, "{peak}");
    let top = &peak["sites"][0];
    let blamed = top["blamed"]["function"].as_str().unwrap();
    assert!(blamed.contains("build_peak_heap"), "{peak:#}");
    assert!(
        top["live_bytes_at_peak"].as_u64().unwrap() >= 3 << 20,
        "{top}"
    );
    // The same site now (the dump may have been taken while the heap was still there).
    assert!(top["live_bytes_now"].is_u64(), "{top}");

    let text = std::fs::read_to_string(scratch.dumps().join(&files[1])).unwrap();
    let section = text
        .split("At the peak: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no peak section:\n{text}"));
    assert!(section.contains("build_peak_heap"), "{text}");
}

#[test]
fn an_unusable_directory_gives_one_line_and_the_program_carries_on() {
    let scratch = Scratch::new("auto-unwritable");
    let missing = scratch.0.join("missing");
    let run = run_child(
        "peak_unwritable",
        &scratch,
        &[
            ("HEAPTIDE_SAMPLE", Path::new("1")),
            ("HEAPTIDE_SIGNAL", Path::new("none")),
            ("HEAPTIDE_DUMP_ON_PEAK", Path::new("4MiB")),
            ("HEAPTIDE_DIR", missing.as_path()),
        ],
    );
    assert!(run.stdout.contains("still running"), "{}", run.stdout);
    let lines = run.heaptide_lines();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(
        lines[0].starts_with(&format!(
            "heaptide: cannot write dump to {}: ",
            missing.display()
        )),
        "{}",
        lines[0]
    );
    assert!(!missing.exists());
}

#[test]
fn bad_values_give_one_line_each_and_no_automatic_dump() {
    let scratch = Scratch::new("auto-bad");
    let run = run_child(
        "bad_values",
        &scratch,
        &[
            ("HEAPTIDE_SAMPLE", "1"),
            ("HEAPTIDE_SIGNAL", "none"),
            ("HEAPTIDE_DUMP_ON_PEAK", "0"),
            ("HEAPTIDE_DUMP_ON_CRITICAL", "yes"),
            ("HEAPTIDE_DUMP_NEAR_LIMIT", "90%"),
        ],
    );
    assert!(run.stdout.contains("bad values ok"), "{}", run.stdout);
    let lines = run.heaptide_lines();
    assert_eq!(lines.len(), 3, "one line per bad variable: {}", run.stderr);
    let expect = [
        ("HEAPTIDE_DUMP_ON_PEAK=\"0\"", "a byte size", "off"),
        (
            "HEAPTIDE_DUMP_ON_CRITICAL=\"yes\"",
            "1, 0, true or false",
            "0",
        ),
        ("HEAPTIDE_DUMP_NEAR_LIMIT=\"90%\"", "a fraction", "off"),
    ];
    for (var_value, forms, default) in expect {
        let line = lines
            .iter()
            .find(|l| l.contains(var_value))
            .unwrap_or_else(|| panic!("no line for {var_value}: {}", run.stderr));
        assert!(line.contains(forms), "names the accepted forms: {line}");
        assert!(
            line.ends_with(&format!("using {default}")),
            "names the default: {line}"
        );
    }
    assert!(listing(&scratch.dumps()).is_empty());
}
