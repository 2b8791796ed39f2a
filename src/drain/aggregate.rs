//! Per-site aggregation: events in, estimated bytes and counts per call site out.
//!
//! A site is a deduplicated raw stack (as captured: heaptide's own frames on top; reports
//! trim them and merge sites that then coincide). Each sampled allocation adds its weight (see [`crate::sample::weight`]) to its
//! site's allocated and live figures; when the sample dies, the same weight leaves the live
//! figures. Weights are fixed per object when it is sampled, so a free always removes exactly
//! what its allocation added.

use std::collections::VecDeque;

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use hdrhistogram::Histogram;

use super::ledger::{Ledger, LiveSample, Settled};
use super::peak::{Peak, PeakSite};
use super::scope::Scope;
use crate::buffer::event::{LABEL_SETS, Record};
use crate::sample::weight::weight;

/// Figures of one call site: about 150 bytes plus its frames; the size and lifetime
/// histograms hold only the bins in use (see [`SizeBins`], [`SiteLifetimes`]).
#[derive(Debug, Clone)]
pub(crate) struct SiteStats {
    /// Return addresses, innermost first, as captured (heaptide's own frames on top); shared
    /// with the table's index. An "other" site's frames are the common innermost frames of
    /// the stacks merged into it (see [`Aggregate`]).
    pub(crate) frames: Arc<[usize]>,
    /// The label set of its samples (`label::table`; 0: none): one stack under two label
    /// sets is two sites.
    pub(crate) label: u32,
    pub(crate) fig: Figures,
    /// Samples of this site that are live.
    pub(crate) live_samples: u64,
    /// Estimated allocations by size: bin `i` holds sizes in `[2^i, 2^(i+1))`.
    pub(crate) sizes: SizeBins,
    /// Lifetimes of the site's dead samples (weighted by the objects each stands for).
    pub(crate) lifetimes: SiteLifetimes,
    /// Stacks merged into this site by the table's budget (0: an ordinary site).
    pub(crate) merged: u64,
}

impl SiteStats {
    fn new(frames: Arc<[usize]>, label: u32) -> Self {
        SiteStats {
            frames,
            label,
            fig: Figures::default(),
            live_samples: 0,
            sizes: SizeBins::default(),
            lifetimes: SiteLifetimes::default(),
            merged: 0,
        }
    }

    /// Estimated bytes this site costs the table: its struct and map entries (with the
    /// maps' usual slack), its frames and its histograms' bins.
    fn cost(&self) -> usize {
        SITE_FIXED_BYTES
            + self.frames.len() * size_of::<usize>()
            + self.sizes.0.capacity() * size_of::<(u8, f64)>()
            + self.lifetimes.0.capacity() * size_of::<u64>()
    }

    /// Adds `other`'s figures to this site's.
    fn absorb(&mut self, other: &SiteStats) {
        self.fig.add(&other.fig);
        self.live_samples += other.live_samples;
        self.sizes.absorb(&other.sizes);
        self.lifetimes.absorb(&other.lifetimes);
        self.merged += other.merged.max(1);
    }
}

/// A call site's scalar figures (estimated allocations and bytes, all and live; samples taken;
/// first and last sample, monotonic ns).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Figures {
    pub(crate) alloc_count: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) live_count: f64,
    pub(crate) live_bytes: f64,
    pub(crate) samples: u64,
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
}

impl Figures {
    /// Adds another site's figures (the first and last sample of both).
    pub(crate) fn add(&mut self, other: &Figures) {
        if other.samples > 0 {
            self.first_ns = if self.samples == 0 {
                other.first_ns
            } else {
                self.first_ns.min(other.first_ns)
            };
            self.last_ns = self.last_ns.max(other.last_ns);
        }
        self.alloc_count += other.alloc_count;
        self.alloc_bytes += other.alloc_bytes;
        self.live_count += other.live_count;
        self.live_bytes += other.live_bytes;
        self.samples += other.samples;
    }
}

/// Takes a dead sample's weight off live figures and their count of live samples; with no
/// live sample left they are exactly 0 (no rounding residue).
fn take_live(fig: &mut Figures, live_samples: &mut u64, sample: &LiveSample) {
    fig.live_count = (fig.live_count - sample.count_weight).max(0.0);
    fig.live_bytes = (fig.live_bytes - sample.bytes_weight).max(0.0);
    *live_samples = live_samples.saturating_sub(1);
    if *live_samples == 0 {
        fig.live_count = 0.0;
        fig.live_bytes = 0.0;
    }
}

