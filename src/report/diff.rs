//! What changed between two reports: the sites that appeared, grew, shrank or were freed
//! since an earlier report (the base), with the later report's lifetimes. The same question
//! `go tool pprof -base` answers, for heaptide's reports and dumps.
//!
//! Sites are matched by their stack from the blamed frame outwards (function, file, line), not
//! by site number, so two dumps of one binary compare even across processes. A report lists
//! only its top sites ([`crate::report::TOP_SITES`] by live and by allocated bytes): a site
//! missing from one side of a cut list is said to be out of view, never freed or new, unless
//! its first-seen time shows it appeared after the base was taken.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{DurationPercentiles, Frame, Labels, Report, Site};
use crate::config::{ByteSize, SignedBytes};
use crate::symbolize::from_blamed;

/// The difference between a report and its base (see [`Report::diff`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Diff {
    /// The base's time, milliseconds since the Unix epoch.
    pub base_timestamp: u64,
    /// The later report's time, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// Process id of the base.
    pub base_pid: u32,
    /// Process id of the later report.
    pub pid: u32,
    /// Whether both reports come from one process, the base first: allocation figures are
    /// then what was allocated between the two; otherwise they are the difference of two
    /// lifetimes' totals.
    pub same_process: bool,
    /// Whether both reports are exact (every allocation recorded); otherwise the figures are
    /// differences of estimates.
    pub exact: bool,
    /// Live bytes over all sites: the base's and the later report's.
    pub live_bytes: Change,
    /// Live blocks over all sites.
    pub live_count: Change,
    /// Bytes allocated (see `same_process`).
    pub alloc_bytes: Change,
    /// Allocations (see `same_process`).
    pub alloc_count: Change,
    /// The process's resident set size (measured).
    pub rss_bytes: Change,
    /// jemalloc's allocated bytes (measured).
    pub heap_bytes: Change,
    /// Sites that changed, the largest change in live bytes first, then in allocated bytes.
    /// Sites with no change at all are left out.
    pub sites: Vec<SiteChange>,
    /// Sites in both reports with no change in live or allocated bytes.
    pub unchanged_sites: u64,
}

/// A figure in the base and in the later report.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// The base's value.
    pub base: u64,
    /// The later value.
    pub now: u64,
}

impl Change {
    fn new(base: u64, now: u64) -> Self {
        Self { base, now }
    }

    /// `now - base`, saturating at the ends of `i64`.
    pub fn delta(&self) -> i64 {
        let d = i128::from(self.now) - i128::from(self.base);
        d.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }
}

/// How a site changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChangeKind {
    /// Not in the base, and known to be new: the base listed every site, or the site was
    /// first seen after the base was taken.
    New,
    /// More live bytes than in the base.
    Grown,
    /// Fewer live bytes than in the base, some still live.
    Shrunk,
    /// Live bytes in the base, none now.
    Freed,
    /// Live bytes unchanged, more allocated (churn: allocated and freed in between).
    Churned,
    /// Missing from one side whose site list was cut at its top sites: the figures on that
    /// side are unknown (at most those of the smallest site listed there).
    OutOfView,
}

/// One site's change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct SiteChange {
    /// How it changed.
    pub kind: ChangeKind,
    /// The stack from the blamed frame outwards, innermost first (the key both reports are
    /// matched by, with `labels`).
    pub frames: Vec<Frame>,
    /// The site's labels ([`Site::labels`]); empty (and absent from JSON) when unlabelled.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
    /// Live bytes; `None` on a side where the site is out of view.
    pub live_bytes: SideBySide,
    /// Live blocks.
    pub live_count: SideBySide,
    /// Bytes allocated.
    pub alloc_bytes: SideBySide,
    /// Allocations.
    pub alloc_count: SideBySide,
    /// How long this site's allocations lived, as of the later report (`None` if none died or
    /// the site is out of view there).
    pub lifetime_ns: Option<DurationPercentiles>,
    /// The same in the base.
    pub base_lifetime_ns: Option<DurationPercentiles>,
}

