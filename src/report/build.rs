//! Building a report from what its caller read: a function of its arguments (the aggregate's
//! copy, the merged sites, the symbol cache, the alert log and a [`Context`]), one step per
//! part of the report. Building changes no state, so a report can be built any number of
//! times from the same state with the same result: judging health ([`health::assess`]) only
//! reads, and the alerts a report's health and leaks raise are recorded by a separate step its
//! caller takes when it needs it (`record_alerts` in the module root). Besides its arguments,
//! a build reads only the profiler's own counters ([`profiler_stats`], last, so they count what
//! building the report holds) and the process's id and command line.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::aggregate_copy::AggregateCopy;
use super::sites::Merged;
use super::{
    Alert, AllocRate, AllocRates, DurationPercentiles, Frame, LabelUsage, Leak, MemoryStats,
    MemoryTrends, OTHER_FRAME, PEAK_SITES, Peak, PeakSite, ProfilerStats, REPORT_VERSION, Report,
    Site, SiteTable, SizeBin, SizeBucket, SnapshotHistory, SnapshotPoint, TOP_SITES, Totals,
};
use crate::analysis::health;
use crate::analysis::history::History;
use crate::analysis::leaks::{self, Candidate, Judged};
use crate::analysis::pattern::Verdict;
use crate::analysis::settings::Settings;
use crate::buffer::queues;
use crate::config::Sampling;
use crate::drain;
use crate::drain::aggregate::{self, SIZE_BINS};
use crate::sample::scope::OVERHEAD;
use crate::symbolize::{Symbols, from_blamed};
use crate::sync::Ordering;

/// Arguments of the command line a report keeps at most ([`Report::command_line`]).
const COMMAND_LINE_ARGS: usize = 32;

/// Bytes of each command-line argument a report keeps at most.
const COMMAND_LINE_ARG_BYTES: usize = 256;

/// What every report reads besides the aggregate's figures, read by its caller.
#[derive(Debug)]
pub(super) struct Context<'a> {
    /// The snapshot history (its lock held by the caller).
    pub(super) history: &'a History,
    /// The leak detector's and health's settings.
    pub(super) settings: &'a Settings,
    /// The time between snapshots in force (the setting, or what the program set since).
    pub(super) interval: Duration,
    /// The process's memory, measured.
    pub(super) memory: MemoryStats,
    /// How allocations are sampled (`Off` when profiling is off).
    pub(super) sampling: Sampling,
    /// Now, ms since the Unix epoch.
    pub(super) now_ms: u64,
}

/// A report without the parts the second pass over the aggregate fills in ([`add_details`]),
/// and what that pass reads.
#[derive(Debug)]
pub(super) struct Built {
    pub(super) report: Report,
    /// The raw sites of each leak, in the order of `report.leaks` (for the ages of their live
    /// objects).
    pub(super) leak_sites: Vec<Vec<u32>>,
    /// The raw sites of each listed site, in the order of `report.sites` (for their
    /// histograms).
    pub(super) site_raws: Vec<Vec<u32>>,
}

/// Builds a full report from the aggregate's figures (`copy`), its raw sites merged by user
/// stack (`merged`, whose frames `symbols` holds), the raw sites of its peak record merged
/// the same way (`peak`, if it has one) and the alert log so far, without the sites'
/// histograms and lifetimes, the leaks' ages and the recommendations ([`add_details`]).
pub(super) fn build(
    copy: &AggregateCopy,
    merged: &[Merged],
    peak: Option<&[Merged]>,
    symbols: &Symbols,
    alerts: &[Alert],
    cx: &Context<'_>,
) -> Built {
    let listed = listed_sites(merged);
    let judged = judge_sites(merged, &listed, cx.history);
    let (leaks, leak_sites) = leaks_found(merged, &judged, symbols, copy);
    let trend = memory_trends(cx);
    let health = health::assess(cx.memory.rss_bytes, trend.rss.as_ref(), &leaks, cx.settings);
    let (sites, site_raws) = site_entries(merged, &listed, &judged, symbols, copy, cx.now_ms);
    let report = Report {
        version: REPORT_VERSION,
        pid: std::process::id(),
        command_line: command_line(),
        timestamp: cx.now_ms,
        sample_interval: cx.sampling.mean_bytes(),
        exact: cx.sampling == Sampling::Exact,
        memory: cx.memory,
        totals: totals(merged),
        size_buckets: size_buckets(copy),
        rate: rates(copy),
        lifetime_ns: lifetimes(&copy.lifetimes),
        leaks,
        health,
        alerts: alerts.to_vec(),
        // Filled in by `add_details`, with the sites' histograms.
        recommendations: Vec::new(),
        trend,
        snapshots: snapshot_history(cx),
        peak: peak.and_then(|at_peak| peak_entry(copy, at_peak, merged, symbols, cx.now_ms)),
        sites,
        sites_seen: merged.len() as u64,
        site_table: site_table(copy),
        profiler: profiler_stats(copy, symbols.len()),
        labels: label_usage(copy),
    };
    Built {
        report,
        leak_sites,
        site_raws,
    }
}

