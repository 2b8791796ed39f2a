//! The heap report's types: [`Report`], which [`crate::report()`] returns, and its parts.
//!
//! The types only: reports are taken by [`crate::report()`], written to files by
//! [`crate::dump()`] and served by the HTTP server. A report writes itself as JSON
//! ([`Report::write_json`], schema in `docs/report-schema.md`), text ([`Report::write_text`],
//! also `Display`), pprof ([`Report::write_pprof`]), folded stacks ([`Report::write_folded`])
//! and HTML ([`Report::write_html`]), and reads back from JSON with serde.
//!
//! Every struct and enum here is `#[non_exhaustive]`: fields and variants may be added without
//! a breaking change, so code outside heaptide reads them (or deserializes them) but does not
//! build them with a struct literal or match them without a wildcard arm.

mod advice;
mod aggregate_copy;
mod build;
mod diff;
mod folded;
mod html;
mod mappings;
pub(crate) mod marks;
#[cfg(any(feature = "http", feature = "otlp"))]
pub(crate) mod metrics;
mod model;
mod pprof;
mod sites;
pub(crate) mod text;

use crate::analysis::history::{self, History};
use crate::analysis::{self, health, memory};
use crate::config::Sampling;
use crate::drain;
use crate::sample::scope::ProfilerScope;
use crate::symbolize::{self, Symbols};
use crate::sync::{AtomicU64, Ordering};
use aggregate_copy::AggregateCopy;
use build::{Built, Context};

pub use crate::analysis::cgroup::{CgroupMemory, Pressure};
pub use crate::analysis::health::{Alert, AlertKind, Health, HealthStatus};
pub use crate::analysis::leaks::Leak;
pub use crate::analysis::memory::{JemallocStats, MemoryStats};
pub use crate::analysis::pattern::{Pattern, Severity};
pub use crate::analysis::trend::Trend;
pub use crate::drain::aggregate::DurationPercentiles;
pub use crate::symbolize::Frame;
pub use advice::Recommendation;
pub use diff::{Change, ChangeKind, Diff, SideBySide, SiteChange};
pub use model::{
    AllocRate, AllocRates, LabelUsage, Labels, MemoryTrends, OTHER_FRAME, PEAK_SITES, Peak,
    PeakSite, ProfilerStats, REPORT_VERSION, Report, Site, SiteTable, SizeBin, SizeBucket,
    SnapshotHistory, SnapshotPoint, TOP_SITES, Totals,
};
pub(crate) use sites::user_stack;

/// Raw call stacks a [`summary`](fn@summary) symbolizes: those with the most live bytes.
#[cfg(any(feature = "http", feature = "otlp"))]
const SUMMARY_STACKS: usize = 64;
/// Sites a [`summary`](fn@summary) lists at most.
#[cfg(any(feature = "http", feature = "otlp"))]
pub(crate) const SUMMARY_SITES: usize = 10;

/// Full reports built since start (see [`ProfilerStats::reports_built`]).
static REPORTS_BUILT: AtomicU64 = AtomicU64::new(0);

/// Addresses in the symbol cache when a full report last counted them (read by
/// [`summary`](fn@summary), which does not take the symbol cache's lock).
static SYMBOLS_CACHED: AtomicU64 = AtomicU64::new(0);

/// Takes a report now and records the alerts its health and leaks raise. See
/// [`crate::report()`].
///
/// It runs on the caller's thread, in steps:
///
/// 1. **copy** the aggregate's figures under the drain lock, after draining every ring (so the
///    report includes every allocation and free that happened before the call):
///    [`aggregate_copy`];
/// 2. **symbolize** their stacks into the symbol cache ([`symbolize_stacks`]), then measure the
///    process's memory;
/// 3. **merge** the raw sites by symbolized user stack ([`sites`]), those live now and those
///    live at the peak;
/// 4. **build** the report from those, the snapshot history and the alert log: a function of
///    what was read, which changes no state ([`build`]);
/// 5. **add the details** read in a second, short pass under the drain lock: the listed sites'
///    histograms, the leaks' ages, and the recommendations that read them;
/// 6. **record the alerts** its health and leaks raise ([`record_alerts`]): the one step that
///    changes state, taken here and by the drain thread's periodic [`evaluate`], not by the
///    HTTP [`summary`](fn@summary).
///
/// Steps 1 to 5 are [`read_full`].
pub(crate) fn take() -> Report {
    crate::sample::scope::hand_out(take_in_scope())
}

