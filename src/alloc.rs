//! The `GlobalAlloc` handle: forward to jemalloc, decide what to sample.
//!
//! Fast paths (inlined into `__rust_alloc` and friends):
//! - allocation: subtract the size from the thread's countdown (`sub` on the thread-local and a
//!   branch on the borrow); no borrow: plain jemalloc;
//! - free: `ptr >= floor` (the handle's copy of the sampled range's start)? no: plain jemalloc
//!   `sdallocx`; yes: the authoritative range test, out of line;
//! - realloc: both of the above.
//!
//! Everything else is `#[cold]` and out of line: initialisation on the first allocation,
//! taking a sample, and freeing or resizing a sampled block.
//!
//! The sampled path never waits on a lock and never panics: it pushes to the thread's own ring
//! if there is room; otherwise the event goes to an overflow node (after backpressure when too
//! many are waiting: the thread helps the drain or yields), or, for a free, the block itself
//! waits on the deferred stack. A sample is dropped (and counted) only when memory is short.

use std::alloc::{GlobalAlloc, Layout};
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
use std::ffi::CStr;
use std::ptr;

use crate::backend::sampled_arena::{self, RangeFilter, Resized, Sampled};
use crate::backend::{outside, plain};
use crate::buffer::event::{Frames, OWN_FRAMES, Record};
use crate::buffer::queues;
use crate::config::{Config, Sampling};
use crate::drain::{
    self,
    room::{Room, push_to_ring},
};
use crate::sample::capture::capture;
use crate::sample::scope::{self, ProfilerScope};
use crate::sample::thread::{self, COUNTDOWN};
use crate::state::{self, BUSY, Hooks, INIT, OFF, ON, UNINIT, now_ns};
use crate::sync::Ordering;

/// The allocator. Install it with one line:
///
/// ```no_run
/// #[global_allocator]
/// static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// ```
///
/// Settings given here are defaults; `HEAPTIDE_*` environment variables override them (so an
/// operator can change or switch off profiling without a rebuild). The settings are read once,
/// on the first allocation of the process.
#[derive(Debug)]
pub struct Heaptide {
    config: Config,
    /// This handle's copy of the sampled range's start, for the free path's test.
    range: RangeFilter,
    /// The profiler's side effects at start-up and after drain passes (`runtime.rs`).
    hooks: &'static Hooks,
}

impl Heaptide {
    /// The default profiler, with the side effects `hooks` does (`Heaptide::new` in `lib.rs`
    /// passes `runtime::HOOKS`).
    pub(crate) const fn with_hooks(hooks: &'static Hooks) -> Self {
        Self {
            config: Config::DEFAULT,
            range: RangeFilter::new(),
            hooks,
        }
    }

    /// Samples on average once every `bytes` bytes allocated (`1`: every allocation; `0`: off).
    pub const fn sample_every(mut self, bytes: u64) -> Self {
        self.config.sampling = match bytes {
            0 => Sampling::Off,
            1 => Sampling::Exact,
            r => Sampling::MeanBytes(r),
        };
        self
    }

    /// Records every allocation and free (exact mode, for tests).
    pub const fn exact(self) -> Self {
        self.sample_every(1)
    }

    /// Keeps `frames` frames of each stack (clamped to 1..=64).
    pub const fn depth(mut self, frames: usize) -> Self {
        self.config.depth = if frames == 0 {
            1
        } else if frames > crate::buffer::event::MAX_DEPTH {
            crate::buffer::event::MAX_DEPTH
        } else {
            frames
        };
        self
    }

    /// Seeds the sampling generators, for reproducible sampling decisions.
    pub const fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }
}

// === start-up ===

