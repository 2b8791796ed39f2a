//! N malloc+free pairs under `heaptide::Heaptide::new()`, for `valgrind --tool=callgrind` (see
//! `workloads/pairs.rs` and `bin/bench.sh`). `HEAPTIDE_SAMPLE=off` gives the plain pass-through
//! (countdown never fires, range test always false).

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

#[path = "workloads/pairs.rs"]
mod pairs;

fn main() {
    pairs::main();
}
