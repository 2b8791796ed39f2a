//! The server: one reader thread that accepts connections and reads requests, and a fixed pool
//! of worker threads that answer them. All their work runs in a profiler scope (one per round
//! of the reader, one per request of a worker), so everything they allocate is profiler
//! overhead, never the program's: not sampled, and counted in `profiler.overhead_bytes` when
//! each scope ends.
//!
//! # Limits, and how each is enforced
//!
//! - **Request size**: a request head (request line and headers) of at most [`MAX_HEAD`]
//!   bytes, else `431`; at most [`MAX_HEADERS`] header fields (`httparse` parses into a fixed
//!   array), else `431`; a body of at most [`MAX_BODY`] bytes (`Content-Length`), else `413`;
//!   `Transfer-Encoding` (chunked bodies) is refused with `501`. A connection's buffer never
//!   holds more than `MAX_HEAD + MAX_BODY` bytes.
//! - **Time to send a request**: [`READ_TIMEOUT`] from the connection's acceptance to its last
//!   byte, however the bytes trickle in (slowloris); then `408` and the connection is closed.
//! - **Slow clients never hold a worker while they send**: the reader thread watches every
//!   connection with `poll(2)` on non-blocking sockets and hands a request to a worker only
//!   once it is complete. A worker writes the answer with a deadline of [`WRITE_TIMEOUT`]
//!   (a client that does not read cannot keep it longer).
//! - **Connections**: at most [`MAX_CONNECTIONS`] being read at once: a new connection beyond
//!   them closes the one that has been sending its request longest (with a `503`), so idle or
//!   slow clients holding every slot do not lock others out ([`evict_oldest`]); at most
//!   [`QUEUE`] complete requests wait for one of the [`WORKERS`] workers, beyond which the
//!   connection gets a `503` at once and is closed.
//! - **One request per connection**: every answer says `Connection: close` (no idle keep-alive
//!   connections to hold).
//! - **The program is never stalled**: the server takes no lock the allocation path takes; the
//!   drain lock is held only by the report a request builds, for the time any report takes.
//!   A request that made heaptide's code panic gets a `500`; the worker carries on.
//!
//! A request that is refused before it was read in full (`413`, `431`) gets its answer, then
//! the connection's write side is shut and what the client still sends is read and thrown away
//! (at most [`LINGER_BYTES`], for at most [`LINGER`]) before it is closed, so the client sees
//! the answer rather than a reset.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use super::routes::{self, Response};
use crate::sample::scope::ProfilerScope;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// Worker threads answering complete requests.
pub(crate) const WORKERS: usize = 4;
/// Complete requests waiting for a worker.
pub(crate) const QUEUE: usize = 16;
/// Connections being read at once.
pub(crate) const MAX_CONNECTIONS: usize = 64;
/// Longest request head (request line and header fields), bytes.
pub(crate) const MAX_HEAD: usize = 8 * 1024;
/// Most header fields in a request.
pub(crate) const MAX_HEADERS: usize = 32;
/// Longest request body, bytes (no endpoint reads one; `POST /memory/purge` may carry a small
/// one).
pub(crate) const MAX_BODY: usize = 4 * 1024;
/// Time from accepting a connection to having its whole request.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Time to write an answer.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused connection is drained before it is closed.
pub(crate) const LINGER: Duration = Duration::from_secs(1);
/// How much of a refused connection's input is drained before it is closed.
pub(crate) const LINGER_BYTES: usize = 256 * 1024;

/// Starts a server on `addr`; returns the address it is bound to. With a `token`, every
/// request must carry it as a bearer token; without one, only a loopback address is served.
pub(crate) fn start(addr: SocketAddr, token: Option<&'static str>) -> io::Result<SocketAddr> {
    if token.is_none() && !addr.ip().to_canonical().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{addr} is not a loopback address: serving it needs HEAPTIDE_HTTP_TOKEN (a bearer token clients must send)"
            ),
        ));
    }
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let (tx, rx) = sync_channel::<Job>(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..WORKERS {
        let rx = Arc::clone(&rx);
        let name = std::ffi::CString::new(format!("heaptide-http-{i}")).unwrap_or_default();
        spawn(&name, Box::new(move || work(&rx, token)))?;
    }
    // If this fails, `tx` is dropped and the workers just started exit.
    spawn(
        c"heaptide-http",
        Box::new(move || read_requests(&listener, &tx)),
    )?;
    Ok(bound)
}