/// Reserves the sampled range when the program is loaded, before jemalloc's own constructor
/// (`jemalloc_constructor`, a plain `.init_array` entry) initialises jemalloc, which maps the
/// first extent of arena 0. The reservation then lies above it like above every later mapping,
/// and the free path's one-sided test rules out the blocks of that extent too (without this,
/// every free of a block in the main thread's first 4 MiB took the slow path: 2% on the json
/// benchmark). Prioritised `.init_array.NNNNN` entries run before plain ones; the standard
/// library uses `.init_array.00099` the same way. Only maps address space (never allocates),
/// in any program that links heaptide, unless `HEAPTIDE_SAMPLE` says off; the first
/// allocation reserves instead if this did not run, and gives the range back if profiling
/// turns out to be off (by the environment or the handle's settings).
// SAFETY (of the `link_section`): the dynamic loader calls each `.init_array` entry once, on
// the main thread, before `main`, with (argc, argv, envp), which an `extern "C" fn()` ignores.
// What it runs needs nothing of std's runtime: `getenv`, `mmap` and atomics of a static.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
#[used]
#[unsafe(link_section = ".init_array.00101")]
static RESERVE_AT_LOAD: extern "C" fn() = {
    extern "C" fn reserve_at_load() {
        // SAFETY: a NUL-terminated name; the result is null or a NUL-terminated string of the
        // environment, which nothing modifies while load-time constructors run (one thread).
        let sample = unsafe { libc::getenv(c"HEAPTIDE_SAMPLE".as_ptr()) };
        let off = !sample.is_null() && {
            // SAFETY: non-null, so a NUL-terminated string (see above).
            let value = unsafe { CStr::from_ptr(sample) };
            crate::config::says_off(value.to_bytes())
        };
        if off {
            // An operator who switched profiling off keeps even the address space.
            return;
        }
        // A failure is retried, and reported, by the first allocation's initialisation.
        let _ = sampled_arena::reserve_range();
    }
    reserve_at_load
};

impl Heaptide {
    /// The config if sampling is on; initialises on first call. `None` means "use the plain
    /// path", and sets the countdown so the thread does not come back needlessly.
    #[inline]
    fn ready(&self) -> Option<Config> {
        match INIT.load(Ordering::Acquire) {
            ON => {
                self.range.sync();
                // SAFETY: an Acquire load saw ON.
                Some(unsafe { state::published_config() })
            }
            OFF => {
                self.range.rule_out_all();
                COUNTDOWN.with(|c| c.set(u64::MAX));
                None
            }
            // Another thread is initialising: stay on the plain path, come back next time.
            BUSY => None,
            _ => {
                if INIT
                    .compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    self.init();
                    // The allocation that started the profiler is sampled like any other (in
                    // exact mode it must be recorded too).
                    self.sync_filter();
                    if INIT.load(Ordering::Acquire) == ON {
                        // SAFETY: an Acquire load saw ON.
                        return Some(unsafe { state::published_config() });
                    }
                }
                None
            }
        }
    }

    /// Brings this handle's range filter up to date with the profiler's state (a no-op once
    /// done, and while another thread is still initialising).
    #[inline]
    fn sync_filter(&self) {
        match INIT.load(Ordering::Acquire) {
            ON => self.range.sync(),
            OFF => self.range.rule_out_all(),
            _ => {}
        }
    }

    #[cold]
    fn init(&self) {
        state::mark_started();
        state::set_hooks(self.hooks);
        // First, before anything here allocates (reading the environment does): the range must
        // lie above the extents jemalloc maps on its first call.
        let reserved = sampled_arena::reserve_range();
        // Everything initialisation allocates (reading the environment, the dump and HTTP
        // set-up) is the profiler's: never sampled, and it leaves the countdown and generator
        // of this thread untouched, so the allocation that started all this is sampled with
        // the same probability as any other (1 - exp(-size/R)).
        let _scope = ProfilerScope::enter();
        let config = self.config.with_env();
        // SAFETY: we won UNINIT->BUSY; no reader looks before ON/OFF is published below.
        unsafe { state::set_config(config) };
        let state = if config.sampling == Sampling::Off {
            sampled_arena::release_range();
            OFF
        } else {
            match reserved.and_then(|()| sampled_arena::create_arena()) {
                Ok(()) => {
                    (self.hooks.before_on)();
                    ON
                }
                Err(e) => {
                    crate::diag::stderr_line(format_args!("heaptide: {e}; profiling is off"));
                    OFF
                }
            }
        };
        INIT.store(state, Ordering::Release);
        // The signal handler, the exit dump, the HTTP server (`runtime.rs`).
        (self.hooks.started)(state == ON);
    }
}

// === the GlobalAlloc impl ===

/// Charges `size` bytes to the countdown; `true` if no sample point was crossed. Unsigned and
/// stored whatever the outcome, so it compiles to one read-modify-write `sub` on the
/// thread-local and a branch on its borrow. A crossing leaves the countdown wrapped around;
/// the slow path always re-arms it ([`Heaptide::should_sample`]).
#[inline(always)]
fn countdown_allows(size: usize) -> bool {
    COUNTDOWN.with(|c| {
        let (left, crossed) = c.get().overflowing_sub(size as u64);
        c.set(left);
        !crossed
    })
}

