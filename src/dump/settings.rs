//! Dump settings: `HEAPTIDE_SIGNAL`, `HEAPTIDE_FORMATS`, `HEAPTIDE_DIR`,
//! `HEAPTIDE_DUMP_AT_EXIT`, and the automatic dumps' `HEAPTIDE_DUMP_ON_PEAK`,
//! `HEAPTIDE_DUMP_ON_CRITICAL`, `HEAPTIDE_DUMP_NEAR_LIMIT` ([`super::auto`]).
//!
//! Read once, the first time they are needed: at start-up when profiling is on (from
//! [`install`](super::install), after the allocator is initialised, so allocating here is fine),
//! otherwise at the first [`dump`](crate::dump()). As in [`mod@crate::config`], the environment is
//! read with `getenv` (no lock), and a value that does not parse gives one stderr line naming
//! the variable, the value and the accepted forms, and the default is used. A value that is
//! not UTF-8 is treated as unset (except `HEAPTIDE_DIR`, which may be any path).

use std::ffi::CStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::config::{ParseError, complain, getenv, parse_size};

/// The signal that asks for a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGUSR1` (the default).
    Usr1,
    /// `SIGUSR2`.
    Usr2,
}

impl Signal {
    /// The signal number.
    pub(crate) fn number(self) -> libc::c_int {
        match self {
            Signal::Usr1 => libc::SIGUSR1,
            Signal::Usr2 => libc::SIGUSR2,
        }
    }

    /// The conventional name (`SIGUSR1`).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Usr1 => "SIGUSR1",
            Signal::Usr2 => "SIGUSR2",
        }
    }
}

/// One output format of a dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// [`Report::write_json`](crate::Report::write_json), `.json`.
    Json,
    /// [`Report::write_pprof`](crate::Report::write_pprof), `.pb.gz`.
    Pprof,
    /// [`Report::write_text`](crate::Report::write_text), `.txt`.
    Text,
    /// [`Report::write_folded`](crate::Report::write_folded), `.folded`.
    Folded,
    /// [`Report::write_html`](crate::Report::write_html), `.html`.
    Html,
}

impl Format {
    /// Every format, in the order a dump writes them.
    pub(crate) const ALL: [Format; 5] = [
        Format::Json,
        Format::Pprof,
        Format::Text,
        Format::Folded,
        Format::Html,
    ];

    /// The name used in `HEAPTIDE_FORMATS`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Pprof => "pprof",
            Format::Text => "text",
            Format::Folded => "folded",
            Format::Html => "html",
        }
    }

    /// The file name extension, without the dot.
    pub(crate) fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Pprof => "pb.gz",
            Format::Text => "txt",
            Format::Folded => "folded",
            Format::Html => "html",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A non-empty set of formats. Whatever order `HEAPTIDE_FORMATS` lists them in, a dump writes
/// them in the order of [`Format::ALL`]; a format listed twice is written once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Formats(u8);

impl Formats {
    /// `json,pprof,text`.
    pub(crate) const DEFAULT: Formats =
        Formats((1 << Format::Json as u8) | (1 << Format::Pprof as u8) | (1 << Format::Text as u8));

    /// The formats in the set, in writing order.
    pub(crate) fn iter(self) -> impl Iterator<Item = Format> {
        Format::ALL
            .into_iter()
            .filter(move |f| self.0 & f.bit() != 0)
    }

    /// Whether `format` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(self, format: Format) -> bool {
        self.0 & format.bit() != 0
    }
}

impl fmt::Display for Formats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, format) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(format.name())?;
        }
        Ok(())
    }
}

