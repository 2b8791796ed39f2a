//! What each path answers. The profile and the `/memory/*` answers come from one [`Report`]
//! (the same as [`crate::report()`]) that is built at most once every [`REPORT_MAX_AGE`] (or
//! snapshot interval, if shorter) and served from a cache meanwhile, however many requests arrive: a report symbolizes and
//! merges every call site, and a flood of requests must not take the host's CPU. While one
//! request builds the next report, the others get the previous one. The pprof encoding of the
//! cached report is made once, on the first request for it. `/metrics` never builds a report:
//! it reads the figures that need no work per call site ([`crate::report::summary`]), fresh at
//! each scrape. `/` and `POST /memory/purge` need neither.
//!
//! Answers are paced: after each one, the next waits 19 times as long as it took (building a
//! report for the cache aside), so the server's answers take at most 1/20 of a core however
//! fast requests arrive, and a client sending request after request is slowed to that pace.
//! Under a flood of profile requests the host kept its speed (`benches/http_flood.rs`).
//! `heaptide_http_cached_answers_total` and `heaptide_http_paced_seconds_total` count both
//! limits at work; once requests have waited [`NOTICE_AFTER`] in all, one line goes to stderr.
//!
//! The JSON bodies are objects with `version`, `pid` and `timestamp` (as in the full report)
//! and the report's own fields for the sections asked for, with the same names and structures
//! (see `docs/report-schema.md`):
//!
//! | path | fields |
//! |---|---|
//! | `/memory/snapshot` | `memory` |
//! | `/memory/allocations` | `sample_interval`, `exact`, `totals`, `size_buckets`, `rate`, `lifetime_ns`, `sites_seen`, `sites`, `profiler` |
//! | `/memory/leaks` | `leaks`, `recommendations` |
//! | `/memory/trend` | `duration_seconds`, `trend`, `snapshots` |
//! | `/memory/health` | `health`, `alerts` |
//!
//! `/memory/trend?duration=1h` judges only the snapshots of the last hour (any duration of
//! `HEAPTIDE_INTERVAL`'s forms: `90s`, `15m`, `1.5h`); `trend` is then computed over those
//! snapshots (by their wall-clock times) and `snapshots.points` lists them. Without `duration`
//! both are the full report's.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering};

use crate::analysis::trend::{Point, trend};
use crate::report::{
    Alert, AllocRates, DurationPercentiles, Health, Leak, MemoryStats, MemoryTrends, ProfilerStats,
    Recommendation, Report, Site, SizeBucket, SnapshotHistory, SnapshotPoint, Totals,
};

/// An answer, ready to be written.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    /// Headers besides `Content-Type`, `Content-Length`, `Connection` and the fixed ones.
    pub(crate) headers: Vec<(&'static str, &'static str)>,
    pub(crate) body: Vec<u8>,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

impl Response {
    /// A short plain-text answer.
    pub(crate) fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: TEXT,
            headers: Vec::new(),
            body: body.into().into_bytes(),
        }
    }

    /// `401 Unauthorized`, with the challenge.
    pub(crate) fn unauthorized() -> Response {
        let mut r = Response::text(
            401,
            "401 Unauthorized: send the token as `Authorization: Bearer <HEAPTIDE_HTTP_TOKEN>`\n",
        );
        r.headers
            .push(("WWW-Authenticate", "Bearer realm=\"heaptide\""));
        r
    }

    fn method_not_allowed(allow: &'static str) -> Response {
        let mut r = Response::text(
            405,
            format!("405 Method Not Allowed: this path takes {allow}\n"),
        );
        r.headers.push(("Allow", allow));
        r
    }

    fn json(value: &impl Serialize) -> Response {
        match serde_json::to_vec_pretty(value) {
            Ok(mut body) => {
                body.push(b'\n');
                Response {
                    status: 200,
                    content_type: JSON,
                    headers: Vec::new(),
                    body,
                }
            }
            Err(e) => Response::text(500, format!("500 Internal Server Error: {e}\n")),
        }
    }
}

