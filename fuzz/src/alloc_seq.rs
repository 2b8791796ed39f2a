//! The allocation-sequence fuzzer shared by `alloc_exact` and `alloc_sampled`: random
//! `alloc` / `alloc_zeroed` / `realloc` / `dealloc` with random sizes (1 B to 1 MiB) and
//! alignments (1 B to 64 KiB) through the global allocator, which the target binary sets to
//! heaptide.
//!
//! Every allocation the sequence makes goes through one of the `#[inline(never)]` functions
//! `tidefuzz_site_*` below, so heaptide files it under call sites whose stacks name them
//! ([`SITE_NEEDLE`]); everything else in the process (libFuzzer's Rust side, `arbitrary`, this
//! model) lands at other sites. The checks:
//!
//! - memory is intact: each block is filled with a pattern derived from its serial number,
//!   checked before every realloc and free, and the preserved prefix checked after each realloc;
//!   `alloc_zeroed` blocks are checked to be zero first; alignment is checked on every pointer;
//! - exact mode: after [`heaptide::flush`], the report's figures for the sites naming
//!   [`SITE_NEEDLE`] equal the model: live bytes and count at the end of the input (before the
//!   blocks are freed), and allocations and bytes allocated since the process started (each
//!   successful realloc is one allocation of the new size, as heaptide records it);
//! - sampled mode: nothing crashes, memory is intact, every float in the report is finite, and
//!   once the input has freed all its blocks the sites naming [`SITE_NEEDLE`] hold nothing live
//!   (no phantom leak: a free removes exactly what its sampled allocation added).
//!
//! Total live bytes are capped at [`LIVE_CAP`] so a run cannot run out of memory.

use std::alloc::Layout;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arbitrary::Arbitrary;

/// A substring of the function names of every `tidefuzz_site_*` function (and of nothing else).
pub const SITE_NEEDLE: &str = "tidefuzz_site_";

/// Largest block.
pub const MAX_SIZE: usize = 1 << 20;
/// Largest alignment (64 KiB).
pub const MAX_ALIGN_LOG2: u8 = 16;
/// Most bytes live at once in one input.
pub const LIVE_CAP: usize = 64 << 20;
/// Most blocks live at once in one input.
pub const MAX_BLOCKS: usize = 64;

/// The allocator mode of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `Heaptide::new().exact()`: every allocation recorded; figures must equal the model.
    Exact,
    /// `Heaptide::new().sample_every(R)`: estimates.
    Sampled,
}

/// A size in 1..=MAX_SIZE, spread over heaptide's size buckets (tiny, small, medium, large,
/// huge) rather than uniform.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub struct Size(u32);

impl Size {
    fn bytes(self) -> usize {
        let raw = self.0 as usize;
        let max = match raw & 3 {
            0 => 64,
            1 => 1 << 10,
            2 => 64 << 10,
            _ => MAX_SIZE,
        };
        1 + (raw >> 2) % max
    }
}

/// One step of a sequence.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Op {
    /// `alloc` (or `alloc_zeroed`) of a size, aligned to `1 << (align_log2 % 17)`.
    Alloc {
        size: Size,
        align_log2: u8,
        zeroed: bool,
    },
    /// `realloc` of live block `index % live`.
    Realloc { index: u8, size: Size },
    /// `dealloc` of live block `index % live`.
    Free { index: u8 },
    /// `heaptide::flush()` in the middle of the sequence.
    Flush,
}

#[derive(Debug)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    serial: u64,
}

/// Bytes of the pattern source: a pseudo-random buffer longer than any block, so each block's
/// pattern is a window of it at an offset derived from the block's serial number. Filling and
/// checking are then `memcpy` / `memcmp` (uninstrumented, fast even for 1 MiB blocks).
const PATTERN_LEN: usize = 2 * MAX_SIZE;

fn pattern_source() -> &'static [u8] {
    static PATTERN: OnceLock<Vec<u8>> = OnceLock::new();
    PATTERN.get_or_init(|| {
        let mut x: u64 = 0x243F_6A88_85A3_08D3;
        (0..PATTERN_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    })
}

fn zeros() -> &'static [u8] {
    static ZEROS: OnceLock<Vec<u8>> = OnceLock::new();
    ZEROS.get_or_init(|| vec![0; MAX_SIZE])
}

/// The pattern of block `serial` from byte `from` to byte `to`.
fn pattern(serial: u64, from: usize, to: usize) -> &'static [u8] {
    let offset = (serial.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44) as usize % MAX_SIZE;
    &pattern_source()[offset + from..offset + to]
}

/// Writes the pattern of `block` over its bytes `from..to`.
fn fill(block: &Block, from: usize, to: usize) {
    // SAFETY: `block.ptr` is a live allocation of `block.layout.size() >= to` bytes, owned by
    // the model; nothing else refers to it.
    let bytes = unsafe { std::slice::from_raw_parts_mut(block.ptr.add(from), to - from) };
    bytes.copy_from_slice(pattern(block.serial, from, to));
}

