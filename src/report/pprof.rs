//! pprof writer: the report as a gzipped `profile.proto` (`perftools.profiles.Profile`), the
//! format `go tool pprof`, Pyroscope, Parca and Grafana read.
//!
//! - Sample types, in this order: `alloc_objects/count`, `alloc_space/bytes`,
//!   `inuse_objects/count`, `inuse_space/bytes`; the default is `inuse_space`.
//! - One sample per site, with the site's figures as they are: estimates are already unbiased,
//!   so nothing is left for a tool to rescale (`period` is informational, as in Go's own heap
//!   profiles).
//! - One location per distinct frame (function, file, line), holding one line: the report
//!   lists inlined functions as frames of their own. Functions are deduplicated by (name,
//!   file). Locations have no address.
//! - The mapping table lists the process's executable file mappings from `/proc/self/maps`,
//!   the main binary first, with each file's offset and GNU build id (when the report is
//!   written by the process it describes; a report read back from elsewhere gets one mapping
//!   named after its command line). Every location belongs to the first mapping, which says
//!   symbols are resolved: without that `go tool pprof` tries to symbolize, and without a
//!   named main binary it complains that the binary's name is not available.
//! - `system_name` is left empty: the report has no mangled names, and pprof takes a function
//!   whose `system_name` equals its `name` for one still to demangle, and would strip every
//!   `<...>` from it (`<alloc::alloc::Global>::alloc_impl` would read `::alloc_impl`).
//! - Each stack's leaf is the site's blamed frame ([`Site::blamed_frame`](super::Site::blamed_frame)):
//!   the innermost frame that is not heaptide's or the standard library's allocation
//!   plumbing, known by its source file (the toolchain's `library/` sources, whatever the
//!   debug-info level) or, without debug info, by its name. `-top` then charges each
//!   allocation's bytes ("flat") to the function that asked for them, as Go's heap profiles
//!   do with the runtime's malloc frames. The JSON report keeps the plumbing frames.
//! - Each stack's root end loses the process's start-up frames (`_start`,
//!   `__libc_start_main`, rustc's `main` shim, `std::rt::lang_start` and the standard
//!   library's frames under the program's outermost frame; for threads `clone3`,
//!   `start_thread` and std's thread start), which every stack shares and which say nothing.
//! - Each sample carries a numeric label `bytes` (unit `bytes`): the site's average object
//!   size (allocated bytes / allocations), as Go's heap profiles label each sample with its
//!   object size (`-tagfocus=bytes:1MB:` selects big objects), and a string label for each
//!   of the site's labels ([`crate::label()`]: `-tagfocus=component=cache` selects them,
//!   `-tags` lists them).
//! - `drop_frames` also names the allocator's entry points in the standard library (`alloc::alloc`,
//!   `alloc::raw_vec`), for profiles whose frames came from elsewhere.

use std::collections::HashMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;

use super::{Frame, Report, Site};

/// The sample types, in the order of each sample's values: (type, unit).
const SAMPLE_TYPES: [(&str, &str); 4] = [
    ("alloc_objects", "count"),
    ("alloc_space", "bytes"),
    ("inuse_objects", "count"),
    ("inuse_space", "bytes"),
];

/// Index in [`SAMPLE_TYPES`] of the default sample type (`inuse_space`).
const DEFAULT_SAMPLE_TYPE: usize = 3;

/// The function name of the one location of a site without frames.
const UNKNOWN: &str = "<unknown>";

/// pprof's `drop_frames`: a regular expression (RE2, matched against whole function names) for
/// the standard library's allocation entry points, which only ever call the global allocator.
const DROP_FRAMES: &str =
    r"alloc::alloc::.*|<alloc::alloc::Global.*|alloc::raw_vec::.*|<alloc::raw_vec::.*";

