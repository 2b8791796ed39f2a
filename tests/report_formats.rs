//! The pprof and folded-stacks writers end to end: a known workload under the real allocator
//! (exact mode), its report written in both formats and read back.
//!
//! The pprof is decoded with this file's own declaration of the `profile.proto` messages (field
//! numbers from github.com/google/pprof/proto/profile.proto), not with the writer's.
//!
//! With `HEAPTIDE_TEST_PPROF_OUT=<path>` set, the test also writes the profile to that path,
//! for `bin/pprof-check.sh <path> formats_known_leaf` (`go tool pprof` must put the leaf
//! first by live bytes).

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;
use std::io::Read;

use prost::Message;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().exact();

mod common;

use common::settled_report;

const BLOCK: usize = 4096;
const KEPT: u64 = 100;
const FREED: u64 = 1000;

const LEAF_FIRST_LINE: u32 = line!();
/// Makes one allocation of [`BLOCK`] bytes; `black_box` on the result keeps the call from
/// becoming a tail call (which would drop this frame).
#[inline(never)]
fn formats_known_leaf() -> *mut u8 {
    // SAFETY: non-zero size.
    let p = unsafe { alloc(Layout::from_size_align(BLOCK, 8).unwrap()) };
    assert!(!p.is_null());
    black_box(p)
}
const LEAF_LAST_LINE: u32 = line!();

/// The workload: `KEPT + FREED` allocations from one call site, `KEPT` of them kept.
#[inline(never)]
fn formats_workload() -> Vec<*mut u8> {
    let mut kept = Vec::with_capacity(KEPT as usize);
    for i in 0..KEPT + FREED {
        let p = formats_known_leaf();
        if i % ((KEPT + FREED) / KEPT) == 0 {
            kept.push(p);
        } else {
            // SAFETY: allocated just above with this layout.
            unsafe { dealloc(p, Layout::from_size_align(BLOCK, 8).unwrap()) };
        }
    }
    assert_eq!(kept.len() as u64, KEPT);
    black_box(kept)
}

// === profile.proto, decoding side ===

#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    drop_frames: i64,
    #[prost(int64, tag = "8")]
    keep_frames: i64,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
    #[prost(int64, tag = "3")]
    num: i64,
    #[prost(int64, tag = "4")]
    num_unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Mapping {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    memory_start: u64,
    #[prost(uint64, tag = "3")]
    memory_limit: u64,
    #[prost(int64, tag = "5")]
    filename: i64,
    #[prost(int64, tag = "6")]
    build_id: i64,
    #[prost(bool, tag = "7")]
    has_functions: bool,
    #[prost(bool, tag = "8")]
    has_filenames: bool,
    #[prost(bool, tag = "9")]
    has_line_numbers: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
    #[prost(int64, tag = "2")]
    line: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// A location's frame, resolved through the tables.
#[derive(Debug, Clone, PartialEq)]
struct Resolved {
    function: String,
    system_name: String,
    file: String,
    line: i64,
}

impl Profile {
    /// A string table entry; panics (failing the test) on an index out of range.
    fn s(&self, i: i64) -> &str {
        let i = usize::try_from(i).unwrap_or_else(|_| panic!("negative string index {i}"));
        self.string_table
            .get(i)
            .unwrap_or_else(|| panic!("string index {i} out of {}", self.string_table.len()))
    }

    /// A sample's stack, leaf first; every id must resolve.
    fn stack(&self, sample: &Sample) -> Vec<Resolved> {
        sample
            .location_id
            .iter()
            .map(|&id| {
                let loc = self
                    .location
                    .iter()
                    .find(|l| l.id == id)
                    .unwrap_or_else(|| panic!("no location {id}"));
                assert_eq!(loc.line.len(), 1, "one line per location: {loc:?}");
                let line = &loc.line[0];
                let f = self
                    .function
                    .iter()
                    .find(|f| f.id == line.function_id)
                    .unwrap_or_else(|| panic!("no function {}", line.function_id));
                Resolved {
                    function: self.s(f.name).to_string(),
                    system_name: self.s(f.system_name).to_string(),
                    file: self.s(f.filename).to_string(),
                    line: line.line,
                }
            })
            .collect()
    }
}

fn decode_pprof(gz: &[u8]) -> Profile {
    assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]), "not gzip");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut raw)
        .expect("gunzip");
    Profile::decode(&raw[..]).expect("decode profile.proto")
}