/// Asserts that bytes `0..len` of `block` still hold its pattern.
fn check(block: &Block, len: usize, what: &str) {
    // SAFETY: `block.ptr` is live with at least `len` initialised bytes (filled by `fill`).
    let bytes = unsafe { std::slice::from_raw_parts(block.ptr, len) };
    if bytes != pattern(block.serial, 0, len) {
        let at = bytes
            .iter()
            .zip(pattern(block.serial, 0, len))
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "{what}: block #{} ({:?}) at {:p} corrupted at byte {at} of {len}",
            block.serial, block.layout, block.ptr
        );
    }
}

fn check_aligned(ptr: *mut u8, layout: Layout) {
    assert!(
        (ptr as usize).is_multiple_of(layout.align()),
        "{ptr:p} is not aligned to {} ({layout:?})",
        layout.align()
    );
}

// The call sites. `#[inline(never)]` keeps each a frame of its own, and `black_box` on the
// result keeps the call from becoming a tail call (which would leave no frame of it on the
// stack). Their names are unique in the binary: cargo-fuzz builds with line-tables-only debug
// info, where heaptide reports unqualified names.

#[inline(never)]
fn tidefuzz_site_alloc(layout: Layout) -> *mut u8 {
    // SAFETY: `layout` has a non-zero size.
    std::hint::black_box(unsafe { std::alloc::alloc(layout) })
}

#[inline(never)]
fn tidefuzz_site_alloc_zeroed(layout: Layout) -> *mut u8 {
    // SAFETY: `layout` has a non-zero size.
    std::hint::black_box(unsafe { std::alloc::alloc_zeroed(layout) })
}

/// # Safety
/// `ptr` is a live block of `layout`; `new_size > 0` and rounds up to a valid layout.
#[inline(never)]
unsafe fn tidefuzz_site_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: forwarded contract.
    std::hint::black_box(unsafe { std::alloc::realloc(ptr, layout, new_size) })
}

/// # Safety
/// `ptr` is a live block of `layout`.
#[inline(never)]
unsafe fn tidefuzz_site_dealloc(ptr: *mut u8, layout: Layout) {
    // SAFETY: forwarded contract.
    unsafe { std::alloc::dealloc(ptr, layout) };
    std::hint::black_box(());
}

/// Allocations made at the `tidefuzz_site_*` functions since the process started, and their bytes
/// (what heaptide's cumulative figures for those sites must say in exact mode).
static TOTAL_ALLOCS: AtomicU64 = AtomicU64::new(0);
static TOTAL_BYTES: AtomicU64 = AtomicU64::new(0);
/// Serial numbers of blocks (a realloc keeps its block's serial: its pattern moves with it).
static SERIAL: AtomicU64 = AtomicU64::new(0);

fn count_alloc(size: usize) {
    TOTAL_ALLOCS.fetch_add(1, Ordering::Relaxed);
    TOTAL_BYTES.fetch_add(size as u64, Ordering::Relaxed);
}

