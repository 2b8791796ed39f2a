//! [`track`]: run a closure with every allocation of its thread recorded; [`Tracking`]: what
//! it left behind.

use rustc_hash::FxHashMap as HashMap;
use std::fmt;

use crate::config::ByteSize;
use crate::drain;
use crate::drain::scope::{Held, Scope};
use crate::report::Frame;
use crate::report::text::{callers_shown, count};
use crate::sample::scope::{self, ProfilerScope};
use crate::sample::thread;
use crate::symbolize::short_frame;
use crate::symbolize::{self, Symbols};
use crate::sync::{AtomicU64, Condvar, Mutex, Ordering};

/// Scope ids; 0 means "not tracked".
static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

/// Whether an all-threads scope runs (one at a time; the next waits on [`ALL_THREADS_FREE`]).
static ALL_THREADS_BUSY: Mutex<bool> = Mutex::new(false);
static ALL_THREADS_FREE: Condvar = Condvar::new();

/// What a tracked closure allocated, and what of it is still live.
///
/// Exact figures (every allocation of the tracked thread was recorded). Sites are symbolized
/// user stacks, innermost frame first, with heaptide's own frames removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tracking {
    /// Bytes allocated by the closure (including those freed since).
    pub alloc_bytes: u64,
    /// Allocations made by the closure.
    pub alloc_count: u64,
    /// Bytes the closure allocated that were still live when it returned.
    pub leaked_bytes: u64,
    /// Blocks the closure allocated that were still live when it returned.
    pub leaked_blocks: u64,
    /// The most bytes of the closure's allocations live at any one moment.
    pub peak_bytes: u64,
    /// Where the leaked blocks were allocated, most bytes first.
    pub leaks: Vec<SiteBytes>,
    /// What each raw stack held at the peak; symbolized only when asked ([`Tracking::at_peak`]):
    /// symbolizing is most of the cost of a tracked run that does not fail.
    peak_stacks: Vec<(Box<[usize]>, Held)>,
}

/// Bytes and blocks held by one call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteBytes {
    /// The stack, innermost first.
    pub frames: Vec<Frame>,
    /// Bytes held.
    pub bytes: u64,
    /// Blocks held.
    pub blocks: u64,
}

impl SiteBytes {
    /// The innermost frame that is not allocation plumbing (`alloc::`, `core::`, `std::`, ...):
    /// usually the function to blame.
    pub fn blamed_frame(&self) -> Option<&Frame> {
        self.useful_frames().first()
    }

    /// The blamed frame and its callers (innermost useful frame first).
    pub fn useful_frames(&self) -> &[Frame] {
        crate::symbolize::from_blamed(&self.frames)
    }

    /// Whether any frame's function name contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.frames.iter().any(|f| f.function.contains(needle))
    }
}

impl Tracking {
    /// What each call site held at the moment of the peak, most bytes first (symbolized now).
    pub fn at_peak(&self) -> Vec<SiteBytes> {
        let inner = {
            let _inside = ProfilerScope::enter();
            let depth = crate::state::config().depth;
            let mut stacks: HashMap<u32, Box<[usize]>> = HashMap::default();
            let mut held: HashMap<u32, Held> = HashMap::default();
            for (i, (stack, h)) in self.peak_stacks.iter().enumerate() {
                stacks.insert(i as u32, stack.clone());
                held.insert(i as u32, *h);
            }
            let mut guard = symbolize::lock();
            let sites = symbolized(
                guard.get_or_insert_with(Symbols::default),
                &stacks,
                &held,
                depth,
            );
            drop(guard);
            drop((stacks, held));
            sites
        };
        scope::hand_out(inner)
    }

    /// Whether anything the closure allocated is still live.
    pub fn leaked(&self) -> bool {
        self.leaked_blocks > 0
    }

    /// The same tracking without the leak sites whose stack has a frame for which `ignore`
    /// returns true (the leaked totals are recomputed). For allocations that are meant to
    /// outlive the closure:
    ///
    /// ```no_run
    /// # #[global_allocator]
    /// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
    /// # fn fill_global_cache() {}
    /// let t = heaptide::testing::track(fill_global_cache)
    ///     .ignoring(|frame| frame.function.contains("fill_global_cache"));
    /// assert!(!t.leaked(), "{t}");
    /// ```
    pub fn ignoring(self, ignore: impl Fn(&Frame) -> bool) -> Tracking {
        self.ignoring_stacks(|frames| frames.iter().any(&ignore))
    }

