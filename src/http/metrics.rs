//! `GET /metrics`: a [`Report`] in the Prometheus text exposition format (version 0.0.4), from
//! [`crate::report::summary`] (no work per call site; leaks judged per raw call stack).
//!
//! Names follow Prometheus conventions: the `heaptide_` prefix, base units in the name
//! (`_bytes`, `_seconds`, `_ratio`), `_total` on counters, a `HELP` and a `TYPE` line per family.
//! Heap figures of call sites (`allocated`, `live`, size classes, leaks) are estimates unless
//! `heaptide_sample_interval_bytes` is 1; process and jemalloc figures are measured.
//!
//! | family | type | labels |
//! |---|---|---|
//! | `heaptide_build_info` | gauge (1) | `version`, `stack_walker` |
//! | `heaptide_sample_interval_bytes` | gauge | |
//! | `heaptide_resident_memory_bytes`, `heaptide_virtual_memory_bytes` | gauge | |
//! | `heaptide_jemalloc_{allocated,active,metadata,resident,mapped,retained}_bytes` | gauge | |
//! | `heaptide_jemalloc_{fragmentation,active,metadata}_ratio` | gauge | |
//! | `heaptide_cgroup_memory_bytes`, `heaptide_cgroup_memory_max_bytes` (in a memory cgroup; max only if limited) | gauge | |
//! | `heaptide_memory_pressure_ratio` (where the kernel reports PSI) | gauge | `kind` (`some`, `full`), `window` (`10s`, `60s`) |
//! | `heaptide_allocated_bytes_total`, `heaptide_allocations_total` | counter | |
//! | `heaptide_live_bytes`, `heaptide_live_objects` | gauge | |
//! | `heaptide_size_class_allocated_bytes_total`, `heaptide_size_class_allocations_total` | counter | `size` |
//! | `heaptide_size_class_live_bytes`, `heaptide_size_class_live_objects` | gauge | `size` |
//! | `heaptide_label_live_bytes`, `heaptide_label_allocated_bytes_total` (when labels are used; one series per `key=value` pair, bounded by the 256 label sets) | gauge, counter | `key`, `value` |
//! | `heaptide_top_site_live_bytes` (the 10 sites holding the most) | gauge | `rank` (1-10), `site` (function and file:line), `labels` (`k=v,...`) |
//! | `heaptide_call_sites` | gauge | |
//! | `heaptide_site_table_bytes`, `heaptide_site_table_budget_bytes` | gauge | |
//! | `heaptide_site_table_merged_stacks_total` | counter | |
//! | `heaptide_samples_total`, `heaptide_samples_dropped_total` | counter | |
//! | `heaptide_leak_candidates`, `heaptide_leak_live_bytes`, `heaptide_leak_growth_bytes_per_second` | gauge | `severity` |
//! | `heaptide_health_status` | gauge (state set) | `status` |
//! | `heaptide_health_level` | gauge (0 ok, 1 warning, 2 critical) | |
//! | `heaptide_trend_growth_bytes_per_second` | gauge | `series` (`heap`, `rss`) |
//! | `heaptide_trend_seconds_to_limit` | gauge (only with `HEAPTIDE_LIMIT`, while growing or over it) | `series` (`heap`, `rss`) |
//! | `heaptide_rss_threshold_bytes` | gauge (only the thresholds set) | `threshold` (`warn`, `critical`, `limit`) |
//! | `heaptide_snapshots` | gauge | |
//! | `heaptide_profiler_overhead_bytes`, `heaptide_profiler_ring_bytes`, `heaptide_profiler_reserved_bytes`, `heaptide_profiler_sampled_arena_bytes`, `heaptide_profiler_sampled_arena_resident_bytes` | gauge | |
//! | `heaptide_profiler_live_samples`, `heaptide_profiler_pending_frees`, `heaptide_profiler_thread_slots`, `heaptide_profiler_symbols_cached` | gauge | |
//! | `heaptide_report_build_seconds` | gauge | |
//! | `heaptide_profiler_rings_freed_total`, `heaptide_profiler_backlog_waits_total` | counter | |
//! | `heaptide_reports_built_total`, `heaptide_http_cached_answers_total`, `heaptide_http_paced_seconds_total`, `heaptide_http_connections_evicted_total` | counter | |

use std::fmt::Write as _;

