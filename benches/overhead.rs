//! The overhead comparison driver: runs the same workloads built three ways (`alloc_bare`,
//! `alloc_default`, `alloc_exact`) interleaved in one run, and prints Markdown tables of time
//! per op and ratio against bare jemalloc. A fourth mode, `off`, runs the `alloc_default`
//! binary with `HEAPTIDE_SAMPLE=off`: the same machine code and layout as `default` without
//! sampling or the drain thread. `default / off` is then what sampling costs with the binary
//! held fixed, and `off / bare` the fast path's tests plus whatever two different binaries'
//! code and data layouts do to a loop of a few nanoseconds. On churn that layout term is as
//! large as the targets: `off / bare` measured 0.80-0.82 on the 2-core bench machine, and a
//! bare build that only had 64 or 1,600 bytes of thread-locals added ran 0.94-0.96 of the
//! plain bare build's time per op, while instruction counts put the fast path at +3.8%.
//!
//! ```text
//! cargo bench --bench overhead                 # finds the alloc_* binaries next to itself
//! overhead --bare P --default P --exact P      # or be told where they are (bin/bench.sh)
//!          [--off P] [--rounds N] [--reps N] [--warmup N] [--scale F] [--only churn,json]
//! ```
//!
//! With no argument at all (`cargo test --benches`) it does a one-round smoke pass at 1/1000
//! of the ops, which checks the pipeline and measures nothing.
//!
//! Each round runs every workload in every mode, one child process per (workload, mode), the
//! order of the modes rotating from round to round; a child does `--warmup` untimed and `--reps`
//! timed repetitions. Times are medians over all rounds and repetitions; the spread column is
//! the 25th..75th percentile of the per-round paired ratios (this round's median against bare's
//! median of the same round), which shows how much the shared machine's noise moves the ratio.
//!
//! Last comes a table of memory: each child's peak resident set size (`VmHWM`, read before the
//! child builds the report that gives the profiler figures) per workload and mode, medians over
//! the rounds, with default / bare and exact / bare. `threads16` (16 threads, 128 MiB live) is
//! the workload for it: there the sampled arena's pages and exact mode's records show beside
//! bare jemalloc's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

#[path = "workloads/mod.rs"]
mod workloads;

use workloads::support::{self, fmt_bytes, median, quantile};

use workloads::{Kind, Mode, WORKLOADS, Workload};

struct Options {
    bins: [Option<PathBuf>; 4],
    rounds: usize,
    reps: u32,
    warmup: u32,
    scale: f64,
    only: Option<Vec<String>>,
}

fn parse_args() -> Options {
    let mut o = Options {
        bins: [None, None, None, None],
        rounds: 7,
        reps: 3,
        warmup: 1,
        scale: 1.0,
        only: None,
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
            "--bare" => o.bins[0] = Some(value().into()),
            "--default" => o.bins[1] = Some(value().into()),
            "--exact" => o.bins[2] = Some(value().into()),
            "--off" => o.bins[3] = Some(value().into()),
            "--rounds" => {
                o.rounds = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--rounds: integer"))
            }
            "--reps" => o.reps = value().parse().unwrap_or_else(|_| fail("--reps: integer")),
            "--warmup" => {
                o.warmup = value()
                    .parse()
                    .unwrap_or_else(|_| fail("--warmup: integer"))
            }
            "--scale" => o.scale = value().parse().unwrap_or_else(|_| fail("--scale: number")),
            "--only" => o.only = Some(value().split(',').map(str::to_owned).collect()),
            // `cargo bench` passes `--bench`.
            _ => took = false,
        }
        i += if took { 2 } else { 1 };
    }
    // Neither `cargo bench` (which passes `--bench`) nor options: `cargo test --benches` runs
    // us; a smoke pass (one tiny round) checks the pipeline without measuring anything.
    if args.is_empty() {
        eprintln!(
            "overhead: no arguments: smoke pass only (measure with `cargo bench --bench overhead` or bin/bench.sh)"
        );
        o.rounds = 1;
        o.reps = 1;
        o.warmup = 0;
        o.scale = 0.001;
    }
    o.rounds = o.rounds.max(1);
    o.reps = o.reps.max(1);
    o
}

