//! The figures of a [`summary`](fn@super::summary) as metric families, one list that both
//! outputs write: the Prometheus text format of `GET /metrics` (feature `http`,
//! `src/http/metrics.rs`) and the OTLP export (feature `otlp`, `src/otlp/`).
//!
//! Each family has two names: the Prometheus one (`heaptide_` prefix, base unit in the name,
//! `_total` on counters) and the OpenTelemetry one (dotted, the unit in the `unit` field as UCUM:
//! `By`, `s`, `1`, `By/s`, or a `{annotation}` for counts). Counters are monotonic cumulative
//! sums in OTLP, counted from the profiler's start; every other family is a gauge. Heap figures
//! of call sites (`allocated`, `live`, size classes, leaks) are estimates unless the sample
//! interval is 1; process and jemalloc figures are measured.
//!
//! | Prometheus family | OpenTelemetry name (unit) | type | labels / attributes |
//! |---|---|---|---|
//! | `heaptide_build_info` | `heaptide.build.info` (1) | gauge (1) | `version`, `stack_walker` |
//! | `heaptide_sample_interval_bytes` | `heaptide.sample.interval` (By) | gauge | |
//! | `heaptide_resident_memory_bytes`, `heaptide_virtual_memory_bytes` | `heaptide.memory.resident`, `heaptide.memory.virtual` (By) | gauge | |
//! | `heaptide_jemalloc_{allocated,active,metadata,resident,mapped,retained}_bytes` | `heaptide.jemalloc.{allocated,active,metadata,resident,mapped,retained}` (By) | gauge | |
//! | `heaptide_jemalloc_{fragmentation,active,metadata}_ratio` | `heaptide.jemalloc.{fragmentation,active_ratio,metadata_ratio}` (1) | gauge | |
//! | `heaptide_cgroup_memory_bytes`, `heaptide_cgroup_memory_max_bytes` (in a memory cgroup; max only if limited) | `heaptide.cgroup.memory.usage`, `heaptide.cgroup.memory.limit` (By) | gauge | |
//! | `heaptide_memory_pressure_ratio` (where the kernel reports PSI) | `heaptide.memory.pressure` (1) | gauge | `kind` (`some`, `full`), `window` (`10s`, `60s`) |
//! | `heaptide_allocated_bytes_total`, `heaptide_allocations_total` | `heaptide.heap.allocated` (By), `heaptide.heap.allocations` ({allocation}) | counter | |
//! | `heaptide_live_bytes`, `heaptide_live_objects` | `heaptide.heap.live` (By), `heaptide.heap.live_objects` ({object}) | gauge | |
//! | `heaptide_size_class_allocated_bytes_total`, `heaptide_size_class_allocations_total` | `heaptide.heap.size_class.allocated` (By), `heaptide.heap.size_class.allocations` ({allocation}) | counter | `size` |
//! | `heaptide_size_class_live_bytes`, `heaptide_size_class_live_objects` | `heaptide.heap.size_class.live` (By), `heaptide.heap.size_class.live_objects` ({object}) | gauge | `size` |
//! | `heaptide_label_live_bytes`, `heaptide_label_allocated_bytes_total` (when labels are used; one series per `key=value` pair, bounded by the 256 label sets) | `heaptide.label.live`, `heaptide.label.allocated` (By) | gauge, counter | `key`, `value` |
//! | `heaptide_top_site_live_bytes` (the 10 sites holding the most) | `heaptide.top_site.live` (By) | gauge | `rank` (1-10), `site` (function and file:line), `labels` (`k=v,...`) |
//! | `heaptide_call_sites` | `heaptide.call_sites` ({call_site}) | gauge | |
//! | `heaptide_site_table_bytes`, `heaptide_site_table_budget_bytes` | `heaptide.site_table.size`, `heaptide.site_table.budget` (By) | gauge | |
//! | `heaptide_site_table_merged_stacks_total` | `heaptide.site_table.merged_stacks` ({stack}) | counter | |
//! | `heaptide_samples_total`, `heaptide_samples_dropped_total` | `heaptide.samples.taken`, `heaptide.samples.dropped` ({sample}) | counter | |
//! | `heaptide_leak_candidates`, `heaptide_leak_live_bytes`, `heaptide_leak_growth_bytes_per_second` | `heaptide.leak.candidates` ({call_site}), `heaptide.leak.live` (By), `heaptide.leak.growth` (By/s) | gauge | `severity` |
//! | `heaptide_health_status` | `heaptide.health.status` (1) | gauge (state set) | `status` |
//! | `heaptide_health_level` | `heaptide.health.level` (1) | gauge (0 ok, 1 warning, 2 critical) | |
//! | `heaptide_trend_growth_bytes_per_second` | `heaptide.trend.growth` (By/s) | gauge | `series` (`heap`, `rss`) |
//! | `heaptide_trend_seconds_to_limit` (only with `HEAPTIDE_LIMIT`, while growing or over it) | `heaptide.trend.time_to_limit` (s) | gauge | `series` (`heap`, `rss`) |
//! | `heaptide_rss_threshold_bytes` (only the thresholds set) | `heaptide.memory.resident.threshold` (By) | gauge | `threshold` (`warn`, `critical`, `limit`) |
//! | `heaptide_snapshots` | `heaptide.snapshots` ({snapshot}) | gauge | |
//! | `heaptide_profiler_{overhead,ring,reserved,sampled_arena,sampled_arena_resident}_bytes` | `heaptide.profiler.{overhead,rings,reserved,sampled_arena,sampled_arena_resident}` (By) | gauge | |
//! | `heaptide_profiler_live_samples`, `heaptide_profiler_pending_frees`, `heaptide_profiler_thread_slots`, `heaptide_profiler_symbols_cached` | `heaptide.profiler.{live_samples,pending_frees,thread_slots,symbols_cached}` | gauge | |
//! | `heaptide_profiler_backlog_waits_total`, `heaptide_profiler_rings_freed_total` | `heaptide.profiler.{backlog_waits,rings_freed}` | counter | |
//! | `heaptide_http_connections_evicted_total` (with the HTTP server's figures) | `heaptide.http.connections_evicted` ({connection}) | counter | |
//! | `heaptide_reports_built_total` | `heaptide.reports.built` ({report}) | counter | |
//! | `heaptide_http_cached_answers_total`, `heaptide_http_paced_seconds_total` (with the HTTP server's figures) | `heaptide.http.cached_answers` ({answer}), `heaptide.http.paced_time` (s) | counter | |
//! | `heaptide_report_build_seconds` | `heaptide.gather.duration` (s) | gauge | |
//!
//! The HTTP server's three counters are listed when its figures are passed in
//! ([`ServerCounters`]): always on `/metrics`, and in OTLP when the crate is built with the
//! `http` feature too.

