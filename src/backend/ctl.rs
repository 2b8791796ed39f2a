//! Typed `mallctl` reads. None of these allocate through the global allocator.

use std::ffi::CStr;

use tikv_jemalloc_sys as ffi;

/// Reads a `mallctl` value of type `T`; `None` if jemalloc rejects the name or the size.
///
/// # Safety
/// `T` is exactly the C type jemalloc documents for `name`.
pub(crate) unsafe fn read<T: Copy>(name: &CStr) -> Option<T> {
    let mut value = std::mem::MaybeUninit::<T>::uninit();
    let mut len = size_of::<T>();
    // SAFETY: `oldp`/`oldlenp` describe a buffer of exactly `size_of::<T>()` bytes, and the
    // caller guarantees `T` is the type jemalloc writes for `name`; no new value is written.
    let rc = unsafe {
        ffi::mallctl(
            name.as_ptr(),
            value.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc == 0 && len == size_of::<T>() {
        // SAFETY: jemalloc filled all `len == size_of::<T>()` bytes.
        Some(unsafe { value.assume_init() })
    } else {
        None
    }
}

/// jemalloc's per-thread running totals of bytes allocated and deallocated by this thread
/// (`thread.allocatedp` / `thread.deallocatedp`): pointers into jemalloc's thread data, valid for
/// the life of the thread. Used to measure what the profiler's own code allocates.
pub(crate) fn thread_counters() -> Option<(*const u64, *const u64)> {
    // SAFETY: both names are documented as `uint64_t *`.
    unsafe {
        let a = read::<*const u64>(c"thread.allocatedp")?;
        let d = read::<*const u64>(c"thread.deallocatedp")?;
        Some((a, d))
    }
}
