//! What users see: the [`Report`] value and its writers.
//!
//! A report is taken on the caller's thread: it drains every ring first (so it includes every
//! allocation and free that happened before the call), then copies the top call sites out of
//! the aggregate with their symbolized frames.

mod advice;
mod folded;
mod html;
mod mappings;
mod model;
mod pprof;
pub(crate) mod text;

use std::collections::HashMap;
use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::buffer::queues;
use crate::config::Sampling;
use crate::drain;
use crate::drain::aggregate::{
    self, Aggregate, BucketStats, Figures, RatePoint, SIZE_BINS, TableStats,
};
use crate::sample::thread::{OVERHEAD, ProfilerScope};

pub use crate::analysis::health::{Alert, AlertKind, Health, HealthStatus};
pub use crate::analysis::leaks::Leak;
use crate::analysis::memory;
pub use crate::analysis::memory::{Jemalloc, Memory};
pub use crate::analysis::pattern::{Pattern, Severity};
pub use crate::analysis::trend::Trend;
pub use crate::drain::aggregate::Lifetimes;
pub use crate::symbolize::Frame;
use crate::symbolize::{self, Symbols, from_blamed};
pub use advice::Recommendation;
pub use model::{
    OTHER_FRAME, ProfilerStats, REPORT_VERSION, Rate, Rates, Report, Site, SiteTable, SizeBin,
    SizeBucket, SnapshotPoint, Snapshots, TOP_SITES, Totals, Trends,
};

use crate::analysis::{self, leaks::Candidate};

/// Arguments of the command line a report keeps at most ([`Report::command_line`]).
const COMMAND_LINE_ARGS: usize = 32;

/// Bytes of each command-line argument a report keeps at most.
const COMMAND_LINE_ARG_BYTES: usize = 256;

/// Takes a report now. See [`crate::report()`].
pub(crate) fn take() -> Report {
    crate::sample::thread::hand_out(take_in_scope())
}

/// Builds a report (for the leak detector's alerts) and throws it away, all as profiler work.
pub(crate) fn evaluate() {
    crate::sample::thread::drop_in_scope(take_in_scope());
}

/// A report of the figures that need no work per call site, for `/metrics`: see
/// [`summary_in_scope`].
#[cfg(feature = "http")]
pub(crate) fn summary() -> Report {
    crate::sample::thread::hand_out(summary_in_scope())
}