use std::borrow::Cow;

use super::{HealthStatus, Report, Severity, SizeBucket};

/// A family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A value that goes up and down.
    Gauge,
    /// A count since the profiler started, which only grows.
    Counter,
}

/// A sample's value: an integer or a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// One sample of a family: its labels (name, value) and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Point<'a> {
    pub(crate) labels: Vec<(&'static str, Cow<'a, str>)>,
    pub(crate) value: Value,
}

/// A metric family and its samples, in the order they are written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Family<'a> {
    /// The Prometheus name.
    pub(crate) name: &'static str,
    /// The OpenTelemetry name.
    pub(crate) otel_name: &'static str,
    /// The OpenTelemetry unit (UCUM).
    pub(crate) unit: &'static str,
    pub(crate) kind: Kind,
    /// What it measures (Prometheus `HELP`, OpenTelemetry `description`).
    pub(crate) help: &'static str,
    pub(crate) points: Vec<Point<'a>>,
}

/// The HTTP server's own counters (`src/http/`), read where that module is built.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ServerCounters {
    /// Connections closed to make room for a new one.
    pub(crate) connections_evicted: u64,
    /// Requests answered from the latest report.
    pub(crate) cached_answers: u64,
    /// Seconds requests waited for their turn.
    pub(crate) paced_seconds: f64,
}