impl Report {
    /// Writes the report as a gzipped pprof `profile.proto` (see the module documentation for
    /// what it holds).
    pub fn write_pprof(&self, w: &mut impl Write) -> std::io::Result<()> {
        let bytes = self.to_profile().encode_to_vec();
        // Compressed in memory, then written: an encoder over `w` would write again from its
        // `Drop` while a panic from `w` unwinds, and a second panic aborts the process.
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&bytes)?;
        w.write_all(&gz.finish()?)
    }

    /// The report as a pprof message.
    fn to_profile(&self) -> Profile {
        let unknown = Frame {
            function: UNKNOWN.to_string(),
            file: None,
            line: None,
        };
        let mut b = Builder::default();
        let sample_type = SAMPLE_TYPES
            .iter()
            .map(|&(ty, unit)| ValueType {
                r#type: b.string(ty),
                unit: b.string(unit),
            })
            .collect::<Vec<_>>();
        let default_sample_type = sample_type[DEFAULT_SAMPLE_TYPE].r#type;

        let mut sample = Vec::with_capacity(self.sites.len());
        for site in &self.sites {
            // From the frame a person would blame to the program's outermost frame (see the
            // module docs).
            let location_id = if site.frames.is_empty() {
                vec![b.location(&unknown)]
            } else {
                crate::symbolize::shown_stack(&site.frames)
                    .iter()
                    .map(|f| b.location(f))
                    .collect()
            };
            let mut label: Vec<Label> = object_size(site)
                .map(|size| Label {
                    key: b.string("bytes"),
                    str: 0,
                    num: to_i64(size),
                    num_unit: b.string("bytes"),
                })
                .into_iter()
                .collect();
            for (key, value) in &site.labels {
                label.push(Label {
                    key: b.string(key),
                    str: b.string(value),
                    num: 0,
                    num_unit: 0,
                });
            }
            sample.push(Sample {
                location_id,
                label,
                value: [
                    site.alloc_count,
                    site.alloc_bytes,
                    site.live_count,
                    site.live_bytes,
                ]
                .into_iter()
                .map(to_i64)
                .collect(),
            });
        }

        let kind = if self.exact {
            "figures exact: every allocation recorded".to_string()
        } else if self.sample_interval == 0 {
            "profiling off: no figures".to_string()
        } else {
            format!(
                "figures estimated from samples, one per {} bytes on average (already unbiased, \
                 not to be rescaled)",
                self.sample_interval
            )
        };
        let mut comment = vec![
            b.string(&format!(
                "heaptide {} heap profile of pid {}",
                env!("CARGO_PKG_VERSION"),
                self.pid
            )),
            b.string(&kind),
            b.string(&format!(
                "{} of {} call sites (the top by live and by allocated bytes)",
                self.sites.len(),
                self.sites_seen
            )),
            b.string(&format!(
                "health {:?}{}{}",
                self.health.status,
                if self.health.reasons.is_empty() {
                    ""
                } else {
                    ": "
                },
                self.health.reasons.join("; ")
            )),
        ];
        // The leak candidates travel with the profile (pprof shows comments in its header).
        for leak in &self.leaks {
            let at = leak
                .blamed_frame()
                .map_or("<unknown>", |f| f.function.as_str());
            comment.push(b.string(&format!(
                "leak: {:?} {:?} at {at}: {} bytes live, {:+.0} bytes/h, confidence {:.2}",
                leak.severity,
                leak.pattern,
                leak.live_bytes,
                leak.growth_bytes_per_hour,
                leak.confidence
            )));
        }
        let period_type = Some(ValueType {
            r#type: b.string("space"),
            unit: b.string("bytes"),
        });
        let mapping = self.mapping_table(&mut b);
        let drop_frames = b.string(DROP_FRAMES);

        Profile {
            sample_type,
            sample,
            mapping,
            location: b.locations,
            function: b.functions,
            string_table: b.strings,
            drop_frames,
            keep_frames: 0,
            time_nanos: to_i64(self.timestamp).saturating_mul(1_000_000),
            duration_nanos: 0,
            period_type,
            period: to_i64(self.sample_interval.max(1)),
            comment,
            default_sample_type,
        }
    }
}

impl Report {
    /// The profile's mapping table (see the module docs): the process's executable mappings
    /// if this process wrote the report, else one mapping named after the program.
    fn mapping_table(&self, b: &mut Builder<'_>) -> Vec<Mapping> {
        let resolved = |id: u64, filename: i64| Mapping {
            id,
            filename,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
            ..Mapping::default()
        };
        let maps = if self.pid == std::process::id() {
            super::mappings::current()
        } else {
            Vec::new()
        };
        if maps.is_empty() {
            let program = self.command_line.first().map_or("", String::as_str);
            return vec![resolved(MAPPING_ID, b.string(program))];
        }
        maps.iter()
            .zip(MAPPING_ID..)
            .map(|(m, id)| Mapping {
                memory_start: m.start,
                memory_limit: m.limit,
                file_offset: m.offset,
                build_id: b.string(&m.build_id),
                ..resolved(id, b.string(&m.path))
            })
            .collect()
    }
}

