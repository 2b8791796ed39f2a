//! heaptide: a sampling heap profiler that lives in your program as its global allocator.
//!
//! It wraps jemalloc, samples allocations with their call stacks at a cost you can leave on in
//! production, and tells you where the memory is, where it comes from, and which call sites
//! keep it.
//!
//! # Usage
//!
//! One line:
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
//! ```
//!
//! Nothing else is required: sampling starts with the first allocation and a drain thread
//! (`heaptide-drain`) starts with the first sample. Ask for a [`Report`] whenever you like:
//!
//! ```no_run
//! # #[global_allocator]
//! # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
//! let report = heaptide::report();
//! println!("{report}"); // top sites by live and by allocated bytes
//! for site in report.top_by_live(3) {
//!     println!("{} bytes live from {:?}", site.live_bytes, site.blamed_frame());
//! }
//! ```
//!
//! # Configuration
//!
//! Read once, at the first allocation, from the environment (overriding what the
//! [`Heaptide`] handle sets in code). A bad value prints one line on stderr and the default is
//! used; the program is never stopped.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HEAPTIDE_SAMPLE` | mean bytes between samples: `524288`, `512KiB`, `4MiB`; `1` = every allocation (exact); `off` = plain jemalloc | `512KiB` |
//! | `HEAPTIDE_DEPTH` | frames kept per stack, 1 to 64 | 32 |
//! | `HEAPTIDE_SEED` | seed of the sampling generators (reproducible sampling decisions) | clock |
//!
//! Sizes accept `K`/`KiB`, `M`/`MiB`, `G`/`GiB` (powers of 1024) and `kB`, `MB`, `GB` (powers
//! of 1000).
//!
//! # Dumps
//!
//! A dump is a report written to files, `heaptide-<pid>-<seq>.<ext>`, one per format, where
//! `seq` counts dumps from 1 and `ext` is `json`, `pb.gz` (pprof), `txt`, `folded` or `html`:
//!
//! - **On a signal**: `kill -USR1 <pid>` makes the drain thread write a dump at once and print
//!   each path on stderr (`heaptide: wrote <path>`). That takes milliseconds, plus, for the
//!   first report of a process, the loading of the binary's debug info for symbols (about half
//!   a second for a test binary). The handler only sets a flag and wakes the drain thread; a
//!   handler the program installed before heaptide's is still called, and a burst of signals
//!   gives one or a few dumps.
//! - **At exit**, with `HEAPTIDE_DUMP_AT_EXIT=1` (normal exit: return from `main` or
//!   `std::process::exit`).
//! - **On demand**: [`dump()`] returns the paths.
//! - **Automatically**, when the memory reaches a point worth a look (the drain thread
//!   decides after each pass; the file names add the reason, `heaptide-<pid>-<seq>-peak.json`):
//!   - `peak`: the recorded peak of the estimated live heap ([`report::Peak`]) reaches
//!     `HEAPTIDE_DUMP_ON_PEAK`; then again only when it has grown 10% past the last peak
//!     dumped, and at most one such dump per 60 s;
//!   - `critical`: health becomes critical (with `HEAPTIDE_DUMP_ON_CRITICAL=1`; needs
//!     `HEAPTIDE_CRITICAL` or `HEAPTIDE_LIMIT`), once per transition;
//!   - `near-limit`: the control group's memory use reaches the fraction
//!     `HEAPTIDE_DUMP_NEAR_LIMIT` of its limit (read at most once a second), once per
//!     crossing, armed again when the use falls below the fraction minus 0.05.
//!
//! Files are written atomically (temporary file, `fsync`, rename), with mode 0600, and never
//! through a symbolic link: a link at a file's name is replaced, and a dump directory that is
//! itself a link is refused. If the directory cannot be written, a signal, exit or automatic
//! dump prints one line (`heaptide: cannot write dump to <dir>: <error>`) and the program carries on.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HEAPTIDE_SIGNAL` | `USR1`, `USR2` or `none` (no handler installed) | `USR1` |
//! | `HEAPTIDE_FORMATS` | comma-separated: `json`, `pprof`, `text`, `folded`, `html` | `json,pprof,text` |
//! | `HEAPTIDE_DIR` | directory of the dump files (a relative path is taken from the current directory at start-up) | `TMPDIR`, else `/tmp` |
//! | `HEAPTIDE_DUMP_AT_EXIT` | `1`/`true`: dump at normal exit | `0` |
//! | `HEAPTIDE_DUMP_ON_PEAK` | a size (`512MiB`): dump when the peak live heap reaches it, then at each 10% more, 60 s apart at least; or `off` | `off` |
//! | `HEAPTIDE_DUMP_ON_CRITICAL` | `1`/`true`: dump each time health becomes critical | `0` |
//! | `HEAPTIDE_DUMP_NEAR_LIMIT` | a fraction above 0, at most 1 (`0.9`): dump when the cgroup's memory use reaches it of the limit; or `off` | `off` |
//! | `HEAPTIDE_SITE_BUDGET` | memory of the call-site table, at least `64KiB`; past it the coldest call stacks are merged into "other" sites ([`report::SiteTable`]) | `64MiB` or 1% of the live heap, whichever is larger |
//!
//! The leak detector's settings (read by the drain thread, not at start-up):
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HEAPTIDE_INTERVAL` | time between snapshots: `10s`, `250ms`, `1m` | `10s` |
//! | `HEAPTIDE_MAX_SNAPSHOTS` | snapshots kept, 8 to 100000 | `500` |
//! | `HEAPTIDE_LIMIT` | RSS the trend projects toward (critical when reached): `2GiB` | none |
//! | `HEAPTIDE_WARN` | RSS at which health is a warning | none |
//! | `HEAPTIDE_CRITICAL` | RSS at which health is critical | none |
//!
//! They are read once, like the others (when profiling is off: at the first [`dump()`]; no
//! signal handler is installed then).
//!
//! # What a report holds, and its formats
//!
//! A [`Report`] holds the memory snapshot (RSS and virtual size from `/proc/self/statm`;
//! jemalloc's allocated, active, metadata, resident, mapped and retained bytes after an `epoch`
//! refresh; fragmentation ratios), totals, the five size buckets, allocation rates, lifetime
//! percentiles (hdrhistogram), and the top call sites by live and by allocated bytes with their
//! symbolized stacks, size histograms and lifetimes; and the profiler's own figures (samples,
//! dropped, its memory). Heap figures are estimates unless [`Report::exact`]; memory figures
//! are measured. Writers: [`Report::write_json`] (versioned; schema in `docs/report-schema.md`),
//! [`Report::write_text`] (what a person reads first), [`Report::write_pprof`] (gzipped
//! `profile.proto` for `go tool pprof`, Pyroscope, Parca, Grafana) and
//! [`Report::write_folded`] (flame graph input), [`Report::write_html`] (one self-contained page:
//! leaks, memory over time, an icicle graph, size and lifetime charts). The types of its parts
//! ([`report::Site`], [`report::Leak`], [`report::Health`], ...) are in the [`report`](mod@report)
//! module; they are `#[non_exhaustive]`: read them, or deserialize them from the JSON.
//!
//! **Peak** ([`Report::peak`]): the sites live when the estimated live heap was highest. The
//! drain sees the estimated live heap after every event; when it passes the recorded peak by
//! more than a step, `max(peak / 64, sample interval)`, the sites with live bytes are copied
//! (their stacks are shared, not copied). So the highest point the profile reached lies
//! between [`report::Peak::live_bytes`] and that plus [`report::Peak::step_bytes`], and copies
//! are geometric: a heap growing to 64 GiB is copied a few hundred times in all, and a heap
//! that keeps returning to the same height copies nothing more. The section lists the top
//! sites then, merged and named as [`Report::sites`] are, with their live bytes then and now.
//!
//! # Leak detector, trends and health
//!
//! The drain thread keeps a ring of snapshots (every `HEAPTIDE_INTERVAL`, default 10 s;
//! `HEAPTIDE_MAX_SNAPSHOTS` kept, default 500; [`set_snapshot_interval`], [`snapshot_now`]) of
//! the process's memory and of the live bytes of the 256 sites holding the most. Each report
//! judges every site with live bytes from that history:
//!
//! 1. fewer than 9 snapshots: `insufficient_evidence`, with the number of snapshots still
//!    needed ([`report::Site::needs_snapshots`]);
//! 2. **releases**: a fall between two snapshots of at least 30% of the window's range (and 10%
//!    of the value, and 5 typical steps), after a climb of 30% of the range. Two releases or
//!    more: `sawtooth` (memory reused), unless the troughs after the releases rise along a
//!    line (at least 10% of the range, r² >= 0.5): then memory is never given back under the
//!    cycles, a `steady_growth` leak at the troughs' rate with 3 troughs or more, and
//!    `insufficient_evidence` with 2 (a line through two points always fits);
//! 3. **change** = mean of the last third of the window minus mean of the first third. If it
//!    is under 5% of the level, or under 3 standard errors (the scatter of each third around
//!    its own line, plus the counting error of the samples behind an estimate):
//!    `stable_long_lived` (data allocated once and kept is this), unless the evidence is thin:
//!    a rise at the end of the window (growth that started late), a rise of 5% or more of at
//!    least 2 standard errors, or fewer than 20 snapshots that do not bound the change under
//!    5% give `insufficient_evidence`;
//! 4. a significant fall: `declining`;
//! 5. a significant rise: compare the last third's slope with the average rate: at most half
//!    of it, by 4 standard errors: `plateau` (a cache that filled; not a leak); released once
//!    in the window without climbing above the earlier peak (a slow sawtooth):
//!    `insufficient_evidence`; at least 1.25 times, by 3 standard errors:
//!    `accelerating_growth`; slowed down but not provably stopped: `insufficient_evidence`;
//!    otherwise `steady_growth`.
//!
//! The full rule, with its thresholds, is in `src/analysis/pattern.rs`. Hidden scenarios a
//! person should know about: a tooth of a sawtooth longer than the window looks like a leak
//! until it is released, and growth under 5% of a site's level within the window reads as
//! stable.
//!
//! Leaks are the two growth patterns ([`Report::leaks`], fastest growth first). The growth
//! rate is the least-squares slope over the window, in bytes per hour. **Severity** by growth
//! rate: critical >= 1 GiB/h, high >= 100 MiB/h, medium >= 10 MiB/h, low below.
//! **Confidence** = min(1, snapshots/20) x min(1, samples/8) x (r² + share of steps that go
//! up) / 2 (under a sawtooth, also x min(1, troughs/5)): it grows with the evidence; the
//! leak's `reason` gives the figures. A leak also carries the ages of its live
//! objects and its history.
//!
//! **Trend** ([`Report::trend`]): growth (least squares, bytes per hour), r², peak, minimum,
//! time-weighted average, volatility (residual RMS over the average) of jemalloc's allocated
//! bytes and of RSS, and the time until RSS reaches `HEAPTIDE_LIMIT` at that growth.
//!
//! **Health** ([`report::Health`]), judged on RSS: critical at `HEAPTIDE_CRITICAL` or
//! `HEAPTIDE_LIMIT`; warning at `HEAPTIDE_WARN`, with a high or critical leak found with
//! confidence >= 0.5, or when RSS is projected to reach the limit within an hour. [`on_alert`]
//! registers a callback, called on the drain thread once per transition (a status change; a
//! site becoming a serious leak).
//!
//! # Memory by component
//!
//! [`label()`], [`label_guard`] and [`labelled`] (for futures, across `.await`) make the
//! allocations of a part of the program carry `key=value` labels; with the `tracing` feature,
//! `LabelLayer` labels by span. Reports then list memory by label ([`Report::labels`],
//! [`Report::live_by_label`]) and show each site's labels; pprof profiles carry them as sample
//! labels (`go tool pprof -tagfocus=component=cache`), `/metrics` as
//! `heaptide_label_live_bytes{key,value}`. Labels are read only when an allocation is sampled,
//! and at most 256 label sets are kept (see the `label` module's docs in the source).
//!
//! ```
//! let cache: Vec<u8> = heaptide::label("component", "cache", || vec![0; 4096]);
//! let _http = heaptide::label_guard("component", "http");
//! # drop(cache);
//! ```
//!
//! # Leak checks in tests
//!
//! [`testing`] has `assert_no_leaks`, `assert_no_growth` (per-iteration growth after a
//! warm-up) and `assert_peak_below`, exact and safe under the parallel test runner.
//!
//! # HTTP server
//!
//! With the cargo feature `http` (off by default), heaptide serves its figures over HTTP from
//! threads of its own, started by `HEAPTIDE_HTTP=127.0.0.1:6060` at start-up or by
//! `heaptide::serve(addr)` (which exists only with the feature). What those threads allocate is
//! profiler overhead.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /metrics` | Prometheus text format: memory snapshot, totals, size classes, samples and drops, leak candidates by severity, health, profiler overhead (`heaptide_*`) |
//! | `GET /debug/pprof/heap` | the gzipped pprof profile ([`Report::write_pprof`]): `go tool pprof http://127.0.0.1:6060/debug/pprof/heap`, Parca, Pyroscope |
//! | `GET /memory/snapshot`, `/memory/allocations`, `/memory/leaks`, `/memory/trend?duration=1h`, `/memory/health` | JSON: `version`, `pid`, `timestamp` and the report's sections, as in [`Report::write_json`] |
//! | `POST /memory/purge` | purges jemalloc's dirty pages in every arena; JSON with resident bytes before and after (any other method: 405) |
//!
//! Answers come from a report at most 5 s old and not older than the latest snapshot (one
//! request builds it, the others get the previous one meanwhile); `/metrics` builds none.
//! Unknown paths get 404; every answer closes its connection.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HEAPTIDE_HTTP` | address to serve at start-up: `127.0.0.1:6060`, `[::1]:6060`, `localhost:6060`, `0.0.0.0:6060`, or a port alone (on 127.0.0.1) | none |
//! | `HEAPTIDE_HTTP_TOKEN` | bearer token every request must send (`Authorization: Bearer <token>`), compared in constant time; required for a non-loopback address, which is otherwise refused with one stderr line | none |
//!
//! Limits: a request head of at most 8 KiB and 32 header fields (431), a body of at most
//! 4 KiB (413), 5 s to send a request (408), 10 s to take the answer; 64 connections being
//! read, 16 requests waiting for the 4 worker threads (beyond: 503). A slow client is watched
//! by one reader thread with `poll(2)` and holds no worker while it sends, so it cannot stall
//! other requests, the drain thread, or the program.
//!
//! # OTLP export
//!
//! With the cargo feature `otlp` (off by default), heaptide pushes the figures of `/metrics`
//! to an OpenTelemetry Collector (or any OTLP/HTTP receiver): an `ExportMetricsServiceRequest`,
//! protobuf-encoded, `POST`ed every interval by a thread of its own (what it allocates is
//! profiler overhead). The feature does not need `http`. Names are OpenTelemetry's
//! (`heaptide.heap.live`, unit `By`); counters are monotonic cumulative sums from the
//! profiler's start, the rest gauges. The resource carries `service.name`, `process.pid`,
//! `process.executable.name`, `host.name` and `telemetry.sdk.*`.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `HEAPTIDE_OTLP_ENDPOINT` | the URL to push to, `http://` only (no TLS): `http://localhost:4318/v1/metrics`; `off` | `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics` (when their protocol is unset or `http/protobuf`), else no export |
//! | `HEAPTIDE_OTLP_INTERVAL` | time between pushes (`10s`, `500ms`) | `10s` |
//! | `HEAPTIDE_OTLP_HEADERS` | extra headers, `key=value,key2=value2` (values percent-decoded) | `OTEL_EXPORTER_OTLP_METRICS_HEADERS`, else `OTEL_EXPORTER_OTLP_HEADERS` |
//! | `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` | `service.name` and more resource attributes | the executable's name |
//!
//! Connecting, sending and receiving each time out after 5 s; a failed push is dropped (the
//! next carries fresh cumulative figures), with one stderr line when pushes start failing and
//! one when they work again. A forked child does not push.
//!
//! # What the numbers mean
//!
//! Sampling is Poisson by bytes, as in jemalloc, tcmalloc and Go: each thread draws the
//! distance to its next sample point from an exponential distribution with mean `R` bytes. An
//! allocation of `s` bytes is sampled with probability `p = 1 - exp(-s/R)`, and each sampled
//! object stands for `1/p` allocations and `s/p` bytes. The weight is fixed per object when it
//! is sampled, so estimates are unbiased whatever the mix of sizes, and a free removes exactly
//! what its allocation added. In exact mode (`R = 1`) every allocation is recorded with weight
//! 1 and the figures are exact; [`Report::exact`] says which kind a report holds.
//!
//! Every allocation is sampled with that probability, the process's first ones and those made
//! while heaptide initialises included: the profiler's own allocations (initialisation, stack
//! capture, a drain pass run by a sampling thread, reports, dumps) never move a thread's
//! countdown or generator (a profiler scope saves the countdown and puts it back), and the
//! drain thread is the profiler's from its first instruction (it is made with
//! `pthread_create`, so std's thread start-up allocates nothing on it before it can say so).
//!
//! ## Same seed, same report
//!
//! With `HEAPTIDE_SEED` (or [`Heaptide::seed`]) each thread's generator is seeded with the seed
//! mixed with the thread's ordinal: the order in which threads first reach the sampling path
//! (the main thread, which allocates first, is 0). The clock is used only without a seed.
//! Since the profiler's work leaves the generators alone, a thread's sample points depend on
//! the seed, its ordinal and the sizes it allocates, nothing else. So:
//!
//! - a program with one worker thread, or any whose threads start one after another in a fixed
//!   order, gets the same samples and the same estimates in every run with the same seed
//!   (`tests/sampling_truth.rs` runs one 4 times);
//! - threads started concurrently take their ordinals in the order they first allocate, which
//!   the scheduler decides: each thread is still a correct Poisson sample, but which seed it
//!   gets varies, so per-site estimates vary from run to run within their sampling error
//!   (threads that do identical work still add up to identical totals, as the 16 threads of
//!   `tests/sampling_under_churn.rs` do);
//! - live figures also depend on when the report is taken relative to the program's frees, and
//!   with the `http` feature serving, its threads take ordinals at start-up.
//!
//! # Safety and correctness
//!
//! - **The allocation path never waits on a lock, and never panics.** An unsampled allocation
//!   is a thread-local countdown; an unsampled free is one compare. A sampled one pushes to the
//!   thread's own ring; when the ring is full the event goes to an overflow node, so no sample
//!   is dropped while memory lasts ([`report::ProfilerStats::dropped`] counts those lost to a shortage
//!   of memory). When too many nodes wait (1,024 in sampled mode, about 600 KiB; 65,536 in
//!   exact mode), the sampling thread, and only it, runs a drain pass if the drain lock is free
//!   or yields its CPU until the backlog shrinks: backpressure on the sampled slow path, never
//!   on unsampled allocations. Dropping would bias estimates low by the share dropped
//!   (`docs/performance.md` has the measurement).
//! - **No phantom leaks.** A sampled block carries a header with a unique sample id. The drain
//!   pairs every free with its allocation by that id, in whatever order the events arrive from
//!   different threads, so address reuse cannot confuse it. A sampled free whose ring is full
//!   is never lost: the block waits on a lock-free stack, unreleased (so its address cannot be
//!   reused), until the drain has recorded it. A loom model checks that once both events are
//!   queued, the next drain pass leaves the sample neither live nor waiting (`bin/loom.sh`).
//! - **Profiler work is not the user's.** Stack capture, symbolization, the drain and report
//!   building run in a thread-local profiler scope: their allocations are not sampled and are
//!   measured separately ([`report::ProfilerStats::overhead_bytes`]).
//! - **Threads come and go.** Each sampling thread takes a ring slot from a lock-free
//!   registry and gives it back at exit; the drain empties it before it is reused. Ring,
//!   registry and the intrusive stack are model-checked with loom (`bin/loom.sh`).
//! - **fork()**: every lock heaptide owns (drain, symbol cache, snapshot history, health state)
//!   is taken around `fork` (pthread_atfork), so a child never inherits one locked; the forking
//!   thread's sampled jemalloc cache is flushed and replaced in the child (destroying it there
//!   would corrupt jemalloc's statistics list); the child starts its own drain thread at its
//!   next sample.
//! - **Out of memory**: the sampled path returns null exactly when jemalloc does.
//!
//! # What never happens to the host, and how it is tested
//!
//! | guarantee | tested by |
//! |---|---|
//! | bad configuration never stops the program: one stderr line per bad `HEAPTIDE_*` value, and the default | `tests/config_env.rs`, `tests/hostile.rs` (every variable invalid at once), `tests/dump_files.rs`, unit tests of each parser, the `config` fuzz target |
//! | `fork()` from a busy multi-threaded process: the child allocates and reports, never hangs | `tests/fork.rs` (20 children each: forked while 3 threads sample and flush, while 2 threads build reports, and children that `exit` with an exit dump and a report in an `atexit` handler; none crashes, none hangs) |
//! | a signal storm coalesces: 1,000 `SIGUSR1` give a few complete dumps, the program keeps running; a sustained storm writes at most one dump a second | `tests/dump_signal.rs` |
//! | rings of exited threads are given back: beyond 16 spares their buffers are freed | `tests/thread_churn.rs` (5,000 threads, 500 at a time: under 8 MiB of rings), loom (`bin/loom.sh`) |
//! | the reservation leaves the program its address space: at most an eighth of a finite `RLIMIT_AS` | `tests/address_space.rs` (2 GiB allocated under a 3 GiB limit) |
//! | idle or trickling HTTP clients cannot hold every connection slot: a new connection evicts the slowest | `tests/http_slowloris.rs` (70 held open) |
//! | a writer that panics unwinds out of every report writer (no abort) | `tests/hostile.rs` |
//! | an unusable dump directory (missing, read-only, a symlink, a full disk) gives an error line, no partial file under a final name, and the program carries on | `tests/dump_files.rs`, `tests/hostile.rs` (a full 64 KiB tmpfs) |
//! | threads exit while the drain reads their rings; allocations in thread-local destructors | loom models (`bin/loom.sh`), `tests/threads.rs` (10,000 short-lived threads, TLS destructors) |
//! | allocation before `main`, in `atexit` handlers, while `main` returns with other threads allocating | `tests/hostile.rs` |
//! | random sequences of alloc / alloc_zeroed / realloc / dealloc of any size and alignment keep memory intact and the exact accounting equal to a model | `tests/realloc_matrix.rs`, the `alloc_exact` and `alloc_sampled` fuzz targets (`fuzz/`) |
//! | a report built from arbitrary figures writes every format; JSON and pprof parse back | the `report` fuzz target |
//! | reentrancy: reports taken while other threads allocate hard | `tests/reentrancy.rs`, `tests/*_during_report.rs` |
//! | the lock-free structures and estimators have no undefined behaviour | miri (`bin/miri.sh`: ring, registry, intrusive stack, estimators, report writers) |
//!
//! # Performance: how "was this pointer sampled?" is answered
//!
//! Sampled blocks come from a dedicated jemalloc arena (`arenas.create` with custom extent
//! hooks) whose memory all lies in one `PROT_NONE | MAP_NORESERVE` reservation of up to
//! 64 GiB (address space only), made when the program is loaded (an `.init_array` entry that
//! runs before jemalloc's own constructor maps its first extent; failing that, on the first
//! allocation; not at all with `HEAPTIDE_SAMPLE=off`, and given back when the handle's own
//! settings turn profiling off). It is placed above every mapping made after it: with Linux's
//! usual top-down layout the kernel does that by itself (later mappings go below); when a probe
//! mapping shows a bottom-up layout (valgrind, for one), the reservation moves to an address
//! hint near the top of the address space. The
//! free path's test is therefore one-sided, `ptr >= floor`: one compare against a RIP-relative
//! load, with no lock, no hash probe and no shared write, while jemalloc still does size
//! classes, in-place growth and reuse for sampled blocks. The floor is a copy kept inside the
//! `Heaptide` value itself: it is a static of the program, so the load is RIP-relative, where a
//! static of this crate would cost a GOT load more. A handle copies it on its first slow path;
//! until then every pointer "may" be sampled for it and the authoritative two-sided test
//! decides, so a second, never-installed handle is slow but never wrong (`tests/handles.rs`).
//! The same exact test catches an ordinary block that lies above the floor anyway (memory
//! mapped into a hole above the reservation, say a stack of a thread that existed before the
//! first allocation and has since exited): its frees are slower, never wrong.
//! `tests/range_placement.rs` checks that thread stacks, fresh mappings of 2 MiB to 1 GiB and
//! jemalloc's own large blocks land below. The alternatives (a page per sampled object, or a
//! filter in front of a lock-free set) cost memory per sample or a dependent memory load per
//! free. If no range can be reserved, profiling switches off with one stderr line.
//!
//! Sampled blocks go through a per-thread explicit jemalloc thread cache (`tcache.create`)
//! that only ever holds sampled blocks, created with the thread's ring slot and destroyed when
//! the thread exits; the thread's ordinary cache would hand a range address to an ordinary
//! allocation. Without it every sampled small object would take a slab of its own; with it a
//! sampled 16-byte allocation and its free (stack, events, the drain's work) cost about 2,100
//! instructions in all (`bin/bench.sh`; `docs/performance.md` has the measurements).
//!
//! An unsampled malloc+free pair costs about 5 instructions more than bare jemalloc built as
//! heaptide builds it, with statistics: 2 on allocation (`sub` from the thread-local countdown
//! in memory, branch on the borrow; a crossing leaves the countdown wrapped and the slow path
//! re-arms it) and 3 on free (a load, a compare, a branch). jemalloc's statistics, which
//! heaptide needs, cost about 5 more against plain tikv-jemallocator. `docs/performance.md`
//! has the callgrind counts and the per-workload ratios, each with its commit and command.
//!
//! Stacks are captured as raw return addresses into the event; symbols are resolved only when a
//! report is built, and cached by address. The resolver's own cache (the binary's parsed debug
//! info, tens of MiB for a large binary) is dropped once a report has cached its frames, and a
//! report counts what building it took in [`report::ProfilerStats::overhead_bytes`]. With frame
//! pointers (`-C force-frame-pointers=yes`, detected at build time) the capture is a walk of the frame
//! records within the thread's stack bounds, about a nanosecond per frame; otherwise it uses
//! DWARF unwinding (libgcc via `backtrace`, no lock), 1-2 µs per frame. For function names and
//! file:line in release builds, give the release profile `debug = "limited"` (or
//! `"line-tables-only"`: inlined functions then have short names). At any level, the frame a
//! report blames ([`report::Site::blamed_frame`]) is the innermost one that is not the standard
//! library's: heaptide knows those by their source files (the toolchain's `library/` sources)
//! or, without debug info, by their names; a site is the program's stack from that frame
//! outwards, so `alloc`, `alloc_zeroed` and `realloc` from one line are one site, and a
//! `realloc` is charged to the site that resized (`bin/debuginfo-check.sh`,
//! `tests/one_site.rs`).
//!
//! A thread whose ring fills runs a drain pass itself if the drain lock is free (never
//! waiting), so a drain thread that gets no CPU does not cause drops; otherwise the event
//! spills into an overflow node. Neither mode drops a sample for a full ring: when the backlog
//! reaches 1,024 events (sampled mode) or 64k (exact mode), the sampling threads help the
//! drain or yield until it shrinks (backpressure instead of unbounded memory or lost weight).
//! A report holds the drain lock only to copy its figures (about 100 bytes a site), never
//! while it symbolizes. Frees are bounded the same way: a sampled block whose free finds its
//! ring full waits on a deferred stack for the drain to record it, and when 32 MiB of such
//! blocks wait the freeing thread helps the drain or yields. In exact mode a block too large
//! for what is left of the sampled range is mapped on its own above the range and tracked
//! there, so exact reports count every byte. On Linux the drain thread runs under
//! `SCHED_BATCH`: its fair share of CPU is unchanged, but waking it does not preempt one of the
//! program's threads at once. At exact mode's event rates (one per microsecond or faster, as in
//! a tracked test) the drain polls, sleeping 20 µs between passes, instead of parking, so that
//! producers need not wake it (a futex wake costs the waking thread); it goes back to parking
//! 200 µs after the rate drops. `docs/performance.md` has what each of these saves, measured.