/// Fixed part of a site's cost: the struct in the site map, its entry in the index (frames
/// pointer and id), the shared frames' reference counts, hash-map control bytes, all times 1.5
/// for the maps' spare capacity.
const SITE_FIXED_BYTES: usize =
    (size_of::<SiteStats>() + 4 + size_of::<Arc<[usize]>>() + 4 + 2) * 3 / 2 + 16;

/// A site's size histogram: `(bin, estimated allocations)` for the bins in use, by bin.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SizeBins(Vec<(u8, f64)>);

impl SizeBins {
    /// Adds `count` allocations to the bin of `size`.
    fn add(&mut self, size: u64, count: f64) {
        let bin = (63 - size.max(1).leading_zeros() as usize).min(SIZE_BINS - 1) as u8;
        self.add_bin(bin, count);
    }

    fn add_bin(&mut self, bin: u8, count: f64) {
        match self.0.binary_search_by_key(&bin, |&(b, _)| b) {
            Ok(i) => self.0[i].1 += count,
            Err(i) => self.0.insert(i, (bin, count)),
        }
    }

    fn absorb(&mut self, other: &SizeBins) {
        for &(bin, count) in &other.0 {
            self.add_bin(bin, count);
        }
    }

    /// `(bin, estimated allocations)`, by bin.
    pub(crate) fn bins(&self) -> &[(u8, f64)] {
        &self.0
    }
}

/// Percentiles of durations, nanoseconds, weighted by the allocations each sample stands for:
/// how long freed allocations lived (a report's and a site's `lifetime_ns`), or how old a
/// leak's live objects are ([`Leak::age_ns`](crate::report::Leak::age_ns)). Values are
/// histogram bins: within 1% for the process-wide lifetimes and for ages, within 6.25% per
/// site.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurationPercentiles {
    /// Allocations these figures describe (estimated): the freed ones for lifetimes, the live
    /// ones for ages.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Longest (clamped at about 13 days).
    pub max: u64,
}

/// A site's lifetime histogram, sparse: one `u64` per bin in use (the bin's key in the top 16
/// bits, its count in the low 48, saturating), by key. The bins are those of a one-digit
/// hdrhistogram (16 per power of two: within 6.25%); [`SiteLifetimes::add_to`] gives the
/// same figures as recording into one directly, at 8 bytes per bin in use instead of about
/// 6 KiB per site.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SiteLifetimes(Vec<u64>);

const COUNT_BITS: u32 = 48;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// The bin of a lifetime: its key (ordered as the values) and the lowest value in it.
fn lifetime_bin(ns: u64) -> (u64, u64) {
    let v = ns.clamp(1, MAX_LIFETIME_NS);
    let bits = 64 - v.leading_zeros();
    if bits <= 5 {
        return (v, v);
    }
    let shift = bits - 5;
    let m = v >> shift;
    ((u64::from(shift) << 5) | m, m << shift)
}

/// The lowest value of the bin with key `key`.
fn lifetime_bin_low(key: u64) -> u64 {
    if key < 32 {
        key
    } else {
        (key & 31) << (key >> 5)
    }
}

impl SiteLifetimes {
    /// Records `objects` lifetimes of `ns`.
    fn record(&mut self, ns: u64, objects: u64) {
        self.add_key(lifetime_bin(ns).0, objects);
    }

    fn add_key(&mut self, key: u64, objects: u64) {
        let i = self.0.partition_point(|&e| e >> COUNT_BITS < key);
        match self.0.get_mut(i) {
            Some(e) if *e >> COUNT_BITS == key => {
                let count = ((*e & COUNT_MASK) + objects).min(COUNT_MASK);
                *e = (key << COUNT_BITS) | count;
            }
            _ => self
                .0
                .insert(i, (key << COUNT_BITS) | objects.min(COUNT_MASK)),
        }
    }

    fn absorb(&mut self, other: &SiteLifetimes) {
        for &e in &other.0 {
            self.add_key(e >> COUNT_BITS, e & COUNT_MASK);
        }
    }

