//! The comparison workloads under `heaptide::Heaptide::new().exact()` (every allocation
//! recorded with its stack). Driven by `benches/overhead.rs`; see `workloads/mod.rs`.

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[path = "workloads/mod.rs"]
mod workloads;

fn main() {
    workloads::child_main(
        workloads::Mode::Exact,
        heaptide::flush,
        workloads::heaptide_stats,
    );
}
