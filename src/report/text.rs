//! The human-readable report: what a person reads first.

use std::fmt;

use super::{Frame, Peak, Report, Site};
use crate::analysis::pattern::{MIN_POINTS, Pattern};
use crate::config::ByteSize;
use crate::symbolize::short_frame;

/// How many rows each table shows in `Display` and [`Report::write_text`].
const ROWS: usize = 10;
/// How many sites the peak section shows at most.
const PEAK_ROWS: usize = 5;
/// How many frames of a site are shown under its blamed frame, at least...
const CALLERS: usize = 3;
/// ... and at most, when the frames under it are library code and the caller in the program
/// is further down.
const MAX_CALLERS: usize = 12;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_text(f, ROWS)
    }
}

impl Report {
    /// Writes the text report with at most `rows` rows in each table (leak candidates, top
    /// sites by live and by allocated bytes; the sites at the peak, at most 5);
    /// [`write_text`](Self::write_text) and `Display` show 10.
    pub fn write_text_top(&self, w: &mut impl std::io::Write, rows: usize) -> std::io::Result<()> {
        struct Text<'a>(&'a Report, usize);
        impl fmt::Display for Text<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt_text(f, self.1)
            }
        }
        write!(w, "{}", Text(self, rows))
    }

    /// The text report, `rows` rows per table.
    fn fmt_text(&self, f: &mut fmt::Formatter<'_>, rows: usize) -> fmt::Result {
        let kind = if self.exact {
            "exact: every allocation recorded".to_string()
        } else if self.sample_interval == 0 {
            "profiling off".to_string()
        } else {
            format!(
                "estimated from samples, one per {} on average",
                ByteSize(self.sample_interval)
            )
        };
        writeln!(f, "heaptide report: pid {}, {kind}", self.pid)?;
        let t = &self.totals;
        writeln!(
            f,
            "  live now:  {:>12} in {}",
            ByteSize(t.live_bytes).to_string(),
            count(t.live_count, "block", "blocks")
        )?;
        writeln!(
            f,
            "  allocated: {:>12} in {} since start",
            ByteSize(t.alloc_bytes).to_string(),
            count(t.alloc_count, "allocation", "allocations")
        )?;
        let p = &self.profiler;
        writeln!(
            f,
            "  profiler:  {} samples, {} dropped, {} own memory, {} threads sampled, stacks by {}",
            group(p.samples),
            group(p.dropped),
            ByteSize(p.overhead_bytes),
            p.thread_slots,
            p.stack_walker
        )?;
        let st = &self.site_table;
        if st.merged_stacks > 0 {
            writeln!(
                f,
                "  sites:     {} call stacks ({} allocated) merged into {} \"other\" sites, keeping the site table within its budget of {} (HEAPTIDE_SITE_BUDGET); totals stay exact",
                group(st.merged_stacks),
                ByteSize(st.merged_alloc_bytes),
                group(st.other_sites),
                ByteSize(st.budget_bytes)
            )?;
        }

        let m = &self.memory;
        let j = &m.jemalloc;
        writeln!(
            f,
            "  memory:    rss {}, heap {} allocated / {} active / {} resident (x{:.2}), {} metadata, {} retained",
            ByteSize(m.rss_bytes),
            ByteSize(j.allocated),
            ByteSize(j.active),
            ByteSize(j.resident),
            m.fragmentation_ratio,
            ByteSize(j.metadata),
            ByteSize(j.retained),
        )?;
        if let Some(cg) = m.cgroup {
            let limit = match (cg.max_bytes, cg.used_ratio()) {
                (Some(max), Some(ratio)) => {
                    format!("of {} limit ({:.0}%)", ByteSize(max), ratio * 100.0)
                }
                _ => "(no limit)".to_string(),
            };
            let pressure = cg.pressure.map_or_else(String::new, |p| {
                format!(
                    ", {}memory pressure {:.1}% (10 s) / {:.1}% (60 s)",
                    if p.system_wide { "system " } else { "" },
                    p.some_avg10,
                    p.some_avg60
                )
            });
            writeln!(
                f,
                "  cgroup:    v{} {} used {limit}{pressure}",
                cg.version,
                ByteSize(cg.current_bytes)
            )?;
        }
        let r = &self.rate.recent;
        write!(
            f,
            "  rate:      {}/s in {}/s allocations over the last {:.1} s",
            ByteSize(r.alloc_bytes_per_sec.round() as u64),
            group(r.alloc_count_per_sec.round() as u64),
            r.seconds
        )?;
        if let Some(l) = &self.lifetime_ns {
            write!(
                f,
                "; freed blocks lived {} median, {} p99",
                Duration(l.p50),
                Duration(l.p99)
            )?;
        }
        writeln!(f)?;

        let h = &self.health;
        if h.status != crate::report::HealthStatus::Ok {
            let status = format!("{:?}", h.status).to_lowercase();
            writeln!(f, "  health:    {status}: {}", h.reasons.join("; "))?;
        }
        if let Some(t) = &self.trend.heap {
            writeln!(
                f,
                "  trend:     heap {}/h over {:.1} s ({} snapshots); rss {}",
                signed(t.growth_bytes_per_hour),
                t.window_seconds,
                t.points,
                self.trend.rss.map_or_else(
                    || "-".to_string(),
                    |r| format!("{}/h", signed(r.growth_bytes_per_hour))
                ),
            )?;
        }

        if !self.leaks.is_empty() {
            writeln!(f)?;
            writeln!(f, "Leak candidates (fastest growth first):")?;
            writeln!(
                f,
                "  {:<8} {:>12} {:>12} {:>5}  site",
                "severity", "growth/h", "live", "conf"
            )?;
            for leak in self.leaks.iter().take(rows) {
                let mut blamed = leak
                    .blamed_frame()
                    .map_or_else(|| "<unknown>".to_string(), |fr| short_frame(fr).to_string());
                if !leak.labels.is_empty() {
                    blamed = format!("{blamed}  [{}]", label_list(&leak.labels));
                }
                writeln!(
                    f,
                    "  {:<8} {:>12} {:>12} {:>5.2}  {blamed}",
                    format!("{:?}", leak.severity).to_lowercase(),
                    signed(leak.growth_bytes_per_hour),
                    ByteSize(leak.live_bytes).to_string(),
                    leak.confidence,
                )?;
                writeln!(f, "  {:>41}  {}: {}", "", words(leak.pattern), leak.reason)?;
            }
        } else {
            writeln!(f)?;
            writeln!(f, "{}", detector_status(self))?;
        }

        let live = self.top_by_live(rows);
        writeln!(f)?;
        if live.is_empty() {
            writeln!(f, "No live sampled memory.")?;
        } else {
            writeln!(f, "Top sites by live bytes:")?;
            table(f, &live, t.live_bytes, |s| (s.live_bytes, s.live_count))?;
        }
        writeln!(f)?;
        writeln!(f, "Top sites by allocated bytes:")?;
        table(f, &self.top_by_alloc(rows), t.alloc_bytes, |s| {
            (s.alloc_bytes, s.alloc_count)
        })?;

        if !self.labels.is_empty() {
            writeln!(f)?;
            writeln!(f, "Memory by label:")?;
            writeln!(
                f,
                "  {:>12} {:>6} {:>12}  labels",
                "live bytes", "share", "alloc bytes"
            )?;
            for l in self.labels.iter().take(rows) {
                let share = if t.live_bytes == 0 {
                    0.0
                } else {
                    100.0 * l.live_bytes as f64 / t.live_bytes as f64
                };
                let labels = if l.labels.is_empty() {
                    "(no label)".to_string()
                } else {
                    label_list(&l.labels)
                };
                writeln!(
                    f,
                    "  {:>12} {:>5.1}% {:>12}  {labels}",
                    ByteSize(l.live_bytes).to_string(),
                    share,
                    ByteSize(l.alloc_bytes).to_string(),
                )?;
            }
        }

        if let Some(peak) = &self.peak {
            writeln!(f)?;
            fmt_peak(f, peak, rows.min(PEAK_ROWS))?;
        }

        writeln!(f)?;
        writeln!(f, "Size buckets:")?;
        writeln!(
            f,
            "  {:<7} {:>17} {:>12} {:>14} {:>12}",
            "bucket", "sizes", "live bytes", "allocations", "alloc bytes"
        )?;
        for b in &self.size_buckets {
            let range = match b.max_bytes {
                Some(max) => format!(
                    "{}-{}",
                    ByteSize(b.min_bytes),
                    ByteSize(max.saturating_add(1))
                ),
                None => format!(">= {}", ByteSize(b.min_bytes)),
            };
            writeln!(
                f,
                "  {:<7} {:>17} {:>12} {:>14} {:>12}",
                b.name,
                range,
                ByteSize(b.live_bytes).to_string(),
                group(b.alloc_count),
                ByteSize(b.alloc_bytes).to_string(),
            )?;
        }
        if !self.recommendations.is_empty() {
            writeln!(f)?;
            writeln!(f, "Advice:")?;
            for r in &self.recommendations {
                writeln!(f, "  - {}", r.message)?;
            }
        }
        Ok(())
    }
}

