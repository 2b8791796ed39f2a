//! Exact mode: `alloc`, `alloc_zeroed`, `realloc` (growing in place and moving, shrinking) and
//! `dealloc` through `std::alloc` directly, at every alignment from 1 to 4096 and 65536, sizes
//! from 1 byte to a few MiB. Contents survive each realloc, alignment holds, zeroed memory is
//! zero (also when it reuses dirty memory), and the profile's figures at each site equal the
//! truth.
//!
//! In exact mode every block is sampled, so every `realloc` here is sampled -> sampled: the old
//! sample dies and a new one of the new size is born at the realloc's call site (that is how a
//! realloc is counted: one allocation of the new size at the site that resized).

use std::alloc::{Layout, alloc, alloc_zeroed, dealloc, realloc};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

mod common;

use common::{Figures, figures};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

const ALIGNS: [usize; 14] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 65536,
];
const SIZES: [usize; 15] = [
    1,
    3,
    8,
    17,
    64,
    100,
    255,
    1_000,
    4_096,
    5_000,
    16_385,
    65_536,
    100_000,
    1 << 20,
    (3 << 20) + 17,
];
/// Largest size any block reaches (see `realloc_steps`), plus room for the pattern offset.
const PATTERN_LEN: usize = 3 * ((3 << 20) + 17) + 4_096 + 256;

// === leaves: each makes exactly one call into the allocator ===

#[inline(never)]
fn rm_alloc_leaf(layout: Layout) -> *mut u8 {
    // SAFETY: non-zero size.
    black_box(unsafe { alloc(layout) })
}

#[inline(never)]
fn rm_alloc_zeroed_leaf(layout: Layout) -> *mut u8 {
    // SAFETY: non-zero size.
    black_box(unsafe { alloc_zeroed(layout) })
}

/// Allocates a block and fills it with garbage (a body of its own: identical functions may be
/// merged by the optimizer, and then be symbolized under one name).
#[inline(never)]
fn rm_dirty_leaf(layout: Layout) -> *mut u8 {
    // SAFETY: non-zero size.
    let p = unsafe { alloc(layout) };
    if !p.is_null() {
        // SAFETY: a fresh block of `layout.size()` bytes.
        unsafe { std::ptr::write_bytes(p, 0xA5, layout.size()) };
    }
    black_box(p)
}

#[inline(never)]
fn rm_realloc_leaf(p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: per the caller, `p` is a live block of `layout`; `new_size` is non-zero and
    // valid for the alignment.
    black_box(unsafe { realloc(p, layout, new_size) })
}

// === bookkeeping ===

/// What the test did at one site: allocations and bytes (frees are all done by the end).
#[derive(Default)]
struct Truth {
    count: AtomicUsize,
    bytes: AtomicUsize,
}

impl Truth {
    const fn new() -> Self {
        Truth {
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
        }
    }

    fn add(&self, size: usize) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
    }
}

static ALLOC: Truth = Truth::new();
static ZEROED: Truth = Truth::new();
static DIRTY: Truth = Truth::new();
static REALLOC: Truth = Truth::new();
static IN_PLACE: AtomicUsize = AtomicUsize::new(0);
static MOVED: AtomicUsize = AtomicUsize::new(0);

fn check_aligned(p: *mut u8, align: usize, what: &str) {
    assert!(!p.is_null(), "{what}: null");
    assert_eq!(
        p as usize % align,
        0,
        "{what}: {p:p} not aligned to {align}"
    );
}

/// Sizes a block goes through after its allocation: a little growth (usually in place), a
/// large growth (usually moving), a shrink, a shrink to 1 byte, and a growth again.
fn realloc_steps(size: usize) -> [usize; 5] {
    [size + 1, size * 3 + 4_096, size.div_ceil(2), 1, size + 100]
}

