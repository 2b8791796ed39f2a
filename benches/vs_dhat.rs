//! Tracked-run speed against dhat-rs: runs `track_heaptide` (the closure of `tracked_work.rs`
//! inside `heaptide::testing::track`) and `track_dhat` (the same closure inside dhat's testing
//! profiler) interleaved, and prints Markdown tables of time per tracked run and the ratio.
//!
//! ```text
//! cargo bench --bench vs_dhat                  # finds the track_* binaries next to itself
//! vs_dhat --heaptide P --dhat P                # or be told where they are
//!         [--rounds N] [--runs N] [--warmup N]
//! ```
//!
//! With no argument at all (`cargo test --benches`) it does a one-round smoke pass of two runs
//! per child, which checks the pipeline and measures nothing.
//!
//! Each round runs three child processes, the order rotating from round to round: heaptide,
//! dhat with a profiler built and dropped around every run (`per-run`: what a test using dhat
//! pays), and dhat with one profiler for the whole process, timing only the closure and the
//! leak check (`one-profiler`: dhat's construction left out). Each child does one cold tracked
//! run (reported as the first run), `--warmup` untimed ones, then `--runs` timed tracked runs,
//! each followed by a timed untracked run of the same closure (the baseline). Times are medians;
//! the ratio is the median over rounds of (dhat's median / heaptide's median of the same round),
//! and its spread the 25th..75th percentile of those per-round ratios.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "support.rs"]
mod support;

use support::{median, quantile};

struct Options {
    heaptide: Option<PathBuf>,
    dhat: Option<PathBuf>,
    rounds: usize,
    runs: u32,
    warmup: u32,
}

fn parse_args() -> Options {
    let mut o = Options {
        heaptide: None,
        dhat: None,
        rounds: 9,
        runs: 100,
        warmup: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || -> &String {
            args.get(i + 1)
                .unwrap_or_else(|| fail(&format!("{} needs a value", args[i])))
        };
        let mut took = true;
        match args[i].as_str() {
            "--heaptide" => o.heaptide = Some(value().into()),
            "--dhat" => o.dhat = Some(value().into()),
            "--rounds" => {
                o.rounds = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--rounds: integer"))
            }
            "--runs" => o.runs = value().parse().unwrap_or_else(|_| fail("--runs: integer")),
            "--warmup" => {
                o.warmup = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--warmup: integer"))
            }
            // `cargo bench` passes `--bench`.
            _ => took = false,
        }
        i += if took { 2 } else { 1 };
    }
    if args.is_empty() {
        eprintln!(
            "vs_dhat: no arguments: smoke pass only (measure with `cargo bench --bench vs_dhat`)"
        );
        o.rounds = 1;
        o.runs = 2;
        o.warmup = 1;
    }
    o.rounds = o.rounds.max(1);
    o.runs = o.runs.max(1);
    o
}

fn fail(msg: &str) -> ! {
    eprintln!("vs_dhat: {msg}");
    std::process::exit(2)
}

/// The three children of a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Heaptide,
    DhatPerRun,
    DhatOneProfiler,
}

impl Variant {
    const ALL: [Variant; 3] = [
        Variant::Heaptide,
        Variant::DhatPerRun,
        Variant::DhatOneProfiler,
    ];

    fn label(self) -> &'static str {
        match self {
            Variant::Heaptide => "heaptide `testing::track`",
            Variant::DhatPerRun => "dhat-rs testing, profiler per run",
            Variant::DhatOneProfiler => "dhat-rs testing, one profiler",
        }
    }

    fn timed(self) -> &'static str {
        match self {
            Variant::Heaptide => "`track(closure)`: scope, closure, drain flush, `Tracking` built",
            Variant::DhatPerRun => {
                "`build()`, `HeapStats` before, closure, `HeapStats` after, drop"
            }
            Variant::DhatOneProfiler => {
                "`HeapStats` before, closure, `HeapStats` after (profiler built once)"
            }
        }
    }
}