/// Ids are unique and non-zero, every reference resolves, every string index is in range.
fn check_consistent(p: &Profile) {
    assert_eq!(p.string_table.first().map(String::as_str), Some(""));
    let unique = |ids: Vec<u64>, what: &str| {
        let n = ids.len();
        let set: std::collections::HashSet<u64> = ids.into_iter().collect();
        assert_eq!(set.len(), n, "{what} ids repeat");
        assert!(!set.contains(&0), "{what} id 0");
        set
    };
    let mappings = unique(p.mapping.iter().map(|m| m.id).collect(), "mapping");
    let locations = unique(p.location.iter().map(|l| l.id).collect(), "location");
    let functions = unique(p.function.iter().map(|f| f.id).collect(), "function");
    for m in &p.mapping {
        p.s(m.filename);
        p.s(m.build_id);
        assert!(m.has_functions && m.has_filenames && m.has_line_numbers);
    }
    for l in &p.location {
        assert!(l.mapping_id == 0 || mappings.contains(&l.mapping_id));
        assert!(!l.line.is_empty());
        for line in &l.line {
            assert!(functions.contains(&line.function_id));
        }
    }
    for f in &p.function {
        assert!(!p.s(f.name).is_empty(), "function without a name: {f:?}");
        p.s(f.system_name);
        p.s(f.filename);
    }
    for s in &p.sample {
        for l in &s.label {
            p.s(l.key);
            p.s(l.str);
            p.s(l.num_unit);
        }
        assert_eq!(s.value.len(), p.sample_type.len());
        assert!(!s.location_id.is_empty());
        for id in &s.location_id {
            assert!(locations.contains(id), "sample refers to no location {id}");
        }
    }
    for &c in &p.comment {
        p.s(c);
    }
    p.s(p.drop_frames);
    p.s(p.keep_frames);
    p.s(p.default_sample_type);
}

