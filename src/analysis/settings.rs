//! Settings of the snapshot history and health: `HEAPTIDE_INTERVAL`,
//! `HEAPTIDE_MAX_SNAPSHOTS`, `HEAPTIDE_LIMIT`, `HEAPTIDE_WARN`, `HEAPTIDE_CRITICAL`.
//!
//! Read once, the first time they are needed (by the drain thread or a report: never on the
//! allocation path). A value that does not parse gives one stderr line naming the variable, the
//! value and the accepted forms, and the default is used. The interval can also be changed at
//! run time with [`crate::set_snapshot_interval`].

use std::sync::OnceLock;
use std::time::Duration;

use crate::config::{
    BadValue, ByteSize, DURATION_FORMS, ParseError, getenv, parse_duration, parse_size, parse_u64,
};
use crate::sync::{AtomicU64, Ordering};

/// Default time between snapshots.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// The shortest time between snapshots (`HEAPTIDE_INTERVAL` below it is clamped, with a line
/// on stderr; [`set_interval`] clamps too).
pub(crate) const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Default number of snapshots kept (500 x 10 s: about 83 minutes of history).
pub(crate) const DEFAULT_MAX_SNAPSHOTS: usize = 500;
/// Fewest snapshots kept, whatever is asked (the leak detector needs a few).
const MIN_SNAPSHOTS: usize = 8;
/// Most snapshots kept.
const MAX_SNAPSHOTS: usize = 100_000;

const SIZE_FORMS: &str = "a byte size such as 2GiB, 512MiB or 1500MB";

/// The settings, as read from the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) interval: Duration,
    pub(crate) max_snapshots: usize,
    /// Memory limit the trend projects toward (bytes of RSS).
    pub(crate) limit: Option<u64>,
    /// RSS at which health turns to warning.
    pub(crate) warn: Option<u64>,
    /// RSS at which health turns to critical.
    pub(crate) critical: Option<u64>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// The interval set at run time (ns; 0: none, use the setting).
static INTERVAL_OVERRIDE: AtomicU64 = AtomicU64::new(0);

/// The settings (read from the environment on first use).
pub(crate) fn get() -> &'static Settings {
    SETTINGS.get_or_init(|| from_env(getenv))
}

/// The time between snapshots now in force.
pub(crate) fn interval() -> Duration {
    match INTERVAL_OVERRIDE.load(Ordering::Relaxed) {
        0 => get().interval,
        ns => Duration::from_nanos(ns),
    }
}

/// Sets the time between snapshots at run time (at least 1 ms).
pub(crate) fn set_interval(interval: Duration) {
    let ns = interval
        .as_nanos()
        .clamp(MIN_INTERVAL.as_nanos(), u128::from(u64::MAX)) as u64;
    INTERVAL_OVERRIDE.store(ns, Ordering::Relaxed);
}

/// The settings from `var` (the environment, or a stand-in for tests and the fuzzer), with the
/// defaults for unset values and one stderr line for each bad one.
pub(crate) fn from_env<'a>(var: impl Fn(&std::ffi::CStr) -> Option<&'a str>) -> Settings {
    from_env_telling(var, &|line| crate::diag::stderr_line(line))
}

