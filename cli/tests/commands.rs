//! The `heaptide` command run as a user runs it, on what a real program wrote: dumps of a
//! child process in exact mode that leaks a known number of bytes at a known function
//! ([`cli_known_leak`]), and the HTTP server of such a child.
//!
//! The children are this test binary run again with [`CHILD`] set (its test `child`
//! dispatches on it). `go tool pprof` (Debian package `golang-go`) reads the converted
//! profile, and `script` (package `bsdutils`) gives the command a terminal; each test that
//! needs one prints a notice and passes if it is not installed.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Profiling off in the tests themselves; the children turn exact mode on with
/// `HEAPTIDE_SAMPLE=1` (an environment variable overrides the handle's setting).
#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(0);

/// Names the child case to run.
const CHILD: &str = "HEAPTIDE_CLI_TEST_CHILD";

/// Bytes of each block the known function leaks.
const BLOCK: usize = 4096;
/// Blocks it leaks each time it is called.
const BLOCKS: usize = 64;
/// Bytes it leaks each time: 256 KiB.
const LEAKED: u64 = (BLOCK * BLOCKS) as u64;

/// The token of the server child.
const TOKEN: &str = "cli-test-token";

/// The function the reports must blame: leaks [`BLOCKS`] blocks of [`BLOCK`] bytes.
#[inline(never)]
fn cli_known_leak() {
    for _ in 0..BLOCKS {
        std::mem::forget(black_box(vec![0x5au8; BLOCK]));
    }
}

// === the children ===

/// Runs the child case [`CHILD`] names; does nothing in a normal test run.
#[test]
fn child() {
    match std::env::var(CHILD).as_deref() {
        Ok("dumps") => dumps_child(),
        Ok("server") => server_child(),
        _ => {}
    }
}

// The children call the known function from one line only: a call site is its whole stack,
// so calls from two lines would make two sites.

/// Leaks, dumps, leaks, dumps: two JSON dumps in `HEAPTIDE_DIR`, 256 KiB apart.
fn dumps_child() {
    for _ in 0..2 {
        cli_known_leak();
        heaptide::dump().expect("a dump");
    }
}

/// Leaks, serves on a free loopback port and says where (`ADDR=<addr>`); then, for each line
/// `leak` on stdin, leaks again, takes a snapshot (so the server's next answer is a new
/// report) and says `LEAKED`; returns when stdin closes.
fn server_child() {
    let mut out = std::io::stdout().lock();
    let mut lines = std::io::stdin().lock().lines();
    let mut serving = false;
    loop {
        cli_known_leak();
        if serving {
            heaptide::snapshot_now();
            writeln!(out, "LEAKED").unwrap();
        } else {
            let addr = heaptide::serve("127.0.0.1:0").expect("serve on loopback");
            writeln!(out, "ADDR={addr}").unwrap();
            serving = true;
        }
        out.flush().unwrap();
        loop {
            match lines.next() {
                None => return,
                Some(Ok(line)) if line.trim() == "leak" => break,
                Some(Err(e)) => panic!("stdin: {e}"),
                Some(Ok(_)) => {}
            }
        }
    }
}

/// This test binary, running only its test `child` as the case `case`.
fn child_command(case: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env("HEAPTIDE_SAMPLE", "1")
        .env("HEAPTIDE_SIGNAL", "none")
        .env_remove("HEAPTIDE_DUMP_AT_EXIT")
        .env_remove("HEAPTIDE_HTTP")
        .env_remove("HEAPTIDE_HTTP_TOKEN");
    command
}

// === helpers ===

/// A directory of its own, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "heaptide-cli-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` in the directory; its path.
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The two dumps of [`dumps_child`] (JSON), made once per test run.
fn dumps() -> &'static (Vec<u8>, Vec<u8>) {
    static DUMPS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    DUMPS.get_or_init(|| {
        let dir = TempDir::new("dumps");
        let out = child_command("dumps")
            .env("HEAPTIDE_DIR", dir.path())
            .env("HEAPTIDE_FORMATS", "json")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the dumps child failed: {}",
            said(&out)
        );
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert_eq!(files.len(), 2, "{files:?}: {}", said(&out));
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name(&files[0]).ends_with("-1.json") && name(&files[1]).ends_with("-2.json"));
        (
            std::fs::read(&files[0]).unwrap(),
            std::fs::read(&files[1]).unwrap(),
        )
    })
}

