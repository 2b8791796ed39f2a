//! Configuration: code defaults from the [`Heaptide`](crate::Heaptide) handle, overridden by
//! `HEAPTIDE_*` environment variables, read once at start-up and never on the hot path.
//! [`Config`] and [`Sampling`] are public (re-exported at the crate root); the parsers are
//! the crate's own.
//!
//! Every value, from the environment or from code, goes through the parsers here. A value that
//! does not parse never stops the program: one line on stderr names the variable, the value and
//! the accepted forms, and the default is used.
//!
//! Reading the environment happens inside the allocator, so it uses `getenv` and a stack buffer
//! for the message: no allocation, no lock.

use std::fmt;

/// How allocations are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// No profiling: plain jemalloc.
    Off,
    /// Every allocation is recorded (mean interval 1 byte), with weight 1.
    Exact,
    /// Poisson sampling: on average one sample per this many bytes allocated.
    MeanBytes(u64),
}

impl Sampling {
    /// The default: one sample per 512 KiB on average.
    pub const DEFAULT: Sampling = Sampling::MeanBytes(512 * 1024);

    /// Mean bytes between samples as reported (`0` when off, `1` when exact).
    pub fn mean_bytes(self) -> u64 {
        match self {
            Sampling::Off => 0,
            Sampling::Exact => 1,
            Sampling::MeanBytes(r) => r,
        }
    }
}

impl fmt::Display for Sampling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sampling::Off => f.write_str("off"),
            Sampling::Exact => f.write_str("every allocation"),
            Sampling::MeanBytes(r) => write!(f, "one per {} on average", ByteSize(*r)),
        }
    }
}

/// The settings in force, fixed at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// `HEAPTIDE_SAMPLE`.
    pub sampling: Sampling,
    /// `HEAPTIDE_DEPTH`: frames kept per stack (1..=64).
    pub depth: usize,
    /// `HEAPTIDE_SEED`: seed of the per-thread sampling generators (`None`: from the clock).
    pub seed: Option<u64>,
    /// `HEAPTIDE_SITE_BUDGET`: bytes the call-site table may hold before its coldest sites are
    /// merged (`None`: 64 MiB or 1% of the live heap, whichever is larger).
    pub site_budget: Option<u64>,
}

/// Default stack depth.
pub(crate) const DEFAULT_DEPTH: usize = 32;

impl Config {
    /// The defaults, before the environment.
    pub const DEFAULT: Config = Config {
        sampling: Sampling::DEFAULT,
        depth: DEFAULT_DEPTH,
        seed: None,
        site_budget: None,
    };

    /// `self` with every `HEAPTIDE_*` variable that is set applied on top.
    pub(crate) fn with_env(mut self) -> Config {
        if let Some(v) = getenv(c"HEAPTIDE_SAMPLE") {
            match parse_sampling(v) {
                Ok(s) => self.sampling = s,
                Err(ParseError) => complain("HEAPTIDE_SAMPLE", v, SAMPLING_FORMS, &self.sampling),
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_DEPTH") {
            match parse_depth(v) {
                Ok(d) => self.depth = d,
                Err(ParseError) => complain("HEAPTIDE_DEPTH", v, DEPTH_FORMS, &self.depth),
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_SEED") {
            match parse_u64(v) {
                Ok(s) => self.seed = Some(s),
                Err(ParseError) => {
                    complain("HEAPTIDE_SEED", v, "an unsigned integer", &"from the clock")
                }
            }
        }
        if let Some(v) = getenv(c"HEAPTIDE_SITE_BUDGET") {
            match parse_site_budget(v) {
                Ok(b) => self.site_budget = Some(b),
                Err(ParseError) => complain(
                    "HEAPTIDE_SITE_BUDGET",
                    v,
                    SITE_BUDGET_FORMS,
                    &"64 MiB or 1% of the live heap, whichever is larger",
                ),
            }
        }
        self
    }
}

/// Accepted forms of `HEAPTIDE_SITE_BUDGET`.
pub(crate) const SITE_BUDGET_FORMS: &str = "a byte size of at least 64KiB, such as 64MiB or 1GiB";

/// Parses a `HEAPTIDE_SITE_BUDGET` value (at least 64 KiB: a few hundred sites).
pub(crate) fn parse_site_budget(value: &str) -> Result<u64, ParseError> {
    match parse_size(value)? {
        b if b >= 64 << 10 => Ok(b),
        _ => Err(ParseError),
    }
}

/// A configuration value that is not in one of the accepted forms. Crate-private like the
/// parsers that return it (this module is private); `pub` only for the fuzz targets, which
/// reach it through `crate::__fuzz` under `cfg(fuzzing)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError;

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value is not in an accepted form")
    }
}