// Under loom only the lock-free structures are compiled (to be model-checked); the rest of the
// crate that uses them is not, so much of their API looks unused there.
#![cfg_attr(
    loom,
    allow(
        dead_code,
        unused_imports,
        reason = "loom builds only the lock-free structures"
    )
)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    clippy::undocumented_unsafe_blocks
)]
// std's locks (clippy.toml) are named only by `sync`, whose wrappers ignore poisoning.
#![warn(clippy::disallowed_types)]

mod backend;
mod buffer;
mod sync;

#[cfg(not(loom))]
mod alloc;
#[cfg(not(loom))]
mod analysis;
#[cfg(not(loom))]
mod config;
#[cfg(not(loom))]
mod diag;
#[cfg(not(loom))]
mod drain;
/// Under loom, the drain's part that is model-checked with the buffers: the order of a pass
/// over the queues, and the ledger that pairs allocations with frees.
#[cfg(loom)]
mod drain {
    pub(crate) mod ledger;
    pub(crate) mod order;
}
#[cfg(not(loom))]
mod dump;
#[cfg(all(feature = "http", not(loom)))]
mod http;
#[cfg(not(loom))]
mod label;
#[cfg(all(feature = "otlp", not(loom)))]
mod otlp;
#[cfg(not(loom))]
pub mod report;
#[cfg(not(loom))]
mod runtime;
#[cfg(not(loom))]
mod sample;
#[cfg(not(loom))]
mod state;
#[cfg(not(loom))]
mod symbolize;
#[cfg(not(loom))]
pub mod testing;

