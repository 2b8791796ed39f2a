//! The fleet files of `deploy/` against a real Prometheus (feature `http`): the alert rules of
//! `deploy/prometheus/heaptide-rules.yml` and the queries of
//! `deploy/grafana/heaptide-dashboard.json`.
//!
//! A child process (this test binary re-run, test `child`) serves `/metrics` with
//! `heaptide::serve`, takes a snapshot every 250 ms (`HEAPTIDE_INTERVAL`), has a 1 GiB
//! `HEAPTIDE_LIMIT`, and leaks 1 MiB a second from one call site, labelled `component=leaky`,
//! until its stdin closes.
//! Prometheus scrapes it every second and evaluates a copy of the rules every second, the copy's
//! `for:` durations cut to 2 s (the shipped rules wait minutes). The tests poll the Prometheus
//! API until what they wait for is there, under a generous deadline; they never time anything.
//!
//! - `leak_and_limit_alerts_fire`: the rules load and evaluate without error; every series
//!   their expressions select exists on a real heaptide with the labels they name;
//!   `HeaptideLeakSuspected` and `HeaptideMemoryLimitProjected` fire for the child, with its
//!   address and the limit in their descriptions; `HeaptideSamplesDropped` and
//!   `HeaptideHealthCritical` do not (the dropped-samples rate is there, and 0).
//! - `dashboard_queries_return_data`: every PromQL expression of the dashboard (its variables
//!   set to the child's job and instance) is accepted by Prometheus and returns data, and so do
//!   the variables' own queries.
//! - `dashboard_is_well_formed` (no Prometheus): the JSON parses, has a Prometheus datasource
//!   variable that every query uses, and unique panel ids.
//!
//! The two Prometheus tests share one child and one Prometheus. They need the Debian package
//! `prometheus`; without it each prints a notice and passes (bin/http-check.sh installs it).

#![cfg(feature = "http")]

#[path = "common/net.rs"]
mod net;
use net::{encode, free_port, which};

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One sample per 16 KiB on average: the child's 16 KiB leaked blocks give the leak detector
/// about 40 samples a second.
#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(16 * 1024);

/// Set in the child's environment.
const CHILD: &str = "HEAPTIDE_TEST_ALERT_RULES_CHILD";
/// The job Prometheus scrapes the child as.
const JOB: &str = "leaky";
/// How long the tests wait for Prometheus at most (generous: a loaded machine, a debug build).
const DEADLINE: Duration = Duration::from_secs(300);

const RULES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/prometheus/heaptide-rules.yml"
);
const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/grafana/heaptide-dashboard.json"
);

/// The alerts of the shipped rules.
const ALERTS: [&str; 4] = [
    "HeaptideLeakSuspected",
    "HeaptideMemoryLimitProjected",
    "HeaptideSamplesDropped",
    "HeaptideHealthCritical",
];

// === the child: a program that leaks ===

/// The leaking call site.
#[inline(never)]
fn leak_block() -> Vec<u8> {
    black_box(vec![0x5a; 16 * 1024])
}

