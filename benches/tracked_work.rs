//! The realistic closure of the tracked-run comparison (`benches/vs_dhat.rs`), and the child
//! side shared by its two binaries: `track_heaptide` (each run inside
//! `heaptide::testing::track`) and `track_dhat` (each run inside a
//! `dhat::Profiler::builder().testing()` profiler). Both include this file with `#[path]`, so
//! they run exactly the same code; only the allocator and the tracker differ.
//!
//! The closure is what a request handler's test does: parse a JSON request body of about
//! 7 KiB into a `serde_json::Value`, walk it, index its words in a
//! `HashMap<String, Vec<String>>` (word -> paths where it occurs), turn the items into structs
//! and sort them, and format a response `String` (text plus a serialized JSON summary). Every
//! hash map uses a fixed hasher, so the work, and its allocation count, are the same on every
//! run and in both binaries.
//!
//! Child command line (what the driver uses):
//!
//! ```text
//! track_<tracker> [--runs N] [--warmup N] [--variant per-run|one-profiler]
//! ```
//!
//! In this order: one untracked warm-up run of the closure (the allocator and the code are warm,
//! the tracker is not); the first tracked run (the cold tracker: heaptide symbolizes with an
//! empty cache, dhat's first backtrace works out its trimming), printed as `first_run`;
//! `--warmup` untimed tracked runs; then `--runs` iterations of one tracked run and one
//! untracked run, both timed, each printed as
//! `run <tracked ns> <closure ns> <untracked ns> <tracked cpu ns>` (closure ns: the clock read
//! inside the tracked closure, around the work only; untracked ns is 0 where there is no
//! untracked run, in dhat's one-profiler variant; tracked cpu ns: CPU time of the whole process
//! during the tracked run, so heaptide's drain thread, which works beside the closure on the
//! second core, is charged to it). Last,
//! `allocs_per_run <min> <max>` (what the tracker counted), `body_bytes <n>` (the request's
//! size) and `ns_per_run <median tracked ns>`.
//! With no argument at all (`cargo test --benches`) it runs a tiny smoke pass with the same
//! output.

#![allow(
    dead_code,
    reason = "included by two bench binaries, each using a subset"
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::BuildHasherDefault;
use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

#[path = "support.rs"]
mod support;

use support::cpu_ns;

/// A deterministic hasher (std's SipHash with fixed keys): iteration order, and so the work,
/// is the same on every run.
type Fixed = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

// === the closure ===

/// xorshift64*: cheap, allocation-free, deterministic.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        ((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) * n) >> 32
    }
}

const VOCABULARY: [&str; 48] = [
    "order", "invoice", "shipping", "express", "standard", "gift", "wrap", "blue", "red", "green",
    "small", "medium", "large", "cotton", "wool", "linen", "shirt", "scarf", "hat", "jacket",
    "boots", "socks", "warm", "light", "summer", "winter", "sale", "new", "classic", "slim",
    "regular", "fit", "pack", "of", "two", "three", "with", "and", "for", "the", "soft", "durable",
    "washable", "organic", "recycled", "limited", "edition", "return",
];

fn words(rng: &mut Rng, n: u64, out: &mut String) {
    for i in 0..n {
        if i > 0 {
            out.push(' ');
        }
        // Skewed towards the first words, as real text is.
        let a = rng.below(VOCABULARY.len() as u64);
        let b = rng.below(VOCABULARY.len() as u64);
        out.push_str(VOCABULARY[a.min(b) as usize]);
    }
}