#[test]
fn known_workload_in_pprof_and_folded() {
    let kept = formats_workload();
    let r = settled_report();
    assert!(r.exact, "exact mode expected");
    assert_eq!(r.profiler.dropped, 0);

    // The report itself: one site, the truth.
    let sites: Vec<&heaptide::report::Site> = r.sites_mentioning("formats_known_leaf").collect();
    assert_eq!(sites.len(), 1, "{sites:#?}");
    let site = sites[0];
    let blamed = site.blamed.as_ref().expect("a blamed frame");
    assert!(
        blamed.function.ends_with("formats_known_leaf"),
        "{blamed:?}"
    );
    assert_eq!(site.blamed_frame(), Some(blamed));
    let total = KEPT + FREED;
    let block = BLOCK as u64;
    assert_eq!(
        (
            site.alloc_count,
            site.alloc_bytes,
            site.live_count,
            site.live_bytes
        ),
        (total, total * block, KEPT, KEPT * block)
    );

    // === pprof ===
    let mut gz = Vec::new();
    r.write_pprof(&mut gz).unwrap();
    if let Some(path) = std::env::var_os("HEAPTIDE_TEST_PPROF_OUT") {
        std::fs::write(&path, &gz).unwrap();
        eprintln!("pprof written to {}", path.to_string_lossy());
    }
    let p = decode_pprof(&gz);
    check_consistent(&p);

    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (p.s(t.r#type), p.s(t.unit)))
        .collect();
    assert_eq!(
        types,
        [
            ("alloc_objects", "count"),
            ("alloc_space", "bytes"),
            ("inuse_objects", "count"),
            ("inuse_space", "bytes"),
        ]
    );
    assert_eq!(p.s(p.default_sample_type), "inuse_space");
    let period_type = p.period_type.as_ref().expect("period_type");
    assert_eq!(
        (p.s(period_type.r#type), p.s(period_type.unit)),
        ("space", "bytes")
    );
    assert_eq!(p.period, 1, "exact mode: period 1");
    assert_eq!(
        p.time_nanos,
        i64::try_from(r.timestamp).unwrap() * 1_000_000
    );
    let comments: Vec<&str> = p.comment.iter().map(|&c| p.s(c)).collect();
    assert!(
        comments.iter().any(|c| c.contains("heaptide"))
            && comments.iter().any(|c| c.contains("exact")),
        "{comments:?}"
    );

    // One sample per site, with the site's figures and frames.
    assert_eq!(p.sample.len(), r.sites.len());
    for (sample, site) in p.sample.iter().zip(&r.sites) {
        let values: Vec<u64> = sample.value.iter().map(|&v| v as u64).collect();
        assert_eq!(
            values,
            [
                site.alloc_count,
                site.alloc_bytes,
                site.live_count,
                site.live_bytes
            ]
        );
        let names: Vec<String> = p.stack(sample).into_iter().map(|f| f.function).collect();
        // Stacks run from the blamed frame (the allocation plumbing on top left out) to the
        // program's outermost frame (the start-up frames below it left out).
        let Some(blamed) = site.blamed_frame() else {
            assert_eq!(names, ["<unknown>"]);
            continue;
        };
        let start = site.frames.iter().position(|f| f == blamed).unwrap();
        let end = start + names.len();
        let full: Vec<&str> = site.frames.iter().map(|f| f.function.as_str()).collect();
        assert_eq!(names, full[start..end], "{full:#?}");
        for f in &site.frames[end..] {
            let std_file = f
                .file
                .as_deref()
                .is_some_and(|file| file.starts_with("/rustc/") || file.contains("/libc"));
            let start_up = ["main", "_start", "start_thread", "clone3", "clone"]
                .contains(&f.function.as_str())
                || f.function.starts_with("__libc_start");
            assert!(
                std_file || start_up || f.function.starts_with("std::"),
                "{f:?} left out of the stack in pprof: {full:#?}"
            );
        }
    }

    // The known site: exactly one sample, the exact figures, symbolized frames.
    let known: Vec<&Sample> = p
        .sample
        .iter()
        .filter(|s| {
            p.stack(s)
                .iter()
                .any(|f| f.function.contains("formats_known_leaf"))
        })
        .collect();
    assert_eq!(known.len(), 1);
    let expected = [total, total * block, KEPT, KEPT * block].map(|v| v as i64);
    assert_eq!(known[0].value, expected);
    // Its object size, as Go's heap profiles label samples.
    let labels: Vec<(&str, i64, &str)> = known[0]
        .label
        .iter()
        .map(|l| (p.s(l.key), l.num, p.s(l.num_unit)))
        .collect();
    assert_eq!(labels, [("bytes", BLOCK as i64, "bytes")]);
    // The mapping table: this test binary first, with its build id.
    let exe = std::env::current_exe().unwrap();
    assert_eq!(p.s(p.mapping[0].filename), exe.to_string_lossy());
    assert!(p.mapping[0].memory_start < p.mapping[0].memory_limit);
    assert!(!p.s(p.mapping[0].build_id).is_empty());
    let stack = p.stack(known[0]);
    // The leaf is the blamed frame; the root end has no process start-up frames.
    assert!(
        stack[0].function.ends_with("formats_known_leaf"),
        "{stack:#?}"
    );
    for f in &stack {
        assert!(
            !["_start", "main", "0x0", "clone3", "start_thread"].contains(&f.function.as_str())
                && !f.function.starts_with("__libc_start"),
            "start-up frame {f:?} in {stack:#?}"
        );
    }
    let leaf = stack
        .iter()
        .position(|f| f.function.ends_with("formats_known_leaf"))
        .unwrap_or_else(|| panic!("no leaf frame in {stack:#?}"));
    let f = &stack[leaf];
    assert!(
        f.function.starts_with("report_formats::"),
        "{:?}",
        f.function
    );
    // Left empty on purpose: equal to the name, pprof would "demangle" it (see pprof.rs).
    assert_eq!(f.system_name, "");
    assert!(f.file.ends_with("report_formats.rs"), "{:?}", f.file);
    assert!(
        (i64::from(LEAF_FIRST_LINE)..=i64::from(LEAF_LAST_LINE)).contains(&f.line),
        "line {} not in the leaf ({LEAF_FIRST_LINE}..={LEAF_LAST_LINE})",
        f.line
    );
    // Leaf first: the callers come after it.
    let caller = stack
        .iter()
        .position(|f| f.function.ends_with("formats_workload"))
        .unwrap_or_else(|| panic!("no caller frame in {stack:#?}"));
    assert!(leaf < caller, "{stack:#?}");
    // Frames before the leaf are the allocator's entry points, which drop_frames hides.
    let drop = regex_alternatives(p.s(p.drop_frames));
    for f in &stack[..leaf] {
        assert!(
            drop.iter().any(|prefix| f.function.starts_with(prefix)),
            "frame inside the leaf not covered by drop_frames: {:?}",
            f.function
        );
    }

    // === folded ===
    let mut out = Vec::new();
    r.write_folded(&mut out).unwrap();
    let folded = String::from_utf8(out).unwrap();
    let mut sum = 0;
    for line in folded.lines() {
        let (stack, value) = line.rsplit_once(' ').expect("`stack value`");
        let value: u64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        assert!(value > 0 && !stack.is_empty(), "{line:?}");
        sum += value;
    }
    assert_eq!(sum, r.sites.iter().map(|s| s.live_bytes).sum::<u64>());
    let lines: Vec<&str> = folded
        .lines()
        .filter(|l| l.contains("formats_known_leaf"))
        .collect();
    assert_eq!(lines.len(), 1, "{folded}");
    let line = lines[0];
    assert!(line.ends_with(&format!(" {}", KEPT * block)), "{line:?}");
    // Root first: the caller, then the leaf.
    let frames: Vec<&str> = line.rsplit_once(' ').unwrap().0.split(';').collect();
    let leaf = frames
        .iter()
        .position(|f| f.ends_with("formats_known_leaf"))
        .unwrap();
    let caller = frames
        .iter()
        .position(|f| f.ends_with("formats_workload"))
        .unwrap();
    assert!(caller < leaf, "{line:?}");
    // The blamed frame is the last: the allocation plumbing above it is left out, and so is
    // the process start-up below the program's frames.
    assert_eq!(leaf, frames.len() - 1, "{line:?}");
    assert!(
        !frames
            .iter()
            .any(|f| f.starts_with("__libc_start") || *f == "_start" || *f == "start_thread"),
        "{line:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.ends_with("known_workload_in_pprof_and_folded")),
        "{line:?}"
    );

    for p in kept {
        // SAFETY: allocated by the leaf with this layout, freed once.
        unsafe { dealloc(p, Layout::from_size_align(BLOCK, 8).unwrap()) };
    }
}

/// The literal prefixes of a `drop_frames` made of `prefix.*` alternatives.
fn regex_alternatives(re: &str) -> Vec<String> {
    re.split('|')
        .map(|alt| {
            alt.strip_suffix(".*")
                .unwrap_or_else(|| panic!("alternative {alt:?} does not end in .*"))
                .to_string()
        })
        .collect()
}
