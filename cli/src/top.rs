//! `heaptide top URL`: a live view of a running program's heap through its heaptide HTTP
//! server.
//!
//! Each poll reads the JSON endpoints (`/memory/snapshot`, `/memory/health`, `/memory/leaks`,
//! `/memory/trend`, `/memory/allocations`) and puts their fields together into one
//! [`Report`], so the view reads it as `heaptide show` reads a dump, and compares it with the
//! previous report by [`Report::diff`]. The server serves each report it builds for up to
//! 5 s (less once a snapshot is taken), so changes are those between the last two distinct
//! reports (their times are shown). On a terminal each frame replaces the previous one;
//! otherwise each poll prints a frame, and a blank line separates them.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heaptide::Report;
use heaptide::report::{Diff, REPORT_VERSION};
use serde_json::Value;

use crate::fail::{Failure, Result, fail};
use crate::http::{Error, Server};
use crate::terminal;
use crate::units::{Bytes, Count, Seconds, SignedBytes, SignedCount};

/// What `heaptide top` was asked.
#[derive(Debug)]
pub struct Options {
    pub url: String,
    pub interval: Duration,
    pub once: bool,
    pub token: Option<String>,
    pub rows: usize,
    pub timeout: Duration,
}

/// The endpoints a poll reads, the allocations last: the version, process and time of its
/// envelope stand for the poll's report.
const ENDPOINTS: [&str; 5] = [
    "/memory/snapshot",
    "/memory/health",
    "/memory/leaks",
    "/memory/trend",
    "/memory/allocations",
];

/// Lines of a frame besides the site rows, for fitting a terminal.
const FIXED_LINES: usize = 12;

/// Leak candidates shown.
const LEAK_ROWS: usize = 3;

/// Runs the view until interrupted (or for one frame with `--once`).
pub fn run(options: &Options) -> Result<()> {
    let server = Server::parse(&options.url).map_err(fail)?;
    let token = options.token.as_deref().filter(|t| !t.is_empty());
    if token.is_some_and(|t| t.chars().any(char::is_control)) {
        return Err(fail("the token holds a control character"));
    }
    let stdout = io::stdout();
    let redraw = !options.once && stdout.is_terminal();
    let mut view = View::default();
    let mut frames = 0u64;
    loop {
        let started = Instant::now();
        match poll(&server, token, options.timeout) {
            Ok(report) => view.update(report),
            // Nothing to show yet: most likely the wrong address or token.
            Err(e) if view.current.is_none() => return Err(fail(e)),
            Err(e) => view.error = Some(e),
        }
        let size = if redraw {
            terminal::size(&stdout)
        } else {
            None
        };
        let lines = view.render(&server, options, size.map(|(_, rows)| rows));
        let mut text = String::new();
        if redraw {
            // Home, each line then clear to its end, then clear below: no flicker.
            text.push_str(if frames == 0 {
                "\x1b[H\x1b[2J"
            } else {
                "\x1b[H"
            });
            let width = size.map_or(0, |(columns, _)| columns.saturating_sub(1));
            for line in &lines {
                text.push_str(&terminal::fit(line, width));
                text.push_str("\x1b[K\n");
            }
            text.push_str("\x1b[J");
        } else {
            if frames > 0 {
                text.push('\n');
            }
            for line in &lines {
                text.push_str(line);
                text.push('\n');
            }
        }
        let mut out = stdout.lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| {
                if e.kind() == io::ErrorKind::BrokenPipe {
                    Failure::ClosedOutput
                } else {
                    fail(format!("cannot write to standard output: {e}"))
                }
            })?;
        drop(out);
        frames += 1;
        if options.once {
            return Ok(());
        }
        std::thread::sleep(options.interval.saturating_sub(started.elapsed()));
    }
}