fn fail(msg: &str) -> ! {
    eprintln!("overhead: {msg}");
    std::process::exit(2)
}

struct Rep {
    ops: u64,
    ns: u128,
    cpu_ns: u128,
}

impl Rep {
    fn ns_per_op(&self) -> f64 {
        self.ns as f64 / self.ops as f64
    }

    fn cpu_ns_per_op(&self) -> f64 {
        self.cpu_ns as f64 / self.ops as f64
    }
}

struct Child {
    reps: Vec<Rep>,
    stats: Option<(u64, u64, u64)>,
    /// Peak RSS (`VmHWM`) and RSS after the timed repetitions, bytes.
    rss: Option<(u64, u64)>,
}

fn run_child(bin: &Path, mode: Mode, w: &Workload, o: &Options) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args(["--workload", w.name])
        .args(["--reps", &o.reps.to_string()])
        .args(["--warmup", &o.warmup.to_string()])
        .args(["--scale", &o.scale.to_string()]);
    // The handle's settings are what is compared; an operator's environment must not change them.
    for var in ["HEAPTIDE_SAMPLE", "HEAPTIDE_DEPTH", "HEAPTIDE_SEED"] {
        cmd.env_remove(var);
    }
    if mode == Mode::Off {
        cmd.env("HEAPTIDE_SAMPLE", "off").arg("--off");
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| fail(&format!("{}: {e}", bin.display())));
    if !out.status.success() {
        fail(&format!(
            "{} --workload {} failed ({}):\n{}",
            bin.display(),
            w.name,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.trim().is_empty() {
        eprintln!("[{} {}] {}", mode.name(), w.name, stderr.trim());
    }
    let mut child = Child {
        reps: Vec::new(),
        stats: None,
        rss: None,
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        match f.as_slice() {
            ["RESULT", m, name, ops, ns, cpu] if *m == mode.name() && *name == w.name => {
                child.reps.push(Rep {
                    ops: ops.parse().unwrap(),
                    ns: ns.parse().unwrap(),
                    cpu_ns: cpu.parse().unwrap(),
                });
            }
            ["STATS", _, _, samples, dropped, overhead] => {
                child.stats = Some((
                    samples.parse().unwrap(),
                    dropped.parse().unwrap(),
                    overhead.parse().unwrap(),
                ));
            }
            ["RSS", m, name, peak, now] if *m == mode.name() && *name == w.name => {
                child.rss = Some((peak.parse().unwrap(), now.parse().unwrap()));
            }
            _ => {}
        }
    }
    if child.reps.len() != o.reps as usize {
        fail(&format!(
            "{} --workload {}: expected {} RESULT lines",
            bin.display(),
            w.name,
            o.reps
        ));
    }
    child
}

fn fmt_time(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

type PerMode = [Vec<f64>; 4];

// Indices into a `PerMode` (the order of `Mode::ALL`).
const BARE: usize = 0;
const DEFAULT: usize = 1;
const EXACT: usize = 2;
const OFF: usize = 3;

/// One Markdown table: time per op per mode and ratios against bare.
fn table(workloads: &[&Workload], samples: &[PerMode], rounds: &[PerMode], verdict: bool) {
    println!(
        "| workload | kind | bare jemalloc | heaptide default | default / bare (spread) |{} heaptide off | off / bare (spread) | default / off (spread) | heaptide exact | exact / bare (spread) |",
        if verdict { " target |" } else { "" }
    );
    println!(
        "|---|---|---:|---:|---:|{}---:|---:|---:|---:|---:|",
        if verdict { ":---:|" } else { "" }
    );
    for (wi, w) in workloads.iter().enumerate() {
        let med = |m: usize| median(&samples[wi][m]);
        // Paired per-round ratios: this round's median of mode `m` against the median of mode
        // `base` in the same round.
        let ratio = |m: usize, base: usize| {
            let paired: Vec<f64> = rounds[wi][m]
                .iter()
                .zip(&rounds[wi][base])
                .map(|(x, b)| x / b)
                .collect();
            (
                median(&paired),
                quantile(&paired, 0.25),
                quantile(&paired, 0.75),
            )
        };
        let (d, d_lo, d_hi) = ratio(DEFAULT, BARE);
        let (e, e_lo, e_hi) = ratio(EXACT, BARE);
        let (f, f_lo, f_hi) = ratio(OFF, BARE);
        let (s, s_lo, s_hi) = ratio(DEFAULT, OFF);
        let limit = match w.kind {
            Kind::Micro => 1.05,
            Kind::Real => 1.02,
        };
        let target = if verdict {
            format!(
                " ≤ {:.0}%: {} |",
                (limit - 1.0) * 100.0,
                if d <= limit { "met" } else { "missed" }
            )
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {} | {} | {:.3} ({:.3}..{:.3}) |{} {} | {:.3} ({:.3}..{:.3}) | {:.3} ({:.3}..{:.3}) | {} | {:.1} ({:.1}..{:.1}) |",
            w.name,
            match w.kind {
                Kind::Micro => "malloc-bound",
                Kind::Real => "real",
            },
            fmt_time(med(BARE)),
            fmt_time(med(DEFAULT)),
            d,
            d_lo,
            d_hi,
            target,
            fmt_time(med(OFF)),
            f,
            f_lo,
            f_hi,
            s,
            s_lo,
            s_hi,
            fmt_time(med(EXACT)),
            e,
            e_lo,
            e_hi,
        );
    }
}

fn main() {
    let o = parse_args();
    let bins: Vec<PathBuf> = Mode::ALL
        .iter()
        .enumerate()
        .map(|(i, m)| {
            o.bins[i].clone().unwrap_or_else(|| match m {
                // The off mode runs the default build.
                Mode::Off => o.bins[DEFAULT].clone().unwrap_or_else(|| {
                    support::sibling("alloc_default")
                        .unwrap_or_else(|e| fail(&format!("{e}, or pass --default")))
                }),
                _ => support::sibling(&format!("alloc_{}", m.name()))
                    .unwrap_or_else(|e| fail(&format!("{e}, or pass --{}", m.name()))),
            })
        })
        .collect();
    let workloads: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            o.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|n| n == w.name))
        })
        .collect();
    if workloads.is_empty() {
        fail("no workload selected");
    }

    // samples[w][m] = ns/op of every timed repetition; rounds[w][m][r] = that round's median.
    let nw = workloads.len();
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; nw];
    let mut rounds = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; nw];
    // The same for process CPU time (all threads).
    let mut cpu_samples = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; nw];
    let mut cpu_rounds = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; nw];
    let mut stats = vec![[None, None, None, None]; nw];
    // peak_rss[w][m][r], end_rss[w][m][r]: bytes, one child process per round.
    let mut peak_rss = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; nw];
    let mut end_rss = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; nw];
    let started = Instant::now();
    for r in 0..o.rounds {
        for (wi, w) in workloads.iter().enumerate() {
            for k in 0..Mode::ALL.len() {
                let mi = (k + r) % Mode::ALL.len();
                let child = run_child(&bins[mi], Mode::ALL[mi], w, &o);
                let per_op: Vec<f64> = child.reps.iter().map(Rep::ns_per_op).collect();
                rounds[wi][mi].push(median(&per_op));
                samples[wi][mi].extend(per_op);
                let cpu_per_op: Vec<f64> = child.reps.iter().map(Rep::cpu_ns_per_op).collect();
                cpu_rounds[wi][mi].push(median(&cpu_per_op));
                cpu_samples[wi][mi].extend(cpu_per_op);
                if child.stats.is_some() {
                    stats[wi][mi] = child.stats;
                }
                if let Some((peak, now)) = child.rss {
                    peak_rss[wi][mi].push(peak as f64);
                    end_rss[wi][mi].push(now as f64);
                }
            }
        }
        eprintln!(
            "overhead: round {}/{} done, {:.0} s",
            r + 1,
            o.rounds,
            started.elapsed().as_secs_f64()
        );
    }

    println!(
        "Time per op: median of {} rounds x {} timed reps (each child process: {} untimed warm-up rep first), the four modes run \
         interleaved in one run (order rotating each round). Ratio: median over rounds of (this round's median / bare's median of the \
         same round); spread: 25th..75th percentile of those per-round ratios. Total {:.0} s.\n",
        o.rounds,
        o.reps,
        o.warmup,
        started.elapsed().as_secs_f64()
    );
    println!("#### Wall time\n");
    table(&workloads, &samples, &rounds, true);
    println!(
        "\n#### CPU time of the process (all threads, heaptide's drain thread included; less sensitive than wall time to \
         other processes taking the CPU)\n"
    );
    table(&workloads, &cpu_samples, &cpu_rounds, false);

    println!(
        "\nWorkloads (one op is the same unit in every mode; exact mode runs fewer ops per repetition):\n"
    );
    println!("| workload | what | one op | ops per rep (bare, default / exact) |");
    println!("|---|---|---|---:|");
    for w in &workloads {
        let ops = |n: u64| ((n as f64 * o.scale).round() as u64).max(1);
        println!(
            "| {} | {} | {} | {} / {} |",
            w.name,
            w.what,
            w.op,
            ops(w.ops),
            ops(w.exact_ops)
        );
    }

    println!(
        "\nProfiler figures from `heaptide::report()` at the end of one child process (warm-up + timed reps), last round; \
         dropped = samples not taken because the thread's ring was full:\n"
    );
    println!(
        "| workload | default: samples | default: dropped | default: overhead | exact: samples | exact: dropped | exact: overhead |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (wi, w) in workloads.iter().enumerate() {
        let cell = |m: usize| match stats[wi][m] {
            Some((s, d, b)) => format!("{s} | {d} | {}", fmt_bytes(b)),
            None => "- | - | -".to_owned(),
        };
        println!("| {} | {} | {} |", w.name, cell(DEFAULT), cell(EXACT));
    }

    rss_table(&workloads, &peak_rss, &end_rss, o.rounds);
}

