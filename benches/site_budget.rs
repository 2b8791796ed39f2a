//! Report building with many distinct call stacks: 2^18 stacks in exact mode, each keeping a
//! 64-byte block (16 MiB live), then a report, timed, and the process's peak RSS. Targets: the
//! report in under 30 s, peak RSS under 512 MiB (`tests/site_budget.rs` checks the RSS bound
//! too). `--check` exits with status 1 if a target is missed (CI runs it so).
//!
//! ```text
//! cargo bench --bench site_budget -- [--levels N] [--check]
//! ```

#[path = "../tests/common/stacks.rs"]
mod stacks;

use std::time::Instant;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(1);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let levels: u32 = args
        .iter()
        .position(|a| a == "--levels")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(18);
    let mut keep = Vec::new();
    let started = Instant::now();
    stacks::distinct_stacks(levels, &mut keep);
    let generated = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let report = heaptide::report();
    let built = started.elapsed().as_secs_f64();
    let again = Instant::now();
    drop(heaptide::report());
    let built_again = again.elapsed().as_secs_f64();
    let peak = stacks::peak_rss();
    let t = &report.site_table;
    println!(
        "site_budget: 2^{levels} distinct stacks in {generated:.2} s; report in {built:.2} s (again: {built_again:.2} s); peak RSS {} MiB",
        peak >> 20
    );
    println!(
        "site_budget: table {} of {} MiB budget, {} stacks in it ({} \"other\"), {} merged; live {} blocks",
        t.bytes >> 20,
        t.budget_bytes >> 20,
        t.stacks,
        t.other_sites,
        t.merged_stacks,
        report.totals.live_count
    );
    drop(keep);
    if check {
        let mut ok = true;
        if built >= 30.0 {
            eprintln!("site_budget: the report took {built:.1} s (target < 30 s)");
            ok = false;
        }
        if peak >= 512 << 20 {
            eprintln!(
                "site_budget: peak RSS {} MiB (target < 512 MiB)",
                peak >> 20
            );
            ok = false;
        }
        if !ok {
            std::process::exit(1);
        }
    }
}