use crate::report::{HealthStatus, Report, Severity};

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `report` (which took `build_seconds` to build).
pub(crate) fn render(report: &Report, build_seconds: f64) -> String {
    let mut m = Metrics(String::with_capacity(8 * 1024));
    let r = report;
    let p = &r.profiler;

    m.family(
        "heaptide_build_info",
        "gauge",
        "Always 1; the labels describe the heaptide build.",
    );
    m.sample(
        "heaptide_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("stack_walker", &p.stack_walker),
        ],
        1u64,
    );
    m.gauge(
        "heaptide_sample_interval_bytes",
        "Mean bytes allocated between samples (1: every allocation, exact figures; 0: profiling off).",
        r.sample_interval,
    );

    // The memory snapshot (measured).
    m.gauge(
        "heaptide_resident_memory_bytes",
        "Resident set size of the process (/proc/self/statm).",
        r.memory.rss_bytes,
    );
    m.gauge(
        "heaptide_virtual_memory_bytes",
        "Virtual memory size of the process (/proc/self/statm), including heaptide's PROT_NONE reservation.",
        r.memory.virtual_bytes,
    );
    let j = &r.memory.jemalloc;
    for (name, help, value) in [
        (
            "heaptide_jemalloc_allocated_bytes",
            "Bytes allocated by the application (jemalloc stats.allocated).",
            j.allocated,
        ),
        (
            "heaptide_jemalloc_active_bytes",
            "Bytes in active pages (jemalloc stats.active).",
            j.active,
        ),
        (
            "heaptide_jemalloc_metadata_bytes",
            "Bytes of jemalloc metadata (jemalloc stats.metadata).",
            j.metadata,
        ),
        (
            "heaptide_jemalloc_resident_bytes",
            "Bytes in physically resident data pages (jemalloc stats.resident).",
            j.resident,
        ),
        (
            "heaptide_jemalloc_mapped_bytes",
            "Bytes in extents mapped by jemalloc (jemalloc stats.mapped).",
            j.mapped,
        ),
        (
            "heaptide_jemalloc_retained_bytes",
            "Bytes retained as virtual memory, not returned to the kernel (jemalloc stats.retained).",
            j.retained,
        ),
    ] {
        m.gauge(name, help, value);
    }
    m.gauge(
        "heaptide_jemalloc_fragmentation_ratio",
        "jemalloc resident bytes per allocated byte (1 is perfect; 0 when nothing is allocated).",
        r.memory.fragmentation_ratio,
    );
    m.gauge(
        "heaptide_jemalloc_active_ratio",
        "jemalloc active bytes per allocated byte.",
        r.memory.active_ratio,
    );
    m.gauge(
        "heaptide_jemalloc_metadata_ratio",
        "jemalloc metadata bytes per allocated byte.",
        r.memory.metadata_ratio,
    );
    if let Some(cg) = r.memory.cgroup {
        m.gauge(
            "heaptide_cgroup_memory_bytes",
            "Memory the process's control group uses (cgroup v2 memory.current, v1 memory.usage_in_bytes): what its OOM killer counts.",
            cg.current_bytes,
        );
        if let Some(max) = cg.max_bytes {
            m.gauge(
                "heaptide_cgroup_memory_max_bytes",
                "The control group's hard memory limit (cgroup v2 memory.max, v1 memory.limit_in_bytes); absent if unlimited.",
                max,
            );
        }
        if let Some(p) = cg.pressure {
            m.family(
                "heaptide_memory_pressure_ratio",
                "gauge",
                "Share of time tasks stalled waiting for memory (PSI), averaged over `window`; kind=some: some tasks, kind=full: all at once. The group's under cgroup v2, the system's otherwise.",
            );
            for (kind, window, value) in [
                ("some", "10s", p.some_avg10),
                ("some", "60s", p.some_avg60),
                ("full", "10s", p.full_avg10),
                ("full", "60s", p.full_avg60),
            ] {
                m.sample(
                    "heaptide_memory_pressure_ratio",
                    &[("kind", kind), ("window", window)],
                    value / 100.0,
                );
            }
        }
    }

    // Totals (estimated unless exact).
    m.counter(
        "heaptide_allocated_bytes_total",
        "Bytes allocated since the profiler started, freed or not (estimated from samples unless exact).",
        r.totals.alloc_bytes,
    );
    m.counter(
        "heaptide_allocations_total",
        "Allocations since the profiler started (estimated unless exact).",
        r.totals.alloc_count,
    );
    m.gauge(
        "heaptide_live_bytes",
        "Bytes allocated and not yet freed (estimated unless exact).",
        r.totals.live_bytes,
    );
    m.gauge(
        "heaptide_live_objects",
        "Blocks allocated and not yet freed (estimated unless exact).",
        r.totals.live_count,
    );

    // Size classes: tiny < 64 B, small < 1 KiB, medium < 64 KiB, large < 1 MiB, huge.
    type Field = fn(&crate::report::SizeBucket) -> u64;
    let classes: [(&str, &str, &str, Field); 4] = [
        (
            "heaptide_size_class_allocated_bytes_total",
            "counter",
            "Bytes allocated since start by allocation size class (tiny < 64 B, small < 1 KiB, medium < 64 KiB, large < 1 MiB, huge).",
            |b| b.alloc_bytes,
        ),
        (
            "heaptide_size_class_allocations_total",
            "counter",
            "Allocations since start by size class.",
            |b| b.alloc_count,
        ),
        (
            "heaptide_size_class_live_bytes",
            "gauge",
            "Live bytes by size class.",
            |b| b.live_bytes,
        ),
        (
            "heaptide_size_class_live_objects",
            "gauge",
            "Live blocks by size class.",
            |b| b.live_count,
        ),
    ];
    for (name, kind, help, field) in classes {
        m.family(name, kind, help);
        for b in &r.size_buckets {
            m.sample(name, &[("size", &b.name)], field(b));
        }
    }
    labels_and_top_sites(&mut m, r);
    m.gauge(
        "heaptide_call_sites",
        "Call stacks in the call-site table (raw stacks, before merging by symbolized stack).",
        r.sites_seen,
    );
    m.gauge(
        "heaptide_site_table_bytes",
        "Estimated bytes of the call-site table.",
        r.site_table.bytes,
    );
    m.gauge(
        "heaptide_site_table_budget_bytes",
        "Budget of the call-site table (HEAPTIDE_SITE_BUDGET, or 64 MiB or 1% of the live heap).",
        r.site_table.budget_bytes,
    );
    m.counter(
        "heaptide_site_table_merged_stacks_total",
        "Call stacks merged into \"other\" sites to keep the call-site table within its budget (totals stay exact).",
        r.site_table.merged_stacks,
    );

    // Samples.
    m.counter(
        "heaptide_samples_total",
        "Allocation samples taken.",
        p.samples,
    );
    m.counter(
        "heaptide_samples_dropped_total",
        "Samples lost because a thread's ring was full or memory was short.",
        p.dropped,
    );

    // Leak candidates by severity.
    const SEVERITIES: [(Severity, &str); 4] = [
        (Severity::Critical, "critical"),
        (Severity::High, "high"),
        (Severity::Medium, "medium"),
        (Severity::Low, "low"),
    ];
    let mut by_severity = [(0u64, 0u64, 0f64); 4];
    for leak in &r.leaks {
        if let Some(i) = SEVERITIES.iter().position(|&(s, _)| s == leak.severity) {
            by_severity[i].0 += 1;
            by_severity[i].1 += leak.live_bytes;
            by_severity[i].2 += leak.growth_bytes_per_hour / 3600.0;
        }
    }
    m.family(
        "heaptide_leak_candidates",
        "gauge",
        "Call sites whose live bytes keep growing over the snapshot window, by severity of their growth rate.",
    );
    for (i, &(_, name)) in SEVERITIES.iter().enumerate() {
        m.sample(
            "heaptide_leak_candidates",
            &[("severity", name)],
            by_severity[i].0,
        );
    }
    m.family(
        "heaptide_leak_live_bytes",
        "gauge",
        "Live bytes of the leak candidates, by severity.",
    );
    for (i, &(_, name)) in SEVERITIES.iter().enumerate() {
        m.sample(
            "heaptide_leak_live_bytes",
            &[("severity", name)],
            by_severity[i].1,
        );
    }
    m.family(
        "heaptide_leak_growth_bytes_per_second",
        "gauge",
        "Summed growth rate of the leak candidates' live bytes (least squares over the window), by severity.",
    );
    for (i, &(_, name)) in SEVERITIES.iter().enumerate() {
        m.sample(
            "heaptide_leak_growth_bytes_per_second",
            &[("severity", name)],
            by_severity[i].2,
        );
    }

    // Health.
    const STATUSES: [(HealthStatus, &str); 3] = [
        (HealthStatus::Ok, "ok"),
        (HealthStatus::Warning, "warning"),
        (HealthStatus::Critical, "critical"),
    ];
    m.family(
        "heaptide_health_status",
        "gauge",
        "1 for the current health status (judged on RSS thresholds and serious leaks), 0 for the others.",
    );
    for (status, name) in STATUSES {
        m.sample(
            "heaptide_health_status",
            &[("status", name)],
            u64::from(r.health.status == status),
        );
    }
    let level = STATUSES
        .iter()
        .position(|&(s, _)| s == r.health.status)
        .unwrap_or(0) as u64;
    m.gauge(
        "heaptide_health_level",
        "Health as a number: 0 ok, 1 warning, 2 critical.",
        level,
    );

    // Trend.
    let trends = [("heap", r.trend.heap), ("rss", r.trend.rss)];
    if trends.iter().any(|(_, t)| t.is_some()) {
        m.family(
            "heaptide_trend_growth_bytes_per_second",
            "gauge",
            "Growth over the snapshot window (least-squares slope) of jemalloc's allocated bytes (heap) and of RSS (rss).",
        );
        for (series, trend) in trends {
            if let Some(t) = trend {
                m.sample(
                    "heaptide_trend_growth_bytes_per_second",
                    &[("series", series)],
                    t.growth_bytes_per_hour / 3600.0,
                );
            }
        }
    }
    if trends
        .iter()
        .any(|(_, t)| t.is_some_and(|t| t.seconds_to_limit.is_some()))
    {
        m.family(
            "heaptide_trend_seconds_to_limit",
            "gauge",
            "Seconds until the series reaches HEAPTIDE_LIMIT at its current growth (0: at or over it); no sample without a limit or while the series is under it and not growing.",
        );
        for (series, trend) in trends {
            if let Some(secs) = trend.and_then(|t| t.seconds_to_limit) {
                m.sample(
                    "heaptide_trend_seconds_to_limit",
                    &[("series", series)],
                    secs,
                );
            }
        }
    }
    let thresholds = [
        ("warn", r.health.warn_bytes),
        ("critical", r.health.critical_bytes),
        ("limit", r.health.limit_bytes),
    ];
    if thresholds.iter().any(|(_, b)| b.is_some()) {
        m.family(
            "heaptide_rss_threshold_bytes",
            "gauge",
            "The RSS thresholds set: HEAPTIDE_WARN (warn), HEAPTIDE_CRITICAL (critical), HEAPTIDE_LIMIT (limit); one sample per threshold set.",
        );
        for (threshold, bytes) in thresholds {
            if let Some(b) = bytes {
                m.sample(
                    "heaptide_rss_threshold_bytes",
                    &[("threshold", threshold)],
                    b,
                );
            }
        }
    }
    m.gauge(
        "heaptide_snapshots",
        "Snapshots in the history the trend and the leak detector read.",
        r.snapshots.points.len() as u64,
    );

    // The profiler's own figures.
    for (name, help, value) in [
        (
            "heaptide_profiler_overhead_bytes",
            "Bytes the profiler itself holds (rings, symbol cache, aggregation, sampled-block headers).",
            p.overhead_bytes,
        ),
        (
            "heaptide_profiler_ring_bytes",
            "Memory of all per-thread sample rings (included in the overhead).",
            p.ring_bytes,
        ),
        (
            "heaptide_profiler_reserved_bytes",
            "Address space reserved for sampled blocks (PROT_NONE, not memory).",
            p.reserved_bytes,
        ),
        (
            "heaptide_profiler_sampled_arena_bytes",
            "Part of the reservation jemalloc has taken for sampled blocks.",
            p.sampled_arena_bytes,
        ),
        (
            "heaptide_profiler_sampled_arena_resident_bytes",
            "Resident pages of the sampled range (mincore): live sampled blocks, their headers and the arena's slack.",
            p.sampled_arena_resident_bytes,
        ),
        (
            "heaptide_profiler_live_samples",
            "Live samples held by the profiler.",
            p.live_samples,
        ),
        (
            "heaptide_profiler_pending_frees",
            "Frees seen before their allocation and still waiting for it.",
            p.pending_frees,
        ),
        (
            "heaptide_profiler_thread_slots",
            "Threads that ever took a sample (ring slots created).",
            p.thread_slots,
        ),
        (
            "heaptide_profiler_symbols_cached",
            "Addresses in the symbol cache.",
            p.symbols_cached,
        ),
    ] {
        m.gauge(name, help, value);
    }
    m.counter(
        "heaptide_profiler_backlog_waits_total",
        "Times a thread waited for the drain because a backlog was at its mark (it helped the drain or yielded; no sample dropped).",
        p.backlog_waits,
    );
    m.counter(
        "heaptide_profiler_rings_freed_total",
        "Sample rings of exited threads freed (16 free rings are kept for new threads).",
        p.rings_freed,
    );
    m.counter(
        "heaptide_http_connections_evicted_total",
        "HTTP connections closed to make room for a new one (all slots held by connections that had not sent a whole request).",
        super::server::EVICTED.load(crate::sync::Ordering::Relaxed),
    );
    m.counter(
        "heaptide_reports_built_total",
        "Full reports built (API, dumps, alerts, HTTP; HTTP builds one at most every 5 s). /metrics builds none.",
        p.reports_built,
    );
    m.counter(
        "heaptide_http_cached_answers_total",
        "HTTP requests answered from the latest report rather than a new one (reports are built at most every 5 s).",
        super::routes::CACHED_ANSWERS.load(crate::sync::Ordering::Relaxed),
    );
    m.counter(
        "heaptide_http_paced_seconds_total",
        "Time HTTP requests waited for their turn: answers take at most 1/20 of a core, whatever the request rate.",
        super::routes::PACED_NS.load(crate::sync::Ordering::Relaxed) as f64 / 1e9,
    );
    m.gauge(
        "heaptide_report_build_seconds",
        "Time taken to gather the figures behind this scrape.",
        build_seconds,
    );
    m.0
}