    /// Adds these lifetimes to `h` (a one-digit [`lifetime_histogram`] gives exact bins).
    pub(crate) fn add_to(&self, h: &mut Histogram<u64>) {
        for &e in &self.0 {
            let _ = h.record_n(lifetime_bin_low(e >> COUNT_BITS), e & COUNT_MASK);
        }
    }
}

/// Power-of-two size bins per site (up to 2^47 bytes; larger sizes land in the last bin).
pub(crate) const SIZE_BINS: usize = 48;

/// The five size buckets of docs/design.md, section 5: names and inclusive lower bounds.
pub(crate) const BUCKETS: [(&str, u64); 5] = [
    ("tiny", 0),
    ("small", 64),
    ("medium", 1024),
    ("large", 64 * 1024),
    ("huge", 1024 * 1024),
];

/// Bucket of a size.
pub(crate) fn bucket_of(size: u64) -> usize {
    BUCKETS
        .iter()
        .rposition(|&(_, min)| size >= min)
        .unwrap_or(0)
}

/// Figures of one size bucket (estimated).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct BucketStats {
    pub(crate) alloc_count: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) live_count: f64,
    pub(crate) live_bytes: f64,
}

/// Longest lifetime the histograms resolve (about 13 days); longer ones are clamped.
const MAX_LIFETIME_NS: u64 = 1 << 50;

/// A lifetime histogram. Per site: one significant digit (bins within 6.25%, about 6 KiB);
/// the process-wide one: two digits.
pub(crate) fn lifetime_histogram(digits: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LIFETIME_NS, digits).expect("valid histogram bounds")
}

/// Allocation totals at one moment, for the recent allocation rate.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RatePoint {
    pub(crate) time_ns: u64,
    pub(crate) alloc_count: f64,
    pub(crate) alloc_bytes: f64,
}

/// How far back the recent allocation rate looks.
pub(crate) const RATE_WINDOW_NS: u64 = 10_000_000_000;

/// The table's default budget: this, or 1% of the live heap if that is more.
pub(crate) const DEFAULT_SITE_BUDGET: u64 = 64 << 20;

/// Innermost frames (as captured, heaptide's own included) an "other" site keeps of the
/// stacks merged into it, while "other" sites hold less than half the budget; past that,
/// stacks are merged into one "other" site with no frames.
pub(crate) const OTHER_FRAMES: usize = 16;

/// The call-site table's budget and what it merged.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TableStats {
    pub(crate) budget_bytes: u64,
    pub(crate) bytes: u64,
    pub(crate) sites: u64,
    pub(crate) other_sites: u64,
    pub(crate) merged_stacks: u64,
    pub(crate) merged_alloc_bytes: f64,
    pub(crate) merged_alloc_count: f64,
}

/// Everything the drain has accumulated.
///
/// Call sites live in a table bounded by a budget ([`DEFAULT_SITE_BUDGET`] or 1% of the live
/// heap, whichever is larger; `HEAPTIDE_SITE_BUDGET`), counted from the sizes of each site's
/// parts. Past it the coldest sites (the least live bytes, then the least allocated bytes, then
/// the longest unused) are merged, a quarter of the budget at a time, into an "other" site per
/// label set and truncated stack ([`OTHER_FRAMES`]); "other" sites are never merged again. Every figure of a
/// merged site moves into its "other" site, so totals stay exact; its live samples still name
/// the merged site's id, which resolves to the "other" site until they die.
#[derive(Debug)]
pub(crate) struct Aggregate {
    mean: u64,
    ledger: Ledger,
    /// Site ids of the ordinary sites, by label set, then stack.
    index: HashMap<u32, HashMap<Arc<[usize]>, u32>>,
    /// Site ids of the "other" sites, by label set, then truncated stack.
    others: HashMap<u32, HashMap<Arc<[usize]>, u32>>,
    sites: HashMap<u32, SiteStats>,
    next_id: u32,
    /// Merged sites that still have live samples: the "other" site they went to and how many.
    redirect: HashMap<u32, (u32, u64)>,
    /// The configured budget (`None`: the default rule).
    budget: Option<u64>,
    /// Estimated bytes of the table (sum of [`SiteStats::cost`]).
    table_bytes: usize,
    /// Eviction waits until the table exceeds this too (set when an eviction could not get
    /// under its target, so a table of "other" sites alone does not evict on every event).
    evict_floor: usize,
    merged_stacks: u64,
    merged_alloc_bytes: f64,
    merged_alloc_count: f64,
    /// Whether the budget's stderr line was printed.
    warned: bool,
    /// [`Aggregate::evict_at`] as of the last check (each pass and each time the table grew
    /// past it), so that an event does not work out the budget.
    check_at: usize,
    /// Allocation events seen (samples taken).
    pub(crate) samples: u64,
    /// Estimated totals over all sites since start.
    pub(crate) alloc_count: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) buckets: [BucketStats; 5],
    /// Lifetimes of all dead samples.
    pub(crate) lifetimes: Histogram<u64>,
    /// When the allocator started, monotonic ns.
    pub(crate) started_ns: u64,
    /// Totals about once a second over the last [`RATE_WINDOW_NS`], oldest first.
    pub(crate) rate_points: VecDeque<RatePoint>,
    /// `heaptide::testing` scopes with events, by scope id.
    scopes: HashMap<u64, Scope>,
    /// Figures by label set, unlabelled samples too, indexed by label set id (below
    /// [`LABEL_SETS`]); sets without samples hold zeros.
    labels: Vec<LabelStats>,
    /// The sites live at the highest estimated live heap so far.
    peak: Peak,
}