#[cfg(not(loom))]
pub use alloc::Heaptide;
#[cfg(not(loom))]
pub use config::{Config, Sampling};
#[cfg(all(feature = "tracing", not(loom)))]
pub use label::tracing::LabelLayer;
#[cfg(not(loom))]
pub use label::{LabelGuard, Labelled, label, label_guard, labelled};
#[cfg(not(loom))]
pub use report::Report;

// The handle is made here, where the allocator (`alloc.rs`) is wired to the side effects it
// starts (`runtime.rs`), which sit above every other module.
#[cfg(not(loom))]
impl Heaptide {
    /// The default profiler: Poisson sampling with one sample per 512 KiB on average, stacks
    /// of 32 frames.
    pub const fn new() -> Self {
        Self::with_hooks(&runtime::HOOKS)
    }
}

#[cfg(not(loom))]
impl Default for Heaptide {
    fn default() -> Self {
        Self::new()
    }
}

/// Takes a heap report now.
///
/// Every allocation and free that happened before the call (on any thread, as far as that
/// thread's work is ordered before the call) is included. Safe to call from any thread, while
/// other threads allocate; it never blocks allocating threads.
///
/// If heaptide is not the global allocator, or profiling is off, the report is empty (and
/// says `sample_interval == 0`).
///
/// Taking a report also records the alerts its health and leaks raise: a change of health
/// status since the last report or periodic evaluation, a site newly judged a serious leak
/// (see [`on_alert`]). `report.alerts` includes them.
///
/// # Examples
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// let report = heaptide::report();
/// println!("{} bytes live (estimated: {})", report.totals.live_bytes, !report.exact);
/// ```
#[cfg(not(loom))]
pub fn report() -> Report {
    report::take()
}

