//! Self-contained HTML writer: [`Report::write_html`].
//!
//! One file that any browser opens without network access: the static parts are hand-written
//! files included at build time (`html/page.html`, `html/page.css`, `html/page.js`; no
//! libraries, every chart drawn as SVG by the page's own script), and the report's figures are
//! a JSON block, `<script type="application/json" id="heaptide-data">`, that the script reads.
//! A `Content-Security-Policy` of `default-src 'none'` (inline style and script only) makes the
//! browser refuse any request the page might make.
//!
//! **Safety of report text.** Every `<` in the JSON is written as the escape `\u003c`, so no
//! function name, file name or message can end the script element (`</script>`) or open a
//! comment (`<!--`); JSON readers decode it back. The script inserts every string from the report
//! as text (`textContent`, text nodes, attribute values), never as markup.
//!
//! **The data block** is the report reshaped to stay small (a few hundred KB for the largest
//! report, whose 200 stacks of up to 64 frames repeat the same frames many times):
//!
//! | key | holds |
//! |---|---|
//! | `format` | [`FORMAT`], the shape of this block |
//! | `report` | the report's scalar sections as in [`Report::write_json`]: `version`, `pid`, `command_line`, `timestamp`, `sample_interval`, `exact`, `memory`, `totals`, `size_buckets`, `rate`, `lifetime_ns`, `health`, `alerts`, `recommendations`, `trend`, `sites_seen`, `profiler`, and `snapshot_interval_ms`, `snapshot_max`; `peak` as `{seconds_since_start, live_bytes, step_bytes, top}` (`top`: the function blamed at the site with the most live bytes at the peak) or `null` |
//! | `files` | distinct source files |
//! | `frames` | distinct frames: `[function, file index or null, line or null, plumbing (1: allocation machinery of the standard library)]` |
//! | `sites` | every site: `stack` (frame indices, innermost first), `blamed` (position in `stack` of the frame [`Site::blamed_frame`] picks), `labels` (its label set as an object, `{}` when unlabelled), and the site's figures by their JSON names (not its size histogram, which the page does not show) |
//! | `labels` | memory by label set, [`Report::labels`] as in [`Report::write_json`]: `labels`, `alloc_bytes`, `alloc_count`, `live_bytes`, `live_count` each; `[]` when no label was ever set |
//! | `leaks`, `leaks_total` | the first [`MAX_LEAKS`] leaks (fastest growth first) with `stack` and `blamed` as above; `labels`, the leak's label set (for a report without leak labels, the label set of the listed site with the leak's `site_id`; `null` when that site is not listed); `history` as `[ms after snapshots.t0, bytes]`, kept whole (up to [`MAX_POINTS`]) for the first [`CHART_LEAKS`], thinned to [`SPARK_POINTS`] for the others; `leaks_total` counts them all |
//! | `snapshots` | the snapshot history as columns: `t0` (ms since the Unix epoch: the first snapshot, else the first leak's first point), `t` (ms after `t0`), `rss`, `allocated`, `resident` (jemalloc), `live` (the profile's estimate); at most [`MAX_POINTS`] points (longer histories keep each stretch's RSS peak) |
//!
//! The page draws the flame graph as an icicle: the root (all sites) at the top, callers above
//! their callees, the allocating frame at the bottom.
//!
//! **Labels.** When the report has labels, the page lists memory by label set and offers a
//! filter of every `key=value` pair the sites and label sets carry: choosing one keeps, in the
//! flame graph, the sites table and the leak table, only the sites whose label set holds that
//! pair (a leak whose site is not listed has no known labels and is left out).

use std::collections::HashMap;
use std::io::Write;

use serde::Serialize;

use super::{
    Alert, AllocRates, DurationPercentiles, Frame, Health, LabelUsage, Labels, Leak, MemoryStats,
    MemoryTrends, Pattern, Peak, ProfilerStats, Recommendation, Report, Severity, Site, SizeBucket,
    Totals,
};
use crate::symbolize::is_plumbing_frame;

/// Version of the data block's shape.
const FORMAT: u32 = 1;
/// Leaks the page lists at most (the rest are counted).
const MAX_LEAKS: usize = 50;
/// Leaks whose whole history the memory chart draws.
const CHART_LEAKS: usize = 5;
/// Points of history kept for the other leaks (the table's sparklines).
const SPARK_POINTS: usize = 48;
/// Points of a history the page keeps at most.
const MAX_POINTS: usize = 1000;