/// What one child process measured.
#[derive(Default)]
struct Child {
    first_total: f64,
    first_closure: f64,
    total: Vec<f64>,
    closure: Vec<f64>,
    untracked: Vec<f64>,
    cpu: Vec<f64>,
    allocs: (u64, u64),
    body_bytes: u64,
}

fn run_child(bin: &Path, v: Variant, o: &Options) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(["--runs", &o.runs.to_string()])
        .args(["--warmup", &o.warmup.to_string()]);
    match v {
        Variant::Heaptide => {}
        Variant::DhatPerRun => {
            cmd.args(["--variant", "per-run"]);
        }
        Variant::DhatOneProfiler => {
            cmd.args(["--variant", "one-profiler"]);
        }
    }
    // heaptide's defaults are what is compared; an operator's environment must not change them.
    for var in ["HEAPTIDE_SAMPLE", "HEAPTIDE_DEPTH", "HEAPTIDE_SEED"] {
        cmd.env_remove(var);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| fail(&format!("{}: {e}", bin.display())));
    if !out.status.success() {
        fail(&format!(
            "{} ({}) failed ({}):\n{}",
            bin.display(),
            v.label(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("[{}] {}", v.label(), stderr.trim());
    }
    let mut c = Child::default();
    let mut got_allocs = false;
    let num = |s: &str| -> f64 {
        s.parse()
            .unwrap_or_else(|_| fail(&format!("{}: bad number {s:?}", bin.display())))
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["first_run", total, closure] => {
                c.first_total = num(total);
                c.first_closure = num(closure);
            }
            ["run", total, closure, untracked, cpu] => {
                c.total.push(num(total));
                c.closure.push(num(closure));
                if num(untracked) > 0.0 {
                    c.untracked.push(num(untracked));
                }
                c.cpu.push(num(cpu));
            }
            ["body_bytes", n] => c.body_bytes = num(n) as u64,
            ["allocs_per_run", lo, hi] => {
                c.allocs = (num(lo) as u64, num(hi) as u64);
                got_allocs = true;
            }
            _ => {}
        }
    }
    if c.total.len() != o.runs as usize || !got_allocs {
        fail(&format!(
            "{} ({}): expected {} run lines and an allocs_per_run line",
            bin.display(),
            v.label(),
            o.runs
        ));
    }
    c
}

fn fmt_time(ns: f64) -> String {
    if ns.is_nan() {
        "-".to_owned()
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// Everything measured for one variant, over all rounds.
#[derive(Default)]
struct Acc {
    total: Vec<f64>,
    closure: Vec<f64>,
    untracked: Vec<f64>,
    cpu: Vec<f64>,
    /// Per round: the median tracked run, and the first (cold) run.
    round_total: Vec<f64>,
    round_cpu: Vec<f64>,
    first_total: Vec<f64>,
    first_closure: Vec<f64>,
    allocs: Option<(u64, u64)>,
    body_bytes: u64,
}

impl Acc {
    fn add(&mut self, c: Child) {
        self.body_bytes = c.body_bytes;
        self.round_total.push(median(&c.total));
        self.round_cpu.push(median(&c.cpu));
        self.first_total.push(c.first_total);
        self.first_closure.push(c.first_closure);
        self.total.extend(c.total);
        self.closure.extend(c.closure);
        self.untracked.extend(c.untracked);
        self.cpu.extend(c.cpu);
        self.allocs = Some(match self.allocs {
            None => c.allocs,
            Some((lo, hi)) => (lo.min(c.allocs.0), hi.max(c.allocs.1)),
        });
    }

    fn allocs(&self) -> f64 {
        let (lo, hi) = self.allocs.unwrap_or((0, 0));
        (lo + hi) as f64 / 2.0
    }

    fn allocs_cell(&self) -> String {
        match self.allocs {
            Some((lo, hi)) if lo == hi => lo.to_string(),
            Some((lo, hi)) => format!("{lo}..{hi}"),
            None => "-".to_owned(),
        }
    }
}

/// Median, 25th and 75th percentile of the per-round ratios `num[r] / den[r]`.
fn paired(num: &[f64], den: &[f64]) -> (f64, f64, f64) {
    let r: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
    (median(&r), quantile(&r, 0.25), quantile(&r, 0.75))
}

fn main() {
    let o = parse_args();
    let heaptide = o
        .heaptide
        .clone()
        .unwrap_or_else(|| sibling("track_heaptide", "--heaptide"));
    let dhat = o
        .dhat
        .clone()
        .unwrap_or_else(|| sibling("track_dhat", "--dhat"));
    let bin = |v: Variant| match v {
        Variant::Heaptide => &heaptide,
        _ => &dhat,
    };

    let mut acc: [Acc; 3] = Default::default();
    let started = Instant::now();
    for r in 0..o.rounds {
        for k in 0..3 {
            let vi = (k + r) % 3;
            let v = Variant::ALL[vi];
            acc[vi].add(run_child(bin(v), v, &o));
        }
        eprintln!(
            "vs_dhat: round {}/{} done, {:.0} s",
            r + 1,
            o.rounds,
            started.elapsed().as_secs_f64()
        );
    }

    println!(
        "Median of {} rounds x {} timed tracked runs (each child process: 1 untracked warm-up run, 1 cold tracked run \
         reported as the first run, {} untimed tracked runs, then the timed ones, each followed by a timed untracked run of \
         the same closure); the three children run interleaved, order rotating each round. Total {:.0} s.\n",
        o.rounds,
        o.runs,
        o.warmup,
        started.elapsed().as_secs_f64()
    );
    println!(
        "| tracker | timed | allocations per run | tracked run | of which the closure | untracked closure | \
         tracked run / allocation | added by tracking / allocation | CPU time per tracked run (all threads) | first tracked run (cold) |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (vi, v) in Variant::ALL.iter().enumerate() {
        let a = &acc[vi];
        let total = median(&a.total);
        let untracked = median(&a.untracked);
        let n = a.allocs();
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            v.label(),
            v.timed(),
            a.allocs_cell(),
            fmt_time(total),
            fmt_time(median(&a.closure)),
            fmt_time(untracked),
            fmt_time(total / n),
            fmt_time((total - untracked) / n),
            fmt_time(median(&a.cpu)),
            fmt_time(median(&a.first_total)),
        );
    }

    let h = &acc[0];
    println!(
        "\nThe closure (benches/tracked_work.rs): parse a {:.1} KiB JSON request into a `serde_json::Value`, walk it \
         indexing every word in a `HashMap<String, Vec<String>>`, build and sort a `Vec` of line-item structs, format a \
         text response and a pretty-printed JSON summary; the same code in both binaries (heaptide over jemalloc, dhat \
         over the system malloc, as each is used).",
        h.body_bytes as f64 / 1024.0
    );
    println!(
        "\n| ratio (how many times faster heaptide is) | steady state: median (25th..75th pct over rounds) | CPU time | first tracked run (cold) |"
    );
    println!("|---|---:|---:|---:|");
    for vi in [1, 2] {
        let d = &acc[vi];
        let (m, lo, hi) = paired(&d.round_total, &h.round_total);
        let (c, _, _) = paired(&d.round_cpu, &h.round_cpu);
        let (f, flo, fhi) = paired(&d.first_total, &h.first_total);
        println!(
            "| {} / heaptide | **{m:.2}x** ({lo:.2}..{hi:.2}) | {c:.2}x | {f:.2}x ({flo:.2}..{fhi:.2}) |",
            Variant::ALL[vi].label()
        );
    }
    println!(
        "\nheaptide's first tracked run: {} in all, {} of it the closure; the rest is the first `Tracking` built \
         (symbolization with an empty cache) and the drain catching up.",
        fmt_time(median(&h.first_total)),
        fmt_time(median(&h.first_closure))
    );
}

/// [`support::sibling`], or stop with its reason and the flag that names the binary instead.
fn sibling(stem: &str, flag: &str) -> PathBuf {
    support::sibling(stem).unwrap_or_else(|e| fail(&format!("{e}, or pass {flag}")))
}
