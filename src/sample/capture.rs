//! Stack capture on the sampling path: raw return addresses only, into a fixed array.
//!
//! Symbols are resolved later, on the drain side, and cached by address. Two ways to walk:
//!
//! - **Frame pointers** (when the program is built with `-C force-frame-pointers=yes`, detected
//!   by `build.rs`; x86_64 and aarch64): follow the chain of saved frame pointers, each record
//!   checked to lie inside this thread's stack and to move towards its base. About a
//!   nanosecond per frame; no lock, no allocation, no table lookup.
//! - **DWARF unwinding** (`backtrace::trace_unsynchronized`, libgcc's unwinder over
//!   `.eh_frame`): works for any build, about 1-2 µs per frame. Also the fallback when the
//!   frame-pointer walk finds fewer than two frames (an allocation on a signal stack, say).
//!
//! The capture runs inside the profiler scope (see [`super::thread`]), so anything the unwinder
//! might allocate is neither sampled nor counted as the user's.

use crate::buffer::event::{FRAME_SLOTS, Frames};

/// Fills `frames` (empty) with up to `max` return addresses, innermost first.
///
/// The top of every stack is heaptide's own frames (this function, the sampling path, the
/// `GlobalAlloc` shim); the drain trims them by symbol, so the capture keeps
/// [`OWN_FRAMES`](crate::buffer::event::OWN_FRAMES) extra slots for them.
#[inline(never)]
pub(crate) fn capture(frames: &mut Frames, max: usize) {
    let max = max.min(FRAME_SLOTS);
    #[cfg(heaptide_frame_pointers)]
    {
        frame_pointers::walk(frames, max);
        if frames.len() >= 2 {
            return;
        }
        frames.clear();
    }
    dwarf(frames, max);
}

/// Which walker [`capture`] uses first, for reports and docs.
pub(crate) const WALKER: &str = if cfg!(heaptide_frame_pointers) {
    "frame pointers"
} else {
    "DWARF unwinding"
};

fn dwarf(frames: &mut Frames, max: usize) {
    // SAFETY: `trace_unsynchronized` requires that no other thread's unsynchronized trace runs
    // code that is not thread-safe; on this platform the libgcc unwinder it uses is
    // thread-safe, and the callback only writes into our own buffer.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            frames.push(frame.ip() as usize) && frames.len() < max
        });
    }
}

#[cfg(heaptide_frame_pointers)]
mod frame_pointers {
    use crate::buffer::event::Frames;

    /// The caller's frame pointer register (the frame record of the function this is inlined
    /// into).
    #[inline(always)]
    fn frame_pointer() -> usize {
        let fp: usize;
        // SAFETY: reads a register; no memory access, no side effect.
        unsafe {
            #[cfg(target_arch = "x86_64")]
            std::arch::asm!("mov {}, rbp", out(reg) fp, options(nomem, nostack, preserves_flags));
            #[cfg(target_arch = "aarch64")]
            std::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack, preserves_flags));
        }
        fp
    }

    /// Walks the frame records `[saved frame pointer, return address]` from the current frame
    /// towards the stack's base. Every record read lies inside this thread's stack (bounds
    /// from `pthread_getattr_np`), each step moves strictly towards the base, so the walk
    /// reads only mapped memory and ends. A function built without frame pointers (C code in
    /// the middle of the stack) ends the walk early or makes it skip a caller; with the whole
    /// Rust program built with frame pointers, that is only libc's frames at the root.
    #[inline(always)]
    pub(super) fn walk(frames: &mut Frames, max: usize) {
        let Some((low, high)) = crate::sample::thread::stack_bounds() else {
            return;
        };
        let mut fp = frame_pointer();
        while frames.len() < max {
            if fp < low || fp > high - 2 * size_of::<usize>() || fp % align_of::<usize>() != 0 {
                break;
            }
            // SAFETY: [fp, fp + 16) lies inside this thread's stack mapping (checked above),
            // which is readable; the values are plain words.
            let (next, ret) = unsafe {
                let record = fp as *const usize;
                (record.read_volatile(), record.add(1).read_volatile())
            };
            if ret == 0 {
                break;
            }
            if !frames.push(ret) || next <= fp {
                break;
            }
            fp = next;
        }
    }
}
