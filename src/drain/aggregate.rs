//! Per-site aggregation: events in, estimated bytes and counts per call site out.
//!
//! A site is a deduplicated raw stack (as captured: heaptide's own frames on top; reports
//! trim them and merge sites that then coincide). Each sampled allocation adds its weight (see [`crate::sample::weight`]) to its
//! site's allocated and live figures; when the sample dies, the same weight leaves the live
//! figures. Weights are fixed per object when it is sampled, so a free always removes exactly
//! what its allocation added.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use hdrhistogram::Histogram;

use super::ledger::{Ledger, LiveSample, Settled};
use super::scope::Scope;
use crate::buffer::event::{Event, Kind};
use crate::sample::weight::weight;

/// Figures of one call site.
#[derive(Debug, Clone)]
pub(crate) struct SiteStats {
    /// Return addresses, innermost first, as captured (heaptide's own frames on top).
    pub(crate) frames: Box<[usize]>,
    pub(crate) alloc_count: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) live_count: f64,
    pub(crate) live_bytes: f64,
    /// Samples taken at this site, and how many are live.
    pub(crate) samples: u64,
    pub(crate) live_samples: u64,
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
    /// Estimated allocations by size: bin `i` holds sizes in `[2^i, 2^(i+1))`.
    pub(crate) sizes: [f64; SIZE_BINS],
    /// Lifetimes of the site's dead samples (nanoseconds, weighted by the objects each
    /// stands for); created at the first death.
    pub(crate) lifetimes: Option<Box<Histogram<u64>>>,
}

/// Power-of-two size bins per site (up to 2^47 bytes; larger sizes land in the last bin).
pub(crate) const SIZE_BINS: usize = 48;

/// The five size buckets of DESIGN section 5: names and inclusive lower bounds.
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

/// Everything the drain has accumulated.
#[derive(Debug)]
pub(crate) struct Aggregate {
    mean: u64,
    ledger: Ledger,
    index: HashMap<Box<[usize]>, u32>,
    pub(crate) sites: Vec<SiteStats>,
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
}

impl Aggregate {
    /// An empty aggregate for sampling with mean `mean` bytes (1: exact).
    pub(crate) fn new(mean: u64) -> Self {
        Self {
            mean,
            ledger: Ledger::default(),
            index: HashMap::default(),
            sites: Vec::new(),
            samples: 0,
            alloc_count: 0.0,
            alloc_bytes: 0.0,
            buckets: [BucketStats::default(); 5],
            lifetimes: lifetime_histogram(2),
            started_ns: crate::alloc::started_ns(),
            rate_points: VecDeque::new(),
            scopes: HashMap::default(),
        }
    }

    /// Called after each drain pass: keeps a point for the recent allocation rate.
    pub(crate) fn tick(&mut self, now_ns: u64) {
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
    pub(crate) fn apply(&mut self, event: &Event) {
        match event.kind {
            Kind::Alloc => {
                self.samples += 1;
                let depth = usize::from(event.depth).min(event.frames.len());
                let site = self.intern(&event.frames[..depth]);
                let (count_weight, bytes_weight) = if event.scope != 0 {
                    // Tracked: recorded with certainty, so it stands for itself alone.
                    (1.0, event.size as f64)
                } else {
                    weight(event.size, self.mean)
                };
                self.alloc_count += count_weight;
                self.alloc_bytes += bytes_weight;
                let b = &mut self.buckets[bucket_of(event.size)];
                b.alloc_count += count_weight;
                b.alloc_bytes += bytes_weight;
                b.live_count += count_weight;
                b.live_bytes += bytes_weight;
                if event.scope != 0 {
                    self.scopes.entry(event.scope).or_default().alloc(
                        site,
                        event.size,
                        event.time_ns,
                    );
                }
                let s = &mut self.sites[site as usize];
                let bin = (63 - event.size.max(1).leading_zeros() as usize).min(SIZE_BINS - 1);
                s.sizes[bin] += count_weight;
                s.alloc_count += count_weight;
                s.alloc_bytes += bytes_weight;
                s.live_count += count_weight;
                s.live_bytes += bytes_weight;
                s.samples += 1;
                s.live_samples += 1;
                if s.first_ns == 0 {
                    s.first_ns = event.time_ns;
                }
                s.last_ns = s.last_ns.max(event.time_ns);
                let sample = LiveSample {
                    site,
                    size: event.size,
                    count_weight,
                    bytes_weight,
                    born_ns: event.time_ns,
                    scope: event.scope,
                };
                if let Settled::Died(sample, freed_ns) = self.ledger.alloc(event.id, sample) {
                    self.retire(sample, freed_ns);
                }
            }
            Kind::Free => {
                if let Settled::Died(sample, freed_ns) = self.ledger.free(event.id, event.time_ns) {
                    self.retire(sample, freed_ns);
                }
            }
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
        let s = &mut self.sites[sample.site as usize];
        let _ = s
            .lifetimes
            .get_or_insert_with(|| Box::new(lifetime_histogram(1)))
            .record_n(lifetime, objects);
        s.live_count = (s.live_count - sample.count_weight).max(0.0);
        s.live_bytes = (s.live_bytes - sample.bytes_weight).max(0.0);
        s.live_samples -= 1;
        if s.live_samples == 0 {
            // No rounding residue when nothing of the site is live.
            s.live_count = 0.0;
            s.live_bytes = 0.0;
        }
    }

    /// The site of a raw stack. No symbols are looked up here: the drain must keep up with
    /// the rings, and the first symbol lookup loads debug info (can take a second).
    fn intern(&mut self, frames: &[usize]) -> u32 {
        if let Some(&id) = self.index.get(frames) {
            return id;
        }
        let id = self.sites.len() as u32;
        self.index.insert(frames.into(), id);
        self.sites.push(SiteStats {
            frames: frames.into(),
            alloc_count: 0.0,
            alloc_bytes: 0.0,
            live_count: 0.0,
            live_bytes: 0.0,
            samples: 0,
            live_samples: 0,
            first_ns: 0,
            last_ns: 0,
            sizes: [0.0; SIZE_BINS],
            lifetimes: None,
        });
        id
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
            if let Some(&g) = group_of.get(&sample.site) {
                let age = now_ns
                    .saturating_sub(sample.born_ns)
                    .clamp(1, MAX_LIFETIME_NS);
                let objects = (sample.count_weight.round() as u64).max(1);
                let _ = out[g].record_n(age, objects);
            }
        }
        out
    }

    /// Live samples and frees still waiting for their allocation.
    pub(crate) fn ledger_sizes(&self) -> (usize, usize) {
        (self.ledger.live_samples(), self.ledger.pending_frees())
    }
}
