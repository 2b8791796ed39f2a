//! Dump files: where they go and what happens when they cannot go there.
//!
//! - An unusable directory (a path under a regular file, a missing directory, a read-only
//!   directory, a symbolic link) gives one stderr line per signal dump and the program carries
//!   on; `heaptide::dump()` returns the error.
//! - A symbolic link planted at a dump file's name is replaced, not followed.
//! - `HEAPTIDE_DUMP_AT_EXIT=1` dumps at normal exit; `heaptide::dump()` returns the paths and
//!   numbers dumps 1, 2, ...; bad values of the dump variables give one line each and the
//!   defaults.
//!
//! Each case runs in a fresh process (the test binary re-runs itself, test `child`), since the
//! variables are read at the process's first allocation. The child's stdout and stderr go to
//! files, so the child itself can wait for heaptide's stderr lines.

use std::path::{Path, PathBuf};
use std::time::Duration;

mod common;

use common::child::*;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

// === helpers of the child ===

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

// === the child cases ===

#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    match case.as_str() {
        "unwritable" => child_unwritable(),
        "planted" => child_planted(),
        "at_exit" => child_at_exit(),
        "paths" => child_paths(),
        "bad_values" => child_bad_values(),
        other => panic!("unknown child case {other}"),
    }
}

/// The directory cannot be used: `dump()` fails; two signal dumps, one after the other, give
/// one stderr line each; the program carries on.
fn child_unwritable() {
    let keep = keep_some();
    let err = heaptide::dump().expect_err("dump() into an unusable directory");
    println!("dump_err kind={:?} message={err}", err.kind());
    for attempt in 1..=2 {
        raise(libc::SIGUSR1);
        wait_stderr_lines("heaptide: cannot write dump", attempt);
    }
    // Time for a stray extra line to show up, if there were one; meanwhile, business as usual.
    let more = keep_some();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(more.len(), 200);
    println!("still running");
    std::hint::black_box(keep);
}

/// Symlinks planted at the names of dump 1: one to a file outside (which must stay as it is),
/// one dangling (whose target must not be created). Both are replaced by regular files.
fn child_planted() {
    let dir = dump_dir();
    let outside = PathBuf::from(std::env::var_os(OUTSIDE).unwrap());
    let pid = std::process::id();
    let victim = outside.join("victim");
    let dangling = outside.join("not-there");
    std::fs::write(&victim, b"untouched").unwrap();
    let json = dir.join(format!("heaptide-{pid}-1.json"));
    let txt = dir.join(format!("heaptide-{pid}-1.txt"));
    std::os::unix::fs::symlink(&victim, &json).unwrap();
    std::os::unix::fs::symlink(&dangling, &txt).unwrap();

    let paths = heaptide::dump().expect("dump() replaces planted links");
    assert_eq!(paths, [json.clone(), txt.clone()]);
    for path in &paths {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{} is still a link",
            path.display()
        );
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    assert!(!dangling.exists(), "the dangling link was followed");
    let report: heaptide::Report = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report.pid, pid);
    println!("planted ok");
}

/// Allocates and returns: the exit dump (if configured) happens after the test harness ends.
fn child_at_exit() {
    let keep = keep_some();
    println!("at_exit child done");
    std::hint::black_box(keep);
}

/// `dump()` twice: the paths of dumps 1 and 2, in the order json, text, folded.
fn child_paths() {
    use std::os::unix::fs::MetadataExt as _;
    let keep = keep_some();
    let dir = dump_dir();
    let pid = std::process::id();
    for seq in 1..=2 {
        let paths = heaptide::dump().expect("dump()");
        let expected: Vec<PathBuf> = ["json", "txt", "folded"]
            .iter()
            .map(|ext| dir.join(format!("heaptide-{pid}-{seq}.{ext}")))
            .collect();
        assert_eq!(paths, expected);
        for path in &paths {
            let meta = std::fs::symlink_metadata(path).unwrap();
            assert!(meta.file_type().is_file());
            assert_eq!(meta.mode() & 0o777, 0o600, "{}", path.display());
        }
        let report: heaptide::Report =
            serde_json::from_slice(&std::fs::read(&paths[0]).unwrap()).unwrap();
        assert_eq!(report.pid, pid);
        assert_eq!(report.version, heaptide::report::REPORT_VERSION);
        assert!(!std::fs::read(&paths[1]).unwrap().is_empty());
    }
    println!("paths ok");
    std::hint::black_box(keep);
}

