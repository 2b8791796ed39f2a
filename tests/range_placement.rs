//! Where the sampled range lies. The free path's test is one-sided (`ptr >= floor`, the start
//! of the range): it relies on the profiler placing its reservation, on the process's first
//! allocation, above everything mapped after it. An ordinary block above the floor is still
//! freed correctly (the slow path's range test is exact) but slowly, so this is checked here
//! rather than left to the benchmarks: mappings of jemalloc's sizes, jemalloc's own fresh
//! extents, and the stacks of threads that come and go all land below a sampled block.

use std::hint::black_box;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

/// An anonymous mapping as jemalloc makes its extents (no hint), unmapped again at once.
fn probe_mapping(len: usize) -> usize {
    // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
    // checked against MAP_FAILED, then unmapped whole.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap of {len} B");
        libc::munmap(p, len);
        p as usize
    }
}

#[test]
fn ordinary_memory_lies_below_the_sampled_range() {
    // Exact mode: this block is sampled, so it lies in the range, at or above its start.
    let sampled = Box::new(0u64);
    let floor = black_box(&*sampled as *const u64 as usize);

    let mut seen = Vec::new();
    // Threads come and go: their stacks are mapped after the range and freed again, leaving
    // holes that later mappings may reuse.
    for _ in 0..16 {
        let stack = std::thread::spawn(|| {
            let local = 0u8;
            black_box(&local) as *const u8 as usize
        })
        .join()
        .unwrap();
        seen.push(("a thread's stack", 0, stack));
    }
    for len in [2 << 20, 8 << 20, 64 << 20, 1 << 30] {
        seen.push(("an anonymous mapping", len, probe_mapping(len)));
    }
    // Plain jemalloc blocks (not through the profiler, which samples everything here), up to
    // sizes that need a fresh extent.
    for size in [16usize, 4096, 3 << 20, 96 << 20] {
        // SAFETY: a plain jemalloc block of non-zero size, freed below with that size.
        let p = unsafe { tikv_jemalloc_sys::mallocx(size, 0) };
        assert!(!p.is_null());
        seen.push(("a plain jemalloc block", size, p as usize));
        // SAFETY: allocated just above with this size and no flags.
        unsafe { tikv_jemalloc_sys::sdallocx(p, size, 0) };
    }
    // Arena 0, without the thread cache: the main thread's arena, whose first extent jemalloc
    // maps on its first call. That call must come after the reservation, or the main thread's
    // small blocks would all lie above the floor.
    for size in [16usize, 512, 4096, 40_000] {
        let flags = tikv_jemalloc_sys::MALLOCX_ARENA(0) | tikv_jemalloc_sys::MALLOCX_TCACHE_NONE;
        // SAFETY: a plain jemalloc block of non-zero size, freed below with the same flags.
        let p = unsafe { tikv_jemalloc_sys::mallocx(size, flags) };
        assert!(!p.is_null());
        seen.push(("a block of arena 0", size, p as usize));
        // SAFETY: allocated just above with this size and these flags.
        unsafe { tikv_jemalloc_sys::sdallocx(p, size, flags) };
    }
    for (what, size, addr) in seen {
        assert!(
            addr < floor,
            "{what} ({size} B) at {addr:#x} lies above the sampled block at {floor:#x}: its \
             frees would all take the slow path"
        );
    }
    drop(sampled);
}
