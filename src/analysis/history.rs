//! The snapshot history: a bounded ring of the process's memory figures and each call site's
//! live bytes, taken by the drain thread every interval (`HEAPTIDE_INTERVAL`, default 10 s;
//! [`crate::set_snapshot_interval`]) or on demand ([`crate::snapshot_now`]). Trends and the leak
//! detector read it.
//!
//! A snapshot keeps the [`SITES_PER_SNAPSHOT`] sites with the most live bytes (by raw site:
//! reports merge them by symbolized stack). A leak small enough to stay out of that list for
//! the whole window is not analysed; one that keeps growing enters it.

use std::collections::VecDeque;

use super::memory;
use crate::drain;
use crate::drain::aggregate::Aggregate;
use crate::sample::scope::ProfilerScope;
use crate::state::now_ns;
use crate::sync::{AtomicU64, Mutex, MutexGuard, Ordering};

/// Sites kept per snapshot (16 bytes each: 500 snapshots take at most 2 MiB).
pub(crate) const SITES_PER_SNAPSHOT: usize = 256;

/// One site's figures in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SiteLive {
    pub(crate) site: u32,
    pub(crate) live_samples: u32,
    pub(crate) live_bytes: f64,
}

/// The figures at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snap {
    /// Monotonic time, ns.
    pub(crate) time_ns: u64,
    /// Wall-clock time, ms since the Unix epoch.
    pub(crate) wall_ms: u64,
    pub(crate) rss_bytes: u64,
    pub(crate) jemalloc_allocated: u64,
    pub(crate) jemalloc_resident: u64,
    /// Estimated live heap (all sites).
    pub(crate) live_bytes: f64,
    /// The top sites by live bytes, sorted by site id.
    pub(crate) sites: Box<[SiteLive]>,
}

impl Snap {
    /// A site's figures in this snapshot (zero if it was not among the top).
    pub(crate) fn site(&self, site: u32) -> Option<&SiteLive> {
        self.sites
            .binary_search_by_key(&site, |s| s.site)
            .ok()
            .map(|i| &self.sites[i])
    }
}

/// The ring.
#[derive(Debug, Default)]
pub(crate) struct History {
    pub(crate) snaps: VecDeque<Snap>,
    /// When the last snapshot was taken (monotonic ns; 0: never).
    pub(crate) last_ns: u64,
}

static HISTORY: Mutex<History> = Mutex::new(History {
    snaps: VecDeque::new(),
    last_ns: 0,
});

/// Locks the history. Call inside a profiler scope.
pub(crate) fn lock() -> MutexGuard<'static, History> {
    HISTORY.lock()
}

/// Wall-clock time (ms since the Unix epoch, plus 1) of the first snapshot taken at an injected
/// time ([`take_at`]); 0 while none was. Once set, no periodic snapshot is due.
static INJECTED_WALL_MS: AtomicU64 = AtomicU64::new(0);

/// Whether a snapshot is due (the interval has passed since the last one). Never, once a
/// snapshot was taken at an injected time: real times would interleave with the caller's.
pub(crate) fn due() -> bool {
    if INJECTED_WALL_MS.load(Ordering::Relaxed) != 0 {
        return false;
    }
    let last = lock().last_ns;
    last == 0 || now_ns().saturating_sub(last) >= super::settings::interval().as_nanos() as u64
}

/// Takes a snapshot now: drains every ring first, so it includes everything allocated and
/// freed before the call. Call outside a profiler scope (the drain pass gives deferred blocks
/// back to jemalloc after its own scope ends).
pub(crate) fn take() {
    take_stamped(None);
}

/// Takes a snapshot as [`take`] does, stamped `at` on the caller's clock instead of now: the
/// leak detector reads the times of snapshots, so a test (or a replay) that injects them gets
/// the same verdict however fast or slow the machine runs. From the first call on, the drain
/// thread takes no periodic snapshots, and [`take`] records none (wall-clock times would
/// interleave with the caller's); the wall-clock stamp of a snapshot is the time of the first
/// injected one plus `at`.
pub(crate) fn take_at(at: std::time::Duration) {
    take_stamped(Some(at));
}

fn wall_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn take_stamped(at: Option<std::time::Duration>) {
    let mut first_injected = false;
    let stamp = at.map(|at| {
        first_injected = INJECTED_WALL_MS
            .compare_exchange(0, wall_ms_now() + 1, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        let base = INJECTED_WALL_MS.load(Ordering::Relaxed) - 1;
        // 0 means "never" for `last_ns`: injected times start at 1 ns.
        let ns = (at.as_nanos().min(u128::from(u64::MAX - 1)) as u64).max(1);
        (ns, base + at.as_millis() as u64)
    });
    let (sites, live_bytes) = drain::with_flushed(top_sites);
    let _scope = ProfilerScope::enter();
    let m = memory::snapshot();
    let (time_ns, wall_ms) = stamp.unwrap_or_else(|| (now_ns(), wall_ms_now()));
    let snap = Snap {
        time_ns,
        wall_ms,
        rss_bytes: m.rss_bytes,
        jemalloc_allocated: m.jemalloc.allocated,
        jemalloc_resident: m.jemalloc.resident,
        live_bytes,
        sites,
    };
    let max = super::settings::get().max_snapshots;
    let mut history = lock();
    if at.is_none() && INJECTED_WALL_MS.load(Ordering::Relaxed) != 0 {
        // A snapshot at a real time that began before the first injected one and ends after
        // it (the drain thread's periodic one, slow on a busy machine): its time is on the
        // other clock, and kept it would sit among the injected ones with later figures.
        // (The flag is set before the first injected snapshot takes this lock to clear the
        // history, so either the clear removes this one or this check sees the flag.)
        return;
    }
    if first_injected {
        // Snapshots taken at real times so far are on another clock.
        history.snaps.clear();
    }
    history.last_ns = snap.time_ns;
    history.snaps.push_back(snap);
    while history.snaps.len() > max {
        history.snaps.pop_front();
    }
}

/// The top sites by live bytes, sorted by id, and the total live bytes.
fn top_sites(agg: &mut Aggregate) -> (Box<[SiteLive]>, f64) {
    let mut total = 0.0;
    let mut sites: Vec<SiteLive> = agg
        .sites()
        .filter(|(_, s)| s.live_samples > 0)
        .map(|(i, s)| {
            total += s.fig.live_bytes;
            SiteLive {
                site: i,
                live_samples: s.live_samples.min(u64::from(u32::MAX)) as u32,
                live_bytes: s.fig.live_bytes,
            }
        })
        .collect();
    if sites.len() > SITES_PER_SNAPSHOT {
        sites.select_nth_unstable_by(SITES_PER_SNAPSHOT, |a, b| {
            b.live_bytes.total_cmp(&a.live_bytes)
        });
        sites.truncate(SITES_PER_SNAPSHOT);
    }
    sites.sort_unstable_by_key(|s| s.site);
    (sites.into_boxed_slice(), total)
}