/// Bad values everywhere: the defaults are in force (SIGUSR1 handled, json, pprof and text
/// written into `TMPDIR`, no exit dump).
fn child_bad_values() {
    let keep = keep_some();
    assert!(has_handler(libc::SIGUSR1), "the default signal is handled");
    let tmp = PathBuf::from(std::env::var_os("TMPDIR").unwrap());
    let paths = heaptide::dump().expect("dump() with the default formats");
    let names: Vec<&str> = paths.iter().map(|p| file_name(p)).collect();
    let pid = std::process::id();
    assert_eq!(
        names,
        [
            format!("heaptide-{pid}-1.json"),
            format!("heaptide-{pid}-1.pb.gz"),
            format!("heaptide-{pid}-1.txt"),
        ]
    );
    assert!(paths.iter().all(|p| p.parent() == Some(tmp.as_path())));
    println!("bad values ok");
    std::hint::black_box(keep);
}

// === the parent side ===

fn check_unwritable(scratch: &Scratch, dir: &Path, kind: &str, reason: &str) {
    let run = run_child(
        "unwritable",
        scratch,
        &[
            ("HEAPTIDE_DIR", dir),
            ("HEAPTIDE_FORMATS", Path::new("json,text")),
        ],
    );
    assert!(
        run.stdout.contains(&format!("dump_err kind={kind} ")),
        "{}",
        run.stdout
    );
    let prefix = format!("heaptide: cannot write dump to {}: ", dir.display());
    assert!(
        run.stdout
            .contains(&format!("message={}", &prefix["heaptide: ".len()..])),
        "dump()'s error names the directory: {}",
        run.stdout
    );
    assert!(run.stdout.contains(reason), "{}", run.stdout);
    assert!(run.stdout.contains("still running"), "{}", run.stdout);
    let lines = run.heaptide_lines();
    assert_eq!(lines.len(), 2, "one line per attempt: {}", run.stderr);
    for line in lines {
        assert!(line.starts_with(&prefix), "{line}");
        assert!(line.contains(reason), "{line}");
    }
}

#[test]
fn a_path_under_a_regular_file_gives_one_error_line_per_attempt() {
    let scratch = Scratch::new("notdir");
    let file = scratch.0.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    check_unwritable(
        &scratch,
        &file.join("dumps"),
        "NotADirectory",
        "Not a directory",
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"not a directory");
}

#[test]
fn a_missing_directory_gives_one_error_line_per_attempt() {
    let scratch = Scratch::new("missing");
    let missing = scratch.0.join("missing");
    check_unwritable(&scratch, &missing, "NotFound", "No such file or directory");
    assert!(!missing.exists(), "heaptide does not create the directory");
}

#[test]
fn a_read_only_directory_gives_one_error_line_per_attempt() {
    use std::os::unix::fs::PermissionsExt as _;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Permission bits do not stop root; the other unwritable cases cover the path.
        eprintln!("skipped: running as root");
        return;
    }
    let scratch = Scratch::new("readonly");
    std::fs::set_permissions(scratch.dumps(), std::fs::Permissions::from_mode(0o500)).unwrap();
    check_unwritable(
        &scratch,
        &scratch.dumps(),
        "PermissionDenied",
        "Permission denied",
    );
    assert!(
        listing(&scratch.dumps()).is_empty(),
        "no temporary file left"
    );
}

#[test]
fn a_symlinked_dump_directory_is_refused() {
    let scratch = Scratch::new("dirlink");
    let link = scratch.0.join("link");
    std::os::unix::fs::symlink(scratch.dumps(), &link).unwrap();
    // (Linux says ENOTDIR for `O_DIRECTORY | O_NOFOLLOW` on a link; heaptide keeps the kind.)
    check_unwritable(&scratch, &link, "NotADirectory", "symbolic link");
    assert!(
        listing(&scratch.dumps()).is_empty(),
        "nothing written through the link"
    );
}

#[test]
fn a_symlink_planted_at_a_dump_name_is_replaced_not_followed() {
    let scratch = Scratch::new("planted");
    let run = run_child(
        "planted",
        &scratch,
        &[
            ("HEAPTIDE_DIR", scratch.dumps().as_path()),
            ("HEAPTIDE_FORMATS", Path::new("json,text")),
        ],
    );
    assert!(run.stdout.contains("planted ok"), "{}", run.stdout);
    let outside = scratch.0.join("outside");
    assert_eq!(listing(&outside), ["victim"]);
    assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"untouched");
    assert_eq!(
        listing(&scratch.dumps()),
        [
            format!("heaptide-{}-1.json", run.pid),
            format!("heaptide-{}-1.txt", run.pid)
        ]
    );
}