/// Peak RSS per workload and mode (median over rounds), and the ratios against bare.
fn rss_table(workloads: &[&Workload], peak: &[PerMode], end: &[PerMode], rounds: usize) {
    println!(
        "\nResident set size of each child process (workload, mode): peak (`VmHWM`, warm-up and timed reps, before the \
         report that gives the profiler figures above) and, in brackets, at the end of the timed reps (`VmRSS`); median of \
         {rounds} rounds. Exact mode runs fewer ops per rep, so its peak is over fewer allocations:\n"
    );
    println!(
        "| workload | bare jemalloc | heaptide default | default / bare | heaptide off | off / bare | heaptide exact | exact / bare |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (wi, w) in workloads.iter().enumerate() {
        let med = |m: usize| median(&peak[wi][m]);
        let cell = |m: usize| {
            if peak[wi][m].is_empty() {
                "-".to_owned()
            } else {
                format!(
                    "{} ({})",
                    fmt_bytes(med(m) as u64),
                    fmt_bytes(median(&end[wi][m]) as u64)
                )
            }
        };
        let ratio = |m: usize| format!("{:.2}", med(m) / med(BARE));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            w.name,
            cell(BARE),
            cell(DEFAULT),
            ratio(DEFAULT),
            cell(OFF),
            ratio(OFF),
            cell(EXACT),
            ratio(EXACT),
        );
    }
}