/// One poll: the endpoints' fields put together into a report.
fn poll(
    server: &Server,
    token: Option<&str>,
    timeout: Duration,
) -> std::result::Result<Report, String> {
    let mut merged = serde_json::to_value(Report::default()).map_err(|e| e.to_string())?;
    let Value::Object(fields) = &mut merged else {
        return Err("a report is not a JSON object".into());
    };
    for path in ENDPOINTS {
        let at = format!("{}{path}", server.url());
        let body = server.get(path, token, timeout).map_err(|e| match e {
            Error::Status(401, _) => {
                format!("{at}: {e} (give the server's token with --token or HEAPTIDE_HTTP_TOKEN)")
            }
            Error::Status(404, _) => {
                format!("{at}: {e} (not a heaptide server, or one older than this tool)")
            }
            e => format!("{at}: {e}"),
        })?;
        let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
            return Err(format!("{at}: not a JSON object: not a heaptide server"));
        };
        let current = u64::from(REPORT_VERSION);
        match body.get("version").and_then(Value::as_u64) {
            Some(v) if v == current => {}
            Some(v) => {
                let which = if v < current {
                    "an older heaptide"
                } else {
                    "a newer heaptide: use a newer heaptide command"
                };
                return Err(format!(
                    "{at}: report schema version {v}, not the version {current} this tool reads ({which})"
                ));
            }
            None => return Err(format!("{at}: no report version: not a heaptide server")),
        }
        fields.extend(body);
    }
    serde_json::from_value(merged).map_err(|e| {
        format!(
            "{}: the endpoints do not make a heaptide report: {e}",
            server.url()
        )
    })
}

/// What the view knows.
#[derive(Debug, Default)]
struct View {
    /// The latest report.
    current: Option<Report>,
    /// The report before it, of the same process (distinct from `current`).
    previous: Option<Report>,
    /// Why the latest poll failed, if it did (the view then shows the latest report it has).
    error: Option<String>,
}

impl View {
    /// Takes a poll's report.
    fn update(&mut self, report: Report) {
        self.error = None;
        let Some(current) = self.current.take() else {
            self.current = Some(report);
            return;
        };
        if current.pid != report.pid {
            // Another process on that address: nothing to compare with.
            self.previous = None;
        } else if current.timestamp != report.timestamp {
            self.previous = Some(current);
        }
        // The same report again (from the server's cache): the previous one stays.
        self.current = Some(report);
    }

