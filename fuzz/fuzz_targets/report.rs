//! Report writers on arbitrary reports (`src/report_gen.rs`):
//!
//! - JSON parses back (serde_json) into a report equal to the original;
//! - pprof gunzips and decodes (with messages declared independently, `src/pprof.rs`) into a
//!   well-formed profile: string, function, location and mapping references resolve, four
//!   sample types with `inuse_space` the default, one sample per site with the site's figures
//!   (saturated to `i64`), each stack a run of the site's frames;
//! - folded stacks (live and allocated) are exactly the documented lines: one per distinct
//!   shown stack (a run of the site's frames from its blamed frame) with a non-zero value,
//!   separators in names replaced, values summed;
//! - text never panics, is UTF-8 and equals `Display`;
//! - HTML is UTF-8 with one data block that holds no `<` (no report text can close the script
//!   element or open a comment) and parses as JSON carrying the report's sections and each
//!   site's stack (function, file, line per frame).
#![no_main]

use std::collections::HashMap;
use std::io::Read;

use arbitrary::Unstructured;
use heaptide::Report;
use heaptide::report::Site;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use tidefuzz::pprof::Profile;
use tidefuzz::report_gen;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = report_gen::report(&mut Unstructured::new(data)) else {
        return;
    };
    json(&report);
    pprof(&report);
    folded(&report, false);
    folded(&report, true);
    text(&report);
    html(&report);
});

fn json(report: &Report) {
    let mut out = Vec::new();
    report.write_json(&mut out).expect("write_json");
    assert!(out.ends_with(b"\n"));
    let back: Report = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "JSON does not parse back: {e}\n{}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(&back, report, "JSON round trip changed the report");
}