/// Marks a point in time: takes a report now and keeps it under `name`, for a later report to
/// be compared with ([`diff_since`]). Marking a name again replaces its report; at most 16 marks
/// are kept (a new name past that forgets the oldest). The kept reports are the profiler's
/// own memory (`profiler.overhead_bytes`), at most about 100 KiB each.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// heaptide::mark("warm");
/// // ... serve a thousand requests ...
/// if let Some(diff) = heaptide::diff_since("warm") {
///     print!("{diff}"); // new, grown, shrunk and freed sites, with lifetimes
/// }
/// ```
#[cfg(not(loom))]
pub fn mark(name: &str) {
    report::marks::mark(name);
}

/// What changed since the mark `name` ([`mark`]): a report taken now, compared with the one kept
/// there ([`Report::diff`]). `None` if there is no such mark.
#[cfg(not(loom))]
pub fn diff_since(name: &str) -> Option<report::Diff> {
    report::marks::diff_since(name)
}

/// The report kept under the mark `name`, if any.
#[cfg(not(loom))]
pub fn marked(name: &str) -> Option<Report> {
    report::marks::marked(name)
}

/// The marks kept ([`mark`]): each name with its report's time (milliseconds since the Unix
/// epoch), oldest first.
#[cfg(not(loom))]
pub fn marks() -> Vec<(String, u64)> {
    report::marks::list()
}

