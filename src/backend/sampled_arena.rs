//! The sampled arena: a jemalloc arena whose extents all come from one reserved address range.
//!
//! Why: an unsampled `free` must answer "was this pointer sampled?" without a lock or a hash
//! probe. Every sampled block is allocated from this arena, and the arena's extent hooks hand
//! out memory only from a `PROT_NONE | MAP_NORESERVE` reservation made once at start-up, so
//! the answer is a range test. The reservation is placed above every mapping the process makes
//! after it (the kernel's top-down layout does that by itself; a bottom-up one, as under
//! valgrind, gets an address hint near the top), so the allocator handle's test is one-sided:
//! `ptr >= floor` against its own copy of the range's start ([`RangeFilter`]), one compare
//! with a RIP-relative load. A pointer above the floor that is not in the range (memory mapped
//! into a hole above the reservation) takes the slow path, where [`contains`] is exact: slower
//! for that block, never wrong. jemalloc still does the size classes, slabs, in-place growth
//! and reuse inside the range.
//!
//! The rules that keep the range exact (docs/design.md, section 2), each kept here:
//! - the reservation is never unmapped in part: a reused hole would make ordinary memory look
//!   sampled. `dalloc` and `decommit` opt out (return `true`), purges use `madvise`;
//! - hooks run on any thread, jemalloc's background thread included, and must not allocate:
//!   atomics and syscalls only;
//! - sampled blocks are allocated, freed and reallocated with the arena index and either
//!   `MALLOCX_TCACHE_NONE` or the thread's sampled-only explicit tcache ([`Cache`]), never the
//!   thread's ordinary cache: that would hand a range address to an ordinary allocation, and
//!   `rallocx` without the arena would move the block out of the range;
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

/// Address space reserved for sampled blocks, largest first; the first that maps (and fits
/// the address-space limit, see [`address_space_share`]) is used.
const RESERVATIONS: [usize; 6] = [64 << 30, 16 << 30, 4 << 30, 1 << 30, 256 << 20, 64 << 20];

/// The share of a finite `RLIMIT_AS` (`ulimit -v`) the reservation may take: one eighth.
/// `PROT_NONE | MAP_NORESERVE` address space still counts against that limit, so a 64 GiB
/// reservation under a 3 GiB limit would leave the program nothing; with an eighth the
/// program keeps seven eighths (under 3 GiB: a 256 MiB range, and a 2 GiB allocation still
/// succeeds, `tests/address_space.rs`). Under 512 MiB no size fits and profiling is off (one
/// stderr line). When the range is used up, sampled allocations take the plain path and
/// count as dropped samples; the program's allocations never fail because of it.
const ADDRESS_SPACE_SHARE: usize = 8;

/// The most address space the reservation may take: unlimited, or [`ADDRESS_SPACE_SHARE`]
/// of the soft `RLIMIT_AS`. Must not allocate (runs at load time).
fn address_space_share() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer of the type getrlimit writes.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX) / ADDRESS_SPACE_SHARE
}

/// The header id of a retired block: one that was resized without being resampled. It stays
/// in the arena (so jemalloc can keep growing it in place) but stands for no sample, so its
/// free and resizes record nothing. Never a sample id (see `registry::orphan_id`).
pub(crate) const RETIRED: u64 = u64::MAX;

/// Bytes in front of every sampled block's user data (at least; more for larger alignments).
pub(crate) const HEADER_BYTES: usize = 32;

/// The prefix of every sampled block. `id` serves the block's whole life; the other fields
/// serve only a freed block waiting on the deferred-free stack, and are 0 (null) until then.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    /// Unique id of this sample (registry slot in the top 16 bits, per-slot counter below), or
    /// [`RETIRED`]. Written by [`alloc`] and [`realloc`]; read by every free and resize.
    pub(crate) id: u64,
    /// The user's size in bytes, written by `alloc::free_sampled` when the free is deferred:
    /// `drain::defer` adds it to the deferred-free backlog, the drain's pass takes it off.
    pub(crate) size: u64,
    /// Next node while the block waits on the deferred-free stack (written by its push and by
    /// the drain's pass, which relinks the blocks it will give back).
    pub(crate) next: *mut Header,
    /// When the block was freed, written by `alloc::free_sampled` when the free is deferred;
    /// the drain records the free at this time.
    pub(crate) freed_ns: u64,
}