/// Starts one of the server's threads as a profiler thread (see
/// [`crate::drain::spawn_profiler_thread`]: its start-up allocations are the profiler's, and it
/// draws nothing from the program's sequence of thread seeds).
fn spawn(name: &std::ffi::CStr, entry: Box<dyn FnOnce() + Send>) -> io::Result<()> {
    crate::drain::spawn_profiler_thread(name, entry)
        .map_err(|()| io::Error::other("heaptide: could not start an HTTP server thread"))
}

/// A complete request: the connection and its bytes (`head` bytes of head, then the body).
struct Job {
    stream: TcpStream,
    buf: Vec<u8>,
    head: usize,
}

// === the reader thread ===

/// A connection being read, or drained before it is closed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Instant,
    /// `Some(bytes drained so far)` once refused.
    lingering: Option<usize>,
}

/// What reading a connection came to.
enum Step {
    /// Keep watching it.
    Wait,
    /// A complete request whose head is `head` bytes long (its body, if any, follows).
    Ready { head: usize },
    /// Answer with this status and drain it.
    Refuse(u16),
    /// Close it.
    Close,
}

fn read_requests(listener: &TcpListener, tx: &SyncSender<Job>) {
    let (mut conns, mut fds) = {
        let _scope = ProfilerScope::enter();
        let conns: Vec<Conn> = Vec::with_capacity(MAX_CONNECTIONS);
        let fds: Vec<libc::pollfd> = Vec::with_capacity(MAX_CONNECTIONS + 1);
        (conns, fds)
    };
    loop {
        // A scope per round rather than one for the thread's life: a scope adds what the thread
        // allocated and freed to the overhead figure when it ends.
        let _scope = ProfilerScope::enter();
        fds.clear();
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(conns.iter().map(|c| libc::pollfd {
            fd: c.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }));
        let now = Instant::now();
        let timeout_ms = conns
            .iter()
            .map(|c| c.deadline.saturating_duration_since(now))
            .min()
            .map_or(-1, |d| (d.as_millis() + 1).min(60_000) as libc::c_int);
        // SAFETY: `fds` is a valid, initialised array of `fds.len()` pollfd structs that poll
        // may write (`revents`) while it runs; the descriptors are open (owned by `listener` and
        // `conns`, which outlive the call).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let now = Instant::now();
        // Last to first, so that `swap_remove` leaves the indices still to visit in place.
        for i in (0..conns.len()).rev() {
            let ready = fds[i + 1].revents != 0;
            let conn = &mut conns[i];
            let step = match (ready, conn.lingering) {
                (true, None) => read_request(conn),
                (true, Some(_)) => drain(conn),
                (false, _) => Step::Wait,
            };
            // The deadline holds however the bytes trickle in.
            let step = match step {
                Step::Wait if now >= conn.deadline && conn.lingering.is_none() => Step::Refuse(408),
                Step::Wait if now >= conn.deadline => Step::Close,
                step => step,
            };
            match step {
                Step::Wait => {}
                Step::Close => drop(conns.swap_remove(i)),
                Step::Refuse(status) => {
                    let conn = &mut conns[i];
                    answer_now(&mut conn.stream, status);
                    if status == 408 {
                        // Nothing more is coming in: close at once.
                        drop(conns.swap_remove(i));
                    } else {
                        let _ = conn.stream.shutdown(Shutdown::Write);
                        conn.lingering = Some(0);
                        conn.buf = Vec::new();
                        conn.deadline = now + LINGER;
                    }
                }
                Step::Ready { head } => dispatch(conns.swap_remove(i), head, tx),
            }
        }
        if fds[0].revents != 0 {
            accept(listener, &mut conns);
        }
    }
}