/// The figures of the samples that carried one label set.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LabelStats {
    pub(crate) fig: Figures,
    /// Its samples that are live.
    pub(crate) live_samples: u64,
}

impl Aggregate {
    /// An empty aggregate for sampling with mean `mean` bytes (1: exact) and a site budget
    /// (`None`: the default rule).
    pub(crate) fn new(mean: u64, budget: Option<u64>) -> Self {
        Self {
            mean,
            ledger: Ledger::default(),
            index: HashMap::default(),
            others: HashMap::default(),
            sites: HashMap::default(),
            next_id: 0,
            redirect: HashMap::default(),
            budget,
            table_bytes: 0,
            evict_floor: 0,
            merged_stacks: 0,
            merged_alloc_bytes: 0.0,
            merged_alloc_count: 0.0,
            warned: false,
            check_at: budget.unwrap_or(DEFAULT_SITE_BUDGET) as usize,
            samples: 0,
            alloc_count: 0.0,
            alloc_bytes: 0.0,
            buckets: [BucketStats::default(); 5],
            lifetimes: lifetime_histogram(2),
            started_ns: crate::state::started_ns(),
            rate_points: VecDeque::new(),
            scopes: HashMap::default(),
            labels: Vec::new(),
            peak: Peak::default(),
        }
    }

    /// Figures by label set (label set id, figures), in no order.
    pub(crate) fn labels(&self) -> impl Iterator<Item = (u32, &LabelStats)> {
        self.labels
            .iter()
            .enumerate()
            .filter(|(_, l)| l.fig.samples > 0)
            .map(|(id, l)| (id as u32, l))
    }

    /// The peak record ([`super::peak`]).
    pub(crate) fn peak(&self) -> &Peak {
        &self.peak
    }

    /// The sampling mean the weights use (1: exact).
    pub(crate) fn mean(&self) -> u64 {
        self.mean
    }

    /// After an allocation event: records a new peak of the estimated live heap, with the
    /// sites live then, if the heap passed the record by a step ([`super::peak`]).
    fn check_peak(&mut self, time_ns: u64) {
        let live: f64 = self.buckets.iter().map(|b| b.live_bytes).sum();
        if !self.peak.is_new(live, self.mean) {
            return;
        }
        let sites = self
            .sites
            .iter()
            .filter(|(_, s)| s.fig.live_bytes > 0.0)
            .map(|(&id, s)| PeakSite {
                id,
                frames: s.frames.clone(),
                label: s.label,
                live_bytes: s.fig.live_bytes,
                live_count: s.fig.live_count,
                other: s.merged > 0,
            });
        self.peak.record(live, time_ns, sites);
    }

    /// The call sites, by id (in no order).
    pub(crate) fn sites(&self) -> impl Iterator<Item = (u32, &SiteStats)> {
        self.sites.iter().map(|(&id, s)| (id, s))
    }

    /// A site by id.
    pub(crate) fn site(&self, id: u32) -> Option<&SiteStats> {
        self.sites.get(&id)
    }

