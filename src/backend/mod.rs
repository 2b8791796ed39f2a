//! All jemalloc FFI lives under this module.
//!
//! - [`plain`]: the ordinary path, the calls `tikv_jemallocator::Jemalloc` makes;
//! - [`raw_alloc`] / [`raw_free`]: memory for the profiler's own structures (rings, overflow
//!   nodes), taken from jemalloc directly so it never re-enters the global allocator;
//! - [`sampled_arena`]: the dedicated arena whose memory lies in one reserved address range,
//!   so "was this pointer sampled?" is a single range compare;
//! - [`outside`]: exact mode's blocks too large for what is left of the range, tracked outside
//!   it;
//! - [`ctl`]: `mallctl` reads.
//!
//! Under `cfg(loom)` only the raw allocation functions exist. Under `cfg(loom)` or `cfg(miri)`
//! they use `std::alloc::System`, so the lock-free structures can be checked without jemalloc
//! (miri cannot run jemalloc's C code). Under miri the rest of this module still compiles, so
//! the whole crate does; unit tests that reach jemalloc are `#[cfg_attr(miri, ignore)]`.

#[cfg(not(loom))]
pub(crate) mod ctl;
#[cfg(not(loom))]
pub(crate) mod outside;
#[cfg(not(loom))]
pub(crate) mod sampled_arena;

use std::alloc::Layout;

/// The unsampled path: the jemalloc calls `tikv_jemallocator::Jemalloc` makes, with the same
/// arguments, chosen with branches instead of its branch-free flag computation (which costs a
/// few instructions more per call: `tzcnt`, two `cmov`s and a `test` on every free). Equality
/// with tikv-jemallocator is checked by the unit test below.
#[cfg(not(loom))]
pub(crate) mod plain {
    use std::alloc::Layout;
    use std::ffi::c_void;

    use tikv_jemalloc_sys as ffi;

    /// `_Alignof(max_align_t)`, as tikv-jemallocator takes it per architecture.
    #[cfg(any(target_arch = "arm", target_arch = "mips", target_arch = "powerpc"))]
    const MAX_ALIGN_T: usize = 8;
    #[cfg(not(any(target_arch = "arm", target_arch = "mips", target_arch = "powerpc")))]
    const MAX_ALIGN_T: usize = 16;

    /// Whether jemalloc must be told the alignment: `malloc` and friends already align to the
    /// size's natural alignment up to `max_align_t`.
    #[inline(always)]
    fn needs_align(align: usize, size: usize) -> bool {
        align > MAX_ALIGN_T || align > size
    }