const _: () = assert!(size_of::<Header>() == HEADER_BYTES);

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

/// A copy of the range's start, kept in the allocator handle itself (a static of the user's
/// crate), so the unsampled free's test reads it with one RIP-relative load instead of going
/// through the GOT to [`RANGE`]: `ptr >= floor`. Nothing the program maps after the reservation
/// lies above it (see [`reserve`]), so the test rules out every ordinary block but those in a
/// hole above the range, which the caller's [`contains`] then rules out.
///
/// Before [`sync`](Self::sync) the floor is 0 and every pointer "may" be sampled: the caller
/// then asks [`contains`], which is authoritative, so an unsynced handle is slow, never wrong.
/// One word, written once (0 to the range's start, or to `usize::MAX` when nothing is ever
/// sampled), so `Relaxed` suffices: a stale 0 only sends a free to the exact test.
///
/// It has a cache line of its own: the free path reads it on every call, and a neighbouring
/// static of the program written by another thread would otherwise make each of those reads
/// a miss.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct RangeFilter {
    floor: AtomicUsize,
}

impl RangeFilter {
    /// The unsynced filter: every pointer may be sampled.
    pub(crate) const fn new() -> Self {
        Self {
            floor: AtomicUsize::new(0),
        }
    }

    /// `false`: `ptr` is certainly not a sampled block. `true`: ask [`contains`].
    #[inline(always)]
    pub(crate) fn may_contain(&self, ptr: *const u8) -> bool {
        ptr as usize >= self.floor.load(Ordering::Relaxed)
    }

    /// Copies the range in, once it exists. Cheap when already done (one load).
    #[inline]
    pub(crate) fn sync(&self) {
        if self.floor.load(Ordering::Relaxed) != 0 {
            return;
        }
        if RANGE.len.load(Ordering::Acquire) == 0 {
            return;
        }
        self.floor
            .store(RANGE.base.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Profiling is off for good (or the arena could not be made): no pointer is sampled, and
    /// the filter says so at once (no block lies at or above `usize::MAX`).
    pub(crate) fn rule_out_all(&self) {
        if RANGE.len.load(Ordering::Acquire) == 0 {
            self.floor.store(usize::MAX, Ordering::Relaxed);
        }
    }
}

/// The first address above the reservation (0 when the arena could not be set up).
pub(crate) fn range_end() -> usize {
    RANGE.base.load(Ordering::Relaxed) + RANGE.len.load(Ordering::Relaxed)
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

/// Resident bytes of the part of the range jemalloc has taken ([`committed_bytes`]), measured
/// page by page with `mincore` (16 MiB per call, into a buffer on the stack: no allocation).
/// A page jemalloc purged with `MADV_DONTNEED` (or never touched) does not count; a page
/// purged lazily (`MADV_FREE`) counts until the kernel takes it back.
pub(crate) fn resident_bytes() -> usize {
    const CHUNK_PAGES: usize = 4096;
    let base = RANGE.base.load(Ordering::Relaxed);
    let end = base + committed_bytes();
    // SAFETY: `sysconf` has no preconditions.
    let page = match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        p if p > 0 => p as usize,
        _ => 4096,
    };
    let mut vec = [0u8; CHUNK_PAGES];
    let mut resident_pages = 0;
    let mut at = base;
    while at < end {
        let len = (end - at).min(CHUNK_PAGES * page);
        // SAFETY: `[at, at + len)` lies in the reservation, which stays mapped for the life of
        // the process (jemalloc's extents are carved out of it and never unmapped); `at` is
        // page-aligned (the range and jemalloc's extents are); `vec` has room for one byte per
        // page of `len` (at most `CHUNK_PAGES`). mincore only reads the page tables.
        let rc = unsafe { libc::mincore(at as *mut c_void, len, vec.as_mut_ptr()) };
        if rc != 0 {
            break;
        }
        let pages = len.div_ceil(page);
        resident_pages += vec[..pages].iter().filter(|&&b| b & 1 != 0).count();
        at += len;
    }
    resident_pages * page
}

/// How long the sampled arena's unused dirty pages stay before they are purged (jemalloc's
/// default is 10 s): sampled blocks are few and scattered (a lone small object holds a slab),
/// so their pages are kept briefly. The drain thread runs the decay ([`decay`]).
const DIRTY_DECAY_MS: isize = 1000;

/// Writes `arena.<index>.<leaf>` as a NUL-terminated name into `buf`; `None` if it does not fit.
fn arena_ctl_name<'a>(buf: &'a mut [u8; 64], leaf: &str) -> Option<&'a std::ffi::CStr> {
    use std::io::Write as _;
    let index = RANGE.arena.load(Ordering::Relaxed);
    let len = {
        let mut cursor = std::io::Cursor::new(&mut buf[..63]);
        write!(cursor, "arena.{index}.{leaf}").ok()?;
        cursor.position() as usize
    };
    buf[len] = 0;
    std::ffi::CStr::from_bytes_with_nul(&buf[..=len]).ok()
}

