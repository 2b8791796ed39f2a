//! Every `HEAPTIDE_*` value parser on arbitrary strings, all crate-private and reached through
//! `heaptide::__fuzz` (compiled under `cfg(fuzzing)`): sizes, the site budget, sampling, depth,
//! integers, durations, and the dump and leak-detector settings. None may panic; each result
//! is checked against a plain restatement of the documented grammar where one is short, and
//! parse -> format -> parse round-trips where a formatter exists.
#![no_main]

use std::time::Duration;

use arbitrary::Unstructured;
use heaptide::__fuzz::{
    self, ParseError, parse_depth, parse_duration, parse_sampling, parse_site_budget, parse_size,
    parse_u64, show_bytes,
};
use heaptide::Sampling;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let lossy = String::from_utf8_lossy(data);
    let v: &str = &lossy;
    integers(v);
    sizes(v);
    sampling(v);
    durations(v);
    dump_settings(v);
    analysis_settings(&mut Unstructured::new(data));
});

/// The grammar of `parse_u64`: after trimming, ASCII digits and underscores, at least one
/// digit, the value within `u64`.
fn u64_oracle(v: &str) -> Option<u64> {
    let t = v.trim();
    if t.is_empty() || !t.chars().all(|c| c.is_ascii_digit() || c == '_') {
        return None;
    }
    let digits: String = t.chars().filter(|&c| c != '_').collect();
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

fn integers(v: &str) {
    let n = parse_u64(v);
    assert_eq!(n.ok(), u64_oracle(v), "parse_u64({v:?})");
    if let Ok(n) = n {
        assert_eq!(parse_u64(&n.to_string()), Ok(n));
    }
    let d = parse_depth(v);
    match n {
        Ok(n @ 1..=64) => assert_eq!(d, Ok(n as usize)),
        _ => assert_eq!(d, Err(ParseError), "parse_depth({v:?})"),
    }
}

fn sizes(v: &str) {
    let budget = parse_site_budget(v);
    let Ok(n) = parse_size(v) else {
        assert_eq!(budget, Err(ParseError), "parse_site_budget({v:?})");
        return;
    };
    let want = if n >= 64 << 10 {
        Ok(n)
    } else {
        Err(ParseError)
    };
    assert_eq!(budget, want, "parse_site_budget({v:?}): at least 64 KiB");
    assert_eq!(parse_size(&n.to_string()), Ok(n), "plain bytes of {v:?}");
    assert_eq!(parse_size(&format!("{n} B")), Ok(n));
    // Sizes are shown rounded to one decimal; what is shown parses back to about the same
    // size, except where rounding up passes u64::MAX (16 EiB, shown as "16777216 TiB").
    let shown = show_bytes(n);
    match parse_size(&shown) {
        Ok(back) => {
            let err = (back as f64 - n as f64).abs();
            assert!(
                err <= n as f64 * 0.05 + 0.5,
                "{v:?} = {n} shown as {shown:?} reads back as {back}"
            );
        }
        Err(ParseError) => assert!(
            n > u64::MAX - (u64::MAX >> 5),
            "{v:?} = {n} shown as {shown:?} does not parse"
        ),
    }
}

fn sampling(v: &str) {
    let s = parse_sampling(v);
    let t = v.trim();
    let off = ["off", "none", "false"]
        .iter()
        .any(|w| t.eq_ignore_ascii_case(w));
    let want = if off {
        Ok(Sampling::Off)
    } else {
        match parse_size(v) {
            Ok(0) | Err(_) => Err(ParseError),
            Ok(1) => Ok(Sampling::Exact),
            Ok(r) => Ok(Sampling::MeanBytes(r)),
        }
    };
    assert_eq!(s, want, "parse_sampling({v:?})");
    if let Ok(s) = s {
        let _ = s.to_string();
        let again = match s {
            Sampling::Off => parse_sampling("off"),
            _ => parse_sampling(&s.mean_bytes().to_string()),
        };
        assert_eq!(again, Ok(s));
    }
}

fn durations(v: &str) {
    let Ok(d) = parse_duration(v) else {
        return;
    };
    assert!(d >= Duration::from_nanos(1), "{v:?} gave {d:?}");
    // Durations print as `1.5s`, `250ms`, `500µs`, `7ns`: each of those parses back (to the
    // nanosecond where a double holds it; beyond 2^53 ns only approximately).
    let nanos = d.as_nanos();
    for shown in [format!("{d:?}"), format!("{nanos}ns")] {
        let back = parse_duration(&shown)
            .unwrap_or_else(|_| panic!("{v:?} = {d:?} shown as {shown:?} does not parse"));
        let err = back.as_nanos().abs_diff(nanos);
        let tolerance = if nanos < 1 << 53 {
            1
        } else {
            nanos / (1 << 50)
        };
        assert!(
            err <= tolerance,
            "{v:?} = {d:?} shown as {shown:?} reads back as {back:?}"
        );
    }
}

fn dump_settings(v: &str) {
    match __fuzz::parse_signal(v) {
        Ok(Some(name)) => {
            assert!(name == "SIGUSR1" || name == "SIGUSR2", "{name}");
            assert_eq!(__fuzz::parse_signal(name), Ok(Some(name)));
            assert_eq!(
                __fuzz::parse_signal(&name[3..].to_lowercase()),
                Ok(Some(name))
            );
        }
        Ok(None) => assert!(v.trim().eq_ignore_ascii_case("none"), "{v:?}"),
        Err(ParseError) => {}
    }
    if let Ok(formats) = __fuzz::parse_formats(v) {
        assert!(!formats.is_empty(), "{v:?} gave no format");
        assert_eq!(__fuzz::parse_formats(&formats).as_ref(), Ok(&formats));
        assert_eq!(
            __fuzz::parse_formats(&formats.to_uppercase().replace(',', " , ")).as_ref(),
            Ok(&formats)
        );
    }
    if let Ok(b) = __fuzz::parse_bool(v) {
        assert_eq!(__fuzz::parse_bool(&b.to_string()), Ok(b));
        assert_eq!(__fuzz::parse_bool(if b { "1" } else { "0" }), Ok(b));
    }
}

/// The leak detector's settings: each value as the documented rule says, defaults for the
/// unset and the bad.
fn analysis_settings(u: &mut Unstructured<'_>) {
    let Ok(values) = u.arbitrary::<[Option<&str>; 5]>() else {
        return;
    };
    // Bad values print one stderr line each, by design: keep them out of the fuzzer's log.
    let (interval, max, limit, warn, critical) =
        without_stderr(|| __fuzz::analysis_settings(values));
    let [i, m, l, w, c] = values;
    assert_eq!(
        interval,
        i.and_then(|v| parse_duration(v).ok())
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(1)),
        "HEAPTIDE_INTERVAL={i:?}"
    );
    let want_max = m
        .and_then(|v| parse_u64(v).ok())
        .filter(|n| (8..=100_000).contains(n))
        .map_or(500, |n| n as usize);
    assert_eq!(max, want_max, "HEAPTIDE_MAX_SNAPSHOTS={m:?}");
    let size = |v: Option<&str>| v.and_then(|v| parse_size(v).ok()).filter(|&n| n > 0);
    assert_eq!(limit, size(l), "HEAPTIDE_LIMIT={l:?}");
    assert_eq!(warn, size(w), "HEAPTIDE_WARN={w:?}");
    assert_eq!(critical, size(c), "HEAPTIDE_CRITICAL={c:?}");
}

/// Runs `f` with file descriptor 2 pointed at /dev/null (restored afterwards, and by a panic
/// hook before any panic message is printed).
fn without_stderr<R>(f: impl FnOnce() -> R) -> R {
    use std::os::fd::AsRawFd;
    use std::sync::OnceLock;
    static DEV_NULL: OnceLock<std::fs::File> = OnceLock::new();
    static SAVED: OnceLock<libc::c_int> = OnceLock::new();
    let null = DEV_NULL
        .get_or_init(|| std::fs::File::create("/dev/null").expect("/dev/null"))
        .as_raw_fd();
    let saved = *SAVED.get_or_init(|| {
        // SAFETY: dup of fd 2, kept open for the life of the process.
        let saved = unsafe { libc::dup(2) };
        assert!(saved >= 0, "dup(2) failed");
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // SAFETY: puts the original stderr back; both descriptors are open.
            unsafe { libc::dup2(saved, 2) };
            previous(info);
        }));
        saved
    });
    // SAFETY: both descriptors are open; dup2 only redirects fd 2.
    unsafe { libc::dup2(null, 2) };
    let r = f();
    // SAFETY: as above, putting the original stderr back.
    unsafe { libc::dup2(saved, 2) };
    r
}
