//! `heaptide`, the command-line tool of the heaptide heap profiler: prints a report or dump
//! (`show`), compares two (`diff`), converts one to another format (`convert`), and watches a
//! running program's heap through its HTTP server (`top`).
//!
//! Every failure is one line on stderr, `heaptide: <what>`, and exit code 1 (2 for a command
//! line clap refuses). Output cut short by a closed pipe (`heaptide show dump.json | head`)
//! ends the program quietly with 0.

// The tool's allocator. Linking the heaptide library costs something at load in any program,
// whatever allocator it uses: the library's load-time constructor (`RESERVE_AT_LOAD`,
// src/alloc.rs) reserves the sampled arena's address range (64 GiB of `PROT_NONE` address
// space, at most an eighth of a finite `RLIMIT_AS`; src/backend/sampled_arena.rs), and
// jemalloc's own constructor initialises jemalloc. The library has no build without its
// allocator, so the tool cannot leave that part out. A program that keeps the system
// allocator keeps the reservation for its whole life (a VmSize above 64 GiB; under
// `ulimit -v`, an eighth of the limit gone) and runs two allocators side by side. Installed as
// the global allocator with sampling off, heaptide gives the reservation back at the first
// allocation (a VmSize of 17 MiB for this tool's release build), jemalloc serves every
// allocation, and no drain thread, signal handler or exit dump is set up. As in any program
// built with heaptide, `HEAPTIDE_SAMPLE` in the environment overrides the setting here:
// `HEAPTIDE_SAMPLE=off` also skips the reservation at load, and a sampling value profiles the
// tool itself.
#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(0);

mod fail;
mod http;
mod load;
mod output;
mod progress;
mod terminal;
mod top;
mod units;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::fail::{Failure, Result};
use crate::progress::Progress;

/// Reads heaptide's heap reports: shows, compares and converts JSON dumps, and watches a
/// running program's heap over its HTTP endpoint.
#[derive(Debug, Parser)]
#[command(name = "heaptide", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints a JSON report or dump as text: totals, memory, leak candidates, the top sites
    /// by live and by allocated bytes, size buckets and advice.
    Show {
        /// A report written by `Report::write_json` or a dump (`heaptide-<pid>-<seq>.json`).
        file: PathBuf,
        /// Rows in each table (a report lists at most 100 sites by each ranking).
        #[arg(long, value_name = "N", default_value_t = 10)]
        top: usize,
    },
    /// Compares two JSON reports or dumps of one program: the sites that appeared, grew,
    /// shrank, were freed or churned since the base.
    Diff {
        /// The earlier report.
        base: PathBuf,
        /// The later report.
        new: PathBuf,
        /// Writes the comparison as JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Writes a JSON report or dump in another format.
    Convert {
        /// A report written by `Report::write_json` or a dump (`heaptide-<pid>-<seq>.json`).
        file: PathBuf,
        /// The format to write.
        #[arg(long, value_enum, value_name = "FORMAT")]
        to: Format,
        /// The file to write; `-` for standard output.
        #[arg(short, long = "output", value_name = "OUT")]
        output: PathBuf,
    },
    /// Watches a running program's heap through its heaptide HTTP server (feature `http`):
    /// live heap, RSS, health, leak candidates and the top sites by live bytes, with their
    /// change since the previous report.
    Top {
        /// The server: `http://127.0.0.1:6060`, `127.0.0.1:6060`, or a port on 127.0.0.1.
        url: String,
        /// Time between polls: `2s`, `500ms`, `1m`, or seconds (`0.5`); at least 100 ms.
        #[arg(long, value_name = "TIME", default_value = "2s", value_parser = parse_duration)]
        interval: Duration,
        /// Prints one frame and exits.
        #[arg(long)]
        once: bool,
        /// Bearer token the server asks for (its HEAPTIDE_HTTP_TOKEN); the environment
        /// variable keeps it out of the process list.
        #[arg(long, env = "HEAPTIDE_HTTP_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Sites shown (fewer if the terminal is not tall enough).
        #[arg(long, value_name = "N", default_value_t = 15)]
        rows: usize,
        /// How long one request may take before the poll fails.
        #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
        timeout: Duration,
    },
}

