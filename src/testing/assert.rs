//! The assertions: no leaks, no growth per iteration, peak under a limit; and [`Options`], which
//! they all take. Each panics with a message that names the call sites (blamed frame first,
//! then its callers, with file:line).

use std::fmt::{self, Write};
use std::sync::{Arc, OnceLock};

use super::tracking::{self, EndScope, SiteBytes, Tracking, write_sites};
use crate::config::{ByteSize, ParseError, complain, getenv, parse_size};
use crate::report::Frame;
use crate::report::text::count;

/// The environment variable that sets the default per-site leak limit of every assertion
/// (a byte size: `0`, `4KiB`, `1MiB`; default 0: any leak fails).
pub const LEAK_LIMIT_VAR: &str = "HEAPTIDE_TEST_LEAK_LIMIT";

/// A predicate over a whole stack (innermost frame first).
type StackFilter = Arc<dyn Fn(&[Frame]) -> bool + Send + Sync>;

/// How the assertions track and judge, for the cases the plain functions do not cover:
/// threads started inside the closure, a per-site leak allowance, known allocations to ignore,
/// a growth tolerance. Start from [`options()`]:
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// # fn serve_one_request() {}
/// heaptide::testing::options()
///     .all_threads() // a runtime's worker threads started inside the closure
///     .leak_limit_per_site(4096) // a site may keep up to 4 KiB
///     .ignore_stacks(|frames| frames.iter().any(|f| f.function.contains("tracing_subscriber")))
///     .assert_no_leaks(serve_one_request);
/// ```
#[derive(Clone)]
pub struct Options {
    all_threads: bool,
    leak_limit_per_site: u64,
    ignore: Vec<StackFilter>,
    growth_tolerance: u64,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("all_threads", &self.all_threads)
            .field("leak_limit_per_site", &self.leak_limit_per_site)
            .field("stack_filters", &self.ignore.len())
            .field("growth_tolerance", &self.growth_tolerance)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Options {
        options()
    }
}

/// The default options: the calling thread only, no leak allowed (or the limit in
/// `HEAPTIDE_TEST_LEAK_LIMIT`), no filter, no growth tolerance.
pub fn options() -> Options {
    Options {
        all_threads: false,
        leak_limit_per_site: default_leak_limit(),
        ignore: Vec::new(),
        growth_tolerance: 0,
    }
}

/// `HEAPTIDE_TEST_LEAK_LIMIT`, read once; a bad value gives one stderr line and 0.
fn default_leak_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| read_leak_limit(getenv(c"HEAPTIDE_TEST_LEAK_LIMIT")))
}

fn read_leak_limit(value: Option<&str>) -> u64 {
    match value.map(parse_size) {
        None => 0,
        Some(Ok(limit)) => limit,
        Some(Err(ParseError)) => {
            complain(
                LEAK_LIMIT_VAR,
                value.unwrap_or_default(),
                "a byte size such as 0, 4KiB or 1MiB",
                &"0 (any leak fails)",
            );
            0
        }
    }
}

impl Options {
    /// Also track the threads that start while the closure runs (a runtime's worker threads,
    /// `std::thread::spawn` inside the closure): their allocations count as the closure's,
    /// from their first allocation until the closure returns. Threads that existed before
    /// are not tracked.
    ///
    /// Process-wide while it runs: a thread another test starts meanwhile is tracked too, and
    /// only one such closure runs at a time (others wait). Run tests that use it in a test
    /// binary of their own, or with `--test-threads=1`.
    pub fn all_threads(mut self) -> Options {
        self.all_threads = true;
        self
    }

    /// Lets each call site keep up to `bytes` live when the closure returns
    /// ([`Options::assert_no_leaks`] fails only for a site over it; 0, the default unless
    /// `HEAPTIDE_TEST_LEAK_LIMIT` says otherwise, allows nothing). Sites are the user's
    /// stacks: the blamed frame and its callers.
    pub fn leak_limit_per_site(mut self, bytes: u64) -> Options {
        self.leak_limit_per_site = bytes;
        self
    }