/// The id of the profile's first mapping (the main binary's), which every location names.
const MAPPING_ID: u64 = 1;

/// A site's average object size, bytes (`None` without allocations).
fn object_size(site: &Site) -> Option<u64> {
    (site.alloc_count > 0).then(|| site.alloc_bytes / site.alloc_count)
}

/// A protobuf `int64` from a figure (figures beyond `i64::MAX` saturate).
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Interns strings, functions and locations, handing out their indices and ids.
struct Builder<'a> {
    strings: Vec<String>,
    string_index: HashMap<String, i64>,
    functions: Vec<Function>,
    function_ids: HashMap<(i64, i64), u64>,
    locations: Vec<Location>,
    location_ids: HashMap<&'a Frame, u64>,
}

impl Default for Builder<'_> {
    fn default() -> Self {
        Builder {
            // string_table[0] must be "".
            strings: vec![String::new()],
            string_index: HashMap::from([(String::new(), 0)]),
            functions: Vec::new(),
            function_ids: HashMap::new(),
            locations: Vec::new(),
            location_ids: HashMap::new(),
        }
    }
}

impl<'a> Builder<'a> {
    /// The string table index of `s`.
    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_string());
        self.string_index.insert(s.to_string(), i);
        i
    }

    /// The id of the location of `frame`.
    fn location(&mut self, frame: &'a Frame) -> u64 {
        if let Some(&id) = self.location_ids.get(frame) {
            return id;
        }
        let name = self.string(&frame.function);
        let filename = match &frame.file {
            Some(file) => self.string(file),
            None => 0,
        };
        let function_id = match self.function_ids.get(&(name, filename)) {
            Some(&id) => id,
            None => {
                let id = self.functions.len() as u64 + 1;
                self.functions.push(Function {
                    id,
                    name,
                    // Empty: see the module documentation.
                    system_name: 0,
                    filename,
                    start_line: 0,
                });
                self.function_ids.insert((name, filename), id);
                id
            }
        };
        let id = self.locations.len() as u64 + 1;
        self.locations.push(Location {
            id,
            mapping_id: MAPPING_ID,
            address: 0,
            line: vec![Line {
                function_id,
                line: frame.line.map_or(0, i64::from),
            }],
            is_folded: false,
        });
        self.location_ids.insert(frame, id);
        id
    }
}

// The messages of `profile.proto` that heaptide writes (field numbers as in
// github.com/google/pprof/proto/profile.proto; fields it never sets are left out).

/// `perftools.profiles.Profile`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Profile {
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    #[prost(int64, tag = "7")]
    pub drop_frames: i64,
    #[prost(int64, tag = "8")]
    pub keep_frames: i64,
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    #[prost(int64, tag = "10")]
    pub duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    pub period: i64,
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
    #[prost(int64, tag = "14")]
    pub default_sample_type: i64,
}

/// `perftools.profiles.ValueType`: string table indices.
#[derive(Clone, Copy, PartialEq, Message)]
pub(crate) struct ValueType {
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// `perftools.profiles.Sample`: location ids leaf first, values as in `sample_type`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// `perftools.profiles.Label`: string table indices, or a number with its unit.
#[derive(Clone, Copy, PartialEq, Message)]
pub(crate) struct Label {
    #[prost(int64, tag = "1")]
    pub key: i64,
    #[prost(int64, tag = "2")]
    pub str: i64,
    #[prost(int64, tag = "3")]
    pub num: i64,
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// `perftools.profiles.Mapping`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Mapping {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    #[prost(int64, tag = "5")]
    pub filename: i64,
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// `perftools.profiles.Location`.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Location {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    #[prost(uint64, tag = "3")]
    pub address: u64,
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
    #[prost(bool, tag = "5")]
    pub is_folded: bool,
}

/// `perftools.profiles.Line`.
#[derive(Clone, Copy, PartialEq, Message)]
pub(crate) struct Line {
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// `perftools.profiles.Function`: string table indices, and the first line if known.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct Function {
    #[prost(uint64, tag = "1")]
    pub id: u64,
    #[prost(int64, tag = "2")]
    pub name: i64,
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    #[prost(int64, tag = "4")]
    pub filename: i64,
    #[prost(int64, tag = "5")]
    pub start_line: i64,
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::report::Site;