/// The families being listed.
struct List<'a>(Vec<Family<'a>>);

impl<'a> List<'a> {
    /// A family without samples yet (`/metrics` lists a family's `HELP` and `TYPE` even if it
    /// gets none).
    fn family(
        &mut self,
        name: &'static str,
        otel_name: &'static str,
        unit: &'static str,
        kind: Kind,
        help: &'static str,
    ) {
        self.0.push(Family {
            name,
            otel_name,
            unit,
            kind,
            help,
            points: Vec::new(),
        });
    }

    /// One sample of the family listed last.
    fn sample(&mut self, labels: &[(&'static str, &'a str)], value: impl Into<Value>) {
        let labels = labels.iter().map(|&(k, v)| (k, Cow::Borrowed(v))).collect();
        self.sample_owned(labels, value);
    }

    /// One sample of the family listed last, its label values made for it.
    fn sample_owned(&mut self, labels: Vec<(&'static str, Cow<'a, str>)>, value: impl Into<Value>) {
        if let Some(f) = self.0.last_mut() {
            f.points.push(Point {
                labels,
                value: value.into(),
            });
        }
    }

    /// A family with one unlabelled gauge sample.
    fn gauge(
        &mut self,
        name: &'static str,
        otel_name: &'static str,
        unit: &'static str,
        help: &'static str,
        value: impl Into<Value>,
    ) {
        self.family(name, otel_name, unit, Kind::Gauge, help);
        self.sample(&[], value);
    }

    /// A family with one unlabelled counter sample.
    fn counter(
        &mut self,
        name: &'static str,
        otel_name: &'static str,
        unit: &'static str,
        help: &'static str,
        value: impl Into<Value>,
    ) {
        self.family(name, otel_name, unit, Kind::Counter, help);
        self.sample(&[], value);
    }
}