/// Drains every thread's pending samples into the profile now.
///
/// After `flush()` returns, the profile includes everything allocated and freed before the
/// call. [`report()`] flushes by itself; call this to settle state at a known point (e.g. in a
/// test, before measuring what comes next).
#[cfg(not(loom))]
pub fn flush() {
    drain::with_flushed(|_| ());
}

/// Writes a dump now: a [`report()`] in every format of `HEAPTIDE_FORMATS`, as
/// `heaptide-<pid>-<seq>.<ext>` in `HEAPTIDE_DIR` (see [Dumps](crate#dumps)), and returns the
/// paths of the files, in the order json, pprof, text, folded, html.
///
/// Works whatever `HEAPTIDE_SIGNAL` says, and also when profiling is off (the report is then
/// empty). Prints nothing.
///
/// # Errors
///
/// If the directory cannot be used (missing, not a directory, not writable, a symbolic link)
/// or a file cannot be written, the error says which directory and why; no file of this dump is
/// left behind.
///
/// # Examples
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// match heaptide::dump() {
///     Ok(paths) => println!("heap profile in {paths:?}"),
///     Err(e) => eprintln!("no heap profile: {e}"),
/// }
/// ```
#[cfg(not(loom))]
pub fn dump() -> std::io::Result<Vec<std::path::PathBuf>> {
    dump::dump()
}

