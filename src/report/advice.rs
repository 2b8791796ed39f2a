//! Recommendations beside the leaks (docs/design.md, section 6): each cites the figure that
//! triggered it and says no more than that figure does. The rules, with their thresholds:
//!
//! - **short-lived allocations** (`reuse_buffer`): a site that made at least
//!   [`SHORT_LIVED_MIN_SHARE`] of all allocations, whose median lifetime is under
//!   [`SHORT_LIVED_NS`]: the same memory is allocated and freed again and again; a buffer kept
//!   and reused (or a stack array) saves the allocator round trips.
//! - **many tiny objects** (`pool_tiny_objects`): a site holding at least
//!   [`TINY_MIN_LIVE_SHARE`] of live bytes in blocks of [`TINY_MAX_BYTES`] bytes or less on
//!   average: per-object overhead (allocator size classes, pointers to them) dominates; a pool,
//!   an arena or inline storage (`SmallVec`, a struct of arrays) packs them.
//! - **fragmentation** (`purge_or_decay`): jemalloc's resident bytes exceed its allocated bytes
//!   by more than [`FRAGMENTATION_RATIO`] times and [`FRAGMENTATION_MIN_BYTES`]: freed pages are
//!   kept dirty; a shorter `dirty_decay_ms`/`muzzy_decay_ms` (`MALLOC_CONF` /
//!   `_RJEM_MALLOC_CONF`), `background_thread:true`, or an explicit `arena.<i>.purge` returns
//!   them.
//! - **retained address space** (`retained`): `retained` exceeds `mapped` and
//!   [`RETAINED_MIN_BYTES`]: jemalloc keeps unmapped-but-reserved virtual memory (cheap, not
//!   RSS); `opt.retain:false` returns it to the OS at some cost in `mmap` calls.

use serde::{Deserialize, Serialize};

use super::{MemoryStats, Site};
use crate::config::ByteSize;

/// A site must make at least this share of all allocations to be told to reuse a buffer.
pub const SHORT_LIVED_MIN_SHARE: f64 = 0.05;
/// Median lifetime under which allocations count as short-lived, ns.
pub const SHORT_LIVED_NS: u64 = 10_000;
/// Average block size at or under which objects count as tiny, bytes.
pub const TINY_MAX_BYTES: u64 = 64;
/// A site of tiny objects must hold at least this share of live bytes.
pub const TINY_MIN_LIVE_SHARE: f64 = 0.10;
/// Resident over allocated ratio above which fragmentation is reported.
pub const FRAGMENTATION_RATIO: f64 = 1.5;
/// ... and the bytes by which resident must exceed allocated.
pub const FRAGMENTATION_MIN_BYTES: u64 = 64 << 20;
/// Retained bytes above which retention is reported.
pub const RETAINED_MIN_BYTES: u64 = 1 << 30;

/// One recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// `reuse_buffer`, `pool_tiny_objects`, `purge_or_decay` or `retained`.
    pub kind: String,
    /// The site it is about, if any.
    pub site_id: Option<u64>,
    /// The advice, with the figure that triggered it.
    pub message: String,
}

