//! Stack capture on the sampling path: raw return addresses only, into a fixed array.
//!
//! Symbols are resolved later, on the drain side, and cached by address. The capture runs
//! inside the profiler scope (see [`super::thread`]), so anything the unwinder might allocate is
//! neither sampled nor counted as the user's. `trace_unsynchronized` takes no lock of the
//! `backtrace` crate; the unwinder underneath (libgcc, with glibc's lock-free
//! `_dl_find_object`) takes none on the common path.

use crate::buffer::event::FRAME_SLOTS;

/// Fills `frames` with up to `max` return addresses, innermost first; returns how many.
///
/// The top of every stack is heaptide's own frames (this function, the sampling path, the
/// `GlobalAlloc` shim); the drain trims them by symbol, so the capture keeps
/// [`OWN_FRAMES`](crate::buffer::event::OWN_FRAMES) extra slots for them.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize; FRAME_SLOTS], max: usize) -> usize {
    let max = max.min(FRAME_SLOTS);
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` requires that no other thread's unsynchronized trace runs
    // code that is not thread-safe; on this platform the libgcc unwinder it uses is
    // thread-safe, and the callback only writes into our own array.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            frames[n] = frame.ip() as usize;
            n += 1;
            n < max
        });
    }
    n
}

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall on Linux).
#[inline]
pub(crate) fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
