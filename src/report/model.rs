//! The report's data: [`Report`] and the types of its parts, with serde's derives (the JSON
//! schema is `docs/report-schema.md`) and the methods that read them. The types the analysis
//! fills in (memory, trends, leaks, health) are defined next to the code that computes them
//! and re-exported by the module root.

use serde::{Deserialize, Serialize};

use super::{
    Alert, DurationPercentiles, Frame, Health, Leak, MemoryStats, Pattern, Recommendation, Trend,
};
use crate::symbolize::from_blamed;

/// Version of the report's structure (bumped when a field changes meaning or goes away).
pub const REPORT_VERSION: u32 = 3;

/// How many sites a report lists by each ranking (live bytes, allocated bytes).
pub const TOP_SITES: usize = 100;

/// A heap profile at one moment.
///
/// Byte and count figures are **estimates** when sampling (each sample weighted by the inverse
/// of its probability of being sampled, which makes them unbiased) and **exact** in exact mode
/// (`sample_interval == 1`); `exact` says which.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// Process id.
    pub pid: u32,
    /// The process's command line (`/proc/self/cmdline`), program first: at most 32
    /// arguments, each cut to 256 bytes (a cut argument ends in `…`); a last element `…` alone
    /// means arguments were left out. Empty if it cannot be read.
    #[serde(default)]
    pub command_line: Vec<String>,
    /// When the report was taken, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Mean bytes between samples (1: every allocation; 0: profiling off).
    pub sample_interval: u64,
    /// Whether the figures are exact (every allocation recorded) rather than estimated.
    pub exact: bool,
    /// The process's memory as the kernel and jemalloc count it (measured).
    pub memory: MemoryStats,
    /// Totals over all call sites.
    pub totals: Totals,
    /// Allocations by size: tiny < 64 B, small < 1 KiB, medium < 64 KiB, large < 1 MiB,
    /// huge >= 1 MiB.
    pub size_buckets: Vec<SizeBucket>,
    /// How fast the program allocates.
    pub rate: AllocRates,
    /// How long allocations live, over all sites (from the samples that died; `None` before any
    /// did).
    pub lifetime_ns: Option<DurationPercentiles>,
    /// Leak candidates: sites whose live bytes keep growing over the snapshot window, fastest
    /// growth first (see the crate docs for the rule).
    pub leaks: Vec<Leak>,
    /// Health: ok / warning / critical, and why.
    pub health: Health,
    /// Alerts raised so far (the last 100), oldest first.
    pub alerts: Vec<Alert>,
    /// Advice from the figures (short-lived allocations, tiny objects, fragmentation), each
    /// citing the figure that triggered it.
    pub recommendations: Vec<Recommendation>,
    /// Growth of the measured heap (jemalloc allocated) and of RSS over the snapshot window.
    pub trend: MemoryTrends,
    /// The snapshot history the trend and the leak detector read.
    pub snapshots: SnapshotHistory,
    /// The call sites live when the estimated live heap was highest (`None` before the first
    /// sample, and in the HTTP summary).
    #[serde(default)]
    pub peak: Option<Peak>,
    /// The top call sites by live bytes and by allocated bytes (up to [`TOP_SITES`] each),
    /// ordered by live bytes, then allocated bytes.
    pub sites: Vec<Site>,
    /// Distinct call sites seen in all (may exceed `sites.len()`).
    pub sites_seen: u64,
    /// The call-site table's budget, and the call stacks merged into "other" sites to keep
    /// within it (totals stay exact).
    #[serde(default)]
    pub site_table: SiteTable,
    /// The profiler's own figures.
    pub profiler: ProfilerStats,
    /// Memory by label set ([`crate::label()`]): every label set with samples, unlabelled
    /// memory included (empty `labels`), by live bytes, then allocated bytes. Estimated unless
    /// [`Report::exact`]. Empty when no label was ever set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<LabelUsage>,
}

/// Labels: `key` to `value`, ordered by key.
pub type Labels = std::collections::BTreeMap<String, String>;

/// The memory of the allocations made under one label set (see [`Report::labels`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct LabelUsage {
    /// The label set (empty: allocations made with no label).
    pub labels: Labels,
    /// Bytes allocated under it since start.
    pub alloc_bytes: u64,
    /// Allocations made under it since start.
    pub alloc_count: u64,
    /// Its bytes still live.
    pub live_bytes: u64,
    /// Its blocks still live.
    pub live_count: u64,
}

