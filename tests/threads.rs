//! Many short-lived threads, in exact mode: figures stay exact, ring slots are reused, nothing
//! is dropped; frees on other threads, after the allocating thread is gone, and from
//! thread-local destructors at thread exit are all accounted.

use std::cell::RefCell;
use std::hint::black_box;
use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Instant;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

mod common;

use common::{Block, Figures, leaf, serial, settled_report, sum_figures, truth};

// === helpers ===

/// The figures of every reported site whose stack mentions `name`, summed; in exact mode each
/// site has one sample per allocation.
fn figures(report: &heaptide::Report, name: &str) -> Figures {
    for s in report.sites_mentioning(name) {
        assert_eq!(
            s.samples, s.alloc_count,
            "exact mode: one sample per allocation"
        );
    }
    common::figures(report, name)
}

// The tests of this binary run one at a time (`serial()`): the ring-slot bound below holds
// only while no report is being built concurrently (see `tests/threads_during_report.rs`).

leaf!(th_churn_leaf);
leaf!(th_leak_leaf);
leaf!(th_handoff_leaf);
leaf!(th_tls_early_leaf);
leaf!(th_tls_late_leaf);
leaf!(th_tls_dtor_alloc_leaf);

// === 10,000 threads ===

const THREADS: usize = 10_000;
const BATCH: usize = 8;
const CHURN: usize = 4;

fn churn_size(i: usize, k: usize) -> usize {
    16 + (i * 31 + k * 97) % 1_000
}
fn leak_size(i: usize) -> usize {
    100 + i % 300
}
fn handoff_size(i: usize) -> usize {
    1 + (i * 13) % 5_000
}

/// Blocks leaked by the short-lived threads (the allocating thread is gone when they are
/// freed).
static LEAKED: Mutex<Vec<(usize, Block)>> = Mutex::new(Vec::new());

#[test]
fn ten_thousand_short_lived_threads() {
    let _serial = serial();
    let start = Instant::now();
    LEAKED.lock().unwrap().reserve(THREADS);
    let (tx, rx) = mpsc::channel::<Block>();
    for batch in 0..THREADS / BATCH {
        let handles: Vec<_> = (0..BATCH)
            .map(|j| {
                let i = batch * BATCH + j;
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for k in 0..CHURN {
                        th_churn_leaf(churn_size(i, k)).free();
                    }
                    let leaked = th_leak_leaf(leak_size(i));
                    LEAKED.lock().unwrap().push((i, leaked));
                    tx.send(th_handoff_leaf(handoff_size(i))).unwrap();
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        // Free what this batch handed over: its threads have exited.
        for b in rx.try_iter() {
            b.free();
        }
    }
    let spawned_in = start.elapsed();

    // Free the even threads' leaked blocks here, on another thread than the allocating one.
    let mut live_leak_sizes = Vec::new();
    {
        let mut leaked = LEAKED.lock().unwrap();
        assert_eq!(leaked.len(), THREADS);
        for (i, b) in std::mem::take(&mut *leaked) {
            if i % 2 == 0 {
                b.free();
            } else {
                live_leak_sizes.push(b.1);
                leaked.push((i, b));
            }
        }
    }

    let churn_sizes: Vec<usize> = (0..THREADS)
        .flat_map(|i| (0..CHURN).map(move |k| churn_size(i, k)))
        .collect();
    let leak_sizes: Vec<usize> = (0..THREADS).map(leak_size).collect();
    let handoff_sizes: Vec<usize> = (0..THREADS).map(handoff_size).collect();

    let r = settled_report();
    assert!(r.exact);
    assert_eq!(
        r.profiler.dropped, 0,
        "exact mode drops nothing: {:?}",
        r.profiler
    );
    assert_eq!(figures(&r, "th_churn_leaf"), truth(&churn_sizes, &[]));
    assert_eq!(
        figures(&r, "th_leak_leaf"),
        truth(&leak_sizes, &live_leak_sizes)
    );
    assert_eq!(figures(&r, "th_handoff_leaf"), truth(&handoff_sizes, &[]));
    // Rings of exited threads are drained and reused: a few batches' worth of slots exist
    // (8 worker threads at a time, the drain waking at each thread exit), far fewer than the
    // 10,000 threads that sampled. About 30 here; the bound leaves room for a drain that is
    // late by a few dozen batches on a loaded machine.
    assert!(r.profiler.thread_slots >= BATCH as u64);
    assert!(
        r.profiler.thread_slots <= (THREADS / 20) as u64,
        "ring slots not reused: {} slots for {THREADS} threads ({:?})",
        r.profiler.thread_slots,
        r.profiler
    );
    eprintln!("{THREADS} threads in {spawned_in:?}; {:?}", r.profiler);

    for (_, b) in std::mem::take(&mut *LEAKED.lock().unwrap()) {
        b.free();
    }
    let r = settled_report();
    assert_eq!(figures(&r, "th_leak_leaf"), truth(&leak_sizes, &[]));
    assert_eq!(r.profiler.dropped, 0);
    assert_eq!(
        r.profiler.pending_frees, 0,
        "frees never matched: {:?}",
        r.profiler
    );
}

// === thread-local destructors at thread exit ===
//
// These threads are raw pthreads, so that nothing runs in them before the test's own code:
// a thread-local touched first registers its destructor before the thread's first allocation,
// that is, before heaptide takes a ring slot for the thread (and registers the destructor that
// gives it back). Destructors run in reverse order of registration, so that thread-local's
// destructor runs after the thread has given its slot back.

mod raw_thread {
    use std::ffi::{c_int, c_ulong, c_void};

    unsafe extern "C" {
        fn pthread_create(
            thread: *mut c_ulong,
            attr: *const c_void,
            start: extern "C" fn(*mut c_void) -> *mut c_void,
            arg: *mut c_void,
        ) -> c_int;
        fn pthread_join(thread: c_ulong, ret: *mut *mut c_void) -> c_int;
    }

    /// Runs `f(arg)` on a fresh pthread and waits until the thread has fully exited
    /// (thread-local destructors included).
    pub fn run(f: extern "C" fn(*mut c_void) -> *mut c_void, arg: usize) {
        let mut t: c_ulong = 0;
        // SAFETY: valid out-pointer, default attributes, a start routine that does not unwind
        // (panics abort at the `extern "C"` boundary).
        let created = unsafe { pthread_create(&mut t, std::ptr::null(), f, arg as *mut c_void) };
        assert_eq!(created, 0);
        // SAFETY: `t` is a joinable thread created above, joined once.
        let joined = unsafe { pthread_join(t, std::ptr::null_mut()) };
        assert_eq!(joined, 0);
    }
}

/// Frees its block when dropped (at thread exit, for a thread-local).
struct FreeOnDrop(Option<Block>);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            b.free();
        }
    }
}