/// Memory by label (one series per `key=value` pair, summing the label sets that hold it; at
/// most one per label set, and label sets are bounded) and the top sites by live bytes (at
/// most [`crate::report::SUMMARY_SITES`] series, by rank).
fn labels_and_top_sites(m: &mut Metrics, r: &Report) {
    if !r.labels.is_empty() {
        let mut pairs: std::collections::BTreeMap<(&str, &str), (u64, u64)> = Default::default();
        for l in &r.labels {
            for (k, v) in &l.labels {
                let e = pairs.entry((k, v)).or_default();
                e.0 += l.live_bytes;
                e.1 += l.alloc_bytes;
            }
        }
        m.family(
            "heaptide_label_live_bytes",
            "gauge",
            "Bytes allocated under a label (key=value) and not yet freed (estimated unless exact).",
        );
        for (&(k, v), &(live, _)) in &pairs {
            m.sample(
                "heaptide_label_live_bytes",
                &[("key", k), ("value", v)],
                live,
            );
        }
        m.family(
            "heaptide_label_allocated_bytes_total",
            "counter",
            "Bytes allocated under a label (key=value) since start (estimated unless exact).",
        );
        for (&(k, v), &(_, alloc)) in &pairs {
            m.sample(
                "heaptide_label_allocated_bytes_total",
                &[("key", k), ("value", v)],
                alloc,
            );
        }
    }
    m.family(
        "heaptide_top_site_live_bytes",
        "gauge",
        "Live bytes of the call sites holding the most (rank 1: the most), named by the frame to blame and their labels (estimated unless exact).",
    );
    for (i, site) in r.sites.iter().enumerate() {
        let rank = (i + 1).to_string();
        let name = site.blamed.as_ref().map_or_else(
            || "<unknown>".to_string(),
            |f| crate::symbolize::short_frame(f).to_string(),
        );
        let labels = crate::report::text::label_list(&site.labels);
        m.sample(
            "heaptide_top_site_live_bytes",
            &[("rank", &rank), ("site", &name), ("labels", &labels)],
            site.live_bytes,
        );
    }
}