// SAFETY: every method returns memory satisfying the layout (plain path: exactly
// tikv_jemallocator's calls; sampled path: a block of the sampled arena aligned to
// `layout.align()` with at least `layout.size()` bytes after the header, or in exact mode a
// tracked mapping of its own, `backend::outside`), returns null on failure, never unwinds, and
// frees/reallocates each pointer with the path it came from (decided by the range test and the
// table of tracked mappings, which are exact for pointers this allocator returned).
unsafe impl GlobalAlloc for Heaptide {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if countdown_allows(layout.size()) {
            // SAFETY: forwarded contract.
            return unsafe { plain::alloc(layout) };
        }
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_slow(layout.size(), layout.align(), self, false) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if countdown_allows(layout.size()) {
            // SAFETY: forwarded contract.
            return unsafe { plain::alloc_zeroed(layout) };
        }
        // SAFETY: forwarded contract.
        unsafe { Self::alloc_slow(layout.size(), layout.align(), self, true) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.range.may_contain(ptr) {
            // SAFETY: not in the range, so it came from the plain path.
            return unsafe { plain::dealloc(ptr, layout) };
        }
        // SAFETY: forwarded contract.
        unsafe { Self::dealloc_slow(ptr, layout.size(), layout.align(), self) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let maybe_sampled = self.range.may_contain(ptr);
        if !maybe_sampled && countdown_allows(new_size) {
            // SAFETY: a plain block, and no sample point crossed.
            return unsafe { plain::realloc(ptr, layout, new_size) };
        }
        // SAFETY: forwarded contract.
        unsafe {
            Self::realloc_slow(
                ptr,
                layout.size(),
                layout.align(),
                new_size,
                self,
                maybe_sampled,
            )
        }
    }
}

/// Plain allocation, zeroed or not.
///
/// # Safety
/// As `GlobalAlloc::alloc`.
unsafe fn plain_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    // SAFETY: forwarded contract.
    unsafe {
        if zeroed {
            plain::alloc_zeroed(layout)
        } else {
            plain::alloc(layout)
        }
    }
}

// The slow paths take the handle after the layout, so their arguments sit in the registers
// `__rust_alloc` and friends received them in: the fast path moves nothing around for them.
impl Heaptide {
    /// A sample point was crossed (or the thread/profiler is not initialised yet).
    #[cold]
    #[inline(never)]
    unsafe fn alloc_slow(size: usize, align: usize, this: &Self, zeroed: bool) -> *mut u8 {
        // SAFETY: the size and alignment of the caller's valid layout.
        let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
        if let Some(decision) = this.should_sample(size) {
            // SAFETY: forwarded contract.
            match unsafe { sample_alloc(&decision, layout, zeroed) } {
                Outcome::Block(p) => return p,
                Outcome::Plain => {}
            }
        }
        // SAFETY: forwarded contract.
        unsafe { plain_alloc(layout, zeroed) }
    }

    /// Called when the countdown ran out for an allocation of `size` bytes: re-arms it, and
    /// says whether (and for which tracking scope) to sample this one.
    #[inline]
    fn should_sample(&self, size: usize) -> Option<Decision> {
        if scope::allocating_for_profiler() {
            // The profiler's own allocation: never sampled, and the program's countdown and
            // generator stay as they were (the scope puts the countdown back when it ends; a
            // profiler thread has none). Parked at the maximum, the rest of the scope's
            // allocations take the fast path.
            COUNTDOWN.with(|c| c.set(u64::MAX));
            return None;
        }
        // The crossing left the countdown wrapped around. 0 brings the thread back on its next
        // allocation (still initialising, exact mode, a tracked thread); the arms below set
        // anything else (off: never; sampling: the next distance).
        COUNTDOWN.with(|c| c.set(0));
        let config = self.ready()?;
        // A thread tracked by `heaptide::testing` keeps its countdown at 0 and records all.
        let scope = thread::tracking_scope();
        // Threads started inside an all-threads `heaptide::testing` scope join it here.
        #[cfg(not(loom))]
        let scope = thread::inherit(scope);
        if scope != 0 {
            return Some(Decision { config, scope });
        }
        let crossed = match config.sampling {
            Sampling::MeanBytes(mean) => thread::rearm_countdown(mean, config.seed, size),
            Sampling::Exact | Sampling::Off => true,
        };
        crossed.then_some(Decision { config, scope: 0 })
    }