    /// The same tracking without the leak sites whose whole stack (innermost frame first)
    /// `ignore` matches (the leaked totals are recomputed): a filter that can look at the
    /// order of frames, e.g. "allocated by `serde_json` when called from `load_config`".
    ///
    /// ```no_run
    /// # #[global_allocator]
    /// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
    /// # fn load_config() {}
    /// let t = heaptide::testing::track(load_config).ignoring_stacks(|frames| {
    ///     let at = |name: &str| frames.iter().position(|f| f.function.contains(name));
    ///     matches!((at("serde_json::"), at("load_config")), (Some(a), Some(b)) if a < b)
    /// });
    /// assert!(!t.leaked(), "{t}");
    /// ```
    pub fn ignoring_stacks(mut self, ignore: impl Fn(&[Frame]) -> bool) -> Tracking {
        self.leaks.retain(|s| !ignore(&s.frames));
        self.leaked_bytes = self.leaks.iter().map(|s| s.bytes).sum();
        self.leaked_blocks = self.leaks.iter().map(|s| s.blocks).sum();
        self
    }
}

/// Sites shown in a message, and frames per site.
const SHOWN_SITES: usize = 5;
const SHOWN_FRAMES: usize = 5;

/// Writes sites as a person reads them: the blamed frame, then its callers.
pub(crate) fn write_sites(f: &mut impl fmt::Write, sites: &[SiteBytes]) -> fmt::Result {
    for site in sites.iter().take(SHOWN_SITES) {
        let blocks = count(site.blocks, "block", "blocks");
        // heaptide's own callers (the assertion running the closure) say nothing to the reader.
        let frames: Vec<Frame> = site
            .useful_frames()
            .iter()
            .filter(|f| !f.function.starts_with("heaptide::testing::"))
            .cloned()
            .collect();
        match frames.first() {
            Some(top) => writeln!(
                f,
                "  {} in {blocks} allocated at {}",
                ByteSize(site.bytes),
                short_frame(top)
            )?,
            None => writeln!(
                f,
                "  {} in {blocks} allocated at <unknown>",
                ByteSize(site.bytes),
            )?,
        }
        let shown = callers_shown(&frames).max(SHOWN_FRAMES - 1);
        for caller in frames.iter().skip(1).take(shown) {
            writeln!(f, "      <- {}", short_frame(caller))?;
        }
    }
    if sites.len() > SHOWN_SITES {
        writeln!(f, "  ... and {} more sites", sites.len() - SHOWN_SITES)?;
    }
    Ok(())
}

impl fmt::Display for Tracking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tracked: {} allocated in {}, peak {} live",
            ByteSize(self.alloc_bytes),
            count(self.alloc_count, "allocation", "allocations"),
            ByteSize(self.peak_bytes)
        )?;
        if self.leaked() {
            writeln!(
                f,
                "leaked: {} in {} still live, by site:",
                ByteSize(self.leaked_bytes),
                count(self.leaked_blocks, "block", "blocks")
            )?;
            write_sites(f, &self.leaks)?;
        } else {
            writeln!(f, "leaked: nothing")?;
        }
        Ok(())
    }
}

/// Runs `f` with every allocation of the calling thread tracked, drops what it returns, and
/// reports what it allocated, its peak, and what it left live (with the call sites). See the
/// [module docs](crate::testing) for threads, filters and limits.
///
/// # Panics
/// If heaptide is not the global allocator or profiling is off, or if called inside another
/// `track` on the same thread. A panic in `f` is passed on (after tracking ends).
pub fn track<R>(f: impl FnOnce() -> R) -> Tracking {
    let scope = begin();
    {
        let _end = EndScope(scope);
        drop(f());
    }
    finish(scope, None).0
}

/// Runs `f` untracked inside a tracked closure: what it allocates is not recorded (its frees of
/// tracked blocks still are). For allocations meant to outlive the tracked closure, like a
/// global cache filled on purpose. Outside a tracked closure it simply runs `f`.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// use std::sync::Mutex;
/// static REGISTRY: Mutex<Vec<String>> = Mutex::new(Vec::new());
///
/// heaptide::testing::assert_no_leaks(|| {
///     let name = format!("worker-{}", 7); // tracked, freed below
///     heaptide::testing::untracked(|| REGISTRY.lock().unwrap().push(name.clone()));
/// });
/// ```
pub fn untracked<R>(f: impl FnOnce() -> R) -> R {
    let scope = thread::tracking_scope();
    if scope == 0 {
        return f();
    }
    let config = crate::state::config();
    thread::set_tracking_scope(0, config.sampling, config.seed);
    struct Resume(u64);
    impl Drop for Resume {
        fn drop(&mut self) {
            let config = crate::state::config();
            thread::set_tracking_scope(self.0, config.sampling, config.seed);
        }
    }
    let _resume = Resume(scope);
    f()
}

