//! `fork()` from a multi-threaded, profiled process: the child allocates, takes a report and
//! exits; it never hangs (every lock heaptide owns is taken around fork, so the child never
//! inherits one held by a thread that does not exist there), never crashes (the child's
//! jemalloc state, its sampled caches included, is valid), and gets its own drain thread.
//!
//! Each scenario forks 20 children; a child that has not ended after 30 s counts as hung. The
//! scenarios that need settings (`HEAPTIDE_DUMP_AT_EXIT`) run in a fresh process
//! (`common::child`), which forks its own children.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::child::{CHILD, Scratch, run_child};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(4096);

/// Children per scenario.
const CHILDREN: usize = 20;

#[inline(never)]
fn child_keeps(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; 1000]).collect()
}

/// Threads running until stopped.
struct Threads {
    stop: Arc<AtomicBool>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Threads {
    fn spawn(n: usize, work: fn()) -> Threads {
        let stop = Arc::new(AtomicBool::new(false));
        let handles = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        work();
                    }
                })
            })
            .collect();
        Threads { stop, handles }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.handles {
            t.join().unwrap();
        }
    }
}

/// Threads that sample, push to rings and help drain, so a fork lands at random points of that
/// activity.
fn busy_threads(n: usize) -> Threads {
    Threads::spawn(n, || {
        let mut keep = Vec::new();
        for _ in 0..1000 {
            keep.push(vec![0u8; 300]);
            if keep.len() % 97 == 0 {
                heaptide::flush();
            }
        }
    })
}

/// Threads that build reports in a loop (taking the drain lock, the symbol cache's lock, the
/// history's and the health state's).
fn reporting_threads(n: usize) -> Threads {
    Threads::spawn(n, || {
        std::hint::black_box(heaptide::report());
    })
}

/// Threads that label their allocations in a loop, interning new label sets (taking the label
/// table's lock).
fn labelling_threads(n: usize) -> Threads {
    Threads::spawn(n, || {
        for i in 0..64 {
            let value = format!("parent-{}", i % 50);
            heaptide::label("fork", &value, || std::hint::black_box(vec![0u8; 300]));
        }
    })
}

/// How a child ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Exited(i32),
    Signalled(i32),
    Hung,
}

/// Waits for child `pid` (polling, so a hung child is killed, not waited for forever).
fn wait_child(pid: libc::pid_t) -> End {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child without blocking.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if Instant::now() > deadline {
            // SAFETY: kills and reaps our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return End::Hung;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    if libc::WIFEXITED(status) {
        End::Exited(libc::WEXITSTATUS(status))
    } else {
        End::Signalled(libc::WTERMSIG(status))
    }
}

/// Forks `CHILDREN` children, each running `child` (which must end the process), spaced
/// `pause` apart; returns how each ended.
fn fork_children(pause: Duration, child: fn()) -> Vec<End> {
    (0..CHILDREN)
        .map(|_| {
            std::thread::sleep(pause);
            // SAFETY: the child runs `child`, which ends it; if it hangs, `wait_child` kills it.
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0, "fork failed");
            if pid == 0 {
                child();
                // SAFETY: ends the child if `child` returned.
                unsafe { libc::_exit(4) };
            }
            wait_child(pid)
        })
        .collect()
}

fn assert_all_exited(ends: &[End]) {
    let bad: Vec<(usize, &End)> = ends
        .iter()
        .enumerate()
        .filter(|(_, e)| **e != End::Exited(0))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {CHILDREN} children failed (exit 3: their report lacked their allocations): {bad:?}",
        bad.len()
    );
}

/// A child that allocates, checks its report shows it, and `_exit`s.
fn child_reports() {
    let kept = child_keeps(2000);
    let report = heaptide::report();
    let ok = report
        .sites_mentioning("child_keeps")
        .any(|s| s.live_bytes > 0)
        && kept.len() == 2000;
    // SAFETY: ends the child without running the parent's atexit handlers or test harness.
    unsafe { libc::_exit(if ok { 0 } else { 3 }) };
}