impl std::error::Error for ParseError {}

/// Accepted forms of `HEAPTIDE_SAMPLE`, for error messages and docs.
pub(crate) const SAMPLING_FORMS: &str = "a byte size such as 524288, 512KiB, 4MiB (mean bytes between samples), 1 (every allocation) or off";
/// Accepted forms of `HEAPTIDE_DEPTH`.
pub(crate) const DEPTH_FORMS: &str = "an integer from 1 to 64";

/// Whether a `HEAPTIDE_SAMPLE` value is one of the forms of off (`off`, `none`, `false`, any
/// case, surrounding ASCII whitespace ignored). Bytes and no allocation: the load-time
/// reservation asks it of a raw `getenv` result, before anything is initialised.
pub(crate) fn says_off(value: &[u8]) -> bool {
    let v = value.trim_ascii();
    [&b"off"[..], b"none", b"false"]
        .iter()
        .any(|off| v.eq_ignore_ascii_case(off))
}

/// Parses a `HEAPTIDE_SAMPLE` value.
pub(crate) fn parse_sampling(value: &str) -> Result<Sampling, ParseError> {
    let v = value.trim();
    if says_off(v.as_bytes()) {
        return Ok(Sampling::Off);
    }
    match parse_size(v)? {
        0 => Err(ParseError),
        1 => Ok(Sampling::Exact),
        r => Ok(Sampling::MeanBytes(r)),
    }
}

/// Parses a `HEAPTIDE_DEPTH` value.
pub(crate) fn parse_depth(value: &str) -> Result<usize, ParseError> {
    match parse_u64(value)? {
        d @ 1..=64 => Ok(d as usize),
        _ => Err(ParseError),
    }
}

/// Parses a plain unsigned decimal integer (underscores allowed as separators).
pub(crate) fn parse_u64(value: &str) -> Result<u64, ParseError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ParseError);
    }
    let mut n: u64 = 0;
    let mut digits = 0;
    for b in v.bytes() {
        match b {
            b'0'..=b'9' => {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or(ParseError)?;
                digits += 1;
            }
            b'_' => {}
            _ => return Err(ParseError),
        }
    }
    if digits == 0 { Err(ParseError) } else { Ok(n) }
}

/// Parses a byte size: an integer or decimal number with an optional unit.
/// Binary units: `K`, `KiB`, `M`, `MiB`, `G`, `GiB`, `T`, `TiB` (powers of 1024);
/// decimal units: `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000); `B` or nothing: bytes.
/// Units are case-insensitive except that `KB`-style means decimal. The result is rounded to
/// the nearest byte.
pub(crate) fn parse_size(value: &str) -> Result<u64, ParseError> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let unit = unit.trim();
    let multiplier: u64 = match unit.to_ascii_lowercase().as_bytes() {
        b"" | b"b" => 1,
        b"k" | b"kib" => 1 << 10,
        b"m" | b"mib" => 1 << 20,
        b"g" | b"gib" => 1 << 30,
        b"t" | b"tib" => 1 << 40,
        b"kb" => 1_000,
        b"mb" => 1_000_000,
        b"gb" => 1_000_000_000,
        b"tb" => 1_000_000_000_000,
        _ => return Err(ParseError),
    };
    if number.is_empty() {
        return Err(ParseError);
    }
    if let Ok(n) = parse_u64(number) {
        return n.checked_mul(multiplier).ok_or(ParseError);
    }
    let mut parts = number.split('.');
    let (Some(int), Some(frac), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(ParseError);
    };
    let int = if int.is_empty() { 0 } else { parse_u64(int)? };
    if frac.is_empty() || frac.len() > 9 {
        return Err(ParseError);
    }
    let frac_digits = parse_u64(frac)?;
    let scale = 10u64.pow(frac.len() as u32);
    let whole = int.checked_mul(multiplier).ok_or(ParseError)?;
    let part = (u128::from(frac_digits) * u128::from(multiplier) + u128::from(scale) / 2)
        / u128::from(scale);
    whole.checked_add(part as u64).ok_or(ParseError)
}

/// Accepted forms of a duration, for error messages.
pub(crate) const DURATION_FORMS: &str =
    "a duration such as 10s, 250ms, 5m, 1h or 500us (a bare number is seconds)";

