//! Marks and diffs against known truth: in exact mode, a diff between a mark and now names the
//! site that appeared with exactly the bytes it allocated, and the site whose blocks were
//! freed, with exactly the bytes it held.

use heaptide::report::{ChangeKind, Diff, SiteChange};

#[global_allocator]
static ALLOC: heaptide::Heaptide = heaptide::Heaptide::new().exact();

#[inline(never)]
#[allow(
    clippy::vec_box,
    reason = "one allocation per block is what is measured"
)]
fn make_early() -> Vec<Box<[u8; 1024]>> {
    (0..32).map(|_| Box::new([7u8; 1024])).collect()
}

#[inline(never)]
fn grow_after_mark(into: &mut Vec<Box<[u8; 4096]>>) {
    for _ in 0..64 {
        into.push(Box::new([1u8; 4096]));
    }
}

fn site<'a>(diff: &'a Diff, function: &str) -> &'a SiteChange {
    diff.sites
        .iter()
        .find(|c| {
            c.blamed_frame()
                .is_some_and(|f| f.function.ends_with(function))
        })
        .unwrap_or_else(|| panic!("no site blamed on {function} in\n{diff}"))
}

#[test]
fn marks_and_diffs() {
    // One test: the marks are the process's, and the sites counted are the whole process's.
    let mut kept: Vec<Box<[u8; 4096]>> = Vec::with_capacity(64);
    let early = make_early();
    heaptide::mark("before");

    grow_after_mark(&mut kept);
    drop(early);

    let diff = heaptide::diff_since("before").expect("the mark exists");
    assert!(diff.exact && diff.same_process, "{diff}");

    let grew = site(&diff, "grow_after_mark");
    assert_eq!(grew.kind, ChangeKind::New, "{diff}");
    assert_eq!(grew.live_bytes.now, Some(64 * 4096), "{diff}");
    assert_eq!(grew.live_count.now, Some(64), "{diff}");

    let freed = site(&diff, "make_early::{{closure}}");
    assert_eq!(freed.kind, ChangeKind::Freed, "{diff}");
    assert_eq!(freed.live_bytes.base, Some(32 * 1024), "{diff}");
    assert_eq!(freed.live_bytes.now, Some(0), "{diff}");
    assert_eq!(freed.live_bytes.delta(), -32 * 1024, "{diff}");

    let text = diff.to_string();
    assert!(text.contains("New sites"), "{text}");
    assert!(text.contains("Freed sites"), "{text}");

    // The kept report is the one taken at the mark.
    let base = heaptide::marked("before").expect("kept");
    assert_eq!(base.timestamp, diff.base_timestamp);
    assert!(heaptide::diff_since("no such mark").is_none());
    assert!(heaptide::marked("no such mark").is_none());

    // Marking a name again replaces it; past 16 names the oldest is forgotten.
    heaptide::mark("before");
    assert!(heaptide::marked("before").unwrap().timestamp >= base.timestamp);
    for i in 0..16 {
        heaptide::mark(&format!("m{i}"));
    }
    let names: Vec<String> = heaptide::marks().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 16, "{names:?}");
    assert!(!names.contains(&"before".to_string()), "{names:?}");
    assert_eq!(names.first().map(String::as_str), Some("m0"));
    assert_eq!(names.last().map(String::as_str), Some("m15"));
    drop(kept);
}
