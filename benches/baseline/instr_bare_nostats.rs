//! N malloc+free pairs on bare jemalloc built without statistics (tikv-jemallocator's default),
//! for `valgrind --tool=callgrind` (see `../workloads/pairs.rs` and `bin/bench.sh`).
//!
//! heaptide needs jemalloc's statistics (`thread.allocatedp` for its own overhead, `stats.*`
//! for the memory figures in reports), and Cargo unifies features within a package, so the
//! `instr_bare` bench of the heaptide package runs a jemalloc with statistics. That isolates
//! heaptide's own cost; this binary measures what a program without heaptide runs, so the
//! cost of statistics shows too.

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "../workloads/pairs.rs"]
mod pairs;

fn main() {
    pairs::main();
}