/// The figures of a [`Report`] that need no work per call site: the memory snapshot, totals
/// (from the size buckets, which count every sample as the sites do), size buckets, rates,
/// trends and snapshots, the site table and the profiler's figures; `sites_seen` is the
/// number of raw call stacks in the table (`site_table.stacks`). Leaks are judged per raw
/// stack, among the stacks in the snapshot history, without symbolizing (their frames are
/// empty) and health from them, as a full report would without merging stacks that share a
/// symbolized user stack; no alert is raised. `sites`, `recommendations` and `alerts` are
/// empty. The drain lock is held for one pass and a copy of a few hundred bytes.
#[cfg(feature = "http")]
fn summary_in_scope() -> Report {
    let in_history: Vec<u32> = {
        let _scope = ProfilerScope::enter();
        let history = analysis::history::lock();
        let mut ids: Vec<u32> = history
            .snaps
            .iter()
            .flat_map(|snap| snap.sites.iter().map(|s| s.site))
            .collect();
        drop(history);
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let (snapshot, live) = drain::with_flushed(|agg| {
        let live: Vec<(u32, f64)> = in_history
            .iter()
            .filter_map(|&id| agg.site(id).map(|s| (id, s.fig.live_bytes)))
            .filter(|&(_, b)| b > 0.0)
            .collect();
        (Snapshot::of(agg, false), live)
    });
    let _scope = ProfilerScope::enter();
    let memory = memory::snapshot();
    let settings = analysis::settings::get();
    let history = analysis::history::lock();
    let raws: Vec<[u32; 1]> = live.iter().map(|&(id, _)| [id]).collect();
    let candidates: Vec<Candidate<'_>> = raws
        .iter()
        .enumerate()
        .map(|(index, raw)| Candidate { index, raw })
        .collect();
    let judged = analysis::leaks::judge(&history, &candidates);
    let (heap, rss) = analysis::leaks::trends(&history, settings.limit);
    let snapshots = snapshots(&history, settings);
    drop(history);
    let mut leaks: Vec<Leak> = judged
        .iter()
        .filter(|j| j.is_leak())
        .map(|j| {
            let (id, bytes) = live[j.index];
            j.leak(u64::from(id), Vec::new(), bytes.round() as u64)
        })
        .collect();
    leaks.sort_by(|a, b| b.growth_bytes_per_hour.total_cmp(&a.growth_bytes_per_hour));
    let health = analysis::health::assess(memory.rss_bytes, rss.as_ref(), &leaks, settings);
    let sampling = if crate::state::is_on() {
        crate::state::config().sampling
    } else {
        Sampling::Off
    };
    let live_count: f64 = snapshot.buckets.iter().map(|b| b.live_count).sum();
    let live_bytes: f64 = snapshot.buckets.iter().map(|b| b.live_bytes).sum();
    Report {
        version: REPORT_VERSION,
        pid: std::process::id(),
        timestamp: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        sample_interval: sampling.mean_bytes(),
        exact: sampling == Sampling::Exact,
        memory,
        totals: Totals {
            alloc_bytes: snapshot.alloc_bytes.round() as u64,
            alloc_count: snapshot.alloc_count.round() as u64,
            live_bytes: live_bytes.round() as u64,
            live_count: live_count.round() as u64,
        },
        size_buckets: snapshot.size_buckets(),
        rate: snapshot.rates(),
        lifetime_ns: lifetimes(&snapshot.lifetimes),
        leaks,
        health,
        trend: Trends { heap, rss },
        snapshots,
        sites_seen: snapshot.table.sites,
        site_table: snapshot.site_table(),
        profiler: snapshot.profiler(SYMBOLS_CACHED.load(crate::sync::Ordering::Relaxed) as usize),
        ..Report::default()
    }
}

/// The snapshot history as a report lists it.
fn snapshots(
    history: &analysis::history::History,
    settings: &analysis::settings::Settings,
) -> Snapshots {
    Snapshots {
        interval_ms: analysis::settings::interval().as_millis() as u64,
        max: settings.max_snapshots as u64,
        points: history
            .snaps
            .iter()
            .map(|s| SnapshotPoint {
                timestamp_ms: s.wall_ms,
                rss_bytes: s.rss_bytes,
                heap_allocated_bytes: s.jemalloc_allocated,
                heap_resident_bytes: s.jemalloc_resident,
                live_bytes: s.live_bytes.round() as u64,
            })
            .collect(),
    }
}

/// A report allocated as profiler memory: drop it inside a profiler scope.
///
/// The drain lock is held twice, briefly, and never while symbolizing: once to drain and copy
/// each site's scalar figures ([`Snapshot`]: about 100 bytes a site, no histogram), and once,
/// after the sites are merged and ranked, for the histograms of the listed sites and the ages
/// of the leaks' live objects.
fn take_in_scope() -> Report {
    REPORTS_BUILT.fetch_add(1, crate::sync::Ordering::Relaxed);
    let snapshot = drain::with_flushed(|agg| Snapshot::of(agg, true));
    let (mut inner, leak_sites, site_raws) = {
        let _scope = ProfilerScope::enter();
        let mut symbols = symbolize::lock();
        let symbols = symbols.get_or_insert_with(Symbols::default);
        // Symbolize first, then read memory, so the heap figures and the profiler's own memory
        // agree on what symbolizing holds.
        for s in &snapshot.rows {
            for &ip in s.frames.iter() {
                symbols.frame_ids(ip);
            }
        }
        if symbols.take_resolved_new() {
            // Everything this report needs is in our own cache now; the resolver's cache
            // (backtrace's parsed debug info, tens of MiB for a large binary) is dropped, and
            // rebuilt only when a later report meets an address we have not seen.
            backtrace::clear_symbol_cache();
        }
        let memory = memory::snapshot();
        let built = build(&snapshot, memory, symbols);
        drop(snapshot);
        built
    };
    let now = crate::state::now_ns();
    let (ages, details) = drain::with_flushed(|agg| {
        let ages = if leak_sites.is_empty() {
            Vec::new()
        } else {
            agg.live_ages(&leak_sites, now)
        };
        (ages, details(agg, &site_raws))
    });
    let _scope = ProfilerScope::enter();
    for (leak, h) in inner.leaks.iter_mut().zip(&ages) {
        leak.age_ns = lifetimes(h);
    }
    for (site, (sizes, h)) in inner.sites.iter_mut().zip(&details) {
        site.size_histogram = size_histogram(sizes);
        site.lifetime_ns = lifetimes(h);
    }
    inner.recommendations = advice::advise(
        &inner.memory,
        &inner.sites,
        inner.totals.alloc_count,
        inner.totals.live_bytes,
    );
    drop((ages, details, leak_sites, site_raws));
    inner
}

/// The size and lifetime histograms of each group of raw sites (raw sites merged since the
/// snapshot count with the "other" site they went to, which may then appear twice: the
/// histograms of a listed site are read a moment after its figures).
fn details(agg: &Aggregate, groups: &[Vec<u32>]) -> Vec<(Vec<f64>, Histogram<u64>)> {
    let mut seen: Vec<u32> = Vec::new();
    groups
        .iter()
        .map(|raw| {
            let mut sizes = vec![0.0; SIZE_BINS];
            let mut h = aggregate::lifetime_histogram(1);
            seen.clear();
            seen.extend(raw.iter().filter_map(|&id| agg.resolve(id)));
            seen.sort_unstable();
            seen.dedup();
            for s in seen.iter().filter_map(|&id| agg.site(id)) {
                for &(bin, count) in s.sizes.bins() {
                    sizes[usize::from(bin)] += count;
                }
                s.lifetimes.add_to(&mut h);
            }
            (sizes, h)
        })
        .collect()
}

/// A site's size histogram as the report lists it: the bins with at least one allocation.
fn size_histogram(sizes: &[f64]) -> Vec<SizeBin> {
    sizes
        .iter()
        .enumerate()
        .filter(|(_, c)| c.round() >= 1.0)
        .map(|(bin, c)| SizeBin {
            min_bytes: if bin == 0 { 0 } else { 1 << bin },
            max_bytes: if bin == SIZE_BINS - 1 {
                u64::MAX
            } else {
                (1 << (bin + 1)) - 1
            },
            alloc_count: c.round() as u64,
        })
        .collect()
}

/// One site's scalar figures, copied under the drain lock.
#[derive(Debug)]
struct Row {
    id: u32,
    frames: Arc<[usize]>,
    fig: Figures,
    merged: u64,
}

/// The aggregate's figures, copied out under the drain lock.
#[derive(Debug)]
struct Snapshot {
    /// By site id.
    rows: Vec<Row>,
    samples: u64,
    live_samples: usize,
    pending_frees: usize,
    /// Requested bytes of the live samples.
    live_sample_bytes: u64,
    buckets: [BucketStats; 5],
    lifetimes: Histogram<u64>,
    alloc_count: f64,
    alloc_bytes: f64,
    started_ns: u64,
    oldest_rate_point: Option<RatePoint>,
    now_ns: u64,
    table: TableStats,
}

impl Snapshot {
    /// The figures; with `rows`, every site's too.
    fn of(agg: &Aggregate, with_rows: bool) -> Self {
        let (live_samples, pending_frees, live_sample_bytes) = agg.ledger_sizes();
        let mut rows = Vec::new();
        if with_rows {
            rows.reserve_exact(agg.site_count());
        }
        rows.extend(agg.sites().filter(|_| with_rows).map(|(id, s)| Row {
            id,
            frames: s.frames.clone(),
            fig: s.fig,
            merged: s.merged,
        }));
        Snapshot {
            rows,
            samples: agg.samples,
            live_samples,
            pending_frees,
            live_sample_bytes,
            buckets: agg.buckets,
            lifetimes: agg.lifetimes.clone(),
            alloc_count: agg.alloc_count,
            alloc_bytes: agg.alloc_bytes,
            started_ns: agg.started_ns,
            oldest_rate_point: agg.rate_points.front().copied(),
            now_ns: crate::state::now_ns(),
            table: agg.table(),
        }
    }
}

impl Snapshot {
    fn size_buckets(&self) -> Vec<SizeBucket> {
        aggregate::BUCKETS
            .iter()
            .enumerate()
            .map(|(i, &(name, min))| {
                let b = &self.buckets[i];
                SizeBucket {
                    name: name.to_string(),
                    min_bytes: min,
                    max_bytes: aggregate::BUCKETS.get(i + 1).map(|&(_, next)| next - 1),
                    alloc_count: b.alloc_count.round() as u64,
                    alloc_bytes: b.alloc_bytes.round() as u64,
                    live_count: b.live_count.round() as u64,
                    live_bytes: b.live_bytes.round() as u64,
                }
            })
            .collect()
    }

    fn rates(&self) -> Rates {
        let secs = |from_ns: u64| self.now_ns.saturating_sub(from_ns) as f64 / 1e9;
        let since_start = rate(secs(self.started_ns), self.alloc_count, self.alloc_bytes);
        // A window under a second (right after start) says less than the average since start.
        let recent = match self.oldest_rate_point {
            Some(p) if secs(p.time_ns) >= 1.0 => rate(
                secs(p.time_ns),
                self.alloc_count - p.alloc_count,
                self.alloc_bytes - p.alloc_bytes,
            ),
            _ => since_start,
        };
        Rates {
            since_start,
            recent,
        }
    }

    fn site_table(&self) -> SiteTable {
        let t = &self.table;
        SiteTable {
            budget_bytes: t.budget_bytes,
            bytes: t.bytes,
            stacks: t.sites,
            other_sites: t.other_sites,
            merged_stacks: t.merged_stacks,
            merged_alloc_bytes: t.merged_alloc_bytes.round() as u64,
            merged_alloc_count: t.merged_alloc_count.round() as u64,
        }
    }

    fn profiler(&self, symbols_cached: usize) -> ProfilerStats {
        SYMBOLS_CACHED.store(symbols_cached as u64, crate::sync::Ordering::Relaxed);
        let header_bytes =
            self.live_samples as u64 * crate::backend::sampled_arena::HEADER_BYTES as u64;
        let arena_resident = crate::backend::sampled_arena::resident_bytes() as u64;
        // The sampled range's resident pages beyond the live sampled blocks and their headers:
        // size-class rounding, slabs a lone sample keeps, pages freed but not yet purged.
        let arena_slack = arena_resident.saturating_sub(self.live_sample_bytes + header_bytes);
        ProfilerStats {
            samples: self.samples,
            dropped: queues::DROPPED.load(crate::sync::Ordering::Relaxed),
            overhead_bytes: OVERHEAD.live_bytes_now()
                + header_bytes
                + arena_slack
                + crate::backend::sampled_arena::cache_bytes() as u64,
            thread_slots: queues::registry().slots() as u64,
            live_samples: self.live_samples as u64,
            pending_frees: self.pending_frees as u64,
            symbols_cached: symbols_cached as u64,
            ring_bytes: queues::registry().memory_bytes() as u64,
            reserved_bytes: crate::backend::sampled_arena::reserved_bytes() as u64,
            sampled_arena_bytes: crate::backend::sampled_arena::committed_bytes() as u64,
            sampled_arena_resident_bytes: arena_resident,
            rings_freed: queues::registry().reclaimed() as u64,
            backlog_waits: drain::WAITS.load(crate::sync::Ordering::Relaxed),
            stack_walker: crate::sample::capture::WALKER.to_string(),
            reports_built: REPORTS_BUILT.load(crate::sync::Ordering::Relaxed),
        }
    }
}

/// Full reports built since start (see [`ProfilerStats::reports_built`]).
static REPORTS_BUILT: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);