    fn frame(function: &str, file: Option<&str>, line: Option<u32>) -> Frame {
        Frame {
            function: function.to_string(),
            file: file.map(str::to_string),
            line,
        }
    }

    fn site(id: u64, frames: Vec<Frame>, figures: [u64; 4]) -> Site {
        let [alloc_count, alloc_bytes, live_count, live_bytes] = figures;
        Site {
            id,
            frames,
            alloc_bytes,
            alloc_count,
            live_bytes,
            live_count,
            samples: alloc_count,
            ..Site::default()
        }
    }

    fn report(sites: Vec<Site>, exact: bool, sample_interval: u64) -> Report {
        Report {
            version: crate::report::REPORT_VERSION,
            pid: 4242,
            timestamp: 1_700_000_000_123,
            sample_interval,
            exact,
            sites_seen: sites.len() as u64,
            sites,
            ..Report::default()
        }
    }

    /// Writes, gunzips and decodes.
    fn roundtrip(r: &Report) -> Profile {
        let mut gz = Vec::new();
        r.write_pprof(&mut gz).unwrap();
        assert_eq!(&gz[..2], &[0x1f, 0x8b], "not gzip");
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .unwrap();
        Profile::decode(&raw[..]).unwrap()
    }

    fn s(p: &Profile, i: i64) -> &str {
        &p.string_table[usize::try_from(i).unwrap()]
    }

    /// The (function, file, line) of each location of a sample, leaf first.
    fn stack(p: &Profile, sample: &Sample) -> Vec<(String, String, i64)> {
        sample
            .location_id
            .iter()
            .map(|&id| {
                let loc = &p.location[usize::try_from(id - 1).unwrap()];
                assert_eq!(loc.id, id);
                assert_eq!(loc.line.len(), 1);
                let f = &p.function[usize::try_from(loc.line[0].function_id - 1).unwrap()];
                assert_eq!(f.id, loc.line[0].function_id);
                assert_eq!(f.system_name, 0);
                (
                    s(p, f.name).to_string(),
                    s(p, f.filename).to_string(),
                    loc.line[0].line,
                )
            })
            .collect()
    }

    fn two_sites() -> Report {
        let leaf = frame("app::leaf", Some("src/app.rs"), Some(10));
        let leaf_other_line = frame("app::leaf", Some("src/app.rs"), Some(12));
        let main = frame("app::main", Some("src/main.rs"), Some(3));
        report(
            vec![
                site(7, vec![leaf.clone(), main.clone()], [5, 500, 2, 200]),
                site(9, vec![leaf_other_line, leaf, main], [1, 64, 0, 0]),
                site(11, vec![], [3, 30, 3, 30]),
            ],
            true,
            1,
        )
    }

