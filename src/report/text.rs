//! The human-readable report: what a person reads first.

use std::fmt;

use super::{Report, Site};
use crate::config::ByteSize;

/// How many sites each table shows.
const ROWS: usize = 10;
/// How many frames of a site are shown under its blamed frame.
const CALLERS: usize = 3;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            "  live now:  {:>12} in {} blocks",
            ByteSize(t.live_bytes).to_string(),
            group(t.live_count)
        )?;
        writeln!(
            f,
            "  allocated: {:>12} in {} allocations since start",
            ByteSize(t.alloc_bytes).to_string(),
            group(t.alloc_count)
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
        if h.status != crate::HealthStatus::Ok {
            writeln!(f, "  health:    {:?}: {}", h.status, h.reasons.join("; "))?;
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
            for leak in self.leaks.iter().take(ROWS) {
                let blamed = leak
                    .blamed_frame()
                    .map_or_else(|| "<unknown>".to_string(), |fr| fr.to_string());
                writeln!(
                    f,
                    "  {:<8} {:>12} {:>12} {:>5.2}  {blamed}",
                    format!("{:?}", leak.severity).to_lowercase(),
                    signed(leak.growth_bytes_per_hour),
                    ByteSize(leak.live_bytes).to_string(),
                    leak.confidence,
                )?;
                writeln!(f, "  {:>41}  {:?}: {}", "", leak.pattern, leak.reason)?;
            }
        }

        let live = self.top_by_live(ROWS);
        writeln!(f)?;
        if live.is_empty() {
            writeln!(f, "No live sampled memory.")?;
        } else {
            writeln!(f, "Top sites by live bytes:")?;
            table(f, &live, t.live_bytes, |s| (s.live_bytes, s.live_count))?;
        }
        writeln!(f)?;
        writeln!(f, "Top sites by allocated bytes:")?;
        table(f, &self.top_by_alloc(ROWS), t.alloc_bytes, |s| {
            (s.alloc_bytes, s.alloc_count)
        })?;

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

/// A growth in bytes, with its sign.
/// (A `String`, so the tables can pad it.)
fn signed(bytes: f64) -> String {
    crate::config::SignedBytes(bytes).to_string()
}

/// Nanoseconds, shown with a unit a person reads at a glance.
struct Duration(u64);

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
        let useful = super::from_blamed(&site.frames);
        let head = useful
            .first()
            .map_or_else(|| "<unknown>".to_string(), |fr| fr.to_string());
        writeln!(
            f,
            "  {:>12} {:>5.1}% {:>12}  {head}",
            ByteSize(bytes).to_string(),
            share,
            group(count)
        )?;
        for caller in useful.iter().skip(1).take(CALLERS) {
            writeln!(f, "  {:>33}  <- {caller}", "")?;
        }
    }
    Ok(())
}

/// 1234567 -> "1,234,567".
fn group(n: u64) -> String {
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
    fn grouping() {
        assert_eq!(super::group(0), "0");
        assert_eq!(super::group(999), "999");
        assert_eq!(super::group(1000), "1,000");
        assert_eq!(super::group(1234567), "1,234,567");
    }
}