/// The list of endpoints, for `/` and for 404 answers.
const INDEX: &str = "heaptide endpoints:\n\
    GET  /metrics               Prometheus metrics\n\
    GET  /debug/pprof/heap      gzipped pprof heap profile (go tool pprof)\n\
    GET  /memory/snapshot       memory snapshot (JSON)\n\
    GET  /memory/allocations    totals, size buckets, rates, top call sites (JSON)\n\
    GET  /memory/leaks          leak candidates and recommendations (JSON)\n\
    GET  /memory/trend          trends and snapshots; ?duration=1h for the last hour (JSON)\n\
    GET  /memory/health         health and alerts (JSON)\n\
    POST /memory/purge          purge jemalloc's dirty pages; resident bytes before and after (JSON)\n";

/// The share of one core the server's answers may take, as `1 / PACE_SHARE`: after each answer
/// the next one waits `PACE_SHARE - 1` times as long as this one took (reports built for the
/// cache excepted: [`REPORT_MAX_AGE`] bounds those). A client that sends request after request
/// is slowed to that pace; so is a crowd of them, and the host keeps its CPU.
const PACE_SHARE: u32 = 20;
/// Longest a request waits for its turn.
const PACE_MAX_WAIT: Duration = Duration::from_secs(1);
/// When the next answer may start, ns since [`pace_epoch`].
static NEXT_ANSWER_NS: AtomicU64 = AtomicU64::new(0);
/// Time requests waited for their turn, ns.
pub(crate) static PACED_NS: AtomicU64 = AtomicU64::new(0);

fn pace_epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

std::thread_local! {
    /// Time this thread spent building reports for the cache during the current answer.
    static BUILDING_NS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Answers a request for `target` (path and query) with `method`, at the server's pace (see
/// [`PACE_SHARE`]).
pub(crate) fn route(method: &str, target: &str) -> Response {
    let epoch = pace_epoch();
    let now = epoch.elapsed().as_nanos() as u64;
    let turn = NEXT_ANSWER_NS.load(Ordering::Relaxed);
    if turn > now {
        let wait = Duration::from_nanos(turn - now).min(PACE_MAX_WAIT);
        let paced = PACED_NS.fetch_add(wait.as_nanos() as u64, Ordering::Relaxed);
        if paced + wait.as_nanos() as u64 >= NOTICE_AFTER.as_nanos() as u64 {
            notice();
        }
        std::thread::sleep(wait);
    }
    BUILDING_NS.with(|b| b.set(0));
    let started = Instant::now();
    let response = answer(method, target);
    let took = (started.elapsed().as_nanos() as u64).saturating_sub(BUILDING_NS.with(|b| b.get()));
    let end = epoch.elapsed().as_nanos() as u64;
    let _ = NEXT_ANSWER_NS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
        Some(next.max(end) + took * u64::from(PACE_SHARE - 1))
    });
    response
}

/// Requests have waited this long in all when the server says so on stderr: a flood, not the
/// odd request that comes right after another.
pub(crate) const NOTICE_AFTER: Duration = Duration::from_secs(5);

/// The one stderr line that says the server's limits are at work.
fn notice() {
    static SAID: AtomicBool = AtomicBool::new(false);
    if !SAID.swap(true, Ordering::Relaxed) {
        crate::diag::stderr_line(format_args!(
            "heaptide: HTTP requests arrive faster than the server's pace: reports are built at most every {} s and answers take at most 1/{} of a core (heaptide_http_cached_answers_total, heaptide_http_paced_seconds_total)",
            REPORT_MAX_AGE.as_secs(),
            PACE_SHARE
        ));
    }
}