/// The `heaptide` command, with no heaptide variable from the test's environment.
fn heaptide() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_heaptide"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HEAPTIDE_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null());
    command
}

/// Runs `heaptide args`: its output.
fn run(args: &[&str]) -> Output {
    heaptide().args(args).output().unwrap()
}

/// What a process printed, both streams.
fn said(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `heaptide args`, which must succeed without a word on stderr: its stdout.
fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "heaptide {args:?}: {}",
        said(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `heaptide args`, which must fail with exit code 1 and one line on stderr: the line.
fn failure_of(args: &[&str]) -> String {
    let out = run(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "heaptide {args:?}: {}",
        said(&out)
    );
    assert!(out.stdout.is_empty(), "heaptide {args:?}: {}", said(&out));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "heaptide {args:?}: {stderr}");
    assert!(stderr.starts_with("heaptide: "), "{stderr}");
    stderr.trim_end().to_string()
}

/// The rows of the text table under the line `title` (up to the next blank line), without
/// the column headings and callers.
fn table_rows<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| *l != title)
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| !l.trim_start().starts_with("<-"))
        .collect()
}

/// `path` as a string argument.
fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

// === show, diff, convert ===

#[test]
fn show_puts_the_leak_first() {
    let dir = TempDir::new("show");
    let new = dir.file("new.json", &dumps().1);
    let text = stdout_of(&["show", arg(&new)]);
    assert!(text.starts_with("heaptide report: pid "), "{text}");
    assert!(text.contains("exact: every allocation recorded"), "{text}");
    let live = table_rows(&text, "Top sites by live bytes:");
    assert!(live.len() > 1, "{text}");
    assert!(
        live[0].contains("commands::cli_known_leak")
            && live[0].contains(" 512 KiB ")
            && live[0].contains(" 128  "),
        "the first site by live bytes is not the leak (512 KiB in 128 blocks):\n{text}"
    );

    let top1 = stdout_of(&["show", arg(&new), "--top", "1"]);
    assert_eq!(table_rows(&top1, "Top sites by live bytes:"), live[..1]);
    assert_eq!(
        table_rows(&top1, "Top sites by allocated bytes:").len(),
        1,
        "{top1}"
    );
}

#[test]
fn diff_shows_the_known_growth() {
    let dir = TempDir::new("diff");
    let (base, new) = dumps();
    let base = dir.file("base.json", base);
    let new = dir.file("new.json", new);

    let text = stdout_of(&["diff", arg(&base), arg(&new)]);
    assert!(text.starts_with("heaptide diff: pid "), "{text}");
    assert!(text.contains("after the base (exact)"), "{text}");
    let grown = text
        .lines()
        .skip_while(|l| !l.starts_with("Grown sites ("))
        .nth(1)
        .unwrap_or_else(|| panic!("no grown sites:\n{text}"));
    assert!(
        grown.contains("+256 KiB live (256 KiB -> 512 KiB)")
            && grown.contains("commands::cli_known_leak"),
        "the first grown site is not the leak, +256 KiB:\n{text}"
    );

    let json = stdout_of(&["diff", arg(&base), arg(&new), "--json"]);
    let diff: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(diff["same_process"], true);
    assert_eq!(diff["exact"], true);
    // Sites are ordered by the size of their change in live bytes: the leak comes first.
    let first = &diff["sites"][0];
    assert!(
        first["frames"][0]["function"]
            .as_str()
            .unwrap()
            .ends_with("cli_known_leak"),
        "{first:#}"
    );
    assert_eq!(first["kind"], "grown");
    assert_eq!(first["live_bytes"]["base"], LEAKED);
    assert_eq!(first["live_bytes"]["now"], 2 * LEAKED);
    assert_eq!(first["live_count"]["base"], BLOCKS);
    assert_eq!(first["live_count"]["now"], 2 * BLOCKS);
    assert_eq!(first["alloc_bytes"]["now"], 2 * LEAKED);
}

