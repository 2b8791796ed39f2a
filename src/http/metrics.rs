//! `GET /metrics`: a [`Report`] in the Prometheus text exposition format (version 0.0.4), from
//! [`crate::report::summary`] (no work per call site; leaks judged per raw call stack).
//!
//! Names follow Prometheus conventions: the `heaptide_` prefix, base units in the name
//! (`_bytes`, `_seconds`, `_ratio`), `_total` on counters, a `HELP` and a `TYPE` line per family.
//! The families, their types and labels are listed by `crate::report::metrics` (the table in
//! `src/report/metrics.rs`), which the OTLP export writes too; this module writes them as text,
//! with the server's own counters.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::report::Report;
use crate::report::metrics::{Kind, ServerCounters, Value, families};
use crate::sync::Ordering;

/// The `Content-Type` of the exposition.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The server's own counters, for the metric families.
pub(crate) fn server_counters() -> ServerCounters {
    ServerCounters {
        connections_evicted: super::server::EVICTED.load(Ordering::Relaxed),
        cached_answers: super::routes::CACHED_ANSWERS.load(Ordering::Relaxed),
        paced_seconds: super::routes::PACED_NS.load(Ordering::Relaxed) as f64 / 1e9,
    }
}

/// Renders `report` (which took `build_seconds` to build).
pub(crate) fn render(report: &Report, build_seconds: f64) -> String {
    let mut m = Metrics(String::with_capacity(8 * 1024));
    for family in families(report, Some(server_counters()), build_seconds) {
        let kind = match family.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        m.family(family.name, kind, family.help);
        for point in &family.points {
            m.sample(family.name, &point.labels, point.value);
        }
    }
    m.0
}

/// Writes a sample value: integers as they are, floats in decimal (`NaN`, `+Inf`, `-Inf`).
fn write_value(value: Value, out: &mut String) {
    match value {
        Value::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Value::Float(v) if v.is_nan() => out.push_str("NaN"),
        Value::Float(v) if v.is_infinite() => out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
        // `Display` never uses an exponent; Prometheus parses any decimal.
        Value::Float(v) => {
            let _ = write!(out, "{v}");
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
    fn sample(&mut self, name: &str, labels: &[(&str, Cow<'_, str>)], value: Value) {
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
        write_value(value, &mut self.0);
        self.0.push('\n');
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
        for v in [
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(-f64::INFINITY),
            Value::Float(0.25),
            Value::Float(1e-7),
            Value::Int(42),
        ] {
            write_value(v, &mut s);
            s.push(' ');
        }
        assert_eq!(s, "NaN +Inf -Inf 0.25 0.0000001 42 ");
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