/// Starts a scope on this thread and returns its id.
pub(crate) fn begin() -> u64 {
    if !crate::state::is_on() {
        panic!(
            "heaptide::testing needs heaptide as the global allocator of this test binary, with \
             profiling on: add `#[global_allocator] static ALLOC: heaptide::Heaptide = \
             heaptide::Heaptide::new();` and do not set HEAPTIDE_SAMPLE=off"
        );
    }
    let scope = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
    let config = crate::state::config();
    let previous = thread::set_tracking_scope(scope, config.sampling, config.seed);
    if previous != 0 {
        // A thread started inside an all-threads scope may track a closure of its own: that
        // closure's allocations are its own scope's.
        if !thread::forget_adopted(previous) {
            thread::set_tracking_scope(previous, config.sampling, config.seed);
            panic!("heaptide::testing: track() cannot be nested on one thread");
        }
    }
    scope
}

/// Starts a scope on this thread that threads starting from now on join (one such scope at a
/// time in the process: waits for the running one to end). Ended by [`EndScope`].
pub(crate) fn begin_all_threads() -> u64 {
    {
        let mut busy = ALL_THREADS_BUSY.lock();
        while *busy {
            busy = ALL_THREADS_FREE.wait(busy);
        }
        *busy = true;
    }
    let scope = std::panic::catch_unwind(begin).unwrap_or_else(|panic| {
        end_all_threads();
        std::panic::resume_unwind(panic)
    });
    thread::set_all_threads_scope(scope);
    scope
}

/// Ends the all-threads scope: threads that joined it leave it at their next allocation.
fn end_all_threads() {
    thread::set_all_threads_scope(0);
    let mut busy = ALL_THREADS_BUSY.lock();
    *busy = false;
    ALL_THREADS_FREE.notify_one();
}

/// Ends this thread's scope when dropped. When the tracked closure panics, the scope's record
/// is thrown away too (nobody will ask for it).
pub(crate) struct EndScope(pub(crate) u64);

impl Drop for EndScope {
    fn drop(&mut self) {
        let config = crate::state::config();
        thread::set_tracking_scope(0, config.sampling, config.seed);
        if thread::all_threads_scope() == self.0 {
            end_all_threads();
        }
        if std::thread::panicking() {
            drop(drain::with_flushed(|agg| agg.take_scope(self.0)));
        }
    }
}

/// A scope's live figures now, by raw site, without ending it. The map is profiler memory
/// (allocated in the profiler scope, so the tracked thread does not record it): drop it with
/// `scope::drop_in_scope`.
pub(crate) fn live_now(scope: u64) -> HashMap<u32, Held> {
    drain::with_flushed(|agg| agg.scope(scope).map(|s| s.live.clone()).unwrap_or_default())
}

/// A scope's live bytes now, without ending it.
pub(crate) fn live_bytes_now(scope: u64) -> u64 {
    drain::with_flushed(|agg| agg.scope(scope).map_or(0, |s| s.live_total().bytes))
}

/// Ends the record of an ended scope and builds its [`Tracking`]. With `mid` (the scope's
/// live figures at an earlier moment, from [`live_now`]), also the sites whose live bytes grew
/// since then, with the growth.
pub(crate) fn finish(scope: u64, mid: Option<&HashMap<u32, Held>>) -> (Tracking, Vec<SiteBytes>) {
    let (record, stacks) = drain::with_flushed(|agg| {
        let Some(mut record) = agg.take_scope(scope) else {
            return (None, HashMap::default());
        };
        // The stacks a `Tracking` can show: sites live at the end (leaks, growth), at `mid`
        // (growth is counted by user stack) and holding memory at the peak. Copying only
        // those, rather than one per site the scope ever allocated at, is most of what ending
        // a busy scope costs.
        let (peak_bytes, at_peak) = record.peak();
        let mut stacks: HashMap<u32, Box<[usize]>> = HashMap::default();
        let at_mid = mid.into_iter().flat_map(|m| m.keys());
        for &site in record.live.keys().chain(at_peak.keys()).chain(at_mid) {
            stacks.entry(site).or_insert_with(|| {
                agg.frames_of(site)
                    .map_or_else(Box::default, |f| f[..].into())
            });
        }
        (Some((record, (peak_bytes, at_peak))), stacks)
    });
    let inner = {
        let _inside = ProfilerScope::enter();
        let out = match record {
            Some((record, peak)) => build(&record, peak, &stacks, mid),
            None => (Tracking::default(), Vec::new()),
        };
        drop(stacks);
        out
    };
    scope::hand_out(inner)
}

