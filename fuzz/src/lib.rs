//! Shared code of heaptide's fuzz targets (`fuzz_targets/`); see `fuzz/README.md`.

pub mod alloc_seq;
pub mod pprof;
pub mod report_gen;
