//! The parts of building a report that hold the drain lock: a copy of the aggregate's figures
//! ([`AggregateCopy`]: about 100 bytes a site, no histogram) taken in one pass, and, after the
//! sites are merged and ranked, the histograms of the listed sites ([`site_histograms`]) in a
//! second one. Everything else reads these copies, without the lock.

use std::sync::Arc;

use hdrhistogram::Histogram;

use crate::drain::aggregate::{
    self, Aggregate, BucketStats, Figures, LabelStats, RatePoint, SIZE_BINS, TableStats,
};
use crate::label::table::{self as label_table, Pair};

/// One raw site's scalar figures.
#[derive(Debug)]
pub(super) struct SiteRow {
    pub(super) id: u32,
    /// The raw stack: return addresses, innermost first.
    pub(super) frames: Arc<[usize]>,
    /// Its label set (an index into [`AggregateCopy::label_sets`]).
    pub(super) label: u32,
    pub(super) fig: Figures,
    /// Call stacks the site table merged into this one ("other" sites; 0 for the others).
    pub(super) merged: u64,
}

/// The aggregate's figures, copied out under the drain lock.
#[derive(Debug)]
pub(super) struct AggregateCopy {
    /// Every raw site, by site id (empty in a copy without rows).
    pub(super) rows: Vec<SiteRow>,
    pub(super) samples: u64,
    pub(super) live_samples: usize,
    pub(super) pending_frees: usize,
    /// Requested bytes of the live samples.
    pub(super) live_sample_bytes: u64,
    pub(super) buckets: [BucketStats; 5],
    pub(super) lifetimes: Histogram<u64>,
    pub(super) alloc_count: f64,
    pub(super) alloc_bytes: f64,
    pub(super) started_ns: u64,
    pub(super) oldest_rate_point: Option<RatePoint>,
    /// When the copy was taken (monotonic ns).
    pub(super) now_ns: u64,
    pub(super) table: TableStats,
    /// Figures by label set id, by id.
    pub(super) labels: Vec<(u32, LabelStats)>,
    /// The pairs of each label set, by id (empty when no label was ever set).
    pub(super) label_sets: Vec<Vec<Pair>>,
    /// The peak record (in a copy with rows, once a peak was recorded).
    pub(super) peak: Option<PeakCopy>,
}

/// The peak record's figures ([`crate::drain::peak`]).
#[derive(Debug)]
pub(super) struct PeakCopy {
    /// Estimated live heap at the peak.
    pub(super) bytes: f64,
    /// When it was recorded, monotonic ns.
    pub(super) time_ns: u64,
    /// The record's step there (its resolution).
    pub(super) step: f64,
    /// The sites live then, as rows with their live figures only.
    pub(super) rows: Vec<SiteRow>,
}

impl PeakCopy {
    fn of(agg: &Aggregate) -> Option<Self> {
        let peak = agg.peak();
        if !peak.is_recorded() {
            return None;
        }
        Some(PeakCopy {
            bytes: peak.bytes,
            time_ns: peak.time_ns,
            step: peak.step(agg.mean()),
            rows: peak
                .sites
                .iter()
                .map(|s| SiteRow {
                    id: s.id,
                    frames: s.frames.clone(),
                    label: s.label,
                    fig: Figures {
                        live_bytes: s.live_bytes,
                        live_count: s.live_count,
                        ..Figures::default()
                    },
                    merged: u64::from(s.other),
                })
                .collect(),
        })
    }
}

impl AggregateCopy {
    /// The labels of a label set id, as a report shows them.
    pub(super) fn labels_of(&self, set: u32) -> super::Labels {
        self.label_sets
            .get(set as usize)
            .map(|pairs| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl AggregateCopy {
    /// The figures; with `rows`, every site's too.
    pub(super) fn of(agg: &Aggregate, with_rows: bool) -> Self {
        let (live_samples, pending_frees, live_sample_bytes) = agg.ledger_sizes();
        let mut rows = Vec::new();
        if with_rows {
            rows.reserve_exact(agg.site_count());
        }
        rows.extend(agg.sites().filter(|_| with_rows).map(|(id, s)| SiteRow {
            id,
            frames: s.frames.clone(),
            label: s.label,
            fig: s.fig,
            merged: s.merged,
        }));
        let mut labels: Vec<(u32, LabelStats)> = agg.labels().map(|(id, l)| (id, *l)).collect();
        labels.sort_unstable_by_key(|&(id, _)| id);
        // The table is read only when some label was set (the drain lock is held here; the
        // label table's lock is a leaf).
        let label_sets = if labels.iter().any(|&(id, _)| id != 0) {
            label_table::all()
        } else {
            Vec::new()
        };
        AggregateCopy {
            labels,
            label_sets,
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
            peak: if with_rows { PeakCopy::of(agg) } else { None },
        }
    }
}

/// The `n` raw sites with the most live bytes (those with some), most first.
#[cfg(any(feature = "http", feature = "otlp"))]
pub(super) fn top_rows(agg: &Aggregate, n: usize) -> Vec<SiteRow> {
    let mut live: Vec<(f64, u32)> = agg
        .sites()
        .filter(|(_, s)| s.fig.live_bytes > 0.0)
        .map(|(id, s)| (s.fig.live_bytes, id))
        .collect();
    if live.len() > n {
        live.select_nth_unstable_by(n, |a, b| b.0.total_cmp(&a.0));
        live.truncate(n);
    }
    live.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    live.iter()
        .filter_map(|&(_, id)| {
            agg.site(id).map(|s| SiteRow {
                id,
                frames: s.frames.clone(),
                label: s.label,
                fig: s.fig,
                merged: s.merged,
            })
        })
        .collect()
}

/// The size and lifetime histograms of each group of raw sites (raw sites merged since the
/// copy count with the "other" site they went to, which may then appear twice: the
/// histograms of a listed site are read a moment after its figures).
pub(super) fn site_histograms(
    agg: &Aggregate,
    groups: &[Vec<u32>],
) -> Vec<(Vec<f64>, Histogram<u64>)> {
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
