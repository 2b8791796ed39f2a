//! N malloc+free pairs under `heaptide::Heaptide::new()`, for `valgrind --tool=callgrind` (see
//! `workloads/pairs.rs` and `bin/bench.sh`). `HEAPTIDE_SAMPLE=off` gives the plain pass-through
//! (countdown never fires, range test always false). With `INSTR_LABEL=1` the loop runs inside
//! `heaptide::label("component", "bench", ..)`: what a label costs each allocation.

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

#[path = "workloads/pairs.rs"]
mod pairs;

fn main() {
    if std::env::var_os("INSTR_LABEL").is_some_and(|v| v == "1") {
        heaptide::label("component", "bench", pairs::main);
    } else {
        pairs::main();
    }
}