#[test]
fn convert_writes_every_format() {
    let dir = TempDir::new("convert");
    let new = dir.file("new.json", &dumps().1);
    let input: heaptide::Report = serde_json::from_slice(&dumps().1).unwrap();
    let convert = |to: &str| {
        let out = dir.path().join(format!("out.{to}"));
        stdout_of(&["convert", arg(&new), "--to", to, "-o", arg(&out)]);
        std::fs::read(out).unwrap()
    };

    let json: heaptide::Report = serde_json::from_slice(&convert("json")).unwrap();
    assert_eq!(json, input);

    let text = String::from_utf8(convert("text")).unwrap();
    assert_eq!(text, stdout_of(&["show", arg(&new)]));

    let folded = String::from_utf8(convert("folded")).unwrap();
    let leak = folded
        .lines()
        .find(|l| l.contains("commands::cli_known_leak"))
        .unwrap_or_else(|| panic!("no stack of the leak:\n{folded}"));
    assert!(leak.ends_with(&format!(" {}", 2 * LEAKED)), "{leak}");
    assert_eq!(
        stdout_of(&["convert", arg(&new), "--to", "folded", "-o", "-"]),
        folded
    );

    let html = String::from_utf8(convert("html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{}", &html[..100]);
    assert!(html.contains("cli_known_leak"));

    let pprof = convert("pprof");
    assert_eq!(pprof[..2], [0x1f, 0x8b], "not gzipped");
}

#[test]
fn go_tool_pprof_blames_the_leak() {
    let Some(go) = which("go") else {
        eprintln!(
            "NOTICE: go is not installed (apt-get install golang-go); skipping go_tool_pprof_blames_the_leak"
        );
        return;
    };
    let dir = TempDir::new("pprof");
    let new = dir.file("new.json", &dumps().1);
    let profile = dir.path().join("heap.pb.gz");
    stdout_of(&["convert", arg(&new), "--to", "pprof", "-o", arg(&profile)]);
    let out = Command::new(go)
        .args(["tool", "pprof", "-top", "-sample_index=inuse_space"])
        .arg(&profile)
        .env("PPROF_TMPDIR", dir.path())
        .env("HOME", dir.path())
        .env("GOCACHE", dir.path().join("gocache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "go tool pprof: {}", said(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The first row after the `flat  flat%` heading holds the most live bytes.
    let first = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat  flat%"))
        .nth(1)
        .unwrap_or("");
    assert!(
        first.contains("commands::cli_known_leak"),
        "go tool pprof -top does not put the leak first:\n{stdout}"
    );
}

// === failures ===

#[test]
fn failures_name_the_file() {
    let dir = TempDir::new("failures");
    let missing = dir.path().join("missing.json");
    let line = failure_of(&["show", arg(&missing)]);
    assert!(
        line.contains(arg(&missing)) && line.contains("No such file"),
        "{line}"
    );

    let directory = failure_of(&["show", arg(dir.path())]);
    assert!(
        directory.contains("cannot read") && directory.contains(arg(dir.path())),
        "{directory}"
    );

    let cut = dir.file("cut.json", &dumps().1[..1000]);
    let line = failure_of(&["convert", arg(&cut), "--to", "pprof", "-o", "-"]);
    assert!(line.contains("cut.json: not valid JSON: EOF"), "{line}");

    let other = dir.file("other.json", br#"{"name": "not a report"}"#);
    let line = failure_of(&["show", arg(&other)]);
    assert!(
        line.contains("other.json: not a heaptide report: missing field"),
        "{line}"
    );

    let mut report: Value = serde_json::from_slice(&dumps().1).unwrap();
    let current = report["version"].as_u64().unwrap();
    report["version"] = (current + 1).into();
    let newer = dir.file("newer.json", &serde_json::to_vec(&report).unwrap());
    let line = failure_of(&["diff", arg(&newer), arg(&newer)]);
    assert!(
        line.contains(&format!(
            "newer.json: a heaptide report of schema version {}, newer than the version {current}",
            current + 1
        )),
        "{line}"
    );
    report["version"] = (current - 1).into();
    let older = dir.file("older.json", &serde_json::to_vec(&report).unwrap());
    let good = dir.file("new.json", &dumps().1);
    let line = failure_of(&["diff", arg(&good), arg(&older)]);
    assert!(
        line.contains(&format!(
            "older.json: a heaptide report of schema version {}, older than",
            current - 1
        )),
        "{line}"
    );

    let nowhere = dir.path().join("no-such-dir").join("out.html");
    let line = failure_of(&["convert", arg(&good), "--to", "html", "-o", arg(&nowhere)]);
    assert!(
        line.contains("cannot write") && line.contains(arg(&nowhere)),
        "{line}"
    );

    // A usage error is clap's (exit code 2), never a panic.
    let out = run(&["convert", arg(&good), "--to", "svg", "-o", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", said(&out));
}

#[test]
fn closed_output_ends_quietly() {
    let dir = TempDir::new("pipe");
    let new = dir.file("new.json", &dumps().1);
    let mut child = heaptide()
        .args(["convert", arg(&new), "--to", "json", "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reader goes away after one byte.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        said(&out)
    );
}

// === progress ===

/// A report of more than 4 MiB: the new dump with 40,000 snapshots.
fn large_report() -> Vec<u8> {
    let mut report: Value = serde_json::from_slice(&dumps().1).unwrap();
    let points: Vec<Value> = (0..40_000u64)
        .map(|i| {
            serde_json::json!({
                "timestamp_ms": 1_700_000_000_000u64 + i * 10_000,
                "rss_bytes": 100_000_000u64 + i,
                "heap_allocated_bytes": 50_000_000u64 + i,
                "heap_resident_bytes": 60_000_000u64 + i,
                "live_bytes": 40_000_000u64 + i,
            })
        })
        .collect();
    report["snapshots"]["points"] = Value::Array(points);
    let bytes = serde_json::to_vec_pretty(&report).unwrap();
    assert!(bytes.len() > 5 << 20, "{} bytes", bytes.len());
    bytes
}

#[test]
fn progress_only_on_a_terminal() {
    let dir = TempDir::new("progress");
    let large = dir.file("large.json", &large_report());
    let out = dir.path().join("out.json");

    // Not a terminal: not a word on stderr.
    stdout_of(&["convert", arg(&large), "--to", "json", "-o", arg(&out)]);

    // A terminal (`script` runs the command on a pseudo-terminal and copies what it shows).
    let Some(script) = which("script") else {
        eprintln!(
            "NOTICE: script is not installed (apt-get install bsdutils); skipping the terminal half of progress_only_on_a_terminal"
        );
        return;
    };
    let command = format!(
        "'{}' convert '{}' --to html -o '{}'",
        env!("CARGO_BIN_EXE_heaptide"),
        arg(&large),
        arg(&dir.path().join("out.html"))
    );
    let shown = Command::new(script)
        .args(["-qec", &command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(shown.status.success(), "{}", said(&shown));
    let screen = String::from_utf8_lossy(&shown.stdout);
    assert!(
        screen.contains("heaptide: parsing large.json (") && screen.contains(" of JSON)"),
        "no progress on the terminal: {screen:?}"
    );
    // Each line is drawn over the previous one and erased at the end.
    assert!(screen.ends_with("\r\x1b[K"), "{screen:?}");
    assert!(
        std::fs::metadata(dir.path().join("out.html"))
            .unwrap()
            .len()
            > 0
    );
}

// === top ===

/// A server child (see [`server_child`]), killed when dropped.
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    addr: String,
}

impl Server {
    fn start() -> Self {
        let mut child = child_command("server")
            .env("HEAPTIDE_HTTP_TOKEN", TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // libtest may have put `test child ... ` in front of the line.
        let addr = read_until(&mut stdout, |l| {
            l.split_once("ADDR=").map(|(_, addr)| addr.to_string())
        });
        Self {
            child,
            stdin,
            stdout,
            addr,
        }
    }

    /// Makes the server leak once more, and waits until it has.
    fn leak(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "leak").unwrap();
        stdin.flush().unwrap();
        read_until(&mut self.stdout, |l| l.ends_with("LEAKED").then_some(()));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines until `found` returns something for one; panics at the end of the stream.
fn read_until<T>(reader: &mut impl BufRead, mut found: impl FnMut(&str) -> Option<T>) -> T {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "the stream ended: {seen}"
        );
        if let Some(t) = found(line.trim_end()) {
            return t;
        }
        seen.push_str(&line);
    }
}

/// The frames `top` prints on a pipe: each starts with its `heaptide top` line.
struct Frames {
    reader: BufReader<ChildStdout>,
    /// The first line of the next frame, once read.
    next: String,
}

impl Frames {
    fn next(&mut self) -> String {
        let mut frame = std::mem::take(&mut self.next);
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "top stopped: {frame}"
            );
            if line.starts_with("heaptide top  ") && !frame.is_empty() {
                self.next = line;
                return frame;
            }
            frame.push_str(&line);
        }
    }
}

/// The first site row of a `top` frame.
fn first_site_row(frame: &str) -> &str {
    frame
        .lines()
        .skip_while(|l| !l.trim_end().ends_with(" change  site"))
        .nth(1)
        .unwrap_or_else(|| panic!("no site rows:\n{frame}"))
}

#[test]
fn top_shows_a_running_program() {
    let mut server = Server::start();
    let url = format!("http://{}", server.addr);
    let pid = server.child.id();

    // Without the token the server refuses: one line that says what to do.
    // No time limit on an answer: a busy machine may take long to build the first report.
    let line = failure_of(&["top", &url, "--once", "--timeout", "24h"]);
    assert!(
        line.contains("401") && line.contains("--token or HEAPTIDE_HTTP_TOKEN"),
        "{line}"
    );

    let frame = stdout_of(&["top", &url, "--once", "--timeout", "24h", "--token", TOKEN]);
    assert!(
        frame.starts_with(&format!("heaptide top  {url}  pid {pid}  ")),
        "{frame}"
    );
    assert!(frame.contains("\nhealth     ok\n"), "{frame}");
    assert!(
        frame.contains("exact: every allocation recorded"),
        "{frame}"
    );
    let row = first_site_row(&frame);
    assert!(
        row.contains("commands::cli_known_leak") && row.trim_start().starts_with("256 KiB"),
        "the first site is not the leak (256 KiB):\n{frame}"
    );

    // The token from the environment; one frame per poll on a pipe, each site's change since
    // the previous report.
    let mut top = heaptide()
        .args([
            "top",
            server.addr.as_str(),
            "--interval",
            "100ms",
            "--timeout",
            "24h",
        ])
        .env("HEAPTIDE_HTTP_TOKEN", TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut frames = Frames {
        reader: BufReader::new(top.stdout.take().unwrap()),
        next: String::new(),
    };
    let first = frames.next();
    assert!(first.contains("change from the next report on"), "{first}");
    server.leak();
    // The next report shows the growth (the snapshot the server took makes its next answer a
    // new report). A bound on frames, not on time, turns a view that never shows it into a
    // failure: a busy machine may take long between polls.
    let grown = (0..6000)
        .map(|_| frames.next())
        .find(|frame| frame.contains("change over the") && frame.contains("+256 KiB"))
        .expect("no frame shows the growth");
    let row = first_site_row(&grown);
    let columns: Vec<&str> = row.split_whitespace().collect();
    assert!(
        columns.len() > 6
            && columns[..6] == ["512", "KiB", "+256", "KiB", "128", "+64"]
            && columns[6].ends_with("cli_known_leak"),
        "the leak's row does not show 512 KiB, +256 KiB, 128 blocks, +64:\n{grown}"
    );
    let _ = top.kill();
    let out = top.wait_with_output().unwrap();
    assert!(out.stderr.is_empty(), "{}", said(&out));
}

#[test]
fn top_says_when_nothing_answers() {
    // A port nothing listens on: bound, then closed.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let line = failure_of(&["top", &addr.to_string(), "--once"]);
    assert!(
        line.contains(&format!("http://{addr}/memory/")) && line.contains("cannot connect"),
        "{line}"
    );
    let line = failure_of(&["top", "https://127.0.0.1:1", "--once"]);
    assert!(line.contains("https is not supported"), "{line}");
}

/// The path of `program` on `PATH`, if it is there.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}
