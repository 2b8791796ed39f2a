//! The OTLP metrics export (cargo feature `otlp`): the figures of `/metrics` pushed to an
//! OpenTelemetry Collector (or any OTLP/HTTP receiver) as an `ExportMetricsServiceRequest`,
//! protobuf-encoded, `POST`ed with `Content-Type: application/x-protobuf`.
//!
//! Started at start-up when an endpoint is set ([`settings`]: `HEAPTIDE_OTLP_ENDPOINT`, or the
//! OpenTelemetry variables), by [`install`], called at the end of the allocator's
//! initialisation, as the HTTP server is. One thread of heaptide's own (`heaptide-otlp`)
//! pushes every `HEAPTIDE_OTLP_INTERVAL` (10 s by default), the first push one interval after
//! start-up. Each push runs in a profiler scope: what it allocates (the summary, the request,
//! the client's buffers) is profiler overhead, never sampled as the program's.
//!
//! - [`settings`]: the variables, read once;
//! - [`encode`]: the families of `crate::report::metrics` as OTLP messages, and the resource;
//! - [`proto`]: the messages, declared with `prost`'s derive.
//!
//! What is pushed: the summary `/metrics` serves (`crate::report::summary`: no work per call
//! site), as the same families under OpenTelemetry names (the table in
//! `src/report/metrics.rs`). Counters are cumulative sums from the profiler's start, so a push
//! that fails is simply dropped: the next one carries fresh totals, and nothing queues up.
//!
//! The transport is `ureq` (plain HTTP, no TLS, no compression), driven only by the exporter
//! thread. Connecting, sending and receiving each give up after [`TIMEOUT`], so a dead or slow
//! Collector holds up nothing but this thread. There is deliberately no overall timeout: with
//! one, ureq resolves host names on a thread it spawns per request, which would be a thread
//! outside the profiler's (its allocations sampled as the program's); without, the name is
//! resolved on the exporter thread itself, which the system resolver's own timeouts bound.
//! ureq honours the proxy variables (`HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, ...).
//!
//! Failures give one stderr line when pushes start failing and one when they work again, never
//! one per interval. A Collector's partial success (data points it rejected) counts as a
//! failure, with its message.
//!
//! After `fork()` the child has no exporter thread (threads do not survive a fork), as it has
//! no HTTP server; the parent's goes on. The thread holds none of heaptide's locks between
//! pushes, and during one only those the fork handlers take (`crate::runtime`).

mod encode;
mod proto;
mod settings;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

use crate::diag::stderr_line;
use crate::report::metrics::families;
use crate::sample::scope::ProfilerScope;
use proto::{ExportMetricsServiceResponse, KeyValue};
use settings::Settings;

/// How long connecting, sending the request and receiving the answer may each take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(5);

/// The most of a Collector's answer read (an `ExportMetricsServiceResponse` is a few bytes).
const MAX_ANSWER: u64 = 64 * 1024;

/// Starts the exporter when an endpoint is set. Called once, by the thread that initialised
/// the allocator (inside its first allocation, after the allocator's state is published, so
/// allocating here is fine). Prints one line on stderr: where it pushes, or why it does not.
pub(crate) fn install() {
    let _scope = ProfilerScope::enter();
    let settings = settings::from_env(crate::config::getenv);
    let Some(url) = settings.endpoint.clone() else {
        return;
    };
    let interval = settings.interval;
    let exporter = Exporter {
        resource: encode::resource(&settings),
        settings,
        url: url.clone(),
    };
    let started =
        crate::drain::spawn_profiler_thread(c"heaptide-otlp", Box::new(move || exporter.run()));
    match started {
        Ok(()) => stderr_line(format_args!(
            "heaptide: pushing OTLP metrics to {url} every {interval:?}"
        )),
        Err(()) => stderr_line(format_args!(
            "heaptide: not pushing OTLP metrics: could not start the exporter thread"
        )),
    }
}

/// The exporter thread's state.
struct Exporter {
    settings: Settings,
    url: String,
    /// The resource attributes, fixed for the process's life.
    resource: Vec<KeyValue>,
}

impl Exporter {
    /// Pushes every interval, for ever.
    fn run(self) {
        let agent = {
            let _scope = ProfilerScope::enter();
            agent()
        };
        let start_unix_nano = profiler_start_unix_nano();
        let interval = self.settings.interval;
        let mut failing = false;
        let mut next = Instant::now() + interval;
        loop {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            // The next push one interval on; after a push that took longer than an interval,
            // one interval after it ends (missed pushes are not made up).
            next += interval;
            let _scope = ProfilerScope::enter();
            let result = self.push(&agent, start_unix_nano);
            match (result, failing) {
                (Ok(()), true) => {
                    failing = false;
                    stderr_line(format_args!(
                        "heaptide: OTLP push to {} works again",
                        self.url
                    ));
                }
                (Err(e), false) => {
                    failing = true;
                    stderr_line(format_args!(
                        "heaptide: OTLP push to {} failed: {e} (retrying every {interval:?}; \
                         the next message says when it works again)",
                        self.url
                    ));
                }
                _ => {}
            }
            let now = Instant::now();
            if next < now {
                next = now + interval;
            }
        }
    }

    /// One push: a summary, its families, the request, the `POST`.
    fn push(&self, agent: &ureq::Agent, start_unix_nano: u64) -> Result<(), String> {
        let started = Instant::now();
        let report = crate::report::summary();
        let gather_seconds = started.elapsed().as_secs_f64();
        #[cfg(feature = "http")]
        let server = Some(crate::http::server_counters());
        #[cfg(not(feature = "http"))]
        let server = None;
        let list = families(&report, server, gather_seconds);
        let body = encode::request(&self.resource, &list, start_unix_nano, unix_nano_now())
            .encode_to_vec();
        let mut request = agent
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf");
        for (name, value) in &self.settings.headers {
            request = request.header(name, value);
        }
        let mut answer = request.send(&body[..]).map_err(|e| e.to_string())?;
        let bytes = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| format!("reading the answer: {e}"))?;
        // An answer that is not an ExportMetricsServiceResponse (a receiver that answers in
        // JSON, say) is taken as the success its status said.
        if let Ok(answer) = ExportMetricsServiceResponse::decode(&bytes[..]) {
            if let Some(partial) = answer.partial_success {
                if partial.rejected_data_points > 0 {
                    return Err(format!(
                        "the receiver rejected {} data points: {}",
                        partial.rejected_data_points, partial.error_message
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The HTTP client: [`TIMEOUT`] on each step after resolving the name, 4xx and 5xx answers as
/// errors, heaptide's `User-Agent`, one idle connection kept.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(TIMEOUT))
        .timeout_send_request(Some(TIMEOUT))
        .timeout_send_body(Some(TIMEOUT))
        .timeout_recv_response(Some(TIMEOUT))
        .timeout_recv_body(Some(TIMEOUT))
        .http_status_as_error(true)
        .max_idle_connections(1)
        .max_idle_connections_per_host(1)
        .user_agent(concat!("heaptide/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Now, ns since the Unix epoch (0 if the clock is before it).
fn unix_nano_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When the profiler started, ns since the Unix epoch: the start of every counter.
fn profiler_start_unix_nano() -> u64 {
    let since_start = crate::state::now_ns().saturating_sub(crate::state::started_ns());
    unix_nano_now().saturating_sub(since_start)
}