    /// Ignores the leak sites whose whole stack (innermost frame first) `ignore` matches:
    /// known allocations, like a logging framework's buffers or a cache filled on purpose.
    /// May be given several times (a site is ignored if any matches). Applies to leaks
    /// ([`Options::assert_no_leaks`], [`Options::track`]).
    pub fn ignore_stacks(
        mut self,
        ignore: impl Fn(&[Frame]) -> bool + Send + Sync + 'static,
    ) -> Options {
        self.ignore.push(Arc::new(ignore));
        self
    }

    /// Lets [`Options::assert_no_growth`] accept a rise of up to `bytes` of the floor of the
    /// last quarter of the calls over the ceiling of the second quarter (default 0).
    pub fn growth_tolerance(mut self, bytes: u64) -> Options {
        self.growth_tolerance = bytes;
        self
    }

    /// [`track`](super::track) with these options (the leak sites the filters match are left
    /// out).
    pub fn track<R>(&self, f: impl FnOnce() -> R) -> Tracking {
        let scope = self.begin();
        {
            let _end = EndScope(scope);
            drop(f());
        }
        let t = tracking::finish(scope, None).0;
        self.filtered(t)
    }

    /// [`assert_no_leaks`] with these options.
    #[track_caller]
    pub fn assert_no_leaks<R>(&self, f: impl FnOnce() -> R) {
        let t = self.track(f);
        let over: Vec<SiteBytes> = t
            .leaks
            .iter()
            .filter(|s| s.bytes > self.leak_limit_per_site)
            .cloned()
            .collect();
        if !over.is_empty() {
            panic!("{}", leak_message(&t, &over, self.leak_limit_per_site));
        }
    }

    /// [`assert_peak_below`] with these options.
    #[track_caller]
    pub fn assert_peak_below<R>(&self, limit: u64, f: impl FnOnce() -> R) {
        let t = self.track(f);
        if t.peak_bytes >= limit {
            let mut m = String::new();
            let _ = writeln!(
                m,
                "heaptide: peak: {} ({} B) live at the peak, not below the limit of {} ({} B); \
                 held at the peak:",
                ByteSize(t.peak_bytes),
                crate::report::text::group(t.peak_bytes),
                ByteSize(limit),
                crate::report::text::group(limit),
            );
            let _ = write_sites(&mut m, &t.at_peak());
            let _ = writeln!(
                m,
                "  To fix: hold less at once (stream, reuse a buffer, free before the next \
                 allocation), or raise the limit if this peak is intended."
            );
            panic!("{m}");
        }
    }