/// [`from_env`], with the lines about bad values handed to `tell` (stderr, or a test's list).
fn from_env_telling<'a>(
    var: impl Fn(&std::ffi::CStr) -> Option<&'a str>,
    tell: &dyn Fn(std::fmt::Arguments<'_>),
) -> Settings {
    let complain = |name: &str, value: &str, forms: &str, default: &dyn std::fmt::Display| {
        tell(format_args!("{}", BadValue(name, value, forms, default)))
    };
    let raw_interval = var(c"HEAPTIDE_INTERVAL");
    let mut interval = read(
        raw_interval,
        "HEAPTIDE_INTERVAL",
        parse_duration,
        DURATION_FORMS,
        DEFAULT_INTERVAL,
        &"10s",
        &complain,
    );
    if interval < MIN_INTERVAL {
        tell(format_args!(
            "heaptide: HEAPTIDE_INTERVAL={:?} is below the minimum; using 1ms",
            raw_interval.unwrap_or_default()
        ));
        interval = MIN_INTERVAL;
    }
    let max_snapshots = read(
        var(c"HEAPTIDE_MAX_SNAPSHOTS"),
        "HEAPTIDE_MAX_SNAPSHOTS",
        |v| match parse_u64(v)? as usize {
            n @ MIN_SNAPSHOTS..=MAX_SNAPSHOTS => Ok(n),
            _ => Err(ParseError),
        },
        "an integer from 8 to 100000",
        DEFAULT_MAX_SNAPSHOTS,
        &DEFAULT_MAX_SNAPSHOTS,
        &complain,
    );
    let size = |value: Option<&str>, name: &str| {
        read(
            value,
            name,
            |v| parse_size(v).and_then(|n| if n == 0 { Err(ParseError) } else { Ok(Some(n)) }),
            SIZE_FORMS,
            None,
            &"no threshold",
            &complain,
        )
    };
    let limit = size(var(c"HEAPTIDE_LIMIT"), "HEAPTIDE_LIMIT");
    let warn = size(var(c"HEAPTIDE_WARN"), "HEAPTIDE_WARN");
    let critical = size(var(c"HEAPTIDE_CRITICAL"), "HEAPTIDE_CRITICAL");
    if let (Some(w), Some(c)) = (warn, critical)
        && w > c
    {
        tell(format_args!(
            "heaptide: HEAPTIDE_WARN ({}) is above HEAPTIDE_CRITICAL ({}); warnings start at the critical level",
            ByteSize(w),
            ByteSize(c)
        ));
    }
    Settings {
        interval,
        max_snapshots,
        limit,
        warn,
        critical,
    }
}

/// Parses one variable: the default when unset, one stderr line and the default when bad.
fn read<T: Copy>(
    value: Option<&str>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, ParseError>,
    forms: &str,
    default: T,
    shown_default: &dyn std::fmt::Display,
    complain: &dyn Fn(&str, &str, &str, &dyn std::fmt::Display),
) -> T {
    match value {
        None => default,
        Some(v) => parse(v).unwrap_or_else(|_| {
            complain(name, v, forms, shown_default);
            default
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings from `pairs`, and the lines about bad values.
    fn env_lines(pairs: &'static [(&'static str, &'static str)]) -> (Settings, Vec<String>) {
        let lines = std::cell::RefCell::new(Vec::new());
        let s = from_env_telling(
            |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k.as_bytes() == name.to_bytes())
                    .map(|(_, v)| *v)
            },
            &|line| lines.borrow_mut().push(line.to_string()),
        );
        (s, lines.into_inner())
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> Settings {
        env_lines(pairs).0
    }

    #[test]
    fn defaults_and_values() {
        let s = env(&[]);
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(s.max_snapshots, DEFAULT_MAX_SNAPSHOTS);
        assert_eq!((s.limit, s.warn, s.critical), (None, None, None));
        let s = env(&[
            ("HEAPTIDE_INTERVAL", "5ms"),
            ("HEAPTIDE_MAX_SNAPSHOTS", "64"),
            ("HEAPTIDE_LIMIT", "2GiB"),
            ("HEAPTIDE_WARN", "1GiB"),
            ("HEAPTIDE_CRITICAL", "1.5GiB"),
        ]);
        assert_eq!(s.interval, Duration::from_millis(5));
        assert_eq!(s.max_snapshots, 64);
        assert_eq!(s.limit, Some(2 << 30));
        assert_eq!(s.warn, Some(1 << 30));
        assert_eq!(s.critical, Some(3 << 29));
    }

    #[test]
    fn bad_values_fall_back_to_defaults() {
        let (s, lines) = env_lines(&[
            ("HEAPTIDE_INTERVAL", "soon"),
            ("HEAPTIDE_MAX_SNAPSHOTS", "3"),
            ("HEAPTIDE_LIMIT", "lots"),
            ("HEAPTIDE_WARN", "0"),
        ]);
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines[0].starts_with("heaptide: ignoring HEAPTIDE_INTERVAL=\"soon\": expected "),
            "{lines:?}"
        );
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(s.max_snapshots, DEFAULT_MAX_SNAPSHOTS);
        assert_eq!((s.limit, s.warn), (None, None));
    }

    #[test]
    fn intervals_under_a_millisecond_are_clamped() {
        assert_eq!(env(&[("HEAPTIDE_INTERVAL", "1ns")]).interval, MIN_INTERVAL);
        assert_eq!(
            env(&[("HEAPTIDE_INTERVAL", "999us")]).interval,
            MIN_INTERVAL
        );
        assert_eq!(
            env(&[("HEAPTIDE_INTERVAL", "2ms")]).interval,
            Duration::from_millis(2)
        );
    }
}
