//! An arbitrary [`heaptide::Report`], built field by field from fuzzer bytes (as its JSON form,
//! then read back: the report's types are `#[non_exhaustive]`).
//!
//! Numbers lean toward the edges (0, 1, `i64::MAX`, `i64::MAX + 1`, `u64::MAX`); floats are any
//! finite value (JSON has no NaN or infinity: those are mapped to finite values); strings are
//! either arbitrary UTF-8 or one of a few that break naive writers (separators of the folded
//! format, HTML and JSON metacharacters, names the writers treat specially). Vectors are short,
//! so one input stays cheap to write in every format.

use arbitrary::{Result, Unstructured};
use heaptide::Report;
use heaptide::report::{AlertKind, DurationPercentiles, Frame, HealthStatus, Pattern, Severity};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const TRICKY: &[&str] = &[
    "",
    " ",
    ";",
    "a;b",
    "x y 12",
    "\n",
    "line\r\nbreak",
    "\u{0}",
    "\u{2028}",
    "é\u{301}",
    "<unknown>",
    "<script>alert(1)</script>",
    "</script><!--",
    "&amp;\"'`",
    "\\u0000\"",
    "{}[],:",
    "alloc::alloc::alloc",
    "<alloc::alloc::Global>::alloc_impl",
    "alloc::raw_vec::RawVec<T,A>::grow_one",
    "core::ptr::drop_in_place<alloc::vec::Vec<u8>>",
    "<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem",
    "heaptide::alloc::sample_alloc",
    "__rust_alloc",
    "demo::leak_slowly",
    "<demo::Cache as core::clone::Clone>::clone",
    "0x7f00deadbeef",
    "src/main.rs",
    "/rustc/abc/library/alloc/src/raw_vec.rs",
];

fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 2)? {
        return Ok((*u.choose(TRICKY)?).to_string());
    }
    let s: &str = u.arbitrary()?;
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Ok(s[..end].to_string())
}

fn num(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=9)? {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        3 => i64::MAX as u64,
        4 => i64::MAX as u64 + 1,
        5 => u.int_in_range(0..=4096)?,
        _ => u.arbitrary()?,
    })
}

/// A time in ms since the Unix epoch: anything, with the edges (`Report::write_html` once
/// overflowed on leak history times beyond `i64::MAX`; it saturates now).
fn time_ms(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(match u.int_in_range(0u8..=6)? {
        0 => 0,
        1 => i64::MAX as u64,
        2 => 1_700_000_000_000 + u.int_in_range(0..=1u64 << 32)?,
        3 => u64::MAX,
        _ => u.arbitrary()?,
    })
}

/// A count-like figure that stays small (sums of many of them cannot overflow).
fn small(u: &mut Unstructured<'_>) -> Result<u64> {
    Ok(u64::from(u.arbitrary::<u32>()?))
}