/// Takes a snapshot for the trend and the leak detector now (after draining every ring), in
/// addition to the periodic ones (`HEAPTIDE_INTERVAL`). Tests use it to build a history at
/// chosen points.
#[cfg(not(loom))]
pub fn snapshot_now() {
    analysis::history::take();
}

/// Takes a snapshot as [`snapshot_now`] does, stamped `at` on a clock of the caller's (time
/// since an origin of its choosing) instead of the current time. The leak detector reads the
/// times of snapshots, so a test that steps its own clock gets the same verdicts on a busy
/// machine as on an idle one, without sleeping. From the first call on, the drain thread takes
/// no periodic snapshots in this process and [`snapshot_now`] records none (their real times
/// would interleave with the injected ones). Times must not go backwards.
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// # fn step(_: u32) {}
/// for i in 0..60 {
///     step(i);
///     heaptide::snapshot_at(std::time::Duration::from_secs(10 * u64::from(i)));
/// }
/// let report = heaptide::report(); // verdicts over a 10-minute history
/// ```
#[cfg(not(loom))]
pub fn snapshot_at(at: std::time::Duration) {
    analysis::history::take_at(at);
}

/// Sets the time between periodic snapshots (at least 1 ms), overriding `HEAPTIDE_INTERVAL`.
#[cfg(not(loom))]
pub fn set_snapshot_interval(interval: std::time::Duration) {
    analysis::settings::set_interval(interval);
    buffer::queues::wake();
}