/// The request body: an order of 24 items with names, tags, descriptions and attributes,
/// about 7 KiB of JSON. Built once per process, outside every timed and tracked region.
pub fn body() -> &'static str {
    static BODY: OnceLock<String> = OnceLock::new();
    BODY.get_or_init(|| {
        let mut rng = Rng::new(42);
        let mut s = String::from(r#"{"request_id":"req-7f3a9","user":{"id":1842,"name":"Ada Example","locale":"en-GB","roles":["customer","beta"]},"items":["#);
        for id in 0..24u64 {
            if id > 0 {
                s.push(',');
            }
            let _ = write!(
                s,
                r#"{{"sku":"SKU-{:05}","qty":{},"price":{}.{:02},"name":""#,
                1000 + rng.below(90_000),
                1 + rng.below(4),
                5 + rng.below(200),
                rng.below(100)
            );
            let n = 2 + rng.below(3);
            words(&mut rng, n, &mut s);
            s.push_str(r#"","tags":["#);
            for t in 0..1 + rng.below(4) {
                if t > 0 {
                    s.push(',');
                }
                s.push('"');
                words(&mut rng, 1, &mut s);
                s.push('"');
            }
            s.push_str(r#"],"description":""#);
            let n = 12 + rng.below(16);
            words(&mut rng, n, &mut s);
            let _ = write!(
                s,
                r#"","attrs":{{"color":"{}","size":"{}","in_stock":{},"rating":{}.{}}}}}"#,
                ["red", "blue", "green", "black"][rng.below(4) as usize],
                ["S", "M", "L", "XL"][rng.below(4) as usize],
                rng.below(5) != 0,
                1 + rng.below(4),
                rng.below(10)
            );
        }
        s.push_str(r#"],"shipping":{"method":"express","address":{"street":"1 Analytical Way","city":"London","postcode":"N1 9GU","country":"GB"}},"notes":"please wrap the gift items separately and send the invoice by mail"}"#);
        s
    })
}

/// One line item, as the handler sorts them.
#[derive(Debug, Clone)]
struct Item {
    sku: String,
    name: String,
    qty: u64,
    total: f64,
    tags: Vec<String>,
    rating: f64,
}

/// Walks `v`, adding every word of every string leaf to `index` with the path it was found at.
fn walk(v: &serde_json::Value, path: &mut String, index: &mut HashMap<String, Vec<String>, Fixed>) {
    match v {
        serde_json::Value::String(s) => {
            for word in s
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
            {
                index
                    .entry(word.to_lowercase())
                    .or_default()
                    .push(path.clone());
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{i}]");
                walk(x, path, index);
                path.truncate(len);
            }
        }
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                path.push('.');
                path.push_str(k);
                walk(x, path, index);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The realistic closure: handles the request `body` and returns the response text.
#[inline(never)]
pub fn handle_request(body: &str) -> String {
    let request: serde_json::Value = serde_json::from_str(body).expect("valid request JSON");

    // Word index over every string in the request.
    let mut index: HashMap<String, Vec<String>, Fixed> = HashMap::default();
    let mut path = String::from("$");
    walk(&request, &mut path, &mut index);

    // Line items as structs, sorted by total (descending), then name.
    let mut items: Vec<Item> = request["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|it| {
                    let qty = it["qty"].as_u64().unwrap_or(0);
                    Item {
                        sku: it["sku"].as_str().unwrap_or("").to_owned(),
                        name: it["name"].as_str().unwrap_or("").to_owned(),
                        qty,
                        total: qty as f64 * it["price"].as_f64().unwrap_or(0.0),
                        tags: it["tags"]
                            .as_array()
                            .map(|t| {
                                t.iter()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        rating: it["attrs"]["rating"].as_f64().unwrap_or(0.0),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then_with(|| a.name.cmp(&b.name))
    });

    // Tag counts, most used first.
    let mut tag_counts: HashMap<&str, usize, Fixed> = HashMap::default();
    for item in &items {
        for t in &item.tags {
            *tag_counts.entry(t.as_str()).or_default() += 1;
        }
    }
    let mut tags: Vec<(&str, usize)> = tag_counts.into_iter().collect();
    tags.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));

    // Most frequent words, with where they first occur.
    let mut frequent: Vec<(&String, &Vec<String>)> = index.iter().collect();
    frequent.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));

    // The response: a text body and a JSON summary.
    let user = request["user"]["name"].as_str().unwrap_or("?");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Order {} for {user}",
        request["request_id"].as_str().unwrap_or("?")
    );
    let mut grand = 0.0;
    for item in &items {
        grand += item.total;
        let _ = writeln!(
            out,
            "{:<10} {:<32} x{} {:>9.2}  [{}] {:.1}*",
            item.sku,
            item.name,
            item.qty,
            item.total,
            item.tags.join(", "),
            item.rating
        );
    }
    let _ = writeln!(out, "Total: {grand:.2}");
    for (word, paths) in frequent.iter().take(15) {
        let _ = writeln!(out, "{word}: {} times, first at {}", paths.len(), paths[0]);
    }
    let summary = serde_json::json!({
        "request_id": request["request_id"],
        "items": items.len(),
        "total": grand,
        "top_skus": items.iter().take(5).map(|i| i.sku.clone()).collect::<Vec<_>>(),
        "tags": tags.iter().map(|(t, n)| serde_json::json!({ "tag": t, "count": n })).collect::<Vec<_>>(),
        "distinct_words": index.len(),
        "shipping": request["shipping"],
    });
    out.push_str(&serde_json::to_string_pretty(&summary).expect("serializable"));
    out
}

// === the child side ===

/// Child options.
pub struct Options {
    pub runs: u32,
    pub warmup: u32,
    /// dhat only: `one-profiler` runs every iteration inside one long-lived profiler.
    pub one_profiler: bool,
}

pub fn parse_args(me: &str) -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut o = Options {
        runs: 100,
        warmup: 3,
        one_profiler: false,
    };
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .unwrap_or_else(|| die(me, &format!("{} needs a value", args[i])))
        };
        match args[i].as_str() {
            "--runs" => {
                o.runs = value(i)
                    .parse()
                    .unwrap_or_else(|_| die(me, "--runs: integer"));
                i += 1;
            }
            "--warmup" => {
                o.warmup = value(i)
                    .parse()
                    .unwrap_or_else(|_| die(me, "--warmup: integer"));
                i += 1;
            }
            "--variant" => {
                o.one_profiler = match value(i).as_str() {
                    "per-run" => false,
                    "one-profiler" => true,
                    v => die(me, &format!("--variant: per-run or one-profiler, not {v}")),
                };
                i += 1;
            }
            // `cargo bench` passes `--bench`.
            _ => {}
        }
        i += 1;
    }
    if args.is_empty() {
        // `cargo test --benches`: a smoke pass.
        o.runs = 2;
        o.warmup = 1;
    }
    o.runs = o.runs.max(1);
    o
}

