//! Workloads shared by the allocator comparison benches.
//!
//! The global allocator is chosen per binary, so the same workloads are built three times:
//! `alloc_bare` (tikv-jemallocator), `alloc_default` (`Heaptide::new()`) and `alloc_exact`
//! (`Heaptide::new().exact()`). Each of them includes this file with `#[path]` and calls
//! [`child_main`]. The driver (`benches/overhead.rs`) runs them interleaved and compares.
//!
//! Child command line (what the driver uses):
//!
//! ```text
//! alloc_<mode> --workload NAME [--reps N] [--warmup N] [--scale F] [--no-stats] [--off]
//! ```
//!
//! `--off` (heaptide builds, with `HEAPTIDE_SAMPLE=off` in the environment) labels the results
//! `off`: the default build with profiling switched off, the same machine code as `default`.
//!
//! prints one `RESULT` line per timed repetition (ops, wall ns, process CPU ns: all threads,
//! heaptide's drain thread included), one `STATS` line with the profiler's own
//! figures (heaptide modes), and last an `RSS` line: the process's peak resident set size
//! (`VmHWM`) and its resident set size after the timed repetitions (`VmRSS`), in bytes, read
//! before the report that gives the `STATS` line. Run with only `--bench` (as `cargo bench --bench alloc_bare` does)
//! it runs every workload once and prints a human-readable line each; with no argument at all
//! (`cargo test --benches`) it runs a tiny smoke pass.
//!
//! An "op" is workload-specific and the same in every mode, so time per op compares across
//! modes even though exact mode runs fewer ops (its stack capture per allocation is slow).

#![allow(
    dead_code,
    reason = "included by several bench binaries, each using a subset"
)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

#[path = "../support.rs"]
pub mod support;

use support::{cpu_ns, fmt_bytes, rss};

/// Which allocator a binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `tikv_jemallocator::Jemalloc`.
    Bare,
    /// `heaptide::Heaptide::new()`: one sample per 512 KiB on average.
    Default,
    /// `heaptide::Heaptide::new().exact()`: every allocation recorded with its stack.
    Exact,
    /// The `Default` binary run with `HEAPTIDE_SAMPLE=off`: the same code and layout, no
    /// sampling, no drain thread. Against `Default` it isolates what sampling costs; against
    /// `Bare`, the fast path's tests plus whatever the two binaries' layouts do differently.
    Off,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Bare, Mode::Default, Mode::Exact, Mode::Off];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Bare => "bare",
            Mode::Default => "default",
            Mode::Exact => "exact",
            Mode::Off => "off",
        }
    }
}

/// Whether a workload is a malloc-bound microbenchmark (<= 5% target) or a "real" one (<= 2%).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Micro,
    Real,
}

