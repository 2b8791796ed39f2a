//! The HTML report without a browser: a real report of a known leak, and hand-built reports at
//! the size limit and with hostile text. Checks that the page is self-contained, small, carries
//! its figures in a JSON block that parses back, and that report text cannot break out of that
//! block. (`bin/html-check.sh` opens a page in headless Chromium.)
//!
//! With `HEAPTIDE_TEST_HTML_OUT=<path>` the real report's page is also written there, to try the
//! browser check on it; with `HEAPTIDE_TEST_HTML_LABELS_OUT=<path>`, the page of a real report
//! with labelled memory (`component=cache`, `component=parser`, `tenant=acme`), for the check
//! of the page's label filter (`HTML_CHECK_FILTER` in `bin/html-check.sh`).

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use heaptide::Report;
use heaptide::report::{
    Frame, LabelUsage, Labels, Leak, Pattern, Recommendation, Severity, Site, SizeBin,
    SnapshotPoint,
};
use serde_json::{Value, json};

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(4096).seed(11);

/// What the leaking function keeps.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The leak: 16 KiB more kept every round.
#[inline(never)]
fn html_test_remember_forever(round: usize) {
    let mut kept = KEPT.lock().unwrap();
    for i in 0..8 {
        kept.push(black_box(vec![(round + i) as u8; 2048]));
    }
}

/// Short-lived churn, for the flame graph's allocated bytes and the lifetimes.
#[inline(never)]
fn html_test_churn(round: usize) -> usize {
    let mut n = 0;
    for i in 0..64 {
        let v = black_box(vec![(round ^ i) as u8; 64 + i * 16]);
        n += v.len();
    }
    n
}

/// What the labelled functions keep.
static CACHED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Keeps `n` blocks of 4 KiB (under whatever labels the caller set).
#[inline(never)]
fn html_test_cache_fill(n: usize) {
    let mut kept = CACHED.lock().unwrap();
    for i in 0..n {
        kept.push(black_box(vec![i as u8; 4096]));
    }
}

/// Keeps `n` blocks of 4 KiB and churns through short-lived ones.
#[inline(never)]
fn html_test_parse(n: usize) -> usize {
    let mut kept = CACHED.lock().unwrap();
    let mut churned = 0;
    for i in 0..n {
        kept.push(black_box(vec![i as u8; 4096]));
        churned += black_box(vec![i as u8; 8192]).len();
    }
    churned
}

const JSON_OPEN: &str = r#"<script type="application/json" id="heaptide-data">"#;
/// The only `http://` the page may hold: the SVG namespace name its script creates elements
/// in (an identifier, never fetched).
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

fn html(report: &Report) -> String {
    let mut out = Vec::new();
    report.write_html(&mut out).unwrap();
    String::from_utf8(out).expect("the page is UTF-8")
}

/// The JSON block's text, as it sits in the page.
fn data_block(page: &str) -> &str {
    let start = page.find(JSON_OPEN).expect("the page has the JSON block") + JSON_OPEN.len();
    let len = page[start..]
        .find("</script>")
        .expect("the JSON block ends");
    &page[start..start + len]
}

/// The JSON block parsed (JSON decodes the `\u003c` escapes back to `<`).
fn data(page: &str) -> Value {
    let block = data_block(page);
    assert!(
        !block.contains('<'),
        "every `<` in the data is escaped: {}",
        &block[..block.len().min(200)]
    );
    serde_json::from_str(block).expect("the JSON block parses")
}

/// A frame's function name from the data block's frame table.
fn frame_name(v: &Value, id: &Value) -> String {
    v["frames"][id.as_u64().unwrap() as usize][0]
        .as_str()
        .unwrap()
        .to_string()
}

/// The page with its data block taken out: the static parts, which must load nothing.
fn static_parts(page: &str) -> String {
    page.replacen(data_block(page), "", 1)
}