impl Report {
    /// Live bytes by value of label `key` (allocations whose label set has `key`), by live
    /// bytes, most first.
    pub fn live_by_label(&self, key: &str) -> Vec<(String, u64)> {
        let mut by: std::collections::BTreeMap<&str, u64> = Default::default();
        for l in &self.labels {
            if let Some(v) = l.labels.get(key) {
                *by.entry(v).or_default() += l.live_bytes;
            }
        }
        let mut out: Vec<(String, u64)> = by.into_iter().map(|(v, b)| (v.to_string(), b)).collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// Totals over all call sites (estimated unless [`Report::exact`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Totals {
    /// Bytes allocated since start (including those since freed).
    pub alloc_bytes: u64,
    /// Allocations since start.
    pub alloc_count: u64,
    /// Bytes allocated and not yet freed.
    pub live_bytes: u64,
    /// Blocks allocated and not yet freed.
    pub live_count: u64,
}

/// The call-site table's memory budget (`HEAPTIDE_SITE_BUDGET`) and what it merged. Past the
/// budget, the coldest call stacks (the least live bytes, then the least allocated bytes) are
/// merged into an "other" site per truncated stack ([`Site::is_other`]); their figures
/// move with them, so totals stay exact.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct SiteTable {
    /// The budget in force, bytes: `HEAPTIDE_SITE_BUDGET`, or 64 MiB or 1% of the live heap,
    /// whichever is larger.
    pub budget_bytes: u64,
    /// The table's size now, bytes (estimated from the sizes of its parts).
    pub bytes: u64,
    /// Call stacks in the table now ("other" sites included), before merging by symbolized
    /// stack.
    pub stacks: u64,
    /// "Other" sites in the table.
    pub other_sites: u64,
    /// Call stacks merged into "other" sites since start (0: the budget was never reached).
    pub merged_stacks: u64,
    /// Bytes the merged stacks had allocated when merged.
    pub merged_alloc_bytes: u64,
    /// Allocations the merged stacks had made when merged.
    pub merged_alloc_count: u64,
}

/// Trends of the process's memory over the snapshot window (`None`: fewer than 2 snapshots).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct MemoryTrends {
    /// jemalloc's allocated bytes (the measured live heap).
    pub heap: Option<Trend>,
    /// Resident set size.
    pub rss: Option<Trend>,
}

/// The snapshot history the trends and the leak detector read: its settings and the memory at
/// each snapshot.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct SnapshotHistory {
    /// Time between snapshots now, ms.
    pub interval_ms: u64,
    /// Snapshots kept at most.
    pub max: u64,
    /// Memory at each snapshot kept, oldest first.
    pub points: Vec<SnapshotPoint>,
}

/// The process's memory at one snapshot.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct SnapshotPoint {
    /// When, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Resident set size, bytes (measured).
    pub rss_bytes: u64,
    /// jemalloc's allocated bytes (measured).
    pub heap_allocated_bytes: u64,
    /// jemalloc's resident bytes (measured).
    pub heap_resident_bytes: u64,
    /// Live bytes by the profile (estimated unless exact).
    pub live_bytes: u64,
}

/// One size bucket's figures (estimated unless [`Report::exact`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct SizeBucket {
    /// `tiny`, `small`, `medium`, `large` or `huge`.
    pub name: String,
    /// Smallest size in the bucket, bytes.
    pub min_bytes: u64,
    /// Largest size in the bucket, bytes, inclusive (`None` for `huge`: no bound).
    pub max_bytes: Option<u64>,
    /// Allocations of this size since start.
    pub alloc_count: u64,
    /// Bytes allocated in this bucket since start.
    pub alloc_bytes: u64,
    /// Blocks of this size still live.
    pub live_count: u64,
    /// Live bytes in this bucket.
    pub live_bytes: u64,
}

/// Allocation rates (estimated unless [`Report::exact`]).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct AllocRates {
    /// Averaged since the profiler started.
    pub since_start: AllocRate,
    /// Over about the last 10 seconds (shorter right after start).
    pub recent: AllocRate,
}

/// Allocations per second over a window.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct AllocRate {
    /// Length of the window, seconds.
    pub seconds: f64,
    /// Bytes allocated per second.
    pub alloc_bytes_per_sec: f64,
    /// Allocations per second.
    pub alloc_count_per_sec: f64,
}

/// A bin of a site's size histogram (estimated allocations).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct SizeBin {
    /// Smallest size in the bin, bytes (a power of two, or 0).
    pub min_bytes: u64,
    /// Largest size in the bin, bytes, inclusive.
    pub max_bytes: u64,
    /// Allocations of a size in the bin since start.
    pub alloc_count: u64,
}

