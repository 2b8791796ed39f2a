//! Dumps: the report written to files, on a signal, at exit, on demand ([`crate::dump()`]), or
//! automatically on a new peak, on critical health or near the cgroup's memory limit
//! ([`auto`]).
//!
//! A dump takes one report ([`crate::report()`], which flushes every ring first) and writes each
//! configured format (`HEAPTIDE_FORMATS`, default `json,pprof,text`) as
//! `heaptide-<pid>-<seq>.<ext>` into the dump directory (`HEAPTIDE_DIR`, default the system
//! temp dir), with `ext` one of `json`, `pb.gz`, `txt`, `folded`, `html` (a self-contained
//! page, [`Report::write_html`](crate::Report::write_html)); an automatic dump adds its reason,
//! `heaptide-<pid>-<seq>-<reason>.<ext>` (`peak`, `critical`, `near-limit`).
//!
//! - **Sequence numbers** come from one process-wide counter starting at 1; each dump attempt
//!   takes the next one (all its formats share it), so a failed attempt leaves a gap. A forked
//!   child continues its parent's count, under its own pid.
//! - **All or nothing**: every format is rendered in memory first (a writer that fails means no
//!   file at all), then each file is written atomically ([`mod@file`]); if one cannot be written,
//!   the files of the same dump already in place are removed again. A dump that succeeded left
//!   complete files only; one that failed left nothing (a file of the same name from before,
//!   e.g. of an earlier process with the same pid, may have been replaced).
//! - **Where it runs**: the work happens on the calling thread, inside a profiler scope (its
//!   allocations are profiler overhead, not the user's): the drain thread for signals, the
//!   exiting thread for `HEAPTIDE_DUMP_AT_EXIT`, the caller for [`crate::dump()`].
//! - **Messages**: signal, exit and automatic dumps print `heaptide: wrote <path>` on stderr for
//!   each file, or one line `heaptide: cannot write dump to <dir>: <error>`, and the program
//!   carries on.
//!   [`crate::dump()`] prints nothing; it returns the paths or the error.
//!
//! Installation ([`install`]) happens once, at the end of the allocator's start-up and only if
//! profiling is on: the signal handler (unless `HEAPTIDE_SIGNAL=none`), the drain thread (it is
//! what services the signal, so it is started then rather than at the first sample), and, with
//! `HEAPTIDE_DUMP_AT_EXIT=1`, an `atexit` handler. The exit dump runs at normal process exit
//! (return from `main`, `std::process::exit`), in a forked child that exits normally too
//! (under the child's pid), but not on `_exit`, `abort` or a fatal signal. A forked child keeps
//! the signal handler; its signal dumps are written once it has a drain thread of its own
//! (started by its first sample).
//!
//! Signal dumps are rate-limited: at most one per [`SIGNAL_DUMP_GAP`] (1 s); signals in between
//! coalesce into the next dump, written when the gap ends.
//!
//! The signal is noticed by the drain thread right after it is woken, so a dump takes the
//! time of a report (milliseconds once symbols are cached; the first report of a process loads
//! the binary's debug info) plus the writing.

mod auto;
mod file;
mod settings;
mod signal;

// The value parsers, for the fuzz targets (`crate::__fuzz`).
#[cfg(fuzzing)]
pub(crate) use settings::{parse_bool, parse_formats, parse_signal};

use crate::sync::{AtomicU64, Ordering};
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use crate::diag::stderr_line;
use crate::sample::scope::ProfilerScope;
use settings::{Format, Settings};

/// The next dump's sequence number.
static SEQ: AtomicU64 = AtomicU64::new(1);

/// Installs the dump triggers (see the module docs). Called once, by the thread that
/// initialised the allocator, after sampling was switched on.
pub(crate) fn install() {
    let _scope = ProfilerScope::enter();
    let settings = settings::get();
    if let Some(signal) = settings.signal {
        if signal::install(signal) {
            crate::drain::ensure_started();
        }
    }
    if settings.auto() {
        // The drain thread decides the automatic dumps.
        crate::drain::ensure_started();
    }
    if settings.at_exit {
        // SAFETY: `at_exit` is an `extern "C" fn()` that lives as long as the process and never
        // unwinds (it catches panics).
        if unsafe { libc::atexit(at_exit) } != 0 {
            stderr_line(format_args!(
                "heaptide: cannot register the dump at exit (atexit failed)"
            ));
        }
    }
}

/// Signal dumps are at least this far apart: a sustained signal storm writes one dump per
/// second at most. A signal within the gap is not lost: its dump is written when the gap ends
/// (the drain thread looks again after each pass, at least every 100 ms).
pub(crate) const SIGNAL_DUMP_GAP: std::time::Duration = std::time::Duration::from_secs(1);

/// When the last signal dump began (monotonic ns; 0: never).
static LAST_SIGNAL_DUMP_NS: AtomicU64 = AtomicU64::new(0);

/// Called by the drain thread after each pass: writes a dump if the signal came since the last
/// one, and [`SIGNAL_DUMP_GAP`] has passed since that began. Signals that arrive while it
/// writes, or within the gap, ask for one more dump, not one each.
pub(crate) fn service_signal() {
    if !signal::pending() {
        return;
    }
    let now = crate::state::now_ns();
    let last = LAST_SIGNAL_DUMP_NS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < SIGNAL_DUMP_GAP.as_nanos() as u64 {
        return;
    }
    if signal::take_request() {
        LAST_SIGNAL_DUMP_NS.store(now, Ordering::Relaxed);
        dump_and_log(None);
    }
}

