//! Rings of exited threads are given back: after thousands of short-lived threads (hundreds
//! alive at once), the rings hold the spares' buffers plus a control block per slot, not one
//! buffer (about 80 KiB) per thread that ever sampled.

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[test]
fn rings_of_exited_threads_are_freed() {
    let batches = 10;
    let per_batch = 500;
    for _ in 0..batches {
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(per_batch));
        let threads: Vec<_> = (0..per_batch)
            .map(|_| {
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    // Exact mode: this allocation gives the thread a slot.
                    std::hint::black_box(vec![0u8; 64]);
                    // All alive at once: each holds its own slot.
                    barrier.wait();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
    heaptide::flush();
    let report = heaptide::report();
    let p = &report.profiler;
    assert!(
        p.thread_slots >= per_batch as u64,
        "{} slots",
        p.thread_slots
    );
    // 16 spare buffers (and the few slots still in use) at about 80 KiB each, under 1 KiB per
    // other slot: under 8 MiB. One buffer per slot would be over 40 MiB.
    assert!(
        p.rings_freed >= (per_batch - 16) as u64,
        "{} rings freed of {} slots",
        p.rings_freed,
        p.thread_slots
    );
    assert!(
        p.ring_bytes < 8 << 20,
        "{} ring bytes for {} slots",
        p.ring_bytes,
        p.thread_slots
    );
}