/// The dump settings in force.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// `HEAPTIDE_SIGNAL`; `None` for `none` (no handler is installed).
    pub(crate) signal: Option<Signal>,
    /// `HEAPTIDE_FORMATS`.
    pub(crate) formats: Formats,
    /// `HEAPTIDE_DIR`, made absolute when read (so a later `chdir` does not move the dumps);
    /// default: `TMPDIR` if set and not empty, else `/tmp` (what `std::env::temp_dir` gives).
    pub(crate) dir: PathBuf,
    /// `HEAPTIDE_DUMP_AT_EXIT`.
    pub(crate) at_exit: bool,
    /// `HEAPTIDE_DUMP_ON_PEAK`: dump when the recorded peak of the estimated live heap reaches
    /// this many bytes (`None`: never).
    pub(crate) on_peak: Option<u64>,
    /// `HEAPTIDE_DUMP_ON_CRITICAL`: dump when health turns critical.
    pub(crate) on_critical: bool,
    /// `HEAPTIDE_DUMP_NEAR_LIMIT`: dump when the cgroup's memory use reaches this fraction of
    /// its limit (`None`: never).
    pub(crate) near_limit: Option<f64>,
}

impl Settings {
    /// Whether any automatic dump is configured.
    pub(crate) fn auto(&self) -> bool {
        self.on_peak.is_some() || self.on_critical || self.near_limit.is_some()
    }
}

/// Accepted forms of `HEAPTIDE_SIGNAL`, for error messages.
pub(crate) const SIGNAL_FORMS: &str = "USR1, USR2 or none (case-insensitive, SIG prefix optional)";
/// Accepted forms of `HEAPTIDE_FORMATS`.
pub(crate) const FORMATS_FORMS: &str =
    "a comma-separated list of json, pprof, text, folded, html (e.g. json,pprof,text)";
/// Accepted forms of `HEAPTIDE_DUMP_AT_EXIT`.
pub(crate) const BOOL_FORMS: &str = "1, 0, true or false";
/// Accepted forms of `HEAPTIDE_DIR`.
pub(crate) const DIR_FORMS: &str = "a directory path (not empty)";
/// Accepted forms of `HEAPTIDE_DUMP_ON_PEAK`.
pub(crate) const PEAK_FORMS: &str = "a byte size such as 512MiB or 2GiB (not 0), or off";
/// Accepted forms of `HEAPTIDE_DUMP_NEAR_LIMIT`.
pub(crate) const FRACTION_FORMS: &str =
    "a fraction of the cgroup's memory limit above 0 and at most 1, such as 0.9, or off";

/// The settings, read from the environment on the first call.
pub(crate) fn get() -> &'static Settings {
    static SETTINGS: OnceLock<Settings> = OnceLock::new();
    SETTINGS.get_or_init(Settings::from_env)
}