    #[test]
    fn header_fields() {
        let p = roundtrip(&two_sites());
        assert_eq!(p.string_table[0], "");
        let types: Vec<(&str, &str)> = p
            .sample_type
            .iter()
            .map(|t| (s(&p, t.r#type), s(&p, t.unit)))
            .collect();
        assert_eq!(types, SAMPLE_TYPES);
        assert_eq!(s(&p, p.default_sample_type), "inuse_space");
        let period_type = p.period_type.unwrap();
        assert_eq!(
            (s(&p, period_type.r#type), s(&p, period_type.unit)),
            ("space", "bytes")
        );
        assert_eq!(p.period, 1);
        assert_eq!(p.time_nanos, 1_700_000_000_123_000_000);
        let comments: Vec<&str> = p.comment.iter().map(|&c| s(&p, c)).collect();
        assert!(comments[0].starts_with("heaptide "), "{comments:?}");
        assert!(comments[0].contains("pid 4242"), "{comments:?}");
        assert!(comments[1].contains("exact"), "{comments:?}");
        assert_eq!(s(&p, p.drop_frames), DROP_FRAMES);
        assert_eq!(p.mapping.len(), 1);
        let m = &p.mapping[0];
        assert!(m.has_functions && m.has_filenames && m.has_line_numbers);
    }

    #[test]
    fn sampled_report_says_estimated_and_keeps_the_figures() {
        let mut r = two_sites();
        r.exact = false;
        r.sample_interval = 524_288;
        let p = roundtrip(&r);
        assert_eq!(p.period, 524_288);
        let comments: Vec<&str> = p.comment.iter().map(|&c| s(&p, c)).collect();
        assert!(comments[1].contains("estimated"), "{comments:?}");
        assert!(comments[1].contains("524288"), "{comments:?}");
        assert_eq!(p.sample[0].value, [5, 500, 2, 200]);
    }

    #[test]
    fn profiling_off_has_period_one() {
        let p = roundtrip(&report(Vec::new(), false, 0));
        assert_eq!(p.period, 1);
        assert!(p.sample.is_empty());
        assert!(p.location.is_empty());
    }

    #[test]
    fn one_sample_per_site_leaf_first() {
        let p = roundtrip(&two_sites());
        assert_eq!(p.sample.len(), 3);
        assert_eq!(p.sample[0].value, [5, 500, 2, 200]);
        assert_eq!(p.sample[1].value, [1, 64, 0, 0]);
        assert_eq!(p.sample[2].value, [3, 30, 3, 30]);
        let leaf = ("app::leaf".to_string(), "src/app.rs".to_string(), 10);
        let main = ("app::main".to_string(), "src/main.rs".to_string(), 3);
        assert_eq!(stack(&p, &p.sample[0]), [leaf.clone(), main.clone()]);
        assert_eq!(
            stack(&p, &p.sample[1]),
            [
                ("app::leaf".to_string(), "src/app.rs".to_string(), 12),
                leaf,
                main
            ]
        );
        assert_eq!(
            stack(&p, &p.sample[2]),
            [(UNKNOWN.to_string(), String::new(), 0)]
        );
    }

    #[test]
    fn frames_locations_and_functions_are_deduplicated() {
        let p = roundtrip(&two_sites());
        // Frames: leaf:10, main:3, leaf:12, <unknown>; functions: leaf, main, <unknown>.
        assert_eq!(p.location.len(), 4);
        assert_eq!(p.function.len(), 3);
        assert_eq!(p.sample[0].location_id[0], p.sample[1].location_id[1]);
        for (i, l) in p.location.iter().enumerate() {
            assert_eq!(l.id, i as u64 + 1);
            assert_eq!(l.mapping_id, 1);
        }
        for (i, f) in p.function.iter().enumerate() {
            assert_eq!(f.id, i as u64 + 1);
        }
        // Each string once.
        let mut seen = std::collections::HashSet::new();
        assert!(p.string_table.iter().all(|s| seen.insert(s)));
    }

    #[test]
    fn same_name_in_another_file_is_another_function() {
        let r = report(
            vec![site(
                1,
                vec![
                    frame("new", Some("a.rs"), Some(1)),
                    frame("new", Some("b.rs"), Some(1)),
                    frame("new", None, None),
                ],
                [1, 8, 1, 8],
            )],
            true,
            1,
        );
        let p = roundtrip(&r);
        assert_eq!(p.function.len(), 3);
        assert_eq!(
            stack(&p, &p.sample[0]),
            [
                ("new".to_string(), "a.rs".to_string(), 1),
                ("new".to_string(), "b.rs".to_string(), 1),
                ("new".to_string(), String::new(), 0),
            ]
        );
    }

    #[test]
    fn leaf_is_the_blamed_frame_and_start_up_frames_are_dropped() {
        // As a release build with `debug = "line-tables-only"` symbolizes it: short names,
        // the standard library's frames known by their files.
        let std_file = |f: &str| Some(format!("/rustc/0123abcd/library/{f}"));
        let lib = |name: &str, file: &str| Frame {
            function: name.to_string(),
            file: std_file(file),
            line: Some(1),
        };
        let frames = vec![
            lib("alloc", "alloc/src/alloc.rs"),
            lib("allocate", "alloc/src/alloc.rs"),
            lib("box_new_uninit", "alloc/src/boxed.rs"),
            lib("new<[u8; 4096]>", "alloc/src/boxed.rs"),
            frame("hold_pages", Some("/src/app/src/main.rs"), Some(20)),
            frame("main", Some("/src/app/src/main.rs"), Some(30)),
            lib("call_once<fn(), ()>", "core/src/ops/function.rs"),
            lib(
                "__rust_begin_short_backtrace<fn(), ()>",
                "std/src/sys/backtrace.rs",
            ),
            lib("lang_start_internal", "std/src/rt.rs"),
            frame("main", None, None),
            frame("__libc_start_call_main", None, None),
            frame(
                "__libc_start_main_impl",
                Some("../csu/libc-start.c"),
                Some(360),
            ),
            frame("_start", None, None),
            frame("0x0", None, None),
        ];
        let names = |p: &Profile| -> Vec<String> {
            stack(p, &p.sample[0]).into_iter().map(|f| f.0).collect()
        };
        let p = roundtrip(&report(
            vec![site(1, frames.clone(), [1, 4096, 1, 4096])],
            true,
            1,
        ));
        assert_eq!(names(&p), ["hold_pages", "main"]);

        // Without debug info: full names from the symbol table, no files.
        let frames = vec![
            frame("alloc::alloc::exchange_malloc", None, None),
            frame("app::hold_pages", None, None),
            frame("app::main", None, None),
            frame("std::rt::lang_start::{{closure}}", None, None),
            frame("std::rt::lang_start_internal", None, None),
            frame("main", None, None),
            frame("__libc_start_main", None, None),
            frame("_start", None, None),
        ];
        let p = roundtrip(&report(vec![site(1, frames, [1, 4096, 1, 4096])], true, 1));
        assert_eq!(names(&p), ["app::hold_pages", "app::main"]);

        // No frame of the program's (the standard library allocating for itself): the
        // standard library's frames stay, the C start-up ones go.
        let frames = vec![
            lib("alloc", "alloc/src/alloc.rs"),
            lib("lang_start_internal", "std/src/rt.rs"),
            frame("main", None, None),
            frame("_start", None, None),
        ];
        let p = roundtrip(&report(vec![site(1, frames, [1, 8, 1, 8])], true, 1));
        assert_eq!(names(&p), ["alloc", "lang_start_internal"]);
    }

    #[test]
    fn samples_carry_their_object_size() {
        let p = roundtrip(&two_sites());
        let label = |i: usize| -> Vec<(String, i64, String)> {
            p.sample[i]
                .label
                .iter()
                .map(|l| {
                    (
                        s(&p, l.key).to_string(),
                        l.num,
                        s(&p, l.num_unit).to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(label(0), [("bytes".to_string(), 100, "bytes".to_string())]);
        assert_eq!(label(1), [("bytes".to_string(), 64, "bytes".to_string())]);
        let r = report(vec![site(1, Vec::new(), [0, 0, 0, 0])], true, 1);
        assert!(roundtrip(&r).sample[0].label.is_empty());
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads /proc/self/maps and ELF files")]
    fn own_report_maps_the_binary_first() {
        let mut r = two_sites();
        r.pid = std::process::id();
        let p = roundtrip(&r);
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(s(&p, p.mapping[0].filename), exe.to_string_lossy());
        assert!(p.mapping.len() > 1, "shared objects too: {:?}", p.mapping);
        for (i, m) in p.mapping.iter().enumerate() {
            assert_eq!(m.id, i as u64 + 1);
            assert!(m.memory_start < m.memory_limit);
            assert!(m.has_functions && m.has_filenames && m.has_line_numbers);
        }
        assert!(!s(&p, p.mapping[0].build_id).is_empty());
        assert!(p.location.iter().all(|l| l.mapping_id == MAPPING_ID));

        // Another process's report: one mapping, named after its program.
        r.pid = std::process::id() + 1;
        r.command_line = vec!["/usr/bin/app".to_string()];
        let p = roundtrip(&r);
        assert_eq!(p.mapping.len(), 1);
        assert_eq!(s(&p, p.mapping[0].filename), "/usr/bin/app");
    }

    #[test]
    fn huge_figures_saturate() {
        let r = report(
            vec![site(1, vec![frame("f", None, None)], [u64::MAX, 1, 2, 3])],
            true,
            1,
        );
        assert_eq!(roundtrip(&r).sample[0].value, [i64::MAX, 1, 2, 3]);
    }
}
