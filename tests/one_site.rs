//! One line of the program, one site: allocations from one source line land in one call site
//! whichever allocator entry point they went through (`alloc`, `alloc_zeroed`, `realloc`),
//! because a site is keyed by the program's stack, not by the standard library's plumbing
//! above it. And a `realloc` is charged to the site that resized the block (exact mode, so
//! every figure is known).

use std::hint::black_box;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

mod common;

use common::settled_report;

/// `vec![x; n]`: `alloc_zeroed` for a zero `x`, `alloc` otherwise, from this one line.
#[inline(never)]
fn one_site_fill(x: u8, n: usize) -> Vec<u8> {
    vec![x; n]
}

/// The first call allocates (the vector is empty), later calls reallocate, from this one line.
#[inline(never)]
fn one_site_reserve(v: &mut Vec<u64>, extra: usize) {
    v.reserve_exact(extra);
}

/// Allocates a vector here...
#[inline(never)]
fn one_site_make(n: usize) -> Vec<u64> {
    Vec::with_capacity(n)
}

/// ...and resizes it here.
#[inline(never)]
fn one_site_grow(v: &mut Vec<u64>, n: usize) {
    v.reserve_exact(n - v.len());
}

/// The sites whose blamed frame is `function`, with their (alloc count, alloc bytes, live
/// count, live bytes).
fn sites_of(r: &heaptide::Report, function: &str) -> Vec<(u64, u64, u64, u64)> {
    r.sites
        .iter()
        .filter(|s| {
            s.blamed_frame()
                .is_some_and(|f| f.function.ends_with(function))
        })
        .map(|s| (s.alloc_count, s.alloc_bytes, s.live_count, s.live_bytes))
        .collect()
}

#[test]
fn zeroed_and_filled_vec_from_one_line_are_one_site() {
    // Both calls from one line of this test too, so the whole user stack is the same.
    let kept: Vec<Vec<u8>> = [0, 7].map(|x| black_box(one_site_fill(x, 10_000))).into();
    let r = settled_report();
    assert_eq!(
        sites_of(&r, "one_site_fill"),
        [(2, 20_000, 2, 20_000)],
        "{:#?}",
        r.sites_mentioning("one_site_fill").collect::<Vec<_>>()
    );
    let site = r.sites_mentioning("one_site_fill").next().unwrap();
    // The site's key is the program's stack; the plumbing shown is what both went through.
    let blamed = site.blamed.as_ref().expect("a blamed frame");
    assert!(blamed.function.ends_with("one_site_fill"), "{blamed:?}");
    assert!(
        !site.mentions("alloc_zeroed"),
        "zeroed-only plumbing kept: {site:#?}"
    );
    drop(kept);
}

#[test]
fn alloc_and_realloc_from_one_line_are_one_site() {
    let mut v: Vec<u64> = Vec::new();
    // From one line of this test: first an alloc of 8,000 bytes, then a realloc to 2,001
    // elements (16,008 bytes).
    for extra in [1000, 2000] {
        one_site_reserve(&mut v, extra);
        v.push(1);
    }
    let r = settled_report();
    // The first block died in the resize; the resized block is live, charged here.
    assert_eq!(
        sites_of(&r, "one_site_reserve"),
        [(2, 8_000 + 16_008, 1, 16_008)]
    );
    drop(black_box(v));
}

#[test]
fn realloc_is_charged_to_the_resizing_site() {
    let mut v = black_box(one_site_make(1000)); // 8,000 bytes
    one_site_grow(&mut v, 3000); // realloc to 24,000 bytes
    let r = settled_report();
    // The allocating site keeps its allocation, no longer live; the resizing site holds the
    // live block at its new size.
    assert_eq!(sites_of(&r, "one_site_make"), [(1, 8_000, 0, 0)]);
    assert_eq!(sites_of(&r, "one_site_grow"), [(1, 24_000, 1, 24_000)]);
    drop(black_box(v));
}
