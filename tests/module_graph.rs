//! The import graph between the top-level modules of `src/` has no cycle.
//!
//! A module is a file `src/<m>.rs` or a folder `src/<m>/`; `src/lib.rs` is the crate root that
//! wires them together and is not a node. Module `a` depends on module `b` when a file of `a`
//! names `crate::b` (`crate::b::x`, `use crate::b`, or `b` inside a `crate::{...}` group),
//! comments, doc comments and string literals left out. `super::` stays inside a module's
//! tree and is not an edge.
//!
//! Print the graph (each edge with the files and lines that make it):
//!
//! ```text
//! cargo test --test module_graph -- --ignored --nocapture
//! ```
//!
//! `acyclic` (part of `cargo test`, so of CI) fails on a cycle and prints each one with the
//! lines that make its edges.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Edges: (from, to) -> places ("src/file.rs:line") that make it.
type Graph = BTreeMap<(String, String), Vec<String>>;

#[test]
fn acyclic() {
    let graph = module_graph();
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "the modules of src/ import each other in a cycle:\n{}",
        cycles.join("\n")
    );
}

/// Prints every edge of the graph and the cycles, if any; never fails.
#[test]
#[ignore = "prints the module graph: cargo test --test module_graph -- --ignored --nocapture"]
fn print_graph() {
    let graph = module_graph();
    let mut out = String::new();
    let mut from_prev = "";
    for ((from, to), places) in &graph {
        if from != from_prev {
            let targets: Vec<&str> = graph
                .keys()
                .filter(|(f, _)| f == from)
                .map(|(_, t)| t.as_str())
                .collect();
            let _ = writeln!(out, "{from} -> {}", targets.join(", "));
            from_prev = from;
        }
        let _ = writeln!(out, "    {from} -> {to}: {}", places.join(" "));
    }
    let cycles = cycles(&graph);
    if cycles.is_empty() {
        out.push_str("no cycle\n");
    } else {
        out.push_str(&cycles.join("\n"));
    }
    println!("{out}");
}

// === the graph ===

fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in fs::read_dir(&src).expect("read src/") {
        let path = entry.expect("read src/").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            modules.entry(name).or_default().extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            modules.entry(name).or_default().push(path);
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = Graph::new();
    for (module, files) in &modules {
        for file in files {
            let text = fs::read_to_string(file).expect("read a source file");
            let shown = file
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(file);
            for (target, line) in crate_paths(&code_only(&text)) {
                if &target != module && names.contains(&target) {
                    graph
                        .entry((module.clone(), target))
                        .or_default()
                        .push(format!("{}:{line}", shown.display()));
                }
            }
        }
    }
    for places in graph.values_mut() {
        places.dedup();
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read a source folder")
        .map(|e| e.expect("read a source folder").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The source with comments and string and char literals blanked out (newlines kept, so line
/// numbers still hold).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[u8]| {
        for &c in s {
            out.push(if c == b'\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, 0);
            while j < rest.len() {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
        } else if let Some(len) = raw_string(rest, i > 0 && is_ident(b[i - 1])) {
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let len = (j + 1).min(rest.len());
            blank(&mut out, &rest[..len]);
            i += len;
        } else if rest[0] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime or label.
            let len = if rest.get(1) == Some(&b'\\') {
                rest[2..].iter().position(|&c| c == b'\'').map(|p| p + 3)
            } else {
                let ch = text[i + 1..].chars().next().map_or(0, char::len_utf8);
                (rest.get(1 + ch) == Some(&b'\'')).then_some(2 + ch)
            };
            let len = len.unwrap_or(1);
            blank(&mut out, &rest[..len]);
            i += len;
        } else {
            let ch = text[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"..."`, `r#"..."#`, `br"..."`) starting here.
fn raw_string(rest: &[u8], after_ident: bool) -> Option<usize> {
    if after_ident {
        return None;
    }
    let start = if rest.starts_with(b"br") {
        2
    } else {
        usize::from(rest.starts_with(b"r"))
    };
    if start == 0 {
        return None;
    }
    let hashes = rest[start..].iter().take_while(|&&c| c == b'#').count();
    if rest.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let mut close = vec![b'"'];
    close.extend(std::iter::repeat_n(b'#', hashes));
    let body = start + hashes + 1;
    let end = rest[body..]
        .windows(close.len())
        .position(|w| w == close.as_slice())?;
    Some(body + end + close.len())
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The first segment after each `crate::` (each top-level name in a `crate::{...}` group), with
/// its line number.
fn crate_paths(code: &str) -> Vec<(String, usize)> {
    let b = code.as_bytes();
    let mut found = Vec::new();
    let line_of = |pos: usize| 1 + b[..pos].iter().filter(|&&c| c == b'\n').count();
    let mut from = 0;
    while let Some(p) = code[from..].find("crate") {
        let at = from + p;
        from = at + 5;
        if at > 0 && (is_ident(b[at - 1]) || b[at - 1] == b'$') {
            continue;
        }
        let mut j = skip_space(b, at + 5);
        if !b[j..].starts_with(b"::") {
            continue;
        }
        j = skip_space(b, j + 2);
        if b.get(j) == Some(&b'{') {
            // A group: the names at its top level.
            let mut depth = 0;
            let mut expect_name = true;
            while j < b.len() {
                match b[j] {
                    b'{' => {
                        depth += 1;
                        expect_name = depth == 1;
                        j += 1;
                    }
                    b'}' => {
                        depth -= 1;
                        j += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' => {
                        expect_name = depth == 1;
                        j += 1;
                    }
                    c if is_ident(c) => {
                        let end = j + b[j..].iter().take_while(|&&c| is_ident(c)).count();
                        if expect_name {
                            found.push((code[j..end].to_string(), line_of(j)));
                            expect_name = false;
                        }
                        j = end;
                    }
                    _ => j += 1,
                }
            }
        } else {
            let end = j + b[j..].iter().take_while(|&&c| is_ident(c)).count();
            if end > j {
                found.push((code[j..end].to_string(), line_of(j)));
            }
        }
    }
    found
}

fn skip_space(b: &[u8], mut j: usize) -> usize {
    while j < b.len() && b[j].is_ascii_whitespace() {
        j += 1;
    }
    j
}

// === cycles ===

/// Each strongly connected component of more than one module: one cycle through it, and every
/// edge inside it with the lines that make it.
fn cycles(graph: &Graph) -> Vec<String> {
    let nodes: BTreeSet<&str> = graph
        .keys()
        .flat_map(|(a, b)| [a.as_str(), b.as_str()])
        .collect();
    let succ = |n: &str| -> Vec<&str> {
        graph
            .keys()
            .filter(|(a, _)| a == n)
            .map(|(_, b)| b.as_str())
            .collect()
    };
    let reaches = |from: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(n) = stack.pop() {
            for s in succ(n) {
                if seen.insert(s) {
                    stack.push(s);
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&str, BTreeSet<&str>> = nodes.iter().map(|&n| (n, reaches(n))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for &n in &nodes {
        if done.contains(n) || !reach[n].contains(n) {
            continue;
        }
        let component: BTreeSet<&str> = nodes
            .iter()
            .copied()
            .filter(|&m| m == n || (reach[n].contains(m) && reach[m].contains(n)))
            .collect();
        done.extend(component.iter().copied());
        let mut text = format!(
            "cycle among {{{}}}\n  e.g. {}\n",
            component.iter().copied().collect::<Vec<_>>().join(", "),
            shortest_cycle(n, &succ).join(" -> ")
        );
        for ((a, b), places) in graph {
            if component.contains(a.as_str()) && component.contains(b.as_str()) {
                let _ = writeln!(text, "  {a} -> {b}: {}", places.join(" "));
            }
        }
        out.push(text);
    }
    out
}

/// A shortest path from `start` back to itself (breadth first).
fn shortest_cycle<'a>(start: &'a str, succ: &dyn Fn(&str) -> Vec<&'a str>) -> Vec<&'a str> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for s in succ(n) {
            if s == start {
                let mut path = vec![start, n];
                let mut m = n;
                while m != start {
                    m = parent[m];
                    path.push(m);
                }
                path.reverse();
                return path;
            }
            if !parent.contains_key(s) {
                parent.insert(s, n);
                queue.push_back(s);
            }
        }
    }
    vec![start]
}