const PAGE: &str = include_str!("html/page.html");
const CSS: &str = include_str!("html/page.css");
const JS: &str = include_str!("html/page.js");

/// Where the page template takes the style, the data and the script, in this order.
const SLOTS: [&str; 3] = ["/*{{css}}*/", "{{data}}", "/*{{js}}*/"];

impl Report {
    /// Writes the report as one self-contained HTML page that any browser opens offline.
    ///
    /// The page shows, from the top: a summary (with the peak live heap and who held most of
    /// it); the leak candidates, when there are any (severity, pattern, growth per hour,
    /// confidence, the evidence, the stack and a sparkline of the site's live bytes); memory
    /// over time from the snapshots (RSS, jemalloc resident and allocated, the profile's live
    /// bytes and the top leaks' live bytes, with the `HEAPTIDE_WARN` / `HEAPTIDE_CRITICAL` /
    /// `HEAPTIDE_LIMIT` lines when set); an icicle graph of the call stacks (root at the top,
    /// the allocating function at the bottom; live bytes, live blocks, allocated bytes or
    /// allocations; hover for frame, file:line, value and shares, click to zoom); allocation
    /// sizes and lifetime percentiles; the top sites; health, recommendations and alerts; the
    /// run's facts (pid, command line, sampling, samples and drops, profiler overhead). When
    /// the report has labels, a table of memory by label set and a `key=value` filter that
    /// narrows the flame graph, the sites and the leaks to the sites labelled with that pair.
    ///
    /// Everything is inline (style, script, data); a `Content-Security-Policy` of
    /// `default-src 'none'` makes the browser refuse any request. The figures sit in a
    /// `<script type="application/json" id="heaptide-data">` block with every `<` escaped as
    /// `\u003c`, and the page's script shows report text only as text, so no function name can
    /// inject markup. The page stays at a few hundred KB for the largest report.
    ///
    /// # Errors
    ///
    /// Whatever `w` returns.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[global_allocator]
    /// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
    /// let mut page = Vec::new();
    /// heaptide::report().write_html(&mut page)?;
    /// std::fs::write("heap.html", page)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_html(&self, w: &mut impl Write) -> std::io::Result<()> {
        let data = script_safe_json(&PageData::of(self))?;
        let mut rest = PAGE;
        for (slot, fill) in SLOTS.iter().zip([CSS, data.as_str(), JS]) {
            let (before, after) = rest
                .split_once(slot)
                .expect("the page template holds every slot once, in order");
            w.write_all(before.as_bytes())?;
            w.write_all(fill.as_bytes())?;
            rest = after;
        }
        w.write_all(rest.as_bytes())
    }
}

/// `value` as JSON that can sit inside a `<script>` element: every `<` escaped as `\u003c`
/// (JSON has `<` only inside strings, where the escape means the same character).
fn script_safe_json(value: &impl Serialize) -> std::io::Result<String> {
    let json = serde_json::to_string(value).map_err(std::io::Error::other)?;
    Ok(json.replace('<', "\\u003c"))
}

// === the data block ===

#[derive(Serialize)]
struct PageData<'a> {
    format: u32,
    report: Head<'a>,
    files: Vec<&'a str>,
    frames: Vec<(&'a str, Option<u32>, Option<u32>, u8)>,
    sites: Vec<PageSite<'a>>,
    labels: &'a [LabelUsage],
    leaks: Vec<PageLeak<'a>>,
    leaks_total: usize,
    snapshots: Columns,
}

/// The report's small sections, borrowed.
#[derive(Serialize)]
struct Head<'a> {
    version: u32,
    pid: u32,
    command_line: &'a [String],
    timestamp: u64,
    sample_interval: u64,
    exact: bool,
    memory: &'a MemoryStats,
    totals: &'a Totals,
    size_buckets: &'a [SizeBucket],
    rate: &'a AllocRates,
    lifetime_ns: &'a Option<DurationPercentiles>,
    health: &'a Health,
    alerts: &'a [Alert],
    recommendations: &'a [Recommendation],
    trend: &'a MemoryTrends,
    sites_seen: u64,
    profiler: &'a ProfilerStats,
    snapshot_interval_ms: u64,
    snapshot_max: u64,
    peak: Option<PagePeak<'a>>,
}

