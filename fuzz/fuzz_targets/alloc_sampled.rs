//! Allocation sequences through heaptide sampling once per 4 KiB on average: memory intact,
//! figures finite, and nothing reported live once every block is freed. See
//! `src/alloc_seq.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidefuzz::alloc_seq::{Mode, Op, run};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(4096).depth(6);

fuzz_target!(|ops: Vec<Op>| run(&ops, Mode::Sampled));
