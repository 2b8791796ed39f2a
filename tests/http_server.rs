//! The HTTP server (feature `http`) over real sockets on loopback: every endpoint's status,
//! content type and body; 404 and 405; the limits (a slowloris client, oversized requests);
//! 1,000 requests in a row while another thread allocates; and the tools that read it:
//! `promtool check metrics`, a real Prometheus server scraping it, `go tool pprof`.
//!
//! Run with `cargo test --features http --test http_server`. The Prometheus tests need the
//! Debian package `prometheus` (`promtool`, `prometheus`) and the pprof test `go` (package
//! `golang-go`); each prints a notice and passes if its tool is not installed. The tests of
//! this file run one at a time (they measure time and memory).

#![cfg(feature = "http")]

#[path = "common/net.rs"]
mod net;
use net::{encode, free_port, which};

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One sample per 4 KiB on average: the 64 KiB blocks of the known function are all sampled
/// (probability 1 - e^-16), while the report stays cheap to build under load.
#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(4096);

// === helpers ===

/// One test at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The server all tests share (started once, on a free port).
fn server() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        let addr = heaptide::serve("127.0.0.1:0").expect("serve on loopback");
        assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
        addr
    })
}

/// Blocks the known function allocated and kept, so reports have a site to show.
static KEPT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// The allocating function the profile must name.
#[inline(never)]
fn http_known_leaf(size: usize) -> Vec<u8> {
    black_box(vec![7u8; size])
}

/// Keeps 64 blocks of 64 KiB from [`http_known_leaf`] alive (4 MiB, once per process).
fn keep_known_blocks() {
    let mut kept = KEPT.lock().unwrap();
    if kept.is_empty() {
        for _ in 0..64 {
            kept.push(http_known_leaf(64 * 1024));
        }
    }
}

/// A parsed answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// Parses a whole answer (the server closes the connection after it).
fn parse_answer(bytes: &[u8]) -> Answer {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!(
            "not a complete HTTP answer ({other:?}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        ),
    };
    let answer = Answer {
        status: response.code.unwrap(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        body: bytes[head..].to_vec(),
    };
    assert_eq!(answer.header("connection"), Some("close"));
    let length: usize = answer
        .header("content-length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    if length != answer.body.len() {
        // A HEAD answer has the length of the body it does not carry.
        assert!(
            answer.body.is_empty(),
            "Content-Length {length} but {} bytes",
            answer.body.len()
        );
    }
    answer
}

/// Sends `raw` on a new connection and reads the answer to the end.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(raw).expect("send the request");
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).expect("read the answer");
    parse_answer(&bytes)
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    exchange(
        addr,
        format!("{method} {path} HTTP/1.1\r\nHost: heaptide-test\r\nUser-Agent: test\r\n\r\n")
            .as_bytes(),
    )
}

fn get(addr: SocketAddr, path: &str) -> Answer {
    request(addr, "GET", path)
}

/// Asserts a JSON endpoint's envelope: version, pid, timestamp.
fn envelope(v: &Value) {
    assert_eq!(v["version"], heaptide::report::REPORT_VERSION);
    assert_eq!(v["pid"], std::process::id());
    assert!(v["timestamp"].as_u64().unwrap() > 1_600_000_000_000, "{v}");
}

/// The resident set size now, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "heaptide-http-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// === endpoints ===