impl Settings {
    /// The defaults with every dump variable that is set applied on top (complaining about bad
    /// values).
    fn from_env() -> Settings {
        let mut s = Settings {
            signal: Some(Signal::Usr1),
            formats: Formats::DEFAULT,
            dir: default_dir(),
            at_exit: false,
            on_peak: None,
            on_critical: false,
            near_limit: None,
        };
        if let Some(v) = getenv(c"HEAPTIDE_SIGNAL") {
            match parse_signal(v) {
                Ok(signal) => s.signal = signal,
                Err(ParseError) => complain("HEAPTIDE_SIGNAL", v, SIGNAL_FORMS, &"USR1"),
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_FORMATS") {
            match parse_formats(v) {
                Ok(formats) => s.formats = formats,
                Err(ParseError) => complain("HEAPTIDE_FORMATS", v, FORMATS_FORMS, &s.formats),
            }
        }
        if let Some(dir) = getenv_path(c"HEAPTIDE_DIR") {
            if dir.as_os_str().is_empty() {
                complain("HEAPTIDE_DIR", "", DIR_FORMS, &s.dir.display());
            } else {
                s.dir = absolute(dir);
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_DUMP_AT_EXIT") {
            match parse_bool(v) {
                Ok(b) => s.at_exit = b,
                Err(ParseError) => complain("HEAPTIDE_DUMP_AT_EXIT", v, BOOL_FORMS, &"0"),
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_DUMP_ON_PEAK") {
            match parse_peak(v) {
                Ok(bytes) => s.on_peak = bytes,
                Err(ParseError) => complain("HEAPTIDE_DUMP_ON_PEAK", v, PEAK_FORMS, &"off"),
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_DUMP_ON_CRITICAL") {
            match parse_bool(v) {
                Ok(b) => s.on_critical = b,
                Err(ParseError) => complain("HEAPTIDE_DUMP_ON_CRITICAL", v, BOOL_FORMS, &"0"),
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_DUMP_NEAR_LIMIT") {
            match parse_fraction(v) {
                Ok(f) => s.near_limit = f,
                Err(ParseError) => complain("HEAPTIDE_DUMP_NEAR_LIMIT", v, FRACTION_FORMS, &"off"),
            }
        }
        s
    }
}

/// `TMPDIR` if set and not empty, else `/tmp`; absolute.
fn default_dir() -> PathBuf {
    match getenv_path(c"TMPDIR") {
        Some(dir) if !dir.as_os_str().is_empty() => absolute(dir),
        _ => PathBuf::from("/tmp"),
    }
}

/// `path` made absolute against the current directory (unchanged if that cannot be had).
fn absolute(path: PathBuf) -> PathBuf {
    if path.is_absolute() {
        return path;
    }
    std::path::absolute(&path).unwrap_or(path)
}

/// The value of an environment variable as a path (any bytes), copied out; `None` if unset.
fn getenv_path(name: &CStr) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt as _;
    // SAFETY: `name` is NUL-terminated. As in `config::getenv`: read once, and a program that
    // calls `setenv` concurrently with this races with libc itself.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string in the environment block; it is copied
    // out right away.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    Some(Path::new(std::ffi::OsStr::from_bytes(bytes)).to_path_buf())
}

/// Parses `HEAPTIDE_SIGNAL`: `USR1`, `USR2` (optionally `SIG`-prefixed) or `none`, any case.
/// `Ok(None)` means no signal.
pub(crate) fn parse_signal(value: &str) -> Result<Option<Signal>, ParseError> {
    let v = value.trim();
    if v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let name = match v.get(..3) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sig") => &v[3..],
        _ => v,
    };
    if name.eq_ignore_ascii_case("usr1") {
        Ok(Some(Signal::Usr1))
    } else if name.eq_ignore_ascii_case("usr2") {
        Ok(Some(Signal::Usr2))
    } else {
        Err(ParseError)
    }
}

/// Parses `HEAPTIDE_FORMATS`: a comma-separated, non-empty list of `json`, `pprof`, `text`,
/// `folded`, `html` (any case, spaces around items allowed). One unknown or empty item makes the whole
/// value bad.
pub(crate) fn parse_formats(value: &str) -> Result<Formats, ParseError> {
    let mut set = 0u8;
    for item in value.split(',') {
        let item = item.trim();
        let format = Format::ALL
            .into_iter()
            .find(|f| item.eq_ignore_ascii_case(f.name()))
            .ok_or(ParseError)?;
        set |= format.bit();
    }
    Ok(Formats(set))
}

/// Whether a value is `off` (any case, spaces around allowed).
fn is_off(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("off")
}

/// Parses `HEAPTIDE_DUMP_ON_PEAK`: a byte size above 0 (as [`parse_size`]), or `off`
/// (`Ok(None)`).
pub(crate) fn parse_peak(value: &str) -> Result<Option<u64>, ParseError> {
    if is_off(value) {
        return Ok(None);
    }
    match parse_size(value)? {
        0 => Err(ParseError),
        bytes => Ok(Some(bytes)),
    }
}

/// Parses `HEAPTIDE_DUMP_NEAR_LIMIT`: a decimal fraction above 0 and at most 1 (`0.9`, `.95`,
/// `1`), or `off` (`Ok(None)`).
pub(crate) fn parse_fraction(value: &str) -> Result<Option<f64>, ParseError> {
    let v = value.trim();
    if is_off(v) {
        return Ok(None);
    }
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(ParseError);
    }
    match v.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(Some(f)),
        _ => Err(ParseError),
    }
}

/// Parses a switch: `1`/`true` or `0`/`false` (any case).
pub(crate) fn parse_bool(value: &str) -> Result<bool, ParseError> {
    let v = value.trim();
    if v == "1" || v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v == "0" || v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(ParseError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("USR1"), Ok(Some(Signal::Usr1)));
        assert_eq!(parse_signal("usr1"), Ok(Some(Signal::Usr1)));
        assert_eq!(parse_signal("SIGUSR1"), Ok(Some(Signal::Usr1)));
        assert_eq!(parse_signal(" sigusr1 "), Ok(Some(Signal::Usr1)));
        assert_eq!(parse_signal("USR2"), Ok(Some(Signal::Usr2)));
        assert_eq!(parse_signal("SigUsr2"), Ok(Some(Signal::Usr2)));
        assert_eq!(parse_signal("none"), Ok(None));
        assert_eq!(parse_signal("NONE"), Ok(None));
        for bad in [
            "", "SIG", "USR3", "SIGNONE", "10", "SIGTERM", "usr", "é", "sigé",
        ] {
            assert_eq!(parse_signal(bad), Err(ParseError), "{bad:?}");
        }
        assert_eq!(Signal::Usr1.number(), libc::SIGUSR1);
        assert_eq!(Signal::Usr2.name(), "SIGUSR2");
    }

