//! Folded-stacks writer: the input of `flamegraph.pl`, inferno and speedscope.
//!
//! [`Report::write_folded`] writes **live bytes**: one line per call site that has any,
//! `root;caller;...;leaf <live bytes>`, outermost frame first, function names only. The
//! stack is the one pprof shows: from the blamed frame (the standard library's allocation
//! plumbing above it left out) to the program's `main` or thread entry (the C start-up frames
//! below left out).
//! [`Report::write_folded_alloc`] writes bytes allocated since start the same way. Sites whose
//! stacks read the same (the same names, lines aside) share one line with their bytes summed;
//! lines come in the order of the report's sites. A name keeps the line parseable: `;` becomes
//! `,` and line breaks become spaces; an empty name, and the stack of a site without frames,
//! read `<unknown>`.

use std::collections::HashMap;
use std::io::Write;

use super::{Report, Site};

impl Report {
    /// Writes folded stacks of live bytes (`root;...;leaf bytes` lines; see the module
    /// documentation).
    pub fn write_folded(&self, w: &mut impl Write) -> std::io::Result<()> {
        self.write_folded_by(w, |s| s.live_bytes)
    }

    /// Writes folded stacks of bytes allocated since start (including those since freed).
    pub fn write_folded_alloc(&self, w: &mut impl Write) -> std::io::Result<()> {
        self.write_folded_by(w, |s| s.alloc_bytes)
    }

    /// One line per distinct stack with a non-zero `value`, summed.
    fn write_folded_by(&self, w: &mut impl Write, value: fn(&Site) -> u64) -> std::io::Result<()> {
        let mut lines: Vec<(String, u64)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for site in &self.sites {
            let v = value(site);
            if v == 0 {
                continue;
            }
            let stack = folded_stack(site);
            match index.get(&stack) {
                Some(&i) => lines[i].1 = lines[i].1.saturating_add(v),
                None => {
                    index.insert(stack.clone(), lines.len());
                    lines.push((stack, v));
                }
            }
        }
        for (stack, v) in &lines {
            writeln!(w, "{stack} {v}")?;
        }
        Ok(())
    }
}

/// A site's stack as profiles show it ([`crate::symbolize::shown_stack`]: from the blamed frame to the
/// program's outermost, without the allocation plumbing above or the process start-up below),
/// outermost first, names joined with `;`.
fn folded_stack(site: &Site) -> String {
    let frames = crate::symbolize::shown_stack(&site.frames);
    if frames.is_empty() {
        return "<unknown>".to_string();
    }
    let mut out = String::new();
    for (i, frame) in frames.iter().rev().enumerate() {
        if i > 0 {
            out.push(';');
        }
        push_name(&mut out, &frame.function);
    }
    out
}

/// Appends a function name with the characters that would break a line replaced.
fn push_name(out: &mut String, name: &str) {
    if name.is_empty() {
        out.push_str("<unknown>");
        return;
    }
    out.extend(name.chars().map(|c| match c {
        ';' => ',',
        '\n' | '\r' => ' ',
        c => c,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Frame;

    fn frame(function: &str, line: u32) -> Frame {
        Frame {
            function: function.to_string(),
            file: Some("src/app.rs".to_string()),
            line: Some(line),
        }
    }

    fn site(frames: Vec<Frame>, alloc_bytes: u64, live_bytes: u64) -> Site {
        Site {
            frames,
            alloc_bytes,
            alloc_count: 1,
            live_bytes,
            live_count: u64::from(live_bytes > 0),
            samples: 1,
            ..Site::default()
        }
    }

    fn report(sites: Vec<Site>) -> Report {
        Report {
            version: crate::report::REPORT_VERSION,
            pid: 1,
            sample_interval: 1,
            exact: true,
            sites_seen: sites.len() as u64,
            sites,
            ..Report::default()
        }
    }

    fn folded(r: &Report) -> String {
        let mut out = Vec::new();
        r.write_folded(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn root_first_live_bytes_only_sites_with_live_bytes() {
        let r = report(vec![
            site(
                vec![frame("app::leaf", 10), frame("app::main", 3)],
                900,
                400,
            ),
            site(vec![frame("app::freed", 20), frame("app::main", 4)], 50, 0),
            site(vec![frame("app::other", 30)], 70, 70),
        ]);
        assert_eq!(folded(&r), "app::main;app::leaf 400\napp::other 70\n");
        let mut alloc = Vec::new();
        r.write_folded_alloc(&mut alloc).unwrap();
        assert_eq!(
            String::from_utf8(alloc).unwrap(),
            "app::main;app::leaf 900\napp::main;app::freed 50\napp::other 70\n"
        );
    }

    #[test]
    fn identical_stacks_are_summed() {
        // Different lines, same names: one line, in the place of the first.
        let r = report(vec![
            site(vec![frame("leaf", 1), frame("main", 3)], 100, 100),
            site(vec![frame("other", 1)], 50, 50),
            site(vec![frame("leaf", 2), frame("main", 4)], 30, 30),
        ]);
        assert_eq!(folded(&r), "main;leaf 130\nother 50\n");
    }

    #[test]
    fn names_cannot_break_the_line() {
        let r = report(vec![
            site(
                vec![
                    frame("<[u8; 4] as Foo>::f", 1),
                    frame("bad\nname\r", 2),
                    frame("", 3),
                ],
                8,
                8,
            ),
            site(Vec::new(), 16, 16),
        ]);
        let out = folded(&r);
        assert_eq!(
            out,
            "<unknown>;bad name ;<[u8, 4] as Foo>::f 8\n<unknown> 16\n"
        );
        for line in out.lines() {
            let (stack, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<u64>().is_ok(), "{line:?}");
            assert!(!stack.is_empty());
        }
    }

    #[test]
    fn plumbing_above_and_start_up_below_are_left_out() {
        let lib = |function: &str, file: &str| Frame {
            function: function.to_string(),
            file: Some(format!("/rustc/0123abcd/library/{file}")),
            line: Some(1),
        };
        let bare = |function: &str| Frame {
            function: function.to_string(),
            file: None,
            line: None,
        };
        let r = report(vec![site(
            vec![
                lib("alloc", "alloc/src/alloc.rs"),
                lib("new<[u8; 4096]>", "alloc/src/boxed.rs"),
                frame("app::hold", 7),
                frame("app::main", 3),
                lib("call_once<fn(), ()>", "core/src/ops/function.rs"),
                lib("lang_start_internal", "std/src/rt.rs"),
                bare("main"),
                bare("__libc_start_main"),
                bare("_start"),
            ],
            4096,
            4096,
        )]);
        assert_eq!(folded(&r), "app::main;app::hold 4096\n");
    }

    #[test]
    fn empty_report_writes_nothing() {
        assert_eq!(folded(&report(Vec::new())), "");
    }
}