/// The peak, for the summary's card.
#[derive(Serialize)]
struct PagePeak<'a> {
    seconds_since_start: f64,
    live_bytes: u64,
    step_bytes: u64,
    top: Option<&'a str>,
}

impl<'a> PagePeak<'a> {
    fn of(p: &'a Peak) -> Self {
        PagePeak {
            seconds_since_start: p.seconds_since_start,
            live_bytes: p.live_bytes,
            step_bytes: p.step_bytes,
            top: p
                .sites
                .first()
                .and_then(|s| s.blamed.as_ref())
                .map(|f| f.function.as_str()),
        }
    }
}

#[derive(Serialize)]
struct PageSite<'a> {
    id: u64,
    stack: Vec<u32>,
    blamed: usize,
    labels: &'a Labels,
    alloc_bytes: u64,
    alloc_count: u64,
    live_bytes: u64,
    live_count: u64,
    samples: u64,
    lifetime_ns: &'a Option<DurationPercentiles>,
    pattern: Option<Pattern>,
    first_seen_ms: u64,
    last_seen_ms: u64,
}

#[derive(Serialize)]
struct PageLeak<'a> {
    site_id: u64,
    stack: Vec<u32>,
    blamed: usize,
    labels: Option<&'a Labels>,
    live_bytes: u64,
    live_samples: u64,
    growth_bytes_per_hour: f64,
    pattern: Pattern,
    severity: Severity,
    confidence: f64,
    reason: &'a str,
    age_ns: &'a Option<DurationPercentiles>,
    history: Vec<(i64, u64)>,
}

/// The snapshot history by column.
#[derive(Serialize, Default)]
struct Columns {
    t0: u64,
    t: Vec<u64>,
    rss: Vec<u64>,
    allocated: Vec<u64>,
    resident: Vec<u64>,
    live: Vec<u64>,
}

/// Distinct files and frames, numbered in order of first use.
#[derive(Default)]
struct FrameTable<'a> {
    files: Vec<&'a str>,
    file_ids: HashMap<&'a str, u32>,
    frames: Vec<(&'a str, Option<u32>, Option<u32>, u8)>,
    frame_ids: HashMap<&'a Frame, u32>,
}

impl<'a> FrameTable<'a> {
    fn id(&mut self, frame: &'a Frame) -> u32 {
        if let Some(&id) = self.frame_ids.get(frame) {
            return id;
        }
        let file = frame.file.as_deref().map(|f| match self.file_ids.get(f) {
            Some(&i) => i,
            None => {
                let i = self.files.len() as u32;
                self.files.push(f);
                self.file_ids.insert(f, i);
                i
            }
        });
        let id = self.frames.len() as u32;
        self.frames.push((
            &frame.function,
            file,
            frame.line,
            u8::from(is_plumbing_frame(frame)),
        ));
        self.frame_ids.insert(frame, id);
        id
    }

    fn stack(&mut self, frames: &'a [Frame]) -> Vec<u32> {
        frames.iter().map(|f| self.id(f)).collect()
    }
}

/// Position of the frame a person would blame (as [`Site::blamed_frame`]).
fn blamed(frames: &[Frame]) -> usize {
    frames.len() - crate::symbolize::from_blamed(frames).len()
}

/// Indices of at most `limit` of `n` points, in order: each stretch of `n / limit` points keeps
/// the one with the largest `key`, and the last point is always kept.
fn thin(n: usize, limit: usize, key: impl Fn(usize) -> u64) -> Vec<usize> {
    if n <= limit {
        return (0..n).collect();
    }
    let stretch = n.div_ceil(limit.saturating_sub(1).max(1));
    let mut kept: Vec<usize> = (0..n - 1)
        .step_by(stretch)
        .map(|start| {
            (start..(start + stretch).min(n - 1))
                .max_by_key(|&i| key(i))
                .unwrap_or(start)
        })
        .collect();
    kept.push(n - 1);
    kept
}

