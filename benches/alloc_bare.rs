//! The comparison workloads on bare jemalloc (`tikv_jemallocator::Jemalloc`): the baseline.
//! Driven by `benches/overhead.rs`; see `workloads/mod.rs`.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "workloads/mod.rs"]
mod workloads;

fn main() {
    workloads::child_main(workloads::Mode::Bare, || {}, || None);
}