#[test]
fn metrics_endpoint() {
    let _serial = serial();
    let addr = server();
    keep_known_blocks();
    let a = get(addr, "/metrics");
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = a.text();
    for family in [
        "# TYPE heaptide_resident_memory_bytes gauge",
        "# TYPE heaptide_jemalloc_allocated_bytes gauge",
        "# TYPE heaptide_allocated_bytes_total counter",
        "# TYPE heaptide_live_bytes gauge",
        "# TYPE heaptide_size_class_live_bytes gauge",
        "# TYPE heaptide_samples_total counter",
        "# TYPE heaptide_samples_dropped_total counter",
        "# TYPE heaptide_leak_candidates gauge",
        "# TYPE heaptide_health_status gauge",
        "# TYPE heaptide_profiler_overhead_bytes gauge",
    ] {
        assert!(text.contains(family), "no {family:?} in\n{text}");
    }
    for sample in [
        "heaptide_sample_interval_bytes 4096\n",
        "heaptide_size_class_live_bytes{size=\"large\"} ",
        "heaptide_leak_candidates{severity=\"critical\"} ",
        "heaptide_health_status{status=\"ok\"} ",
    ] {
        assert!(text.contains(sample), "no {sample:?} in\n{text}");
    }
    let value = |name: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(name) && l.as_bytes().get(name.len()) == Some(&b' '))
            .unwrap_or_else(|| panic!("no sample {name}"));
        line[name.len() + 1..].parse().unwrap()
    };
    assert!(value("heaptide_live_bytes") >= (4 << 20) as f64);
    assert!(value("heaptide_resident_memory_bytes") > 0.0);
    assert!(value("heaptide_samples_total") > 0.0);

    // HEAD: the same head, no body.
    let h = request(addr, "HEAD", "/metrics");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    assert!(
        h.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 1000
    );
}

#[test]
fn pprof_endpoint() {
    let _serial = serial();
    let addr = server();
    keep_known_blocks();
    let a = get(addr, "/debug/pprof/heap");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/octet-stream"));
    assert_eq!(&a.body[..2], &[0x1f, 0x8b], "gzip magic");
    let mut proto = Vec::new();
    flate2::read::GzDecoder::new(&a.body[..])
        .read_to_end(&mut proto)
        .expect("gunzip");
    let names = String::from_utf8_lossy(&proto);
    for needle in ["inuse_space", "alloc_objects", "http_known_leaf"] {
        assert!(names.contains(needle), "the profile lacks {needle:?}");
    }
}