/// One workload.
pub struct Workload {
    pub name: &'static str,
    pub what: &'static str,
    pub kind: Kind,
    /// What one op is.
    pub op: &'static str,
    /// Ops per timed repetition in bare and default mode (about 100 ms on the reference box).
    pub ops: u64,
    /// Ops per timed repetition in exact mode.
    pub exact_ops: u64,
    /// Runs `ops` ops; returns a checksum (kept alive with `black_box`).
    pub run: fn(u64) -> u64,
}

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "churn",
        what: "2 threads, each allocs/frees Vec<u8> of 8..512 B in a window of 64 live blocks",
        kind: Kind::Micro,
        op: "alloc+free pair",
        ops: 6_000_000,
        exact_ops: 40_000,
        run: churn,
    },
    Workload {
        name: "prodcons",
        what: "producer thread allocs 16..1024 B blocks, sends them in batches of 64 over a sync_channel, consumer frees",
        kind: Kind::Micro,
        op: "block allocated on one thread and freed on the other",
        ops: 1_200_000,
        exact_ops: 25_000,
        run: prodcons,
    },
    Workload {
        name: "realloc",
        what: "Vec<u64> grown by push from empty to 64 B..64 KiB (log-uniform), repeatedly",
        kind: Kind::Micro,
        op: "one Vec grown and dropped",
        ops: 30_000,
        exact_ops: 2_500,
        run: realloc_growth,
    },
    Workload {
        name: "json",
        what: "serde_json: parse 500 records (200 KB), index tags and words in HashMap<String, Vec<u32>>, 200 queries, serialize a summary",
        kind: Kind::Real,
        op: "one document processed",
        ops: 24,
        exact_ops: 1,
        run: json_index,
    },
    Workload {
        name: "words",
        what: "word index: tokenize 20,000 words into HashMap<String, Vec<u32>> postings, 1,000 two-word queries, top 100 by frequency",
        kind: Kind::Real,
        op: "one text indexed and queried",
        ops: 24,
        exact_ops: 1,
        run: word_index,
    },
    Workload {
        name: "threads16",
        what: "16 threads, each with a window of 11,000 live blocks of 16 B..4 KiB (about 8 MiB a thread, 128 MiB in all, built and filled before the timed reps); an op allocates and fills a block of a random size and frees the one it replaces in a random slot of the window",
        kind: Kind::Micro,
        op: "block replaced (free, alloc, fill)",
        ops: 1_000_000,
        exact_ops: 40_000,
        run: threads16,
    },
];

pub fn find(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

// === the child side ===

/// The profiler's own figures for the run (samples, dropped, overhead bytes), for the heaptide
/// builds; the bare build passes `|| None` instead.
pub fn heaptide_stats() -> Option<(u64, u64, u64)> {
    let r = heaptide::report();
    Some((
        r.profiler.samples,
        r.profiler.dropped,
        r.profiler.overhead_bytes,
    ))
}

/// Entry point of `alloc_bare`, `alloc_default`, `alloc_exact`.
///
/// `settle` runs at the end of every timed repetition, inside the timed region
/// (`heaptide::flush` for the heaptide modes, so the drain's backlog is charged to the workload
/// that made it); `stats` returns the profiler's figures after the run, as
/// `(samples, dropped, overhead_bytes)`.
pub fn child_main(mut mode: Mode, settle: fn(), stats: fn() -> Option<(u64, u64, u64)>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut workload = None;
    let mut reps = 3u32;
    let mut warmup = 1u32;
    let mut scale = 1.0f64;
    let mut want_stats = true;
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .unwrap_or_else(|| die(&format!("{} needs a value", args[i])))
        };
        match args[i].as_str() {
            "--workload" => {
                workload = Some(value(i).clone());
                i += 1;
            }
            "--reps" => {
                reps = value(i).parse().unwrap_or_else(|_| die("--reps: integer"));
                i += 1;
            }
            "--warmup" => {
                warmup = value(i)
                    .parse()
                    .unwrap_or_else(|_| die("--warmup: integer"));
                i += 1;
            }
            "--scale" => {
                scale = value(i).parse().unwrap_or_else(|_| die("--scale: number"));
                i += 1;
            }
            // No `heaptide::report()` at the end (it symbolizes: noise for instruction counts).
            "--no-stats" => want_stats = false,
            "--off" => {
                if mode == Mode::Bare {
                    die("--off: only the heaptide builds can switch profiling off");
                }
                if !std::env::var("HEAPTIDE_SAMPLE").is_ok_and(|v| v == "off") {
                    die("--off: run with HEAPTIDE_SAMPLE=off in the environment");
                }
                mode = Mode::Off;
            }
            // `cargo bench` passes `--bench`; filters and the like are ignored.
            _ => {}
        }
        i += 1;
    }

    let ops_for = |w: &Workload| {
        let base = if mode == Mode::Exact {
            w.exact_ops
        } else {
            w.ops
        };
        ((base as f64 * scale).round() as u64).max(1)
    };

    match workload {
        Some(name) => {
            let w = find(&name).unwrap_or_else(|| die(&format!("unknown workload {name}")));
            let ops = ops_for(w);
            prepare(w, scale);
            for _ in 0..warmup {
                black_box((w.run)(ops));
                settle();
            }
            for _ in 0..reps {
                let cpu = cpu_ns();
                let t = Instant::now();
                black_box((w.run)(ops));
                settle();
                let ns = t.elapsed().as_nanos();
                let cpu = cpu_ns() - cpu;
                println!(
                    "RESULT\t{}\t{}\t{}\t{}\t{}",
                    mode.name(),
                    w.name,
                    ops,
                    ns,
                    cpu
                );
            }
            // Before the report below, which symbolizes: its memory is not the workload's.
            let rss = rss();
            if let Some((samples, dropped, overhead)) = want_stats.then(stats).flatten() {
                println!(
                    "STATS\t{}\t{}\t{}\t{}\t{}",
                    mode.name(),
                    w.name,
                    samples,
                    dropped,
                    overhead
                );
            }
            if let Some((peak, now)) = rss {
                println!("RSS\t{}\t{}\t{peak}\t{now}", mode.name(), w.name);
            }
        }
        None => {
            // Standalone (`cargo bench --bench alloc_<mode>`), or a smoke pass under `cargo test`.
            let standalone = args.iter().any(|a| a == "--bench");
            for w in WORKLOADS {
                let ops = if standalone {
                    ops_for(w)
                } else {
                    (ops_for(w) / 1000).max(1)
                };
                prepare(w, if standalone { 1.0 } else { 0.001 });
                black_box((w.run)(ops));
                settle();
                let t = Instant::now();
                black_box((w.run)(ops));
                settle();
                let ns = t.elapsed().as_nanos() as f64;
                println!(
                    "{:>8} {:<9} {:>12.1} ns/op  ({} ops: {})",
                    mode.name(),
                    w.name,
                    ns / ops as f64,
                    ops,
                    w.op
                );
            }
            if let Some((samples, dropped, overhead)) = stats() {
                println!(
                    "{:>8} profiler: {samples} samples, {dropped} dropped, {overhead} bytes overhead",
                    mode.name()
                );
            }
            if let Some((peak, now)) = rss() {
                println!(
                    "{:>8} RSS of the whole run: peak {}, at the end {}",
                    mode.name(),
                    fmt_bytes(peak),
                    fmt_bytes(now)
                );
            }
        }
    }
}

