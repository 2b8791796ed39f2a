//! N malloc+free pairs on bare jemalloc, for `valgrind --tool=callgrind` (see
//! `workloads/pairs.rs` and `bin/bench.sh`).

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "workloads/pairs.rs"]
mod pairs;

fn main() {
    pairs::main();
}