    /// # Safety
    /// As [`std::alloc::GlobalAlloc::alloc`].
    #[inline(always)]
    pub(crate) unsafe fn alloc(layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size); the flag
        // names the layout's power-of-two alignment.
        unsafe {
            if needs_align(align, size) {
                aligned::alloc(size, align)
            } else {
                ffi::malloc(size).cast()
            }
        }
    }

    /// # Safety
    /// As [`std::alloc::GlobalAlloc::alloc_zeroed`].
    #[inline(always)]
    pub(crate) unsafe fn alloc_zeroed(layout: Layout) -> *mut u8 {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: as `alloc`.
        unsafe {
            if needs_align(align, size) {
                aligned::alloc_zeroed(size, align)
            } else {
                ffi::calloc(1, size).cast()
            }
        }
    }

    /// # Safety
    /// As [`std::alloc::GlobalAlloc::dealloc`]; `ptr` came from this module's
    /// `alloc`/`alloc_zeroed`/`realloc` with this layout.
    #[inline(always)]
    pub(crate) unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
        let (size, align) = (layout.size(), layout.align());
        // SAFETY: the caller guarantees `ptr` is a live ordinary jemalloc block of `layout`;
        // the flags are the ones it was allocated with.
        unsafe {
            if needs_align(align, size) {
                aligned::dealloc(ptr, size, align)
            } else {
                ffi::sdallocx(ptr.cast::<c_void>(), size, 0)
            }
        }
    }

    /// # Safety
    /// As [`std::alloc::GlobalAlloc::realloc`]; `ptr` is an ordinary (unsampled) block.
    #[inline(always)]
    pub(crate) unsafe fn realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: the caller guarantees `ptr` is a live ordinary block of `layout` and
        // `new_size` is non-zero.
        unsafe {
            if needs_align(align, new_size) {
                aligned::realloc(ptr, new_size, align)
            } else {
                ffi::realloc(ptr.cast::<c_void>(), new_size).cast()
            }
        }
    }

    /// The calls that need an alignment flag, out of line and cold, so the common case compiles
    /// to two compare-and-branch pairs instead of a branch-free flag computation. Same safety
    /// contracts as the callers above.
    mod aligned {
        use super::*;

        #[cold]
        #[inline(never)]
        pub(super) unsafe fn alloc(size: usize, align: usize) -> *mut u8 {
            // SAFETY: forwarded from `plain::alloc`.
            unsafe { ffi::mallocx(size, ffi::MALLOCX_ALIGN(align)).cast() }
        }

        #[cold]
        #[inline(never)]
        pub(super) unsafe fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
            // SAFETY: forwarded from `plain::alloc_zeroed`.
            unsafe { ffi::mallocx(size, ffi::MALLOCX_ALIGN(align) | ffi::MALLOCX_ZERO).cast() }
        }

        #[cold]
        #[inline(never)]
        pub(super) unsafe fn dealloc(ptr: *mut u8, size: usize, align: usize) {
            // SAFETY: forwarded from `plain::dealloc`.
            unsafe { ffi::sdallocx(ptr.cast::<c_void>(), size, ffi::MALLOCX_ALIGN(align)) }
        }

        #[cold]
        #[inline(never)]
        pub(super) unsafe fn realloc(ptr: *mut u8, new_size: usize, align: usize) -> *mut u8 {
            // SAFETY: forwarded from `plain::realloc`.
            unsafe {
                ffi::rallocx(ptr.cast::<c_void>(), new_size, ffi::MALLOCX_ALIGN(align)).cast()
            }
        }
    }

    #[cfg(all(test, not(miri)))]
    mod tests {
        use super::*;

        /// tikv-jemallocator's rule, restated: flags 0 (plain malloc/calloc/realloc) exactly
        /// when the alignment is at most `max_align_t` and at most the size.
        #[test]
        fn flags_match_tikv_jemallocator() {
            for lg in 0..20 {
                let align = 1usize << lg;
                for size in [
                    1usize,
                    2,
                    3,
                    7,
                    8,
                    9,
                    15,
                    16,
                    17,
                    31,
                    32,
                    100,
                    4096,
                    1 << 20,
                ] {
                    let tikv = if align <= MAX_ALIGN_T && align <= size {
                        0
                    } else {
                        ffi::MALLOCX_ALIGN(align)
                    };
                    let ours = if needs_align(align, size) {
                        ffi::MALLOCX_ALIGN(align)
                    } else {
                        0
                    };
                    assert_eq!(ours, tikv, "align {align}, size {size}");
                }
            }
        }

        /// Blocks from this module and from tikv-jemallocator are interchangeable.
        #[test]
        fn blocks_round_trip_through_tikv_jemallocator() {
            use std::alloc::GlobalAlloc;
            let jemalloc = tikv_jemallocator::Jemalloc;
            for (size, align) in [
                (1, 1),
                (8, 16),
                (24, 8),
                (100, 64),
                (4096, 4096),
                (70_000, 32),
            ] {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: non-zero sizes; every block is freed once with its layout.
                unsafe {
                    let p = alloc(layout);
                    assert!(!p.is_null() && p as usize % align == 0);
                    jemalloc.dealloc(p, layout);
                    let q = jemalloc.alloc_zeroed(layout);
                    let q = realloc(q, layout, size * 2);
                    assert!(!q.is_null() && q as usize % align == 0);
                    let grown = Layout::from_size_align(size * 2, align).unwrap();
                    dealloc(q, grown);
                    let z = alloc_zeroed(layout);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    dealloc(z, layout);
                }
            }
        }
    }
}

/// Memory for the profiler's own structures, straight from jemalloc (never through the global
/// allocator, so taking it cannot recurse into sampling).
///
/// # Safety
/// `layout` has a non-zero size.
pub(crate) unsafe fn raw_alloc(layout: Layout) -> *mut u8 {
    #[cfg(not(any(loom, miri)))]
    {
        let flags =
            tikv_jemalloc_sys::MALLOCX_ALIGN(layout.align()) | tikv_jemalloc_sys::MALLOCX_ZERO;
        // SAFETY: non-zero size per the caller; the flags name a power-of-two alignment.
        unsafe { tikv_jemalloc_sys::mallocx(layout.size(), flags).cast() }
    }
    #[cfg(any(loom, miri))]
    {
        use std::alloc::GlobalAlloc;
        // SAFETY: non-zero size per the caller.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
}

/// Returns memory taken with [`raw_alloc`].
///
/// # Safety
/// `ptr` came from [`raw_alloc`] with this `layout` and is not used afterwards.
pub(crate) unsafe fn raw_free(ptr: *mut u8, layout: Layout) {
    #[cfg(not(any(loom, miri)))]
    {
        let flags = tikv_jemalloc_sys::MALLOCX_ALIGN(layout.align());
        // SAFETY: `ptr` is a live block of `layout.size()` taken by `raw_alloc` with these flags.
        unsafe { tikv_jemalloc_sys::sdallocx(ptr.cast(), layout.size(), flags) }
    }
    #[cfg(any(loom, miri))]
    {
        use std::alloc::GlobalAlloc;
        // SAFETY: `ptr` came from `System.alloc_zeroed(layout)`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}