fn die(msg: &str) -> ! {
    eprintln!("alloc bench: {msg}");
    std::process::exit(2)
}

/// Builds a workload's input outside the timed region. Below `scale` 0.01 (smoke passes)
/// threads16's windows shrink with the scale, to 1/10 of their size at 0.001.
fn prepare(w: &Workload, scale: f64) {
    match w.name {
        "json" => {
            black_box(json_doc().len());
        }
        "words" => {
            black_box(word_text().len());
        }
        "threads16" => {
            let blocks = (T16_WINDOW as f64 * (scale * 100.0).min(1.0)).round() as usize;
            T16_BLOCKS.store(blocks.max(16), Ordering::Relaxed);
            black_box(t16_windows().len());
        }
        _ => {}
    }
}

// === helpers ===

/// xorshift64*: cheap, allocation-free, deterministic.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[inline(always)]
    fn below(&mut self, n: u64) -> u64 {
        ((self.next() >> 32) * n) >> 32
    }
}

// === (a) malloc-bound small-object churn, two threads ===

fn churn(ops: u64) -> u64 {
    let per_thread = ops / 2;
    std::thread::scope(|s| {
        let a = s.spawn(move || churn_thread(per_thread, 1));
        let b = s.spawn(move || churn_thread(ops - per_thread, 2));
        a.join().unwrap() ^ b.join().unwrap()
    })
}