fn assert_self_contained(page: &str) {
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..40]);
    assert!(page.trim_end().ends_with("</html>"));
    let fixed = static_parts(page);
    assert!(
        fixed
            .contains(r#"<meta http-equiv="Content-Security-Policy" content="default-src 'none';"#),
        "the page forbids every request"
    );
    let without_ns = fixed.replace(SVG_NAMESPACE, "");
    for banned in [
        "http://",
        "https://",
        "//cdn",
        "<link",
        "<iframe",
        "<img",
        "<object",
        "<embed",
        " src=",
        "@import",
        "url(",
        "fetch(",
        "XMLHttpRequest",
        "import(",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
    ] {
        assert!(!without_ns.contains(banned), "the page contains {banned:?}");
    }
    // Style and script are inline: three script elements (error counter, data, the page's
    // script) and one style element, all closed; report text adds none (the data block has no
    // `<` at all).
    assert!(!data_block(page).contains('<'));
    assert_eq!(page.matches("<script").count(), 3);
    assert_eq!(page.matches("</script>").count(), 3);
    assert_eq!(page.matches("<style>").count(), 1);
    assert!(!page.contains("<!--"), "no comment can open");
}

/// A report with a known leak and a few snapshots, from this process.
fn leaking_report() -> Report {
    let start = Instant::now();
    let mut churned = 0;
    for round in 0..24 {
        let due = start + Duration::from_millis(6) * round as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        html_test_remember_forever(round);
        churned += html_test_churn(round);
        heaptide::snapshot_now();
    }
    black_box(churned);
    heaptide::report()
}

#[test]
fn real_report_page_is_self_contained_and_carries_the_figures() {
    let report = leaking_report();
    assert!(
        report
            .sites_mentioning("html_test_remember_forever")
            .any(|s| s.live_bytes > 0),
        "the leaking function holds live bytes"
    );
    assert!(report.snapshots.points.len() >= 2);
    assert!(!report.command_line.is_empty());

    let page = html(&report);
    assert_self_contained(&page);
    assert!(page.len() < 300 * 1024, "{} bytes", page.len());

    let v = data(&page);
    assert_eq!(v["format"], 1);
    assert_eq!(v["report"]["pid"], std::process::id());
    assert_eq!(v["report"]["version"], heaptide::report::REPORT_VERSION);
    assert_eq!(
        v["report"]["command_line"],
        serde_json::to_value(&report.command_line).unwrap()
    );
    assert_eq!(
        v["report"]["totals"],
        serde_json::to_value(report.totals).unwrap()
    );
    assert_eq!(
        v["snapshots"]["t"].as_array().unwrap().len(),
        report.snapshots.points.len()
    );
    assert_eq!(
        v["snapshots"]["rss"][0],
        report.snapshots.points[0].rss_bytes
    );
    // Every site, with its stack through the frame table, innermost first.
    let sites = v["sites"].as_array().unwrap();
    assert_eq!(sites.len(), report.sites.len());
    for (page_site, site) in sites.iter().zip(&report.sites) {
        assert_eq!(page_site["live_bytes"], site.live_bytes);
        assert_eq!(page_site["alloc_count"], site.alloc_count);
        let names: Vec<String> = page_site["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| frame_name(&v, id))
            .collect();
        let expected: Vec<&str> = site.frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, expected);
        let blamed = page_site["blamed"].as_u64().unwrap() as usize;
        assert_eq!(
            site.blamed_frame().map(|f| f.function.as_str()),
            expected.get(blamed).copied()
        );
    }
    assert!(
        v["frames"].as_array().unwrap().iter().any(|f| f[0]
            .as_str()
            .unwrap()
            .ends_with("html_test_remember_forever")),
        "the leaking function is in the frame table"
    );
    assert_eq!(
        v["leaks_total"].as_u64().unwrap() as usize,
        report.leaks.len()
    );

    if let Some(path) = std::env::var_os("HEAPTIDE_TEST_HTML_OUT") {
        std::fs::write(&path, &page).unwrap();
        eprintln!("wrote {} ({} bytes)", path.to_string_lossy(), page.len());
    }
}