/// Sets the sampled arena's dirty decay time ([`DIRTY_DECAY_MS`]). Best effort.
fn set_decay_time() {
    let mut buf = [0u8; 64];
    let Some(name) = arena_ctl_name(&mut buf, "dirty_decay_ms") else {
        return;
    };
    let mut ms = DIRTY_DECAY_MS;
    // SAFETY: "arena.<i>.dirty_decay_ms" takes an `ssize_t` from `newp`, which points at a
    // local of that type (`isize`); no old value is read.
    unsafe {
        ffi::mallctl(
            name.as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            (&raw mut ms).cast(),
            size_of::<isize>(),
        );
    }
}

/// When the drain last ran the sampled arena's decay (monotonic ns).
static LAST_DECAY_NS: AtomicUsize = AtomicUsize::new(0);

/// Purges the sampled arena's dirty pages that have been unused for [`DIRTY_DECAY_MS`]
/// (`arena.<i>.decay`), at most once a second. Without jemalloc's background thread, decay
/// otherwise only happens while the arena is in use: a burst of sampled allocations would keep
/// its pages resident after the program stopped sampling. Called by the drain thread.
pub(crate) fn decay() {
    if RANGE.len.load(Ordering::Relaxed) == 0 {
        return;
    }
    let now = crate::state::now_ns() as usize;
    let last = LAST_DECAY_NS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < 1_000_000_000 {
        return;
    }
    LAST_DECAY_NS.store(now, Ordering::Relaxed);
    let mut buf = [0u8; 64];
    let Some(name) = arena_ctl_name(&mut buf, "decay") else {
        return;
    };
    // SAFETY: "arena.<i>.decay" is a void control: no old or new value, as jemalloc documents.
    unsafe {
        ffi::mallctl(
            name.as_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        );
    }
}

/// Why the sampled arena could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArenaError {
    /// No `PROT_NONE` reservation of even 64 MiB could be mapped (or fit an eighth of
    /// `RLIMIT_AS`).
    Reserve,
    /// `arenas.create` failed.
    Create,
}

impl std::fmt::Display for ArenaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ArenaError::Reserve => {
                "could not reserve an address range for sampled blocks (at least 64 MiB, at most an eighth of RLIMIT_AS)"
            }
            ArenaError::Create => "jemalloc refused to create the sampled arena (arenas.create)",
        })
    }
}

/// Where a bottom-up layout gets the reservation instead: near the top of the 47-bit user
/// address space, far above anything it maps from the bottom. Tried in order; each is the end
/// of the reservation.
const HIGH_ENDS: [usize; 3] = [0x7e00_0000_0000, 0x7000_0000_0000, 0x4000_0000_0000];

/// The size of the probe mapping that checks a placement: jemalloc maps its extents in
/// multiples of 2 MiB, so a hole smaller than this above the range never holds its memory.
const PROBE: usize = 2 << 20;

