//! The OTLP export (feature `otlp`) against the official OpenTelemetry protobuf bindings.
//!
//! A child process (this test binary re-run, test `child`, exact mode) holds 32 MiB in 1 MiB
//! blocks and keeps allocating small temporaries, with `HEAPTIDE_OTLP_ENDPOINT` pointing at a
//! port where nothing listens yet and a 200 ms `HEAPTIDE_OTLP_INTERVAL`. Once the child has said
//! on stderr that a push failed, the test starts `tests/fixtures/otlp_receiver.py` on that port:
//! a small HTTP server that parses each `POST /v1/metrics` with the `opentelemetry-proto`
//! package (`ExportMetricsServiceRequest.ParseFromString`) and writes it as JSON
//! (`json_format.MessageToJson`). The test then reads what the receiver decoded and checks:
//!
//! - the request headers: `Content-Type: application/x-protobuf` and those of
//!   `HEAPTIDE_OTLP_HEADERS` (a value percent-decoded);
//! - the resource: `service.name` from `OTEL_SERVICE_NAME`, an attribute of
//!   `OTEL_RESOURCE_ATTRIBUTES`, the child's `process.pid`, `host.name`, `telemetry.sdk.name`;
//!   the scope `heaptide`;
//! - every metric: a `heaptide.` name (each once), a unit, a description, a gauge or a sum;
//!   every sum monotonic and cumulative, with one start time (the profiler's start, before
//!   the push's time) in every push; gauges without a start time; some names with their unit
//!   and kind;
//! - `heaptide.heap.live` within [32 MiB, 32 MiB + 4 MiB] (exact mode: the held blocks plus
//!   what the test harness and std hold), RSS at least 32 MiB, and the top site (rank 1, of
//!   `heaptide.top_site.live`) the child's code holding them;
//! - `heaptide.heap.allocations` (a monotonic sum) never going down from one push to the next,
//!   and up between the first checked push and a later one;
//! - the child's stderr: one line when pushes started failing and one when they worked again,
//!   whatever the number of failed pushes in between.
//!
//! The test waits for files and lines under a generous deadline and never times anything.
//! It needs `python3` with `venv`: it makes a virtual environment with `opentelemetry-proto`
//! and `protobuf` (pip, from PyPI) under the target directory once. Without `python3` it
//! prints a notice and passes, except under CI (`CI` set), where it fails (`.ci/run` installs
//! what it needs).

#![cfg(feature = "otlp")]

#[path = "common/net.rs"]
#[allow(
    dead_code,
    reason = "the helpers of the HTTP tests; this one needs no query encoding"
)]
mod net;
use net::{free_port, which};

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Every allocation recorded: the live figure is exact.
#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

/// Set in the child's environment.
const CHILD: &str = "HEAPTIDE_TEST_OTLP_CHILD";
/// The child's held blocks.
const BLOCKS: usize = 32;
const BLOCK: usize = 1 << 20;
const LIVE: u64 = (BLOCKS * BLOCK) as u64;
/// What the child holds beyond its blocks at most: the test harness's and std's allocations.
const SLACK: u64 = 4 << 20;
/// How long the test waits for anything at most (generous: a loaded machine, a debug build).
const DEADLINE: Duration = Duration::from_secs(300);

const RECEIVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/otlp_receiver.py"
);

// === the child ===

/// In the child: holds [`BLOCKS`] blocks of 1 MiB (written, so resident), prints `ready`, and
/// allocates a 1 KiB temporary every 5 ms until its stdin closes (10 minutes at most).
#[test]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    static STOP: AtomicBool = AtomicBool::new(false);
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        STOP.store(true, Ordering::Relaxed);
    });
    let held: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8 + 1; BLOCK]).collect();
    black_box(&held);
    println!("ready");
    let started = Instant::now();
    while !STOP.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(600) {
        black_box(vec![0u8; 1024]);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(held);
}

// === helpers ===