/// Addresses in the symbol cache when a report last counted them (read by [`summary`], which
/// does not wait for the symbol cache's lock).
static SYMBOLS_CACHED: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);

/// A call site's figures after merging the raw sites that share its symbolized user stack
/// (raw stacks can differ in heaptide's frames, in the allocation plumbing on top, such as
/// `alloc` or `alloc_zeroed` for `vec![x; n]` with or without a zero `x`, or in
/// compiler-cloned copies of a function). "Other" sites merge only with "other" sites.
#[derive(Debug, Default)]
struct Merged {
    id: u64,
    /// The user stack (the site's key).
    frames: Vec<u32>,
    /// The allocation plumbing above it that all the raw sites merged here share.
    plumbing: Vec<u32>,
    /// The raw sites merged here.
    raw: Vec<u32>,
    fig: Figures,
    /// Call stacks the table merged into the raw "other" sites here.
    merged: u64,
}

impl Merged {
    /// The site's frames, innermost first: the plumbing its raw sites share, then the user
    /// stack.
    fn stack(&self, symbols: &Symbols) -> Vec<Frame> {
        self.plumbing
            .iter()
            .chain(&self.frames)
            .map(|&id| symbols.frame(id).clone())
            .collect()
    }
}

/// The symbolized user stack of a raw one, the key of its call site: frame ids from the
/// frame a person would blame outwards (heaptide's own frames and the standard library's
/// allocation plumbing above it trimmed, see [`split_stack`]), at most `depth` frames.
pub(crate) fn user_stack(symbols: &mut Symbols, raw: &[usize], depth: usize) -> Vec<u32> {
    split_stack(symbols, raw, depth).1
}