/// Maps `len` bytes of `PROT_NONE` address space above every mapping the process will make
/// after it, so [`RangeFilter`]'s one-sided test holds:
/// 1. where the kernel puts it (with the usual top-down layout, the highest gap: later
///    mappings go below);
/// 2. if a probe mapping lands above that (a bottom-up layout, as valgrind's), at an address
///    hint near the top of the address space instead;
/// 3. if no hint is honoured either, where the kernel put it: frees of ordinary blocks mapped
///    above it then take the slow path (correct, slower).
///
/// A placement that is not kept is unmapped whole, before jemalloc has seen any of it (the
/// rule against unmapping concerns memory the arena used).
fn reserve(len: usize) -> Option<(usize, usize)> {
    let chosen = map_reservation(ptr::null_mut(), len);
    if chosen.is_some_and(probe_lies_below) {
        return chosen.map(|base| (base, len));
    }
    for end in HIGH_ENDS {
        let Some(hint) = end.checked_sub(len) else {
            continue;
        };
        let Some(base) = map_reservation(hint as *mut c_void, len) else {
            continue;
        };
        if probe_lies_below(base) {
            if let Some(other) = chosen {
                unmap(other, len);
            }
            return Some((base, len));
        }
        unmap(base, len);
    }
    chosen.map(|base| (base, len))
}