thread_local! {
    static EARLY: RefCell<FreeOnDrop> = const { RefCell::new(FreeOnDrop(None)) };
    static LATE: RefCell<FreeOnDrop> = const { RefCell::new(FreeOnDrop(None)) };
}

const TLS_THREADS: usize = 200;

extern "C" fn free_at_exit_thread(arg: *mut std::ffi::c_void) -> *mut std::ffi::c_void {
    let i = arg as usize;
    // Registered before the thread's first allocation: destroyed after heaptide's slot owner.
    EARLY.with(|_| ());
    let early = th_tls_early_leaf(1_000 + i);
    EARLY.with(|e| e.borrow_mut().0 = Some(early));
    // Registered after: destroyed while the thread still owns its ring.
    let late = th_tls_late_leaf(2_000 + i);
    LATE.with(|l| l.borrow_mut().0 = Some(late));
    std::ptr::null_mut()
}

#[test]
fn thread_local_destructors_free_sampled_blocks() {
    let _serial = serial();
    // EARLY's free happens after the thread gave its ring slot back: it must still be recorded
    // (the block waits on the deferred stack). LATE's goes through the thread's ring.
    for i in 0..TLS_THREADS {
        raw_thread::run(free_at_exit_thread, i);
    }
    let r = settled_report();
    assert_eq!(r.profiler.dropped, 0);
    let early: Vec<usize> = (0..TLS_THREADS).map(|i| 1_000 + i).collect();
    let late: Vec<usize> = (0..TLS_THREADS).map(|i| 2_000 + i).collect();
    assert_eq!(figures(&r, "th_tls_early_leaf"), truth(&early, &[]));
    assert_eq!(figures(&r, "th_tls_late_leaf"), truth(&late, &[]));
    assert_eq!(
        r.profiler.pending_frees, 0,
        "frees never matched: {:?}",
        r.profiler
    );
}

/// Allocates when dropped: a thread-local destructor that allocates at thread exit.
struct AllocOnDrop(usize);

impl Drop for AllocOnDrop {
    fn drop(&mut self) {
        let b = th_tls_dtor_alloc_leaf(self.0);
        DTOR_ALLOCATED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(b);
    }
}

static DTOR_ALLOCATED: Mutex<Vec<Block>> = Mutex::new(Vec::new());

thread_local! {
    static ALLOC_AT_EXIT: RefCell<Option<AllocOnDrop>> = const { RefCell::new(None) };
}