#[inline(never)]
fn churn_thread(ops: u64, seed: u64) -> u64 {
    const WINDOW: usize = 64;
    let mut slots: Vec<Vec<u8>> = (0..WINDOW).map(|_| Vec::new()).collect();
    let mut rng = Rng::new(seed);
    let mut sum = 0u64;
    for _ in 0..ops {
        let r = rng.next();
        let idx = (r as usize) % WINDOW;
        let size = 8 + ((r >> 32) % 505) as usize;
        let mut v = Vec::with_capacity(size);
        v.push(r as u8);
        // Frees the block that was in the slot.
        let old = std::mem::replace(&mut slots[idx], v);
        sum = sum.wrapping_add(old.capacity() as u64);
    }
    black_box(&slots);
    sum
}

// === (b) cross-thread producer/consumer ===

fn prodcons(ops: u64) -> u64 {
    const BATCH: u64 = 64;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Vec<u8>>>(16);
    std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            let mut sum = 0u64;
            for batch in rx {
                for block in batch {
                    sum = sum.wrapping_add(block[0] as u64 + block.capacity() as u64);
                    drop(block);
                }
            }
            sum
        });
        let mut rng = Rng::new(3);
        let mut left = ops;
        while left > 0 {
            let n = left.min(BATCH);
            left -= n;
            let mut batch = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let r = rng.next();
                let size = 16 + ((r >> 32) % 1009) as usize;
                let mut v = Vec::with_capacity(size);
                v.push(r as u8);
                batch.push(v);
            }
            tx.send(batch).unwrap();
        }
        drop(tx);
        consumer.join().unwrap()
    })
}

// === (c) realloc-heavy growth ===

#[inline(never)]
fn realloc_growth(ops: u64) -> u64 {
    let mut rng = Rng::new(4);
    let mut sum = 0u64;
    for _ in 0..ops {
        // 2^6 .. 2^16 bytes, i.e. 8 .. 8192 u64s.
        let target = (64usize << rng.below(11)) / 8;
        let mut v: Vec<u64> = Vec::new();
        for i in 0..target {
            v.push(i as u64);
        }
        let v = black_box(v);
        sum = sum.wrapping_add(v[v.len() / 2] + v.capacity() as u64);
    }
    sum
}

// === (d) "real" workloads: not purely malloc-bound ===

const WORDS: [&str; 32] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango",
    "uniform", "victor", "whiskey", "xray", "yankee", "zulu", "heap", "tide", "sample", "arena",
    "drain", "stack",
];

/// A word from a vocabulary of about 32 x 200 forms, skewed towards the first ones (Zipf-like).
fn word(rng: &mut Rng, out: &mut String) {
    use std::fmt::Write;
    let a = rng.below(32) as usize;
    let b = rng.below(32) as usize;
    let base = WORDS[a.min(b)];
    let suffix = rng.below(200).min(rng.below(200));
    let _ = write!(out, "{base}{suffix}");
}

#[derive(serde::Deserialize)]
struct Record {
    id: u32,
    user: String,
    score: f64,
    tags: Vec<String>,
    text: String,
    #[allow(dead_code, reason = "parsed as part of the workload, never read back")]
    meta: HashMap<String, serde_json::Value>,
}

