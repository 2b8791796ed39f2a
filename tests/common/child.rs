//! Tests that need a fresh process (heaptide reads its settings once, at the process's first
//! allocation): the test binary re-runs itself as a child (its test `child`, which dispatches
//! on [`CHILD`]) with the variables set. The child's stdout and stderr go to files, so the
//! child itself can wait for heaptide's stderr lines ([`wait_stderr_lines`]).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Names the child case to run.
pub const CHILD: &str = "HEAPTIDE_TEST_CHILD";
/// The file the child's stderr goes to (so the child can read heaptide's lines).
pub const STDERR_FILE: &str = "HEAPTIDE_TEST_STDERR";
/// A directory outside the dump directory (for the symlink cases).
pub const OUTSIDE: &str = "HEAPTIDE_TEST_OUTSIDE";

// === helpers of the child ===

/// `HEAPTIDE_DIR` as the child sees it.
pub fn dump_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("HEAPTIDE_DIR").expect("HEAPTIDE_DIR is set for children"))
}

/// Sends `signal` to this process.
pub fn raise(signal: libc::c_int) {
    // SAFETY: sends a signal to this process; the cases that raise one have a handler for it
    // (checked by the cases that need it).
    assert_eq!(unsafe { libc::kill(libc::getpid(), signal) }, 0);
}

/// How long a child waits for something that takes milliseconds when the machine is idle (a
/// dump, a line on stderr) before it gives up. Not a speed limit: only a guard that turns a
/// hang into a failure; a machine busy with other work can take many seconds.
pub const HANG_GUARD: Duration = Duration::from_secs(600);

/// Polls `done` every 2 ms until it holds (`true`) or `timeout` passes (`false`).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What the child has written to stderr so far.
pub fn own_stderr() -> String {
    let path = std::env::var_os(STDERR_FILE).expect("stderr file is set for children");
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

/// Waits until stderr holds at least `n` lines containing `needle`.
pub fn wait_stderr_lines(needle: &str, n: usize) {
    let ok = wait_until(HANG_GUARD, || {
        own_stderr().lines().filter(|l| l.contains(needle)).count() >= n
    });
    assert!(
        ok,
        "no {n} lines with {needle:?} on stderr: {}",
        own_stderr()
    );
}

/// The signal disposition of `signal` is a handler function (not the default or "ignore").
pub fn has_handler(signal: libc::c_int) -> bool {
    // SAFETY: queries only (no new action); `old` is a valid out-pointer.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(libc::sigaction(signal, std::ptr::null(), &mut old), 0);
        old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN
    }
}

/// Some live memory for a report to show (200 blocks of 4 KiB).
#[inline(never)]
pub fn keep_some() -> Vec<Vec<u8>> {
    (0..200).map(|i| vec![i as u8; 4096]).collect()
}

// === the parent side ===

/// A fresh directory for one test, with `dumps/` and `outside/` in it, removed afterwards.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let path = std::env::temp_dir().join(format!(
            "heaptide-test-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(path.join("dumps")).unwrap();
        std::fs::create_dir_all(path.join("outside")).unwrap();
        Scratch(path)
    }

    /// The dump directory a child gets unless told otherwise.
    pub fn dumps(&self) -> PathBuf {
        self.0.join("dumps")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(self.dumps(), std::fs::Permissions::from_mode(0o700));
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a child printed.
pub struct ChildRun {
    pub pid: u32,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    /// heaptide's own stderr lines.
    pub fn heaptide_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("heaptide:"))
            .collect()
    }
}

/// Runs child `case` with `HEAPTIDE_DIR` set to the scratch's dump directory, then `vars` (and
/// no other `HEAPTIDE_*` from the test's environment); it must succeed within a minute.
pub fn run_child<V: AsRef<OsStr>>(case: &str, scratch: &Scratch, vars: &[(&str, V)]) -> ChildRun {
    let stdout_path = scratch.0.join(format!("{case}.stdout"));
    let stderr_path = scratch.0.join(format!("{case}.stderr"));
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HEAPTIDE_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env(STDERR_FILE, &stderr_path)
        .env(OUTSIDE, scratch.0.join("outside"))
        .env("HEAPTIDE_DIR", scratch.dumps())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let deadline = Instant::now() + HANG_GUARD;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "child {case} did not finish within a minute:\n--- stdout\n{}\n--- stderr\n{}",
                std::fs::read_to_string(&stdout_path).unwrap_or_default(),
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let run = ChildRun {
        pid,
        stdout: std::fs::read_to_string(&stdout_path).unwrap(),
        stderr: std::fs::read_to_string(&stderr_path).unwrap(),
    };
    assert!(
        status.success(),
        "child {case} failed ({status}):\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout,
        run.stderr
    );
    run
}

/// The names of the entries of `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}