/// Registers a callback for alerts (replacing an earlier one): a health status change, or a
/// leak of high or critical severity found (once per transition; see [`report::Health`]).
///
/// The callback runs on heaptide's drain thread, never on an allocating thread, outside
/// heaptide's locks (it may take a [`report`](crate::report())); a panic in it is caught.
/// Health and leaks are judged after each periodic snapshot once a callback is registered,
/// and each time a report is taken ([`report()`], a dump, the HTTP server's JSON endpoints).
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// heaptide::on_alert(|alert| eprintln!("memory alert: {}", alert.message));
/// ```
#[cfg(not(loom))]
pub fn on_alert(callback: impl Fn(&report::Alert) + Send + Sync + 'static) {
    let _scope = sample::scope::ProfilerScope::enter();
    analysis::health::set_callback(std::sync::Arc::new(callback));
}

/// The settings in force (defaults until the first allocation has read the environment).
#[cfg(not(loom))]
pub fn config() -> Config {
    state::config()
}

/// Starts an HTTP server on `addr` (feature `http`; see [HTTP server](crate#http-server)) and
/// returns the address it is bound to: port 0 picks a free port.
///
/// `addr` may be anything [`ToSocketAddrs`](std::net::ToSocketAddrs) takes; the first address
/// it resolves to is used. A non-loopback address is served only if `HEAPTIDE_HTTP_TOKEN` is
/// set, and then every request must carry `Authorization: Bearer <token>` (the token is also
/// required on a loopback address when it is set). The server runs on threads of its own until
/// the process exits; each call starts another one. Works when profiling is off too (reports
/// are then empty, memory figures and purge still work).
///
/// # Errors
///
/// The address does not resolve, cannot be bound (in use, not permitted), or is not loopback
/// and no token is set (`PermissionDenied`); or the server's threads cannot be started.
///
/// # Examples
///
/// ```no_run
/// # #[global_allocator]
/// # static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new();
/// let addr = heaptide::serve("127.0.0.1:6060")?;
/// println!("metrics on http://{addr}/metrics");
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(all(feature = "http", not(loom)))]
pub fn serve(addr: impl std::net::ToSocketAddrs) -> std::io::Result<std::net::SocketAddr> {
    http::serve(addr)
}

