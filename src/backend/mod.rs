//! All jemalloc FFI lives under this module.
//!
//! - [`plain`]: the ordinary path, exactly what `tikv_jemallocator::Jemalloc` does;
//! - [`raw_alloc`] / [`raw_free`]: memory for the profiler's own structures (rings, overflow
//!   nodes), taken from jemalloc directly so it never re-enters the global allocator;
//! - [`sampled_arena`]: the dedicated arena whose memory lies in one reserved address range,
//!   so "was this pointer sampled?" is a single range compare;
//! - [`ctl`]: `mallctl` reads.
//!
//! Under `cfg(loom)` only the raw allocation functions exist. Under `cfg(loom)` or `cfg(miri)`
//! they use `std::alloc::System`, so the lock-free structures can be checked without jemalloc
//! (miri cannot run jemalloc's C code). Under miri the rest of this module still compiles, so
//! the whole crate does; unit tests that reach jemalloc are `#[cfg_attr(miri, ignore)]`.

#[cfg(not(loom))]
pub(crate) mod ctl;
#[cfg(not(loom))]
pub(crate) mod sampled_arena;

use std::alloc::Layout;

/// The unsampled path: jemalloc exactly as `tikv_jemallocator::Jemalloc` calls it.
#[cfg(not(loom))]
pub(crate) mod plain {
    use std::alloc::{GlobalAlloc, Layout};
    use tikv_jemallocator::Jemalloc;

    /// # Safety
    /// As [`GlobalAlloc::alloc`].
    #[inline(always)]
    pub(crate) unsafe fn alloc(layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract (non-zero size).
        unsafe { Jemalloc.alloc(layout) }
    }

    /// # Safety
    /// As [`GlobalAlloc::alloc_zeroed`].
    #[inline(always)]
    pub(crate) unsafe fn alloc_zeroed(layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { Jemalloc.alloc_zeroed(layout) }
    }

    /// # Safety
    /// As [`GlobalAlloc::dealloc`]; `ptr` came from this module's `alloc`/`alloc_zeroed`/`realloc`.
    #[inline(always)]
    pub(crate) unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` is a live ordinary jemalloc block of `layout`.
        unsafe { Jemalloc.dealloc(ptr, layout) }
    }

    /// # Safety
    /// As [`GlobalAlloc::realloc`]; `ptr` is an ordinary (unsampled) block.
    #[inline(always)]
    pub(crate) unsafe fn realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` is a live ordinary block of `layout`.
        unsafe { Jemalloc.realloc(ptr, layout, new_size) }
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