/// Accepts the pending connections (at most [`MAX_CONNECTIONS`] per round, so that a flood of
/// connections does not keep the reader from the others).
fn accept(listener: &TcpListener, conns: &mut Vec<Conn>) {
    for _ in 0..MAX_CONNECTIONS {
        match listener.accept() {
            Ok((stream, _)) => {
                if stream.set_nonblocking(true).is_err() {
                    continue;
                }
                if conns.len() >= MAX_CONNECTIONS {
                    evict_oldest(conns);
                }
                conns.push(Conn {
                    stream,
                    buf: Vec::new(),
                    deadline: Instant::now() + READ_TIMEOUT,
                    lingering: None,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(_) => {
                // Out of descriptors or memory: back off instead of spinning on a listener
                // that stays readable.
                std::thread::sleep(Duration::from_millis(10));
                return;
            }
        }
    }
}

/// Connections evicted to make room for a new one (see [`evict_oldest`]).
pub(crate) static EVICTED: AtomicU64 = AtomicU64::new(0);

/// Makes room for a new connection when [`MAX_CONNECTIONS`] are open: closes one being drained
/// after a refusal if there is one, else the one that has been sending its request longest
/// (it gets a `503`). A client that sends its request at once is served within milliseconds,
/// so slow clients holding every slot evict each other, not it: holding the server takes
/// opening connections faster than it serves requests, not a few dozen idle ones. The first
/// eviction prints one stderr line; the count is [`EVICTED`].
fn evict_oldest(conns: &mut Vec<Conn>) {
    let victim = conns
        .iter()
        .position(|c| c.lingering.is_some())
        .or_else(|| (0..conns.len()).min_by_key(|&i| conns[i].deadline));
    let Some(i) = victim else {
        return;
    };
    let mut conn = conns.swap_remove(i);
    if conn.lingering.is_none() {
        answer_now(&mut conn.stream, 503);
    }
    if EVICTED.fetch_add(1, Ordering::Relaxed) == 0 {
        crate::diag::stderr_line(format_args!(
            "heaptide: http: {MAX_CONNECTIONS} connections open; closing the slowest to make room (slow or idle clients)"
        ));
    }
}

/// Reads what a connection has sent and says whether its request is complete.
fn read_request(conn: &mut Conn) -> Step {
    let mut chunk = [0u8; 4096];
    loop {
        let room = (MAX_HEAD + MAX_BODY - conn.buf.len()).min(chunk.len());
        match conn.stream.read(&mut chunk[..room]) {
            // The client closed (or gave up) before sending a whole request.
            Ok(0) => return Step::Close,
            Ok(n) => conn.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Step::Close,
        }
        match examine(&conn.buf) {
            Step::Wait => {}
            other => return other,
        }
    }
}

/// Whether `buf` holds a complete request, needs more, or must be refused.
fn examine(buf: &[u8]) -> Step {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => Step::Refuse(431),
        Ok(httparse::Status::Partial) => Step::Wait,
        Ok(httparse::Status::Complete(head)) => {
            if head > MAX_HEAD {
                return Step::Refuse(431);
            }
            if header(request.headers, "transfer-encoding").is_some() {
                return Step::Refuse(501);
            }
            let body = match content_length(request.headers) {
                Some(Ok(n)) => n,
                Some(Err(())) => return Step::Refuse(400),
                None => 0,
            };
            if body > MAX_BODY {
                Step::Refuse(413)
            } else if buf.len() < head + body {
                Step::Wait
            } else {
                Step::Ready { head }
            }
        }
        Err(httparse::Error::TooManyHeaders) => Step::Refuse(431),
        Err(_) => Step::Refuse(400),
    }
}

/// The value of the first header field named `name` (ASCII case-insensitive).
fn header<'b>(headers: &[httparse::Header<'b>], name: &str) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// `Content-Length`: `None` if absent, `Err` if malformed or given twice with different
/// values. Values past `usize` saturate (they are refused as too large anyway).
fn content_length(headers: &[httparse::Header<'_>]) -> Option<Result<usize, ()>> {
    let mut found: Option<usize> = None;
    for h in headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
    {
        let v = h.value.trim_ascii();
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
            return Some(Err(()));
        }
        let n = v.iter().fold(0usize, |n, &d| {
            n.saturating_mul(10).saturating_add(usize::from(d - b'0'))
        });
        if found.is_some_and(|f| f != n) {
            return Some(Err(()));
        }
        found = Some(n);
    }
    found.map(Ok)
}

/// Reads and throws away what a refused client still sends.
fn drain(conn: &mut Conn) -> Step {
    let mut chunk = [0u8; 4096];
    let drained = conn.lingering.get_or_insert(0);
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Step::Close,
            Ok(n) => {
                *drained += n;
                if *drained >= LINGER_BYTES {
                    return Step::Close;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Step::Wait,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Step::Close,
        }
    }
}

/// Hands a complete request to the workers, or answers `503` if they are all busy and the queue
/// is full.
fn dispatch(conn: Conn, head: usize, tx: &SyncSender<Job>) {
    let Conn { stream, buf, .. } = conn;
    if stream.set_nonblocking(false).is_err() {
        return;
    }
    let job = Job { stream, buf, head };
    match tx.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(mut job) | TrySendError::Disconnected(mut job)) => {
            let _ = job.stream.set_nonblocking(true);
            answer_now(&mut job.stream, 503);
        }
    }
}