    /// Distinct sites in the table.
    pub(crate) fn site_count(&self) -> usize {
        self.sites.len()
    }

    /// The current id of a site id a live sample or a tracking scope holds: itself, or the
    /// "other" site it was merged into (`None`: merged, and none of its samples is live).
    pub(crate) fn resolve(&self, id: u32) -> Option<u32> {
        if self.sites.contains_key(&id) {
            Some(id)
        } else {
            self.redirect.get(&id).map(|&(to, _)| to)
        }
    }

    /// The frames of a site (see [`Aggregate::resolve`]).
    pub(crate) fn frames_of(&self, id: u32) -> Option<Arc<[usize]>> {
        let id = self.resolve(id)?;
        self.sites.get(&id).map(|s| s.frames.clone())
    }

    /// The budget in force: the configured one, or the default rule on the live heap.
    pub(crate) fn budget_bytes(&self) -> u64 {
        self.budget.unwrap_or_else(|| {
            let live: f64 = self.buckets.iter().map(|b| b.live_bytes).sum();
            DEFAULT_SITE_BUDGET.max((live / 100.0) as u64)
        })
    }

    /// The table's budget and what it merged.
    pub(crate) fn table(&self) -> TableStats {
        TableStats {
            budget_bytes: self.budget_bytes(),
            bytes: self.table_bytes as u64,
            sites: self.sites.len() as u64,
            other_sites: self.others.values().map(|m| m.len() as u64).sum(),
            merged_stacks: self.merged_stacks,
            merged_alloc_bytes: self.merged_alloc_bytes,
            merged_alloc_count: self.merged_alloc_count,
        }
    }

    /// Called after each drain pass: keeps a point for the recent allocation rate.
    pub(crate) fn tick(&mut self, now_ns: u64) {
        self.check_at = self.evict_at();
        if self
            .rate_points
            .back()
            .is_some_and(|p| now_ns < p.time_ns + 1_000_000_000)
        {
            return;
        }
        self.rate_points.push_back(RatePoint {
            time_ns: now_ns,
            alloc_count: self.alloc_count,
            alloc_bytes: self.alloc_bytes,
        });
        // Keep one point at least a window old, so the window is always covered.
        while self.rate_points.len() > 2
            && now_ns.saturating_sub(self.rate_points[1].time_ns) >= RATE_WINDOW_NS
        {
            self.rate_points.pop_front();
        }
    }

    /// Removes and returns a tracking scope's record (`None`: it recorded nothing).
    pub(crate) fn take_scope(&mut self, scope: u64) -> Option<Scope> {
        self.scopes.remove(&scope)
    }

    /// A tracking scope's record, if it has one.
    pub(crate) fn scope(&self, scope: u64) -> Option<&Scope> {
        self.scopes.get(&scope)
    }

    /// Records one event.
    pub(crate) fn apply(&mut self, record: Record<'_>) {
        match record {
            Record::Alloc {
                id,
                time_ns,
                size,
                scope,
                label,
                frames,
            } => {
                self.samples += 1;
                let site = self.intern(label, frames);
                let (count_weight, bytes_weight) = if scope != 0 {
                    // Tracked: recorded with certainty, so it stands for itself alone.
                    (1.0, size as f64)
                } else {
                    weight(size, self.mean)
                };
                self.alloc_count += count_weight;
                self.alloc_bytes += bytes_weight;
                let b = &mut self.buckets[bucket_of(size)];
                b.alloc_count += count_weight;
                b.alloc_bytes += bytes_weight;
                b.live_count += count_weight;
                b.live_bytes += bytes_weight;
                if scope != 0 {
                    self.scopes
                        .entry(scope)
                        .or_default()
                        .alloc(site, size, time_ns);
                }
                let fig = Figures {
                    alloc_count: count_weight,
                    alloc_bytes: bytes_weight,
                    live_count: count_weight,
                    live_bytes: bytes_weight,
                    samples: 1,
                    first_ns: time_ns,
                    last_ns: time_ns,
                };
                // Ids are below `LABEL_SETS`; anything else would be a bug, counted in the
                // last place rather than growing the table.
                let at = (label as usize).min(LABEL_SETS - 1);
                if at >= self.labels.len() {
                    self.labels.resize(at + 1, LabelStats::default());
                }
                let l = &mut self.labels[at];
                l.fig.add(&fig);
                l.live_samples += 1;
                let s = self.sites.get_mut(&site).expect("interned site");
                let cap = s.sizes.0.capacity();
                s.sizes.add(size, count_weight);
                self.table_bytes += (s.sizes.0.capacity() - cap) * size_of::<(u8, f64)>();
                s.fig.add(&fig);
                s.live_samples += 1;
                let sample = LiveSample {
                    site,
                    size,
                    count_weight,
                    bytes_weight,
                    born_ns: time_ns,
                    scope,
                };
                if let Settled::Died(sample, freed_ns) = self.ledger.alloc(id, sample) {
                    self.retire(sample, freed_ns);
                }
                self.check_peak(time_ns);
            }
            Record::Free { id, time_ns } => {
                if let Settled::Died(sample, freed_ns) = self.ledger.free(id, time_ns) {
                    self.retire(sample, freed_ns);
                }
            }
        }
        if self.table_bytes > self.check_at {
            if self.table_bytes > self.evict_at() {
                self.evict();
            }
            self.check_at = self.evict_at();
        }
    }