#[cfg(all(test, loom))]
mod loom_tests;

/// Entry points for heaptide's fuzz targets (`fuzz/`), compiled only under `cfg(fuzzing)`
/// (which cargo-fuzz sets): the crate-private parsers of the configuration, the dump and the
/// leak-detector settings. Not an API.
#[cfg(all(fuzzing, not(loom)))]
#[doc(hidden)]
pub mod __fuzz {
    use std::time::Duration;

    use crate::Sampling;
    use crate::report::Frame;

    pub use crate::config::ParseError;

    /// The part of a site's stack that pprof and folded stacks show: from the blamed frame to
    /// the program's outermost frame.
    pub fn shown_stack(frames: &[Frame]) -> &[Frame] {
        crate::symbolize::shown_stack(frames)
    }

    /// A plain unsigned integer (`HEAPTIDE_SEED`; the grammar of the other integers).
    pub fn parse_u64(value: &str) -> Result<u64, ParseError> {
        crate::config::parse_u64(value)
    }

    /// A byte size (`HEAPTIDE_LIMIT`, `HEAPTIDE_WARN`, `HEAPTIDE_CRITICAL`; sizes in the other
    /// values).
    pub fn parse_size(value: &str) -> Result<u64, ParseError> {
        crate::config::parse_size(value)
    }

    /// `HEAPTIDE_SAMPLE`.
    pub fn parse_sampling(value: &str) -> Result<Sampling, ParseError> {
        crate::config::parse_sampling(value)
    }

    /// `HEAPTIDE_DEPTH`.
    pub fn parse_depth(value: &str) -> Result<usize, ParseError> {
        crate::config::parse_depth(value)
    }

    /// `HEAPTIDE_SITE_BUDGET`.
    pub fn parse_site_budget(value: &str) -> Result<u64, ParseError> {
        crate::config::parse_site_budget(value)
    }

    /// A duration (`HEAPTIDE_INTERVAL`).
    pub fn parse_duration(value: &str) -> Result<Duration, ParseError> {
        crate::config::parse_duration(value)
    }

    /// A byte count as messages and the text report show it (`512 KiB`, `1.5 MiB`).
    pub fn show_bytes(bytes: u64) -> String {
        crate::config::ByteSize(bytes).to_string()
    }

    /// `HEAPTIDE_SIGNAL`: the signal's name (`SIGUSR1`, `SIGUSR2`), `None` for `none`.
    pub fn parse_signal(value: &str) -> Result<Option<&'static str>, ParseError> {
        crate::dump::parse_signal(value).map(|s| s.map(|s| s.name()))
    }

    /// `HEAPTIDE_FORMATS`: the set written as a dump writes it (`json,pprof,text`).
    pub fn parse_formats(value: &str) -> Result<String, ParseError> {
        crate::dump::parse_formats(value).map(|f| f.to_string())
    }

    /// `HEAPTIDE_DUMP_AT_EXIT`.
    pub fn parse_bool(value: &str) -> Result<bool, ParseError> {
        crate::dump::parse_bool(value)
    }

    /// The leak detector's settings read from these values of `HEAPTIDE_INTERVAL`,
    /// `HEAPTIDE_MAX_SNAPSHOTS`, `HEAPTIDE_LIMIT`, `HEAPTIDE_WARN` and `HEAPTIDE_CRITICAL`
    /// (`None`: unset), as the drain thread reads the environment: (interval, snapshots kept,
    /// limit, warn, critical). A bad value prints its one stderr line.
    pub fn analysis_settings(
        values: [Option<&str>; 5],
    ) -> (Duration, usize, Option<u64>, Option<u64>, Option<u64>) {
        const NAMES: [&str; 5] = [
            "HEAPTIDE_INTERVAL",
            "HEAPTIDE_MAX_SNAPSHOTS",
            "HEAPTIDE_LIMIT",
            "HEAPTIDE_WARN",
            "HEAPTIDE_CRITICAL",
        ];
        let s = crate::analysis::settings::from_env(|name| {
            let i = NAMES.iter().position(|n| n.as_bytes() == name.to_bytes())?;
            values[i]
        });
        (s.interval, s.max_snapshots, s.limit, s.warn, s.critical)
    }
}