    /// [`assert_no_growth`] with these options.
    #[track_caller]
    pub fn assert_no_growth(&self, warmup: usize, iterations: usize, mut f: impl FnMut()) {
        assert!(
            iterations >= 8,
            "heaptide::testing::assert_no_growth needs at least 8 iterations (it compares \
             quarters and eighths of the calls)"
        );
        let (q2_start, mid_at, q4_start) =
            (iterations / 4, iterations / 2, iterations - iterations / 4);
        // The warm-up is tracked too (and not judged): what it allocates and the measured calls
        // free (a cache evicting what the warm-up filled it with) counts as freed.
        let scope = self.begin();
        let mut live = Vec::with_capacity(iterations);
        let mid = {
            let _end = EndScope(scope);
            for _ in 0..warmup {
                f();
            }
            let mut mid = None;
            for call in 1..=iterations {
                f();
                live.push(tracking::live_bytes_now(scope));
                if call == mid_at {
                    mid = Some(tracking::live_now(scope));
                }
            }
            mid.unwrap_or_default()
        };
        let (t, growth) = tracking::finish(scope, Some(&mid));
        crate::sample::scope::drop_in_scope(mid);
        let ceiling = live[q2_start..mid_at].iter().copied().max().unwrap_or(0);
        let floor = live[q4_start..].iter().copied().min().unwrap_or(0);
        // Still rising at the end: the lowest over the last eighth of the calls above the
        // highest over the sixth. A one-time step (a hash table doubling once while a cache
        // churns) cannot pass both this and the test above.
        let e = iterations / 8;
        let late_floor = live[iterations - e..].iter().copied().min().unwrap_or(0);
        let late_ceiling = live[iterations - 3 * e..iterations - 2 * e]
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        let still_rising = late_floor > late_ceiling.saturating_add(self.growth_tolerance);
        if floor > ceiling.saturating_add(self.growth_tolerance) && still_rising {
            let per_call = slope(&live[mid_at..]);
            let mut m = String::new();
            let _ = writeln!(
                m,
                "heaptide: growth: live memory kept growing with the number of calls: the \
                 lowest it was over calls {}-{iterations} ({}) is above the highest over calls \
                 {}-{mid_at} ({}) by {} (tolerance {}), and it still rose at the end (lowest \
                 over the last {} above the highest over calls {}-{} by {}); about {} per call \
                 over the last {}; sites that grew from call {mid_at} to call {iterations}:",
                q4_start + 1,
                ByteSize(floor),
                q2_start + 1,
                ByteSize(ceiling),
                ByteSize(floor - ceiling),
                ByteSize(self.growth_tolerance),
                count(e as u64, "call", "calls"),
                iterations - 3 * e + 1,
                iterations - 2 * e,
                ByteSize(late_floor - late_ceiling),
                ByteSize(per_call.max(0.0).round() as u64),
                count((iterations - mid_at) as u64, "call", "calls"),
            );
            let _ = write_sites(&mut m, &growth);
            let _ = writeln!(
                m,
                "  To fix: free what each call keeps (a collection that only grows, a cache \
                 without eviction, a leaked Box or Rc cycle); a cache that fills for longer \
                 than the warm-up ({}) needs more warm-up calls or a bound.",
                count(warmup as u64, "call", "calls"),
            );
            panic!("{m}");
        }
        drop(t);
    }

    /// Starts a scope on this thread (and, with `all_threads`, for threads starting now).
    fn begin(&self) -> u64 {
        if self.all_threads {
            tracking::begin_all_threads()
        } else {
            tracking::begin()
        }
    }

    fn filtered(&self, t: Tracking) -> Tracking {
        if self.ignore.is_empty() {
            return t;
        }
        t.ignoring_stacks(|frames| self.ignore.iter().any(|ignore| ignore(frames)))
    }
}

/// Least-squares slope of `values` against the call number, bytes per call (0 with fewer than
/// two values).
fn slope(values: &[u64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return 0.0;
    }
    let x_mean = (n as f64 - 1.0) / 2.0;
    let y_mean = values.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, &v) in values.iter().enumerate() {
        let dx = i as f64 - x_mean;
        sxy += dx * (v as f64 - y_mean);
        sxx += dx * dx;
    }
    sxy / sxx
}

/// Panics if anything `f` allocated (on the calling thread) is still live when it returns.
///
/// The message gives the leaked bytes and blocks and the top leaking sites with their frames.
/// The value `f` returns is dropped before the check. See [`track`](super::track) for what is
/// tracked, [`untracked`](super::untracked) / [`Tracking::ignoring`] to allow intended
/// allocations, and [`options()`] for threads, per-site limits and stack filters.
///
/// A `LazyLock`, `OnceLock` or thread-local filled on its first use is a leak of the first
/// closure that touches it (the values live on after it returns): touch it once before the
/// check (a warm-up call), allocate it under [`untracked`](super::untracked), or use
/// [`assert_no_growth`], which only counts what keeps growing.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// heaptide::testing::assert_no_leaks(|| {
///     let v: Vec<u64> = (0..1000).collect();
///     v.iter().sum::<u64>()
/// });
/// ```
#[track_caller]
pub fn assert_no_leaks<R>(f: impl FnOnce() -> R) {
    options().assert_no_leaks(f);
}