/// The drain thread's evaluation after a periodic snapshot: takes a report, records the alerts
/// it raises ([`record_alerts`]) and throws the report away, all as profiler work.
pub(crate) fn evaluate() {
    crate::sample::scope::drop_in_scope(take_in_scope());
}

/// A full report ([`read_full`]) with the alerts it raises recorded, allocated as profiler
/// memory: drop it inside a profiler scope.
fn take_in_scope() -> Report {
    let mut report = read_full();
    let _scope = ProfilerScope::enter();
    record_alerts(&mut report);
    report
}

/// The step of taking a report that changes state: compares the report's health and leaks
/// with those recorded last and raises the alerts of the transitions (see
/// [`analysis::health`]; the drain thread hands them to the callback), then puts the alert log,
/// with them, in the report. Call inside a profiler scope.
fn record_alerts(report: &mut Report) {
    report.alerts = health::record(&report.health, &report.leaks, report.timestamp);
}

/// A full report of the state now, alerts not recorded, allocated as profiler memory: drop it
/// inside a profiler scope. Changes nothing but caches: the symbol cache, and the counts of
/// reports built and of addresses cached.
///
/// The drain lock is held twice, briefly, and never while symbolizing: once to drain and copy
/// each site's scalar figures ([`AggregateCopy`]: about 100 bytes a site, no histogram), and
/// once, after the sites are merged and ranked, for the histograms of the listed sites and the
/// ages of the leaks' live objects. The symbol cache is held from symbolizing to the end of
/// the build, and the snapshot history during the build.
fn read_full() -> Report {
    REPORTS_BUILT.fetch_add(1, Ordering::Relaxed);
    let copy = drain::with_flushed(|agg| AggregateCopy::of(agg, true));
    let Built {
        mut report,
        leak_sites,
        site_raws,
    } = {
        let _scope = ProfilerScope::enter();
        let mut symbols = symbolize::lock();
        let symbols = symbols.get_or_insert_with(Symbols::default);
        // Symbolize first, then read memory, so the heap figures and the profiler's own memory
        // agree on what symbolizing holds.
        symbolize_stacks(&copy, symbols);
        let memory = memory::snapshot();
        let now_ms = wall_ms_now();
        let depth = crate::state::config().depth;
        let merged = sites::merge_sites(&copy.rows, symbols, depth);
        let peak = copy
            .peak
            .as_ref()
            .map(|p| sites::merge_sites(&p.rows, symbols, depth));
        let alerts = health::alert_log();
        let history = history::lock();
        let built = build::build(
            &copy,
            &merged,
            peak.as_deref(),
            symbols,
            &alerts,
            &context(&history, memory, now_ms),
        );
        drop(history);
        SYMBOLS_CACHED.store(symbols.len() as u64, Ordering::Relaxed);
        drop((copy, merged, peak, alerts));
        built
    };
    let now = crate::state::now_ns();
    let (ages, histograms) = drain::with_flushed(|agg| {
        let ages = if leak_sites.is_empty() {
            Vec::new()
        } else {
            agg.live_ages(&leak_sites, now)
        };
        (ages, aggregate_copy::site_histograms(agg, &site_raws))
    });
    let _scope = ProfilerScope::enter();
    build::add_details(&mut report, &ages, &histograms);
    drop((ages, histograms, leak_sites, site_raws));
    report
}