/// Symbolizes a scope's record and its peak (`Scope::peak`) into a [`Tracking`] (and the
/// growth since `mid`). Runs in the profiler scope.
fn build(
    record: &Scope,
    (peak_bytes, at_peak): (u64, HashMap<u32, Held>),
    stacks: &HashMap<u32, Box<[usize]>>,
    mid: Option<&HashMap<u32, Held>>,
) -> (Tracking, Vec<SiteBytes>) {
    let depth = crate::state::config().depth;
    let peak_stacks = at_peak
        .iter()
        .map(|(site, h)| (stacks.get(site).cloned().unwrap_or_default(), *h))
        .collect();
    let live = record.live_total();
    let mut guard = symbolize::lock();
    let symbols = guard.get_or_insert_with(Symbols::default);
    let leaks = symbolized(symbols, stacks, &record.live, depth);
    let growth = match mid {
        Some(mid) => {
            // By the user's stack, not the raw one: the same closure called from two lines of
            // the assertion is one site, and a cache that evicts entries made at one raw stack
            // for entries made at another did not grow.
            let now = merged(symbols, stacks, &record.live, depth);
            let then = merged(symbols, stacks, mid, depth);
            let grown: HashMap<Vec<u32>, Held> = now
                .into_iter()
                .filter_map(|(key, now)| {
                    let then = then.get(&key).copied().unwrap_or_default();
                    (now.bytes > then.bytes).then(|| {
                        let held = Held {
                            bytes: now.bytes - then.bytes,
                            blocks: now.blocks.saturating_sub(then.blocks).max(1),
                        };
                        (key, held)
                    })
                })
                .collect();
            to_sites(symbols, grown)
        }
        None => Vec::new(),
    };
    let tracking = Tracking {
        alloc_bytes: record.alloc_bytes,
        alloc_count: record.alloc_count,
        leaked_bytes: live.bytes,
        leaked_blocks: live.blocks,
        peak_bytes,
        leaks,
        peak_stacks,
    };
    (tracking, growth)
}

/// Raw sites' holdings as symbolized sites, merged by user stack, most bytes first.
pub(crate) fn symbolized(
    symbols: &mut Symbols,
    stacks: &HashMap<u32, Box<[usize]>>,
    held: &HashMap<u32, Held>,
    depth: usize,
) -> Vec<SiteBytes> {
    let merged = merged(symbols, stacks, held, depth);
    to_sites(symbols, merged)
}

/// Raw sites' holdings merged by user stack: the symbolized stack without heaptide's own
/// frames, wherever they are (the assertion's frames between the closure and the test).
fn merged(
    symbols: &mut Symbols,
    stacks: &HashMap<u32, Box<[usize]>>,
    held: &HashMap<u32, Held>,
    depth: usize,
) -> HashMap<Vec<u32>, Held> {
    let mut merged: HashMap<Vec<u32>, Held> = HashMap::default();
    for (site, h) in held {
        let raw = stacks.get(site).map_or(&[][..], |s| &s[..]);
        let mut key = crate::report::user_stack(symbols, raw, depth);
        key.retain(|&id| !symbols.is_own(id));
        let m = merged.entry(key).or_default();
        m.bytes += h.bytes;
        m.blocks += h.blocks;
    }
    merged
}

/// Merged holdings as sites, most bytes first.
fn to_sites(symbols: &Symbols, merged: HashMap<Vec<u32>, Held>) -> Vec<SiteBytes> {
    let mut out: Vec<SiteBytes> = merged
        .into_iter()
        .filter(|(_, h)| h.blocks > 0)
        .map(|(key, h)| SiteBytes {
            frames: key.iter().map(|&id| symbols.frame(id).clone()).collect(),
            bytes: h.bytes,
            blocks: h.blocks,
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(b.blocks.cmp(&a.blocks)));
    out
}