/// In the child: serves `/metrics`, prints `serving=<addr>`, and leaks 1 MiB per second of
/// run time (catching up after a stall, so the rate does not depend on the machine's load)
/// until its stdin closes, 512 MiB at most (half the limit the parent sets).
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
    let addr = heaptide::serve("127.0.0.1:0").expect("serve on loopback");
    println!("serving={addr}");
    const RATE: u128 = 1 << 20;
    let mut leaked: Vec<Vec<u8>> = Vec::with_capacity(1 << 15);
    let started = Instant::now();
    while !STOP.load(Ordering::Relaxed) {
        let due = started.elapsed().as_millis() * RATE / 1000;
        while (leaked.len() as u128) * (16 * 1024) < due && leaked.len() < leaked.capacity() {
            leaked.push(heaptide::label("component", "leaky", leak_block));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "heaptide-alert-rules-{}-{}",
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

/// `GET path` over HTTP/1.0 (a body that ends with the connection, never chunked): the body,
/// or `None` if the server could not be reached or did not answer.
fn http_get(addr: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).ok()?;
    let start = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some(bytes[start..].to_vec())
}

/// The shipped rules with every `for:` cut to 2 s.
fn rules_for_test() -> String {
    let shipped = std::fs::read_to_string(RULES).expect("deploy/prometheus/heaptide-rules.yml");
    let mut cut = 0;
    let text: String = shipped
        .lines()
        .map(|line| {
            let body = line.trim_start();
            if body.starts_with("for:") {
                cut += 1;
                format!("{}for: 2s\n", &line[..line.len() - body.len()])
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    assert_eq!(cut, ALERTS.len(), "a `for:` per alert in {RULES}");
    text
}

// === the shared child and Prometheus ===

/// The leaking child and a Prometheus that scrapes it and evaluates the rules. Fields drop in
/// order: Prometheus is stopped, then the child, then the directory removed.
struct Fleet {
    prometheus: Mutex<KillOnDrop>,
    program: Mutex<KillOnDrop>,
    dir: TempDir,
    /// Where the child serves heaptide's endpoints (the `instance` label).
    target: SocketAddr,
    /// Prometheus's API.
    web: SocketAddr,
}

impl Fleet {
    /// The fleet the tests share, started by the first that asks; `None` (after a notice) if
    /// Prometheus is not installed.
    fn get() -> Option<Arc<Fleet>> {
        static SHARED: Mutex<Weak<Fleet>> = Mutex::new(Weak::new());
        let prometheus = match which("prometheus") {
            Some(p) => p,
            None => {
                eprintln!(
                    "NOTICE: prometheus is not installed (apt-get install prometheus); skipping"
                );
                return None;
            }
        };
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fleet) = shared.upgrade() {
            return Some(fleet);
        }
        let fleet = Arc::new(Fleet::start(&prometheus));
        *shared = Arc::downgrade(&fleet);
        Some(fleet)
    }

    fn start(prometheus: &Path) -> Fleet {
        let dir = TempDir::new();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("HEAPTIDE_") {
                cmd.env_remove(k);
            }
        }
        let child_log = std::fs::File::create(dir.path().join("child.log")).unwrap();
        let mut program = cmd
            .env(CHILD, "1")
            .env("HEAPTIDE_INTERVAL", "250ms")
            .env("HEAPTIDE_LIMIT", "1GiB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(child_log)
            .spawn()
            .unwrap();
        let stdout = program.stdout.take().unwrap();
        let program = KillOnDrop(program);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest's "test child ... " may come first on the line.
                if let Some((_, addr)) = line.split_once("serving=") {
                    let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let target = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "the child never said where it serves; its stderr:\n{}",
                    std::fs::read_to_string(dir.path().join("child.log")).unwrap_or_default()
                )
            });

        let rules = dir.path().join("rules.yml");
        std::fs::write(&rules, rules_for_test()).unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - '{}'\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: ['{target}']\n",
                rules.display()
            ),
        )
        .unwrap();
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
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
        Fleet {
            prometheus: Mutex::new(KillOnDrop(child)),
            program: Mutex::new(program),
            dir,
            target,
            web,
        }
    }

    /// Panics with the logs if Prometheus or the child has exited.
    fn check_alive(&self) {
        for (name, proc, log) in [
            ("prometheus", &self.prometheus, "prometheus.log"),
            ("the leaking child", &self.program, "child.log"),
        ] {
            let mut proc = proc.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(status) = proc.0.try_wait().unwrap() {
                panic!("{name} exited ({status}):\n{}", self.log(log));
            }
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default()
    }

    /// `GET path` on Prometheus's API: the JSON answer, or `None` while it does not answer.
    fn api(&self, path: &str) -> Option<Value> {
        let body = http_get(self.web, path)?;
        serde_json::from_slice(&body).ok()
    }

    /// An instant query: the result vector, or Prometheus's error. `None` while Prometheus
    /// does not answer.
    fn query(&self, expr: &str) -> Option<Result<Vec<Value>, String>> {
        let v = self.api(&format!("/api/v1/query?query={}", encode(expr)))?;
        Some(if v["status"] == "success" {
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        })
    }

    /// Polls `check` (every 250 ms) until it gives a value; at the deadline, panics with
    /// `waiting_for` and the logs.
    fn wait_for<T>(&self, waiting_for: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + DEADLINE;
        loop {
            self.check_alive();
            if let Some(v) = check() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited {DEADLINE:?} for {waiting_for}\n--- /metrics of the child:\n{}\n\
                     --- prometheus log:\n{}\n--- child's stderr:\n{}",
                    http_get(self.target, "/metrics")
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default(),
                    self.log("prometheus.log"),
                    self.log("child.log")
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The selector of the child's series.
    fn selector(&self) -> String {
        format!("job=\"{JOB}\", instance=\"{}\"", self.target)
    }
}

/// Every series selector (`heaptide_name` or `heaptide_name{...}`) in `expr`.
fn selectors(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("heaptide_") {
        let tail = &rest[at..];
        let name_len = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let mut len = name_len;
        if tail[name_len..].starts_with('{') {
            len += tail[name_len..].find('}').expect("a closed label matcher") + 1;
        }
        out.push(tail[..len].to_string());
        rest = &tail[len..];
    }
    out
}

// === the tests ===

#[test]
fn leak_and_limit_alerts_fire() {
    let Some(fleet) = Fleet::get() else { return };

    // The rules are loaded, and each has been evaluated without error.
    let rules: Vec<Value> = fleet.wait_for("the rules to be evaluated", || {
        let v = fleet.api("/api/v1/rules")?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated =
            rules.len() == ALERTS.len() && rules.iter().all(|r| r["health"] != "unknown");
        evaluated.then_some(rules)
    });
    let mut names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    names.sort_unstable();
    let mut expected = ALERTS.to_vec();
    expected.sort_unstable();
    assert_eq!(names, expected, "{rules:#?}");
    for r in &rules {
        assert_eq!(r["health"], "ok", "rule evaluation failed: {r:#}");
    }

    // Every series a rule selects is exposed by heaptide, with the labels the rule names.
    let sel = fleet.selector();
    for r in &rules {
        let expr = r["query"].as_str().unwrap();
        for s in selectors(expr) {
            let scoped = match s.strip_suffix('}') {
                Some(open) => format!("{open}, {sel}}}"),
                None => format!("{s}{{{sel}}}"),
            };
            fleet.wait_for(
                &format!("data for {scoped} (rule {})", r["name"]),
                || match fleet.query(&scoped)? {
                    Ok(result) => (!result.is_empty()).then_some(()),
                    Err(e) => panic!("{scoped}: {e}"),
                },
            );
        }
    }

    // The leak and the limit alerts fire for the child.
    let firing = |alerts: &[Value], name: &str| -> Option<Value> {
        alerts
            .iter()
            .find(|a| {
                a["labels"]["alertname"] == name
                    && a["labels"]["instance"] == fleet.target.to_string()
                    && a["state"] == "firing"
            })
            .cloned()
    };
    let (leak, limit, alerts) = fleet.wait_for(
        "HeaptideLeakSuspected and HeaptideMemoryLimitProjected to fire",
        || {
            let v = fleet.api("/api/v1/alerts")?;
            let alerts = v["data"]["alerts"].as_array()?.clone();
            let leak = firing(&alerts, "HeaptideLeakSuspected")?;
            let limit = firing(&alerts, "HeaptideMemoryLimitProjected")?;
            Some((leak, limit, alerts))
        },
    );
    let instance = fleet.target.to_string();
    assert_eq!(leak["labels"]["job"], JOB, "{leak:#}");
    assert_eq!(leak["labels"]["severity"], "warning", "{leak:#}");
    let description = leak["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains(&format!("http://{instance}/memory/leaks"))
            && description.contains(&format!("http://{instance}/debug/pprof/heap")),
        "{leak:#}"
    );
    let summary = limit["annotations"]["summary"].as_str().unwrap();
    assert!(summary.contains(&instance), "{limit:#}");
    let description = limit["annotations"]["description"].as_str().unwrap();
    assert!(
        description.contains("HEAPTIDE_LIMIT (1GiB)"),
        "the limit, queried from heaptide_rss_threshold_bytes: {limit:#}"
    );

    // Not the others: no sample was dropped (the rate is there, and 0), and RSS is far below
    // the limit.
    for quiet in ["HeaptideSamplesDropped", "HeaptideHealthCritical"] {
        let found: Vec<&Value> = alerts
            .iter()
            .filter(|a| a["labels"]["alertname"] == quiet)
            .collect();
        assert!(found.is_empty(), "{quiet} is active: {found:#?}");
    }
    let dropped = fleet
        .query(&format!(
            "sum by (job, instance) (rate(heaptide_samples_dropped_total{{{sel}}}[5m]))"
        ))
        .expect("Prometheus answers")
        .expect("a valid query");
    assert_eq!(dropped.len(), 1, "{dropped:#?}");
    assert_eq!(dropped[0]["value"][1], "0", "{dropped:#?}");
}

/// Every PromQL expression of a dashboard's panels (rows' nested panels included), with its
/// panel's title.
fn dashboard_exprs(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push((
                    p["title"].as_str().unwrap_or_default().to_string(),
                    t["expr"].as_str().unwrap_or_default().to_string(),
                ));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn load_dashboard() -> Value {
    let text = std::fs::read_to_string(DASHBOARD).expect("deploy/grafana/heaptide-dashboard.json");
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

#[test]
fn dashboard_is_well_formed() {
    let d = load_dashboard();
    let vars = d["templating"]["list"]
        .as_array()
        .expect("template variables");
    let ds = vars
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(ds["query"], "prometheus", "{ds:#}");
    let ds_ref = format!("${{{}}}", ds["name"].as_str().unwrap());
    for v in vars.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"]["uid"], ds_ref.as_str(), "{v:#}");
    }
    let mut ids = Vec::new();
    fn walk(panels: &Value, ds_ref: &str, ids: &mut Vec<u64>) {
        for p in panels.as_array().into_iter().flatten() {
            ids.push(p["id"].as_u64().expect("a panel id"));
            let grid = &p["gridPos"];
            let (x, w) = (grid["x"].as_u64().unwrap(), grid["w"].as_u64().unwrap());
            assert!(x + w <= 24, "panel {} is wider than the grid", p["title"]);
            if p["type"] != "row" {
                assert_eq!(p["datasource"]["uid"], ds_ref, "panel {}", p["title"]);
                let targets = p["targets"].as_array().expect("targets");
                assert!(!targets.is_empty(), "panel {}", p["title"]);
                for t in targets {
                    assert_eq!(t["datasource"]["uid"], ds_ref, "panel {}", p["title"]);
                    assert!(
                        t["expr"].as_str().is_some_and(|e| e.contains("heaptide_")),
                        "panel {}: {t:#}",
                        p["title"]
                    );
                }
            }
            walk(&p["panels"], ds_ref, ids);
        }
    }
    walk(&d["panels"], &ds_ref, &mut ids);
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "panel ids repeat");
    assert!(!dashboard_exprs(&d).is_empty());
}

/// The dashboard's variables and Grafana's own variable set for a query against Prometheus:
/// `$job` and `$instance` as the child's, `$__rate_interval` as 30 s (scrapes every second).
fn substitute(expr: &str, fleet: &Fleet) -> String {
    expr.replace("$__rate_interval", "30s")
        .replace("${job}", JOB)
        .replace("$job", JOB)
        .replace("${instance}", &fleet.target.to_string())
        .replace("$instance", &fleet.target.to_string())
}

#[test]
fn dashboard_queries_return_data() {
    let d = load_dashboard();
    let Some(fleet) = Fleet::get() else { return };
    let mut queries = dashboard_exprs(&d);
    // The variables' queries: `label_values(selector, label)` is Grafana's; the PromQL that
    // asks the same is `count by (label) (selector)`.
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().expect("a variable query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .unwrap_or_else(|| panic!("not label_values(selector, label): {q}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        queries.push((
            format!("variable {}", v["name"]),
            format!("count by ({}) ({selector})", label.trim()),
        ));
    }
    for (panel, expr) in &queries {
        let expr = substitute(expr, &fleet);
        fleet.wait_for(
            &format!("data for {expr} (panel {panel})"),
            || match fleet.query(&expr)? {
                Ok(result) => (!result.is_empty()).then_some(()),
                Err(e) => panic!("panel {panel}: Prometheus refuses {expr}: {e}"),
            },
        );
    }
}