impl<'a> PageData<'a> {
    fn of(r: &'a Report) -> Self {
        let mut table = FrameTable::default();
        let sites = r
            .sites
            .iter()
            .map(|s| PageSite::of(s, &mut table))
            .collect();
        let points = &r.snapshots.points;
        // Times are sent as ms after the first snapshot (or the first leak's first point).
        let t0 = points
            .first()
            .map(|p| p.timestamp_ms)
            .or_else(|| r.leaks.first()?.history.first().map(|h| h.0))
            .unwrap_or(0);
        let labels_of: HashMap<u64, &Labels> = r.sites.iter().map(|s| (s.id, &s.labels)).collect();
        let leaks = r
            .leaks
            .iter()
            .take(MAX_LEAKS)
            .enumerate()
            .map(|(i, l)| {
                // A report from a version without leak labels: the listed site's.
                let labels = if l.labels.is_empty() {
                    labels_of.get(&l.site_id).copied()
                } else {
                    Some(&l.labels)
                };
                PageLeak::of(l, labels, &mut table, i < CHART_LEAKS, t0)
            })
            .collect();
        let mut snapshots = Columns {
            t0,
            ..Columns::default()
        };
        for i in thin(points.len(), MAX_POINTS, |i| points[i].rss_bytes) {
            let p = &points[i];
            snapshots.t.push(p.timestamp_ms.saturating_sub(t0));
            snapshots.rss.push(p.rss_bytes);
            snapshots.allocated.push(p.heap_allocated_bytes);
            snapshots.resident.push(p.heap_resident_bytes);
            snapshots.live.push(p.live_bytes);
        }
        PageData {
            format: FORMAT,
            report: Head {
                version: r.version,
                pid: r.pid,
                command_line: &r.command_line,
                timestamp: r.timestamp,
                sample_interval: r.sample_interval,
                exact: r.exact,
                memory: &r.memory,
                totals: &r.totals,
                size_buckets: &r.size_buckets,
                rate: &r.rate,
                lifetime_ns: &r.lifetime_ns,
                health: &r.health,
                alerts: &r.alerts,
                recommendations: &r.recommendations,
                trend: &r.trend,
                sites_seen: r.sites_seen,
                profiler: &r.profiler,
                snapshot_interval_ms: r.snapshots.interval_ms,
                snapshot_max: r.snapshots.max,
                peak: r.peak.as_ref().map(PagePeak::of),
            },
            files: table.files,
            frames: table.frames,
            sites,
            labels: &r.labels,
            leaks,
            leaks_total: r.leaks.len(),
            snapshots,
        }
    }
}

impl<'a> PageSite<'a> {
    fn of(s: &'a Site, table: &mut FrameTable<'a>) -> Self {
        PageSite {
            id: s.id,
            stack: table.stack(&s.frames),
            blamed: blamed(&s.frames),
            labels: &s.labels,
            alloc_bytes: s.alloc_bytes,
            alloc_count: s.alloc_count,
            live_bytes: s.live_bytes,
            live_count: s.live_count,
            samples: s.samples,
            lifetime_ns: &s.lifetime_ns,
            pattern: s.pattern,
            first_seen_ms: s.first_seen_ms,
            last_seen_ms: s.last_seen_ms,
        }
    }
}

impl<'a> PageLeak<'a> {
    fn of(
        l: &'a Leak,
        labels: Option<&'a Labels>,
        table: &mut FrameTable<'a>,
        whole_history: bool,
        t0: u64,
    ) -> Self {
        let limit = if whole_history {
            MAX_POINTS
        } else {
            SPARK_POINTS
        };
        let h = &l.history;
        PageLeak {
            site_id: l.site_id,
            stack: table.stack(&l.frames),
            blamed: blamed(&l.frames),
            labels,
            live_bytes: l.live_bytes,
            live_samples: l.live_samples,
            growth_bytes_per_hour: l.growth_bytes_per_hour,
            pattern: l.pattern,
            severity: l.severity,
            confidence: l.confidence,
            reason: &l.reason,
            age_ns: &l.age_ns,
            history: thin(h.len(), limit, |i| h[i].1)
                .into_iter()
                .map(|i| (ms_since(h[i].0, t0), h[i].1))
                .collect(),
        }
    }
}