/// A report of this process with memory under three label sets and some without labels. At
/// one sample per 4 KiB on average, each labelled function's 256 KiB or more is sampled (the
/// chance that one is not is below e^-60).
fn labelled_report() -> Report {
    heaptide::label("component", "cache", || html_test_cache_fill(64));
    heaptide::label("tenant", "acme", || {
        heaptide::label("component", "cache", || html_test_cache_fill(96))
    });
    black_box(heaptide::label("component", "parser", || {
        html_test_parse(64)
    }));
    html_test_cache_fill(64);
    heaptide::report()
}

fn pairs(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn labelled_report_page_carries_the_labels() {
    let report = labelled_report();
    let cache = pairs(&[("component", "cache")]);
    let acme_cache = pairs(&[("component", "cache"), ("tenant", "acme")]);
    let parser = pairs(&[("component", "parser")]);
    for set in [&cache, &acme_cache, &parser] {
        assert!(
            report
                .labels
                .iter()
                .any(|u| &u.labels == set && u.live_bytes > 0),
            "memory under {set:?} in {:?}",
            report.labels
        );
        assert!(
            report
                .sites_mentioning("html_test_")
                .any(|s| &s.labels == set),
            "a site labelled {set:?}"
        );
    }

    let page = html(&report);
    assert_self_contained(&page);
    let v = data(&page);
    assert_eq!(v["format"], 1);
    assert_eq!(v["labels"], serde_json::to_value(&report.labels).unwrap());
    let sites = v["sites"].as_array().unwrap();
    assert_eq!(sites.len(), report.sites.len());
    for (page_site, site) in sites.iter().zip(&report.sites) {
        assert_eq!(page_site["id"], site.id);
        let labels: Labels = serde_json::from_value(page_site["labels"].clone()).unwrap();
        assert_eq!(labels, site.labels);
    }
    assert!(
        sites.iter().any(|s| s["labels"] == json!({})),
        "unlabelled sites carry an empty object"
    );

    if let Some(path) = std::env::var_os("HEAPTIDE_TEST_HTML_LABELS_OUT") {
        std::fs::write(&path, &page).unwrap();
    }
}

/// A tiny deterministic generator (splitmix64), for the large report.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// The report's types are `#[non_exhaustive]`: outside heaptide they are read, deserialized, or
// made with `Default` and filled in field by field, never built with a struct literal.

/// A frame, as a JSON report holds it.
fn frame(function: String, file: &str, line: u32) -> Frame {
    serde_json::from_value(json!({ "function": function, "file": file, "line": line })).unwrap()
}

/// The largest report heaptide makes: 200 sites with 32-frame stacks of long generic names
/// (allocator plumbing, 400 application functions, a shared runtime), 500 snapshots, 60 leaks
/// with whole histories, 100 alerts.
fn large_report() -> Report {
    let mut rng = Rng(42);
    let rustc = "/rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library";
    let plumbing: Vec<Frame> = (0..24)
        .map(|i| {
            frame(
                format!("<alloc::raw_vec::RawVecInner<A>>::try_allocate_in::<{i}>"),
                &format!("{rustc}/alloc/src/raw_vec/mod.rs"),
                400 + i,
            )
        })
        .collect();
    let app: Vec<Frame> = (0..400)
        .map(|i| {
            frame(
                format!(
                    "my_service::handlers::module_{}::<impl my_service::Handler<alloc::vec::Vec<u8>>>::handle_{i}",
                    i % 40
                ),
                &format!("/home/builder/src/my_service/src/handlers/module_{}.rs", i % 40),
                10 + i * 3,
            )
        })
        .collect();
    let runtime: Vec<Frame> = (0..8)
        .map(|i| {
            frame(
                format!("tokio::runtime::scheduler::multi_thread::worker::Context::run_{i}"),
                "/home/builder/.cargo/registry/src/index.crates.io-6f17d22bba15001f/tokio-1.40.0/src/runtime/scheduler/multi_thread/worker.rs",
                500 + i,
            )
        })
        .collect();
    let stack = |rng: &mut Rng| -> Vec<Frame> {
        let mut frames = Vec::with_capacity(32);
        for _ in 0..6 {
            frames.push(plumbing[rng.below(plumbing.len() as u64) as usize].clone());
        }
        for _ in 0..18 {
            frames.push(app[rng.below(app.len() as u64) as usize].clone());
        }
        frames.extend(runtime.iter().cloned());
        frames
    };
    let mut report = heaptide::report();
    report.sites = (0..200u64)
        .map(|id| {
            let mut site = Site::default();
            site.id = id;
            site.frames = stack(&mut rng);
            site.alloc_bytes = rng.below(1 << 36);
            site.alloc_count = rng.below(1 << 26);
            site.live_bytes = rng.below(8 << 20);
            site.live_count = rng.below(1 << 16);
            site.samples = rng.below(10_000);
            site.lifetime_ns = report.lifetime_ns;
            site.size_histogram = (0..20)
                .map(|b| {
                    let mut bin = SizeBin::default();
                    bin.min_bytes = 1 << b;
                    bin.max_bytes = (2 << b) - 1;
                    bin.alloc_count = rng.below(1 << 30);
                    bin
                })
                .collect();
            site.pattern = Some(Pattern::SteadyGrowth);
            site.first_seen_ms = report.timestamp - 5_000_000;
            site.last_seen_ms = report.timestamp - 1_000;
            site
        })
        .collect();
    report.sites_seen = 5_000;
    let sum = |f: fn(&Site) -> u64| report.sites.iter().map(f).sum::<u64>();
    let totals = [
        sum(|s| s.alloc_bytes) + (1 << 40),
        sum(|s| s.alloc_count) + (1 << 30),
        sum(|s| s.live_bytes) + (64 << 20),
        sum(|s| s.live_count) + (1 << 20),
    ];
    report.totals.alloc_bytes = totals[0];
    report.totals.alloc_count = totals[1];
    report.totals.live_bytes = totals[2];
    report.totals.live_count = totals[3];
    // 500 snapshots 10 s apart, the last one just before the report.
    let t0 = report.timestamp - 500 * 10_000;
    let live = report.totals.live_bytes;
    report.snapshots.points = (0..500u64)
        .map(|i| {
            let mut point = SnapshotPoint::default();
            point.timestamp_ms = t0 + i * 10_000;
            point.rss_bytes = (1 << 30) + i * 1_000_003 + rng.below(1 << 20);
            point.heap_allocated_bytes = (900 << 20) + i * 999_983;
            point.heap_resident_bytes = (950 << 20) + i * 1_000_033;
            point.live_bytes = live / 2 + i * (live / 1000);
            point
        })
        .collect();
    // The report's own measurement, just after the last snapshot.
    let last = *report.snapshots.points.last().unwrap();
    report.memory.rss_bytes = last.rss_bytes + (1 << 20);
    report.memory.jemalloc.allocated = last.heap_allocated_bytes + (1 << 20);
    report.memory.jemalloc.resident = last.heap_resident_bytes + (1 << 20);
    report.leaks = (0..60u64)
        .map(|i| {
            let history: Vec<(u64, u64)> = (0..500u64)
                .map(|j| (t0 + j * 10_000, j * 1_000_000 + rng.below(1 << 16)))
                .collect();
            serde_json::from_value::<Leak>(json!({
                "site_id": i,
                "frames": report.sites[i as usize].frames,
                "blamed": report.sites[i as usize].blamed,
                "live_bytes": 1u64 << 28,
                "live_samples": 1234,
                "growth_bytes_per_hour": 1e9 / (i + 1) as f64,
                "pattern": Pattern::SteadyGrowth,
                "severity": Severity::High,
                "confidence": 0.8,
                "reason": "live bytes rose 15.6 MiB over 392 ms in 16 snapshots (+139.8 GiB/h, r²=0.87, 9 of 15 steps up, 0 down, 31 samples); the last third's mean is +11.5 MiB (+74%) from the first's, 4.8 standard errors; still rising in the last third",
                "age_ns": report.lifetime_ns,
                "history": history,
            }))
            .unwrap()
        })
        .collect();
    report.recommendations = (0..10)
        .map(|i| {
            serde_json::from_value::<Recommendation>(json!({
                "kind": "reuse_buffer",
                "site_id": i,
                "message": "my_service::handlers::module_1::handle_7 (/home/builder/src/my_service/src/handlers/module_1.rs:31) made 18% of all allocations (244534), and half of them lived under 95 ns: reuse a buffer instead of allocating each time",
            }))
            .unwrap()
        })
        .collect();
    report
}

#[test]
fn the_largest_report_stays_a_few_hundred_kb() {
    let report = large_report();
    let mut json = Vec::new();
    report.write_json(&mut json).unwrap();
    let page = html(&report);
    if let Some(path) = std::env::var_os("HEAPTIDE_TEST_HTML_LARGE_OUT") {
        std::fs::write(&path, &page).unwrap();
    }
    eprintln!(
        "large report: HTML {} bytes (JSON dump {} bytes)",
        page.len(),
        json.len()
    );
    assert!(
        page.len() < 400 * 1024,
        "the page of the largest report is {} bytes",
        page.len()
    );
    assert_self_contained(&page);
    let v = data(&page);
    assert_eq!(v["sites"].as_array().unwrap().len(), 200);
    assert_eq!(v["leaks_total"], 60);
    let leaks = v["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 50, "the page lists the first 50 leaks");
    assert_eq!(leaks[0]["history"].as_array().unwrap().len(), 500);
    assert!(leaks[10]["history"].as_array().unwrap().len() <= 48);
    assert_eq!(
        leaks[0]["history"][499][0], 4_990_000,
        "ms after the first snapshot"
    );
    assert_eq!(v["snapshots"]["t"].as_array().unwrap().len(), 500);
    assert_eq!(v["snapshots"]["t"][499], 4_990_000);
}

#[test]
fn report_text_cannot_break_out_of_the_page() {
    let hostile = "</script><script>alert(1)</script>";
    let mut report = heaptide::report();
    let mut site = Site::default();
    site.id = 7;
    site.frames = vec![
        frame(hostile.to_string(), "<!--evil.rs", 1),
        serde_json::from_value(
            json!({ "function": "app::main</SCRIPT >", "file": null, "line": null }),
        )
        .unwrap(),
    ];
    site.alloc_bytes = 100;
    site.alloc_count = 1;
    site.live_bytes = 100;
    site.live_count = 1;
    site.samples = 1;
    site.labels = pairs(&[("<!--key", hostile), ("component", "<!-- x -->")]);
    let mut usage = LabelUsage::default();
    usage.labels = site.labels.clone();
    usage.live_bytes = 100;
    report.labels = vec![usage];
    report.sites = vec![site];
    report.command_line = vec!["prog".to_string(), hostile.to_string()];
    report.health.reasons = vec![format!("<img src=x onerror=alert(2)> {hostile}")];
    report.recommendations = vec![
        serde_json::from_value(json!({
            "kind": "<b>bold</b>",
            "site_id": null,
            "message": "<!-- comment",
        }))
        .unwrap(),
    ];

    let page = html(&report);
    assert_self_contained(&page);
    assert!(!page.contains(hostile));
    assert!(!page.to_ascii_lowercase().contains("</script >"));
    let v = data(&page);
    assert_eq!(frame_name(&v, &v["sites"][0]["stack"][0]), hostile);
    assert_eq!(
        frame_name(&v, &v["sites"][0]["stack"][1]),
        "app::main</SCRIPT >"
    );
    assert_eq!(v["files"][0], "<!--evil.rs");
    assert_eq!(v["report"]["command_line"][1], hostile);
    assert_eq!(v["report"]["recommendations"][0]["kind"], "<b>bold</b>");
    assert_eq!(v["sites"][0]["labels"]["<!--key"], hostile);
    assert_eq!(v["sites"][0]["labels"]["component"], "<!-- x -->");
    assert_eq!(v["labels"][0]["labels"]["<!--key"], hostile);
}