    /// The free of a block the handle's filter could not rule out: a sampled block, or any
    /// block while the handle has not synced its filter yet.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_slow(ptr: *mut u8, size: usize, align: usize, this: &Self) {
        // SAFETY: the size and alignment of the caller's valid layout.
        let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
        this.sync_filter();
        if sampled_arena::contains(ptr) {
            // SAFETY: in the range, so it is a sampled block of this layout.
            unsafe { free_sampled(ptr, layout) }
        } else if outside::contains(ptr) {
            // SAFETY: a live tracked block outside the range.
            unsafe { free_outside(ptr) }
        } else {
            // SAFETY: not in the range, so it came from the plain path.
            unsafe { plain::dealloc(ptr, layout) }
        }
    }

    /// A resize that crossed a sample point, or of a block the handle's filter could not rule
    /// out (`maybe_sampled`).
    #[cold]
    #[inline(never)]
    unsafe fn realloc_slow(
        ptr: *mut u8,
        size: usize,
        align: usize,
        new_size: usize,
        this: &Self,
        maybe_sampled: bool,
    ) -> *mut u8 {
        // SAFETY: the size and alignment of the caller's valid layout.
        let layout = unsafe { Layout::from_size_align_unchecked(size, align) };
        this.sync_filter();
        if maybe_sampled && outside::contains(ptr) {
            // SAFETY: a live tracked block of `layout`; `new_size > 0`.
            return unsafe { realloc_by_copy(this, ptr, layout, new_size) };
        }
        let old_sampled = maybe_sampled && sampled_arena::contains(ptr);
        // A block the filter ruled out crossed a sample point in `realloc` (a crossing leaves
        // the countdown as it was); any other block charges the countdown here.
        let fires = !maybe_sampled || !countdown_allows(new_size);
        let decision = if fires {
            this.should_sample(new_size)
        } else {
            None
        };
        // SAFETY: for the whole match, `ptr` is a live block of `layout`, sampled iff `old_sampled`;
        // `new_size` is non-zero and fits `align` (GlobalAlloc::realloc's contract).
        unsafe {
            match (old_sampled, decision) {
                (false, None) => plain::realloc(ptr, layout, new_size),
                (false, Some(decision)) => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, align);
                    match sample_alloc(&decision, new_layout, false) {
                        Outcome::Block(p) => {
                            ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                            plain::dealloc(ptr, layout);
                            p
                        }
                        Outcome::Plain => plain::realloc(ptr, layout, new_size),
                    }
                }
                (true, None) => retire_realloc(ptr, layout, new_size),
                (true, Some(decision)) => {
                    match resample_realloc(&decision, ptr, layout, new_size) {
                        Outcome::Block(p) => p,
                        // Exact mode records every byte: a new block, tracked outside the range
                        // if the arena cannot hold it.
                        Outcome::Plain if decision.exact() => {
                            realloc_by_copy(this, ptr, layout, new_size)
                        }
                        Outcome::Plain => move_out_of_range(ptr, layout, new_size),
                    }
                }
            }
        }
    }
}

/// Resizes a block of the sampled arena that this resize does not sample: the block stays in
/// the arena, where jemalloc can grow it in place as it would an ordinary one, but no longer
/// stands for a sample (its header says [`sampled_arena::RETIRED`]). The old sample's death is
/// recorded; later frees and resizes of the block find it in the range and see that it is
/// retired. Moving it out of the range instead would copy it on every such resize, which bare
/// jemalloc often avoids (a `Vec` that was sampled once and keeps growing).
///
/// Falls back to [`move_out_of_range`] when the death cannot be queued or the arena cannot
/// serve the new size.
///
/// # Safety
/// `ptr` is a live block of the sampled arena, of `layout`; `new_size > 0`.
unsafe fn retire_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: per the caller, a block of the arena allocated with this alignment; its header is
    // initialised.
    let old_id = unsafe { (*sampled_arena::header(ptr, layout.align())).id };
    // Room for the old sample's death (none needed if the block was retired already).
    let mut room = None;
    if old_id != sampled_arena::RETIRED {
        let secured = {
            let _scope = ProfilerScope::enter();
            Room::secure(
                thread::slot(),
                1,
                state::config().sampling == Sampling::Exact,
            )
        };
        let Some(secured) = secured else {
            // SAFETY: forwarded contract.
            return unsafe { move_out_of_range(ptr, layout, new_size) };
        };
        room = Some(secured);
    }
    let cache = thread::cache();
    // SAFETY: `ptr` is a live block of the arena; `new_size > 0`.
    let resized = unsafe {
        sampled_arena::realloc(
            ptr,
            layout.size(),
            layout.align(),
            new_size,
            sampled_arena::RETIRED,
            cache,
        )
    };
    match resized {
        Resized::Block(p) | Resized::LeftRange(p) => {
            if let Some(room) = &mut room {
                room.push_death(old_id, now_ns());
            }
            p
        }
        Resized::Null => {
            drop(room);
            // SAFETY: the old block is untouched by a failed resize.
            unsafe { move_out_of_range(ptr, layout, new_size) }
        }
    }
}

