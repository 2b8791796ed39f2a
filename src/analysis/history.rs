//! The snapshot history: a bounded ring of the process's memory figures and each call site's
//! live bytes, taken by the drain thread every interval (`HEAPTIDE_INTERVAL`, default 10 s;
//! [`crate::set_snapshot_interval`]) or on demand ([`crate::snapshot_now`]). Trends and the leak
//! detector read it.
//!
//! A snapshot keeps the [`SITES_PER_SNAPSHOT`] sites with the most live bytes (by raw site:
//! reports merge them by symbolized stack). A leak small enough to stay out of that list for
//! the whole window is not analysed; one that keeps growing enters it.

use std::collections::VecDeque;

use crate::drain;
use crate::drain::aggregate::Aggregate;
use crate::report::memory;
use crate::sample::capture::now_ns;
use crate::sample::thread::ProfilerScope;
use crate::sync::{Mutex, MutexGuard};

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
    HISTORY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Whether a snapshot is due (the interval has passed since the last one).
pub(crate) fn due() -> bool {
    let last = lock().last_ns;
    last == 0 || now_ns().saturating_sub(last) >= super::settings::interval().as_nanos() as u64
}

/// Takes a snapshot now: drains every ring first, so it includes everything allocated and
/// freed before the call. Call outside a profiler scope (the drain pass gives deferred blocks
/// back to jemalloc after its own scope ends).
pub(crate) fn take() {
    let (sites, live_bytes) = drain::with_flushed(top_sites);
    let _scope = ProfilerScope::enter();
    let m = memory::snapshot();
    let snap = Snap {
        time_ns: now_ns(),
        wall_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        rss_bytes: m.rss_bytes,
        jemalloc_allocated: m.jemalloc.allocated,
        jemalloc_resident: m.jemalloc.resident,
        live_bytes,
        sites,
    };
    let max = super::settings::get().max_snapshots;
    let mut history = lock();
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