/// Resolves every address of the copy's stacks into the symbol cache. When that resolved new
/// ones, everything the report needs is in the cache, and the resolver's own cache
/// (backtrace's parsed debug info, tens of MiB for a large binary) is dropped: it is rebuilt
/// only when a later report meets an address the cache does not hold.
fn symbolize_stacks(copy: &AggregateCopy, symbols: &mut Symbols) {
    let peak_rows = copy.peak.iter().flat_map(|p| &p.rows);
    for row in copy.rows.iter().chain(peak_rows) {
        for &ip in row.frames.iter() {
            symbols.frame_ids(ip);
        }
    }
    if symbols.take_resolved_new() {
        backtrace::clear_symbol_cache();
    }
}

/// What a report reads besides the aggregate, now: the settings, how allocations are sampled.
fn context(history: &History, memory: memory::MemoryStats, now_ms: u64) -> Context<'_> {
    Context {
        history,
        settings: analysis::settings::get(),
        interval: analysis::settings::interval(),
        memory,
        sampling: if crate::state::is_on() {
            crate::state::config().sampling
        } else {
            Sampling::Off
        },
        now_ms,
    }
}

/// Now, ms since the Unix epoch (0 if the clock is before it).
fn wall_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The figures of a [`Report`] that need no work per listed call site, for `/metrics` and the
/// OTLP export ([`metrics`] lists them): the memory snapshot, totals (from the size buckets,
/// which count every sample as the sites do), size buckets, rates, trends and snapshots, the
/// site table, memory by label and the profiler's figures; `sites_seen` is the number of raw call stacks in the table
/// (`site_table.stacks`). Leaks are judged per raw stack, among the stacks in the snapshot
/// history, without symbolizing (their frames are empty) and health from them, as a full
/// report would without merging stacks that share a symbolized user stack; no alert is
/// recorded. `sites` holds at most [`SUMMARY_SITES`] sites: the [`SUMMARY_STACKS`] raw stacks
/// with the most live bytes, symbolized and merged by user stack and labels, without
/// histograms, lifetimes or patterns (a site made of many small stacks, none among those, is
/// missed). `recommendations` and `alerts` are empty. The drain lock is held for one pass over
/// the sites (to pick the top stacks) and a copy of a few hundred bytes.
#[cfg(any(feature = "http", feature = "otlp"))]
pub(crate) fn summary() -> Report {
    crate::sample::scope::hand_out(read_summary())
}

/// [`summary`](fn@summary), allocated as profiler memory.
#[cfg(any(feature = "http", feature = "otlp"))]
fn read_summary() -> Report {
    let in_history: Vec<u32> = {
        let _scope = ProfilerScope::enter();
        let history = history::lock();
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
    let (copy, live) = drain::with_flushed(|agg| {
        let live: Vec<(u32, f64)> = in_history
            .iter()
            .filter_map(|&id| agg.site(id).map(|s| (id, s.fig.live_bytes)))
            .filter(|&(_, b)| b > 0.0)
            .collect();
        let mut copy = AggregateCopy::of(agg, false);
        copy.rows = aggregate_copy::top_rows(agg, SUMMARY_STACKS);
        (copy, live)
    });
    let _scope = ProfilerScope::enter();
    let now_ms = wall_ms_now();
    let (sites, symbols_cached) = {
        let mut symbols = symbolize::lock();
        let symbols = symbols.get_or_insert_with(Symbols::default);
        symbolize_stacks(&copy, symbols);
        let merged = sites::merge_sites(&copy.rows, symbols, crate::state::config().depth);
        let sites = build::summary_sites(&merged, symbols, &copy, now_ms, SUMMARY_SITES);
        SYMBOLS_CACHED.store(symbols.len() as u64, Ordering::Relaxed);
        (sites, symbols.len())
    };
    let memory = memory::snapshot();
    let history = history::lock();
    let mut report = build::build_summary(
        &copy,
        &live,
        symbols_cached,
        &context(&history, memory, now_ms),
    );
    report.sites = sites;
    report
}