/// Resizes by allocating through the handle (recorded like any allocation), copying and freeing
/// the old block through the handle (its death recorded). For exact mode's blocks the sampled
/// arena cannot hold.
///
/// # Safety
/// `ptr` is a live block of `layout` from this handle; `new_size > 0`.
unsafe fn realloc_by_copy(
    this: &Heaptide,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: `new_size > 0` and the alignment is that of a valid layout; `ptr` is live, of
    // `layout`, and not used after the copy.
    unsafe {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let p = this.alloc(new_layout);
        if !p.is_null() {
            ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
            this.dealloc(ptr, layout);
        }
        p
    }
}

/// Frees a tracked block outside the range: records its death, then unmaps it.
///
/// # Safety
/// `ptr` is a live tracked block ([`outside::contains`]); nothing uses it afterwards.
#[cold]
#[inline(never)]
unsafe fn free_outside(ptr: *mut u8) {
    // SAFETY: forwarded contract.
    let id = unsafe { outside::header(ptr) }.id;
    let room = {
        let _scope = ProfilerScope::enter();
        Room::secure(thread::slot(), 1, true)
    };
    if let Some(mut room) = room {
        room.push(&Record::Free {
            id,
            time_ns: now_ns(),
        });
    }
    // SAFETY: forwarded contract. The death is queued first; ids, not addresses, pair it.
    unsafe { outside::free(ptr) };
}

/// A sampled block becomes an ordinary one: allocate plain, copy, free the sampled block.
///
/// # Safety
/// `ptr` is a live sampled block of `layout`; `new_size > 0`.
unsafe fn move_out_of_range(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: `new_size > 0` and the alignment is that of a valid layout.
    unsafe {
        let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
        let p = plain::alloc(new_layout);
        if p.is_null() {
            return p;
        }
        ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
        free_sampled(ptr, layout);
        p
    }
}

/// A sample to take: the settings, and the tracking scope it belongs to (0: none).
#[derive(Clone, Copy)]
struct Decision {
    config: Config,
    scope: u64,
}

impl Decision {
    /// Exact accounting (never drop): exact mode, or a tracked allocation.
    fn exact(&self) -> bool {
        self.config.sampling == Sampling::Exact || self.scope != 0
    }
}

/// What the sampling path decided.
enum Outcome {
    /// A sampled block, recorded.
    Block(*mut u8),
    /// Not sampled after all (no room in the ring and no memory for an overflow node, or the
    /// arena refused the block or had no room for it): use the plain path (which returns null
    /// if memory is really out).
    Plain,
}

