//! Labels against known truth, in exact mode: memory allocated under a label is reported under
//! it to the byte, whichever form set the label (closure, guard, future polled on two threads),
//! one call stack under two labels is two sites, nested labels add up, and pprof's sample
//! labels select them in `go tool pprof -tagfocus`.

#[path = "common/net.rs"]
#[allow(dead_code, reason = "this test uses `which` only")]
mod net;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use heaptide::Report;
use heaptide::report::{Labels, Site};
use net::which;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

const BLOCK: usize = 4096;

/// Pushes `n` boxes of 4 KiB: the only allocations it makes (`into` has room).
#[inline(never)]
#[allow(
    clippy::vec_box,
    reason = "one allocation per block is what is measured"
)]
fn fill(into: &mut Vec<Box<[u8; BLOCK]>>, n: usize) {
    for _ in 0..n {
        into.push(Box::new([3u8; BLOCK]));
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The sites blamed on `function` with exactly `pairs` as labels (one per calling line).
fn sites<'a>(
    r: &'a Report,
    function: &'a str,
    pairs: &[(&str, &str)],
) -> impl Iterator<Item = &'a Site> {
    let want = labels(pairs);
    r.sites.iter().filter(move |s| {
        s.labels == want
            && s.blamed_frame()
                .is_some_and(|f| f.function.ends_with(function))
    })
}

fn live_at(r: &Report, function: &str, pairs: &[(&str, &str)]) -> u64 {
    sites(r, function, pairs).map(|s| s.live_bytes).sum()
}

/// A future that is pending once (waking itself), then fills.
struct FillAcrossAwait<'a> {
    into: &'a mut Vec<Box<[u8; BLOCK]>>,
    polls: u32,
}