/// One call site: a deduplicated stack and its figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Site {
    /// Site number, stable for the life of the process.
    pub id: u64,
    /// The stack, innermost first, heaptide's own frames removed. Inlined functions appear as
    /// their own frames. A site is keyed by the frames from [`blamed`](Self::blamed) outwards
    /// (the user's stack); the standard library's allocation plumbing above it is kept as far
    /// as all of the site's allocations went through it (`alloc`, `alloc_zeroed` and
    /// `realloc` from one line are one site).
    pub frames: Vec<Frame>,
    /// The frame a person would blame: the innermost frame that is neither heaptide's nor the
    /// standard library's allocation plumbing (see [`Site::blamed_frame`]); the first frame if
    /// all are plumbing; `None` without frames.
    #[serde(default)]
    pub blamed: Option<Frame>,
    /// Bytes allocated here since start.
    pub alloc_bytes: u64,
    /// Allocations made here since start.
    pub alloc_count: u64,
    /// Bytes allocated here and still live.
    pub live_bytes: u64,
    /// Blocks allocated here and still live.
    pub live_count: u64,
    /// Samples taken here (equals `alloc_count` in exact mode).
    pub samples: u64,
    /// How long this site's allocations live (from its dead samples; `None` if none died).
    pub lifetime_ns: Option<DurationPercentiles>,
    /// Its allocations by size (power-of-two bins, empty bins left out).
    pub size_histogram: Vec<SizeBin>,
    /// The leak detector's reading of this site's live bytes over the snapshot window (`None`
    /// with fewer than two snapshots).
    pub pattern: Option<Pattern>,
    /// With `pattern` `insufficient_evidence`: about how many more snapshots the leak detector
    /// needs before it can judge this site.
    #[serde(default)]
    pub needs_snapshots: Option<u64>,
    /// First and last allocation sampled here, milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    /// See `first_seen_ms`.
    pub last_seen_ms: u64,
    /// The labels its allocations were made under ([`crate::label()`]); one call stack under
    /// two label sets is two sites. Empty (and absent from JSON) when unlabelled.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// How many sites [`Peak::sites`] lists at most.
pub const PEAK_SITES: usize = 20;

/// The peak: the call sites that were live when the estimated live heap was highest
/// ([`Report::peak`]).
///
/// The drain records the peak as it applies events, in steps: a new peak is recorded when the
/// live heap passes the last record by more than `step_bytes` (1/64 of the record, or one
/// sampling mean, whichever is larger). So the highest live heap the profile reached lies
/// between `live_bytes` and `live_bytes + step_bytes`, and the sites are those live at the
/// recorded moment. Figures are estimated unless [`Report::exact`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Peak {
    /// When the peak was recorded, seconds since the profiler started.
    pub seconds_since_start: f64,
    /// When the peak was recorded, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The estimated live heap at the peak, bytes.
    pub live_bytes: u64,
    /// The record's resolution: the highest live heap reached is at most this many bytes above
    /// `live_bytes`.
    pub step_bytes: u64,
    /// The sites live at the peak (merged by label set and user stack as [`Report::sites`]
    /// are), by live bytes at the peak, largest first; at most [`PEAK_SITES`].
    pub sites: Vec<PeakSite>,
}

/// A call site live at the peak ([`Peak::sites`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct PeakSite {
    /// The site with this stack now (as [`Site::id`]); `None` if the site table has merged the
    /// stack into an "other" site since.
    pub site_id: Option<u64>,
    /// The stack, innermost first, as [`Site::frames`].
    pub frames: Vec<Frame>,
    /// The frame a person would blame, as [`Site::blamed`].
    pub blamed: Option<Frame>,
    /// Bytes allocated here and live at the peak.
    pub live_bytes_at_peak: u64,
    /// Blocks allocated here and live at the peak.
    pub live_count_at_peak: u64,
    /// Bytes allocated here and live now (`None` if `site_id` is).
    pub live_bytes_now: Option<u64>,
    /// The labels its allocations were made under, as [`Site::labels`].
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

/// The outermost frame of an "other" site: the call stacks merged by the site table's budget
/// ([`Report::site_table`]) under their common innermost frames ([`Site::is_other`]).
pub const OTHER_FRAME: &str = "[heaptide: other call stacks]";