/// The families of `report` (a [`summary`](fn@super::summary)), in the order `/metrics` lists
/// them; `server`: the HTTP server's counters, if they are to be listed; `gather_seconds`: how
/// long taking `report` took.
pub(crate) fn families(
    report: &Report,
    server: Option<ServerCounters>,
    gather_seconds: f64,
) -> Vec<Family<'_>> {
    let mut m = List(Vec::with_capacity(64));
    let r = report;
    let p = &r.profiler;

    m.family(
        "heaptide_build_info",
        "heaptide.build.info",
        "1",
        Kind::Gauge,
        "Always 1; the labels describe the heaptide build.",
    );
    m.sample(
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("stack_walker", &p.stack_walker),
        ],
        1u64,
    );
    m.gauge(
        "heaptide_sample_interval_bytes",
        "heaptide.sample.interval",
        "By",
        "Mean bytes allocated between samples (1: every allocation, exact figures; 0: profiling off).",
        r.sample_interval,
    );

    // The memory snapshot (measured).
    m.gauge(
        "heaptide_resident_memory_bytes",
        "heaptide.memory.resident",
        "By",
        "Resident set size of the process (/proc/self/statm).",
        r.memory.rss_bytes,
    );
    m.gauge(
        "heaptide_virtual_memory_bytes",
        "heaptide.memory.virtual",
        "By",
        "Virtual memory size of the process (/proc/self/statm), including heaptide's PROT_NONE reservation.",
        r.memory.virtual_bytes,
    );
    let j = &r.memory.jemalloc;
    for (name, otel_name, help, value) in [
        (
            "heaptide_jemalloc_allocated_bytes",
            "heaptide.jemalloc.allocated",
            "Bytes allocated by the application (jemalloc stats.allocated).",
            j.allocated,
        ),
        (
            "heaptide_jemalloc_active_bytes",
            "heaptide.jemalloc.active",
            "Bytes in active pages (jemalloc stats.active).",
            j.active,
        ),
        (
            "heaptide_jemalloc_metadata_bytes",
            "heaptide.jemalloc.metadata",
            "Bytes of jemalloc metadata (jemalloc stats.metadata).",
            j.metadata,
        ),
        (
            "heaptide_jemalloc_resident_bytes",
            "heaptide.jemalloc.resident",
            "Bytes in physically resident data pages (jemalloc stats.resident).",
            j.resident,
        ),
        (
            "heaptide_jemalloc_mapped_bytes",
            "heaptide.jemalloc.mapped",
            "Bytes in extents mapped by jemalloc (jemalloc stats.mapped).",
            j.mapped,
        ),
        (
            "heaptide_jemalloc_retained_bytes",
            "heaptide.jemalloc.retained",
            "Bytes retained as virtual memory, not returned to the kernel (jemalloc stats.retained).",
            j.retained,
        ),
    ] {
        m.gauge(name, otel_name, "By", help, value);
    }
    m.gauge(
        "heaptide_jemalloc_fragmentation_ratio",
        "heaptide.jemalloc.fragmentation",
        "1",
        "jemalloc resident bytes per allocated byte (1 is perfect; 0 when nothing is allocated).",
        r.memory.fragmentation_ratio,
    );
    m.gauge(
        "heaptide_jemalloc_active_ratio",
        "heaptide.jemalloc.active_ratio",
        "1",
        "jemalloc active bytes per allocated byte.",
        r.memory.active_ratio,
    );
    m.gauge(
        "heaptide_jemalloc_metadata_ratio",
        "heaptide.jemalloc.metadata_ratio",
        "1",
        "jemalloc metadata bytes per allocated byte.",
        r.memory.metadata_ratio,
    );
    if let Some(cg) = r.memory.cgroup {
        m.gauge(
            "heaptide_cgroup_memory_bytes",
            "heaptide.cgroup.memory.usage",
            "By",
            "Memory the process's control group uses (cgroup v2 memory.current, v1 memory.usage_in_bytes): what its OOM killer counts.",
            cg.current_bytes,
        );
        if let Some(max) = cg.max_bytes {
            m.gauge(
                "heaptide_cgroup_memory_max_bytes",
                "heaptide.cgroup.memory.limit",
                "By",
                "The control group's hard memory limit (cgroup v2 memory.max, v1 memory.limit_in_bytes); absent if unlimited.",
                max,
            );
        }
        if let Some(p) = cg.pressure {
            m.family(
                "heaptide_memory_pressure_ratio",
                "heaptide.memory.pressure",
                "1",
                Kind::Gauge,
                "Share of time tasks stalled waiting for memory (PSI), averaged over `window`; kind=some: some tasks, kind=full: all at once. The group's under cgroup v2, the system's otherwise.",
            );
            for (kind, window, value) in [
                ("some", "10s", p.some_avg10),
                ("some", "60s", p.some_avg60),
                ("full", "10s", p.full_avg10),
                ("full", "60s", p.full_avg60),
            ] {
                m.sample(&[("kind", kind), ("window", window)], value / 100.0);
            }
        }
    }

    // Totals (estimated unless exact).
    m.counter(
        "heaptide_allocated_bytes_total",
        "heaptide.heap.allocated",
        "By",
        "Bytes allocated since the profiler started, freed or not (estimated from samples unless exact).",
        r.totals.alloc_bytes,
    );
    m.counter(
        "heaptide_allocations_total",
        "heaptide.heap.allocations",
        "{allocation}",
        "Allocations since the profiler started (estimated unless exact).",
        r.totals.alloc_count,
    );
    m.gauge(
        "heaptide_live_bytes",
        "heaptide.heap.live",
        "By",
        "Bytes allocated and not yet freed (estimated unless exact).",
        r.totals.live_bytes,
    );
    m.gauge(
        "heaptide_live_objects",
        "heaptide.heap.live_objects",
        "{object}",
        "Blocks allocated and not yet freed (estimated unless exact).",
        r.totals.live_count,
    );

    // Size classes: tiny < 64 B, small < 1 KiB, medium < 64 KiB, large < 1 MiB, huge.
    type Field = fn(&SizeBucket) -> u64;
    let classes: [(&str, &str, &str, Kind, &str, Field); 4] = [
        (
            "heaptide_size_class_allocated_bytes_total",
            "heaptide.heap.size_class.allocated",
            "By",
            Kind::Counter,
            "Bytes allocated since start by allocation size class (tiny < 64 B, small < 1 KiB, medium < 64 KiB, large < 1 MiB, huge).",
            |b| b.alloc_bytes,
        ),
        (
            "heaptide_size_class_allocations_total",
            "heaptide.heap.size_class.allocations",
            "{allocation}",
            Kind::Counter,
            "Allocations since start by size class.",
            |b| b.alloc_count,
        ),
        (
            "heaptide_size_class_live_bytes",
            "heaptide.heap.size_class.live",
            "By",
            Kind::Gauge,
            "Live bytes by size class.",
            |b| b.live_bytes,
        ),
        (
            "heaptide_size_class_live_objects",
            "heaptide.heap.size_class.live_objects",
            "{object}",
            Kind::Gauge,
            "Live blocks by size class.",
            |b| b.live_count,
        ),
    ];
    for (name, otel_name, unit, kind, help, field) in classes {
        m.family(name, otel_name, unit, kind, help);
        for b in &r.size_buckets {
            m.sample(&[("size", &b.name)], field(b));
        }
    }
    labels_and_top_sites(&mut m, r);
    m.gauge(
        "heaptide_call_sites",
        "heaptide.call_sites",
        "{call_site}",
        "Call stacks in the call-site table (raw stacks, before merging by symbolized stack).",
        r.sites_seen,
    );
    m.gauge(
        "heaptide_site_table_bytes",
        "heaptide.site_table.size",
        "By",
        "Estimated bytes of the call-site table.",
        r.site_table.bytes,
    );
    m.gauge(
        "heaptide_site_table_budget_bytes",
        "heaptide.site_table.budget",
        "By",
        "Budget of the call-site table (HEAPTIDE_SITE_BUDGET, or 64 MiB or 1% of the live heap).",
        r.site_table.budget_bytes,
    );
    m.counter(
        "heaptide_site_table_merged_stacks_total",
        "heaptide.site_table.merged_stacks",
        "{stack}",
        "Call stacks merged into \"other\" sites to keep the call-site table within its budget (totals stay exact).",
        r.site_table.merged_stacks,
    );

    // Samples.
    m.counter(
        "heaptide_samples_total",
        "heaptide.samples.taken",
        "{sample}",
        "Allocation samples taken.",
        p.samples,
    );
    m.counter(
        "heaptide_samples_dropped_total",
        "heaptide.samples.dropped",
        "{sample}",
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
        "heaptide.leak.candidates",
        "{call_site}",
        Kind::Gauge,
        "Call sites whose live bytes keep growing over the snapshot window, by severity of their growth rate.",
    );
    for (i, &(_, name)) in SEVERITIES.iter().enumerate() {
        m.sample(&[("severity", name)], by_severity[i].0);
    }
    m.family(
        "heaptide_leak_live_bytes",
        "heaptide.leak.live",
        "By",
        Kind::Gauge,
        "Live bytes of the leak candidates, by severity.",
    );
    for (i, &(_, name)) in SEVERITIES.iter().enumerate() {
        m.sample(&[("severity", name)], by_severity[i].1);
    }
    m.family(
        "heaptide_leak_growth_bytes_per_second",
        "heaptide.leak.growth",
        "By/s",
        Kind::Gauge,
        "Summed growth rate of the leak candidates' live bytes (least squares over the window), by severity.",
    );
    for (i, &(_, name)) in SEVERITIES.iter().enumerate() {
        m.sample(&[("severity", name)], by_severity[i].2);
    }

    // Health.
    const STATUSES: [(HealthStatus, &str); 3] = [
        (HealthStatus::Ok, "ok"),
        (HealthStatus::Warning, "warning"),
        (HealthStatus::Critical, "critical"),
    ];
    m.family(
        "heaptide_health_status",
        "heaptide.health.status",
        "1",
        Kind::Gauge,
        "1 for the current health status (judged on RSS thresholds and serious leaks), 0 for the others.",
    );
    for (status, name) in STATUSES {
        m.sample(&[("status", name)], u64::from(r.health.status == status));
    }
    let level = STATUSES
        .iter()
        .position(|&(s, _)| s == r.health.status)
        .unwrap_or(0) as u64;
    m.gauge(
        "heaptide_health_level",
        "heaptide.health.level",
        "1",
        "Health as a number: 0 ok, 1 warning, 2 critical.",
        level,
    );

    // Trend.
    let trends = [("heap", r.trend.heap), ("rss", r.trend.rss)];
    if trends.iter().any(|(_, t)| t.is_some()) {
        m.family(
            "heaptide_trend_growth_bytes_per_second",
            "heaptide.trend.growth",
            "By/s",
            Kind::Gauge,
            "Growth over the snapshot window (least-squares slope) of jemalloc's allocated bytes (heap) and of RSS (rss).",
        );
        for (series, trend) in trends {
            if let Some(t) = trend {
                m.sample(&[("series", series)], t.growth_bytes_per_hour / 3600.0);
            }
        }
    }
    if trends
        .iter()
        .any(|(_, t)| t.is_some_and(|t| t.seconds_to_limit.is_some()))
    {
        m.family(
            "heaptide_trend_seconds_to_limit",
            "heaptide.trend.time_to_limit",
            "s",
            Kind::Gauge,
            "Seconds until the series reaches HEAPTIDE_LIMIT at its current growth (0: at or over it); no sample without a limit or while the series is under it and not growing.",
        );
        for (series, trend) in trends {
            if let Some(secs) = trend.and_then(|t| t.seconds_to_limit) {
                m.sample(&[("series", series)], secs);
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
            "heaptide.memory.resident.threshold",
            "By",
            Kind::Gauge,
            "The RSS thresholds set: HEAPTIDE_WARN (warn), HEAPTIDE_CRITICAL (critical), HEAPTIDE_LIMIT (limit); one sample per threshold set.",
        );
        for (threshold, bytes) in thresholds {
            if let Some(b) = bytes {
                m.sample(&[("threshold", threshold)], b);
            }
        }
    }
    m.gauge(
        "heaptide_snapshots",
        "heaptide.snapshots",
        "{snapshot}",
        "Snapshots in the history the trend and the leak detector read.",
        r.snapshots.points.len() as u64,
    );

    // The profiler's own figures.
    for (name, otel_name, unit, help, value) in [
        (
            "heaptide_profiler_overhead_bytes",
            "heaptide.profiler.overhead",
            "By",
            "Bytes the profiler itself holds (rings, symbol cache, aggregation, sampled-block headers).",
            p.overhead_bytes,
        ),
        (
            "heaptide_profiler_ring_bytes",
            "heaptide.profiler.rings",
            "By",
            "Memory of all per-thread sample rings (included in the overhead).",
            p.ring_bytes,
        ),
        (
            "heaptide_profiler_reserved_bytes",
            "heaptide.profiler.reserved",
            "By",
            "Address space reserved for sampled blocks (PROT_NONE, not memory).",
            p.reserved_bytes,
        ),
        (
            "heaptide_profiler_sampled_arena_bytes",
            "heaptide.profiler.sampled_arena",
            "By",
            "Part of the reservation jemalloc has taken for sampled blocks.",
            p.sampled_arena_bytes,
        ),
        (
            "heaptide_profiler_sampled_arena_resident_bytes",
            "heaptide.profiler.sampled_arena_resident",
            "By",
            "Resident pages of the sampled range (mincore): live sampled blocks, their headers and the arena's slack.",
            p.sampled_arena_resident_bytes,
        ),
        (
            "heaptide_profiler_live_samples",
            "heaptide.profiler.live_samples",
            "{sample}",
            "Live samples held by the profiler.",
            p.live_samples,
        ),
        (
            "heaptide_profiler_pending_frees",
            "heaptide.profiler.pending_frees",
            "{free}",
            "Frees seen before their allocation and still waiting for it.",
            p.pending_frees,
        ),
        (
            "heaptide_profiler_thread_slots",
            "heaptide.profiler.thread_slots",
            "{thread}",
            "Threads that ever took a sample (ring slots created).",
            p.thread_slots,
        ),
        (
            "heaptide_profiler_symbols_cached",
            "heaptide.profiler.symbols_cached",
            "{address}",
            "Addresses in the symbol cache.",
            p.symbols_cached,
        ),
    ] {
        m.gauge(name, otel_name, unit, help, value);
    }
    m.counter(
        "heaptide_profiler_backlog_waits_total",
        "heaptide.profiler.backlog_waits",
        "{wait}",
        "Times a thread waited for the drain because a backlog was at its mark (it helped the drain or yielded; no sample dropped).",
        p.backlog_waits,
    );
    m.counter(
        "heaptide_profiler_rings_freed_total",
        "heaptide.profiler.rings_freed",
        "{ring}",
        "Sample rings of exited threads freed (16 free rings are kept for new threads).",
        p.rings_freed,
    );
    if let Some(s) = server {
        m.counter(
            "heaptide_http_connections_evicted_total",
            "heaptide.http.connections_evicted",
            "{connection}",
            "HTTP connections closed to make room for a new one (all slots held by connections that had not sent a whole request).",
            s.connections_evicted,
        );
    }
    m.counter(
        "heaptide_reports_built_total",
        "heaptide.reports.built",
        "{report}",
        "Full reports built (API, dumps, alerts, HTTP; HTTP builds one at most every 5 s). /metrics builds none.",
        p.reports_built,
    );
    if let Some(s) = server {
        m.counter(
            "heaptide_http_cached_answers_total",
            "heaptide.http.cached_answers",
            "{answer}",
            "HTTP requests answered from the latest report rather than a new one (reports are built at most every 5 s).",
            s.cached_answers,
        );
        m.counter(
            "heaptide_http_paced_seconds_total",
            "heaptide.http.paced_time",
            "s",
            "Time HTTP requests waited for their turn: answers take at most 1/20 of a core, whatever the request rate.",
            s.paced_seconds,
        );
    }
    m.gauge(
        "heaptide_report_build_seconds",
        "heaptide.gather.duration",
        "s",
        "Time taken to gather the figures behind this scrape.",
        gather_seconds,
    );
    m.0
}

