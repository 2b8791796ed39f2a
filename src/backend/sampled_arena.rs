//! The sampled arena: a jemalloc arena whose extents all come from one reserved address range.
//!
//! Why: an unsampled `free` must answer "was this pointer sampled?" without a lock or a hash
//! probe. Every sampled block is allocated from this arena, and the arena's extent hooks hand
//! out memory only from a `PROT_NONE | MAP_NORESERVE` reservation made once at start-up, so
//! the answer is `ptr - base < len`: two loads, a subtraction and a compare. jemalloc still does
//! the size classes, slabs, in-place growth and reuse inside the range.
//!
//! Rules learned the hard way (see DESIGN section 2) and kept here:
//! - the reservation is never unmapped in part: a reused hole would make ordinary memory look
//!   sampled. `dalloc` and `decommit` opt out (return `true`), purges use `madvise`;
//! - hooks run on any thread, jemalloc's background thread included, and must not allocate:
//!   atomics and syscalls only;
//! - sampled blocks are freed and reallocated with `MALLOCX_TCACHE_NONE` and the arena index,
//!   otherwise the thread cache would hand a range address to an ordinary allocation, or
//!   `rallocx` would move the block out of the range;
//! - a block that comes back outside the range (jemalloc serves a re-entrant request from
//!   arena 0) is not treated as sampled.
//!
//! Each sampled block starts with a [`Header`] in front of the user's bytes. It carries the
//! sample's unique id, so the drain pairs a free with its allocation by id, never by address
//! (addresses are reused; ids are not), and it gives a free that cannot be queued a place to
//! wait: the block itself becomes a node of the deferred-free list.

use std::ffi::c_void;
use std::ptr;

use tikv_jemalloc_sys as ffi;

use crate::sync::{AtomicUsize, Ordering};

/// C `bool` as the extent hooks take it.
type CBool = bool;

/// Address space reserved for sampled blocks, largest first; the first that maps is used.
const RESERVATIONS: [usize; 4] = [64 << 30, 16 << 30, 4 << 30, 1 << 30];

/// Bytes in front of every sampled block's user data (at least; more for larger alignments).
pub(crate) const HEADER_BYTES: usize = 32;

/// The prefix of every sampled block.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    /// Unique id of this sample (registry slot in the top 16 bits, per-slot counter below).
    pub(crate) id: u64,
    /// The user's size in bytes.
    pub(crate) size: u64,
    /// Next node while the block waits on the deferred-free list.
    pub(crate) next: *mut Header,
    /// When the block was freed, while it waits on the deferred-free list.
    pub(crate) freed_ns: u64,
}

const _: () = assert!(size_of::<Header>() == HEADER_BYTES);

// SAFETY: `set_next`/`next` touch only the `next` field.
unsafe impl crate::buffer::stack::Node for Header {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the block.
        unsafe { (*this).next = next }
    }
    unsafe fn next(this: *const Self) -> *mut Self {
        // SAFETY: the caller owns the block.
        unsafe { (*this).next }
    }
}

/// The reserved range and the arena. `len == 0` means "no range": nothing is sampled-looking.
#[repr(C, align(64))]
struct Range {
    base: AtomicUsize,
    len: AtomicUsize,
    /// Bump pointer of the extent hook: the next unused address of the reservation.
    cursor: AtomicUsize,
    /// End of the reservation, set before the arena exists (its hooks run during creation).
    end: AtomicUsize,
    /// jemalloc arena index, valid once `len != 0`.
    arena: AtomicUsize,
}

static RANGE: Range = Range {
    base: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    cursor: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    arena: AtomicUsize::new(0),
};

/// Was `ptr` allocated from the sampled arena? The whole cost of an unsampled free's check.
///
/// `Relaxed` is enough: `base` and `len` are written once, before the first sampled block
/// exists, and any thread holding a sampled pointer got it through a happens-before chain from
/// the thread that allocated it, which had itself seen the initialised range.
#[inline(always)]
pub(crate) fn contains(ptr: *const u8) -> bool {
    (ptr as usize).wrapping_sub(RANGE.base.load(Ordering::Relaxed))
        < RANGE.len.load(Ordering::Relaxed)
}

/// Bytes reserved (0 when the arena could not be set up).
pub(crate) fn reserved_bytes() -> usize {
    RANGE.len.load(Ordering::Relaxed)
}