    /// The frame's lines; `height` is the terminal's, if the frame must fit one.
    fn render(&self, server: &Server, options: &Options, height: Option<usize>) -> Vec<String> {
        let mut lines = Vec::new();
        let Some(r) = &self.current else {
            return lines;
        };
        let diff: Option<Diff> = self.previous.as_ref().map(|p| r.diff(p));
        let mode = if r.exact {
            "exact: every allocation recorded".to_string()
        } else if r.sample_interval == 0 {
            "profiling off".to_string()
        } else {
            format!(
                "estimated: one sample per {} on average",
                Bytes(r.sample_interval)
            )
        };
        lines.push(format!(
            "heaptide top  {}  pid {}  report of {}  polled every {}",
            server.url(),
            r.pid,
            clock(r.timestamp),
            Seconds(options.interval.as_secs_f64())
        ));
        let t = &r.totals;
        let change = |d: &Diff| {
            format!(
                " ({}, {} blocks)",
                SignedBytes(d.live_bytes.delta()),
                SignedCount(d.live_count.delta())
            )
        };
        lines.push(format!(
            "live heap  {} in {} blocks{}; {mode}",
            Bytes(t.live_bytes),
            Count(t.live_count),
            diff.as_ref().map(change).unwrap_or_default()
        ));
        let m = &r.memory;
        let rss_change = diff
            .as_ref()
            .map(|d| format!(" ({})", SignedBytes(d.rss_bytes.delta())))
            .unwrap_or_default();
        lines.push(format!(
            "memory     rss {}{rss_change}; jemalloc {} allocated, {} resident, {} retained",
            Bytes(m.rss_bytes),
            Bytes(m.jemalloc.allocated),
            Bytes(m.jemalloc.resident),
            Bytes(m.jemalloc.retained)
        ));
        let status = format!("{:?}", r.health.status).to_lowercase();
        if r.health.reasons.is_empty() {
            lines.push(format!("health     {status}"));
        } else {
            lines.push(format!(
                "health     {status}: {}",
                r.health.reasons.join("; ")
            ));
        }
        if let Some(heap) = &r.trend.heap {
            lines.push(format!(
                "trend      heap {}/h over {} ({} snapshots)",
                SignedBytes(heap.growth_bytes_per_hour.round() as i64),
                Seconds(heap.window_seconds),
                heap.points
            ));
        }
        if r.leaks.is_empty() {
            let needs = r.sites.iter().filter_map(|s| s.needs_snapshots).max();
            let interval = Seconds(r.snapshots.interval_ms as f64 / 1000.0);
            lines.push(match needs {
                Some(n) if n > 0 => format!(
                    "leaks      none found yet: a verdict needs {n} more snapshots (one every {interval})"
                ),
                _ => "leaks      none found".to_string(),
            });
        } else {
            let candidates = match r.leaks.len() {
                1 => "1 candidate".to_string(),
                n => format!("{} candidates, fastest growth first", Count(n as u64)),
            };
            lines.push(format!("leaks      {candidates}:"));
            for leak in r.leaks.iter().take(LEAK_ROWS) {
                lines.push(format!(
                    "  {:<8} {:>12}/h {:>10} live  confidence {:.2}  {}",
                    format!("{:?}", leak.severity).to_lowercase(),
                    SignedBytes(leak.growth_bytes_per_hour.round() as i64).to_string(),
                    Bytes(leak.live_bytes),
                    leak.confidence,
                    leak.blamed_frame()
                        .map_or_else(|| "<unknown>".into(), label)
                ));
            }
        }
        if let Some(e) = &self.error {
            lines.push(format!("last poll failed: {e}"));
        }

        lines.push(String::new());
        let rows = match height {
            Some(h) => options.rows.min(h.saturating_sub(FIXED_LINES).max(1)),
            None => options.rows,
        };
        let sites = r.top_by_live(rows);
        let with_live = r.sites.iter().filter(|s| s.live_bytes > 0).count();
        match (&self.previous, sites.is_empty()) {
            (_, true) => lines.push("No live sampled memory.".into()),
            (Some(p), false) => lines.push(format!(
                "Top sites by live bytes; change over the {} since the report of {}:",
                Seconds(r.timestamp.saturating_sub(p.timestamp) as f64 / 1000.0),
                clock(p.timestamp)
            )),
            (None, false) => {
                lines.push("Top sites by live bytes; change from the next report on:".into())
            }
        }
        if !sites.is_empty() {
            lines.push(format!(
                "  {:>10} {:>11} {:>10} {:>8}  site",
                "live", "change", "blocks", "change"
            ));
        }
        for site in &sites {
            // The site's key in a diff: its stack from the blamed frame outwards.
            let blamed = site.blamed_frame();
            let from = site
                .frames
                .iter()
                .position(|f| Some(f) == blamed)
                .unwrap_or(0);
            let key = &site.frames[from..];
            let (bytes, blocks) = match &diff {
                None => ("-".to_string(), "-".to_string()),
                Some(d) => match d.sites.iter().find(|c| c.frames.as_slice() == key) {
                    // Not in the diff: the same in both reports.
                    None => ("0 B".to_string(), "0".to_string()),
                    Some(c) => match (c.live_bytes.base, c.live_count.base) {
                        (Some(_), Some(_)) => (
                            SignedBytes(c.live_bytes.delta()).to_string(),
                            SignedCount(c.live_count.delta()).to_string(),
                        ),
                        // Listed now, not in the previous report: new, unless that list was
                        // cut at its top sites (then it may have been there, out of view).
                        _ if self
                            .previous
                            .as_ref()
                            .is_some_and(|p| p.sites_seen > p.sites.len() as u64) =>
                        {
                            ("?".to_string(), "?".to_string())
                        }
                        _ => ("new".to_string(), "new".to_string()),
                    },
                },
            };
            lines.push(format!(
                "  {:>10} {:>11} {:>10} {:>8}  {}",
                Bytes(site.live_bytes),
                bytes,
                Count(site.live_count),
                blocks,
                blamed.map_or_else(|| "<unknown>".into(), label)
            ));
        }
        if with_live > sites.len() {
            lines.push(format!(
                "  ... and {} more sites with live bytes",
                Count((with_live - sites.len()) as u64)
            ));
        }
        lines
    }
}