extern "C" fn alloc_at_exit_thread(arg: *mut std::ffi::c_void) -> *mut std::ffi::c_void {
    // Registered before the thread's first allocation: runs after heaptide's slot owner.
    ALLOC_AT_EXIT.with(|a| *a.borrow_mut() = Some(AllocOnDrop(arg as usize)));
    // Any allocation: the thread takes its ring slot now.
    black_box(Box::new(arg as usize));
    std::ptr::null_mut()
}

#[test]
fn allocations_in_thread_local_destructors_are_recorded() {
    let _serial = serial();
    // Exact mode records every allocation of the program, including one made by a
    // thread-local destructor that runs after heaptide gave the thread's ring slot back. If it
    // cannot be recorded, it must at least be counted as dropped, never lost silently.
    DTOR_ALLOCATED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .reserve(TLS_THREADS);
    for i in 0..TLS_THREADS {
        raw_thread::run(alloc_at_exit_thread, 3_000 + i);
    }
    let blocks: Vec<Block> =
        std::mem::take(&mut *DTOR_ALLOCATED.lock().unwrap_or_else(|e| e.into_inner()));
    assert_eq!(blocks.len(), TLS_THREADS);
    let sizes: Vec<usize> = (0..TLS_THREADS).map(|i| 3_000 + i).collect();
    let r = settled_report();
    let got = sum_figures(&r, "th_tls_dtor_alloc_leaf").without_samples();
    let dropped = r.profiler.dropped;
    for b in blocks {
        b.free();
    }
    assert_eq!(
        got,
        truth(&sizes, &sizes).without_samples(),
        "allocations made by thread-local destructors at thread exit are missing from the exact \
         profile (profiler.dropped = {dropped})"
    );
}

/// The `stat` fields of the `heaptide-drain` task, from field 3 on (the ones after the command
/// name's closing parenthesis; `None`: no such thread).
#[cfg(target_os = "linux")]
fn drain_task_stat() -> Option<Vec<String>> {
    let task = std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|e| e.ok())
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == "heaptide-drain")
        })?;
    let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// After a burst at exact mode's rates, which makes the drain thread poll instead of park, it
/// goes back to parking: an idle program's drain thread uses next to no CPU.
#[cfg(target_os = "linux")]
#[test]
fn drain_thread_stops_polling_when_idle() {
    let _serial = serial();
    for i in 0..200_000usize {
        black_box(vec![0u8; 16 + i % 100]);
    }
    heaptide::flush();
    std::thread::sleep(std::time::Duration::from_millis(300));
    // utime and stime (fields 14 and 15), in clock ticks (100 per second here).
    let cpu_ticks = || -> u64 {
        let f = drain_task_stat().expect("a heaptide-drain thread");
        f[14 - 3].parse::<u64>().unwrap() + f[15 - 3].parse::<u64>().unwrap()
    };
    let before = cpu_ticks();
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = cpu_ticks() - before;
    assert!(
        used <= 5,
        "the idle drain thread used {used} clock ticks of CPU in one second"
    );
}

/// The drain thread runs under `SCHED_BATCH`, so its wake-ups do not preempt the program's
/// threads (see `step_aside` in src/drain/mod.rs). Read from /proc: field 41 of a task's
/// `stat` is its scheduling policy.
#[cfg(target_os = "linux")]
#[test]
fn drain_thread_runs_under_sched_batch() {
    const SCHED_BATCH: u32 = 3;
    let _serial = serial();
    // A sandbox may forbid the call (seccomp); the drain then keeps the default policy, which
    // is correct behaviour, and there is nothing to check here.
    let allowed = std::thread::spawn(|| {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: a valid `sched_param`; pid 0 is this scratch thread.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) == 0 }
    })
    .join()
    .unwrap();
    if !allowed {
        eprintln!("SCHED_BATCH is not allowed here; skipping the drain's policy check");
        return;
    }
    black_box(vec![0u8; 100]);
    heaptide::flush();
    // A hang guard, not a speed limit: a loaded machine may run the thread late.
    let deadline = Instant::now() + std::time::Duration::from_secs(600);
    // The thread is named before it runs, so a first look may come before it changes policy.
    let mut seen = None;
    loop {
        if let Some(fields) = drain_task_stat() {
            let policy: u32 = fields[41 - 3].parse().expect("policy is a number");
            if policy == SCHED_BATCH {
                break;
            }
            seen = Some(policy);
        }
        assert!(
            Instant::now() < deadline,
            "drain thread's policy never set: {seen:?} (None: no heaptide-drain thread), want {SCHED_BATCH}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
