//! The loops counted by `valgrind --tool=callgrind` in `instr_bare` and `instr_heaptide`:
//! N malloc+free pairs through the global allocator, or N allocations kept, or N allocations
//! then their N frees.
//!
//! Usage: `instr_<alloc> [pairs|allocs|frees] [N]` (default `pairs`, N = 1,000,000). Run it for
//! two values of N and subtract the instruction totals: start-up, heaptide's initialisation and
//! exit cancel out, what is left is the cost of N more pairs (`bin/bench.sh` does this). With
//! `HEAPTIDE_SAMPLE=1` (every allocation sampled) `pairs` gives a sampled pair, and `frees`
//! minus `allocs` a sampled free.

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

/// Makes `n` blocks of [`SIZE`] bytes, kept in `blocks` (which has room for them).
#[inline(never)]
pub fn allocs(n: u64, blocks: &mut Vec<*mut u8>) {
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    for _ in 0..n {
        // SAFETY: non-zero size.
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            handle_alloc_error(layout);
        }
        blocks.push(black_box(p));
    }
}

/// Frees the blocks [`allocs`] made.
#[inline(never)]
pub fn frees(blocks: &[*mut u8]) {
    let layout = Layout::from_size_align(SIZE, 8).unwrap();
    for &p in blocks {
        // SAFETY: each block came from `allocs` with this layout and is freed once.
        unsafe { dealloc(black_box(p), layout) };
    }
}

pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = args
        .iter()
        .find_map(|a| a.replace('_', "").parse::<u64>().ok())
        .unwrap_or(1_000_000);
    let mode = args
        .iter()
        .find(|a| a.replace('_', "").parse::<u64>().is_err())
        .map_or("pairs", String::as_str);
    match mode {
        "pairs" => pairs(black_box(n)),
        "allocs" | "frees" => {
            let mut blocks = Vec::with_capacity(n as usize);
            allocs(black_box(n), &mut blocks);
            if mode == "frees" {
                frees(&blocks);
            }
            // `allocs` keeps its blocks to the end, as a program that never frees them.
            std::mem::forget(blocks);
        }
        other => {
            eprintln!("usage: instr_<alloc> [pairs|allocs|frees] [N] (not {other:?})");
            std::process::exit(2);
        }
    }
}