/// A frame as the view names it: the function, and its file (shortened) and line.
fn label(frame: &heaptide::report::Frame) -> String {
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!("{} ({}:{line})", frame.function, short_path(file)),
        (Some(file), None) => format!("{} ({})", frame.function, short_path(file)),
        _ => frame.function.clone(),
    }
}

/// A source path as a person reads it: the standard library's from `library/`, a registry
/// crate's from the crate's directory, one under the current directory relative to it.
fn short_path(path: &str) -> String {
    if let Some((_hash, inside)) = path.strip_prefix("/rustc/").and_then(|r| r.split_once('/')) {
        return inside.to_string();
    }
    if let Some((_index, inside)) = path
        .split_once("/.cargo/registry/src/")
        .and_then(|(_, rest)| rest.split_once('/'))
    {
        return inside.to_string();
    }
    if let Ok(dir) = std::env::current_dir()
        && let Some(inside) = dir
            .to_str()
            .and_then(|dir| path.strip_prefix(dir))
            .and_then(|rest| rest.strip_prefix('/'))
    {
        return inside.to_string();
    }
    path.to_string()
}

/// A time (ms since the Unix epoch) as `HH:MM:SS UTC`, and how long ago it was, if that is
/// less than an hour.
fn clock(ms: u64) -> String {
    let day_seconds = (ms / 1000) % 86_400;
    let at = format!(
        "{:02}:{:02}:{:02} UTC",
        day_seconds / 3600,
        day_seconds / 60 % 60,
        day_seconds % 60
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    match now.checked_sub(ms) {
        Some(ago) if ago < 3_600_000 => format!("{at} ({} ago)", Seconds(ago as f64 / 1000.0)),
        _ => at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            short_path("/rustc/59807616e1fa/library/alloc/src/vec/mod.rs"),
            "library/alloc/src/vec/mod.rs"
        );
        assert_eq!(
            short_path(
                "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde-1.0.1/src/de.rs"
            ),
            "serde-1.0.1/src/de.rs"
        );
        let here = std::env::current_dir().unwrap().join("src/x.rs");
        assert_eq!(short_path(here.to_str().unwrap()), "src/x.rs");
        assert_eq!(short_path("/elsewhere/x.rs"), "/elsewhere/x.rs");
    }

    #[test]
    fn times() {
        assert!(clock(0).starts_with("00:00:00 UTC"));
        assert!(clock((13 * 3600 + 5 * 60 + 8) * 1000 + 86_400_000).starts_with("13:05:08 UTC"));
    }

    #[test]
    fn reports_of_one_process_compare() {
        let report = |pid, timestamp| {
            let mut r = Report::default();
            r.pid = pid;
            r.timestamp = timestamp;
            r
        };
        let mut view = View::default();
        view.update(report(1, 10));
        assert!(view.previous.is_none());
        view.update(report(1, 10));
        assert!(
            view.previous.is_none(),
            "the same report twice is no change"
        );
        view.update(report(1, 20));
        assert_eq!(view.previous.as_ref().map(|p| p.timestamp), Some(10));
        view.update(report(1, 20));
        assert_eq!(view.previous.as_ref().map(|p| p.timestamp), Some(10));
        view.update(report(2, 30));
        assert!(view.previous.is_none(), "another process");
    }
}