fn leak_message(t: &Tracking, over: &[SiteBytes], limit: u64) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "heaptide: leak: {} in {} allocated by the closure still live when it returned ({} \
         allocated in {} in all)",
        ByteSize(t.leaked_bytes),
        count(t.leaked_blocks, "block", "blocks"),
        ByteSize(t.alloc_bytes),
        count(t.alloc_count, "allocation", "allocations"),
    );
    if limit > 0 {
        let _ = writeln!(
            m,
            "  {} over the limit of {} per site:",
            count(over.len() as u64, "site is", "sites are"),
            ByteSize(limit)
        );
    }
    let _ = write_sites(&mut m, over);
    let _ = writeln!(
        m,
        "  To fix: free it before returning, or, if it is meant to outlive the call (a cache, \
         a lazy static), allocate it under heaptide::testing::untracked, warm it up before \
         the check, or filter it with options().ignore_stacks."
    );
    m
}

/// Runs `f` `warmup` times, then `iterations` times more, all tracked, and panics if the memory
/// the calls keep grows with the number of calls after the warm-up.
///
/// The rule: the live bytes of the calls (warm-up included: a cache that evicts what the
/// warm-up put in frees it) are measured after every call after the warm-up. Memory grows
/// with the calls when both hold:
/// - the lowest value over the last quarter of the calls is above the highest over the second
///   quarter by more than the tolerance (0 unless [`Options::growth_tolerance`] says
///   otherwise): it rose through the second half and did not come back;
/// - the lowest value over the last eighth of the calls is above the highest over the sixth
///   eighth (by more than the tolerance): it is still rising at the end. A one-time step (a
///   hash table that doubles once while a cache churns) can pass one of the two tests, never
///   both.
///
/// A per-call leak (by one block per call or more) does both; a one-time initialisation (a
/// lazy static, a buffer grown to its working size) happens before the second quarter, and a
/// bounded cache that evicts moves within the same band in both quarters. The message gives the growth per call (least squares over the second half)
/// and the sites that grew from the middle call to the last, keyed by the user's frames.
/// Warm-up calls fill caches and lazy statics before the measured calls; with `warmup == 0`
/// they are filled in the first measured calls, which the rule tolerates as long as it is done
/// within the first quarter.
///
/// # Panics
/// Also if `iterations < 8` (the rule compares quarters and eighths).
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// use std::collections::HashMap;
/// use std::sync::{LazyLock, Mutex};
/// static CACHE: LazyLock<Mutex<HashMap<u32, String>>> = LazyLock::new(Default::default);
///
/// heaptide::testing::assert_no_growth(1, 100, || {
///     // Filled once, on the first call: not a leak.
///     CACHE.lock().unwrap().entry(7).or_insert_with(|| "seven".to_string());
/// });
/// ```
#[track_caller]
pub fn assert_no_growth(warmup: usize, iterations: usize, f: impl FnMut()) {
    options().assert_no_growth(warmup, iterations, f);
}

/// Panics if, while `f` runs, the bytes it has allocated and not yet freed ever reach `limit`
/// bytes (a peak equal to the limit fails, as pytest-memray's `limit_memory` does). The message
/// names what each site held at the peak.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// heaptide::testing::assert_peak_below(64 * 1024, || {
///     let chunk = vec![0u8; 16 * 1024];
///     chunk.len()
/// });
/// ```
#[track_caller]
pub fn assert_peak_below<R>(limit: u64, f: impl FnOnce() -> R) {
    options().assert_peak_below(limit, f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_limit_from_the_environment() {
        assert_eq!(read_leak_limit(None), 0);
        assert_eq!(read_leak_limit(Some("4KiB")), 4096);
        assert_eq!(read_leak_limit(Some("0")), 0);
    }

    #[test]
    fn slope_per_call() {
        assert_eq!(slope(&[]), 0.0);
        assert_eq!(slope(&[5]), 0.0);
        assert!((slope(&[10, 20, 30, 40]) - 10.0).abs() < 1e-9);
        assert!(slope(&[10, 10, 10]).abs() < 1e-9);
    }
}
