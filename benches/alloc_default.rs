//! The comparison workloads under `heaptide::Heaptide::new()` (one sample per 512 KiB).
//! Driven by `benches/overhead.rs`; see `workloads/mod.rs`.

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

#[path = "workloads/mod.rs"]
mod workloads;

fn main() {
    workloads::child_main(
        workloads::Mode::Default,
        heaptide::flush,
        workloads::heaptide_stats,
    );
}
