//! Reading a JSON report or dump, with one clear line for each way it can fail: the file
//! cannot be read, it is not JSON, it is JSON but not a heaptide report, or it is a report of
//! another schema version.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use heaptide::Report;
use heaptide::report::REPORT_VERSION;

use crate::fail::{Result, fail};
use crate::progress::Progress;
use crate::units::Bytes;

/// Bytes read at a time (progress is redrawn between reads).
const CHUNK: usize = 1 << 20;

/// Reads the report in `path`.
pub fn report(path: &Path, progress: &Progress) -> Result<Report> {
    let name = path.display();
    let mut file = File::open(path).map_err(|e| fail(format!("cannot read {name}: {e}")))?;
    let size = file.metadata().map_or(0, |m| m.len());
    let shown = progress.input(size);
    // Progress lines name the file only: a terminal line has no room for a long path.
    let short = path
        .file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy();
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                progress.clear();
                return Err(fail(format!("cannot read {name}: {e}")));
            }
        };
        bytes.extend_from_slice(&chunk[..n]);
        if shown {
            progress.update(|| {
                let read = bytes.len() as u64;
                let share = 100 * read / size.max(read).max(1);
                format!(
                    "reading {name}: {} of {} ({share}%)",
                    Bytes(read),
                    Bytes(size)
                )
            });
        }
    }
    drop(chunk);
    if shown {
        progress.say(&format!(
            "parsing {short} ({} of JSON)",
            Bytes(bytes.len() as u64)
        ));
    }
    let parsed = parse(&bytes, &name.to_string());
    if parsed.is_err() {
        progress.clear();
    }
    parsed
}

/// Parses a report from `bytes`, the contents of the file `name`.
fn parse(bytes: &[u8], name: &str) -> Result<Report> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(fail(format!(
            "{name}: empty file, not a heaptide JSON report"
        )));
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return Err(fail(format!(
            "{name}: a gzipped file (a pprof profile?), not a heaptide JSON report (heaptide-<pid>-<seq>.json)"
        )));
    }
    match serde_json::from_slice::<Report>(bytes) {
        Ok(report) if report.version == REPORT_VERSION => Ok(report),
        Ok(report) => Err(other_version(name, u64::from(report.version))),
        Err(e) if e.is_syntax() || e.is_eof() => Err(fail(format!("{name}: not valid JSON: {e}"))),
        Err(e) => match version_of(bytes) {
            Some(version) if version != u64::from(REPORT_VERSION) => {
                Err(other_version(name, version))
            }
            _ => Err(fail(format!("{name}: not a heaptide report: {e}"))),
        },
    }
}

/// The top-level `version` of a JSON object, if it has a numeric one.
fn version_of(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()?
        .get("version")?
        .as_u64()
}

/// The failure for a report of schema `version` (not the one this build reads).
fn other_version(name: &str, version: u64) -> crate::fail::Failure {
    let current = u64::from(REPORT_VERSION);
    if version < current {
        fail(format!(
            "{name}: a heaptide report of schema version {version}, older than the version {current} this heaptide reads; read it with the heaptide release that wrote it"
        ))
    } else {
        fail(format!(
            "{name}: a heaptide report of schema version {version}, newer than the version {current} this heaptide reads; use a newer heaptide command"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fail::Failure;

    fn message(bytes: &[u8]) -> String {
        match parse(bytes, "d.json") {
            Ok(_) => panic!("parsed"),
            Err(Failure::Message(m)) => m,
            Err(other) => panic!("{other:?}"),
        }
    }

    fn report_json(version: u32) -> Vec<u8> {
        let mut report = Report::default();
        report.version = version;
        let mut json = Vec::new();
        report.write_json(&mut json).unwrap();
        json
    }

    #[test]
    fn reads_a_report() {
        let report = parse(&report_json(REPORT_VERSION), "d.json").unwrap();
        assert_eq!(report.version, REPORT_VERSION);
    }

    #[test]
    fn says_what_is_wrong() {
        assert_eq!(
            message(b""),
            "d.json: empty file, not a heaptide JSON report"
        );
        assert!(message(b"\x1f\x8b\x08\x00").contains("gzipped"));
        let m = message(b"{\"version\": 3,");
        assert!(m.starts_with("d.json: not valid JSON: EOF"), "{m}");
        let m = message(b"<html>");
        assert!(
            m.starts_with("d.json: not valid JSON: expected value"),
            "{m}"
        );
        let m = message(b"{\"hello\": 1}");
        assert!(
            m.starts_with("d.json: not a heaptide report: missing field"),
            "{m}"
        );
        let m = message(b"[1, 2]");
        assert!(m.starts_with("d.json: not a heaptide report"), "{m}");
    }

    #[test]
    fn names_the_schema_version() {
        let older = message(&report_json(REPORT_VERSION - 1));
        assert!(
            older.contains(&format!("schema version {}, older", REPORT_VERSION - 1)),
            "{older}"
        );
        let newer = message(&report_json(REPORT_VERSION + 1));
        assert!(
            newer.contains(&format!("schema version {}, newer", REPORT_VERSION + 1)),
            "{newer}"
        );
        // A newer report whose fields no longer parse as this version's is still named by
        // its version.
        let m = message(b"{\"version\": 99, \"sites\": \"elsewhere\"}");
        assert!(m.contains("schema version 99, newer"), "{m}");
    }
}