    fn retire(&mut self, sample: LiveSample, freed_ns: u64) {
        let b = &mut self.buckets[bucket_of(sample.size)];
        b.live_count = (b.live_count - sample.count_weight).max(0.0);
        b.live_bytes = (b.live_bytes - sample.bytes_weight).max(0.0);
        if sample.scope != 0
            && let Some(scope) = self.scopes.get_mut(&sample.scope)
        {
            scope.free(sample.site, sample.size, freed_ns);
        }
        let lifetime = freed_ns
            .saturating_sub(sample.born_ns)
            .clamp(1, MAX_LIFETIME_NS);
        let objects = (sample.count_weight.round() as u64).max(1);
        let _ = self.lifetimes.record_n(lifetime, objects);
        let s = match self.sites.get_mut(&sample.site) {
            Some(s) => s,
            None => {
                let Some(to) = self.redirect_death(sample.site) else {
                    return;
                };
                self.sites.get_mut(&to).expect("an \"other\" site")
            }
        };
        let cap = s.lifetimes.0.capacity();
        s.lifetimes.record(lifetime, objects);
        self.table_bytes += (s.lifetimes.0.capacity() - cap) * size_of::<u64>();
        take_live(&mut s.fig, &mut s.live_samples, &sample);
        if let Some(l) = self.labels.get_mut((s.label as usize).min(LABEL_SETS - 1)) {
            take_live(&mut l.fig, &mut l.live_samples, &sample);
        }
    }

    /// The "other" site a dying sample of a merged site leaves (the redirect ends with the
    /// merged site's last live sample).
    fn redirect_death(&mut self, id: u32) -> Option<u32> {
        let entry = self.redirect.get_mut(&id)?;
        let to = entry.0;
        entry.1 -= 1;
        if entry.1 == 0 {
            self.redirect.remove(&id);
        }
        Some(to)
    }

    /// The site of a raw stack. No symbols are looked up here: the drain must keep up with
    /// the rings, and the first symbol lookup loads debug info (can take a second).
    fn intern(&mut self, label: u32, frames: &[usize]) -> u32 {
        if let Some(&id) = self.index.get(&label).and_then(|m| m.get(frames)) {
            return id;
        }
        let frames: Arc<[usize]> = frames.into();
        let id = self.new_id();
        self.index
            .entry(label)
            .or_default()
            .insert(frames.clone(), id);
        let site = SiteStats::new(frames, label);
        self.table_bytes += site.cost();
        self.sites.insert(id, site);
        id
    }

    fn new_id(&mut self) -> u32 {
        // Ids are not reused while anything may still name them (4 billion sites).
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        id
    }

    /// The table size past which [`Aggregate::evict`] runs.
    fn evict_at(&self) -> usize {
        (self.budget_bytes() as usize).max(self.evict_floor)
    }