/// Bytes of the reservation jemalloc has asked for so far (committed read-write).
pub(crate) fn committed_bytes() -> usize {
    RANGE
        .cursor
        .load(Ordering::Relaxed)
        .saturating_sub(RANGE.base.load(Ordering::Relaxed))
}

/// Why the sampled arena could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArenaError {
    /// No `PROT_NONE` reservation of even 1 GiB could be mapped.
    Reserve,
    /// `arenas.create` failed.
    Create,
}

impl std::fmt::Display for ArenaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArenaError::Reserve => "could not reserve an address range for sampled blocks",
            ArenaError::Create => "jemalloc refused to create the sampled arena (arenas.create)",
        })
    }
}

/// Reserves the range and creates the arena. Called once, by the thread that wins the
/// initialisation race; must not allocate through the global allocator.
pub(crate) fn init() -> Result<(), ArenaError> {
    let mut reserved = None;
    for len in RESERVATIONS {
        // SAFETY: an anonymous private mapping with no address hint touches no existing memory;
        // the result is checked against MAP_FAILED.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base != libc::MAP_FAILED {
            reserved = Some((base as usize, len));
            break;
        }
    }
    let (base, len) = reserved.ok_or(ArenaError::Reserve)?;
    RANGE.base.store(base, Ordering::Relaxed);
    RANGE.cursor.store(base, Ordering::Relaxed);
    RANGE.end.store(base + len, Ordering::Relaxed);

    let mut arena: libc::c_uint = 0;
    let mut arena_len = size_of::<libc::c_uint>();
    let mut hooks: *mut ffi::extent_hooks_t = HOOKS.0.get();
    // SAFETY: "arenas.create" reads an `extent_hooks_t *` from `newp` and writes an `unsigned`
    // to `oldp`; both pointers point at locals of exactly those types, and `HOOKS` is 'static
    // as jemalloc requires (it keeps the pointer for the arena's lifetime).
    let rc = unsafe {
        ffi::mallctl(
            c"arenas.create".as_ptr(),
            (&raw mut arena).cast(),
            &mut arena_len,
            (&raw mut hooks).cast(),
            size_of::<*mut ffi::extent_hooks_t>(),
        )
    };
    if rc != 0 {
        // Keep the reservation mapped (never unmap, see module docs); it stays unused.
        return Err(ArenaError::Create);
    }
    RANGE.arena.store(arena as usize, Ordering::Relaxed);
    // Publishing `len` turns the range test on.
    RANGE.len.store(len, Ordering::Release);
    Ok(())
}

/// Offset of the user's bytes from the block start for a given alignment.
#[inline]
fn header_offset(align: usize) -> usize {
    align.max(HEADER_BYTES)
}

#[inline]
fn flags(align: usize) -> libc::c_int {
    let arena = RANGE.arena.load(Ordering::Relaxed);
    let mut flags = ffi::MALLOCX_ARENA(arena) | ffi::MALLOCX_TCACHE_NONE;
    if align > 16 {
        flags |= ffi::MALLOCX_ALIGN(align);
    }
    flags
}

/// Outcome of asking the sampled arena for a block.
#[derive(Debug)]
pub(crate) enum Sampled {
    /// A sampled block: the user pointer, with its header initialised.
    Block(*mut u8),
    /// jemalloc failed (out of memory).
    Null,
    /// jemalloc served the request outside the range; the caller must use the plain path.
    Refused,
}

/// Allocates a sampled block of `size` user bytes aligned to `align`, writes its header.
///
/// # Safety
/// The range was initialised ([`init`] returned `Ok`); `size > 0`; `align` is a power of two.
pub(crate) unsafe fn alloc(size: usize, align: usize, zeroed: bool, id: u64) -> Sampled {
    let offset = header_offset(align);
    let Some(total) = size.checked_add(offset) else {
        return Sampled::Null;
    };
    let mut f = flags(align);
    if zeroed {
        f |= ffi::MALLOCX_ZERO;
    }
    // SAFETY: `total > 0`; the flags name our arena (created in `init`) and a valid alignment.
    let base = unsafe { ffi::mallocx(total, f) }.cast::<u8>();
    if base.is_null() {
        return Sampled::Null;
    }
    if !contains(base) {
        // SAFETY: `base` is a live block just returned by `mallocx` with these flags.
        unsafe { ffi::sdallocx(base.cast(), total, flags(align)) };
        return Sampled::Refused;
    }
    // SAFETY: `base` is a fresh block of at least HEADER_BYTES, aligned to at least 16.
    unsafe {
        base.cast::<Header>().write(Header {
            id,
            size: size as u64,
            next: ptr::null_mut(),
            freed_ns: 0,
        });
        Sampled::Block(base.add(offset))
    }
}