/// The parts of a full report read in the second pass over the aggregate: the ages of the
/// leaks' live objects (`ages`, in the order of `leaks`), the listed sites' size histograms and
/// lifetimes (`histograms`, in the order of `sites`), and the recommendations, which read them.
pub(super) fn add_details(
    report: &mut Report,
    ages: &[Histogram<u64>],
    histograms: &[(Vec<f64>, Histogram<u64>)],
) {
    for (leak, h) in report.leaks.iter_mut().zip(ages) {
        leak.age_ns = lifetimes(h);
    }
    for (site, (sizes, h)) in report.sites.iter_mut().zip(histograms) {
        site.size_histogram = size_histogram(sizes);
        site.lifetime_ns = lifetimes(h);
    }
    report.recommendations = super::advice::advise(
        &report.memory,
        &report.sites,
        report.totals.alloc_count,
        report.totals.live_bytes,
    );
}

/// Builds the figures of a report that need no work per call site (see
/// `crate::report::summary`) from the aggregate's figures (`copy`, without rows), the live
/// bytes of the raw sites in the snapshot history that still hold some (`live`: site id,
/// bytes) and the number of addresses in the symbol cache.
#[cfg(any(feature = "http", feature = "otlp"))]
pub(super) fn build_summary(
    copy: &AggregateCopy,
    live: &[(u32, f64)],
    symbols_cached: usize,
    cx: &Context<'_>,
) -> Report {
    let raws: Vec<[u32; 1]> = live.iter().map(|&(id, _)| [id]).collect();
    let candidates: Vec<Candidate<'_>> = raws
        .iter()
        .enumerate()
        .map(|(index, raw)| Candidate { index, raw })
        .collect();
    let judged = leaks::judge(cx.history, &candidates);
    let mut leaks: Vec<Leak> = judged
        .iter()
        .filter(|j| j.is_leak())
        .map(|j| {
            let (id, bytes) = live[j.index];
            j.leak(u64::from(id), Vec::new(), bytes.round() as u64)
        })
        .collect();
    leaks.sort_by(|a, b| b.growth_bytes_per_hour.total_cmp(&a.growth_bytes_per_hour));
    let trend = memory_trends(cx);
    let health = health::assess(cx.memory.rss_bytes, trend.rss.as_ref(), &leaks, cx.settings);
    let live_count: f64 = copy.buckets.iter().map(|b| b.live_count).sum();
    let live_bytes: f64 = copy.buckets.iter().map(|b| b.live_bytes).sum();
    Report {
        version: REPORT_VERSION,
        pid: std::process::id(),
        timestamp: cx.now_ms,
        sample_interval: cx.sampling.mean_bytes(),
        exact: cx.sampling == Sampling::Exact,
        memory: cx.memory,
        totals: Totals {
            alloc_bytes: copy.alloc_bytes.round() as u64,
            alloc_count: copy.alloc_count.round() as u64,
            live_bytes: live_bytes.round() as u64,
            live_count: live_count.round() as u64,
        },
        size_buckets: size_buckets(copy),
        rate: rates(copy),
        lifetime_ns: lifetimes(&copy.lifetimes),
        leaks,
        health,
        trend,
        snapshots: snapshot_history(cx),
        sites_seen: copy.table.sites,
        site_table: site_table(copy),
        profiler: profiler_stats(copy, symbols_cached),
        labels: label_usage(copy),
        ..Report::default()
    }
}