/// Memory by label (one series per `key=value` pair, summing the label sets that hold it; at
/// most one per label set, and label sets are bounded) and the top sites by live bytes (at
/// most [`super::SUMMARY_SITES`] series, by rank).
fn labels_and_top_sites<'a>(m: &mut List<'a>, r: &'a Report) {
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
            "heaptide.label.live",
            "By",
            Kind::Gauge,
            "Bytes allocated under a label (key=value) and not yet freed (estimated unless exact).",
        );
        for (&(k, v), &(live, _)) in &pairs {
            m.sample(&[("key", k), ("value", v)], live);
        }
        m.family(
            "heaptide_label_allocated_bytes_total",
            "heaptide.label.allocated",
            "By",
            Kind::Counter,
            "Bytes allocated under a label (key=value) since start (estimated unless exact).",
        );
        for (&(k, v), &(_, alloc)) in &pairs {
            m.sample(&[("key", k), ("value", v)], alloc);
        }
    }
    m.family(
        "heaptide_top_site_live_bytes",
        "heaptide.top_site.live",
        "By",
        Kind::Gauge,
        "Live bytes of the call sites holding the most (rank 1: the most), named by the frame to blame and their labels (estimated unless exact).",
    );
    for (i, site) in r.sites.iter().enumerate() {
        let rank = (i + 1).to_string();
        let name = site.blamed.as_ref().map_or_else(
            || "<unknown>".to_string(),
            |f| crate::symbolize::short_frame(f).to_string(),
        );
        let labels = super::text::label_list(&site.labels);
        m.sample_owned(
            vec![
                ("rank", Cow::Owned(rank)),
                ("site", Cow::Owned(name)),
                ("labels", Cow::Owned(labels)),
            ],
            site.live_bytes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report with every optional family present.
    fn full_report() -> Report {
        let mut report = crate::report::take();
        report.size_buckets = vec![SizeBucket {
            name: "tiny".into(),
            alloc_count: 3,
            ..Default::default()
        }];
        report.health = Default::default();
        report.health.warn_bytes = Some(1 << 29);
        let trend = crate::report::Trend {
            window_seconds: 90.0,
            points: 10,
            growth_bytes_per_hour: 3600.0,
            r_squared: 1.0,
            peak_bytes: 100.0,
            min_bytes: 10.0,
            average_bytes: 50.0,
            volatility: 0.0,
            latest_bytes: 100.0,
            seconds_to_limit: Some(60.0),
        };
        report.trend.heap = Some(trend);
        report.memory.cgroup = Some(crate::report::CgroupMemory {
            version: 2,
            current_bytes: 1,
            max_bytes: Some(2),
            pressure: Some(Default::default()),
        });
        report
    }

    #[test]
    fn names_units_and_kinds_are_consistent() {
        let report = full_report();
        let list = families(&report, Some(ServerCounters::default()), 0.0);
        let mut otel: Vec<&str> = Vec::new();
        for f in &list {
            // The top sites are those of the report (none here).
            if f.name != "heaptide_top_site_live_bytes" {
                assert!(!f.points.is_empty(), "{} has no sample", f.name);
            }
            assert_eq!(
                f.kind == Kind::Counter,
                f.name.ends_with("_total"),
                "{}",
                f.name
            );
            assert!(f.otel_name.starts_with("heaptide."), "{}", f.otel_name);
            assert!(
                f.otel_name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._".contains(&b)),
                "{}",
                f.otel_name
            );
            // The Prometheus name carries the unit; the OpenTelemetry one does not.
            let want = if f.name.ends_with("_bytes") || f.name.ends_with("_bytes_total") {
                "By"
            } else if f.name.ends_with("_bytes_per_second") {
                "By/s"
            } else if f.name.ends_with("_seconds") || f.name.ends_with("_seconds_total") {
                "s"
            } else if f.name.ends_with("_ratio") {
                "1"
            } else {
                ""
            };
            if !want.is_empty() {
                assert_eq!(f.unit, want, "{}", f.name);
            }
            assert!(!f.unit.is_empty(), "{} has no unit", f.name);
            otel.push(f.otel_name);
        }
        let n = otel.len();
        otel.sort_unstable();
        otel.dedup();
        assert_eq!(otel.len(), n, "an OpenTelemetry name appears twice");
        assert!(
            list.iter()
                .any(|f| f.name == "heaptide_memory_pressure_ratio")
        );
        assert!(
            list.iter()
                .any(|f| f.name == "heaptide_trend_seconds_to_limit")
        );
        assert!(
            list.iter()
                .any(|f| f.name == "heaptide_rss_threshold_bytes")
        );
    }

    #[test]
    fn server_counters_only_when_given() {
        let report = full_report();
        let with = families(&report, Some(ServerCounters::default()), 0.0);
        let without = families(&report, None, 0.0);
        assert_eq!(with.len(), without.len() + 3);
        assert!(!without.iter().any(|f| f.name.starts_with("heaptide_http_")));
    }
}