/// The header of a sampled block.
///
/// # Safety
/// `user` is the user pointer of a live sampled block allocated with `align`.
#[inline]
pub(crate) unsafe fn header(user: *mut u8, align: usize) -> *mut Header {
    // SAFETY: per the caller, the block starts `header_offset(align)` bytes before `user`.
    unsafe { user.sub(header_offset(align)).cast() }
}

/// Frees a sampled block given its header (the block start).
///
/// # Safety
/// `header` is the start of a live sampled block of `size` user bytes allocated with `align`;
/// nothing uses the block afterwards.
pub(crate) unsafe fn free(header: *mut Header, size: usize, align: usize) {
    // SAFETY: per the caller, a live block of exactly this total size, from our arena with
    // these flags (tcache off, so the address cannot leak to an ordinary allocation).
    unsafe {
        ffi::sdallocx(
            header.cast::<c_void>(),
            size + header_offset(align),
            flags(align),
        )
    }
}

/// Frees a sampled block whose size is no longer known to the caller (deferred frees).
///
/// # Safety
/// `header` is the start of a live sampled block allocated with `align`.
pub(crate) unsafe fn free_unsized(header: *mut Header, align: usize) {
    // SAFETY: a live block from our arena; `dallocx` needs no size.
    unsafe { ffi::dallocx(header.cast::<c_void>(), flags(align)) }
}

/// Outcome of resizing a sampled block.
#[derive(Debug)]
pub(crate) enum Resized {
    /// Still a sampled block: the new user pointer, header id updated.
    Block(*mut u8),
    /// jemalloc failed; the old block is untouched.
    Null,
    /// jemalloc moved the block out of the range (never seen with the arena flags, but the
    /// range test must stay exact): the bytes were copied into this ordinary block, and the
    /// sampled block is gone.
    LeftRange(*mut u8),
}

/// Resizes a sampled block within the arena (in place when jemalloc can), keeping the header
/// in front and giving it the new sample's id.
///
/// # Safety
/// `user` is a live sampled block of `old_size` bytes allocated with `align`; `new_size > 0`.
pub(crate) unsafe fn realloc(
    user: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
    id: u64,
) -> Resized {
    let offset = header_offset(align);
    let Some(total) = new_size.checked_add(offset) else {
        return Resized::Null;
    };
    // SAFETY: per the caller the block starts `offset` bytes before `user`.
    let base = unsafe { user.sub(offset) };
    // SAFETY: `base` is a live block of our arena; the flags keep it there and off the tcache.
    let new_base = unsafe { ffi::rallocx(base.cast(), total, flags(align)) }.cast::<u8>();
    if new_base.is_null() {
        return Resized::Null;
    }
    if !contains(new_base) {
        // SAFETY: `new_base` is a live block of `total` bytes whose user part starts at
        // `offset`; the plain block gets the user's bytes, then the stray block is freed.
        unsafe {
            let layout = std::alloc::Layout::from_size_align_unchecked(new_size, align);
            let p = crate::backend::plain::alloc(layout);
            if !p.is_null() {
                ptr::copy_nonoverlapping(new_base.add(offset), p, old_size.min(new_size));
            }
            ffi::dallocx(new_base.cast(), ffi::MALLOCX_TCACHE_NONE);
            return if p.is_null() {
                Resized::Null
            } else {
                Resized::LeftRange(p)
            };
        }
    }
    // SAFETY: `new_base` is the live resized block with the header moved along at its start.
    unsafe {
        let h = new_base.cast::<Header>();
        (*h).id = id;
        (*h).size = new_size as u64;
        Resized::Block(new_base.add(offset))
    }
}

// === extent hooks ===

struct Hooks(std::cell::UnsafeCell<ffi::extent_hooks_t>);

// SAFETY: jemalloc only reads the table (function pointers), and we never write it after
// construction, so sharing it between threads is sound.
unsafe impl Sync for Hooks {}

static HOOKS: Hooks = Hooks(std::cell::UnsafeCell::new(ffi::extent_hooks_t {
    alloc: Some(hook_alloc),
    dalloc: Some(hook_opt_out_dalloc),
    destroy: Some(hook_destroy),
    commit: Some(hook_commit),
    decommit: Some(hook_opt_out_decommit),
    purge_lazy: Some(hook_purge_lazy),
    purge_forced: Some(hook_purge_forced),
    split: Some(hook_split),
    merge: Some(hook_merge),
}));