/// Parses a duration: a number (integer or decimal) with an optional unit `ns`, `us`, `ms`,
/// `s` (the default), `m`, `h`. Zero is refused.
pub(crate) fn parse_duration(value: &str) -> Result<std::time::Duration, ParseError> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    let nanos_per: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "" | "s" | "sec" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        _ => return Err(ParseError),
    };
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return Err(ParseError);
    }
    let n: f64 = number.replace('_', "").parse().map_err(|_| ParseError)?;
    let nanos = n * nanos_per;
    if !(nanos >= 1.0 && nanos < u64::MAX as f64) {
        return Err(ParseError);
    }
    Ok(std::time::Duration::from_nanos(nanos.round() as u64))
}

/// A byte count printed with a binary unit (`512 KiB`, `4.0 MiB`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ByteSize(pub(crate) u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else if value.fract() == 0.0 {
            write!(f, "{value:.0} {}", UNITS[unit])
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// A change in bytes, with its sign and a binary unit (`+4.1 MiB`, `-512 KiB`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedBytes(pub(crate) f64);

impl fmt::Display for SignedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0.0 { "-" } else { "+" };
        write!(f, "{sign}{}", ByteSize(self.0.abs().round() as u64))
    }
}

/// The value of an environment variable, without allocating. `None` if unset, or if not
/// UTF-8 (then with one stderr line: the variable is ignored, its default used).
pub(crate) fn getenv(name: &std::ffi::CStr) -> Option<&'static str> {
    // SAFETY: `name` is NUL-terminated. The environment is read once, at start-up; a program
    // that calls `setenv` concurrently with its very first allocation races with libc itself.
    let p = unsafe { libc::getenv(name.as_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: getenv returned a NUL-terminated string that lives in the environment block.
    let value = unsafe { std::ffi::CStr::from_ptr(p) };
    match value.to_str() {
        Ok(value) => Some(value),
        Err(_) => {
            crate::diag::stderr_line(format_args!(
                "heaptide: ignoring {}=\"{}\": expected UTF-8; using the default",
                name.to_str().unwrap_or("a HEAPTIDE_ variable"),
                value.to_bytes().escape_ascii()
            ));
            None
        }
    }
}

/// One stderr line for a bad value.
pub(crate) fn complain(var: &str, value: &str, forms: &str, default: &dyn fmt::Display) {
    crate::diag::stderr_line(format_args!("{}", BadValue(var, value, forms, default)));
}

/// The line about a bad value: variable, value, accepted forms, the default used.
pub(crate) struct BadValue<'a>(
    pub(crate) &'a str,
    pub(crate) &'a str,
    pub(crate) &'a str,
    pub(crate) &'a dyn fmt::Display,
);

impl fmt::Display for BadValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BadValue(var, value, forms, default) = self;
        write!(
            f,
            "heaptide: ignoring {var}={value:?}: expected {forms}; using {default}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5 s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        for bad in ["", "0", "0s", "s", "-1s", "10 parsecs", ".", "1e3s"] {
            assert_eq!(parse_duration(bad), Err(ParseError), "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("524288"), Ok(524288));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("4 MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1.5MiB"), Ok(3 << 19));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1_000"), Ok(1000));
        for bad in [
            "",
            "MiB",
            "-1",
            "1.2.3",
            "12QB",
            "1e6",
            "18446744073709551616",
            "99999999999TiB",
            ".",
        ] {
            assert_eq!(parse_size(bad), Err(ParseError), "{bad:?}");
        }
    }

    #[test]
    fn sampling() {
        assert_eq!(parse_sampling("off"), Ok(Sampling::Off));
        assert_eq!(parse_sampling("OFF"), Ok(Sampling::Off));
        assert_eq!(parse_sampling("1"), Ok(Sampling::Exact));
        assert_eq!(parse_sampling("512KiB"), Ok(Sampling::MeanBytes(524288)));
        assert_eq!(parse_sampling("0"), Err(ParseError));
        assert_eq!(parse_sampling("often"), Err(ParseError));
    }

    #[test]
    fn depth() {
        assert_eq!(parse_depth("32"), Ok(32));
        assert_eq!(parse_depth("0"), Err(ParseError));
        assert_eq!(parse_depth("65"), Err(ParseError));
    }

    #[test]
    fn site_budget() {
        assert_eq!(parse_site_budget("64MiB"), Ok(64 << 20));
        assert_eq!(parse_site_budget("64KiB"), Ok(64 << 10));
        assert_eq!(parse_site_budget("1000"), Err(ParseError));
        assert_eq!(parse_site_budget("lots"), Err(ParseError));
    }

    #[test]
    fn byte_size_display() {
        assert_eq!(ByteSize(512).to_string(), "512 B");
        assert_eq!(ByteSize(524288).to_string(), "512 KiB");
        assert_eq!(ByteSize(1536 * 1024).to_string(), "1.5 MiB");
    }
}