/// Answers a request, at once.
fn answer(method: &str, target: &str) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let get = method == "GET" || method == "HEAD";
    match path {
        "/memory/purge" if method == "POST" => purge(),
        "/memory/purge" => Response::method_not_allowed("POST"),
        "/"
        | "/metrics"
        | "/debug/pprof/heap"
        | "/memory/snapshot"
        | "/memory/allocations"
        | "/memory/leaks"
        | "/memory/trend"
        | "/memory/health"
            if !get =>
        {
            Response::method_not_allowed("GET, HEAD")
        }
        "/" => Response::text(200, INDEX),
        "/metrics" => {
            let started = Instant::now();
            let report = crate::report::summary();
            let seconds = started.elapsed().as_secs_f64();
            Response {
                status: 200,
                content_type: super::metrics::CONTENT_TYPE,
                headers: Vec::new(),
                body: super::metrics::render(&report, seconds).into_bytes(),
            }
        }
        "/debug/pprof/heap" => pprof(&cached()),
        "/memory/snapshot" => {
            let r = &cached().report;
            Response::json(&Envelope::of(r, SnapshotBody { memory: &r.memory }))
        }
        "/memory/allocations" => {
            let r = &cached().report;
            Response::json(&Envelope::of(
                r,
                AllocationsBody {
                    sample_interval: r.sample_interval,
                    exact: r.exact,
                    totals: &r.totals,
                    size_buckets: &r.size_buckets,
                    rate: &r.rate,
                    lifetime_ns: &r.lifetime_ns,
                    sites_seen: r.sites_seen,
                    sites: &r.sites,
                    profiler: &r.profiler,
                },
            ))
        }
        "/memory/leaks" => {
            let r = &cached().report;
            Response::json(&Envelope::of(
                r,
                LeaksBody {
                    leaks: &r.leaks,
                    recommendations: &r.recommendations,
                },
            ))
        }
        "/memory/trend" => trend_of(query),
        "/memory/health" => {
            let r = &cached().report;
            Response::json(&Envelope::of(
                r,
                HealthBody {
                    health: &r.health,
                    alerts: &r.alerts,
                },
            ))
        }
        _ => Response::text(404, format!("404 Not Found: {path}\n\n{INDEX}")),
    }
}

/// How long a report is served from the cache before the next request builds a new one.
pub(crate) const REPORT_MAX_AGE: Duration = Duration::from_secs(5);

/// A report built for requests, and its pprof encoding once a request asked for it.
#[derive(Debug)]
pub(crate) struct Cached {
    built: Instant,
    /// The snapshot history's latest snapshot when it was built (monotonic ns).
    history_ns: u64,
    pub(crate) report: Report,
    pprof: OnceLock<Result<Vec<u8>, String>>,
}

/// The latest report built for requests.
static CACHE: Mutex<Option<Arc<Cached>>> = Mutex::new(None);
/// The report cache's lock, held across `fork()` (see `runtime::install_fork_handlers`).
pub(crate) type ForkLock = crate::sync::MutexGuard<'static, Option<Arc<Cached>>>;

/// Takes the report cache's lock for `fork()`.
pub(crate) fn fork_lock() -> ForkLock {
    CACHE.lock()
}

/// Whether a request is building the next report.
static BUILDING: AtomicBool = AtomicBool::new(false);
/// Requests answered from a cached report (the rate limit at work).
pub(crate) static CACHED_ANSWERS: AtomicU64 = AtomicU64::new(0);

/// Counts an answer from the cache.
fn served_from_cache(c: Arc<Cached>) -> Arc<Cached> {
    CACHED_ANSWERS.fetch_add(1, Ordering::Relaxed);
    c
}

/// When the latest snapshot of the history was taken (a report's trends and leaks change with
/// each; they come every `HEAPTIDE_INTERVAL`, 10 s by default, or on [`crate::snapshot_now`]).
fn last_snapshot_ns() -> u64 {
    crate::analysis::history::lock().last_ns
}