/// Labels as `key=value` pairs, comma-separated.
pub(crate) fn label_list(labels: &super::Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join(",")
}

/// The peak section: when, how much, and the sites live then (at most `rows`), with their live
/// bytes then and now.
fn fmt_peak(f: &mut fmt::Formatter<'_>, peak: &Peak, rows: usize) -> fmt::Result {
    writeln!(
        f,
        "At the peak: {} live, {} after start (recorded within {} of the highest point):",
        ByteSize(peak.live_bytes),
        seconds(peak.seconds_since_start),
        ByteSize(peak.step_bytes)
    )?;
    writeln!(f, "  {:>12} {:>12}  site", "at peak", "now")?;
    for site in peak.sites.iter().take(rows) {
        let mut head = crate::symbolize::from_blamed(&site.frames)
            .first()
            .map_or_else(|| "<unknown>".to_string(), |fr| short_frame(fr).to_string());
        if !site.labels.is_empty() {
            head = format!("{head}  [{}]", label_list(&site.labels));
        }
        let now = site
            .live_bytes_now
            .map_or_else(|| "-".to_string(), |b| ByteSize(b).to_string());
        writeln!(
            f,
            "  {:>12} {:>12}  {head}",
            ByteSize(site.live_bytes_at_peak).to_string(),
            now
        )?;
    }
    Ok(())
}