    #[test]
    fn formats() {
        let all = parse_formats("json,pprof,text,folded,html").unwrap();
        assert_eq!(all.iter().collect::<Vec<_>>(), Format::ALL);
        let f = parse_formats("HTML,json").unwrap();
        assert_eq!(f.iter().collect::<Vec<_>>(), [Format::Json, Format::Html]);
        assert_eq!(f.to_string(), "json,html");
        let f = parse_formats("TEXT, json").unwrap();
        assert_eq!(f.iter().collect::<Vec<_>>(), [Format::Json, Format::Text]);
        assert!(!f.contains(Format::Pprof));
        assert_eq!(
            parse_formats("folded,folded").unwrap().to_string(),
            "folded"
        );
        assert_eq!(parse_formats("json,pprof,text"), Ok(Formats::DEFAULT));
        assert_eq!(Formats::DEFAULT.to_string(), "json,pprof,text");
        for bad in ["", ",", "json,", "json,xml", "pb.gz", "json;text", "all"] {
            assert_eq!(parse_formats(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn extensions() {
        let ext: Vec<_> = Format::ALL.iter().map(|f| f.extension()).collect();
        assert_eq!(ext, ["json", "pb.gz", "txt", "folded", "html"]);
    }

    #[test]
    fn bools() {
        for yes in ["1", "true", "TRUE", " True "] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes:?}");
        }
        for no in ["0", "false", "FALSE"] {
            assert_eq!(parse_bool(no), Ok(false), "{no:?}");
        }
        for bad in ["", "yes", "2", "on", "01"] {
            assert_eq!(parse_bool(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn peak_thresholds() {
        assert_eq!(parse_peak("512MiB"), Ok(Some(512 << 20)));
        assert_eq!(parse_peak(" 1 "), Ok(Some(1)));
        assert_eq!(parse_peak("OFF"), Ok(None));
        for bad in ["", "0", "0MiB", "-1", "lots", "1e9"] {
            assert_eq!(parse_peak(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn fractions() {
        assert_eq!(parse_fraction("0.9"), Ok(Some(0.9)));
        assert_eq!(parse_fraction(" .95 "), Ok(Some(0.95)));
        assert_eq!(parse_fraction("1"), Ok(Some(1.0)));
        assert_eq!(parse_fraction("off"), Ok(None));
        for bad in [
            "", "0", "0.0", "1.01", "90%", "-0.5", "nan", "inf", "0.9.1", ".",
        ] {
            assert_eq!(parse_fraction(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "getcwd: miri's isolation refuses it")]
    fn relative_dirs_become_absolute() {
        let p = absolute(PathBuf::from("dumps"));
        assert!(p.is_absolute() && p.ends_with("dumps"), "{}", p.display());
        assert_eq!(absolute(PathBuf::from("/x/y")), PathBuf::from("/x/y"));
    }
}