/// The profiler's own figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ProfilerStats {
    /// Allocation samples taken.
    pub samples: u64,
    /// Samples lost because memory was short (no memory for an overflow node, or the sampled
    /// arena could not serve the block); never silent. A full ring loses nothing: the sampling
    /// thread helps the drain or yields until there is room, so estimates keep their weight.
    pub dropped: u64,
    /// Bytes the profiler itself holds: measured with jemalloc's per-thread counters around all
    /// of its own code (rings, symbol cache, aggregation), plus the headers of live sampled
    /// blocks (exact: 32 bytes or the alignment, per live sample), plus the sampling threads'
    /// sampled-block caches (jemalloc metadata the counters do not see: the size of one cache,
    /// measured at start-up, about 29 KiB, times the threads alive that have one), plus the
    /// sampled arena's slack: its resident pages (measured, `sampled_arena_resident_bytes`)
    /// beyond the live sampled blocks' requested bytes and headers. In exact mode, where every
    /// block lives in that arena, the slack includes the rounding and fragmentation a bare
    /// jemalloc would have too, so the figure is an upper bound there.
    pub overhead_bytes: u64,
    /// Threads that ever took a sample (ring slots created; slots are reused after exit).
    pub thread_slots: u64,
    /// Live samples held by the drain.
    pub live_samples: u64,
    /// Frees seen before their allocation and still waiting for it (normally 0 after a flush).
    pub pending_frees: u64,
    /// Addresses in the symbol cache.
    pub symbols_cached: u64,
    /// Memory of all thread rings (included in `overhead_bytes`).
    pub ring_bytes: u64,
    /// Address space reserved for sampled blocks (not memory: `PROT_NONE`, no swap).
    pub reserved_bytes: u64,
    /// Part of the reservation jemalloc has taken for sampled blocks so far (address space
    /// made read-write; see `sampled_arena_resident_bytes` for the memory).
    pub sampled_arena_bytes: u64,
    /// Resident pages of the sampled range, measured (`mincore`): the live sampled blocks and
    /// their headers, plus what `overhead_bytes` counts as the sampled arena's slack (size-class
    /// rounding, slabs kept by a lone sample, freed pages awaiting their purge after 1 s).
    #[serde(default)]
    pub sampled_arena_resident_bytes: u64,
    /// Ring buffers of exited threads freed since start (beyond the 16 kept for reuse).
    #[serde(default)]
    pub rings_freed: u64,
    /// Times a thread waited for the drain because a backlog was at its mark (1,024 events in
    /// sampled mode, 65,536 in exact mode, or 32 MiB of freed sampled blocks): it helped the
    /// drain or yielded instead of dropping the sample or holding the memory. Frequent waits
    /// mean the program allocates faster than the profiler applies events.
    #[serde(default)]
    pub backlog_waits: u64,
    /// How stacks are captured: "frame pointers" (built with `-C force-frame-pointers=yes`)
    /// or "DWARF unwinding".
    pub stack_walker: String,
    /// Full reports built since start (this one included; reports for dumps, the API, the HTTP
    /// endpoints and the alerts).
    #[serde(default)]
    pub reports_built: u64,
}

impl Site {
    /// The innermost frame that is not allocation plumbing (the standard library's frames,
    /// known by their source file, or by name without debug info): usually the function a
    /// person would blame. The same as [`blamed`](Self::blamed), also for a report read back
    /// from JSON written before that field existed.
    pub fn blamed_frame(&self) -> Option<&Frame> {
        self.blamed
            .as_ref()
            .or_else(|| from_blamed(&self.frames).first())
    }

    /// Whether this is an "other" site: call stacks merged by the site table's budget
    /// ([`Report::site_table`]), whose frames are their common innermost frames, then
    /// [`OTHER_FRAME`].
    pub fn is_other(&self) -> bool {
        self.frames
            .last()
            .is_some_and(|f| f.function == OTHER_FRAME)
    }

    /// Whether any frame's function name contains `needle`.
    pub fn mentions(&self, needle: &str) -> bool {
        self.frames.iter().any(|f| f.function.contains(needle))
    }
}

impl Report {
    /// Sites ranked by live bytes, largest first (at most `n`, only sites with live bytes).
    pub fn top_by_live(&self, n: usize) -> Vec<&Site> {
        let mut sites: Vec<&Site> = self.sites.iter().filter(|s| s.live_bytes > 0).collect();
        sites.sort_by_key(|s| std::cmp::Reverse(s.live_bytes));
        sites.truncate(n);
        sites
    }

    /// Sites ranked by allocated bytes, largest first (at most `n`).
    pub fn top_by_alloc(&self, n: usize) -> Vec<&Site> {
        let mut sites: Vec<&Site> = self.sites.iter().collect();
        sites.sort_by_key(|s| std::cmp::Reverse(s.alloc_bytes));
        sites.truncate(n);
        sites
    }

    /// Sites with a frame whose function name contains `needle`.
    pub fn sites_mentioning<'a>(&'a self, needle: &'a str) -> impl Iterator<Item = &'a Site> + 'a {
        self.sites.iter().filter(move |s| s.mentions(needle))
    }
}

impl Report {
    /// Writes the report as JSON (the schema is documented in `docs/report-schema.md`).
    pub fn write_json(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    }

    /// Writes the human-readable text report (the same as `Display`).
    pub fn write_text(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        write!(w, "{self}")
    }
}