/// A sample value: an integer or a float.
trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            // `Display` never uses an exponent; Prometheus parses any decimal.
            let _ = write!(out, "{self}");
        }
    }
}

/// The exposition being written.
struct Metrics(String);

impl Metrics {
    /// The `HELP` and `TYPE` lines of a family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// One sample line.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{label}=\"{}\"", escape_label(v));
            }
            self.0.push('}');
        }
        self.0.push(' ');
        value.write(&mut self.0);
        self.0.push('\n');
    }

    /// A family with one unlabelled gauge sample.
    fn gauge(&mut self, name: &str, help: &str, value: impl Value) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    /// A family with one unlabelled counter sample.
    fn counter(&mut self, name: &str, help: &str, value: impl Value) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }
}

/// `HELP` text: backslash and line feed escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value: backslash, double quote and line feed escaped.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x\\y\nz\""), "x\\\\y\\nz\"");
    }

    #[test]
    fn values() {
        let mut s = String::new();
        f64::NAN.write(&mut s);
        s.push(' ');
        f64::INFINITY.write(&mut s);
        s.push(' ');
        (-f64::INFINITY).write(&mut s);
        s.push(' ');
        0.25f64.write(&mut s);
        s.push(' ');
        1e-7f64.write(&mut s);
        s.push(' ');
        42u64.write(&mut s);
        assert_eq!(s, "NaN +Inf -Inf 0.25 0.0000001 42");
    }

    #[test]
    fn every_family_has_help_and_type_and_samples() {
        // A real (empty: unit tests do not run on heaptide) report, with figures set.
        let mut report = crate::report::take();
        report.sample_interval = 1;
        report.size_buckets = vec![crate::report::SizeBucket {
            name: "tiny".into(),
            alloc_count: 3,
            ..Default::default()
        }];
        report.leaks.clear();
        report.health = Default::default();
        let text = render(&report, 0.5);
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["gauge", "counter"].contains(&kind), "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                families.push(name.to_string());
            } else if !line.starts_with("# HELP ") {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(families.last().map(String::as_str), Some(name), "{line}");
            }
        }
        assert!(text.contains("heaptide_size_class_allocations_total{size=\"tiny\"} 3\n"));
        assert!(text.contains("heaptide_health_status{status=\"ok\"} 1\n"));
        assert!(text.contains("heaptide_leak_candidates{severity=\"critical\"} 0\n"));
        assert!(text.contains("heaptide_report_build_seconds 0.5\n"));
        let mut sorted = families.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), families.len(), "a family appears twice");
    }

    #[test]
    fn limit_and_thresholds_only_when_set() {
        let mut report = crate::report::take();
        report.health = Default::default();
        report.trend = Default::default();
        let text = render(&report, 0.0);
        assert!(!text.contains("heaptide_trend_seconds_to_limit"), "{text}");
        assert!(!text.contains("heaptide_rss_threshold_bytes"), "{text}");

        let trend = |seconds_to_limit| crate::report::Trend {
            window_seconds: 90.0,
            points: 10,
            growth_bytes_per_hour: 3600.0,
            r_squared: 1.0,
            peak_bytes: 100.0,
            min_bytes: 10.0,
            average_bytes: 50.0,
            volatility: 0.0,
            latest_bytes: 100.0,
            seconds_to_limit,
        };
        report.trend.rss = Some(trend(Some(1800.5)));
        report.trend.heap = Some(trend(None));
        report.health.limit_bytes = Some(1 << 30);
        report.health.warn_bytes = Some(1 << 29);
        let text = render(&report, 0.0);
        assert!(text.contains("# TYPE heaptide_trend_seconds_to_limit gauge\n"));
        assert!(text.contains("heaptide_trend_seconds_to_limit{series=\"rss\"} 1800.5\n"));
        assert!(!text.contains("heaptide_trend_seconds_to_limit{series=\"heap\"}"));
        assert!(text.contains("heaptide_trend_growth_bytes_per_second{series=\"heap\"} 1\n"));
        assert!(text.contains("# TYPE heaptide_rss_threshold_bytes gauge\n"));
        assert!(text.contains("heaptide_rss_threshold_bytes{threshold=\"warn\"} 536870912\n"));
        assert!(text.contains("heaptide_rss_threshold_bytes{threshold=\"limit\"} 1073741824\n"));
        assert!(!text.contains("threshold=\"critical\""));
    }
}
