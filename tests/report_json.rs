//! The JSON report, read the way an outside tool reads it (by path, from text), holds the
//! documented fields (docs/report-schema.md) with values that match a known workload. Exact
//! mode, so the workload's figures are known to the byte.

use std::hint::black_box;

use serde_json::Value;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[inline(never)]
fn keep_pages() -> Vec<Box<[u8; 4096]>> {
    (0..100)
        .map(|i| black_box(Box::new([i as u8; 4096])))
        .collect()
}

/// The text test's own copy of [`keep_pages`]: the two tests run in parallel in one exact-mode
/// process, and with the iterator plumbing between it and its caller, the 32 frames kept
/// can end before the callers differ, making both tests' pages one site. A report reads a listed site's histograms a
/// moment after its figures (so allocation is never stalled while it symbolizes), and the
/// other test's pages dying in between gave the kept pages lifetimes.
#[inline(never)]
fn keep_text_pages() -> Vec<Box<[u8; 4096]>> {
    (0..100)
        .map(|i| black_box(Box::new([i as u8 ^ 0x5a; 4096])))
        .collect()
}

#[inline(never)]
fn churn_small() {
    for i in 0..1000 {
        let b = black_box(Box::new([i as u8; 100]));
        std::thread::sleep(std::time::Duration::from_nanos(if i % 100 == 0 {
            1
        } else {
            0
        }));
        drop(b);
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut cur = v;
    for key in path.split('.') {
        cur = &cur[key];
    }
    assert!(!cur.is_null(), "missing {path}");
    cur
}

fn u(v: &Value, path: &str) -> u64 {
    at(v, path)
        .as_u64()
        .unwrap_or_else(|| panic!("{path} is not an unsigned integer"))
}

#[test]
fn json_has_the_documented_paths_and_true_values() {
    let kept = keep_pages();
    churn_small();
    let report = heaptide::report();
    let mut out = Vec::new();
    report.write_json(&mut out).unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();

    assert_eq!(u(&v, "version"), heaptide::report::REPORT_VERSION as u64);
    assert_eq!(u(&v, "pid"), std::process::id() as u64);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let ts = u(&v, "timestamp");
    assert!(ts <= now_ms && now_ms - ts < 60_000, "{ts} vs {now_ms}");
    assert_eq!(u(&v, "sample_interval"), 1);

    // Memory: measured by the kernel and jemalloc; the kept pages are in there.
    let kept_bytes = 100 * 4096;
    assert!(u(&v, "memory.rss_bytes") > kept_bytes);
    assert!(u(&v, "memory.virtual_bytes") >= u(&v, "memory.rss_bytes"));
    for key in ["allocated", "active", "metadata", "resident", "mapped"] {
        assert!(u(&v, &format!("memory.jemalloc.{key}")) > 0, "{key}");
    }
    let _ = u(&v, "memory.jemalloc.retained");
    assert!(u(&v, "memory.jemalloc.allocated") >= kept_bytes);
    assert!(u(&v, "memory.jemalloc.active") >= u(&v, "memory.jemalloc.allocated"));
    let frag = at(&v, "memory.fragmentation_ratio").as_f64().unwrap();
    assert!(frag >= 1.0, "{frag}");

    // Totals include at least the workload (exact mode counts every allocation).
    assert!(u(&v, "totals.alloc_count") >= 1100);
    assert!(u(&v, "totals.alloc_bytes") >= kept_bytes + 100_000);
    assert!(u(&v, "totals.live_count") >= 100);
    assert!(u(&v, "totals.live_bytes") >= kept_bytes);

    // Size buckets: the five of docs/design.md (section 5), in order, and the workload in the
    // right ones.
    let buckets = at(&v, "size_buckets").as_array().unwrap();
    let names: Vec<&str> = buckets
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tiny", "small", "medium", "large", "huge"]);
    let bounds: Vec<(u64, Option<u64>)> = buckets
        .iter()
        .map(|b| (b["min_bytes"].as_u64().unwrap(), b["max_bytes"].as_u64()))
        .collect();
    assert_eq!(
        bounds,
        [
            (0, Some(63)),
            (64, Some(1023)),
            (1024, Some(65535)),
            (65536, Some(1048575)),
            (1048576, None)
        ]
    );
    for b in buckets {
        for key in ["alloc_count", "alloc_bytes", "live_bytes"] {
            assert!(b[key].is_u64(), "{key}");
        }
    }
    assert!(buckets[2]["live_bytes"].as_u64().unwrap() >= kept_bytes);
    assert!(buckets[1]["alloc_count"].as_u64().unwrap() >= 1000);
    let live_sum: u64 = buckets
        .iter()
        .map(|b| b["live_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(live_sum, u(&v, "totals.live_bytes"));

    // Sites: the two known ones, exact.
    let sites = at(&v, "sites").as_array().unwrap();
    let named = |name: &str| {
        sites
            .iter()
            .filter(|s| {
                s["frames"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["function"].as_str().unwrap().contains(name))
            })
            .collect::<Vec<_>>()
    };
    let pages = named("keep_pages");
    let page_site = pages
        .iter()
        .find(|s| s["live_bytes"].as_u64() == Some(kept_bytes))
        .unwrap_or_else(|| panic!("no keep_pages site with {kept_bytes} live: {pages:?}"));
    assert_eq!(page_site["live_count"].as_u64(), Some(100));
    assert_eq!(page_site["alloc_count"].as_u64(), Some(100));
    assert_eq!(page_site["alloc_bytes"].as_u64(), Some(kept_bytes));
    assert!(page_site["id"].is_u64());
    let frame = &page_site["frames"][0];
    assert!(frame["function"].is_string());
    assert!(frame.get("file").is_some() && frame.get("line").is_some());

    let churn = named("churn_small");
    let churn_site = churn
        .iter()
        .find(|s| s["alloc_count"].as_u64() == Some(1000))
        .unwrap_or_else(|| panic!("no churn_small site with 1000 allocations: {churn:?}"));
    assert_eq!(churn_site["live_bytes"].as_u64(), Some(0));
    assert_eq!(churn_site["alloc_bytes"].as_u64(), Some(100_000));
    let life = &churn_site["lifetime_ns"];
    let (p50, p90, p99, max) = (
        life["p50"].as_u64().unwrap(),
        life["p90"].as_u64().unwrap(),
        life["p99"].as_u64().unwrap(),
        life["max"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p90 && p90 <= p99 && p99 <= max, "{life}");
    // Every 100th block lived across a sleep (at least the 1 ns asked, in practice >= 50 us).
    assert!(max >= 1_000, "{life}");
    assert_eq!(life["count"].as_u64(), Some(1000));
    // The kept pages never died: no lifetimes.
    assert!(page_site["lifetime_ns"].is_null());

    // Profiler figures.
    assert!(u(&v, "profiler.samples") >= 1100);
    assert_eq!(u(&v, "profiler.dropped"), 0);
    assert!(u(&v, "profiler.overhead_bytes") > 0);
    assert!(
        at(&v, "rate.since_start.alloc_bytes_per_sec")
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The leak detector's sections are there (no leak: the history is a snapshot or two).
    assert!(at(&v, "leaks").as_array().unwrap().is_empty());
    assert_eq!(at(&v, "health.status"), "ok");
    assert!(at(&v, "alerts").is_array());
    assert!(v.get("trend").is_some_and(|t| t.get("heap").is_some()));
    assert!(at(&v, "snapshots.points").is_array());

    // The peak: at least the kept pages were live at it, and its sites say what is live now.
    assert!(u(&v, "peak.live_bytes") >= kept_bytes);
    assert!(u(&v, "peak.live_bytes") <= u(&v, "totals.alloc_bytes"));
    let _ = u(&v, "peak.step_bytes");
    let _ = u(&v, "peak.timestamp_ms");
    assert!(at(&v, "peak.seconds_since_start").as_f64().unwrap() >= 0.0);
    let peak_sites = at(&v, "peak.sites").as_array().unwrap();
    assert!(!peak_sites.is_empty());
    for s in peak_sites {
        assert!(s["live_bytes_at_peak"].as_u64().unwrap() > 0, "{s}");
        assert!(s["frames"].is_array() && s.get("blamed").is_some(), "{s}");
        assert!(
            s.get("live_bytes_now").is_some() && s.get("site_id").is_some(),
            "{s}"
        );
    }

    // The JSON round-trips into the Report type.
    let back: heaptide::Report = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, report);
    drop(kept);
}

#[test]
fn text_report_shows_sites_buckets_and_memory() {
    let kept = keep_text_pages();
    let report = heaptide::report();
    let mut out = Vec::new();
    report.write_text(&mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for needle in [
        "Top sites by live bytes:",
        "keep_text_pages",
        "Size buckets:",
        "medium",
        "memory:    rss",
        "resident",
        "At the peak: ",
    ] {
        assert!(text.contains(needle), "{needle} missing in:\n{text}");
    }
    drop(kept);
}