/// Writes a short error answer on a non-blocking socket, as far as it goes at once (an answer
/// this small fits in an empty socket buffer).
fn answer_now(stream: &mut TcpStream, status: u16) {
    let body = match status {
        400 => "400 Bad Request: not an HTTP/1.x request\n",
        408 => "408 Request Timeout: the request did not arrive in time\n",
        413 => "413 Content Too Large: request bodies are limited to 4096 bytes\n",
        431 => "431 Request Header Fields Too Large: at most 8192 bytes and 32 header fields\n",
        501 => "501 Not Implemented: Transfer-Encoding is not supported\n",
        _ => "503 Service Unavailable: too many connections, try again\n",
    };
    let response = Response::text(status, body);
    let _ = stream.write_all(&head_bytes(&response, response.body.len()));
    let _ = stream.write_all(&response.body);
}

// === the workers ===

fn work(rx: &Mutex<Receiver<Job>>, token: Option<&'static str>) {
    loop {
        // A scope per request (see `read_requests`).
        let _scope = ProfilerScope::enter();
        // The lock is held while waiting: one worker waits on the queue, the others on the lock.
        let job = rx.lock().recv();
        let Ok(job) = job else {
            return;
        };
        answer(job, token);
    }
}

/// Answers one request and closes its connection.
fn answer(mut job: Job, token: Option<&'static str>) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    // Complete by construction (the reader parsed the same bytes).
    let _ = request.parse(&job.buf[..job.head]);
    let method = request.method.unwrap_or("GET");
    let target = request.path.unwrap_or("/");
    let response = if !super::auth::allowed(token, header(request.headers, "authorization")) {
        Response::unauthorized()
    } else {
        catch_unwind(AssertUnwindSafe(|| routes::route(method, target))).unwrap_or_else(|_| {
            Response::text(
                500,
                "500 Internal Server Error: heaptide panicked (please report it)\n",
            )
        })
    };
    // The write's deadline starts once the answer is ready: building a report (and waiting for
    // its turn) can take longer than WRITE_TIMEOUT on a busy machine, and a deadline taken
    // before it had passed when the writing began, so the client got no answer at all.
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let head = head_bytes(&response, response.body.len());
    let body: &[u8] = if method == "HEAD" {
        &[]
    } else {
        &response.body
    };
    let _ = write_by(&mut job.stream, &head, deadline)
        .and_then(|()| write_by(&mut job.stream, body, deadline));
    // Bytes the client sent beyond its request (pipelining) are not read: closing with them
    // unread may reset the connection, but the answer has been written in full by then.
    let _ = job.stream.shutdown(Shutdown::Write);
}

/// Writes all of `bytes` before `deadline`.
fn write_by(stream: &mut TcpStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match stream.write(&bytes[..bytes.len().min(64 * 1024)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The status line and header fields of `response`.
fn head_bytes(response: &Response, content_length: usize) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {content_length}\r\n\
         Connection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        response.status,
        reason(response.status),
        response.content_type,
    );
    for (name, value) in &response.headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The reason phrase of a status code heaptide sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(buf: &[u8]) -> Option<u16> {
        match examine(buf) {
            Step::Refuse(s) => Some(s),
            _ => None,
        }
    }

    #[test]
    fn complete_and_partial_requests() {
        assert!(matches!(
            examine(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Step::Ready { head: 34 }
        ));
        assert!(matches!(
            examine(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"),
            Step::Wait
        ));
        let post = b"POST /memory/purge HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
        assert!(matches!(examine(post), Step::Wait));
        let post = b"POST /memory/purge HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
        assert!(matches!(examine(post), Step::Ready { head: 50 }));
    }

    #[test]
    fn refusals() {
        assert_eq!(status(b"GARBAGE\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), Some(400));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD, b'a');
        assert_eq!(status(&big), Some(431));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(status(&many), Some(431));
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 4097\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
    }

    #[test]
    fn response_head() {
        let mut r = Response::text(405, "no\n");
        r.headers.push(("Allow", "POST"));
        let head = String::from_utf8(head_bytes(&r, 3)).unwrap();
        assert!(
            head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nContent-Length: 3\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
        assert!(head.ends_with("\r\nAllow: POST\r\n\r\n"), "{head}");
    }

    #[test]
    fn non_loopback_needs_a_token() {
        let e = start("0.0.0.0:0".parse().unwrap(), None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("HEAPTIDE_HTTP_TOKEN"), "{e}");
        let e = start("[::ffff:10.0.0.1]:0".parse().unwrap(), None).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    }
}
