//! The loop counted by `valgrind --tool=callgrind` in `instr_bare` and `instr_heaptide`:
//! N unsampled-size malloc+free pairs through the global allocator.
//!
//! Usage: `instr_<alloc> [N]` (default 1,000,000). Run it for two values of N and subtract the
//! instruction totals: start-up, heaptide's initialisation and exit cancel out, what is left
//! is the cost of N more pairs (`bin/bench.sh` does this).

use std::alloc::{Layout, alloc, dealloc, handle_alloc_error};
use std::hint::black_box;

/// Size of each block: small, the common case.
pub const SIZE: usize = 16;

#[inline(never)]
pub fn pairs(n: u64) {
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    for _ in 0..n {
        // SAFETY: non-zero size; the block is freed with the layout it was allocated with.
        unsafe {
            let p = alloc(layout);
            if p.is_null() {
                handle_alloc_error(layout);
            }
            // Keeps the compiler from pairing up and removing the allocation.
            let p = black_box(p);
            dealloc(p, layout);
        }
    }
}

pub fn main() {
    let n = std::env::args()
        .skip(1)
        .find_map(|a| a.replace('_', "").parse::<u64>().ok())
        .unwrap_or(1_000_000);
    pairs(black_box(n));
}