impl Future for FillAcrossAwait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        fill(self.into, 4);
        self.polls += 1;
        if self.polls == 1 {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

#[test]
fn labels_attribute_memory_exactly() {
    // One test: labels and sites are the process's.
    let mut cache: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut db: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut plain: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut nested: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut guarded: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut task: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);

    // One stack, three label sets: three sites.
    heaptide::label("component", "cache", || fill(&mut cache, 10));
    heaptide::label("component", "db", || fill(&mut db, 6));
    fill(&mut plain, 3);
    // Nested labels add up; the inner value wins for a key both set.
    heaptide::label("component", "cache", || {
        heaptide::label("op", "insert", || fill(&mut nested, 2));
        heaptide::label("component", "db", || {
            heaptide::label("op", "scan", || fill(&mut nested, 1))
        });
    });
    {
        let _g = heaptide::label_guard("component", "guarded");
        fill(&mut guarded, 5);
    }
    // After the guard, no label.
    fill(&mut plain, 1);

    // A future keeps its label across an await and across threads: polled first here (inside
    // another label, which it replaces for its polls), then on another thread.
    let mut fut = Box::pin(heaptide::labelled(
        "task",
        "loader",
        FillAcrossAwait {
            into: &mut task,
            polls: 0,
        },
    ));
    let waker = Waker::from(Arc::new(NoopWake));
    let first = heaptide::label("component", "executor", || {
        fut.as_mut().poll(&mut Context::from_waker(&waker))
    });
    assert!(first.is_pending());
    std::thread::scope(|s| {
        s.spawn(|| {
            let waker = Waker::from(Arc::new(NoopWake));
            assert!(
                fut.as_mut()
                    .poll(&mut Context::from_waker(&waker))
                    .is_ready()
            );
        });
    });
    drop(fut);

    let r = heaptide::report();
    let b = BLOCK as u64;
    assert_eq!(
        live_at(&r, "fill", &[("component", "cache")]),
        10 * b,
        "{r}"
    );
    assert_eq!(live_at(&r, "fill", &[("component", "db")]), 6 * b, "{r}");
    assert_eq!(live_at(&r, "fill", &[]), 4 * b, "{r}");
    assert_eq!(
        live_at(&r, "fill", &[("component", "cache"), ("op", "insert")]),
        2 * b,
        "{r}"
    );
    assert_eq!(
        live_at(&r, "fill", &[("component", "db"), ("op", "scan")]),
        b,
        "{r}"
    );
    assert_eq!(
        live_at(&r, "fill", &[("component", "guarded")]),
        5 * b,
        "{r}"
    );
    assert_eq!(live_at(&r, "fill", &[("task", "loader")]), 8 * b, "{r}");
    assert_eq!(live_at(&r, "fill", &[("component", "executor")]), 0, "{r}");

    // Totals by label set and by label value.
    let usage = |pairs: &[(&str, &str)]| {
        let want = labels(pairs);
        r.labels
            .iter()
            .find(|l| l.labels == want)
            .map_or(0, |l| l.live_bytes)
    };
    assert_eq!(usage(&[("component", "cache")]), 10 * b, "{:?}", r.labels);
    assert_eq!(usage(&[("task", "loader")]), 8 * b, "{:?}", r.labels);
    let by_component = r.live_by_label("component");
    let of = |v: &str| by_component.iter().find(|(k, _)| k == v).map(|&(_, b)| b);
    assert_eq!(of("cache"), Some(12 * b), "{by_component:?}");
    assert_eq!(of("db"), Some(7 * b), "{by_component:?}");
    assert_eq!(of("guarded"), Some(5 * b), "{by_component:?}");

    // In the text report and in JSON.
    let text = r.to_string();
    assert!(text.contains("Memory by label:"), "{text}");
    assert!(text.contains("[component=cache]"), "{text}");
    let json = serde_json::to_value(&r).unwrap();
    let labelled = json["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"]["component"] == "guarded")
        .expect("a JSON site labelled component=guarded");
    assert_eq!(labelled["live_bytes"], 5 * b);

    // Freed memory leaves its label's live figures.
    drop(cache);
    let r = heaptide::report();
    assert_eq!(live_at(&r, "fill", &[("component", "cache")]), 0, "{r}");
    assert_eq!(
        r.live_by_label("component")
            .iter()
            .find(|(k, _)| k == "cache")
            .map(|&(_, b)| b),
        Some(2 * b)
    );

    go_tool_pprof_focuses_on_a_label(&r);
    drop((db, plain, nested, guarded, task));
}

/// `go tool pprof -tagfocus=component=guarded` keeps only that label's samples.
fn go_tool_pprof_focuses_on_a_label(r: &Report) {
    let Some(go) = which("go") else {
        eprintln!(
            "NOTICE: go is not installed (apt-get install golang-go); pprof tags not checked"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("heaptide-labels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("heap.pb.gz");
    let mut file = std::fs::File::create(&path).unwrap();
    r.write_pprof(&mut file).unwrap();
    drop(file);
    let pprof = |args: &[&str]| {
        let out = std::process::Command::new(&go)
            .args(["tool", "pprof"])
            .args(args)
            .arg(&path)
            .env("HOME", &dir)
            .env("PPROF_TMPDIR", &dir)
            .env("GOCACHE", dir.join("gocache"))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "go tool pprof {args:?} failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let tags = pprof(&["-tags"]);
    assert!(
        tags.contains("component") && tags.contains("guarded") && tags.contains("loader"),
        "{tags}"
    );
    // 5 blocks of 4 KiB live under component=guarded: 20 KiB (20.00kB in pprof's units).
    let top = pprof(&[
        "-top",
        "-sample_index=inuse_space",
        "-tagfocus=component=guarded",
    ]);
    let fill_line = top
        .lines()
        .find(|l| l.contains("labels::fill"))
        .unwrap_or_else(|| panic!("no fill line in\n{top}"));
    assert!(fill_line.contains("20kB"), "{top}");
    assert!(top.contains("Showing nodes accounting for 20kB"), "{top}");
    let _ = std::fs::remove_dir_all(&dir);
}
