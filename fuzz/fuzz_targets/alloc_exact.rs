//! Allocation sequences through heaptide in exact mode: memory intact, and the report's live and
//! cumulative figures for the sequence's call sites equal the model. See `src/alloc_seq.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidefuzz::alloc_seq::{Mode, Op, run};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact().depth(6);

fuzz_target!(|ops: Vec<Op>| run(&ops, Mode::Exact));