/// The recommendations for a report's figures.
pub(crate) fn advise(
    memory: &MemoryStats,
    sites: &[Site],
    total_allocs: u64,
    total_live: u64,
) -> Vec<Recommendation> {
    let mut out = Vec::new();
    for site in sites {
        let name = site.blamed_frame().map_or_else(
            || format!("site {}", site.id),
            |f| crate::symbolize::short_frame(f).to_string(),
        );
        if total_allocs > 0
            && site.alloc_count as f64 >= SHORT_LIVED_MIN_SHARE * total_allocs as f64
            && let Some(l) = &site.lifetime_ns
            && l.p50 < SHORT_LIVED_NS
        {
            out.push(Recommendation {
                kind: "reuse_buffer".into(),
                site_id: Some(site.id),
                message: format!(
                    "{name} made {:.0}% of all allocations ({}), and half of them lived under {} ns: reuse a buffer instead of allocating each time",
                    100.0 * site.alloc_count as f64 / total_allocs as f64,
                    crate::report::text::group(site.alloc_count),
                    l.p50.max(1)
                ),
            });
        }
        if total_live > 0
            && site.live_count > 0
            && site.live_bytes / site.live_count <= TINY_MAX_BYTES
            && site.live_bytes as f64 >= TINY_MIN_LIVE_SHARE * total_live as f64
        {
            out.push(Recommendation {
                kind: "pool_tiny_objects".into(),
                site_id: Some(site.id),
                message: format!(
                    "{name} holds {} live blocks of {} B on average ({:.0}% of live bytes): a pool, an arena or inline storage would pack them",
                    crate::report::text::group(site.live_count),
                    site.live_bytes / site.live_count,
                    100.0 * site.live_bytes as f64 / total_live as f64
                ),
            });
        }
    }
    let j = &memory.jemalloc;
    if j.allocated > 0
        && memory.fragmentation_ratio > FRAGMENTATION_RATIO
        && j.resident.saturating_sub(j.allocated) > FRAGMENTATION_MIN_BYTES
    {
        out.push(Recommendation {
            kind: "purge_or_decay".into(),
            site_id: None,
            message: format!(
                "jemalloc holds {} resident for {} allocated (x{:.2}): shorten dirty_decay_ms/muzzy_decay_ms, enable background_thread, or purge the arenas",
                ByteSize(j.resident),
                ByteSize(j.allocated),
                memory.fragmentation_ratio
            ),
        });
    }
    if j.retained > j.mapped && j.retained > RETAINED_MIN_BYTES {
        out.push(Recommendation {
            kind: "retained".into(),
            site_id: None,
            message: format!(
                "jemalloc retains {} of virtual memory (more than the {} mapped; not resident): opt.retain:false returns it to the OS",
                ByteSize(j.retained),
                ByteSize(j.mapped)
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{DurationPercentiles, Frame, JemallocStats};

    fn site(id: u64, name: &str) -> Site {
        Site {
            id,
            frames: vec![Frame {
                function: name.into(),
                file: None,
                line: None,
            }],
            ..Site::default()
        }
    }

    #[test]
    fn each_rule_fires_on_its_figure_only() {
        let mut churny = site(1, "app::parse");
        churny.alloc_count = 600;
        churny.lifetime_ns = Some(DurationPercentiles {
            count: 600,
            p50: 800,
            p90: 2000,
            p99: 9000,
            max: 20_000,
        });
        let mut tiny = site(2, "app::nodes");
        tiny.live_count = 10_000;
        tiny.live_bytes = 320_000;
        let mut quiet = site(3, "app::quiet");
        quiet.alloc_count = 10;
        quiet.live_count = 1;
        quiet.live_bytes = 1 << 20;
        let memory = MemoryStats {
            jemalloc: JemallocStats {
                allocated: 100 << 20,
                resident: 300 << 20,
                mapped: 400 << 20,
                retained: 2 << 30,
                ..JemallocStats::default()
            },
            fragmentation_ratio: 3.0,
            ..MemoryStats::default()
        };
        let advice = advise(&memory, &[churny, tiny, quiet], 1000, 1_400_000);
        let kinds: Vec<(&str, Option<u64>)> = advice
            .iter()
            .map(|r| (r.kind.as_str(), r.site_id))
            .collect();
        assert_eq!(
            kinds,
            [
                ("reuse_buffer", Some(1)),
                ("pool_tiny_objects", Some(2)),
                ("purge_or_decay", None),
                ("retained", None)
            ]
        );
        assert!(advice[0].message.contains("60%"), "{}", advice[0].message);
        assert!(advice[2].message.contains("x3.00"), "{}", advice[2].message);
        assert!(advise(&MemoryStats::default(), &[], 0, 0).is_empty());
    }
}
