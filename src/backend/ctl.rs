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

/// jemalloc's global statistics, in bytes (see `man jemalloc`, `stats.*`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) allocated: u64,
    pub(crate) active: u64,
    pub(crate) metadata: u64,
    pub(crate) resident: u64,
    pub(crate) mapped: u64,
    pub(crate) retained: u64,
}

/// Refreshes jemalloc's statistics (`epoch`) and reads them. `None` if jemalloc was built
/// without statistics or is not the allocator (under miri).
pub(crate) fn stats() -> Option<Stats> {
    let mut epoch: u64 = 1;
    let mut len = size_of::<u64>();
    // SAFETY: `epoch` is documented as `uint64_t`, read-write; old and new values point at a
    // valid u64 of the stated length. Writing any value refreshes the cached statistics.
    let rc = unsafe {
        let p: *mut u64 = &mut epoch;
        ffi::mallctl(c"epoch".as_ptr(), p.cast(), &mut len, p.cast(), len)
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: every `stats.*` name below is documented as `size_t`.
    unsafe {
        Some(Stats {
            allocated: read::<usize>(c"stats.allocated")? as u64,
            active: read::<usize>(c"stats.active")? as u64,
            metadata: read::<usize>(c"stats.metadata")? as u64,
            resident: read::<usize>(c"stats.resident")? as u64,
            mapped: read::<usize>(c"stats.mapped")? as u64,
            retained: read::<usize>(c"stats.retained")? as u64,
        })
    }
}

/// `arena.<MALLCTL_ARENAS_ALL>.purge`: 4096 is jemalloc 5's `MALLCTL_ARENAS_ALL`
/// (`jemalloc_macros.h`), the arena index that means "all arenas".
#[cfg_attr(
    not(feature = "http"),
    allow(dead_code, reason = "only the HTTP server's /memory/purge calls it")
)]
const PURGE_ALL: &CStr = c"arena.4096.purge";

/// Gives the dirty pages of every arena back to the kernel now. `false` if jemalloc refused.
#[cfg_attr(
    not(feature = "http"),
    allow(dead_code, reason = "only the HTTP server's /memory/purge calls it")
)]
pub(crate) fn purge_all_arenas() -> bool {
    // SAFETY: `arena.<i>.purge` is a void control (no old or new value): all four value pointers
    // are null and the length 0, as jemalloc documents; the name is NUL-terminated.
    let rc = unsafe {
        ffi::mallctl(
            PURGE_ALL.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    rc == 0
}