/// The formats `convert` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Gzipped pprof `profile.proto` (`go tool pprof`, Pyroscope, Parca, Grafana).
    Pprof,
    /// Folded stacks of live bytes (flamegraph.pl, inferno, speedscope).
    Folded,
    /// One self-contained HTML page.
    Html,
    /// The text report.
    Text,
    /// The JSON report.
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Pprof => "pprof",
            Format::Folded => "folded stacks",
            Format::Html => "HTML",
            Format::Text => "text",
            Format::Json => "JSON",
        }
    }
}

/// Parses `--interval` and `--timeout`: a number with `ms`, `s`, `m` or `h`, or bare seconds;
/// from 100 ms to 24 h.
fn parse_duration(value: &str) -> std::result::Result<Duration, String> {
    let forms = || format!("{value:?}: expected a time such as 2s, 500ms, 1m or 0.5");
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let scale = match unit.trim() {
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(forms()),
    };
    let seconds = number.parse::<f64>().map_err(|_| forms())? * scale;
    if !(0.1..=86_400.0).contains(&seconds) {
        return Err(format!("{value:?}: expected a time from 100ms to 24h"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Show { file, top } => show(file, top),
        Command::Diff { base, new, json } => diff(base, new, json),
        Command::Convert { file, to, output } => convert(file, to, output),
        Command::Top {
            url,
            interval,
            once,
            token,
            rows,
            timeout,
        } => top::run(&top::Options {
            url,
            interval,
            once,
            token,
            rows,
            timeout,
        }),
    };
    match outcome {
        Ok(()) | Err(Failure::ClosedOutput) => ExitCode::SUCCESS,
        Err(Failure::Message(message)) => {
            eprintln!("heaptide: {message}");
            ExitCode::FAILURE
        }
    }
}

/// `heaptide show FILE --top N`.
fn show(file: PathBuf, top: usize) -> Result<()> {
    let progress = Progress::on_terminal();
    let report = load::report(&file, &progress)?;
    progress.clear();
    output::to_stdout(|w| report.write_text_top(w, top))
}

/// `heaptide diff BASE NEW [--json]`.
fn diff(base: PathBuf, new: PathBuf, json: bool) -> Result<()> {
    let progress = Progress::on_terminal();
    let earlier = load::report(&base, &progress)?;
    let later = load::report(&new, &progress)?;
    progress.clear();
    let diff = later.diff(&earlier);
    if json {
        output::to_stdout(|w| diff.write_json(w))
    } else {
        output::to_stdout(|w| write!(w, "{diff}"))
    }
}

/// `heaptide convert FILE --to FORMAT -o OUT`.
fn convert(file: PathBuf, to: Format, out: PathBuf) -> Result<()> {
    let progress = Progress::on_terminal();
    let report = load::report(&file, &progress)?;
    let binary = to == Format::Pprof;
    output::to_path(&out, binary, &progress, to.name(), |w| match to {
        Format::Pprof => report.write_pprof(w),
        Format::Folded => report.write_folded(w),
        Format::Html => report.write_html(w),
        Format::Text => report.write_text(w),
        Format::Json => report.write_json(w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5 s"), Ok(Duration::from_millis(1500)));
        for bad in [
            "",
            "s",
            "0",
            "50ms",
            "25h",
            "fast",
            "1e3",
            "-1s",
            "2 seconds",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn command_line() {
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["heaptide", "convert", "d.json", "--to", "pprof", "-o", "-"])
                .unwrap();
        assert!(matches!(
            cli.command,
            Command::Convert {
                to: Format::Pprof,
                ..
            }
        ));
        assert!(
            Cli::try_parse_from(["heaptide", "convert", "d.json", "--to", "svg", "-o", "x"])
                .is_err()
        );
        assert!(Cli::try_parse_from(["heaptide", "top", "6060", "--interval", "0"]).is_err());
    }

    use clap::CommandFactory;
}
