//! Starting the HTTP server from the environment (`HEAPTIDE_HTTP`, `HEAPTIDE_HTTP_TOKEN`) and
//! the bearer token: a non-loopback address is served only with a token, and then every
//! endpoint needs it (401 without it or with a wrong one).
//!
//! The variables are read at the process's first allocation, so each case runs in a fresh
//! process: the test binary re-runs itself (test `child`), and the parent reads the child's
//! stderr for heaptide's line (`heaptide: serving HTTP on http://<addr>/ ...`). The child runs
//! until its stdin is closed.

#![cfg(feature = "http")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

/// Set in the child's environment.
const CHILD: &str = "HEAPTIDE_TEST_HTTP_CHILD";

/// The child: runs until its stdin closes (the parent decides when).
#[test]
fn child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// A child process with its stderr lines; killed on drop.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    /// Starts the child with `env` (and no other `HEAPTIDE_*` variable).
    fn start(env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["child", "--exact", "--nocapture", "--test-threads=1"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("HEAPTIDE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env(CHILD, "1").envs(env.iter().copied());
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc { child, lines }
    }

    /// The first stderr line that starts with `heaptide:` (within 20 s).
    fn heaptide_line(&self) -> String {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .expect("a heaptide line on the child's stderr");
            if line.starts_with("heaptide:") {
                return line;
            }
        }
    }

    /// The port of `heaptide: serving HTTP on http://<addr>/ ...`.
    fn served_port(&self) -> u16 {
        let line = self.heaptide_line();
        let addr = line
            .strip_prefix("heaptide: serving HTTP on http://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("not the serving line: {line}"));
        addr.parse::<SocketAddr>().unwrap().port()
    }

    /// Closes the child's stdin and waits for it; returns its remaining stderr lines.
    fn finish(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child exited with {status}");
        self.lines.try_iter().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request with an optional `Authorization` value; returns the status and the head.
fn request(port: u16, method: &str, path: &str, authorization: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: 0\r\n\r\n");
    s.write_all(raw.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an answer: {text:?}"));
    let head = text.split("\r\n\r\n").next().unwrap().to_string();
    (status, head)
}

const TOKEN: &str = "t0ken-for-the-test.Zx9";

#[test]
fn token_required_on_non_loopback_address() {
    let p = Proc::start(&[
        ("HEAPTIDE_HTTP", "0.0.0.0:0"),
        ("HEAPTIDE_HTTP_TOKEN", TOKEN),
    ]);
    let port = p.served_port();
    let good = format!("Bearer {TOKEN}");
    let endpoints = [
        ("GET", "/metrics"),
        ("GET", "/debug/pprof/heap"),
        ("GET", "/memory/snapshot"),
        ("GET", "/memory/allocations"),
        ("GET", "/memory/leaks"),
        ("GET", "/memory/trend?duration=1h"),
        ("GET", "/memory/health"),
        ("POST", "/memory/purge"),
        ("GET", "/"),
        ("GET", "/no/such/path"),
    ];
    let wrong = [
        None,
        Some("Bearer wrong"),
        Some("Bearer t0ken-for-the-test.Zx8"),
        Some("Bearer t0ken-for-the-test.Zx9x"),
        Some("Bearer t0ken-for-the-test.Zx"),
        Some("Basic dDBrZW4="),
        Some(TOKEN),
    ];
    for (method, path) in endpoints {
        for auth in wrong {
            let (status, head) = request(port, method, path, auth);
            assert_eq!(status, 401, "{method} {path} with {auth:?}");
            assert!(
                head.contains("\r\nWWW-Authenticate: Bearer realm=\"heaptide\""),
                "{head}"
            );
        }
        let (status, _) = request(port, method, path, Some(&good));
        let expected = if path == "/no/such/path" { 404 } else { 200 };
        assert_eq!(status, expected, "{method} {path} with the token");
    }
    // Scheme case and extra spaces do not matter.
    let (status, _) = request(port, "GET", "/metrics", Some(&format!("bearer   {TOKEN}")));
    assert_eq!(status, 200);
    let rest = p.finish();
    assert!(
        rest.iter().all(|l| !l.starts_with("heaptide:")),
        "more heaptide lines: {rest:?}"
    );
}

#[test]
fn non_loopback_address_without_token_is_refused() {
    let p = Proc::start(&[("HEAPTIDE_HTTP", "0.0.0.0:0")]);
    let line = p.heaptide_line();
    assert!(
        line.starts_with("heaptide: not serving HTTP on 0.0.0.0:0 (HEAPTIDE_HTTP): ")
            && line.contains("not a loopback address")
            && line.contains("HEAPTIDE_HTTP_TOKEN"),
        "{line}"
    );
    let rest = p.finish();
    assert!(
        rest.iter().all(|l| !l.starts_with("heaptide:")),
        "more than one line: {rest:?}"
    );
}

#[test]
fn loopback_address_needs_no_token() {
    let p = Proc::start(&[("HEAPTIDE_HTTP", "127.0.0.1:0")]);
    let port = p.served_port();
    assert_eq!(request(port, "GET", "/metrics", None).0, 200);
    assert_eq!(request(port, "GET", "/memory/health", None).0, 200);
    p.finish();
}

#[test]
fn token_is_required_on_loopback_too_when_set() {
    let p = Proc::start(&[
        ("HEAPTIDE_HTTP", "localhost:0"),
        ("HEAPTIDE_HTTP_TOKEN", TOKEN),
    ]);
    let port = p.served_port();
    assert_eq!(request(port, "GET", "/metrics", None).0, 401);
    let good = format!("Bearer {TOKEN}");
    assert_eq!(request(port, "GET", "/metrics", Some(&good)).0, 200);
    p.finish();
}

#[test]
fn bad_values_give_one_line_and_no_server() {
    let p = Proc::start(&[("HEAPTIDE_HTTP", "example.com:6060")]);
    let line = p.heaptide_line();
    assert!(
        line.starts_with("heaptide: ignoring HEAPTIDE_HTTP=\"example.com:6060\": expected "),
        "{line}"
    );
    let rest = p.finish();
    assert!(rest.iter().all(|l| !l.starts_with("heaptide:")), "{rest:?}");

    // A bad token is not echoed; without a token the non-loopback address is then refused.
    let p = Proc::start(&[
        ("HEAPTIDE_HTTP", "0.0.0.0:0"),
        ("HEAPTIDE_HTTP_TOKEN", "has spaces in it"),
    ]);
    let line = p.heaptide_line();
    assert!(
        line.starts_with("heaptide: ignoring HEAPTIDE_HTTP_TOKEN=\"<hidden>\""),
        "{line}"
    );
    assert!(!line.contains("has spaces"), "{line}");
    let line = p.heaptide_line();
    assert!(
        line.starts_with("heaptide: not serving HTTP on 0.0.0.0:0"),
        "{line}"
    );
    p.finish();
}

#[test]
fn serve_refuses_non_loopback_without_token() {
    if std::env::var_os("HEAPTIDE_HTTP_TOKEN").is_some() {
        eprintln!("HEAPTIDE_HTTP_TOKEN is set in this environment; nothing to check");
        return;
    }
    let e = heaptide::serve("0.0.0.0:0").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(e.to_string().contains("HEAPTIDE_HTTP_TOKEN"), "{e}");
    let addr = heaptide::serve(("127.0.0.1", 0)).unwrap();
    assert!(addr.ip().is_loopback());
    assert_eq!(request(addr.port(), "GET", "/memory/snapshot", None).0, 200);
}