/// A growth in bytes, with its sign.
/// (A `String`, so the tables can pad it.)
fn signed(bytes: f64) -> String {
    crate::config::SignedBytes(bytes).to_string()
}

/// Nanoseconds, shown with a unit a person reads at a glance.
pub(crate) struct Duration(pub(crate) u64);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0 as f64;
        if ns < 1e3 {
            write!(f, "{ns:.0} ns")
        } else if ns < 1e6 {
            write!(f, "{:.1} us", ns / 1e3)
        } else if ns < 1e9 {
            write!(f, "{:.1} ms", ns / 1e6)
        } else {
            write!(f, "{:.1} s", ns / 1e9)
        }
    }
}

fn table(
    f: &mut fmt::Formatter<'_>,
    sites: &[&Site],
    total: u64,
    figures: impl Fn(&Site) -> (u64, u64),
) -> fmt::Result {
    writeln!(f, "  {:>12} {:>6} {:>12}  site", "bytes", "share", "count")?;
    for site in sites {
        let (bytes, count) = figures(site);
        let share = if total == 0 {
            0.0
        } else {
            100.0 * bytes as f64 / total as f64
        };
        let useful = crate::symbolize::from_blamed(&site.frames);
        let mut head = useful
            .first()
            .map_or_else(|| "<unknown>".to_string(), |fr| short_frame(fr).to_string());
        if !site.labels.is_empty() {
            head = format!("{head}  [{}]", label_list(&site.labels));
        }
        writeln!(
            f,
            "  {:>12} {:>5.1}% {:>12}  {head}",
            ByteSize(bytes).to_string(),
            share,
            group(count)
        )?;
        for caller in useful.iter().skip(1).take(callers_shown(useful)) {
            writeln!(f, "  {:>33}  <- {}", "", short_frame(caller))?;
        }
    }
    Ok(())
}

/// A duration in seconds as a person reads it: `80 s`, `1.5 s`, `100 ms`.
fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.0} s")
    } else if s >= 1.0 {
        format!("{s:.1} s")
    } else {
        format!("{:.0} ms", s * 1e3)
    }
}

/// The leak detector's state in one line, when it lists no leak: waiting for snapshots, sites
/// it cannot judge yet, or no leak over the window.
fn detector_status(r: &Report) -> String {
    let n = r.snapshots.points.len();
    let interval = r.snapshots.interval_ms as f64 / 1e3;
    if n < MIN_POINTS {
        let more = MIN_POINTS - n;
        return format!(
            "Leak detector: insufficient evidence: {} so far, a verdict needs {MIN_POINTS} \
             ({} more snapshot{}, about {} at the {} interval; or call \
             heaptide::snapshot_now)",
            count(n as u64, "snapshot", "snapshots"),
            more,
            if more == 1 { "" } else { "s" },
            seconds(more as f64 * interval),
            seconds(interval),
        );
    }
    let waiting: Vec<&Site> = r
        .sites
        .iter()
        .filter(|s| s.pattern == Some(Pattern::InsufficientEvidence))
        .collect();
    let window = r.trend.heap.map_or(0.0, |t| t.window_seconds);
    let mut line = format!(
        "Leak detector: no leak found over {:.0} s ({})",
        window,
        count(n as u64, "snapshot", "snapshots")
    );
    if let Some(most) = waiting.iter().filter_map(|s| s.needs_snapshots).max() {
        line += &format!(
            "; insufficient evidence for {} (up to {} more snapshots needed)",
            count(waiting.len() as u64, "site", "sites"),
            group(most)
        );
    }
    line
}