/// A child process killed (and waited for) on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("heaptide-otlp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("received")).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` every 20 ms until it gives a value, for at most [`DEADLINE`]; panics with
/// `what` and `context()` then.
fn wait_for<T>(what: &str, context: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what} after {DEADLINE:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd`, panicking with its output if it fails.
fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `python` imports the bindings.
fn has_bindings(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args([
                "-c",
                "import google.protobuf.json_format, \
                 opentelemetry.proto.collector.metrics.v1.metrics_service_pb2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// The Python of a virtual environment with `opentelemetry-proto` and `protobuf`, made once
/// under the target directory (in a directory of its own, then renamed into place, so two
/// test runs at once do not see half of one).
fn venv_python(python3: &Path) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("otlp-venv");
    let python = venv.join("bin/python");
    if has_bindings(&python) {
        return python;
    }
    let fresh = venv.with_file_name(format!("otlp-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&fresh);
    run(
        Command::new(python3).arg("-m").arg("venv").arg(&fresh),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    );
    run(
        Command::new(fresh.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "opentelemetry-proto",
            "protobuf",
        ]),
        "pip install opentelemetry-proto protobuf",
    );
    let _ = std::fs::remove_dir_all(&venv);
    if std::fs::rename(&fresh, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&fresh);
    }
    assert!(
        has_bindings(&python),
        "{} cannot import the OpenTelemetry bindings",
        python.display()
    );
    python
}

/// The `n`-th request the receiver decoded (1-based) and its headers, once written.
fn request(received: &Path, n: usize) -> Option<(Value, Value)> {
    let body = std::fs::read(received.join(format!("request-{n}.json"))).ok()?;
    let headers = std::fs::read(received.join(format!("request-{n}.headers.json"))).ok()?;
    Some((
        serde_json::from_slice(&body).unwrap(),
        serde_json::from_slice(&headers).unwrap(),
    ))
}

/// How many requests the receiver has written.
fn requests_so_far(received: &Path) -> usize {
    (1..)
        .take_while(|n| received.join(format!("request-{n}.json")).exists())
        .count()
}

/// The one `ResourceMetrics` of a request.
fn resource_metrics(req: &Value) -> &Value {
    let rm = req["resourceMetrics"].as_array().expect("resourceMetrics");
    assert_eq!(rm.len(), 1, "{req}");
    &rm[0]
}

/// The metrics of a request.
fn metrics(req: &Value) -> &Vec<Value> {
    let sm = resource_metrics(req)["scopeMetrics"]
        .as_array()
        .expect("scopeMetrics");
    assert_eq!(sm.len(), 1);
    sm[0]["metrics"].as_array().expect("metrics")
}

/// The metric `name` of a request.
fn metric<'a>(req: &'a Value, name: &str) -> &'a Value {
    metrics(req)
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no metric {name} in the request"))
}

/// A metric's kind (`gauge` or `sum`) and its data points.
fn points(m: &Value) -> (&'static str, &Vec<Value>) {
    for kind in ["gauge", "sum"] {
        if let Some(p) = m[kind]["dataPoints"].as_array() {
            return (kind, p);
        }
    }
    panic!("{} is neither a gauge nor a sum: {m}", m["name"]);
}

/// The integer value of a metric's one point (`asInt` is an int64, a string in JSON).
fn int_value(req: &Value, name: &str) -> i64 {
    let (_, p) = points(metric(req, name));
    assert_eq!(p.len(), 1, "{name}: {p:?}");
    p[0]["asInt"]
        .as_str()
        .unwrap_or_else(|| panic!("{name} has no asInt: {}", p[0]))
        .parse()
        .unwrap()
}

/// A resource attribute's value (`{"stringValue": ...}` or `{"intValue": ...}`).
fn attribute<'a>(req: &'a Value, key: &str) -> &'a Value {
    resource_metrics(req)["resource"]["attributes"]
        .as_array()
        .expect("resource attributes")
        .iter()
        .find(|kv| kv["key"] == key)
        .map(|kv| &kv["value"])
        .unwrap_or_else(|| panic!("no resource attribute {key}"))
}

/// Checks the shape of every metric of a request and returns the start time of its sums.
fn check_metrics(req: &Value) -> u64 {
    let mut names = Vec::new();
    let mut start = None;
    for m in metrics(req) {
        let name = m["name"].as_str().expect("name");
        assert!(name.starts_with("heaptide."), "{name}");
        assert!(
            !m["unit"].as_str().unwrap_or("").is_empty(),
            "{name} has no unit"
        );
        assert!(
            !m["description"].as_str().unwrap_or("").is_empty(),
            "{name} has no description"
        );
        let (kind, p) = points(m);
        assert!(!p.is_empty(), "{name} has no data point");
        for dp in p {
            assert!(
                dp.get("asInt").is_some() != dp.get("asDouble").is_some(),
                "{name}: {dp}"
            );
            let time: u64 = dp["timeUnixNano"].as_str().unwrap().parse().unwrap();
            match kind {
                "sum" => {
                    assert_eq!(m["sum"]["isMonotonic"], true, "{name}");
                    assert_eq!(
                        m["sum"]["aggregationTemporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE",
                        "{name}"
                    );
                    let s: u64 = dp["startTimeUnixNano"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name} has no start time"))
                        .parse()
                        .unwrap();
                    assert!(s > 0 && s <= time, "{name}: start {s}, time {time}");
                    assert_eq!(*start.get_or_insert(s), s, "{name}: another start time");
                }
                _ => assert!(dp.get("startTimeUnixNano").is_none(), "{name}: {dp}"),
            }
        }
        names.push(name);
    }
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "a metric appears twice");
    for (name, unit, kind) in [
        ("heaptide.heap.live", "By", "gauge"),
        ("heaptide.heap.live_objects", "{object}", "gauge"),
        ("heaptide.heap.allocated", "By", "sum"),
        ("heaptide.heap.allocations", "{allocation}", "sum"),
        ("heaptide.heap.size_class.live", "By", "gauge"),
        ("heaptide.memory.resident", "By", "gauge"),
        ("heaptide.jemalloc.allocated", "By", "gauge"),
        ("heaptide.jemalloc.fragmentation", "1", "gauge"),
        ("heaptide.samples.taken", "{sample}", "sum"),
        ("heaptide.samples.dropped", "{sample}", "sum"),
        ("heaptide.leak.candidates", "{call_site}", "gauge"),
        ("heaptide.health.status", "1", "gauge"),
        ("heaptide.profiler.overhead", "By", "gauge"),
        ("heaptide.gather.duration", "s", "gauge"),
    ] {
        let m = metric(req, name);
        assert_eq!(m["unit"], unit, "{name}");
        assert_eq!(points(m).0, kind, "{name}");
    }
    let status = points(metric(req, "heaptide.health.status")).1;
    assert_eq!(status.len(), 3, "{status:?}");
    assert_eq!(status[0]["attributes"][0]["key"], "status");
    assert_eq!(
        metrics(req)
            .iter()
            .any(|m| m["name"] == "heaptide.http.cached_answers"),
        cfg!(feature = "http"),
        "the HTTP server's counters are there exactly when the feature is"
    );
    start.expect("no sum in the request")
}

// === the test ===

#[test]
fn pushes_what_the_opentelemetry_bindings_read() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let Some(python3) = which("python3") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 is not installed; .ci/run installs it"
        );
        eprintln!("NOTICE: python3 is not installed; skipping the OTLP export test");
        return;
    };
    let python = venv_python(&python3);
    let dir = TempDir::new();
    let received = dir.0.join("received");
    let port = free_port();

    // The child, pushing to a port where nothing listens yet.
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"]);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEAPTIDE_")
            || k.starts_with("OTEL_")
            || k.to_lowercase().ends_with("_proxy")
        {
            cmd.env_remove(k);
        }
    }
    let child_err = dir.0.join("child.err");
    let mut child = cmd
        .env(CHILD, "1")
        .env(
            "HEAPTIDE_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}/v1/metrics"),
        )
        .env("HEAPTIDE_OTLP_INTERVAL", "200ms")
        .env(
            "HEAPTIDE_OTLP_HEADERS",
            "x-test-token=s3cr3t,x-tenant=a%20b",
        )
        .env("OTEL_SERVICE_NAME", "heaptide-otlp-test")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&child_err).unwrap())
        .spawn()
        .unwrap();
    let child_pid = child.id();
    let stdout = child.stdout.take().unwrap();
    let stdin = child.stdin.take().unwrap();
    let child = KillOnDrop(child);
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("ready") {
                let _ = ready_tx.send(());
            }
        }
    });
    let child_stderr = || std::fs::read_to_string(&child_err).unwrap_or_default();
    let lines_with = |needle: &str| {
        child_stderr()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    };
    wait_for("the child's first failed push", child_stderr, || {
        (lines_with("failed") > 0).then_some(())
    });
    // Some more pushes fail meanwhile (each would print a line if failures were not
    // deduplicated); the check below holds whatever their number.
    std::thread::sleep(Duration::from_secs(1));

    // The receiver on that port.
    let receiver_err = dir.0.join("receiver.err");
    let receiver = Command::new(&python)
        .arg(RECEIVER)
        .arg(&received)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&receiver_err).unwrap())
        .spawn()
        .unwrap();
    let mut receiver = KillOnDrop(receiver);
    let context = || {
        format!(
            "child stderr:\n{}\nreceiver stderr:\n{}\nreceived: {:?}",
            child_stderr(),
            std::fs::read_to_string(&receiver_err).unwrap_or_default(),
            std::fs::read_dir(&received)
                .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
                .unwrap_or_default()
        )
    };
    wait_for("the receiver to listen", context, || {
        if let Some(status) = receiver.0.try_wait().unwrap() {
            panic!("the receiver exited ({status})\n{}", context());
        }
        received.join("ready").exists().then_some(())
    });

    // The first push measured after the child holds its blocks (the one in flight when it
    // said so may have been measured before).
    ready_rx
        .recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("the child never said ready\n{}", context()));
    let first = requests_so_far(&received) + 2;
    let (req, headers) = wait_for("a push after the child is ready", context, || {
        request(&received, first)
    });
    assert!(
        std::fs::read_dir(&received)
            .unwrap()
            .flatten()
            .all(|e| !e.file_name().to_string_lossy().starts_with("error-")),
        "the bindings could not parse a request\n{}",
        context()
    );

    // Headers.
    assert_eq!(
        headers["content-type"], "application/x-protobuf",
        "{headers}"
    );
    assert_eq!(headers["x-test-token"], "s3cr3t", "{headers}");
    assert_eq!(headers["x-tenant"], "a b", "{headers}");

    // Resource and scope.
    assert_eq!(
        attribute(&req, "service.name")["stringValue"],
        "heaptide-otlp-test"
    );
    assert_eq!(
        attribute(&req, "deployment.environment")["stringValue"],
        "test"
    );
    assert_eq!(
        attribute(&req, "process.pid")["intValue"],
        child_pid.to_string()
    );
    assert_eq!(
        attribute(&req, "telemetry.sdk.name")["stringValue"],
        "heaptide"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(attribute(&req, "host.name")["stringValue"], host.trim());
    let scope = &resource_metrics(&req)["scopeMetrics"][0]["scope"];
    assert_eq!(scope["name"], "heaptide");
    assert_eq!(scope["version"], env!("CARGO_PKG_VERSION"));

    // Metrics: shapes, and the figures.
    let start = check_metrics(&req);
    let live = int_value(&req, "heaptide.heap.live") as u64;
    assert!(
        (LIVE..=LIVE + SLACK).contains(&live),
        "heaptide.heap.live = {live}, expected {LIVE} to {} (exact mode: the child's {BLOCKS} \
         blocks of 1 MiB plus at most {SLACK} bytes of the harness's)",
        LIVE + SLACK
    );
    let rss = int_value(&req, "heaptide.memory.resident") as u64;
    assert!(rss >= LIVE, "heaptide.memory.resident = {rss} < {LIVE}");
    // The site holding the blocks comes first among the top sites, named by the child's code.
    let top = points(metric(&req, "heaptide.top_site.live")).1;
    let first_site = top
        .iter()
        .find(|p| {
            p["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["key"] == "rank" && a["value"]["stringValue"] == "1")
        })
        .unwrap_or_else(|| panic!("no top site of rank 1: {top:?}"));
    let site = first_site["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["key"] == "site")
        .map(|a| a["value"]["stringValue"].as_str().unwrap_or(""))
        .unwrap_or("");
    let site_live: u64 = first_site["asInt"].as_str().unwrap().parse().unwrap();
    assert!(
        site.contains("otlp_export") && site_live >= LIVE,
        "top site of rank 1: {first_site}"
    );

    // A later push: the counter went up, never down on the way, from the same start.
    let allocations = |r: &Value| int_value(r, "heaptide.heap.allocations");
    let base = allocations(&req);
    let mut previous = base;
    let mut n = first + 1;
    wait_for(
        "a push whose heaptide.heap.allocations is above the first's",
        context,
        || {
            let (later, _) = request(&received, n)?;
            n += 1;
            let now = allocations(&later);
            assert!(
                now >= previous,
                "heaptide.heap.allocations went down from {previous} to {now}"
            );
            previous = now;
            assert_eq!(check_metrics(&later), start, "the sums' start time moved");
            (now > base).then_some(())
        },
    );

    // Stderr: one line for the failures, one for the recovery.
    drop(stdin);
    drop(child);
    let err = child_stderr();
    let count = |f: &dyn Fn(&str) -> bool| err.lines().filter(|l| f(l)).count();
    assert_eq!(
        count(&|l| l.starts_with("heaptide: pushing OTLP metrics to")),
        1,
        "{err}"
    );
    assert_eq!(count(&|l| l.contains(" failed: ")), 1, "{err}");
    assert_eq!(count(&|l| l.ends_with(" works again")), 1, "{err}");
}