#[derive(serde::Serialize)]
struct Summary<'a> {
    records: usize,
    distinct_tags: usize,
    distinct_words: usize,
    hits: u64,
    best_users: Vec<(&'a str, f64)>,
    top_tags: Vec<(&'a str, usize)>,
}

static JSON_DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// 500 records of about 400 bytes (about 200 KB of JSON), built once per process.
fn json_doc() -> &'static str {
    JSON_DOC.get_or_init(|| {
        use std::fmt::Write;
        let mut rng = Rng::new(5);
        let mut s = String::from("[");
        for id in 0..500u32 {
            if id > 0 {
                s.push(',');
            }
            let _ = write!(s, r#"{{"id":{id},"user":"user_{}","score":{:.3},"tags":["#, rng.below(300), rng.below(100_000) as f64 / 1000.0);
            for t in 0..1 + rng.below(5) {
                if t > 0 {
                    s.push(',');
                }
                s.push('"');
                word(&mut rng, &mut s);
                s.push('"');
            }
            s.push_str(r#"],"text":""#);
            for w in 0..20 + rng.below(30) {
                if w > 0 {
                    s.push(' ');
                }
                word(&mut rng, &mut s);
            }
            let _ = write!(s, r#"","meta":{{"lang":"en","version":{},"flags":[true,false,null],"ratio":{:.4}}}}}"#, rng.below(9), rng.below(10_000) as f64 / 7.0);
        }
        s.push(']');
        s
    })
}

#[inline(never)]
fn json_index(ops: u64) -> u64 {
    let doc = json_doc();
    let mut checksum = 0u64;
    for op in 0..ops {
        let records: Vec<Record> = serde_json::from_str(doc).expect("valid JSON");
        let mut by_tag: HashMap<String, Vec<u32>> = HashMap::new();
        let mut by_word: HashMap<String, Vec<u32>> = HashMap::new();
        let mut by_user: HashMap<&str, f64> = HashMap::new();
        for r in &records {
            for t in &r.tags {
                by_tag.entry(t.clone()).or_default().push(r.id);
            }
            for w in r.text.split(' ') {
                let postings = by_word.entry(w.to_string()).or_default();
                if postings.last() != Some(&r.id) {
                    postings.push(r.id);
                }
            }
            *by_user.entry(r.user.as_str()).or_default() += r.score;
        }
        // Queries: records having tag X and word Y (sorted-merge intersection).
        let mut rng = Rng::new(6 + op);
        let mut hits = 0u64;
        let mut q = String::new();
        for _ in 0..200 {
            q.clear();
            word(&mut rng, &mut q);
            let tag = by_tag.get(&q).map(Vec::as_slice).unwrap_or(&[]);
            q.clear();
            word(&mut rng, &mut q);
            let words = by_word.get(&q).map(Vec::as_slice).unwrap_or(&[]);
            hits += intersect(tag, words);
        }
        let mut best_users: Vec<(&str, f64)> = by_user.into_iter().collect();
        best_users.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        best_users.truncate(10);
        let mut top_tags: Vec<(&str, usize)> =
            by_tag.iter().map(|(k, v)| (k.as_str(), v.len())).collect();
        top_tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        top_tags.truncate(20);
        let summary = Summary {
            records: records.len(),
            distinct_tags: by_tag.len(),
            distinct_words: by_word.len(),
            hits,
            best_users,
            top_tags,
        };
        let out = serde_json::to_string(&summary).expect("serializable");
        checksum = checksum.wrapping_add(out.len() as u64 + hits);
    }
    checksum
}

fn intersect(a: &[u32], b: &[u32]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

static WORD_TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// 20,000 words with punctuation and capitals, built once per process.
fn word_text() -> &'static str {
    WORD_TEXT.get_or_init(|| {
        let mut rng = Rng::new(7);
        let mut s = String::new();
        for i in 0..20_000u32 {
            let start = s.len();
            word(&mut rng, &mut s);
            if rng.below(8) == 0 {
                // Capitalise the first letter.
                let first = s[start..start + 1].to_ascii_uppercase();
                s.replace_range(start..start + 1, &first);
            }
            s.push_str(match rng.below(16) {
                0 => ", ",
                1 => ". ",
                _ if i % 97 == 96 => "\n",
                _ => " ",
            });
        }
        s
    })
}

#[inline(never)]
fn word_index(ops: u64) -> u64 {
    let text = word_text();
    let mut checksum = 0u64;
    for op in 0..ops {
        let mut postings: HashMap<String, Vec<u32>> = HashMap::new();
        for (pos, token) in text
            .split(|c: char| c.is_whitespace() || c == ',' || c == '.')
            .filter(|t| !t.is_empty())
            .enumerate()
        {
            postings
                .entry(token.to_lowercase())
                .or_default()
                .push(pos as u32);
        }
        let mut rng = Rng::new(8 + op);
        let mut hits = 0u64;
        let (mut a, mut b) = (String::new(), String::new());
        for _ in 0..1000 {
            a.clear();
            b.clear();
            word(&mut rng, &mut a);
            word(&mut rng, &mut b);
            // Occurrences of "a b" as a phrase: positions p in a with p + 1 in b.
            if let (Some(pa), Some(pb)) = (postings.get(&a), postings.get(&b)) {
                let shifted: Vec<u32> = pa.iter().map(|p| p + 1).collect();
                hits += intersect(&shifted, pb);
            }
        }
        let mut freq: Vec<(&String, usize)> = postings.iter().map(|(k, v)| (k, v.len())).collect();
        freq.sort_unstable_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(y.0)));
        freq.truncate(100);
        let report: Vec<String> = freq.iter().map(|(w, n)| format!("{w}:{n}")).collect();
        checksum =
            checksum.wrapping_add(hits + report.join(",").len() as u64 + postings.len() as u64);
    }
    checksum
}

// === (e) thread-heavy: 16 threads, each churning a large window of live blocks ===

const T16_THREADS: usize = 16;
/// Blocks in a thread's window: they average about 765 B, so about 8 MiB live per thread.
const T16_WINDOW: usize = 11_000;
/// Blocks in the windows this process builds: `T16_WINDOW` but in smoke passes (`prepare`).
static T16_BLOCKS: AtomicUsize = AtomicUsize::new(T16_WINDOW);

/// One thread's window and the generator that picks its slots and sizes (kept with it, so each
/// repetition continues the sequence instead of replaying it).
struct T16Window {
    rng: Rng,
    blocks: Vec<Vec<u8>>,
}

/// The 16 windows, built once per process (by `prepare`, outside the timed region) and live
/// between repetitions.
static T16_WINDOWS: std::sync::Mutex<Vec<T16Window>> = std::sync::Mutex::new(Vec::new());

fn t16_windows() -> std::sync::MutexGuard<'static, Vec<T16Window>> {
    let mut windows = T16_WINDOWS.lock().unwrap();
    if windows.is_empty() {
        // Each window is built by a thread of its own, as its blocks would be in a program.
        *windows = std::thread::scope(|s| {
            let builders: Vec<_> = (0..T16_THREADS as u64)
                .map(|t| {
                    s.spawn(move || {
                        let mut rng = Rng::new(100 + t);
                        let blocks = (0..T16_BLOCKS.load(Ordering::Relaxed))
                            .map(|_| t16_block(&mut rng))
                            .collect();
                        T16Window { rng, blocks }
                    })
                })
                .collect();
            builders.into_iter().map(|b| b.join().unwrap()).collect()
        });
    }
    windows
}