/// A site's figure on each side: `None` where the site is not listed.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct SideBySide {
    /// The base's value.
    pub base: Option<u64>,
    /// The later value.
    pub now: Option<u64>,
}

impl SideBySide {
    /// `now - base`, taking a missing side as 0.
    pub fn delta(&self) -> i64 {
        Change::new(self.base.unwrap_or(0), self.now.unwrap_or(0)).delta()
    }
}

impl SiteChange {
    /// The frame a person would blame (the first of `frames`).
    pub fn blamed_frame(&self) -> Option<&Frame> {
        self.frames.first()
    }
}

impl Report {
    /// What changed since `base`, an earlier report of this program (a dump read back with
    /// `serde_json`, or a report taken in this process). See [`Diff`].
    pub fn diff(&self, base: &Report) -> Diff {
        let same_process = base.pid == self.pid
            && base.timestamp <= self.timestamp
            && base.totals.alloc_count <= self.totals.alloc_count;
        let base_complete = base.sites_seen <= base.sites.len() as u64;
        let now_complete = self.sites_seen <= self.sites.len() as u64;

        type Key<'a> = (&'a [Frame], &'a Labels);
        let mut pairs: HashMap<Key<'_>, (Option<&Site>, Option<&Site>)> = HashMap::new();
        let mut order: Vec<Key<'_>> = Vec::new();
        for (side, report) in [(0, base), (1, self)] {
            for site in &report.sites {
                let key = (from_blamed(&site.frames), &site.labels);
                let entry = pairs.entry(key).or_insert_with(|| {
                    order.push(key);
                    (None, None)
                });
                let slot = if side == 0 {
                    &mut entry.0
                } else {
                    &mut entry.1
                };
                // A report lists each stack once; if a hand-edited one repeats it, the first
                // stands.
                slot.get_or_insert(site);
            }
        }

        let mut sites = Vec::new();
        let mut unchanged_sites = 0;
        for key in order {
            let (before, after) = pairs[&key];
            let side = |f: fn(&Site) -> u64| SideBySide {
                base: before.map(f),
                now: after.map(f),
            };
            let change = SiteChange {
                kind: ChangeKind::OutOfView,
                frames: key.0.to_vec(),
                labels: key.1.clone(),
                live_bytes: side(|s| s.live_bytes),
                live_count: side(|s| s.live_count),
                alloc_bytes: side(|s| s.alloc_bytes),
                alloc_count: side(|s| s.alloc_count),
                lifetime_ns: after.and_then(|s| s.lifetime_ns),
                base_lifetime_ns: before.and_then(|s| s.lifetime_ns),
            };
            let kind = match (before, after) {
                (None, Some(s)) => {
                    let first_seen_after_base = same_process && s.first_seen_ms > base.timestamp;
                    if base_complete || first_seen_after_base {
                        ChangeKind::New
                    } else {
                        ChangeKind::OutOfView
                    }
                }
                (Some(s), None) => {
                    if now_complete && s.live_bytes > 0 {
                        ChangeKind::Freed
                    } else if now_complete {
                        // Nothing live then, and gone from a complete list: no change to tell.
                        unchanged_sites += 1;
                        continue;
                    } else {
                        ChangeKind::OutOfView
                    }
                }
                (Some(b), Some(a)) => match a.live_bytes.cmp(&b.live_bytes) {
                    std::cmp::Ordering::Greater => ChangeKind::Grown,
                    std::cmp::Ordering::Less if a.live_bytes == 0 => ChangeKind::Freed,
                    std::cmp::Ordering::Less => ChangeKind::Shrunk,
                    std::cmp::Ordering::Equal if a.alloc_bytes != b.alloc_bytes => {
                        ChangeKind::Churned
                    }
                    std::cmp::Ordering::Equal => {
                        unchanged_sites += 1;
                        continue;
                    }
                },
                (None, None) => unreachable!("every key comes from a site"),
            };
            sites.push(SiteChange { kind, ..change });
        }
        sites.sort_by_key(|c| {
            (
                std::cmp::Reverse(c.live_bytes.delta().unsigned_abs()),
                std::cmp::Reverse(c.alloc_bytes.delta().unsigned_abs()),
            )
        });

        Diff {
            base_timestamp: base.timestamp,
            timestamp: self.timestamp,
            base_pid: base.pid,
            pid: self.pid,
            same_process,
            exact: base.exact && self.exact,
            live_bytes: Change::new(base.totals.live_bytes, self.totals.live_bytes),
            live_count: Change::new(base.totals.live_count, self.totals.live_count),
            alloc_bytes: Change::new(base.totals.alloc_bytes, self.totals.alloc_bytes),
            alloc_count: Change::new(base.totals.alloc_count, self.totals.alloc_count),
            rss_bytes: Change::new(base.memory.rss_bytes, self.memory.rss_bytes),
            heap_bytes: Change::new(
                base.memory.jemalloc.allocated,
                self.memory.jemalloc.allocated,
            ),
            sites,
            unchanged_sites,
        }
    }
}

