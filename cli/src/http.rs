//! A minimal blocking HTTP/1.1 client for heaptide's own server: one `GET` per connection
//! (the server answers with `Content-Length` and closes every connection), plain HTTP only,
//! every step under a deadline.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The largest answer read (a report's JSON is a few MiB at most).
const MAX_ANSWER: usize = 256 << 20;

/// Where a heaptide server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Host and port as given (resolved again at each request), for `Host:` and messages.
    authority: String,
    /// A path prefix the endpoints' paths are appended to (empty, or `/x` without a final `/`).
    prefix: String,
}

impl Server {
    /// Parses `http://host:port[/prefix]`, `host:port`, or a bare port (on 127.0.0.1).
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if url.starts_with("https://") {
            return Err(format!(
                "{url}: https is not supported; heaptide's server speaks plain HTTP (reach a remote one through an SSH tunnel or a port forward)"
            ));
        }
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.contains("://") {
            return Err(format!("{url}: expected an http:// URL"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = if !authority.is_empty() && authority.bytes().all(|b| b.is_ascii_digit()) {
            format!("127.0.0.1:{authority}")
        } else {
            authority.to_string()
        };
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !has_port || authority.contains('@') {
            return Err(format!(
                "{url}: expected http://HOST:PORT, HOST:PORT or a port (such as http://127.0.0.1:6060)"
            ));
        }
        if path.contains(['?', '#']) {
            return Err(format!(
                "{url}: expected the server's address, without a query or fragment"
            ));
        }
        Ok(Self {
            authority,
            prefix: path.trim_end_matches('/').to_string(),
        })
    }

    /// The server as `http://host:port[/prefix]`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.authority, self.prefix)
    }

    /// `GET path` with the bearer `token`, within `timeout` in all: the body of a `200` answer.
    pub fn get(
        &self,
        path: &str,
        token: Option<&str>,
        timeout: Duration,
    ) -> Result<Vec<u8>, Error> {
        let deadline = Instant::now() + timeout;
        let target = format!("{}{path}", self.prefix);
        let mut stream = self.connect(deadline, timeout)?;
        let mut request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: heaptide/{}\r\nAccept: application/json\r\nConnection: close\r\n",
            self.authority,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .set_write_timeout(Some(left(deadline)?))
            .and_then(|()| stream.write_all(request.as_bytes()))
            .map_err(|e| Error::Io(format!("cannot send the request: {e}")))?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 << 10];
        loop {
            let wait = left(deadline).map_err(|_| Error::Timeout(timeout))?;
            stream
                .set_read_timeout(Some(wait))
                .map_err(|e| Error::Io(e.to_string()))?;
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) if answer.len() + n > MAX_ANSWER => {
                    return Err(Error::Answer(format!(
                        "the answer is larger than {} MiB",
                        MAX_ANSWER >> 20
                    )));
                }
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Error::Timeout(timeout));
                }
                Err(e) => return Err(Error::Io(format!("cannot read the answer: {e}"))),
            }
        }
        body_of(&answer)
    }

    /// A connection to the first of the host's addresses that takes one.
    fn connect(&self, deadline: Instant, timeout: Duration) -> Result<TcpStream, Error> {
        let addrs: Vec<SocketAddr> = self
            .authority
            .to_socket_addrs()
            .map_err(|e| Error::Io(format!("cannot resolve {}: {e}", self.authority)))?
            .collect();
        let mut last = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, left(deadline)?) {
                Ok(stream) => return Ok(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Error::Timeout(timeout));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Error::Io(match last {
            Some(e) => format!("cannot connect: {e}"),
            None => format!("{} resolves to no address", self.authority),
        }))
    }
}