/// An anonymous `PROT_NONE | MAP_NORESERVE` mapping of `len` bytes, at `hint` if the kernel
/// takes it (never `MAP_FIXED`: nothing existing is replaced).
fn map_reservation(hint: *mut c_void, len: usize) -> Option<usize> {
    // SAFETY: an anonymous private mapping without MAP_FIXED touches no existing memory (the
    // hint is only a hint); the result is checked against MAP_FAILED.
    let start = unsafe {
        libc::mmap(
            hint,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    (start != libc::MAP_FAILED).then_some(start as usize)
}

/// Unmaps a whole reservation that jemalloc has never seen.
fn unmap(base: usize, len: usize) {
    // SAFETY: `[base, base + len)` is a mapping `map_reservation` made and nobody else knows
    // of. A failed unmap only leaves unused address space reserved.
    unsafe {
        libc::munmap(base as *mut c_void, len);
    }
}

/// Does a new mapping, made the way jemalloc makes its own, land below `base`?
fn probe_lies_below(base: usize) -> bool {
    match map_reservation(ptr::null_mut(), PROBE) {
        Some(probe) => {
            unmap(probe, PROBE);
            probe + PROBE <= base
        }
        None => false,
    }
}

/// Reserves the range, unless that is done already. Called at load time, before jemalloc's own
/// constructor maps its first extents (`alloc::RESERVE_AT_LOAD`), and again by the thread that
/// wins the initialisation race, before anything there allocates. jemalloc's extents must lie
/// below the reservation (see [`reserve`]), or every free of a block in them would take the
/// slow path. Must not allocate.
pub(crate) fn reserve_range() -> Result<(), ArenaError> {
    if RANGE.base.load(Ordering::Relaxed) != 0 {
        // Made already, at load time (`alloc::RESERVE_AT_LOAD`).
        return Ok(());
    }
    let share = address_space_share();
    let (base, len) = RESERVATIONS
        .into_iter()
        .filter(|&len| len <= share)
        .find_map(reserve)
        .ok_or(ArenaError::Reserve)?;
    RANGE.base.store(base, Ordering::Relaxed);
    RANGE.cursor.store(base, Ordering::Relaxed);
    RANGE.end.store(base + len, Ordering::Relaxed);
    Ok(())
}

/// Gives the reservation back when profiling turns out to be off. Only before
/// [`create_arena`]: jemalloc has never seen the range.
pub(crate) fn release_range() {
    let base = RANGE.base.swap(0, Ordering::Relaxed);
    let end = RANGE.end.swap(0, Ordering::Relaxed);
    RANGE.cursor.store(0, Ordering::Relaxed);
    if base != 0 {
        unmap(base, end - base);
    }
}

/// Creates the arena over the range [`reserve_range`] made, and turns the range test on. Called
/// once, by the thread that wins the initialisation race; must not allocate through the global
/// allocator.
pub(crate) fn create_arena() -> Result<(), ArenaError> {
    let base = RANGE.base.load(Ordering::Relaxed);
    if base == 0 {
        return Err(ArenaError::Reserve);
    }
    let len = RANGE.end.load(Ordering::Relaxed) - base;

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
    set_decay_time();
    if len < RESERVATIONS[0] && address_space_share() < RESERVATIONS[0] {
        crate::diag::stderr_line(format_args!(
            "heaptide: RLIMIT_AS is set: the sampled range is {} MiB (an eighth of the limit at most); samples that do not fit are dropped and counted",
            len >> 20
        ));
    }
    measure_cache();
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
fn flags(align: usize, cache: Cache) -> libc::c_int {
    let arena = RANGE.arena.load(Ordering::Relaxed);
    let mut flags = ffi::MALLOCX_ARENA(arena) | cache.flag();
    if align > 16 {
        flags |= ffi::MALLOCX_ALIGN(align);
    }
    flags
}

/// Which thread cache a sampled block goes through: a thread's own explicit jemalloc tcache
/// (`tcache.create`) that only ever holds sampled blocks, or none.
///
/// Why: without a cache every sampled block is a trip to the arena, and a lone small object
/// gets a slab of its own, which more than doubles what a sample costs (`docs/performance.md`,
/// "A sample", has the callgrind counts with and without it). The thread's ordinary tcache cannot
/// be used (it would hand a range address to an ordinary allocation); an explicit tcache that
/// is only ever given sampled blocks and only ever asked for them with this arena's flag keeps
/// the range exact: its bins fill from this arena and are fed only by frees of blocks the
/// range test recognised. A block that jemalloc served outside the range is freed with no
/// cache, so it never enters one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cache(Option<libc::c_uint>);

impl Cache {
    /// Straight to the arena.
    pub(crate) const NONE: Cache = Cache(None);

    #[inline]
    fn flag(self) -> libc::c_int {
        match self.0 {
            Some(index) => ffi::MALLOCX_TCACHE(index as usize),
            None => ffi::MALLOCX_TCACHE_NONE,
        }
    }

    /// A new explicit tcache, `None` if jemalloc has none to give (it keeps at most 4,093).
    /// Must not run inside jemalloc (a hook); allocates only inside jemalloc's base memory.
    pub(crate) fn create() -> Option<Cache> {
        let mut index: libc::c_uint = 0;
        let mut len = size_of::<libc::c_uint>();
        // SAFETY: "tcache.create" writes an `unsigned` to `oldp`, which points at a local of
        // that type, and takes no new value.
        let rc = unsafe {
            ffi::mallctl(
                c"tcache.create".as_ptr(),
                (&raw mut index).cast(),
                &mut len,
                ptr::null_mut(),
                0,
            )
        };
        if rc != 0 {
            return None;
        }
        LIVE_CACHES.fetch_add(1, Ordering::Relaxed);
        Some(Cache(Some(index)))
    }

    /// Flushes the cache's blocks back to the arena and gives its index back to jemalloc.
    /// Nothing may use the cache afterwards.
    pub(crate) fn destroy(self) {
        self.retire(c"tcache.destroy");
    }

    /// Gives the cache's blocks back to the arena and stops counting it, without destroying
    /// it: for a cache inherited across `fork()`. jemalloc's child handler rebuilds each
    /// arena's list of caches with the forking thread's own cache only, so an explicit cache
    /// made before the fork is on no list in the child; destroying it there unlinks it from a
    /// list it is not on, which corrupts the list that `epoch` (statistics) walks next (a
    /// SIGSEGV in `arena_stats_merge`). Flushing does not touch the list. The cache's index
    /// and its few KiB stay with jemalloc.
    pub(crate) fn abandon(self) {
        self.retire(c"tcache.flush");
    }

    /// Stops counting the cache and runs `ctl` (`tcache.destroy` or `tcache.flush`) on it.
    fn retire(self, ctl: &std::ffi::CStr) {
        let Some(mut index) = self.0 else {
            return;
        };
        LIVE_CACHES.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: both controls read an `unsigned` from `newp`, which points at a local of that
        // type; the index came from "tcache.create" and is retired once (the caller owns the
        // value and gives it up here).
        unsafe {
            ffi::mallctl(
                ctl.as_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
                (&raw mut index).cast(),
                size_of::<libc::c_uint>(),
            );
        }
    }
}

/// Threads' sampled caches alive now.
static LIVE_CACHES: AtomicUsize = AtomicUsize::new(0);
/// What one sampled cache costs jemalloc (its bins' pointer stacks and bookkeeping), measured
/// at start-up; 0 if it could not be measured.
static CACHE_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Measures what one cache adds to jemalloc's metadata (the cache is internal memory, which
/// the thread counters that measure the profiler's own allocations do not see): creates one,
/// reads `stats.metadata` around it, destroys it. Called once, at start-up.
fn measure_cache() {
    let before = crate::backend::ctl::stats();
    let Some(cache) = Cache::create() else {
        return;
    };
    let after = crate::backend::ctl::stats();
    cache.destroy();
    if let (Some(before), Some(after)) = (before, after) {
        let bytes = after.metadata.saturating_sub(before.metadata);
        CACHE_BYTES.store(bytes as usize, Ordering::Relaxed);
    }
}

/// Bytes held by the live threads' sampled caches themselves (the blocks they keep are the
/// program's): the number of caches times the size measured at start-up.
pub(crate) fn cache_bytes() -> usize {
    LIVE_CACHES.load(Ordering::Relaxed) * CACHE_BYTES.load(Ordering::Relaxed)
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
/// The range was initialised ([`reserve_range`] and [`create_arena`] returned `Ok`);
/// `size > 0`; `align` is a power of two.
pub(crate) unsafe fn alloc(
    size: usize,
    align: usize,
    zeroed: bool,
    id: u64,
    cache: Cache,
) -> Sampled {
    let offset = header_offset(align);
    let Some(total) = size.checked_add(offset) else {
        return Sampled::Null;
    };
    let mut f = flags(align, cache);
    if zeroed {
        f |= ffi::MALLOCX_ZERO;
    }
    // SAFETY: `total > 0`; the flags name our arena (created in `init`) and a valid alignment.
    let base = unsafe { ffi::mallocx(total, f) }.cast::<u8>();
    if base.is_null() {
        return Sampled::Null;
    }
    if !contains(base) {
        // SAFETY: `base` is a live block just returned by `mallocx` with these flags. No cache:
        // a block from outside the range must never enter a sampled cache.
        unsafe { ffi::sdallocx(base.cast(), total, flags(align, Cache::NONE)) };
        return Sampled::Refused;
    }
    // SAFETY: `base` is a fresh block of at least HEADER_BYTES, aligned to at least 16.
    unsafe {
        base.cast::<Header>().write(Header {
            id,
            size: 0,
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
pub(crate) unsafe fn free(header: *mut Header, size: usize, align: usize, cache: Cache) {
    // SAFETY: per the caller, a live block of exactly this total size, from our arena with
    // these flags (no tcache or a sampled-only one, so the address cannot leak to an
    // ordinary allocation).
    unsafe {
        ffi::sdallocx(
            header.cast::<c_void>(),
            size + header_offset(align),
            flags(align, cache),
        )
    }
}

/// Frees a sampled block known by its header alone: a deferred free, which the drain gives
/// back. The header holds the user's size but not the alignment the block was allocated with,
/// on which its total size depends; `dallocx` needs neither (jemalloc looks the size up), and
/// no alignment flag (a free does not use one). No cache: the drain's thread is not the one
/// whose sampled cache the block would belong in.
///
/// # Safety
/// `header` is the start of a live sampled block; nothing uses the block afterwards.
pub(crate) unsafe fn free_unsized(header: *mut Header) {
    // SAFETY: a live block from our arena, not used after this; `dallocx` finds its size.
    unsafe { ffi::dallocx(header.cast::<c_void>(), flags(0, Cache::NONE)) }
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
    cache: Cache,
) -> Resized {
    let offset = header_offset(align);
    let Some(total) = new_size.checked_add(offset) else {
        return Resized::Null;
    };
    // SAFETY: per the caller the block starts `offset` bytes before `user`.
    let base = unsafe { user.sub(offset) };
    // SAFETY: `base` is a live block of our arena; the flags keep it there and out of the
    // thread's ordinary tcache (no cache, or the thread's sampled-only one).
    let new_base = unsafe { ffi::rallocx(base.cast(), total, flags(align, cache)) }.cast::<u8>();
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
        (*new_base.cast::<Header>()).id = id;
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