/// The `n` sites of `merged` with the most live bytes, for a summary: no histograms,
/// lifetimes or patterns.
#[cfg(any(feature = "http", feature = "otlp"))]
pub(super) fn summary_sites(
    merged: &[Merged],
    symbols: &Symbols,
    copy: &AggregateCopy,
    now_ms: u64,
    n: usize,
) -> Vec<Site> {
    let wall_ms =
        |mono_ns: u64| now_ms.saturating_sub(copy.now_ns.saturating_sub(mono_ns) / 1_000_000);
    let mut sites: Vec<Site> = merged
        .iter()
        .filter(|m| m.fig.live_bytes > 0.0)
        .map(|m| {
            let mut site = site_entry(m, None, symbols, wall_ms);
            site.labels = copy.labels_of(m.label);
            site
        })
        .collect();
    sites.sort_by(|a, b| b.live_bytes.cmp(&a.live_bytes).then(a.id.cmp(&b.id)));
    sites.truncate(n);
    sites
}

// === the steps ===

/// Memory by label set, by live bytes, then allocated bytes; empty when no label was set.
fn label_usage(copy: &AggregateCopy) -> Vec<LabelUsage> {
    if copy.label_sets.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<LabelUsage> = copy
        .labels
        .iter()
        .map(|&(id, l)| LabelUsage {
            labels: copy.labels_of(id),
            alloc_bytes: l.fig.alloc_bytes.round() as u64,
            alloc_count: l.fig.alloc_count.round() as u64,
            live_bytes: l.fig.live_bytes.round() as u64,
            live_count: l.fig.live_count.round() as u64,
        })
        .collect();
    out.sort_by(|a, b| {
        b.live_bytes
            .cmp(&a.live_bytes)
            .then(b.alloc_bytes.cmp(&a.alloc_bytes))
            .then_with(|| a.labels.cmp(&b.labels))
    });
    out
}

/// Totals over all sites: the merged sites' figures summed, then rounded.
fn totals(merged: &[Merged]) -> Totals {
    let (mut ac, mut ab, mut lc, mut lb) = (0f64, 0f64, 0f64, 0f64);
    for m in merged {
        ac += m.fig.alloc_count;
        ab += m.fig.alloc_bytes;
        lc += m.fig.live_count;
        lb += m.fig.live_bytes;
    }
    Totals {
        alloc_bytes: ab.round() as u64,
        alloc_count: ac.round() as u64,
        live_bytes: lb.round() as u64,
        live_count: lc.round() as u64,
    }
}

/// The sites a report lists, as indices into `merged`: the [`TOP_SITES`] with the most live
/// bytes (among those with some), then those of the [`TOP_SITES`] with the most allocated
/// bytes that are not in yet.
fn listed_sites(merged: &[Merged]) -> Vec<usize> {
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
    let mut listed: Vec<usize> = by_live.iter().take(TOP_SITES).copied().collect();
    for &i in by_alloc.iter().take(TOP_SITES) {
        if !listed.contains(&i) {
            listed.push(i);
        }
    }
    listed
}

/// The leak detector's verdicts (see [`leaks::judge`]) on every site with live bytes that
/// appears in the snapshot history (the others' series are all zero), and on every listed site
/// (for its pattern).
fn judge_sites(merged: &[Merged], listed: &[usize], history: &History) -> Vec<Judged> {
    let mut is_listed = vec![false; merged.len()];
    for &i in listed {
        is_listed[i] = true;
    }
    let in_history: HashSet<u32> = history
        .snaps
        .iter()
        .flat_map(|snap| snap.sites.iter().map(|s| s.site))
        .collect();
    let candidates: Vec<Candidate<'_>> = (0..merged.len())
        .filter(|&i| {
            merged[i].fig.live_bytes > 0.0
                && (merged[i].raw.iter().any(|r| in_history.contains(r)) || is_listed[i])
        })
        .map(|i| Candidate {
            index: i,
            raw: &merged[i].raw,
        })
        .collect();
    leaks::judge(history, &candidates)
}