/// Time left before `deadline` (never zero, which sockets refuse as a timeout).
fn left(deadline: Instant) -> Result<Duration, Error> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(Error::Timeout(Duration::ZERO))
    } else {
        Ok(left)
    }
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No connection, or it broke.
    Io(String),
    /// The answer did not come in time (the timeout given).
    Timeout(Duration),
    /// The server answered with another status than 200: the status, its reason and the
    /// first line of the body.
    Status(u16, String),
    /// The answer is not an HTTP answer this client reads.
    Answer(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io(e) => f.write_str(e),
            Error::Timeout(t) if t.is_zero() => f.write_str("timed out"),
            Error::Timeout(t) => write!(
                f,
                "no answer within {}",
                crate::units::Seconds(t.as_secs_f64())
            ),
            Error::Status(status, said) => write!(f, "answered {status}: {said}"),
            Error::Answer(e) => write!(f, "not an HTTP answer heaptide reads: {e}"),
        }
    }
}

/// The body of a whole answer (the connection closed after it), if its status is 200.
fn body_of(answer: &[u8]) -> Result<Vec<u8>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(answer) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if answer.is_empty() => {
            return Err(Error::Answer(
                "the connection closed without an answer".into(),
            ));
        }
        Ok(httparse::Status::Partial) => {
            return Err(Error::Answer("the answer ends inside its headers".into()));
        }
        Err(e) => return Err(Error::Answer(e.to_string())),
    };
    let status = response.code.unwrap_or(0);
    let mut body = &answer[head..];
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| Error::Answer("a bad Content-Length".into()))
        })
        .transpose()?;
    if let Some(length) = length {
        if body.len() < length {
            return Err(Error::Answer(format!(
                "the answer ends after {} of its {length} bytes",
                body.len()
            )));
        }
        body = &body[..length];
    }
    if status != 200 {
        let first = String::from_utf8_lossy(body)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let said = if first.is_empty() {
            response.reason.unwrap_or("").to_string()
        } else {
            first
        };
        return Err(Error::Status(status, said));
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let s = Server::parse("http://127.0.0.1:6060").unwrap();
        assert_eq!(s.url(), "http://127.0.0.1:6060");
        assert_eq!(Server::parse("127.0.0.1:6060").unwrap(), s);
        assert_eq!(Server::parse("6060").unwrap(), s);
        assert_eq!(Server::parse("http://127.0.0.1:6060/").unwrap(), s);
        let s = Server::parse("http://[::1]:7000/heap/").unwrap();
        assert_eq!(s.url(), "http://[::1]:7000/heap");
        assert_eq!(
            Server::parse("localhost:80").unwrap().url(),
            "http://localhost:80"
        );
        for bad in [
            "",
            "http://",
            "localhost",
            "http://host:port",
            ":6060",
            "99999",
            "ftp://h:1",
            "http://u:p@h:1",
            "http://h:1/x?y=1",
        ] {
            assert!(Server::parse(bad).is_err(), "{bad:?}");
        }
        assert!(
            Server::parse("https://h:1")
                .unwrap_err()
                .contains("https is not supported")
        );
    }

    #[test]
    fn answers() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        assert_eq!(body_of(ok).unwrap(), b"{}");
        let unauthorized =
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 30\r\n\r\n401 Unauthorized: a token\nmore";
        assert_eq!(
            body_of(unauthorized),
            Err(Error::Status(401, "401 Unauthorized: a token".into()))
        );
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}";
        assert!(matches!(body_of(short), Err(Error::Answer(_))));
        assert!(matches!(body_of(b""), Err(Error::Answer(_))));
        assert!(matches!(
            body_of(b"HTTP/1.1 200 OK\r\nContent-"),
            Err(Error::Answer(_))
        ));
        assert!(matches!(
            body_of(b"SSH-2.0-OpenSSH\r\n"),
            Err(Error::Answer(_))
        ));
        // Without Content-Length, the body runs to the end of the connection.
        assert_eq!(body_of(b"HTTP/1.1 200 OK\r\n\r\nabc").unwrap(), b"abc");
    }
}