/// The cached report if it is younger than [`REPORT_MAX_AGE`] and no snapshot was taken since;
/// otherwise a new one, built by
/// this request unless another is building one already, in which case the previous report
/// is served. No lock is held while a report is built (the cache's lock guards a pointer swap).
fn cached() -> Arc<Cached> {
    let latest = || CACHE.lock().clone();
    let previous = latest();
    let history_ns = last_snapshot_ns();
    if let Some(c) = &previous
        && c.built.elapsed() < REPORT_MAX_AGE
        && c.history_ns == history_ns
    {
        return served_from_cache(c.clone());
    }
    let builder = BUILDING
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_ok();
    if !builder && let Some(c) = previous {
        return served_from_cache(c);
    }
    let started = Instant::now();
    let fresh = Arc::new(Cached {
        built: Instant::now(),
        history_ns,
        report: crate::report::take(),
        pprof: OnceLock::new(),
    });
    let took = started.elapsed().as_nanos() as u64;
    BUILDING_NS.with(|b| b.set(b.get() + took));
    let old = CACHE.lock().replace(fresh.clone());
    if builder {
        BUILDING.store(false, Ordering::Release);
    }
    drop(old);
    fresh
}

fn pprof(cached: &Cached) -> Response {
    let encoded = cached.pprof.get_or_init(|| {
        let mut body = Vec::new();
        cached
            .report
            .write_pprof(&mut body)
            .map(|()| body)
            .map_err(|e| e.to_string())
    });
    match encoded {
        Ok(body) => Response {
            status: 200,
            content_type: "application/octet-stream",
            headers: vec![("Content-Disposition", "attachment; filename=\"heap.pb.gz\"")],
            body: body.clone(),
        },
        Err(e) => Response::text(500, format!("500 Internal Server Error: {e}\n")),
    }
}

fn purge() -> Response {
    match super::purge::purge_all() {
        Some(purged) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Response::json(&Envelope {
                version: crate::report::REPORT_VERSION,
                pid: std::process::id(),
                timestamp: now,
                body: purged,
            })
        }
        None => Response::text(
            500,
            "500 Internal Server Error: jemalloc refused arena.4096.purge\n",
        ),
    }
}

fn trend_of(query: &str) -> Response {
    let duration = match param(query, "duration") {
        None => None,
        Some(v) => match crate::config::parse_duration(v) {
            Ok(d) => Some(d),
            Err(_) => {
                return Response::text(
                    400,
                    format!(
                        "400 Bad Request: duration={v:?}: expected {}\n",
                        crate::config::DURATION_FORMS
                    ),
                );
            }
        },
    };
    let cached = cached();
    let r = &cached.report;
    let (trend, snapshots) = match duration {
        None => (r.trend, r.snapshots.clone()),
        Some(d) => window(r, d),
    };
    Response::json(&Envelope::of(
        r,
        TrendBody {
            duration_seconds: duration.map(|d| d.as_secs_f64()),
            trend,
            snapshots,
        },
    ))
}

/// The trends and the snapshots of the last `d` before the report was taken.
fn window(r: &Report, d: Duration) -> (MemoryTrends, SnapshotHistory) {
    let from = r
        .timestamp
        .saturating_sub(d.as_millis().min(u128::from(u64::MAX)) as u64);
    let points: Vec<SnapshotPoint> = r
        .snapshots
        .points
        .iter()
        .filter(|p| p.timestamp_ms >= from)
        .copied()
        .collect();
    let t0 = points.first().map_or(0, |p| p.timestamp_ms);
    let series = |value: fn(&SnapshotPoint) -> u64| -> Vec<Point> {
        points
            .iter()
            .map(|p| Point {
                t: p.timestamp_ms.saturating_sub(t0) as f64 / 1000.0,
                v: value(p) as f64,
            })
            .collect()
    };
    let limit = crate::analysis::settings::get().limit.map(|l| l as f64);
    let trends = MemoryTrends {
        heap: trend(&series(|p| p.heap_allocated_bytes), limit),
        rss: trend(&series(|p| p.rss_bytes), limit),
    };
    let snapshots = SnapshotHistory {
        interval_ms: r.snapshots.interval_ms,
        max: r.snapshots.max,
        points,
    };
    (trends, snapshots)
}