/// Takes a sample of a fresh allocation.
///
/// # Safety
/// As `GlobalAlloc::alloc`; sampling is on (the arena exists).
#[inline(never)]
unsafe fn sample_alloc(decision: &Decision, layout: Layout, zeroed: bool) -> Outcome {
    let mut frames = Frames::new();
    let (mut room, id) = {
        let _scope = ProfilerScope::enter();
        let Some(room) = Room::secure(thread::slot(), 1, decision.exact()) else {
            return Outcome::Plain;
        };
        let id = room.next_id();
        drain::ensure_started();
        capture(&mut frames, decision.config.depth + OWN_FRAMES);
        (room, id)
    };
    // Outside the scope: the block is the user's memory, not the profiler's.
    let cache = thread::cache();
    // SAFETY: sampling is on, so the arena exists; the layout is valid and non-zero.
    let got = unsafe { sampled_arena::alloc(layout.size(), layout.align(), zeroed, id, cache) };
    let block = match got {
        Sampled::Block(p) => p,
        // Exact mode records every byte: a block the arena cannot hold (larger than what is
        // left of its range) is tracked outside it. Fresh mappings are zeroed.
        _ if decision.exact() => outside::alloc(
            layout.size(),
            layout.align(),
            id,
            sampled_arena::range_end(),
        ),
        _ => ptr::null_mut(),
    };
    if block.is_null() {
        // The arena could not serve it (its range used up, or out of memory): the plain path
        // gets its chance; this sample is lost, and counted (a refusal in sampled mode is no
        // loss: the block was not sampled after all, the process is memoryless).
        if decision.exact() || matches!(got, Sampled::Null) {
            queues::DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        return Outcome::Plain;
    }
    room.push(&Record::Alloc {
        id,
        time_ns: now_ns(),
        size: layout.size() as u64,
        scope: decision.scope,
        label: thread::label(),
        frames: frames.as_slice(),
    });
    Outcome::Block(block)
}

/// Resizes a sampled block into another sampled block (in place when jemalloc can): the old
/// sample dies and a new one is born, both recorded.
///
/// # Safety
/// `ptr` is a live sampled block of `layout`; `new_size > 0`.
unsafe fn resample_realloc(
    decision: &Decision,
    ptr: *mut u8,
    layout: Layout,
    new_size: usize,
) -> Outcome {
    let mut frames = Frames::new();
    let (mut room, id) = {
        let _scope = ProfilerScope::enter();
        let Some(room) = Room::secure(thread::slot(), 2, decision.exact()) else {
            return Outcome::Plain;
        };
        let id = room.next_id();
        capture(&mut frames, decision.config.depth + OWN_FRAMES);
        (room, id)
    };
    // SAFETY: `ptr` is a live sampled block allocated with this alignment.
    let old_id = unsafe { (*sampled_arena::header(ptr, layout.align())).id };
    let cache = thread::cache();
    // SAFETY: as above; `new_size > 0`.
    match unsafe { sampled_arena::realloc(ptr, layout.size(), layout.align(), new_size, id, cache) }
    {
        Resized::Block(p) => {
            let now = now_ns();
            room.push_death(old_id, now);
            room.push(&Record::Alloc {
                id,
                time_ns: now,
                size: new_size as u64,
                scope: decision.scope,
                label: thread::label(),
                frames: frames.as_slice(),
            });
            Outcome::Block(p)
        }
        Resized::Null => {
            // The arena could not serve it (its range used up, or out of memory): the caller
            // moves the block to an ordinary one (sampled mode: this sample is lost, and
            // counted) or to one tracked outside the range (exact mode).
            if !decision.exact() {
                queues::DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Plain
        }
        Resized::LeftRange(p) => {
            // The old sample died; the bytes now live in an ordinary block.
            room.push_death(old_id, now_ns());
            Outcome::Block(p)
        }
    }
}

/// Frees a sampled block: records the sample's death, then gives the block to jemalloc; if the
/// event cannot be queued, the block waits on the deferred stack until the drain records it.
///
/// # Safety
/// `ptr` is a live sampled block of `layout`.
#[cold]
#[inline(never)]
unsafe fn free_sampled(ptr: *mut u8, layout: Layout) {
    // SAFETY: per the caller, a sampled block allocated with `layout.align()`.
    let header = unsafe { sampled_arena::header(ptr, layout.align()) };
    // SAFETY: the header is ours and initialised.
    let id = unsafe { (*header).id };
    if id == sampled_arena::RETIRED {
        // No sample to record: just give the block back.
        // SAFETY: a live block of the arena of this layout, not used after this.
        unsafe { sampled_arena::free(header, layout.size(), layout.align(), thread::cache()) };
        return;
    }
    let now = now_ns();
    if let Some(slot) = thread::slot() {
        // A full ring: empty it here if nobody holds the drain lock, as the allocation path does.
        let death = Record::Free { id, time_ns: now };
        let queued = push_to_ring(slot, &death)
            || ({
                let _scope = ProfilerScope::enter();
                drain::try_help()
            } && push_to_ring(slot, &death));
        if queued {
            // SAFETY: a live sampled block of this layout, not used after this.
            unsafe { sampled_arena::free(header, layout.size(), layout.align(), thread::cache()) };
            return;
        }
    }
    // SAFETY: the block is dead to the user; it becomes a node of the deferred stack, and is
    // only released by the drain after it has recorded the free.
    unsafe {
        (*header).freed_ns = now;
        (*header).size = layout.size() as u64;
        drain::defer(header);
    }
}