/// A block of 16 B..4 KiB, filled: a power-of-two octave from 16 B to 2 KiB, then a size
/// uniform within it (mean about 765 B).
#[inline(always)]
fn t16_block(rng: &mut Rng) -> Vec<u8> {
    let octave = 16u64 << rng.below(8);
    let size = (octave + rng.below(octave)) as usize;
    let mut v = Vec::with_capacity(size);
    v.resize(size, rng.next() as u8);
    v
}

fn threads16(ops: u64) -> u64 {
    let mut windows = t16_windows();
    let n = windows.len() as u64;
    std::thread::scope(|s| {
        let workers: Vec<_> = windows
            .iter_mut()
            .enumerate()
            .map(|(t, w)| {
                let share = ops / n + u64::from((t as u64) < ops % n);
                s.spawn(move || threads16_thread(w, share))
            })
            .collect();
        workers
            .into_iter()
            .fold(0, |acc, h| acc ^ h.join().unwrap())
    })
}

#[inline(never)]
fn threads16_thread(w: &mut T16Window, ops: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..ops {
        let idx = w.rng.below(w.blocks.len() as u64) as usize;
        let block = t16_block(&mut w.rng);
        // Frees the block that was in the slot.
        let old = std::mem::replace(&mut w.blocks[idx], block);
        sum = sum.wrapping_add(old.len() as u64 + old[0] as u64);
    }
    sum
}