/// Runs one input.
pub fn run(ops: &[Op], mode: Mode) {
    let mut blocks: Vec<Block> = Vec::with_capacity(MAX_BLOCKS);
    let mut live = 0usize;
    for &op in ops {
        match op {
            Op::Alloc {
                size,
                align_log2,
                zeroed,
            } => {
                let size = size.bytes();
                if blocks.len() == MAX_BLOCKS || live + size > LIVE_CAP {
                    continue;
                }
                let align = 1usize << (align_log2 % (MAX_ALIGN_LOG2 + 1));
                let layout = Layout::from_size_align(size, align).expect("valid layout");
                let ptr = if zeroed {
                    tidefuzz_site_alloc_zeroed(layout)
                } else {
                    tidefuzz_site_alloc(layout)
                };
                assert!(!ptr.is_null(), "allocation of {layout:?} failed");
                check_aligned(ptr, layout);
                count_alloc(size);
                if zeroed {
                    // SAFETY: a fresh block of `size` bytes.
                    let bytes = unsafe { std::slice::from_raw_parts(ptr, size) };
                    assert!(
                        bytes == &zeros()[..size],
                        "alloc_zeroed({layout:?}) is not zeroed"
                    );
                }
                let block = Block {
                    ptr,
                    layout,
                    serial: SERIAL.fetch_add(1, Ordering::Relaxed),
                };
                fill(&block, 0, size);
                live += size;
                blocks.push(block);
            }
            Op::Realloc { index, size } => {
                if blocks.is_empty() {
                    continue;
                }
                let i = index as usize % blocks.len();
                let old = blocks[i].layout;
                let new_size = size.bytes();
                if live - old.size() + new_size > LIVE_CAP {
                    continue;
                }
                check(&blocks[i], old.size(), "before realloc");
                // SAFETY: a live block of `old`; the new size is non-zero and at most 1 MiB,
                // so it rounds up to a valid layout with the same alignment.
                let ptr = unsafe { tidefuzz_site_realloc(blocks[i].ptr, old, new_size) };
                assert!(!ptr.is_null(), "realloc of {old:?} to {new_size} failed");
                let layout = Layout::from_size_align(new_size, old.align()).expect("valid layout");
                check_aligned(ptr, layout);
                count_alloc(new_size);
                let block = &mut blocks[i];
                block.ptr = ptr;
                block.layout = layout;
                check(block, old.size().min(new_size), "after realloc");
                if new_size > old.size() {
                    fill(block, old.size(), new_size);
                }
                live = live - old.size() + new_size;
            }
            Op::Free { index } => {
                if blocks.is_empty() {
                    continue;
                }
                let block = blocks.swap_remove(index as usize % blocks.len());
                check(&block, block.layout.size(), "before free");
                // SAFETY: a live block of this layout, forgotten by the model.
                unsafe { tidefuzz_site_dealloc(block.ptr, block.layout) };
                live -= block.layout.size();
            }
            Op::Flush => heaptide::flush(),
        }
    }

    match mode {
        Mode::Exact => {
            let report = heaptide::report();
            assert!(
                report.exact,
                "exact mode expected: {}",
                report.sample_interval
            );
            assert_eq!(report.profiler.dropped, 0, "exact mode dropped samples");
            let got = site_figures(&report);
            let want = Figures {
                live_bytes: live as u64,
                live_count: blocks.len() as u64,
                alloc_bytes: TOTAL_BYTES.load(Ordering::Relaxed),
                alloc_count: TOTAL_ALLOCS.load(Ordering::Relaxed),
            };
            assert_eq!(
                got,
                want,
                "exact figures of the fuzzer's call sites differ from the model\n{}",
                sites_shown(&report)
            );
            check_finite(&report);
            free_all(blocks);
        }
        Mode::Sampled => {
            free_all(blocks);
            let report = heaptide::report();
            assert!(!report.exact && report.sample_interval > 1);
            let got = site_figures(&report);
            assert_eq!(
                (got.live_bytes, got.live_count),
                (0, 0),
                "every block of the fuzzer's call sites is freed, yet some are reported live\n{}",
                sites_shown(&report)
            );
            check_finite(&report);
        }
    }
}

fn free_all(blocks: Vec<Block>) {
    for block in blocks {
        check(&block, block.layout.size(), "before final free");
        // SAFETY: a live block of this layout, forgotten by the model.
        unsafe { tidefuzz_site_dealloc(block.ptr, block.layout) };
    }
}

#[derive(Debug, PartialEq, Eq, Default)]
struct Figures {
    live_bytes: u64,
    live_count: u64,
    alloc_bytes: u64,
    alloc_count: u64,
}

/// The summed figures of the report's sites whose stacks name a `tidefuzz_site_*` function.
fn site_figures(report: &heaptide::Report) -> Figures {
    // Every site must be listed for the sum to be whole (reports list the top sites only).
    assert_eq!(
        report.sites.len() as u64,
        report.sites_seen,
        "more call sites than a report lists"
    );
    let mut f = Figures::default();
    for s in report.sites_mentioning(SITE_NEEDLE) {
        f.live_bytes += s.live_bytes;
        f.live_count += s.live_count;
        f.alloc_bytes += s.alloc_bytes;
        f.alloc_count += s.alloc_count;
    }
    f
}

fn sites_shown(report: &heaptide::Report) -> String {
    let mut out = String::new();
    for s in &report.sites {
        out.push_str(&format!(
            "site {}: live {} B / {}, alloc {} B / {}, frames:\n",
            s.id, s.live_bytes, s.live_count, s.alloc_bytes, s.alloc_count
        ));
        for f in s.frames.iter().take(8) {
            out.push_str(&format!("    {f}\n"));
        }
    }
    out
}

/// Every float a report holds is finite.
fn check_finite(r: &heaptide::Report) {
    let mut floats = vec![
        r.memory.fragmentation_ratio,
        r.memory.active_ratio,
        r.memory.metadata_ratio,
    ];
    for rate in [r.rate.since_start, r.rate.recent] {
        floats.extend([
            rate.seconds,
            rate.alloc_bytes_per_sec,
            rate.alloc_count_per_sec,
        ]);
    }
    for t in [r.trend.heap, r.trend.rss].into_iter().flatten() {
        floats.extend([
            t.window_seconds,
            t.growth_bytes_per_hour,
            t.r_squared,
            t.peak_bytes,
            t.min_bytes,
            t.average_bytes,
            t.volatility,
            t.latest_bytes,
        ]);
        floats.extend(t.seconds_to_limit);
    }
    for l in &r.leaks {
        floats.extend([l.growth_bytes_per_hour, l.confidence]);
    }
    assert!(
        floats.iter().all(|x| x.is_finite()),
        "a report figure is not finite: {floats:?}"
    );
}
