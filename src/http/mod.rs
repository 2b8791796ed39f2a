//! The HTTP server (cargo feature `http`): Prometheus metrics, the pprof heap profile and the
//! memory endpoints, served from threads of heaptide's own.
//!
//! Started at start-up when `HEAPTIDE_HTTP` is set ([`install`], called at the end of the
//! allocator's initialisation), or by [`crate::serve`]. Each server has a reader thread
//! (`heaptide-http`) and [`server::WORKERS`] worker threads (`heaptide-http-<n>`), whose work
//! all runs in profiler scopes: what they allocate (requests, reports, answers) is profiler
//! overhead, never sampled as the program's. A server runs until the process exits.
//!
//! A request's report is taken with [`crate::report::take`] inside the worker's scope, as a
//! dump does: the copy handed out and the one built inside are both the profiler's, and both
//! are freed before the scope ends.
//!
//! - [`settings`]: `HEAPTIDE_HTTP`, `HEAPTIDE_HTTP_TOKEN`, read once;
//! - [`server`]: accepting, reading and answering, and the limits;
//! - [`auth`]: the bearer token, compared in constant time;
//! - [`routes`]: what each path answers;
//! - [`metrics`]: the Prometheus text format;
//! - [`purge`]: `POST /memory/purge`.
//!
//! Requests are parsed by `httparse` (the parser hyper uses: no allocation, a fixed array of
//! header fields). tiny_http was considered and not used: it buffers a request line or header
//! of any length (tiny-http issue 56), starts a thread per connection without bound (issue
//! 221), sets no read or write timeout, and parses on threads of its own, outside the profiler
//! scope, so its allocations would be sampled and reported as the program's.

mod auth;
mod metrics;
mod purge;
mod routes;
mod server;
mod settings;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use crate::diag::stderr_line;
use crate::sample::scope::ProfilerScope;

#[cfg(feature = "otlp")]
pub(crate) use metrics::server_counters;
pub(crate) use routes::{ForkLock, fork_lock};

/// Starts the server of `HEAPTIDE_HTTP`, if set. Called once, by the thread that initialised
/// the allocator (inside its first allocation, after the allocator's state is published, so
/// allocating here is fine). Prints one line on stderr: where it serves, or why it does not.
pub(crate) fn install() {
    let _scope = ProfilerScope::enter();
    let settings = settings::get();
    let Some(addr) = settings.addr else {
        return;
    };
    match server::start(addr, settings.token) {
        Ok(bound) => stderr_line(format_args!(
            "heaptide: serving HTTP on http://{bound}/ (/metrics, /debug/pprof/heap, /memory/...)"
        )),
        Err(e) => stderr_line(format_args!(
            "heaptide: not serving HTTP on {addr} (HEAPTIDE_HTTP): {e}"
        )),
    }
}

/// [`crate::serve`]: starts a server on the first address `addr` resolves to, with the token
/// of `HEAPTIDE_HTTP_TOKEN`. The error, if any, is allocated outside the profiler scope: it is
/// the caller's memory.
pub(crate) fn serve(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    let result = {
        let _scope = ProfilerScope::enter();
        resolve(addr)
            .and_then(|addr| server::start(addr, settings::get().token))
            .map_err(|e| (e.kind(), e.to_string()))
    };
    let handed = match &result {
        Ok(bound) => Ok(*bound),
        Err((kind, message)) => Err(io::Error::new(*kind, message.clone())),
    };
    crate::sample::scope::drop_in_scope(result);
    handed
}

/// The first address of `addr`.
fn resolve(addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    })
}
