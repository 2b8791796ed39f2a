//! The comparison workloads under `heaptide::Heaptide::new().exact()` (every allocation
//! recorded with its stack). Driven by `benches/overhead.rs`; see `workloads/mod.rs`.

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[path = "workloads/mod.rs"]
mod workloads;

fn stats() -> Option<(u64, u64, u64)> {
    let r = heaptide::report();
    Some((
        r.profiler.samples,
        r.profiler.dropped,
        r.profiler.overhead_bytes,
    ))
}

fn main() {
    workloads::child_main(workloads::Mode::Exact, heaptide::flush, stats);
}