fn opt<T>(
    u: &mut Unstructured<'_>,
    f: impl FnOnce(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Option<T>> {
    Ok(if u.arbitrary()? { Some(f(u)?) } else { None })
}

fn vec<T>(
    u: &mut Unstructured<'_>,
    max: usize,
    mut f: impl FnMut(&mut Unstructured<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        if u.is_empty() {
            break;
        }
        v.push(f(u)?);
    }
    Ok(v)
}

/// Any finite float (NaN and infinities, which JSON cannot carry, become finite values).
pub fn float(u: &mut Unstructured<'_>) -> Result<f64> {
    let x = match u.int_in_range(0u8..=9)? {
        0 => 0.0,
        1 => -0.0,
        2 => f64::MIN_POSITIVE,
        3 => 5e-324,
        4 => f64::MAX,
        5 => 0.1,
        6 => f64::from(u.arbitrary::<u32>()?) / 7.0,
        _ => f64::from_bits(u.arbitrary()?),
    };
    Ok(if x.is_nan() {
        0.0
    } else if x.is_infinite() {
        f64::MAX.copysign(x)
    } else {
        x
    })
}

/// A report type from its JSON form: the types are `#[non_exhaustive]`, so outside heaptide
/// they are deserialized (as a report read back from a dump is), not built with a literal.
fn from_json<T: DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("heaptide reads its own JSON form back")
}

fn frame(u: &mut Unstructured<'_>) -> Result<Frame> {
    Ok(from_json(json!({
        "function": string(u)?,
        "file": opt(u, string)?,
        "line": u.arbitrary::<Option<u32>>()?,
    })))
}

/// A pool of frames the stacks draw from, so frames repeat across sites (the writers'
/// deduplication paths run) as well as differ.
fn frames(u: &mut Unstructured<'_>, pool: &[Frame]) -> Result<Vec<Frame>> {
    vec(u, 12, |u| {
        if !pool.is_empty() && u.ratio(2, 3)? {
            Ok(u.choose(pool)?.clone())
        } else {
            frame(u)
        }
    })
}

fn lifetimes(u: &mut Unstructured<'_>) -> Result<DurationPercentiles> {
    Ok(from_json(json!({
        "count": num(u)?,
        "p50": num(u)?,
        "p90": num(u)?,
        "p99": num(u)?,
        "max": num(u)?,
    })))
}

fn pattern(u: &mut Unstructured<'_>) -> Result<Pattern> {
    Ok(*u.choose(&[
        Pattern::SteadyGrowth,
        Pattern::AcceleratingGrowth,
        Pattern::Plateau,
        Pattern::Sawtooth,
        Pattern::StableLongLived,
        Pattern::Declining,
        Pattern::InsufficientEvidence,
    ])?)
}

fn severity(u: &mut Unstructured<'_>) -> Result<Severity> {
    Ok(*u.choose(&[
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ])?)
}

fn status(u: &mut Unstructured<'_>) -> Result<HealthStatus> {
    Ok(*u.choose(&[
        HealthStatus::Ok,
        HealthStatus::Warning,
        HealthStatus::Critical,
    ])?)
}

fn rate(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(json!({
        "seconds": float(u)?,
        "alloc_bytes_per_sec": float(u)?,
        "alloc_count_per_sec": float(u)?,
    }))
}

fn trend(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(json!({
        "window_seconds": float(u)?,
        "points": num(u)?,
        "growth_bytes_per_hour": float(u)?,
        "r_squared": float(u)?,
        "peak_bytes": float(u)?,
        "min_bytes": float(u)?,
        "average_bytes": float(u)?,
        "volatility": float(u)?,
        "latest_bytes": float(u)?,
        "seconds_to_limit": opt(u, float)?,
    }))
}

fn site(u: &mut Unstructured<'_>, pool: &[Frame]) -> Result<Value> {
    Ok(json!({
        "id": num(u)?,
        "frames": frames(u, pool)?,
        "blamed": opt(u, frame)?,
        "alloc_bytes": num(u)?,
        "alloc_count": num(u)?,
        "live_bytes": num(u)?,
        "live_count": num(u)?,
        "samples": num(u)?,
        "lifetime_ns": opt(u, lifetimes)?,
        "size_histogram": vec(u, 6, |u| {
            Ok(json!({
                "min_bytes": num(u)?,
                "max_bytes": num(u)?,
                "alloc_count": num(u)?,
            }))
        })?,
        "pattern": opt(u, pattern)?,
        "needs_snapshots": opt(u, num)?,
        "first_seen_ms": time_ms(u)?,
        "last_seen_ms": time_ms(u)?,
    }))
}

fn leak(u: &mut Unstructured<'_>, pool: &[Frame]) -> Result<Value> {
    Ok(json!({
        "site_id": num(u)?,
        "frames": frames(u, pool)?,
        "blamed": opt(u, frame)?,
        "live_bytes": num(u)?,
        "live_samples": num(u)?,
        "growth_bytes_per_hour": float(u)?,
        "pattern": pattern(u)?,
        "severity": severity(u)?,
        "confidence": float(u)?,
        "reason": string(u)?,
        "age_ns": opt(u, lifetimes)?,
        "history": vec(u, 8, |u| Ok((time_ms(u)?, num(u)?)))?,
    }))
}

/// A report from fuzzer bytes.
pub fn report(u: &mut Unstructured<'_>) -> Result<Report> {
    let pool = vec(u, 8, frame)?;
    let report = json!({
        "version": u.arbitrary::<u32>()?,
        "pid": u.arbitrary::<u32>()?,
        "command_line": vec(u, 4, string)?,
        "timestamp": time_ms(u)?,
        "sample_interval": num(u)?,
        "exact": u.arbitrary::<bool>()?,
        "memory": {
            "rss_bytes": num(u)?,
            "virtual_bytes": num(u)?,
            "jemalloc": {
                "allocated": num(u)?,
                "active": num(u)?,
                "metadata": num(u)?,
                "resident": num(u)?,
                "mapped": num(u)?,
                "retained": num(u)?,
            },
            "fragmentation_ratio": float(u)?,
            "active_ratio": float(u)?,
            "metadata_ratio": float(u)?,
        },
        "totals": {
            "alloc_bytes": num(u)?,
            "alloc_count": num(u)?,
            "live_bytes": num(u)?,
            "live_count": num(u)?,
        },
        "size_buckets": vec(u, 5, |u| {
            Ok(json!({
                "name": string(u)?,
                "min_bytes": num(u)?,
                "max_bytes": opt(u, num)?,
                "alloc_count": num(u)?,
                "alloc_bytes": num(u)?,
                "live_count": num(u)?,
                "live_bytes": num(u)?,
            }))
        })?,
        "rate": {
            "since_start": rate(u)?,
            "recent": rate(u)?,
        },
        "lifetime_ns": opt(u, lifetimes)?,
        "leaks": vec(u, 4, |u| leak(u, &pool))?,
        "health": {
            "status": status(u)?,
            "reasons": vec(u, 3, string)?,
            "warn_bytes": opt(u, num)?,
            "critical_bytes": opt(u, num)?,
            "limit_bytes": opt(u, num)?,
        },
        "alerts": vec(u, 4, |u| {
            Ok(json!({
                "timestamp_ms": time_ms(u)?,
                "kind": *u.choose(&[AlertKind::Health, AlertKind::Leak])?,
                "status": status(u)?,
                "severity": opt(u, severity)?,
                "site_id": opt(u, num)?,
                "message": string(u)?,
            }))
        })?,
        "recommendations": vec(u, 4, |u| {
            Ok(json!({
                "kind": string(u)?,
                "site_id": opt(u, num)?,
                "message": string(u)?,
            }))
        })?,
        "trend": {
            "heap": opt(u, trend)?,
            "rss": opt(u, trend)?,
        },
        "snapshots": {
            "interval_ms": num(u)?,
            "max": num(u)?,
            "points": vec(u, 12, |u| {
                Ok(json!({
                    "timestamp_ms": time_ms(u)?,
                    "rss_bytes": num(u)?,
                    "heap_allocated_bytes": num(u)?,
                    "heap_resident_bytes": num(u)?,
                    "live_bytes": num(u)?,
                }))
            })?,
        },
        "sites": vec(u, 24, |u| site(u, &pool))?,
        "sites_seen": num(u)?,
        "site_table": {
            "budget_bytes": num(u)?,
            "bytes": num(u)?,
            "stacks": num(u)?,
            "other_sites": num(u)?,
            "merged_stacks": num(u)?,
            "merged_alloc_bytes": num(u)?,
            "merged_alloc_count": num(u)?,
        },
        "profiler": {
            "samples": num(u)?,
            "dropped": num(u)?,
            "overhead_bytes": num(u)?,
            "thread_slots": small(u)?,
            "live_samples": num(u)?,
            "pending_frees": num(u)?,
            "symbols_cached": num(u)?,
            "ring_bytes": num(u)?,
            "reserved_bytes": num(u)?,
            "sampled_arena_bytes": num(u)?,
            "sampled_arena_resident_bytes": num(u)?,
            "rings_freed": num(u)?,
            "backlog_waits": num(u)?,
            "stack_walker": string(u)?,
            "reports_built": num(u)?,
        },
    });
    Ok(from_json(report))
}
