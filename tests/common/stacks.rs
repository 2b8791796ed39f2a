//! Many distinct call stacks, cheaply: a binary tree of recursion through two functions, whose
//! path is the bits of a number. `distinct_stacks(levels, ..)` allocates one 64-byte block at
//! each of 2^levels distinct stacks (each `levels + 2` frames of `a`/`b`/`leaf` deep) and keeps
//! it. Shared by `tests/site_budget.rs` and `benches/site_budget.rs`.

use std::hint::black_box;

/// One 64-byte block kept per stack.
pub type Block = Box<[u8; 64]>;

/// Allocates one block at each of `2^levels` distinct call stacks into `keep`.
pub fn distinct_stacks(levels: u32, keep: &mut Vec<Block>) {
    keep.reserve(1 << levels);
    for path in 0..1u32 << levels {
        black_box(a(levels, path, keep));
    }
}

/// The two functions of the tree: identical bodies, distinct functions (so a stack's frames
/// spell its path).
macro_rules! step {
    ($name:ident) => {
        #[inline(never)]
        fn $name(level: u32, path: u32, keep: &mut Vec<Block>) -> usize {
            let r = if level == 0 {
                leaf(keep)
            } else if path & 1 == 0 {
                a(level - 1, path >> 1, keep)
            } else {
                b(level - 1, path >> 1, keep)
            };
            // Not a tail call: each level keeps its frame.
            black_box(r) + 1
        }
    };
}

step!(a);
step!(b);

#[inline(never)]
fn leaf(keep: &mut Vec<Block>) -> usize {
    keep.push(black_box(Box::new([7u8; 64])));
    keep.len()
}

/// The process's peak resident set size (`VmHWM` in `/proc/self/status`), bytes.
pub fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmHWM in kB");
    kib * 1024
}
