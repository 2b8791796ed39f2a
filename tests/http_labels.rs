//! `/metrics` series by label and by top site, against known truth in exact mode: the live
//! bytes of each `key=value` pair to the byte, the top site named with its labels, and the
//! exposition accepted by `promtool check metrics`.

#![cfg(feature = "http")]

#[path = "common/net.rs"]
#[allow(dead_code, reason = "this test uses `which` only")]
mod net;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use net::which;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

const BLOCK: usize = 64 * 1024;

#[inline(never)]
#[allow(
    clippy::vec_box,
    reason = "one allocation per block is what is measured"
)]
fn fill_labelled(into: &mut Vec<Box<[u8; BLOCK]>>, n: usize) {
    for _ in 0..n {
        into.push(Box::new([9u8; BLOCK]));
    }
}

fn metrics(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let body = text.split_once("\r\n\r\n").expect("a head and a body").1;
    body.to_string()
}

/// The value of the sample line that starts with `prefix` (name and labels).
fn value(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_by_label_and_top_site() {
    let addr = heaptide::serve("127.0.0.1:0").unwrap();
    let mut cache = Vec::with_capacity(64);
    let mut db = Vec::with_capacity(64);
    heaptide::label("component", "cache", || {
        fill_labelled(&mut cache, 48);
        heaptide::label("tenant", "acme", || fill_labelled(&mut db, 3));
    });
    heaptide::label("component", "db", || fill_labelled(&mut db, 16));

    let text = metrics(addr);
    let b = BLOCK as f64;
    assert_eq!(
        value(
            &text,
            "heaptide_label_live_bytes{key=\"component\",value=\"cache\"}"
        ),
        Some(51.0 * b),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "heaptide_label_live_bytes{key=\"component\",value=\"db\"}"
        ),
        Some(16.0 * b),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "heaptide_label_live_bytes{key=\"tenant\",value=\"acme\"}"
        ),
        Some(3.0 * b),
        "{text}"
    );
    assert!(
        value(
            &text,
            "heaptide_label_allocated_bytes_total{key=\"component\",value=\"cache\"}"
        ) >= Some(51.0 * b),
        "{text}"
    );
    let top = text
        .lines()
        .find(|l| l.starts_with("heaptide_top_site_live_bytes{rank=\"1\","))
        .unwrap_or_else(|| panic!("no top site in\n{text}"));
    assert!(
        top.contains("fill_labelled") && top.contains("labels=\"component=cache\""),
        "{top}"
    );
    assert!(top.ends_with(&format!(" {}", 48 * BLOCK)), "{top}");
    let ranks = text
        .lines()
        .filter(|l| l.starts_with("heaptide_top_site_live_bytes{"))
        .count();
    assert!((2..=10).contains(&ranks), "{text}");

    let Some(promtool) = which("promtool") else {
        eprintln!("NOTICE: promtool is not installed (apt-get install prometheus); not checked");
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check metrics: {said}");
    assert!(said.trim().is_empty(), "promtool has remarks: {said}");
    drop((cache, db));
}