/// A raw stack symbolized and split in two: the standard library's allocation plumbing on
/// top (`alloc`, `alloc_zeroed`, `realloc`, `RawVec::grow_one`, ...; heaptide's own frames
/// above it dropped) and the user stack from the frame a person would blame outwards, at most
/// `depth` frames. The user stack is the site's key: allocations from one line of the
/// program land in one site whichever allocator entry point they went through. A stack made
/// of plumbing only (the standard library allocating for itself) is its own key. Zero
/// addresses (the end-of-stack marker some unwinders give) are skipped.
fn split_stack(symbols: &mut Symbols, raw: &[usize], depth: usize) -> (Vec<u32>, Vec<u32>) {
    let mut key: Vec<u32> = Vec::new();
    for &ip in raw.iter().filter(|&&ip| ip != 0) {
        key.extend_from_slice(symbols.frame_ids(ip));
    }
    let own = key.iter().take_while(|&&id| symbols.is_own(id)).count();
    let plumbing = key[own..]
        .iter()
        .take_while(|&&id| symbols.is_plumbing(id))
        .count();
    if own + plumbing == key.len() {
        key.drain(..own);
        key.truncate(depth);
        return (Vec::new(), key);
    }
    let mut user = key.split_off(own + plumbing);
    user.truncate(depth);
    key.drain(..own);
    (key, user)
}