/// The value of `name` in a query string (`a=1&b=2`), undecoded; the first one if repeated.
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `version`, `pid` and `timestamp`, then the body's fields.
#[derive(Serialize)]
struct Envelope<T: Serialize> {
    version: u32,
    pid: u32,
    timestamp: u64,
    #[serde(flatten)]
    body: T,
}

impl<T: Serialize> Envelope<T> {
    fn of(r: &Report, body: T) -> Self {
        Envelope {
            version: r.version,
            pid: r.pid,
            timestamp: r.timestamp,
            body,
        }
    }
}

#[derive(Serialize)]
struct SnapshotBody<'a> {
    memory: &'a MemoryStats,
}

#[derive(Serialize)]
struct AllocationsBody<'a> {
    sample_interval: u64,
    exact: bool,
    totals: &'a Totals,
    size_buckets: &'a [SizeBucket],
    rate: &'a AllocRates,
    lifetime_ns: &'a Option<DurationPercentiles>,
    sites_seen: u64,
    sites: &'a [Site],
    profiler: &'a ProfilerStats,
}

#[derive(Serialize)]
struct LeaksBody<'a> {
    leaks: &'a [Leak],
    recommendations: &'a [Recommendation],
}

#[derive(Serialize)]
struct TrendBody {
    duration_seconds: Option<f64>,
    trend: MemoryTrends,
    snapshots: SnapshotHistory,
}

#[derive(Serialize)]
struct HealthBody<'a> {
    health: &'a Health,
    alerts: &'a [Alert],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters() {
        assert_eq!(param("duration=1h", "duration"), Some("1h"));
        assert_eq!(
            param("a=1&duration=15m&duration=2h", "duration"),
            Some("15m")
        );
        assert_eq!(param("duration", "duration"), Some(""));
        assert_eq!(param("", "duration"), None);
        assert_eq!(param("durations=1h", "duration"), None);
    }

    #[test]
    fn methods_and_unknown_paths() {
        assert_eq!(route("GET", "/nope").status, 404);
        assert_eq!(route("GET", "/metrics/").status, 404);
        let r = route("GET", "/memory/purge");
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, [("Allow", "POST")]);
        assert_eq!(route("DELETE", "/memory/purge").status, 405);
        let r = route("POST", "/metrics");
        assert_eq!(r.status, 405);
        assert_eq!(r.headers, [("Allow", "GET, HEAD")]);
        assert_eq!(route("GET", "/").status, 200);
        assert_eq!(route("GET", "/memory/trend?duration=soon").status, 400);
    }

    #[test]
    fn trend_window() {
        let point = |timestamp_ms, v| SnapshotPoint {
            timestamp_ms,
            rss_bytes: v,
            heap_allocated_bytes: v,
            heap_resident_bytes: v,
            live_bytes: v,
        };
        // A real (empty: unit tests do not run on heaptide) report, with a known history.
        let mut report = crate::report::take();
        report.timestamp = 100_000;
        report.snapshots = SnapshotHistory {
            interval_ms: 10_000,
            max: 500,
            // Flat for the first 50 s, then +1000 bytes per 10 s.
            points: (0..=10)
                .map(|i| point(i * 10_000, if i <= 5 { 0 } else { (i - 5) * 1000 }))
                .collect(),
        };
        let (trends, snapshots) = window(&report, Duration::from_secs(40));
        assert_eq!(snapshots.points.len(), 5);
        let heap = trends.heap.unwrap();
        assert_eq!(heap.points, 5);
        assert!(
            (heap.growth_bytes_per_hour - 360_000.0).abs() < 1e-6,
            "{heap:?}"
        );
        assert_eq!(heap.window_seconds, 40.0);
        let (trends, snapshots) = window(&report, Duration::from_secs(1));
        assert_eq!(snapshots.points.len(), 1);
        assert!(trends.heap.is_none() && trends.rss.is_none());
    }
}
