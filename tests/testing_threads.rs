//! `heaptide::testing::options().all_threads()`: threads started inside the closure are
//! tracked with it, as a multi-threaded async runtime's workers would be. In a binary of its
//! own, with one test: while such a closure runs, any thread that starts in the process joins
//! it (the test runner's own threads included).

use std::hint::black_box;
use std::sync::Mutex;
use std::sync::mpsc;

use heaptide::testing;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new();

static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

#[inline(never)]
fn worker_keeps(bytes: usize) {
    KEPT.lock().unwrap().push(black_box(vec![3u8; bytes]));
}

#[inline(never)]
fn worker_tidy(bytes: usize) -> usize {
    black_box(vec![4u8; bytes]).len()
}

/// A small pool, as a runtime would start: `threads` workers taking jobs from a channel.
fn run_pool(threads: usize, jobs: Vec<Box<dyn FnOnce() + Send>>) {
    let (tx, rx) = mpsc::channel::<Box<dyn FnOnce() + Send>>();
    let rx = std::sync::Arc::new(Mutex::new(rx));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                loop {
                    let job = rx.lock().unwrap().recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    for job in jobs {
        tx.send(job).unwrap();
    }
    drop(tx);
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn threads_started_inside_are_tracked_with_all_threads() {
    // Default: the spawned thread's leak is not the closure's.
    let t = testing::track(|| std::thread::spawn(|| worker_keeps(1 << 20)).join().unwrap());
    assert!(t.alloc_bytes < 1 << 20, "{t}");
    assert!(!t.leaked(), "{t}");

    // All threads: it is, named at the worker's function.
    let t = testing::options()
        .all_threads()
        .track(|| std::thread::spawn(|| worker_keeps(1 << 20)).join().unwrap());
    assert!(t.alloc_bytes >= 1 << 20, "{t}");
    assert!(t.leaked_bytes >= 1 << 20, "{t}");
    assert!(
        t.leaks[0]
            .blamed_frame()
            .unwrap()
            .function
            .contains("worker_keeps"),
        "{t}"
    );

    // A pool whose jobs allocate and free: nothing leaked, everything counted.
    let tidy_pool = || {
        run_pool(
            4,
            (0..32)
                .map(|i| {
                    Box::new(move || {
                        worker_tidy(1000 + i);
                    }) as Box<dyn FnOnce() + Send>
                })
                .collect(),
        )
    };
    testing::options().all_threads().assert_no_leaks(tidy_pool);
    let t = testing::options().all_threads().track(tidy_pool);
    assert!(t.alloc_bytes >= 32 * 1000, "{t}");

    // One job of the pool leaks: found, with the limit and the filter as options.
    let leaky = || {
        run_pool(
            2,
            vec![
                Box::new(|| {
                    worker_tidy(5000);
                }),
                Box::new(|| worker_keeps(3000)),
            ],
        )
    };
    let r = std::panic::catch_unwind(|| testing::options().all_threads().assert_no_leaks(leaky));
    let msg = r
        .unwrap_err()
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(msg.contains("worker_keeps"), "{msg}");
    testing::options()
        .all_threads()
        .ignore_stacks(|frames| frames.iter().any(|f| f.function.contains("worker_keeps")))
        .assert_no_leaks(leaky);

    // Threads that joined a scope leave it when it ends: a thread started inside and still
    // running afterwards is not tracked by a later closure.
    // Barriers (a futex, no allocation) rather than channels: a channel allocates lazily on
    // first use (its blocks, the waiting thread's context), which would be live after the
    // tracked closure below and blamed on it.
    let go = std::sync::Arc::new(std::sync::Barrier::new(2));
    let done = std::sync::Arc::new(std::sync::Barrier::new(2));
    let (go_late, done_late) = (go.clone(), done.clone());
    let mut late = None;
    testing::options().all_threads().track(|| {
        late = Some(std::thread::spawn(move || {
            worker_tidy(10);
            go_late.wait();
            worker_keeps(7777);
            done_late.wait();
        }));
    });
    let t = testing::track(|| {
        go.wait();
        done.wait();
    });
    assert!(!t.leaked(), "{t}");
    late.unwrap().join().unwrap();
}