/// A pattern as words: `steady growth`.
fn words(p: Pattern) -> String {
    let json = serde_json::to_string(&p).unwrap_or_default();
    json.trim_matches('"').replace('_', " ")
}

/// `1 block`, `1,024 blocks`.
pub(crate) fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", group(n), if n == 1 { one } else { many })
}

/// How many callers to show under a blamed frame: [`CALLERS`], or more (up to
/// [`MAX_CALLERS`]) until the first frame of the program's own code is shown, when the frames
/// under the blamed one are library code (registry crates, the standard library).
pub(crate) fn callers_shown(useful: &[Frame]) -> usize {
    let callers = useful.get(1..).unwrap_or_default();
    match callers.iter().position(is_program_frame) {
        Some(i) if i >= CALLERS => (i + 1).min(MAX_CALLERS),
        _ => CALLERS,
    }
}

/// A frame of the program's own source: a file outside the standard library and the cargo
/// registry and git checkouts.
fn is_program_frame(frame: &Frame) -> bool {
    frame.file.as_deref().is_some_and(|file| {
        !crate::symbolize::is_plumbing(&frame.function)
            && !file.starts_with("/rustc/")
            && !file.contains("/.cargo/registry/")
            && !file.contains("/.cargo/git/")
    })
}

/// 1234567 -> "1,234,567".
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_in_their_unit() {
        assert_eq!(super::seconds(80.0), "80 s");
        assert_eq!(super::seconds(1.5), "1.5 s");
        assert_eq!(super::seconds(0.8), "800 ms");
        assert_eq!(super::seconds(0.1), "100 ms");
    }

    #[test]
    fn grouping() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
        assert_eq!(super::group(1234567), "1,234,567");
        assert_eq!(super::count(1, "allocation", "allocations"), "1 allocation");
        assert_eq!(super::count(1200, "block", "blocks"), "1,200 blocks");
    }

    #[test]
    fn rows_per_table() {
        use super::{Frame, Report, Site};
        let site = |i: u64| Site {
            id: i,
            frames: vec![Frame {
                function: format!("app::f{i}"),
                file: None,
                line: None,
            }],
            live_bytes: 1000 + i,
            live_count: 1,
            alloc_bytes: 1000 + i,
            alloc_count: 1,
            ..Site::default()
        };
        let report = Report {
            sites: (0..30).map(site).collect(),
            ..Report::default()
        };
        let rows = |n: usize| {
            let mut text = Vec::new();
            report.write_text_top(&mut text, n).unwrap();
            let text = String::from_utf8(text).unwrap();
            // Each site shows once per table (live, allocated).
            (0..30)
                .filter(|i| text.contains(&format!("app::f{i}\n")))
                .count()
        };
        assert_eq!(rows(3), 3);
        assert_eq!(rows(25), 25);
        assert_eq!(rows(10), 10);
        let mut text = Vec::new();
        report.write_text_top(&mut text, 10).unwrap();
        assert_eq!(String::from_utf8(text).unwrap(), report.to_string());
    }

    #[test]
    fn callers_reach_the_program() {
        use super::{Frame, callers_shown};
        let frame = |function: &str, file: &str| Frame {
            function: function.to_string(),
            file: Some(file.to_string()),
            line: Some(1),
        };
        let lib = |i: usize| {
            frame(
                &format!("serde_json::de::f{i}"),
                "/h/.cargo/registry/src/index.crates.io-1/serde_json-1.0/src/de.rs",
            )
        };
        // Blamed frame in a library, eight library callers, then the program.
        let mut frames: Vec<Frame> = (0..9).map(lib).collect();
        frames.push(frame("app::load", "/work/app/src/main.rs"));
        assert_eq!(callers_shown(&frames), 9);
        // The program within the first callers: the usual three.
        let frames = vec![
            lib(0),
            frame("app::load", "/work/app/src/main.rs"),
            lib(1),
            lib(2),
        ];
        assert_eq!(callers_shown(&frames), 3);
        // Never the program (or too deep): capped.
        let frames: Vec<Frame> = (0..40).map(lib).collect();
        assert_eq!(callers_shown(&frames), 3);
    }
}