/// Called by the drain thread after each pass: writes the automatic dumps that are due
/// ([`auto`]).
pub(crate) fn service_auto() {
    let _scope = ProfilerScope::enter();
    auto::service(settings::get());
}

/// The `HEAPTIDE_DUMP_AT_EXIT` handler.
extern "C" fn at_exit() {
    dump_and_log(None);
}

/// A signal, exit or automatic dump (`reason`, for the file names): writes it and reports on
/// stderr. Never panics.
fn dump_and_log(reason: Option<auto::Reason>) {
    let _scope = ProfilerScope::enter();
    let settings = settings::get();
    match catch_unwind(AssertUnwindSafe(|| write(settings, reason))) {
        Ok(Ok(paths)) => {
            for path in &paths {
                stderr_line(format_args!("heaptide: wrote {}", path.display()));
            }
        }
        Ok(Err(e)) => stderr_line(format_args!("heaptide: {}", failure(settings, &e))),
        Err(_) => stderr_line(format_args!(
            "heaptide: {}",
            failure(settings, &internal_error())
        )),
    }
}

/// [`crate::dump()`]: writes a dump now and returns the paths of its files, in the order json,
/// pprof, text, folded, html (those configured). The returned value (paths or error) is allocated
/// outside the profiler scope: it is the caller's memory.
pub(crate) fn dump() -> io::Result<Vec<PathBuf>> {
    let result = {
        let _scope = ProfilerScope::enter();
        let settings = settings::get();
        catch_unwind(AssertUnwindSafe(|| write(settings, None)))
            .unwrap_or_else(|_| Err(internal_error()))
            .map_err(|e| (failure(settings, &e), e))
    };
    let handed = match &result {
        Ok(paths) => Ok(paths.clone()),
        Err((message, e)) => Err(io::Error::new(e.kind(), message.clone())),
    };
    crate::sample::scope::drop_in_scope(result);
    handed
}

/// `cannot write dump to <dir>: <error>`.
fn failure(settings: &Settings, e: &io::Error) -> String {
    format!("cannot write dump to {}: {e}", settings.dir.display())
}

fn internal_error() -> io::Error {
    io::Error::other("internal error (a panic in heaptide; please report it)")
}

/// Writes one dump with `settings` (an automatic one names its `reason`); returns the paths
/// written.
fn write(settings: &Settings, reason: Option<auto::Reason>) -> io::Result<Vec<PathBuf>> {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    // Open the directory first: if it is unusable, no report is built for nothing.
    let dir = file::Dir::open(&settings.dir)?;
    let report = crate::report();
    let mut files = Vec::new();
    for format in settings.formats.iter() {
        let mut bytes = Vec::new();
        render(&report, format, &mut bytes).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("the {} writer failed: {e}", format.name()),
            )
        })?;
        files.push((file_name(pid, seq, reason, format), bytes));
    }
    drop(report);
    for (i, (name, bytes)) in files.iter().enumerate() {
        if let Err(e) = dir.write_atomic(name, bytes) {
            for (done, _) in &files[..i] {
                dir.remove(done);
            }
            return Err(e);
        }
    }
    dir.sync();
    Ok(files
        .iter()
        .map(|(name, _)| settings.dir.join(name))
        .collect())
}

/// `heaptide-<pid>-<seq>.<ext>`, or `heaptide-<pid>-<seq>-<reason>.<ext>` for an automatic
/// dump.
fn file_name(pid: u32, seq: u64, reason: Option<auto::Reason>, format: Format) -> String {
    match reason {
        None => format!("heaptide-{pid}-{seq}.{}", format.extension()),
        Some(r) => format!("heaptide-{pid}-{seq}-{}.{}", r.tag(), format.extension()),
    }
}

fn render(report: &crate::Report, format: Format, out: &mut Vec<u8>) -> io::Result<()> {
    match format {
        Format::Json => report.write_json(out),
        Format::Pprof => report.write_pprof(out),
        Format::Text => report.write_text(out),
        Format::Folded => report.write_folded(out),
        Format::Html => report.write_html(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(file_name(42, 1, None, Format::Json), "heaptide-42-1.json");
        assert_eq!(file_name(42, 7, None, Format::Pprof), "heaptide-42-7.pb.gz");
        assert_eq!(file_name(1, 2, None, Format::Text), "heaptide-1-2.txt");
        assert_eq!(file_name(1, 2, None, Format::Folded), "heaptide-1-2.folded");
        assert_eq!(file_name(1, 2, None, Format::Html), "heaptide-1-2.html");
        let auto = |r| file_name(42, 3, Some(r), Format::Json);
        assert_eq!(auto(auto::Reason::Peak), "heaptide-42-3-peak.json");
        assert_eq!(auto(auto::Reason::Critical), "heaptide-42-3-critical.json");
        assert_eq!(
            auto(auto::Reason::NearLimit),
            "heaptide-42-3-near-limit.json"
        );
    }
}