/// `t - t0` in ms as a signed number, saturating (times come from arbitrary reports too).
fn ms_since(t: u64, t0: u64) -> i64 {
    let t = i64::try_from(t).unwrap_or(i64::MAX);
    t.saturating_sub(i64::try_from(t0).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_has_each_slot_once_in_order() {
        let mut rest = PAGE;
        for slot in SLOTS {
            assert_eq!(PAGE.matches(slot).count(), 1, "{slot}");
            rest = rest.split_once(slot).expect(slot).1;
        }
        // The static parts cannot end their own elements early.
        assert!(!CSS.contains("</"), "page.css must not contain `</`");
        assert!(!JS.contains("</"), "page.js must not contain `</`");
        assert!(!JS.contains("<!--"), "page.js must not contain `<!--`");
    }

    #[test]
    fn json_cannot_close_the_script() {
        let s = script_safe_json(&["</script><script>alert(1)</script>", "<!-- x -->"]).unwrap();
        assert!(!s.contains('<'), "{s}");
        let back: Vec<String> = serde_json::from_str(&s).unwrap();
        assert_eq!(back, ["</script><script>alert(1)</script>", "<!-- x -->"]);
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|&(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn labels_go_into_the_data_block_escaped() {
        let hostile = "</script><!--";
        let site = |id, labels| Site {
            id,
            frames: vec![Frame {
                function: "app::fill".to_string(),
                file: None,
                line: None,
            }],
            live_bytes: 10 * id,
            labels,
            ..Site::default()
        };
        let usage = |labels, live_bytes| LabelUsage {
            labels,
            live_bytes,
            ..LabelUsage::default()
        };
        let leak = |site_id: u64| -> Leak {
            serde_json::from_value(serde_json::json!({
                "site_id": site_id, "frames": [], "live_bytes": 10, "live_samples": 1,
                "growth_bytes_per_hour": 1.0, "pattern": "steady_growth", "severity": "low",
                "confidence": 0.5, "reason": "", "age_ns": null, "history": [],
            }))
            .unwrap()
        };
        let cache = labels(&[("component", "cache"), ("tenant", hostile)]);
        let report = Report {
            sites: vec![site(1, cache.clone()), site(2, Labels::new())],
            labels: vec![usage(cache, 10), usage(Labels::new(), 20)],
            leaks: vec![leak(1), leak(3)],
            ..Report::default()
        };

        let json = script_safe_json(&PageData::of(&report)).unwrap();
        assert!(!json.contains('<'), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["format"], 1);
        assert_eq!(v["sites"][0]["labels"]["component"], "cache");
        assert_eq!(v["sites"][0]["labels"]["tenant"], hostile);
        assert_eq!(v["sites"][1]["labels"], serde_json::json!({}));
        assert_eq!(v["labels"], serde_json::to_value(&report.labels).unwrap());
        assert_eq!(v["labels"][0]["labels"]["tenant"], hostile);
        assert_eq!(v["labels"][1]["live_bytes"], 20);
        // A leak takes its listed site's labels; one whose site is not listed has none known.
        assert_eq!(v["leaks"][0]["labels"]["tenant"], hostile);
        assert!(v["leaks"][1]["labels"].is_null());

        let v = serde_json::to_value(PageData::of(&Report::default())).unwrap();
        assert_eq!(v["labels"], serde_json::json!([]));
    }

    #[test]
    fn thinning_keeps_peaks_and_the_last_point() {
        assert_eq!(thin(5, 10, |i| i as u64), [0, 1, 2, 3, 4]);
        let values = [1u64, 9, 2, 3, 8, 1, 1, 1, 7, 5];
        let kept = thin(values.len(), 4, |i| values[i]);
        assert!(kept.len() <= 4, "{kept:?}");
        assert_eq!(kept, [1, 4, 8, 9]);
        let kept = thin(100_000, MAX_POINTS, |i| (i % 7) as u64);
        assert!(kept.len() <= MAX_POINTS);
        assert!(kept.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(kept.last(), Some(&99_999));
    }

    #[test]
    fn frames_are_shared_between_stacks() {
        let f = |name: &str, line| Frame {
            function: name.to_string(),
            file: Some("src/app.rs".to_string()),
            line: Some(line),
        };
        let a = vec![
            f("alloc::alloc::alloc", 1),
            f("app::leaf", 2),
            f("app::main", 3),
        ];
        let b = vec![f("app::other", 4), f("app::main", 3)];
        let mut table = FrameTable::default();
        assert_eq!(table.stack(&a), [0, 1, 2]);
        assert_eq!(table.stack(&b), [3, 2]);
        assert_eq!(table.files, ["src/app.rs"]);
        assert_eq!(table.frames[0].3, 1, "alloc::alloc::alloc is plumbing");
        assert_eq!(blamed(&a), 1);
        assert_eq!(blamed(&b), 0);
    }
}
