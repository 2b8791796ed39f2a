//! Exact mode's blocks that the sampled arena cannot hold: larger than what is left of the
//! reserved range (a 64 GiB range, or a smaller one where address space is limited). Exact mode
//! must still count them, so they get a tracked path of their own, outside the range:
//!
//! - each block is its own anonymous mapping, placed above the range with an address hint, so
//!   the free path's one-sided test (`ptr >= floor`) sends its free to the slow path; a mapping
//!   the kernel puts anywhere else is given back, and the block is not tracked (counted as
//!   dropped);
//! - a small fixed table of the live blocks tells them from jemalloc's own blocks above the
//!   floor; it is read only on the slow path, and only while it holds a block;
//! - a [`Header`] in front of the user's bytes carries the sample id (as in the sampled arena),
//!   and the mapping's extent.
//!
//! Such blocks are rare and huge (each is at least what the range could not hold), so an
//! `mmap` per block costs nothing that matters; `munmap` here never touches the reservation.

use std::ffi::c_void;
use std::ptr;

use crate::sync::{AtomicUsize, Ordering};

/// Live tracked blocks at most; a further one is not tracked (the caller counts it dropped).
const SLOTS: usize = 64;

/// The user pointers of the live tracked blocks (0: free slot).
static BLOCKS: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
/// How many slots are in use, so the slow path skips the table while it is empty.
static LIVE: AtomicUsize = AtomicUsize::new(0);

const PAGE: usize = 4096;

/// What sits in front of a tracked block's user bytes.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    /// The sample id of the allocation (read when the block is freed).
    pub(crate) id: u64,
    /// The mapping that holds the block, unmapped by [`free`].
    map_base: usize,
    map_len: usize,
}

const HEADER: usize = std::mem::size_of::<Header>();

/// Maps a tracked block of `size` bytes aligned to `align` (zeroed, as fresh anonymous memory
/// is), at or above `above`. Null if it cannot be mapped there or the table is full.
pub(crate) fn alloc(size: usize, align: usize, id: u64, above: usize) -> *mut u8 {
    let align = align.max(PAGE);
    // The header's page (or the alignment, if larger), then the user's bytes.
    let Some(len) = size
        .checked_add(2 * align)
        .map(|n| n.next_multiple_of(PAGE))
    else {
        return ptr::null_mut();
    };
    let Some(base) = hints(len, above).find_map(|hint| map_at(hint, len, above)) else {
        return ptr::null_mut();
    };
    let user = (base + HEADER).next_multiple_of(align);
    if !insert(user) {
        // The table is full.
        // SAFETY: the whole mapping made above, unused.
        unsafe { libc::munmap(base as *mut c_void, len) };
        return ptr::null_mut();
    }
    // SAFETY: `user - HEADER >= base` lies in the fresh mapping, aligned for the header.
    unsafe {
        ((user - HEADER) as *mut Header).write(Header {
            id,
            map_base: base,
            map_len: len,
        })
    };
    user as *mut u8
}

/// Where to ask for a mapping of `len` bytes above `above`: first 1 GiB below the main thread's
/// stack (the top of the address space; the kernel leaves a gap of at least 128 MiB, usually
/// far more with address-space randomisation, between the stack and the highest library), then
/// just above the range (free when the range was placed below a gap).
fn hints(len: usize, above: usize) -> impl Iterator<Item = usize> {
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    // SAFETY: `environ` is libc's, set before any code of the program runs; only its value
    // (an address in the main thread's stack area) is used.
    let stack = unsafe { environ } as usize;
    let below_stack = stack
        .checked_sub(len + (1 << 30))
        .map(|a| a & !(PAGE - 1))
        .filter(|&a| a >= above);
    below_stack.into_iter().chain(std::iter::once(above))
}

/// Maps `len` bytes read-write at `hint` if the kernel places them at or above `above`.
fn map_at(hint: usize, len: usize, above: usize) -> Option<usize> {
    // SAFETY: an anonymous private mapping at a hint, never MAP_FIXED: it cannot replace any
    // existing mapping. MAP_NORESERVE: the caller's bytes are committed as they are touched.
    let base = unsafe {
        libc::mmap(
            hint as *mut c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    if (base as usize) < above {
        // Below the floor the free path could not find it: give it back.
        // SAFETY: the whole mapping made above, unused.
        unsafe { libc::munmap(base, len) };
        return None;
    }
    Some(base as usize)
}

/// Is `ptr` a live tracked block? (Slow path only.)
pub(crate) fn contains(ptr: *const u8) -> bool {
    LIVE.load(Ordering::Acquire) != 0
        && BLOCKS
            .iter()
            .any(|b| b.load(Ordering::Acquire) == ptr as usize)
}

/// The header of a live tracked block.
///
/// # Safety
/// `ptr` is a live tracked block ([`contains`]).
pub(crate) unsafe fn header(ptr: *const u8) -> Header {
    // SAFETY: per the caller, the header lies just before the user's bytes.
    unsafe { *((ptr as usize - HEADER) as *const Header) }
}

/// Unmaps a live tracked block.
///
/// # Safety
/// `ptr` is a live tracked block; nothing uses it afterwards.
pub(crate) unsafe fn free(ptr: *mut u8) {
    // SAFETY: forwarded contract.
    let h = unsafe { header(ptr) };
    for b in &BLOCKS {
        if b.compare_exchange(ptr as usize, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            LIVE.fetch_sub(1, Ordering::Release);
            break;
        }
    }
    // SAFETY: the block's own mapping, as made by `alloc`; outside the sampled range.
    unsafe { libc::munmap(h.map_base as *mut c_void, h.map_len) };
}

fn insert(user: usize) -> bool {
    for b in &BLOCKS {
        if b.compare_exchange(0, user, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            LIVE.fetch_add(1, Ordering::Release);
            return true;
        }
    }
    false
}