/// Keeps in `common` the frames adjacent to the user stack that `plumbing` has too (the
/// plumbing every raw stack of a site went through).
fn keep_common_plumbing(common: &mut Vec<u32>, plumbing: &[u32]) {
    let shared = common
        .iter()
        .rev()
        .zip(plumbing.iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    common.drain(..common.len() - shared);
}

/// Percentiles of a lifetime histogram.
fn lifetimes(h: &Histogram<u64>) -> Option<Lifetimes> {
    (!h.is_empty()).then(|| Lifetimes {
        count: h.len(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
    })
}

/// The command line from `/proc/self/cmdline`, capped (see [`Report::command_line`]).
fn command_line() -> Vec<String> {
    // The kernel bounds the file (by the argument space, usually a few hundred bytes).
    std::fs::read("/proc/self/cmdline").map_or_else(|_| Vec::new(), |b| parse_command_line(&b))
}

/// Splits NUL-terminated arguments and caps them as [`Report::command_line`] says.
fn parse_command_line(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    let mut args = Vec::new();
    let mut parts = bytes.split(|&b| b == 0);
    for part in parts.by_ref().take(COMMAND_LINE_ARGS) {
        let arg = String::from_utf8_lossy(part);
        if arg.len() <= COMMAND_LINE_ARG_BYTES {
            args.push(arg.into_owned());
        } else {
            let mut end = COMMAND_LINE_ARG_BYTES;
            while !arg.is_char_boundary(end) {
                end -= 1;
            }
            args.push(format!("{}…", &arg[..end]));
        }
    }
    if parts.next().is_some() {
        args.push("…".to_string());
    }
    args
}

fn rate(seconds: f64, count: f64, bytes: f64) -> Rate {
    if seconds <= 0.0 {
        return Rate::default();
    }
    Rate {
        seconds,
        alloc_bytes_per_sec: bytes / seconds,
        alloc_count_per_sec: count / seconds,
    }
}

/// Builds the report, without the sites' histograms and the recommendations (which read
/// them); also returns the raw sites of each leak (for their ages) and of each listed site (for
/// its histograms), in the order of `leaks` and `sites`.
fn build(
    snapshot: &Snapshot,
    memory: Memory,
    symbols: &mut Symbols,
) -> (Report, Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let config = crate::state::config();
    let sampling = if crate::state::is_on() {
        config.sampling
    } else {
        Sampling::Off
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let wall_ms =
        |mono_ns: u64| now_ms.saturating_sub(snapshot.now_ns.saturating_sub(mono_ns) / 1_000_000);

    let mut by_stack: HashMap<(Vec<u32>, bool), usize> = HashMap::new();
    let mut merged: Vec<Merged> = Vec::new();
    for s in &snapshot.rows {
        let (plumbing, user) = split_stack(symbols, &s.frames, config.depth);
        let key = (user, s.merged > 0);
        let m = match by_stack.get(&key) {
            Some(&m) => {
                keep_common_plumbing(&mut merged[m].plumbing, &plumbing);
                &mut merged[m]
            }
            None => {
                by_stack.insert(key.clone(), merged.len());
                merged.push(Merged {
                    id: u64::from(s.id),
                    frames: key.0,
                    plumbing,
                    ..Merged::default()
                });
                merged.last_mut().expect("just pushed")
            }
        };
        m.id = m.id.min(u64::from(s.id));
        m.raw.push(s.id);
        m.fig.add(&s.fig);
        m.merged += s.merged;
    }
    drop(by_stack);

    let mut totals = Totals::default();
    let (mut ac, mut ab, mut lc, mut lb) = (0f64, 0f64, 0f64, 0f64);
    for m in &merged {
        ac += m.fig.alloc_count;
        ab += m.fig.alloc_bytes;
        lc += m.fig.live_count;
        lb += m.fig.live_bytes;
    }
    totals.alloc_count = ac.round() as u64;
    totals.alloc_bytes = ab.round() as u64;
    totals.live_count = lc.round() as u64;
    totals.live_bytes = lb.round() as u64;

    let mut by_live: Vec<usize> = (0..merged.len())
        .filter(|&i| merged[i].fig.live_bytes > 0.0)
        .collect();
    by_live.sort_by(|&a, &b| {
        merged[b]
            .fig
            .live_bytes
            .total_cmp(&merged[a].fig.live_bytes)
    });
    let mut by_alloc: Vec<usize> = (0..merged.len()).collect();
    by_alloc.sort_by(|&a, &b| {
        merged[b]
            .fig
            .alloc_bytes
            .total_cmp(&merged[a].fig.alloc_bytes)
    });
    let mut chosen: Vec<usize> = by_live.iter().take(TOP_SITES).copied().collect();
    for &i in by_alloc.iter().take(TOP_SITES) {
        if !chosen.contains(&i) {
            chosen.push(i);
        }
    }

    // The leak detector: every site with live bytes that appears in the snapshot history (the
    // others' series are all zero), and every listed site (for its pattern).
    let settings = analysis::settings::get();
    let history = analysis::history::lock();
    let mut listed = vec![false; merged.len()];
    for &i in &chosen {
        listed[i] = true;
    }
    let in_history: std::collections::HashSet<u32> = history
        .snaps
        .iter()
        .flat_map(|snap| snap.sites.iter().map(|s| s.site))
        .collect();
    let candidates: Vec<Candidate<'_>> = (0..merged.len())
        .filter(|&i| {
            merged[i].fig.live_bytes > 0.0
                && (merged[i].raw.iter().any(|r| in_history.contains(r)) || listed[i])
        })
        .map(|i| Candidate {
            index: i,
            raw: &merged[i].raw,
        })
        .collect();
    let judged = analysis::leaks::judge(&history, &candidates);
    let (heap_trend, rss_trend) = analysis::leaks::trends(&history, settings.limit);
    let snapshots = snapshots(&history, settings);
    drop(history);
    let mut pattern_of: HashMap<usize, (Pattern, Option<u32>)> = HashMap::new();
    let mut leaks: Vec<(Leak, Vec<u32>)> = Vec::new();
    for j in &judged {
        pattern_of.insert(j.index, (j.verdict.pattern, j.verdict.needs_snapshots));
        if j.is_leak() {
            let m = &merged[j.index];
            let frames = m.stack(symbols);
            leaks.push((
                j.leak(m.id, frames, m.fig.live_bytes.round() as u64),
                m.raw.clone(),
            ));
        }
    }
    leaks.sort_by(|a, b| {
        b.0.growth_bytes_per_hour
            .total_cmp(&a.0.growth_bytes_per_hour)
    });
    let (leaks, leak_sites): (Vec<Leak>, Vec<Vec<u32>>) = leaks.into_iter().unzip();
    let health = analysis::health::assess(memory.rss_bytes, rss_trend.as_ref(), &leaks, settings);
    let alerts = analysis::health::record(&health, &leaks, now_ms);

    let mut sites = Vec::with_capacity(chosen.len());
    for i in chosen {
        let m = &merged[i];
        let mut frames = m.stack(symbols);
        if m.merged > 0 {
            frames.push(Frame {
                function: OTHER_FRAME.to_string(),
                file: None,
                line: None,
            });
        }
        let site = Site {
            id: m.id,
            blamed: from_blamed(&frames).first().cloned(),
            frames,
            alloc_bytes: m.fig.alloc_bytes.round() as u64,
            alloc_count: m.fig.alloc_count.round() as u64,
            live_bytes: m.fig.live_bytes.round() as u64,
            live_count: m.fig.live_count.round() as u64,
            samples: m.fig.samples,
            lifetime_ns: None,
            size_histogram: Vec::new(),
            pattern: pattern_of.get(&i).map(|p| p.0),
            needs_snapshots: pattern_of.get(&i).and_then(|p| p.1).map(u64::from),
            first_seen_ms: if m.fig.samples > 0 {
                wall_ms(m.fig.first_ns)
            } else {
                0
            },
            last_seen_ms: if m.fig.samples > 0 {
                wall_ms(m.fig.last_ns)
            } else {
                0
            },
        };
        sites.push((site, m.raw.clone()));
    }
    sites.sort_by(|(a, _), (b, _)| {
        b.live_bytes
            .cmp(&a.live_bytes)
            .then(b.alloc_bytes.cmp(&a.alloc_bytes))
    });
    let (sites, site_raws): (Vec<Site>, Vec<Vec<u32>>) = sites.into_iter().unzip();

    let report = Report {
        version: REPORT_VERSION,
        pid: std::process::id(),
        command_line: command_line(),
        timestamp: now_ms,
        sample_interval: sampling.mean_bytes(),
        exact: sampling == Sampling::Exact,
        memory,
        totals,
        size_buckets: snapshot.size_buckets(),
        rate: snapshot.rates(),
        lifetime_ns: lifetimes(&snapshot.lifetimes),
        leaks,
        health,
        alerts,
        // Filled in by `take_in_scope`, with the sites' histograms.
        recommendations: Vec::new(),
        trend: Trends {
            heap: heap_trend,
            rss: rss_trend,
        },
        snapshots,
        sites,
        sites_seen: merged.len() as u64,
        site_table: snapshot.site_table(),
        profiler: snapshot.profiler(symbols.len()),
    };
    (report, leak_sites, site_raws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_split_and_capped() {
        assert_eq!(parse_command_line(b""), Vec::<String>::new());
        assert_eq!(
            parse_command_line(b"prog\0-v\0\0x y\0"),
            ["prog", "-v", "", "x y"]
        );
        let long = "é".repeat(200); // 400 bytes: cut at a character boundary
        let mut bytes = format!("prog\0{long}\0").into_bytes();
        let args = parse_command_line(&bytes);
        assert_eq!(
            args[1],
            format!("{}…", "é".repeat(COMMAND_LINE_ARG_BYTES / 2))
        );
        for i in 0..40 {
            bytes.extend_from_slice(format!("{i}\0").as_bytes());
        }
        let args = parse_command_line(&bytes);
        assert_eq!(args.len(), COMMAND_LINE_ARGS + 1);
        assert_eq!(args[COMMAND_LINE_ARGS - 1], "29");
        assert_eq!(args[COMMAND_LINE_ARGS], "…");
        assert!(parse_command_line(b"\xff\0")[0].contains('\u{fffd}'));
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "reads /proc/self/cmdline: file access, which miri's isolation refuses"
    )]
    fn this_process_has_a_command_line() {
        let args = command_line();
        assert!(!args.is_empty());
        assert!(args[0].contains("heaptide"), "{args:?}");
    }
}