#[test]
fn dump_at_exit_writes_the_files_at_normal_exit() {
    let scratch = Scratch::new("exit");
    let run = run_child(
        "at_exit",
        &scratch,
        &[
            ("HEAPTIDE_DIR", scratch.dumps().as_path()),
            ("HEAPTIDE_FORMATS", Path::new("json,text")),
            ("HEAPTIDE_SIGNAL", Path::new("none")),
            ("HEAPTIDE_DUMP_AT_EXIT", Path::new("1")),
        ],
    );
    let names = [
        format!("heaptide-{}-1.json", run.pid),
        format!("heaptide-{}-1.txt", run.pid),
    ];
    assert_eq!(listing(&scratch.dumps()), names);
    let json = std::fs::read(scratch.dumps().join(&names[0])).unwrap();
    let report: heaptide::Report = serde_json::from_slice(&json).unwrap();
    assert_eq!(report.pid, run.pid);
    let expected: Vec<String> = names
        .iter()
        .map(|n| format!("heaptide: wrote {}", scratch.dumps().join(n).display()))
        .collect();
    assert_eq!(run.heaptide_lines(), expected, "{}", run.stderr);

    // And not without the variable (or with it at 0).
    for value in [None, Some("0")] {
        let scratch = Scratch::new("noexit");
        let dir = scratch.dumps();
        let mut vars = vec![("HEAPTIDE_DIR", dir.as_path())];
        if let Some(v) = value {
            vars.push(("HEAPTIDE_DUMP_AT_EXIT", Path::new(v)));
        }
        let run = run_child("at_exit", &scratch, &vars);
        assert!(listing(&dir).is_empty(), "{value:?}: {:?}", listing(&dir));
        assert!(run.heaptide_lines().is_empty(), "{}", run.stderr);
    }
}

#[test]
fn dump_returns_the_paths_and_numbers_the_dumps() {
    let scratch = Scratch::new("paths");
    let run = run_child(
        "paths",
        &scratch,
        &[
            ("HEAPTIDE_DIR", scratch.dumps().as_path()),
            ("HEAPTIDE_FORMATS", Path::new("folded, JSON,text")),
        ],
    );
    assert!(run.stdout.contains("paths ok"), "{}", run.stdout);
    assert!(
        run.heaptide_lines().is_empty(),
        "dump() prints nothing: {}",
        run.stderr
    );
    assert_eq!(listing(&scratch.dumps()).len(), 6);
}

#[test]
fn bad_dump_settings_give_one_line_each_and_the_defaults() {
    let scratch = Scratch::new("bad");
    let run = run_child(
        "bad_values",
        &scratch,
        &[
            ("HEAPTIDE_FORMATS", Path::new("json,xml")),
            ("HEAPTIDE_SIGNAL", Path::new("USR3")),
            ("HEAPTIDE_DUMP_AT_EXIT", Path::new("maybe")),
            ("HEAPTIDE_DIR", Path::new("")),
            // The default directory.
            ("TMPDIR", scratch.dumps().as_path()),
        ],
    );
    assert!(run.stdout.contains("bad values ok"), "{}", run.stdout);
    let lines = run.heaptide_lines();
    assert_eq!(lines.len(), 4, "one line per bad variable: {}", run.stderr);
    let tmpdir = scratch.dumps().display().to_string();
    let expect = [
        (
            "HEAPTIDE_FORMATS=\"json,xml\"",
            "json, pprof, text, folded",
            "json,pprof,text",
        ),
        ("HEAPTIDE_SIGNAL=\"USR3\"", "USR1, USR2 or none", "USR1"),
        (
            "HEAPTIDE_DUMP_AT_EXIT=\"maybe\"",
            "1, 0, true or false",
            "0",
        ),
        ("HEAPTIDE_DIR=\"\"", "a directory path", tmpdir.as_str()),
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
    // The dump() of the child, and no exit dump.
    assert_eq!(
        listing(&scratch.dumps()).len(),
        3,
        "{:?}",
        listing(&scratch.dumps())
    );
}