impl Diff {
    /// Sites of one kind, in the diff's order.
    pub fn sites_of(&self, kind: ChangeKind) -> impl Iterator<Item = &SiteChange> {
        self.sites.iter().filter(move |s| s.kind == kind)
    }

    /// Writes the diff as JSON.
    pub fn write_json(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *w, self).map_err(std::io::Error::other)?;
        w.write_all(b"\n")
    }
}

/// Sites shown per kind in the text form.
const SHOWN_PER_KIND: usize = 10;

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.timestamp.saturating_sub(self.base_timestamp) as f64 / 1000.0;
        let what = if self.exact { "exact" } else { "estimated" };
        if self.same_process {
            writeln!(
                f,
                "heaptide diff: pid {}, {seconds:.1} s after the base ({what})",
                self.pid
            )?;
        } else {
            writeln!(
                f,
                "heaptide diff: pid {} against base pid {} ({what}; allocation figures are the \
                 difference of two processes' totals)",
                self.pid, self.base_pid
            )?;
        }
        let line = |f: &mut fmt::Formatter<'_>, name: &str, c: Change| {
            writeln!(
                f,
                "  {name:<16} {} -> {} ({})",
                ByteSize(c.base),
                ByteSize(c.now),
                SignedBytes(c.delta() as f64)
            )
        };
        line(f, "live (sites)", self.live_bytes)?;
        line(f, "heap (jemalloc)", self.heap_bytes)?;
        line(f, "resident (RSS)", self.rss_bytes)?;
        let between = if self.same_process {
            "allocated in between"
        } else {
            "allocated (difference)"
        };
        writeln!(
            f,
            "  {between}: {} in {}",
            SignedBytes(self.alloc_bytes.delta() as f64),
            super::text::count(
                self.alloc_count.delta().unsigned_abs(),
                "allocation",
                "allocations"
            )
        )?;
        for (kind, title) in [
            (ChangeKind::New, "New sites"),
            (ChangeKind::Grown, "Grown sites"),
            (ChangeKind::Shrunk, "Shrunk sites"),
            (ChangeKind::Freed, "Freed sites"),
            (
                ChangeKind::Churned,
                "Sites that allocated and freed as much",
            ),
            (
                ChangeKind::OutOfView,
                "Out of view on one side (a cut site list)",
            ),
        ] {
            let all: Vec<&SiteChange> = self.sites_of(kind).collect();
            if all.is_empty() {
                continue;
            }
            writeln!(f, "\n{title} ({}):", super::text::group(all.len() as u64))?;
            for c in all.iter().take(SHOWN_PER_KIND) {
                let live = match (c.live_bytes.base, c.live_bytes.now) {
                    (Some(b), Some(n)) => format!(
                        "{} live ({} -> {})",
                        SignedBytes(c.live_bytes.delta() as f64),
                        ByteSize(b),
                        ByteSize(n)
                    ),
                    (None, Some(n)) => format!("{} live", ByteSize(n)),
                    (Some(b), None) => format!("{} live in the base", ByteSize(b)),
                    (None, None) => String::new(),
                };
                let allocated = format!("{} allocated", SignedBytes(c.alloc_bytes.delta() as f64));
                let lifetime = c
                    .lifetime_ns
                    .map(|l| format!(", lifetime p50 {}", super::text::Duration(l.p50)))
                    .unwrap_or_default();
                let mut at = c.blamed_frame().map_or_else(
                    || "(no frames)".to_string(),
                    |frame| crate::symbolize::short_frame(frame).to_string(),
                );
                if !c.labels.is_empty() {
                    at = format!("{at}  [{}]", super::text::label_list(&c.labels));
                }
                writeln!(f, "  {live}, {allocated}{lifetime}  {at}")?;
            }
            if all.len() > SHOWN_PER_KIND {
                writeln!(
                    f,
                    "  ... and {} more",
                    super::text::group((all.len() - SHOWN_PER_KIND) as u64)
                )?;
            }
        }
        if self.unchanged_sites > 0 {
            writeln!(
                f,
                "\n{} unchanged",
                super::text::count(self.unchanged_sites, "site", "sites")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, line: u32) -> Frame {
        Frame {
            function: function.to_string(),
            file: Some("src/main.rs".to_string()),
            line: Some(line),
        }
    }

    /// A site allocated by `function`, under a plumbing frame (which matching ignores).
    fn site(id: u64, function: &str, live: u64, alloc: u64) -> Site {
        Site {
            id,
            frames: vec![
                Frame {
                    function: "alloc::alloc::alloc".to_string(),
                    file: Some("/rustc/abc/library/alloc/src/alloc.rs".to_string()),
                    line: Some(id as u32),
                },
                frame(function, 10),
                frame("app::main", 3),
            ],
            live_bytes: live,
            live_count: live / 8,
            alloc_bytes: alloc,
            alloc_count: alloc / 8,
            first_seen_ms: 1_000,
            ..Site::default()
        }
    }

    fn report(pid: u32, timestamp: u64, sites: Vec<Site>) -> Report {
        let mut r = Report {
            pid,
            timestamp,
            sites_seen: sites.len() as u64,
            exact: true,
            ..Report::default()
        };
        r.totals.live_bytes = sites.iter().map(|s| s.live_bytes).sum();
        r.totals.alloc_bytes = sites.iter().map(|s| s.alloc_bytes).sum();
        r.totals.alloc_count = sites.iter().map(|s| s.alloc_count).sum();
        r.sites = sites;
        r
    }

    fn kind_of(d: &Diff, function: &str) -> Option<ChangeKind> {
        d.sites
            .iter()
            .find(|c| c.blamed_frame().is_some_and(|f| f.function == function))
            .map(|c| c.kind)
    }

    #[test]
    fn each_kind_from_complete_lists() {
        let base = report(
            7,
            2_000,
            vec![
                site(1, "app::grows", 100, 100),
                site(2, "app::shrinks", 100, 100),
                site(3, "app::frees", 100, 100),
                site(4, "app::churns", 8, 100),
                site(5, "app::idle", 8, 8),
                site(6, "app::gone", 0, 8),
            ],
        );
        let later = report(
            7,
            3_000,
            vec![
                site(1, "app::grows", 400, 400),
                site(2, "app::shrinks", 40, 100),
                site(3, "app::frees", 0, 100),
                site(4, "app::churns", 8, 900),
                site(5, "app::idle", 8, 8),
                site(7, "app::appears", 64, 64),
            ],
        );
        let d = later.diff(&base);
        assert!(d.same_process && d.exact);
        assert_eq!(kind_of(&d, "app::grows"), Some(ChangeKind::Grown));
        assert_eq!(kind_of(&d, "app::shrinks"), Some(ChangeKind::Shrunk));
        assert_eq!(kind_of(&d, "app::frees"), Some(ChangeKind::Freed));
        assert_eq!(kind_of(&d, "app::churns"), Some(ChangeKind::Churned));
        assert_eq!(kind_of(&d, "app::appears"), Some(ChangeKind::New));
        assert_eq!(kind_of(&d, "app::idle"), None);
        assert_eq!(kind_of(&d, "app::gone"), None);
        assert_eq!(d.unchanged_sites, 2);
        // The largest change in live bytes first.
        assert_eq!(d.sites[0].blamed_frame().unwrap().function, "app::grows");
        assert_eq!(d.sites[0].live_bytes.delta(), 300);
        assert_eq!(d.sites[0].alloc_bytes.delta(), 300);
        assert_eq!(d.live_bytes.delta(), 520 - 316);
    }

    #[test]
    fn a_cut_list_says_out_of_view_not_freed_or_new() {
        let mut base = report(
            7,
            2_000,
            vec![site(1, "app::a", 100, 100), site(2, "app::b", 50, 50)],
        );
        base.sites_seen = 500;
        let mut old_site = site(3, "app::old", 10, 10);
        old_site.first_seen_ms = 1_500;
        let mut fresh_site = site(4, "app::fresh", 10, 10);
        fresh_site.first_seen_ms = 2_500;
        let mut later = report(
            7,
            3_000,
            vec![site(1, "app::a", 100, 100), old_site, fresh_site],
        );
        later.sites_seen = 500;
        later.totals.alloc_count = 1_000;
        let d = later.diff(&base);
        assert_eq!(kind_of(&d, "app::b"), Some(ChangeKind::OutOfView));
        assert_eq!(kind_of(&d, "app::old"), Some(ChangeKind::OutOfView));
        // First seen after the base was taken: new, whatever the base listed.
        assert_eq!(kind_of(&d, "app::fresh"), Some(ChangeKind::New));
        let b = d
            .sites
            .iter()
            .find(|c| c.kind == ChangeKind::OutOfView && c.live_bytes.now.is_none());
        assert_eq!(b.unwrap().live_bytes.base, Some(50));
    }

    #[test]
    fn sites_match_by_stack_across_processes() {
        let base = report(7, 2_000, vec![site(1, "app::a", 100, 100)]);
        // Another process: other site numbers, other plumbing lines, same program stack.
        let later = report(9, 1_000, vec![site(42, "app::a", 300, 300)]);
        let d = later.diff(&base);
        assert!(!d.same_process);
        assert_eq!(d.sites.len(), 1);
        assert_eq!(d.sites[0].kind, ChangeKind::Grown);
        assert_eq!(d.sites[0].frames[0].function, "app::a");
    }

    #[test]
    fn json_round_trip_and_text() {
        let base = report(7, 2_000, vec![site(1, "app::a", 100, 100)]);
        let later = report(
            7,
            4_500,
            vec![
                site(1, "app::a", 4 << 20, 4 << 20),
                site(2, "app::b", 64, 64),
            ],
        );
        let d = later.diff(&base);
        let mut json = Vec::new();
        d.write_json(&mut json).unwrap();
        let back: Diff = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, d);
        let text = d.to_string();
        assert!(text.contains("2.5 s after the base"), "{text}");
        assert!(text.contains("Grown sites (1):"), "{text}");
        assert!(text.contains("New sites (1):"), "{text}");
        assert!(text.contains("+4.0 MiB live (100 B -> 4 MiB)"), "{text}");
        assert!(text.contains("app::a (src/main.rs:10)"), "{text}");
    }

    #[test]
    fn deltas_saturate() {
        assert_eq!(Change::new(0, u64::MAX).delta(), i64::MAX);
        assert_eq!(Change::new(u64::MAX, 0).delta(), i64::MIN);
    }
}