/// One block's life: allocate (plain or zeroed), fill, resize through every step checking the
/// contents and the alignment, free. Not inlined, so that every case calls the leaves from the
/// same places: one call site (one stack) per leaf, however the optimizer unrolls the loops.
#[inline(never)]
fn one_case(pattern: &[u8], case: usize, align: usize, size: usize) {
    let what = format!("case {case}: align {align}, size {size}");
    let offset = case % 251;
    let pat = &pattern[offset..];
    let layout = Layout::from_size_align(size, align).unwrap();
    let zeroed = case % 2 == 1;
    let mut p = if zeroed {
        // First dirty a block of the same layout and free it, so the zeroed block is likely
        // to reuse dirty memory.
        let d = rm_dirty_leaf(layout);
        check_aligned(d, align, &what);
        DIRTY.add(size);
        // SAFETY: `d` is a live block of `layout`.
        unsafe { dealloc(d, layout) };
        let p = rm_alloc_zeroed_leaf(layout);
        check_aligned(p, align, &what);
        ZEROED.add(size);
        // SAFETY: `p` is a fresh block of `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(p, size) };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "{what}: alloc_zeroed returned non-zero bytes"
        );
        p
    } else {
        let p = rm_alloc_leaf(layout);
        check_aligned(p, align, &what);
        ALLOC.add(size);
        p
    };
    // SAFETY: `p` has `size` bytes; `pat` is longer than any size used here.
    unsafe { std::ptr::copy_nonoverlapping(pat.as_ptr(), p, size) };

    let mut cur = size;
    for (step, new_size) in realloc_steps(size).into_iter().enumerate() {
        let old = p;
        let old_layout = Layout::from_size_align(cur, align).unwrap();
        p = rm_realloc_leaf(p, old_layout, new_size);
        let what = format!("{what}, step {step}: {cur} -> {new_size}");
        check_aligned(p, align, &what);
        REALLOC.add(new_size);
        if p == old {
            IN_PLACE.fetch_add(1, Ordering::Relaxed);
        } else {
            MOVED.fetch_add(1, Ordering::Relaxed);
        }
        let kept = cur.min(new_size);
        // SAFETY: `p` has `new_size >= kept` bytes.
        let now = unsafe { std::slice::from_raw_parts(p, kept) };
        assert!(now == &pat[..kept], "{what}: contents changed by realloc");
        if new_size > kept {
            // SAFETY: `p` has `new_size` bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(pat.as_ptr().add(kept), p.add(kept), new_size - kept)
            };
        }
        cur = new_size;
    }
    // SAFETY: `p` is a live block of `cur` bytes at `align`.
    unsafe { dealloc(p, Layout::from_size_align(cur, align).unwrap()) };
}

/// What a site must show (counts and bytes: compared with `Figures::without_samples`).
fn expected(t: &Truth) -> Figures {
    Figures {
        alloc_count: t.count.load(Ordering::Relaxed) as u64,
        alloc_bytes: t.bytes.load(Ordering::Relaxed) as u64,
        live_count: 0,
        live_bytes: 0,
        samples: 0,
    }
}

#[test]
fn realloc_matrix_every_alignment_and_size() {
    let pattern: Vec<u8> = (0..PATTERN_LEN).map(|i| (i * 7 + i / 251) as u8).collect();
    let pattern = &pattern[..];
    // Two threads share the alignments, so sampled blocks of both meet in the arena.
    std::thread::scope(|scope| {
        for half in 0..2 {
            scope.spawn(move || {
                for (a, &align) in ALIGNS.iter().enumerate().filter(|(a, _)| a % 2 == half) {
                    for (s, &size) in SIZES.iter().enumerate() {
                        // Opaque arguments: with constants, the optimizer may clone `one_case` per size,
                        // and each clone is another stack (another site) with the same symbols.
                        one_case(
                            pattern,
                            black_box(a * SIZES.len() + s),
                            black_box(align),
                            black_box(size),
                        );
                    }
                }
            });
        }
    });
    let cases = ALIGNS.len() * SIZES.len();
    assert_eq!(
        ALLOC.count.load(Ordering::Relaxed) + ZEROED.count.load(Ordering::Relaxed),
        cases
    );
    assert_eq!(REALLOC.count.load(Ordering::Relaxed), cases * 5);
    // Both kinds of resize happened, or the matrix is not covering what it claims.
    let (in_place, moved) = (
        IN_PLACE.load(Ordering::Relaxed),
        MOVED.load(Ordering::Relaxed),
    );
    assert!(
        in_place > cases / 2 && moved > cases / 2,
        "in place {in_place}, moved {moved}"
    );

    let r = heaptide::report();
    assert!(r.exact);
    assert_eq!(r.profiler.dropped, 0);
    assert_eq!(
        figures(&r, "rm_alloc_leaf").without_samples(),
        expected(&ALLOC)
    );
    assert_eq!(
        figures(&r, "rm_alloc_zeroed_leaf").without_samples(),
        expected(&ZEROED)
    );
    assert_eq!(
        figures(&r, "rm_dirty_leaf").without_samples(),
        expected(&DIRTY)
    );
    assert_eq!(
        figures(&r, "rm_realloc_leaf").without_samples(),
        expected(&REALLOC)
    );
}