/// The leaks among the verdicts, fastest growth first, each with its raw sites (for the ages
/// of its live objects, read later).
fn leaks_found(
    merged: &[Merged],
    judged: &[Judged],
    symbols: &Symbols,
    copy: &AggregateCopy,
) -> (Vec<Leak>, Vec<Vec<u32>>) {
    let mut leaks: Vec<(Leak, Vec<u32>)> = judged
        .iter()
        .filter(|j| j.is_leak())
        .map(|j| {
            let m = &merged[j.index];
            let mut leak = j.leak(m.id, m.stack(symbols), m.fig.live_bytes.round() as u64);
            leak.labels = copy.labels_of(m.label);
            (leak, m.raw.clone())
        })
        .collect();
    leaks.sort_by(|a, b| {
        b.0.growth_bytes_per_hour
            .total_cmp(&a.0.growth_bytes_per_hour)
    });
    leaks.into_iter().unzip()
}

/// Trends of the measured heap (jemalloc's allocated bytes) and of RSS over the snapshot
/// window, projected toward `HEAPTIDE_LIMIT`.
fn memory_trends(cx: &Context<'_>) -> MemoryTrends {
    let (heap, rss) = leaks::trends(cx.history, cx.settings.limit);
    MemoryTrends { heap, rss }
}

