//! The `tracing` layer against known truth, in exact mode: allocations made inside an entered
//! span carry its labels (its name, or the fields the layer is told to use), nested spans add
//! up, and leaving a span takes its labels off.

#![cfg(feature = "tracing")]

use heaptide::Report;
use heaptide::report::Labels;
use tracing_subscriber::layer::SubscriberExt as _;

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

const BLOCK: usize = 2048;

#[inline(never)]
#[allow(
    clippy::vec_box,
    reason = "one allocation per block is what is measured"
)]
fn fill(into: &mut Vec<Box<[u8; BLOCK]>>, n: usize) {
    for _ in 0..n {
        into.push(Box::new([5u8; BLOCK]));
    }
}

fn live_under(r: &Report, pairs: &[(&str, &str)]) -> u64 {
    let want: Labels = pairs
        .iter()
        .map(|&(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r.sites
        .iter()
        .filter(|s| {
            s.labels == want
                && s.blamed_frame()
                    .is_some_and(|f| f.function.ends_with("fill"))
        })
        .map(|s| s.live_bytes)
        .sum()
}

#[test]
fn spans_label_their_allocations() {
    let mut names: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut fields: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);
    let mut after: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(64);

    // By span name.
    let subscriber = tracing_subscriber::registry().with(heaptide::LabelLayer::new());
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("load_config");
        for _ in 0..3 {
            // Entered three times: the same labels each time.
            let _e = span.enter();
            fill(&mut names, 2);
        }
        let _outer = tracing::info_span!("outer").entered();
        let _inner = tracing::info_span!("inner").entered();
        fill(&mut names, 1);
    });

    // By field, nested: the inner value wins for a key both set.
    let layer = heaptide::LabelLayer::new()
        .field("component")
        .field("tenant");
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let _a = tracing::info_span!("request", tenant = "acme").entered();
        fill(&mut fields, 1);
        {
            let _b = tracing::info_span!("cache", component = "cache").entered();
            fill(&mut fields, 4);
            let _c = tracing::info_span!("db", component = "db").entered();
            fill(&mut fields, 2);
        }
        // A span without the fields adds nothing.
        let _d = tracing::info_span!("plain").entered();
        fill(&mut fields, 3);
    });
    fill(&mut after, 5);

    let r = heaptide::report();
    let b = BLOCK as u64;
    assert_eq!(live_under(&r, &[("span", "load_config")]), 6 * b, "{r}");
    assert_eq!(live_under(&r, &[("span", "inner")]), b, "{r}");
    assert_eq!(live_under(&r, &[("tenant", "acme")]), 4 * b, "{r}");
    assert_eq!(
        live_under(&r, &[("component", "cache"), ("tenant", "acme")]),
        4 * b,
        "{r}"
    );
    assert_eq!(
        live_under(&r, &[("component", "db"), ("tenant", "acme")]),
        2 * b,
        "{r}"
    );
    assert_eq!(live_under(&r, &[]), 5 * b, "{r}");
    drop((names, fields, after));
}
