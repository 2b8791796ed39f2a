//! `fork()` from a multi-threaded, profiled process: the child allocates, takes a report and
//! exits; it never hangs (the drain lock is taken around fork, so the child never inherits it
//! held by a thread that does not exist there), and it gets its own drain thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(4096);

#[inline(never)]
fn child_keeps(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| vec![i as u8; 1000]).collect()
}

#[test]
fn child_of_a_busy_profiled_process_works() {
    static STOP: AtomicBool = AtomicBool::new(false);
    // Busy threads: they sample, push to rings, and help drain, so the fork lands at random
    // points of that activity.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(|| {
                let mut keep = Vec::new();
                while !STOP.load(Ordering::Relaxed) {
                    keep.push(vec![0u8; 300]);
                    if keep.len() > 1000 {
                        keep.clear();
                    }
                    if keep.len() % 97 == 0 {
                        heaptide::flush();
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    // Load debug info once in the parent: children inherit the symbol cache (each child
    // loading it again would only make the test slow).
    let _ = heaptide::report();

    for round in 0..10 {
        // SAFETY: the child only allocates, takes a report and `_exit`s; if anything in it
        // hung, the parent's timeout below would catch it.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let kept = child_keeps(2000);
            let report = heaptide::report();
            let ok = report
                .sites_mentioning("child_keeps")
                .any(|s| s.live_bytes > 0)
                && kept.len() == 2000;
            // SAFETY: ends the child without running the parent's atexit handlers or test harness.
            unsafe { libc::_exit(if ok { 0 } else { 3 }) };
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child without blocking.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                break;
            }
            if Instant::now() > deadline {
                // SAFETY: kills our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                panic!("round {round}: the child of fork() hung");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            libc::WIFEXITED(status),
            "round {round}: child died: status {status}"
        );
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "round {round}: child's report did not show its allocations"
        );
    }
    STOP.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}