#[test]
fn memory_endpoints() {
    let _serial = serial();
    let addr = server();
    keep_known_blocks();
    for _ in 0..3 {
        heaptide::snapshot_now();
        std::thread::sleep(Duration::from_millis(20));
    }

    let v = get(addr, "/memory/snapshot").json();
    envelope(&v);
    assert!(v["memory"]["rss_bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["memory"]["jemalloc"]["allocated"].as_u64().unwrap() >= 4 << 20,
        "{v}"
    );
    assert!(
        v["memory"]["fragmentation_ratio"].as_f64().unwrap() > 0.0,
        "{v}"
    );

    let v = get(addr, "/memory/allocations").json();
    envelope(&v);
    assert_eq!(v["exact"], false);
    assert_eq!(v["sample_interval"], 4096);
    assert!(
        v["totals"]["live_bytes"].as_u64().unwrap() >= 4 << 20,
        "{}",
        v["totals"]
    );
    let buckets = v["size_buckets"].as_array().unwrap();
    let names: Vec<&str> = buckets
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tiny", "small", "medium", "large", "huge"]);
    let sites = v["sites"].as_array().unwrap();
    let known = sites
        .iter()
        .find(|s| {
            s["frames"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["function"].as_str().unwrap().contains("http_known_leaf"))
        })
        .expect("a site of http_known_leaf");
    assert!(known["live_bytes"].as_u64().unwrap() >= 4 << 20, "{known}");
    assert!(v["profiler"]["samples"].as_u64().unwrap() > 0);
    assert!(v.get("memory").is_none() && v.get("leaks").is_none());

    let v = get(addr, "/memory/leaks").json();
    envelope(&v);
    assert!(
        v["leaks"].is_array() && v["recommendations"].is_array(),
        "{v}"
    );

    let v = get(addr, "/memory/health").json();
    envelope(&v);
    let status = v["health"]["status"].as_str().unwrap();
    assert!(["ok", "warning", "critical"].contains(&status), "{v}");
    assert!(
        v["health"]["reasons"].is_array() && v["alerts"].is_array(),
        "{v}"
    );

    let v = get(addr, "/memory/trend").json();
    envelope(&v);
    assert!(v["duration_seconds"].is_null());
    let all = v["snapshots"]["points"].as_array().unwrap().len();
    assert!(all >= 3, "{v}");
    assert!(v["trend"]["heap"]["growth_bytes_per_hour"].is_f64(), "{v}");
    assert!(v["trend"]["rss"]["peak_bytes"].is_f64(), "{v}");

    let v = get(addr, "/memory/trend?duration=1h").json();
    envelope(&v);
    assert_eq!(v["duration_seconds"], 3600.0);
    assert_eq!(v["snapshots"]["points"].as_array().unwrap().len(), all);
    assert!(v["trend"]["heap"]["points"].as_u64().unwrap() >= 3, "{v}");
    let v = get(addr, "/memory/trend?duration=1ms").json();
    assert!(
        v["snapshots"]["points"].as_array().unwrap().len() <= 1,
        "{v}"
    );

    let a = get(addr, "/memory/trend?duration=tomorrow");
    assert_eq!(a.status, 400);
    assert!(a.text().contains("duration"), "{}", a.text());

    let a = request(addr, "POST", "/memory/purge");
    assert_eq!(a.status, 200);
    let v = a.json();
    envelope(&v);
    let before = v["resident_bytes_before"].as_u64().unwrap();
    let after = v["resident_bytes_after"].as_u64().unwrap();
    assert!(before > 0 && after > 0, "{v}");
    assert_eq!(
        v["released_bytes"].as_u64().unwrap(),
        before.saturating_sub(after)
    );
    assert!(v["rss_bytes_before"].as_u64().unwrap() > 0, "{v}");

    let a = get(addr, "/");
    assert_eq!(a.status, 200);
    assert!(a.text().contains("/debug/pprof/heap"));
}

#[test]
fn unknown_paths_and_methods() {
    let _serial = serial();
    let addr = server();
    for path in [
        "/nope",
        "/metrics/",
        "/memory",
        "/memory/snapshot/x",
        "/debug/pprof/",
    ] {
        let a = get(addr, path);
        assert_eq!(a.status, 404, "{path}");
        assert!(a.header("content-type").unwrap().starts_with("text/plain"));
    }
    let a = get(addr, "/memory/purge");
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
    for method in ["PUT", "DELETE", "PATCH"] {
        assert_eq!(
            request(addr, method, "/memory/purge").status,
            405,
            "{method}"
        );
    }
    let a = request(addr, "POST", "/metrics");
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("GET, HEAD"));
    assert_eq!(request(addr, "DELETE", "/memory/snapshot").status, 405);
    assert_eq!(exchange(addr, b"NOT HTTP AT ALL\r\n\r\n").status, 400);
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\nbad header\r\n\r\n").status,
        400
    );
}

// === limits ===

