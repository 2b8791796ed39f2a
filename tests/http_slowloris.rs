//! A sustained slowloris (more idle half-requests than the server reads at once) does not
//! lock other clients out: a new connection evicts the slowest, and a client that sends its
//! request at once is served.
#![cfg(feature = "http")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();

/// The answer to a complete `GET path` on a fresh connection.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status of a complete `GET path` on a fresh connection.
fn status(addr: SocketAddr, path: &str) -> u16 {
    get(addr, path)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn seventy_idle_connections_do_not_lock_others_out() {
    let addr = heaptide::serve("127.0.0.1:0").expect("serve on loopback");
    let mut idle = Vec::new();
    for _ in 0..70 {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: slow\r\n")
            .unwrap();
        idle.push(s);
    }
    // Whatever the reader thread has accepted of the 70 by now, ten requests in a row each get
    // their answer.
    let statuses: Vec<u16> = (0..10).map(|_| status(addr, "/memory/health")).collect();
    assert_eq!(statuses, [200; 10], "with 70 idle connections held open");
    // The server accepts in arrival order, so the 70 were accepted before the requests above:
    // more than its 64 slots, so some were evicted, and /metrics counts them.
    let metrics = get(addr, "/metrics");
    let evicted: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("heaptide_http_connections_evicted_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no eviction counter in /metrics:\n{metrics}"));
    assert!(evicted >= 70 - 64, "{evicted} evictions counted");
    drop(idle);
}