/// A child that labels its allocations, checks its report shows them under the label, and
/// `_exit`s.
fn child_labels() {
    let kept = heaptide::label("component", "child", || child_keeps(2000));
    let report = heaptide::report();
    let ok = report
        .sites_mentioning("child_keeps")
        .any(|s| s.live_bytes > 0 && s.labels.get("component").is_some_and(|v| v == "child"))
        && kept.len() == 2000;
    // SAFETY: ends the child without running the parent's atexit handlers or test harness.
    unsafe { libc::_exit(if ok { 0 } else { 3 }) };
}

#[test]
fn child_of_a_busy_profiled_process_works() {
    let workers = busy_threads(3);
    std::thread::sleep(Duration::from_millis(50));
    // Load debug info once in the parent: children inherit the symbol cache (each child
    // loading it again would only make the test slow).
    let _ = heaptide::report();
    let ends = fork_children(Duration::from_millis(1), child_reports);
    workers.stop();
    assert_all_exited(&ends);
}

#[test]
fn child_forked_while_another_thread_reports_works() {
    let _ = heaptide::report();
    let threads = reporting_threads(2);
    let workers = busy_threads(1);
    let ends = fork_children(Duration::from_millis(3), child_reports);
    threads.stop();
    workers.stop();
    assert_all_exited(&ends);
}

#[test]
fn child_forked_while_threads_label_works() {
    let _ = heaptide::report();
    let threads = labelling_threads(2);
    let ends = fork_children(Duration::from_millis(3), child_labels);
    threads.stop();
    assert_all_exited(&ends);
}

// === children that exit normally (exit dump, report in an atexit handler) ===

extern "C" fn report_at_exit() {
    let report = heaptide::report();
    std::hint::black_box(report.profiler.samples);
}

/// Runs in a fresh process with `HEAPTIDE_DUMP_AT_EXIT=1`: forks children from a busy threaded
/// process; each allocates and calls `exit` (running heaptide's exit dump and an atexit handler
/// that takes a report).
fn child_exit_dumps() {
    let workers = busy_threads(3);
    let reporter = reporting_threads(1);
    // What the children do, once here first: their stacks are then in the symbol cache they
    // inherit (a child meeting new addresses loads debug info again, seconds in a debug build).
    for _ in 0..3 {
        std::hint::black_box(child_keeps(100));
        heaptide::dump().unwrap();
        report_at_exit();
    }
    let ends = fork_children(Duration::from_millis(2), || {
        // SAFETY: registers a handler that is valid for the life of the process.
        unsafe { libc::atexit(report_at_exit) };
        std::hint::black_box(child_keeps(100));
        // SAFETY: a normal exit: atexit handlers (heaptide's exit dump, ours) run.
        unsafe { libc::exit(0) };
    });
    reporter.stop();
    workers.stop();
    assert_all_exited(&ends);
    println!("exit-dumps ok");
}

#[test]
fn child() {
    if let Ok("exit_dumps") = std::env::var(CHILD).as_deref() {
        child_exit_dumps()
    }
}

#[test]
fn children_that_exit_with_a_dump_do_not_crash() {
    let scratch = Scratch::new("fork-exit");
    let run = run_child(
        "exit_dumps",
        &scratch,
        &[
            ("HEAPTIDE_DUMP_AT_EXIT", "1"),
            ("HEAPTIDE_FORMATS", "json"),
            // Short stacks: the children's samples taken on the exit path (inside libc) would
            // otherwise make each child load libc's debug info (seconds each, where installed).
            ("HEAPTIDE_DEPTH", "3"),
        ],
    );
    assert!(run.stdout.contains("exit-dumps ok"), "{}", run.stdout);
    // Every child wrote its exit dump.
    let dumps = std::fs::read_dir(scratch.dumps()).unwrap().count();
    assert!(
        dumps >= CHILDREN,
        "{dumps} exit dumps for {CHILDREN} children"
    );
}