    /// Merges the coldest ordinary sites into "other" sites until the table is within three
    /// quarters of its budget.
    fn evict(&mut self) {
        let budget = self.budget_bytes() as usize;
        let target = budget / 4 * 3;
        if !self.warned {
            self.warned = true;
            crate::diag::stderr_line(format_args!(
                "heaptide: the call-site table reached its budget of {} (HEAPTIDE_SITE_BUDGET); the coldest call stacks are merged into \"other\" sites from now on; totals stay exact",
                crate::config::ByteSize(budget as u64)
            ));
        }
        let mut other_bytes: usize = self
            .others
            .values()
            .flat_map(|m| m.values())
            .map(|id| self.sites[id].cost())
            .sum();
        let mut cold: Vec<(f64, f64, u64, u32)> = self
            .sites
            .iter()
            .filter(|(_, s)| s.merged == 0)
            .map(|(&id, s)| (s.fig.live_bytes, s.fig.alloc_bytes, s.fig.last_ns, id))
            .collect();
        cold.sort_unstable_by(|a, b| {
            a.0.total_cmp(&b.0)
                .then(a.1.total_cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        for (_, _, _, id) in cold {
            if self.table_bytes <= target {
                break;
            }
            let site = self.sites.remove(&id).expect("listed site");
            self.table_bytes -= site.cost();
            if let Some(m) = self.index.get_mut(&site.label) {
                m.remove(&site.frames);
                if m.is_empty() {
                    self.index.remove(&site.label);
                }
            }
            let keep = if other_bytes > budget / 2 {
                0
            } else {
                OTHER_FRAMES.min(site.frames.len())
            };
            let known = self
                .others
                .get(&site.label)
                .and_then(|m| m.get(&site.frames[..keep]));
            let to = match known {
                Some(&to) => to,
                None => {
                    let frames: Arc<[usize]> = site.frames[..keep].into();
                    let to = self.new_id();
                    self.others
                        .entry(site.label)
                        .or_default()
                        .insert(frames.clone(), to);
                    let other = SiteStats::new(frames, site.label);
                    let cost = other.cost();
                    self.table_bytes += cost;
                    other_bytes += cost;
                    self.sites.insert(to, other);
                    to
                }
            };
            let other = self.sites.get_mut(&to).expect("other site");
            let before = other.cost();
            other.absorb(&site);
            let grew = other.cost() - before;
            self.table_bytes += grew;
            other_bytes += grew;
            self.merged_stacks += 1;
            self.merged_alloc_bytes += site.fig.alloc_bytes;
            self.merged_alloc_count += site.fig.alloc_count;
            if site.live_samples > 0 {
                self.redirect.insert(id, (to, site.live_samples));
            }
        }
        self.evict_floor = if self.table_bytes > target {
            self.table_bytes + budget / 4
        } else {
            0
        };
    }

    /// Ages (`now_ns` minus birth) of the live samples of each group of raw sites, weighted by
    /// the objects each sample stands for.
    pub(crate) fn live_ages(&self, groups: &[Vec<u32>], now_ns: u64) -> Vec<Histogram<u64>> {
        let mut group_of: HashMap<u32, usize> = HashMap::default();
        for (g, sites) in groups.iter().enumerate() {
            for &site in sites {
                group_of.insert(site, g);
            }
        }
        let mut out: Vec<Histogram<u64>> = groups.iter().map(|_| lifetime_histogram(2)).collect();
        for (_, sample) in self.ledger.live() {
            if let Some(&g) = self.resolve(sample.site).and_then(|id| group_of.get(&id)) {
                let age = now_ns
                    .saturating_sub(sample.born_ns)
                    .clamp(1, MAX_LIFETIME_NS);
                let objects = (sample.count_weight.round() as u64).max(1);
                let _ = out[g].record_n(age, objects);
            }
        }
        out
    }

    /// Live samples, frees still waiting for their allocation, and the live samples' requested
    /// bytes.
    pub(crate) fn ledger_sizes(&self) -> (usize, usize, u64) {
        (
            self.ledger.live_samples(),
            self.ledger.pending_frees(),
            self.ledger.live_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies an allocation of `size` bytes at `time_ns` whose stack is numbered `stack`.
    fn alloc(agg: &mut Aggregate, id: u64, stack: u64, size: u64, time_ns: u64) {
        let mut frames = [0usize; 24];
        // Distinct stacks that share their innermost frames, as real ones do.
        for (i, f) in frames.iter_mut().enumerate() {
            *f = 0x1000 + i * 16 + if i >= 20 { stack as usize * 4096 } else { 0 };
        }
        agg.apply(Record::Alloc {
            id,
            time_ns,
            size,
            scope: 0,
            label: 0,
            frames: &frames,
        });
    }

    fn free(agg: &mut Aggregate, id: u64, time_ns: u64) {
        agg.apply(Record::Free { id, time_ns });
    }

    fn site_sums(agg: &Aggregate) -> (f64, f64, f64, u64) {
        agg.sites()
            .fold((0.0, 0.0, 0.0, 0), |(a, b, c, d), (_, s)| {
                (
                    a + s.fig.alloc_count,
                    b + s.fig.alloc_bytes,
                    c + s.fig.live_bytes,
                    d + s.live_samples,
                )
            })
    }

    /// Past its budget the table merges the coldest stacks into "other" sites; the sites' sums
    /// stay equal to the totals, live samples of merged sites die into their "other" site, and
    /// the table stays within its budget.
    #[test]
    fn budget_merges_cold_sites_and_keeps_totals() {
        let budget = 64 << 10;
        let mut agg = Aggregate::new(1, Some(budget));
        agg.warned = true; // no stderr line from a unit test
        let n = 5_000u64;
        for i in 0..n {
            alloc(&mut agg, i, i, 16 + i % 100, 1 + i);
            assert!(agg.table().bytes <= budget, "{:?}", agg.table());
        }
        let t = agg.table();
        assert!(t.merged_stacks > 4_000, "{t:?}");
        assert!(t.other_sites >= 1 && t.sites < 300, "{t:?}");
        let (ac, ab, lb, ls) = site_sums(&agg);
        assert_eq!(ac, n as f64);
        assert_eq!(ab, agg.alloc_bytes);
        assert_eq!(lb, ab);
        assert_eq!(ls, n);
        assert!(t.merged_alloc_count > 4_000.0, "{t:?}");
        // Free every other block: the live figures leave the right sites, wherever they went.
        for i in (0..n).step_by(2) {
            free(&mut agg, i, 10_000 + i);
        }
        let (_, _, lb, ls) = site_sums(&agg);
        let live: f64 = agg.buckets.iter().map(|b| b.live_bytes).sum();
        assert_eq!(ls, n / 2);
        assert_eq!(lb, live);
        for i in (1..n).step_by(2) {
            free(&mut agg, i, 10_000 + i);
        }
        let (_, _, lb, ls) = site_sums(&agg);
        assert_eq!((lb, ls), (0.0, 0));
        assert!(agg.redirect.is_empty());
    }

    /// Hot sites (live bytes) survive; the merged ones are the cold ones.
    #[test]
    fn the_hottest_sites_stay() {
        let mut agg = Aggregate::new(1, Some(64 << 10));
        agg.warned = true;
        alloc(&mut agg, 0, 0, 1 << 20, 1);
        // Under miri (interpreted, minutes per thousand sites) fewer sites: still well past
        // the budget's few hundred.
        let sites: u64 = if cfg!(miri) { 700 } else { 2_000 };
        for i in 1..sites {
            alloc(&mut agg, i, i, 8, 1 + i);
            free(&mut agg, i, 2 + i);
        }
        let big = agg
            .sites()
            .find(|(_, s)| s.merged == 0 && s.fig.live_bytes == (1 << 20) as f64);
        assert!(big.is_some());
        assert!(
            agg.table().merged_stacks > sites / 2,
            "{}",
            agg.table().merged_stacks
        );
    }

    /// The sparse lifetime bins are a one-digit hdrhistogram's.
    #[test]
    fn sparse_lifetimes_match_hdrhistogram() {
        let mut sparse = SiteLifetimes::default();
        let mut dense = lifetime_histogram(1);
        let mut x: u64 = 88172645463325252;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = (x >> (x % 60)).clamp(1, MAX_LIFETIME_NS);
            let n = 1 + x % 5;
            sparse.record(v, n);
            let _ = dense.record_n(v, n);
        }
        let mut rebuilt = lifetime_histogram(1);
        sparse.add_to(&mut rebuilt);
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(
                rebuilt.value_at_quantile(q),
                dense.value_at_quantile(q),
                "{q}"
            );
        }
        assert_eq!(rebuilt.len(), dense.len());
        assert!(sparse.0.len() * 8 < 8 * 1024);
    }
}