pub fn die(me: &str, msg: &str) -> ! {
    eprintln!("{me}: {msg}");
    std::process::exit(2)
}

/// What one tracked run measured.
pub struct Tracked {
    /// Around the whole tracked run (tracker set-up, closure, check, tear-down).
    pub total_ns: u64,
    /// Inside the tracked closure, around the work only.
    pub closure_ns: u64,
    /// Allocations the tracker counted.
    pub allocs: u64,
}

/// The work as the tracked closure runs it: timed from inside, result dropped inside.
#[inline(never)]
pub fn timed_work(closure_ns: &mut u64) {
    let t = Instant::now();
    let out = handle_request(black_box(body()));
    drop(black_box(out));
    *closure_ns = t.elapsed().as_nanos() as u64;
}

/// The untracked baseline: the same work, nothing around it.
#[inline(never)]
pub fn untracked_run() -> u64 {
    let t = Instant::now();
    let out = handle_request(black_box(body()));
    drop(black_box(out));
    t.elapsed().as_nanos() as u64
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// The measuring loop described in the module docs; `tracked_run` does one tracked run (and
/// panics if it leaked). Without `baseline` (everything runs inside a tracker, as in dhat's
/// one-profiler variant) the untracked runs are skipped and printed as 0.
pub fn child_main(o: &Options, baseline: bool, mut tracked_run: impl FnMut() -> Tracked) {
    black_box(body().len());
    black_box(untracked_run());
    let first = tracked_run();
    println!("first_run {} {}", first.total_ns, first.closure_ns);
    let (mut lo, mut hi) = (first.allocs, first.allocs);
    for _ in 0..o.warmup {
        tracked_run();
    }
    let mut totals = Vec::with_capacity(o.runs as usize);
    for _ in 0..o.runs {
        let cpu = cpu_ns();
        let t = tracked_run();
        let cpu = cpu_ns() - cpu;
        let u = if baseline { untracked_run() } else { 0 };
        println!("run {} {} {} {}", t.total_ns, t.closure_ns, u, cpu);
        lo = lo.min(t.allocs);
        hi = hi.max(t.allocs);
        totals.push(t.total_ns);
    }
    println!("allocs_per_run {lo} {hi}");
    println!("body_bytes {}", body().len());
    println!("ns_per_run {}", median(&mut totals));
}
