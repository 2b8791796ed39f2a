//! HTTP settings: `HEAPTIDE_HTTP` (where to listen) and `HEAPTIDE_HTTP_TOKEN` (the bearer token
//! clients must send).
//!
//! Read once, the first time they are needed: at start-up (from [`install`](super::install),
//! after the allocator is initialised, so allocating here is fine) or at the first
//! [`crate::serve`]. As everywhere in heaptide, the environment is read with `getenv` (no lock)
//! and a value that does not parse gives one stderr line naming the variable, the value and the
//! accepted forms; then no server is started from the environment (`HEAPTIDE_HTTP`), or no
//! token is set (`HEAPTIDE_HTTP_TOKEN`, so only a loopback address can be served).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use crate::config::{ParseError, complain, getenv};

/// The HTTP settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    /// `HEAPTIDE_HTTP`: the address to serve on at start-up (`None`: no server at start-up).
    pub(crate) addr: Option<SocketAddr>,
    /// `HEAPTIDE_HTTP_TOKEN`: the bearer token every request must carry (`None`: no check;
    /// then only loopback addresses are served).
    pub(crate) token: Option<&'static str>,
}

/// Accepted forms of `HEAPTIDE_HTTP`, for error messages.
pub(crate) const ADDR_FORMS: &str = "an address and port such as 127.0.0.1:6060, [::1]:6060, \
     localhost:6060 or 0.0.0.0:6060, a bare port (6060, on 127.0.0.1), or off";
/// Accepted forms of `HEAPTIDE_HTTP_TOKEN`.
pub(crate) const TOKEN_FORMS: &str =
    "a non-empty token of visible ASCII characters (no spaces), at most 1024 of them";

/// Longest token accepted (it has to fit in a request head of [`super::server::MAX_HEAD`]).
const MAX_TOKEN: usize = 1024;

/// The settings, read from the environment on the first call.
pub(crate) fn get() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(|| from_env(getenv))
}

fn from_env(var: impl Fn(&std::ffi::CStr) -> Option<&'static str>) -> Settings {
    let mut s = Settings {
        addr: None,
        token: None,
    };
    if let Some(v) = var(c"HEAPTIDE_HTTP") {
        match parse_addr(v) {
            Ok(addr) => s.addr = addr,
            Err(ParseError) => complain("HEAPTIDE_HTTP", v, ADDR_FORMS, &"no HTTP server"),
        }
    }
    if let Some(v) = var(c"HEAPTIDE_HTTP_TOKEN") {
        match parse_token(v) {
            // Not echoed back in the message: it is a secret.
            Ok(token) => s.token = Some(token),
            Err(ParseError) => complain(
                "HEAPTIDE_HTTP_TOKEN",
                "<hidden>",
                TOKEN_FORMS,
                &"no token (loopback only)",
            ),
        }
    }
    s
}

/// Parses `HEAPTIDE_HTTP`. `Ok(None)` for `off` (or an empty value). Host names other than
/// `localhost` are refused: nothing is looked up in DNS at start-up.
pub(crate) fn parse_addr(value: &str) -> Result<Option<SocketAddr>, ParseError> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    if let Ok(port) = v.parse::<u16>() {
        return Ok(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
    }
    if let Ok(addr) = v.parse::<SocketAddr>() {
        return Ok(Some(addr));
    }
    match v.rsplit_once(':') {
        Some((host, port)) if host.eq_ignore_ascii_case("localhost") => {
            let port = port.parse::<u16>().map_err(|_| ParseError)?;
            Ok(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)))
        }
        _ => Err(ParseError),
    }
}

/// Parses `HEAPTIDE_HTTP_TOKEN`: visible ASCII, no spaces (what fits in an `Authorization:
/// Bearer` header as is), 1 to [`MAX_TOKEN`] characters.
pub(crate) fn parse_token(value: &'static str) -> Result<&'static str, ParseError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_TOKEN
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(value) } else { Err(ParseError) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let local = |port| Some(SocketAddr::from(([127, 0, 0, 1], port)));
        assert_eq!(parse_addr("127.0.0.1:6060"), Ok(local(6060)));
        assert_eq!(parse_addr(" 6060 "), Ok(local(6060)));
        assert_eq!(parse_addr("localhost:0"), Ok(local(0)));
        assert_eq!(parse_addr("LOCALHOST:7"), Ok(local(7)));
        assert_eq!(
            parse_addr("0.0.0.0:80"),
            Ok(Some(SocketAddr::from(([0, 0, 0, 0], 80))))
        );
        assert_eq!(
            parse_addr("[::1]:6060"),
            Ok(Some("[::1]:6060".parse().unwrap()))
        );
        assert_eq!(parse_addr("off"), Ok(None));
        assert_eq!(parse_addr(""), Ok(None));
        for bad in [
            "example.com:6060",
            ":6060",
            "127.0.0.1",
            "127.0.0.1:99999",
            "localhost",
            "localhost:x",
            "::1:6060",
            "65536",
        ] {
            assert_eq!(parse_addr(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn tokens() {
        assert_eq!(parse_token("s3cr3t-._~+/="), Ok("s3cr3t-._~+/="));
        for bad in ["", "two words", "tab\there", "é"] {
            assert_eq!(parse_token(bad), Err(ParseError), "{bad:?}");
        }
        let long: &'static str = "x".repeat(MAX_TOKEN + 1).leak();
        assert_eq!(parse_token(long), Err(ParseError));
    }

    #[test]
    fn environment() {
        let env = |name: &std::ffi::CStr| match name.to_bytes() {
            b"HEAPTIDE_HTTP" => Some("9000"),
            b"HEAPTIDE_HTTP_TOKEN" => Some("abc"),
            _ => None,
        };
        let s = from_env(env);
        assert_eq!(s.addr, Some(SocketAddr::from(([127, 0, 0, 1], 9000))));
        assert_eq!(s.token, Some("abc"));
        let none = from_env(|_| None);
        assert_eq!(
            none,
            Settings {
                addr: None,
                token: None
            }
        );
    }
}
