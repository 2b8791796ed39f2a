//! The report endpoints under a flood of requests (feature `http`): `/metrics` builds no
//! report at all, and the profile and `/memory/*` endpoints build at most one report every 5 s,
//! answering from the latest one in between; answers are paced (at most 1/20 of a core). The
//! `heaptide_reports_built_total`, `heaptide_http_cached_answers_total` and
//! `heaptide_http_paced_seconds_total` counters and one stderr line show it. Whether the host
//! keeps its speed under such a flood is measured by `benches/http_flood.rs`.
//!
//! The flood runs in a child process, so its stderr can be checked.

#![cfg(feature = "http")]

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(4096);

const CHILD: &str = "HEAPTIDE_TEST_CHILD";

/// `GET path` on a new connection: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).expect("read the answer");
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let status = std::str::from_utf8(&bytes[9..12]).unwrap().parse().unwrap();
    (status, bytes[end + 4..].to_vec())
}

/// The value of an unlabelled sample in a `/metrics` answer.
fn metric(addr: SocketAddr, name: &str) -> u64 {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let prefix = format!("{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

#[inline(never)]
fn keep_some() -> Vec<Vec<u8>> {
    (0..256)
        .map(|i| black_box(vec![i as u8; 16 << 10]))
        .collect()
}

/// In the child: the requests, and the figures the parent checks.
fn child_main() {
    let addr = heaptide::serve("127.0.0.1:0").expect("serve on loopback");
    let kept = keep_some();
    let built_at_start = heaptide::report().profiler.reports_built;
    // Scrapes build no report.
    for _ in 0..30 {
        let _ = metric(addr, "heaptide_live_bytes");
    }
    println!(
        "after_metrics={}",
        metric(addr, "heaptide_reports_built_total") - built_at_start
    );
    let started = Instant::now();
    let requests = 60;
    for i in 0..requests {
        let path = ["/debug/pprof/heap", "/memory/allocations", "/memory/leaks"][i % 3];
        let (status, body) = get(addr, path);
        assert_eq!(status, 200, "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    let seconds = started.elapsed().as_secs();
    // Go on (metrics only) until requests have waited for their turn long enough for the
    // server to say so (5 s in all); bounded.
    let mut paced = 0.0;
    for _ in 0..20_000 {
        let (status, body) = get(addr, "/metrics");
        assert_eq!(status, 200);
        let text = String::from_utf8(body).unwrap();
        paced = text
            .lines()
            .find_map(|l| l.strip_prefix("heaptide_http_paced_seconds_total "))
            .unwrap()
            .parse::<f64>()
            .unwrap();
        if paced > 5.5 {
            break;
        }
    }
    println!("paced_ms={}", (paced * 1000.0) as u64);
    println!(
        "requests={requests} seconds={seconds} built={} cached={}",
        metric(addr, "heaptide_reports_built_total") - built_at_start,
        metric(addr, "heaptide_http_cached_answers_total")
    );
    drop(kept);
}

#[test]
fn child() {
    if std::env::var_os(CHILD).is_some() {
        child_main();
    }
}

#[test]
fn a_flood_builds_one_report_per_five_seconds() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("HEAPTIDE_HTTP")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    let get = |key: &str| -> u64 {
        stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {key} in {stdout}"))
            .parse()
            .unwrap()
    };
    assert_eq!(get("after_metrics"), 0, "/metrics built reports: {stdout}");
    let (requests, seconds, built, cached) =
        (get("requests"), get("seconds"), get("built"), get("cached"));
    // One report per started 5 s of the flood (the first request builds one), whatever the
    // machine's speed.
    assert!(built >= 1 && built <= 1 + seconds / 5 + 1, "{stdout}");
    assert_eq!(cached + built, requests, "{stdout}");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("heaptide:"))
        .collect();
    // Requests waited for their turn (the pace), and the server said so once.
    assert!(get("paced_ms") > 5_000, "{stdout}");
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("1/20 of a core"), "{stderr}");
}