fn sat(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn pprof(report: &Report) {
    let mut gz = Vec::new();
    report.write_pprof(&mut gz).expect("write_pprof");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .expect("pprof output is not gzip");
    let p = Profile::decode(&raw[..]).expect("pprof output does not decode");

    let strings = &p.string_table;
    assert_eq!(
        strings.first().map(String::as_str),
        Some(""),
        "string_table[0]"
    );
    let s = |i: i64| -> &str {
        assert!(
            (0..strings.len() as i64).contains(&i),
            "string index {i} out of {}",
            strings.len()
        );
        &strings[i as usize]
    };

    let types: Vec<(&str, &str)> = p
        .sample_type
        .iter()
        .map(|t| (s(t.r#type), s(t.unit)))
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
    assert_eq!(s(p.default_sample_type), "inuse_space");
    if let Some(t) = p.period_type {
        s(t.r#type);
        s(t.unit);
    }
    for &c in &p.comment {
        s(c);
    }
    s(p.drop_frames);
    s(p.keep_frames);
    assert_eq!(p.period, sat(report.sample_interval.max(1)));
    assert_eq!(
        p.time_nanos,
        sat(report.timestamp).saturating_mul(1_000_000)
    );

    let mut mappings = HashMap::new();
    for m in &p.mapping {
        assert!(
            m.id != 0 && mappings.insert(m.id, m).is_none(),
            "mapping id {}",
            m.id
        );
        s(m.filename);
        s(m.build_id);
    }
    let mut functions = HashMap::new();
    for f in &p.function {
        assert!(
            f.id != 0 && functions.insert(f.id, f).is_none(),
            "function id {}",
            f.id
        );
        s(f.name);
        s(f.system_name);
        s(f.filename);
    }
    let mut locations = HashMap::new();
    for l in &p.location {
        assert!(
            l.id != 0 && locations.insert(l.id, l).is_none(),
            "location id {}",
            l.id
        );
        assert!(
            l.mapping_id == 0 || mappings.contains_key(&l.mapping_id),
            "location {} names mapping {}",
            l.id,
            l.mapping_id
        );
        assert!(!l.line.is_empty(), "location {} has no line", l.id);
        for line in &l.line {
            assert!(
                functions.contains_key(&line.function_id),
                "location {} names function {}",
                l.id,
                line.function_id
            );
        }
    }

    assert_eq!(p.sample.len(), report.sites.len(), "one sample per site");
    for (sample, site) in p.sample.iter().zip(&report.sites) {
        assert_eq!(
            sample.value,
            [
                sat(site.alloc_count),
                sat(site.alloc_bytes),
                sat(site.live_count),
                sat(site.live_bytes)
            ],
            "sample values of site {}",
            site.id
        );
        assert!(!sample.location_id.is_empty(), "a sample without a stack");
        // Each location holds one line (the report lists inlined frames as frames of their
        // own): the stack's names, leaf first.
        let names: Vec<&str> = sample
            .location_id
            .iter()
            .map(|id| {
                let loc = locations
                    .get(id)
                    .unwrap_or_else(|| panic!("sample names location {id}"));
                assert_eq!(loc.line.len(), 1);
                s(functions[&loc.line[0].function_id].name)
            })
            .collect();
        let want: Vec<&str> = site.frames.iter().map(|f| f.function.as_str()).collect();
        if want.is_empty() {
            assert_eq!(names, ["<unknown>"]);
        } else {
            // From the blamed frame to the program's outermost frame: a run of the site's
            // frames, plumbing on top and start-up frames at the root left out.
            assert!(
                want.windows(names.len()).any(|w| w == names),
                "pprof stack {names:?} is not a run of the site's frames {want:?}"
            );
        }
    }
}

/// What a folded line's stack reads for `site` (the documented format): the stack pprof shows,
/// which is a run of the site's frames starting at its blamed frame.
fn folded_stack(site: &Site) -> String {
    let shown = heaptide::__fuzz::shown_stack(&site.frames);
    if !shown.is_empty() {
        assert!(
            site.frames.windows(shown.len()).any(|w| w == shown),
            "shown stack {shown:?} is not a run of the site's frames {:?}",
            site.frames
        );
    }
    if shown.is_empty() {
        return "<unknown>".to_string();
    }
    let names: Vec<String> = shown
        .iter()
        .rev()
        .map(|f| {
            if f.function.is_empty() {
                "<unknown>".to_string()
            } else {
                f.function.replace(';', ",").replace(['\n', '\r'], " ")
            }
        })
        .collect();
    names.join(";")
}

fn folded(report: &Report, alloc: bool) {
    let mut out = Vec::new();
    if alloc {
        report.write_folded_alloc(&mut out)
    } else {
        report.write_folded(&mut out)
    }
    .expect("write_folded");
    let out = String::from_utf8(out).expect("folded output is UTF-8");

    let mut want: Vec<(String, u64)> = Vec::new();
    for site in &report.sites {
        let v = if alloc {
            site.alloc_bytes
        } else {
            site.live_bytes
        };
        if v == 0 {
            continue;
        }
        let stack = folded_stack(site);
        match want.iter_mut().find(|(s, _)| *s == stack) {
            Some((_, total)) => *total = total.saturating_add(v),
            None => want.push((stack, v)),
        }
    }
    let got: Vec<(String, u64)> = out
        .lines()
        .map(|line| {
            let (stack, v) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("folded line without a value: {line:?}"));
            (stack.to_string(), v.parse().expect("folded value"))
        })
        .collect();
    assert!(out.is_empty() || out.ends_with('\n'));
    assert_eq!(got, want, "folded stacks");
}

fn text(report: &Report) {
    let mut out = Vec::new();
    report.write_text(&mut out).expect("write_text");
    let out = String::from_utf8(out).expect("text output is UTF-8");
    assert_eq!(out, report.to_string());
}

const DATA_OPEN: &str = r#"<script type="application/json" id="heaptide-data">"#;

fn html(report: &Report) {
    let mut out = Vec::new();
    report.write_html(&mut out).expect("write_html");
    let page = String::from_utf8(out).expect("HTML output is UTF-8");
    let mut blocks = page.match_indices(DATA_OPEN);
    let (at, _) = blocks.next().expect("HTML page without its data block");
    assert!(blocks.next().is_none(), "two data blocks");
    let rest = &page[at + DATA_OPEN.len()..];
    let end = rest.find("</script>").expect("data block not closed");
    let data = &rest[..end];
    assert!(
        !data.contains('<'),
        "a '<' inside the data block: report text can end the script element"
    );
    let v: serde_json::Value = serde_json::from_str(data).expect("data block is not JSON");

    let head = &v["report"];
    let same = |key: &str, want: serde_json::Value| {
        assert_eq!(head[key], want, "HTML data block: report.{key}");
    };
    same("pid", val(&report.pid));
    same("command_line", val(&report.command_line));
    same("memory", val(&report.memory));
    same("totals", val(&report.totals));
    same("health", val(&report.health));
    same("alerts", val(&report.alerts));
    same("recommendations", val(&report.recommendations));
    same("trend", val(&report.trend));
    same("profiler", val(&report.profiler));
    assert_eq!(v["leaks_total"], report.leaks.len());

    let files = v["files"].as_array().expect("files");
    let frames = v["frames"].as_array().expect("frames");
    let sites = v["sites"].as_array().expect("sites");
    assert_eq!(sites.len(), report.sites.len(), "HTML sites");
    for (page_site, site) in sites.iter().zip(&report.sites) {
        let stack = page_site["stack"].as_array().expect("stack");
        assert_eq!(
            stack.len(),
            site.frames.len(),
            "HTML stack of site {}",
            site.id
        );
        for (i, f) in stack.iter().zip(&site.frames) {
            let frame = &frames[i.as_u64().expect("frame index") as usize];
            assert_eq!(frame[0], f.function.as_str());
            let file = frame[1]
                .as_u64()
                .map(|i| files[i as usize].as_str().expect("file name"));
            assert_eq!(file, f.file.as_deref());
            assert_eq!(frame[2].as_u64(), f.line.map(u64::from));
        }
        assert_eq!(page_site["live_bytes"], site.live_bytes);
        assert_eq!(page_site["alloc_bytes"], site.alloc_bytes);
    }
}

fn val(x: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(x).expect("serializable")
}