/// The snapshot history as a report lists it.
fn snapshot_history(cx: &Context<'_>) -> SnapshotHistory {
    SnapshotHistory {
        interval_ms: cx.interval.as_millis() as u64,
        max: cx.settings.max_snapshots as u64,
        points: cx
            .history
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

/// The listed sites' entries, ordered by live bytes, then allocated bytes, each with its raw
/// sites (for its histograms and lifetimes, read later). `copy` and `now_ms` date the samples.
fn site_entries(
    merged: &[Merged],
    listed: &[usize],
    judged: &[Judged],
    symbols: &Symbols,
    copy: &AggregateCopy,
    now_ms: u64,
) -> (Vec<Site>, Vec<Vec<u32>>) {
    let verdicts: HashMap<usize, &Verdict> = judged.iter().map(|j| (j.index, &j.verdict)).collect();
    // Monotonic ns to wall-clock ms, by the copy's moment.
    let wall_ms =
        |mono_ns: u64| now_ms.saturating_sub(copy.now_ns.saturating_sub(mono_ns) / 1_000_000);
    let mut sites: Vec<(Site, Vec<u32>)> = listed
        .iter()
        .map(|&i| {
            let m = &merged[i];
            let mut site = site_entry(m, verdicts.get(&i).copied(), symbols, wall_ms);
            site.labels = copy.labels_of(m.label);
            (site, m.raw.clone())
        })
        .collect();
    sites.sort_by(|(a, _), (b, _)| {
        b.live_bytes
            .cmp(&a.live_bytes)
            .then(b.alloc_bytes.cmp(&a.alloc_bytes))
    });
    sites.into_iter().unzip()
}

/// One listed site, without its histograms and lifetimes; an "other" site's stack ends in
/// [`OTHER_FRAME`].
fn site_entry(
    m: &Merged,
    verdict: Option<&Verdict>,
    symbols: &Symbols,
    wall_ms: impl Fn(u64) -> u64,
) -> Site {
    let frames = site_frames(m, symbols);
    let seen_ms = |mono_ns: u64| {
        if m.fig.samples > 0 {
            wall_ms(mono_ns)
        } else {
            0
        }
    };
    Site {
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
        pattern: verdict.map(|v| v.pattern),
        needs_snapshots: verdict.and_then(|v| v.needs_snapshots).map(u64::from),
        first_seen_ms: seen_ms(m.fig.first_ns),
        last_seen_ms: seen_ms(m.fig.last_ns),
        // Set by the caller, from the copy's label table.
        labels: Default::default(),
    }
}

/// A merged site's frames as a report lists them: an "other" site's stack ends in
/// [`OTHER_FRAME`].
fn site_frames(m: &Merged, symbols: &Symbols) -> Vec<Frame> {
    let mut frames = m.stack(symbols);
    if m.merged > 0 {
        frames.push(Frame {
            function: OTHER_FRAME.to_string(),
            file: None,
            line: None,
        });
    }
    frames
}

/// The peak section: the peak record's figures (`copy.peak`), and its sites merged by label
/// set and user stack (`at_peak`), the [`PEAK_SITES`] with the most live bytes then, each with
/// the live bytes now of the site of the same label set and stack among `now`.
fn peak_entry(
    copy: &AggregateCopy,
    at_peak: &[Merged],
    now: &[Merged],
    symbols: &Symbols,
    now_ms: u64,
) -> Option<Peak> {
    let record = copy.peak.as_ref()?;
    let current: HashMap<(u32, &[u32], bool), &Merged> = now
        .iter()
        .map(|m| ((m.label, m.frames.as_slice(), m.merged > 0), m))
        .collect();
    let mut ranked: Vec<&Merged> = at_peak.iter().collect();
    ranked.sort_by(|a, b| b.fig.live_bytes.total_cmp(&a.fig.live_bytes));
    ranked.truncate(PEAK_SITES);
    let sites = ranked
        .into_iter()
        .map(|m| {
            let frames = site_frames(m, symbols);
            let same = current.get(&(m.label, m.frames.as_slice(), m.merged > 0));
            PeakSite {
                site_id: same.map(|s| s.id),
                blamed: from_blamed(&frames).first().cloned(),
                frames,
                live_bytes_at_peak: m.fig.live_bytes.round() as u64,
                live_count_at_peak: m.fig.live_count.round() as u64,
                live_bytes_now: same.map(|s| s.fig.live_bytes.round() as u64),
                labels: copy.labels_of(m.label),
            }
        })
        .collect();
    Some(Peak {
        seconds_since_start: record.time_ns.saturating_sub(copy.started_ns) as f64 / 1e9,
        timestamp_ms: now_ms.saturating_sub(copy.now_ns.saturating_sub(record.time_ns) / 1_000_000),
        live_bytes: record.bytes.round() as u64,
        step_bytes: record.step.round() as u64,
        sites,
    })
}

/// The five size buckets' figures.
fn size_buckets(copy: &AggregateCopy) -> Vec<SizeBucket> {
    aggregate::BUCKETS
        .iter()
        .enumerate()
        .map(|(i, &(name, min))| {
            let b = &copy.buckets[i];
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

/// Allocation rates since start and over the aggregate's recent window.
fn rates(copy: &AggregateCopy) -> AllocRates {
    let secs = |from_ns: u64| copy.now_ns.saturating_sub(from_ns) as f64 / 1e9;
    let since_start = rate(secs(copy.started_ns), copy.alloc_count, copy.alloc_bytes);
    // A window under a second (right after start) says less than the average since start.
    let recent = match copy.oldest_rate_point {
        Some(p) if secs(p.time_ns) >= 1.0 => rate(
            secs(p.time_ns),
            copy.alloc_count - p.alloc_count,
            copy.alloc_bytes - p.alloc_bytes,
        ),
        _ => since_start,
    };
    AllocRates {
        since_start,
        recent,
    }
}

fn rate(seconds: f64, count: f64, bytes: f64) -> AllocRate {
    if seconds <= 0.0 {
        return AllocRate::default();
    }
    AllocRate {
        seconds,
        alloc_bytes_per_sec: bytes / seconds,
        alloc_count_per_sec: count / seconds,
    }
}

/// The call-site table's budget and what it merged.
fn site_table(copy: &AggregateCopy) -> SiteTable {
    let t = &copy.table;
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

/// The profiler's own figures: the copy's, and its live counters read now.
fn profiler_stats(copy: &AggregateCopy, symbols_cached: usize) -> ProfilerStats {
    let header_bytes =
        copy.live_samples as u64 * crate::backend::sampled_arena::HEADER_BYTES as u64;
    let arena_resident = crate::backend::sampled_arena::resident_bytes() as u64;
    // The sampled range's resident pages beyond the live sampled blocks and their headers:
    // size-class rounding, slabs a lone sample keeps, pages freed but not yet purged.
    let arena_slack = arena_resident.saturating_sub(copy.live_sample_bytes + header_bytes);
    ProfilerStats {
        samples: copy.samples,
        dropped: queues::DROPPED.load(Ordering::Relaxed),
        overhead_bytes: OVERHEAD.live_bytes_now()
            + header_bytes
            + arena_slack
            + crate::backend::sampled_arena::cache_bytes() as u64,
        thread_slots: queues::registry().slots() as u64,
        live_samples: copy.live_samples as u64,
        pending_frees: copy.pending_frees as u64,
        symbols_cached: symbols_cached as u64,
        ring_bytes: queues::registry().memory_bytes() as u64,
        reserved_bytes: crate::backend::sampled_arena::reserved_bytes() as u64,
        sampled_arena_bytes: crate::backend::sampled_arena::committed_bytes() as u64,
        sampled_arena_resident_bytes: arena_resident,
        rings_freed: queues::registry().reclaimed() as u64,
        backlog_waits: drain::WAITS.load(Ordering::Relaxed),
        stack_walker: crate::sample::capture::WALKER.to_string(),
        reports_built: super::REPORTS_BUILT.load(Ordering::Relaxed),
    }
}

/// Percentiles of a lifetime histogram (`None` if it is empty).
fn lifetimes(h: &Histogram<u64>) -> Option<DurationPercentiles> {
    (!h.is_empty()).then(|| DurationPercentiles {
        count: h.len(),
        p50: h.value_at_quantile(0.50),
        p90: h.value_at_quantile(0.90),
        p99: h.value_at_quantile(0.99),
        max: h.max(),
    })
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::analysis::history::{SiteLive, Snap};
    use crate::drain::aggregate::{Aggregate, Figures};
    use crate::report::aggregate_copy::SiteRow;
    use crate::report::{HealthStatus, Pattern, sites};

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

    /// The peak section pairs each site live at the peak with the site of the same stack now;
    /// a stack not in the table now (here, an "other" site) has no figure now.
    #[test]
    fn peak_section_pairs_sites_with_now() {
        use crate::report::aggregate_copy::PeakCopy;
        let row = |id: u32, live: f64, merged: u64| SiteRow {
            id,
            frames: Arc::from(&[][..]),
            label: 0,
            fig: Figures {
                live_bytes: live,
                live_count: live / 1024.0,
                ..Figures::default()
            },
            merged,
        };
        let mut copy = AggregateCopy::of(&Aggregate::new(1, None), true);
        copy.rows.push(row(7, (30 << 20) as f64, 0));
        copy.started_ns = 1_000_000_000;
        copy.now_ns = 11_000_000_000;
        copy.peak = Some(PeakCopy {
            bytes: (60 << 20) as f64,
            time_ns: 3_500_000_000,
            step: (60 << 20) as f64 / 64.0,
            rows: vec![row(9, (10 << 20) as f64, 1), row(7, (50 << 20) as f64, 0)],
        });
        let symbols = Symbols::default();
        let now = sites::merge_sites(&copy.rows, &symbols, 32);
        let at_peak = sites::merge_sites(&copy.peak.as_ref().unwrap().rows, &symbols, 32);
        let peak = peak_entry(&copy, &at_peak, &now, &symbols, 1_700_000_010_000).unwrap();
        assert_eq!(peak.seconds_since_start, 2.5);
        assert_eq!(peak.timestamp_ms, 1_700_000_002_500);
        assert_eq!(peak.live_bytes, 60 << 20);
        assert_eq!(peak.step_bytes, 960 << 10);
        assert_eq!(peak.sites.len(), 2);
        let first = &peak.sites[0];
        assert_eq!(
            (
                first.site_id,
                first.live_bytes_at_peak,
                first.live_count_at_peak
            ),
            (Some(7), 50 << 20, 51_200)
        );
        assert_eq!(first.live_bytes_now, Some(30 << 20));
        let other = &peak.sites[1];
        assert_eq!((other.site_id, other.live_bytes_now), (None, None));
        assert_eq!(other.frames.last().unwrap().function, OTHER_FRAME);
        assert_eq!(other.blamed.as_ref().unwrap().function, OTHER_FRAME);
    }

    /// Snapshots 10 s apart over 5 minutes in which raw site 7 grows by 1 MiB each (360 MiB/h:
    /// a leak of high severity, on 10,000 live samples).
    fn growing_history() -> History {
        let snaps: std::collections::VecDeque<Snap> = (0..30u64)
            .map(|i| Snap {
                time_ns: (i + 1) * 10_000_000_000,
                wall_ms: 1_700_000_000_000 + i * 10_000,
                rss_bytes: 1 << 30,
                jemalloc_allocated: 512 << 20,
                jemalloc_resident: 600 << 20,
                live_bytes: ((i + 1) << 20) as f64,
                sites: Box::new([SiteLive {
                    site: 7,
                    live_samples: 10_000,
                    live_bytes: ((i + 1) << 20) as f64,
                }]),
            })
            .collect();
        let last_ns = snaps.back().map_or(0, |s| s.time_ns);
        History { snaps, last_ns }
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "reads the profiler's counters from jemalloc (C, which miri cannot run) and /proc"
    )]
    fn building_twice_gives_the_same_report_and_changes_no_state() {
        let mut copy = AggregateCopy::of(&Aggregate::new(1, None), true);
        copy.rows.push(SiteRow {
            id: 7,
            frames: Arc::from(&[][..]),
            label: 0,
            fig: Figures {
                alloc_count: 30_000.0,
                alloc_bytes: (30 << 20) as f64,
                live_count: 30_000.0,
                live_bytes: (30 << 20) as f64,
                samples: 30_000,
                first_ns: 1,
                last_ns: copy.now_ns,
            },
            merged: 0,
        });
        let symbols = Symbols::default();
        let merged = sites::merge_sites(&copy.rows, &symbols, 32);
        let history = growing_history();
        let settings = Settings {
            interval: Duration::from_secs(10),
            max_snapshots: 500,
            limit: None,
            warn: Some(1 << 20),
            critical: None,
        };
        let cx = Context {
            history: &history,
            settings: &settings,
            interval: settings.interval,
            memory: MemoryStats {
                rss_bytes: 1 << 30,
                ..MemoryStats::default()
            },
            sampling: Sampling::Exact,
            now_ms: 1_700_000_300_000,
        };
        let alerts = Vec::new();
        let state_before = health::lock().contents();

        let first = build(&copy, &merged, None, &symbols, &alerts, &cx);
        let second = build(&copy, &merged, None, &symbols, &alerts, &cx);

        let report = &first.report;
        assert_eq!(report.health.status, HealthStatus::Warning, "{report:#?}");
        assert_eq!(report.health.reasons.len(), 2, "{:?}", report.health);
        assert_eq!(report.leaks.len(), 1, "{report:#?}");
        assert_eq!(report.leaks[0].pattern, Pattern::SteadyGrowth);
        assert_eq!(report.health, second.report.health);
        // The profiler's figures are live counters, read as each build ends; the rest is a
        // function of the arguments.
        let without_profiler = |r: &Report| Report {
            profiler: ProfilerStats::default(),
            ..r.clone()
        };
        assert_eq!(
            without_profiler(&first.report),
            without_profiler(&second.report)
        );
        assert_eq!(
            (&first.leak_sites, &first.site_raws),
            (&second.leak_sites, &second.site_raws)
        );
        assert!(report.alerts.is_empty());
        assert_eq!(
            health::lock().contents(),
            state_before,
            "building a report changed the alert state"
        );
        assert_eq!(history.snaps.len(), 30);

        // Recording is the step that changes state: this health and leak raise two alerts
        // (ok -> warning, the leak) in a fresh state, and none the second time.
        let mut state = health::State::new();
        assert_eq!(
            state
                .record(&report.health, &report.leaks, report.timestamp)
                .len(),
            2
        );
        assert_eq!(
            state
                .record(&report.health, &report.leaks, report.timestamp)
                .len(),
            2
        );
        assert_eq!(state.contents().log.len(), 2);
    }
}