/// Hands out `size` bytes aligned to `alignment` from the reservation (bump pointer), made
/// read-write. jemalloc carves and reuses them itself (it retains extents), so nothing is ever
/// given back to us.
unsafe extern "C" fn hook_alloc(
    _hooks: *mut ffi::extent_hooks_t,
    new_addr: *mut c_void,
    size: usize,
    alignment: usize,
    zero: *mut CBool,
    commit: *mut CBool,
    _arena: libc::c_uint,
) -> *mut c_void {
    if !new_addr.is_null() {
        // jemalloc asks to extend at a given address; we only ever bump forward.
        return ptr::null_mut();
    }
    let end_of_range = RANGE.end.load(Ordering::Relaxed);
    let align = alignment.max(4096);
    let mut cur = RANGE.cursor.load(Ordering::Relaxed);
    let start = loop {
        let start = (cur + align - 1) & !(align - 1);
        let Some(end) = start.checked_add(size) else {
            return ptr::null_mut();
        };
        if end > end_of_range {
            return ptr::null_mut();
        }
        match RANGE
            .cursor
            .compare_exchange_weak(cur, end, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => break start,
            Err(now) => cur = now,
        }
    };
    // SAFETY: [start, start+size) lies inside our own PROT_NONE reservation and was claimed by
    // this call alone (the CAS above); making it read-write affects no other mapping.
    let rc = unsafe {
        libc::mprotect(
            start as *mut c_void,
            size,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    };
    if rc != 0 {
        return ptr::null_mut();
    }
    // SAFETY: jemalloc passes valid out-pointers. Fresh pages of an anonymous mapping are zero.
    unsafe {
        *zero = true;
        *commit = true;
    }
    start as *mut c_void
}

/// Opt out: jemalloc keeps the extent (retained) and reuses it; the range never gets holes.
unsafe extern "C" fn hook_opt_out_dalloc(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: CBool,
    _: libc::c_uint,
) -> CBool {
    true
}

/// Only called when an arena is destroyed, which never happens to ours. Give the pages back.
unsafe extern "C" fn hook_destroy(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    size: usize,
    _: CBool,
    _: libc::c_uint,
) {
    // SAFETY: the extent is ours and jemalloc is done with it; DONTNEED keeps the mapping.
    unsafe { libc::madvise(addr, size, libc::MADV_DONTNEED) };
}

/// Memory is always committed (read-write) once handed out: committing succeeds trivially.
unsafe extern "C" fn hook_commit(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: libc::c_uint,
) -> CBool {
    false
}

/// Opt out of decommit: jemalloc then purges instead, which keeps the mapping in one piece.
unsafe extern "C" fn hook_opt_out_decommit(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: libc::c_uint,
) -> CBool {
    true
}

unsafe extern "C" fn hook_purge_lazy(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _: libc::c_uint,
) -> CBool {
    // SAFETY: [addr+offset, +length) is part of an extent of ours that jemalloc holds unused.
    unsafe {
        libc::madvise(
            addr.cast::<u8>().add(offset).cast(),
            length,
            libc::MADV_FREE,
        ) != 0
    }
}

unsafe extern "C" fn hook_purge_forced(
    _: *mut ffi::extent_hooks_t,
    addr: *mut c_void,
    _size: usize,
    offset: usize,
    length: usize,
    _: libc::c_uint,
) -> CBool {
    // SAFETY: as in `hook_purge_lazy`; DONTNEED makes the pages read back as zero.
    unsafe {
        libc::madvise(
            addr.cast::<u8>().add(offset).cast(),
            length,
            libc::MADV_DONTNEED,
        ) != 0
    }
}

/// Extents inside one reservation can always be split: nothing to do, success.
unsafe extern "C" fn hook_split(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: usize,
    _: usize,
    _: CBool,
    _: libc::c_uint,
) -> CBool {
    false
}

/// Adjacent extents inside one reservation can always be merged: nothing to do, success.
unsafe extern "C" fn hook_merge(
    _: *mut ffi::extent_hooks_t,
    _: *mut c_void,
    _: usize,
    _: *mut c_void,
    _: usize,
    _: CBool,
    _: libc::c_uint,
) -> CBool {
    false
}