#[test]
fn slowloris_does_not_block_others() {
    let _serial = serial();
    let addr = server();
    // More idle half-requests than there are worker threads.
    let mut idle = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
            .unwrap();
        idle.push(s);
    }
    // And one that trickles a byte every 200 ms (each byte arrives well within any idle
    // timeout; only a deadline for the whole request stops it).
    let trickle = TcpStream::connect(addr).unwrap();
    let mut trickle_writer = trickle.try_clone().unwrap();
    let trickler = std::thread::spawn(move || {
        let bytes = b"GET /metrics HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain([b'z'; 200].iter());
        for &b in bytes {
            if trickle_writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let started = Instant::now();
    for i in 0..20 {
        let a = get(
            addr,
            if i % 2 == 0 {
                "/memory/health"
            } else {
                "/metrics"
            },
        );
        assert_eq!(a.status, 200, "request {i} with slow clients connected");
    }
    // Served while the slow clients still hold their connections: none of them has had an
    // answer yet, unless their 5 s were up before the 20 requests were (a machine that slow
    // cannot tell the two apart, so the check is skipped rather than timed).
    if started.elapsed() < Duration::from_secs(4) {
        for s in &idle {
            s.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            let peek = s.peek(&mut byte);
            assert!(
                matches!(&peek, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "an idle client was answered before the requests were served: {peek:?}"
            );
            s.set_nonblocking(false).unwrap();
        }
    }

    // The idle clients are answered 408 and closed once their time is up (5 s from accept).
    idle.push(trickle.try_clone().unwrap());
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut bytes = Vec::new();
        let read = s.read_to_end(&mut bytes);
        assert!(read.is_ok(), "{read:?}");
        assert!(
            bytes.starts_with(b"HTTP/1.1 408 "),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
    // Not before their time (a busy machine can only make it later).
    let closed = started.elapsed();
    assert!(
        closed > Duration::from_secs(4),
        "idle connections closed after {closed:?}"
    );
    drop(trickle);
    trickler.join().unwrap();
}

/// Sends `total` bytes of a never-ending header on one connection (on a thread, as the server
/// stops reading), then reads what comes back: the status, or `None` if the connection was
/// reset or closed without an answer.
fn flood_header(addr: SocketAddr, total: usize) -> Option<u16> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut writer = s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(b"GET /metrics HTTP/1.1\r\nX-Huge: ");
        let chunk = vec![b'a'; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
    });
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    sender.join().unwrap();
    let text = String::from_utf8_lossy(&bytes);
    text.strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .map(|code| code.parse().unwrap())
}

#[test]
fn oversized_requests_are_refused() {
    let _serial = serial();
    let addr = server();
    // A first report loads the symbols; measure after it.
    assert_eq!(get(addr, "/metrics").status, 200);
    let rss_before = rss();
    // 16 MiB of header, three times: refused (431) or cut off, without the server keeping it.
    for _ in 0..3 {
        let status = flood_header(addr, 16 << 20);
        assert!(matches!(status, Some(431) | None), "{status:?}");
    }
    let grown = rss().saturating_sub(rss_before);
    assert!(grown < 8 << 20, "RSS grew by {grown} bytes");

    // A head just over 8 KiB: 431, answered in full.
    let mut head = b"GET /metrics HTTP/1.1\r\nX-Big: ".to_vec();
    head.resize(9000, b'b');
    head.extend_from_slice(b"\r\n\r\n");
    assert_eq!(exchange(addr, &head).status, 431);

    // Too many header fields.
    let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..40 {
        many.extend_from_slice(format!("X-Field-{i}: v\r\n").as_bytes());
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(exchange(addr, &many).status, 431);

    // A body announced too large: 413 without waiting for it.
    let a = exchange(
        addr,
        b"POST /memory/purge HTTP/1.1\r\nContent-Length: 1073741824\r\n\r\n",
    );
    // 413, not the 408 that waiting for the body would end in.
    assert_eq!(a.status, 413);

    // Chunked bodies are not taken.
    let a = exchange(
        addr,
        b"POST /memory/purge HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(a.status, 501);

    // A small body is fine.
    let a = exchange(
        addr,
        b"POST /memory/purge HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert_eq!(a.status, 200);

    // And the server still answers.
    assert_eq!(get(addr, "/memory/snapshot").status, 200);
}

#[test]
fn thousand_requests_while_allocating() {
    let _serial = serial();
    let addr = server();
    static STOP: AtomicBool = AtomicBool::new(false);
    static ROUNDS: AtomicU64 = AtomicU64::new(0);
    STOP.store(false, Ordering::Relaxed);
    let allocator = std::thread::spawn(|| {
        let mut keep: Vec<Vec<u8>> = Vec::new();
        while !STOP.load(Ordering::Relaxed) {
            for i in 0..64usize {
                let v = black_box(vec![i as u8; 100 + i * 37]);
                if i % 16 == 0 {
                    keep.push(v);
                }
            }
            if keep.len() > 4096 {
                keep.clear();
            }
            ROUNDS.fetch_add(1, Ordering::Relaxed);
            std::thread::yield_now();
        }
    });
    let paths = [
        "/metrics",
        "/memory/snapshot",
        "/memory/health",
        "/debug/pprof/heap",
    ];
    let started = Instant::now();
    let mut progress = Vec::new();
    for i in 0..1000 {
        let a = get(addr, paths[i % paths.len()]);
        assert_eq!(a.status, 200, "request {i}");
        assert!(!a.body.is_empty());
        if i % 250 == 0 {
            progress.push(ROUNDS.load(Ordering::Relaxed));
        }
    }
    let took = started.elapsed();
    progress.push(ROUNDS.load(Ordering::Relaxed));
    STOP.store(true, Ordering::Relaxed);
    allocator.join().unwrap();
    // The program kept allocating all along: progress in every quarter.
    assert!(
        progress.windows(2).all(|w| w[1] > w[0]),
        "allocation rounds at each quarter: {progress:?}"
    );
    eprintln!("1000 requests in {took:?}; allocation rounds meanwhile: {progress:?}");
    // The server's own allocations (reports, answers) are profiler overhead: never sampled as
    // the program's.
    let report = heaptide::report();
    let own: Vec<_> = report.sites_mentioning("heaptide::http").collect();
    assert!(
        own.is_empty(),
        "the server's allocations were sampled: {own:#?}"
    );
}

// === the tools ===

#[test]
fn promtool_checks_metrics() {
    let _serial = serial();
    let Some(promtool) = which("promtool") else {
        eprintln!(
            "NOTICE: promtool is not installed (apt-get install prometheus); skipping promtool_checks_metrics"
        );
        return;
    };
    let addr = server();
    keep_known_blocks();
    let body = get(addr, "/metrics").body;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics: {said}");
    assert!(said.trim().is_empty(), "promtool has remarks: {said}");
}

/// A child process killed (and waited for) on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Asks Prometheus's query API for `query`; the first result's value, if any.
fn prometheus_query(addr: SocketAddr, query: &str) -> Option<f64> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "GET /api/v1/query?query={} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        encode(query)
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).ok()?;
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let v: Value = serde_json::from_slice(&bytes[start..]).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn prometheus_scrapes_metrics() {
    let _serial = serial();
    let Some(prometheus) = which("prometheus") else {
        eprintln!(
            "NOTICE: prometheus is not installed (apt-get install prometheus); skipping prometheus_scrapes_metrics"
        );
        return;
    };
    let addr = server();
    keep_known_blocks();
    let dir = TempDir::new("prometheus");
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: heaptide\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let web: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let child = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut up, mut live) = (None, None);
    while Instant::now() < deadline {
        if let Some(status) = child.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap();
            panic!("prometheus exited ({status}):\n{log}");
        }
        up = prometheus_query(web, "up{job=\"heaptide\"}");
        live = prometheus_query(web, "heaptide_live_bytes{job=\"heaptide\"}");
        if up == Some(1.0) && live.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(child);
    let log = std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();
    assert_eq!(
        up,
        Some(1.0),
        "Prometheus never scraped heaptide; its log:\n{log}"
    );
    let live = live.expect("heaptide_live_bytes through the query API");
    assert!(live >= (4 << 20) as f64, "heaptide_live_bytes = {live}");
}

#[test]
fn go_tool_pprof_reads_heap_endpoint() {
    let _serial = serial();
    let Some(go) = which("go") else {
        eprintln!(
            "NOTICE: go is not installed (apt-get install golang-go); skipping go_tool_pprof_reads_heap_endpoint"
        );
        return;
    };
    let addr = server();
    keep_known_blocks();
    let dir = TempDir::new("pprof");
    let out = Command::new(go)
        .args(["tool", "pprof", "-top"])
        .arg(format!("http://{addr}/debug/pprof/heap"))
        .env("PPROF_TMPDIR", dir.path())
        .env("HOME", dir.path())
        .env("GOCACHE", dir.path().join("gocache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "go tool pprof failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("http_known_leaf"),
        "go tool pprof -top does not show http_known_leaf:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
}
