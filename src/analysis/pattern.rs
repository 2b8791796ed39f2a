//! The leak classifier: the shape ([`Pattern`]) of a call site's live bytes over the snapshot
//! window, with a growth rate, a confidence and the evidence in words.
//!
//! # The rule
//!
//! The input is the site's live bytes at each snapshot of the window (estimated from samples
//! unless profiling is exact; the intervals may be uneven) and the number of samples behind
//! the latest value. The first step that decides, decides:
//!
//! 1. **Insufficient evidence** with fewer than 9 snapshots ([`MIN_POINTS`]) or no time
//!    between the first and the last; the verdict says how many more snapshots it needs.
//! 2. **No live bytes** at any snapshot: stable long-lived.
//! 3. **Releases.** A *release* is a fall between two consecutive snapshots of at least 30% of
//!    the window's range (highest − lowest value), at least 10% of the value before the fall
//!    and at least 5 typical steps (the 75th percentile of the sizes of all the
//!    snapshot-to-snapshot changes), after the series has climbed at least 30% of the range
//!    from its lowest point since the previous release (or since the start). With 2 releases
//!    or more, take the *troughs*: the lowest snapshot after each release, up to the next
//!    release. If the least-squares line through them rises by at least 10% of the range over
//!    the window, with r² ≥ 0.5, memory that is never given back accumulates under the cycles:
//!    with at least 3 troughs ([`MIN_TROUGHS`]; a line through two always fits) **steady
//!    growth**, growing at the troughs' rate; with 2, **insufficient evidence** (about one
//!    cycle more per missing trough). Troughs that do not rise: **sawtooth**.
//! 4. **Change.** Split the snapshots into thirds (the first and last third have ⌊n/3⌋ each)
//!    and fit a least-squares line to each third. The *change* is the mean of the last third
//!    minus the mean of the first. Its standard error combines, in quadrature:
//!    - each third's scatter: σ/√m, where σ is the standard deviation of the residuals
//!      around the third's own line (so a curve does not count as noise) and m its
//!      snapshots, widened by √((1+ρ)/(1−ρ)) where ρ is the lag-1 autocorrelation of those
//!      residuals (neighbours that move together count as fewer independent points; ρ is
//!      corrected for its small-sample bias, (1+3ρ)/m, and kept in [0, 0.9]);
//!    - the counting error of the samples: with w = latest value / samples (at most 1 MiB),
//!      a change of X bytes is made of X/w samples, uncertain by √(X/w) samples, that is
//!      √(w·X) bytes. (A sample heavier than 1 MiB is a large allocation, whose estimate is
//!      nearly exact, or a buffer that grows by reallocation.)
//!
//!    If |change| is under 5% of the larger of the two means, or under 3 standard errors, the
//!    series did not change significantly. That is **stable long-lived** unless the evidence
//!    is thin, which gives **insufficient evidence** instead:
//!    - the end of the window rises (the last third, the last fifth or the last 5 snapshots:
//!      a slope 3 standard errors above flat, by at least 5% of the level): growth that
//!      started late;
//!    - the change is a rise of at least 5% that is at least 2 standard errors, or that went
//!      up at 90% of the steps that moved: too noisy to call, not an all-clear (the count of
//!      snapshots asked for assumes the rise goes on: n·((3/z)² − 1));
//!    - fewer than 20 snapshots and the change is not bounded under 5% of the level within 2
//!      standard errors.
//! 5. A significant fall: **declining**.
//! 6. A significant rise. The *average rate* is the change divided by the time between the
//!    two thirds' mean times; the *recent rate* is the slope of the last third's line. The
//!    recent rate's standard error is the last third's scatter (σ widened as above, over
//!    √(Σ(t − t̄)²)) and the counting error of growth at the average rate over the last
//!    third.
//!    - Recent rate ≤ 0.5 × the average and at least 4 standard errors below the average:
//!      **plateau** (it grew, then stopped: a cache that filled).
//!    - Released exactly once, and the highest value after the release is not 30% of the range
//!      above the highest before: **insufficient evidence** (a slow sawtooth shows one
//!      release per window; it needs 3 troughs).
//!    - Recent rate ≥ 1.25 × the average and at least 3 standard errors above it:
//!      **accelerating growth**.
//!    - Growth that slowed but is not provably a plateau: the last third's (or the last
//!      fifth's) rate ≤ 0.5 × the average, 2 standard errors below it and under 2 above
//!      flat: **insufficient evidence** (a cache that filled late and a leak look alike).
//!    - Otherwise **steady growth**.
//!
//! **Growth rate** (bytes per hour): the least-squares slope over the whole window, for every
//! pattern except steady growth under a sawtooth (the troughs' slope).
//!
//! **Confidence** in [0, 1]: min(1, n/20) × min(1, samples/8) × E. For the two leak patterns
//! E = (r² + u)/2, with r² the fit of the least-squares line over the window (through the
//! troughs, under a sawtooth, times min(1, troughs/5)) and u the fraction of the
//! snapshot-to-snapshot changes that are rises (among those that move); for the other patterns
//! E = 1, so the confidence says how much evidence there was. Insufficient evidence: 0. Few
//! snapshots, troughs or samples (a leak seen through 2 samples) make weak evidence whatever
//! the shape, and the confidence grows as they accumulate.
//!
//! The reason names the figures behind the verdict: the change and its standard errors, the
//! rate, r², the steps up and down, the samples, and the test that decided.
//!
//! The rule judges one window at a time: growth under 5% of the level within the window
//! (a slow leak on a large base) reads as stable until the window holds more of it.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::trend::{Fit, Point, fit, slope};
use crate::config::{ByteSize, SignedBytes};

/// Fewest snapshots for a verdict.
pub(crate) const MIN_POINTS: usize = 9;
/// A release falls by at least this fraction of the series' range...
pub(crate) const RELEASE_OF_RANGE: f64 = 0.3;
/// ... and of the value before the fall ...
pub(crate) const RELEASE_OF_LEVEL: f64 = 0.1;
/// ... and by at least this many typical steps (the 75th percentile of step sizes).
pub(crate) const RELEASE_OF_STEP: f64 = 5.0;
/// Releases that make a sawtooth.
pub(crate) const MIN_RELEASES: usize = 2;
/// Troughs rising by this fraction of the range over the window make a leak...
pub(crate) const TROUGH_RISE_OF_RANGE: f64 = 0.1;
/// ... if their line fits at least this well (r²).
pub(crate) const TROUGH_MIN_R2: f64 = 0.5;
/// Troughs needed before their line can call a sawtooth a leak (two points always fit a
/// line): with fewer, rising troughs give an insufficient-evidence verdict.
pub(crate) const MIN_TROUGHS: usize = 3;
/// Troughs at which the trough factor of a sawtooth leak's confidence saturates.
const FULL_TROUGHS: f64 = 5.0;
/// Snapshots a stable verdict needs, unless the change is bounded below
/// [`CHANGE_OF_LEVEL`] of the level within 2 standard errors.
pub(crate) const STABLE_MIN_POINTS: usize = 20;
/// A rise of at least [`CHANGE_OF_LEVEL`] that is at least this many standard errors (but under
/// [`CHANGE_Z`]) is not called stable: insufficient evidence.
pub(crate) const NOISE_Z: f64 = 2.0;
/// ... as is one that went up at this fraction of the steps that moved, with at least
/// [`MONOTONE_STEPS`] steps up.
pub(crate) const MONOTONE_FRACTION: f64 = 0.9;
/// See [`MONOTONE_FRACTION`].
pub(crate) const MONOTONE_STEPS: usize = 8;
/// After a significant rise, the last third's slope must be this many standard errors above
/// flat for steady growth; below, the growth may have stopped: insufficient evidence.
pub(crate) const STILL_RISING_Z: f64 = 2.0;
/// ... when the last third's slope is also at least this many standard errors below the
/// average rate (growth that slowed, but not yet provably a plateau).
pub(crate) const SLOWED_Z: f64 = 2.0;
/// Fewest snapshots in the tail that [`Evidence::flat_tail`] tests.
pub(crate) const TAIL_POINTS: usize = 5;
/// Most snapshots an insufficient-evidence verdict asks for.
const MAX_NEEDED: usize = 100_000;
/// A change smaller than this fraction of the level is no change.
pub(crate) const CHANGE_OF_LEVEL: f64 = 0.05;
/// Standard errors a change must exceed.
pub(crate) const CHANGE_Z: f64 = 3.0;
/// Growth stopped: the recent rate is at most this fraction of the average rate...
pub(crate) const PLATEAU_RATE: f64 = 0.5;
/// ... and below the average rate by at least this many standard errors.
pub(crate) const PLATEAU_Z: f64 = 4.0;
/// Growth accelerates: the recent rate is at least this multiple of the average rate...
pub(crate) const ACCEL_RATE: f64 = 1.25;
/// ... and above the average rate by at least this many standard errors.
pub(crate) const ACCEL_Z: f64 = 3.0;
/// Most bytes one sample counts for in the counting error. A sample of a small allocation
/// stands for about the sampling interval (512 KiB by default) and its count is Poisson; a
/// sample heavier than this is a large allocation whose estimate is nearly exact (or one buffer
/// that grows by reallocation), which the counting error must not drown.
pub(crate) const MAX_SAMPLE_WEIGHT: f64 = 1024.0 * 1024.0;
/// Cap on the lag-1 autocorrelation used to count correlated snapshots as fewer points.
const MAX_RHO: f64 = 0.9;
/// Snapshots at which the point factor of the confidence saturates.
const FULL_POINTS: f64 = 20.0;
/// Samples at which the sample factor of the confidence saturates.
const FULL_SAMPLES: f64 = 8.0;

/// The shape of a call site's live bytes over the snapshot window. Only
/// [`SteadyGrowth`](Pattern::SteadyGrowth) and
/// [`AcceleratingGrowth`](Pattern::AcceleratingGrowth) are leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Pattern {
    /// Still growing at about its average rate to the end of the window, or memory is
    /// released repeatedly but the troughs rise (a leak under a sawtooth). A leak.
    SteadyGrowth,
    /// Growing, and faster in the last third of the window than on average. A leak.
    AcceleratingGrowth,
    /// Grew, then stopped growing: a cache or pool that filled up. Not a leak.
    Plateau,
    /// Grows and is released again, repeatedly, with troughs that do not rise: memory reused
    /// in cycles. Not a leak.
    Sawtooth,
    /// No significant change over the window: data allocated once and kept, or a working set
    /// that comes and goes around a steady level. Not a leak.
    StableLongLived,
    /// Fell significantly over the window. Not a leak.
    Declining,
    /// Not enough evidence for a verdict yet: too few snapshots, too short a time, a rise
    /// too small for its noise, or a shape that more snapshots will settle (growth that slowed,
    /// cycles with too few troughs, growth that started in the last third of the window). The
    /// site's `needs_snapshots` says about how many more snapshots the detector needs. Not a
    /// leak verdict, and not an all-clear either.
    #[serde(alias = "too_short")]
    InsufficientEvidence,
}

impl Pattern {
    /// Whether the pattern is a leak: [`SteadyGrowth`](Pattern::SteadyGrowth) or
    /// [`AcceleratingGrowth`](Pattern::AcceleratingGrowth).
    pub fn is_leak(self) -> bool {
        matches!(self, Pattern::SteadyGrowth | Pattern::AcceleratingGrowth)
    }
}

/// How fast a leak grows, from its growth rate in bytes per hour: at least
/// [`CRITICAL_BYTES_PER_HOUR`](Severity::CRITICAL_BYTES_PER_HOUR) (1 GiB/h) is critical, at
/// least [`HIGH_BYTES_PER_HOUR`](Severity::HIGH_BYTES_PER_HOUR) (100 MiB/h) high, at least
/// [`MEDIUM_BYTES_PER_HOUR`](Severity::MEDIUM_BYTES_PER_HOUR) (10 MiB/h) medium, anything
/// slower low. Ordered from low to critical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Below 10 MiB per hour (240 MiB a day).
    Low,
    /// From 10 MiB to 100 MiB per hour.
    Medium,
    /// From 100 MiB to 1 GiB per hour.
    High,
    /// 1 GiB per hour or more.
    Critical,
}

impl Severity {
    /// Growth rate from which a leak is critical: 1 GiB per hour.
    pub const CRITICAL_BYTES_PER_HOUR: f64 = 1024.0 * 1024.0 * 1024.0;
    /// Growth rate from which a leak is high: 100 MiB per hour.
    pub const HIGH_BYTES_PER_HOUR: f64 = 100.0 * 1024.0 * 1024.0;
    /// Growth rate from which a leak is medium: 10 MiB per hour.
    pub const MEDIUM_BYTES_PER_HOUR: f64 = 10.0 * 1024.0 * 1024.0;

    /// The severity of a growth rate in bytes per hour (a rate that is not a number is low).
    pub fn from_growth(bytes_per_hour: f64) -> Severity {
        if bytes_per_hour >= Severity::CRITICAL_BYTES_PER_HOUR {
            Severity::Critical
        } else if bytes_per_hour >= Severity::HIGH_BYTES_PER_HOUR {
            Severity::High
        } else if bytes_per_hour >= Severity::MEDIUM_BYTES_PER_HOUR {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

/// The classifier's answer for one series.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub(crate) pattern: Pattern,
    /// Bytes per hour: the least-squares slope over the window, except for a leak under a
    /// sawtooth (the slope of the line through the troughs).
    pub(crate) growth_bytes_per_hour: f64,
    /// In `[0, 1]`.
    pub(crate) confidence: f64,
    /// The evidence in words.
    pub(crate) reason: String,
    /// With [`Pattern::InsufficientEvidence`]: about how many more snapshots a verdict needs.
    pub(crate) needs_snapshots: Option<u32>,
}

/// One third of the window: the least-squares line through its points and the scatter around
/// that line.
#[derive(Debug, Clone, Copy)]
struct Third {
    fit: Fit,
    /// Points in it.
    m: usize,
    /// Seconds from its first point to its last.
    span: f64,
    /// Standard deviation of the residuals (divisor m - 2), bytes.
    sd: f64,
    /// Lag-1 autocorrelation of the residuals, corrected for its small-sample bias, in
    /// `[0, MAX_RHO]`.
    rho: f64,
}

impl Third {
    fn of(points: &[Point]) -> Option<Third> {
        let f = fit(points)?;
        let m = points.len();
        let r: Vec<f64> = points.iter().map(|p| p.v - f.at(p.t)).collect();
        // r1 = sum(r[i] r[i+1]) / sum(r[i]²) underestimates the autocorrelation of a short
        // series by about (1 + 3 r1) / m.
        let rho = if f.sse > 0.0 {
            let r1 = r.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / f.sse;
            (r1 + (1.0 + 3.0 * r1) / m as f64).clamp(0.0, MAX_RHO)
        } else {
            0.0
        };
        Some(Third {
            fit: f,
            m,
            span: points[m - 1].t - points[0].t,
            sd: (f.sse / (m - 2) as f64).sqrt(),
            rho,
        })
    }

    fn mean(&self) -> f64 {
        self.fit.v_mean
    }

    /// The scatter's standard deviation widened for correlation: `sd * sqrt((1 + rho) / (1 -
    /// rho))`.
    fn effective_sd(&self) -> f64 {
        self.sd * ((1.0 + self.rho) / (1.0 - self.rho)).sqrt()
    }

    /// Variance of the mean from the scatter.
    fn mean_var(&self) -> f64 {
        self.effective_sd().powi(2) / self.m as f64
    }

    /// Variance of the slope from the scatter.
    fn slope_var(&self) -> f64 {
        self.effective_sd().powi(2) / self.fit.sxx
    }
}

/// What the classifier measured.
#[derive(Debug, Clone)]
struct Evidence<'a> {
    points: &'a [Point],
    n: usize,
    span: f64,
    min: f64,
    max: f64,
    overall: Fit,
    first: Third,
    last: Third,
    /// Bytes per sample for the counting error: latest value / samples, at most
    /// `MAX_SAMPLE_WEIGHT`; 0 when unknown.
    weight: f64,
    /// Indices `i` of the releases (the fall is from point `i` to `i + 1`).
    releases: Vec<usize>,
    /// The lowest point after each release, up to the next release.
    troughs: Vec<Point>,
    ups: usize,
    downs: usize,
}

impl<'a> Evidence<'a> {
    fn gather(points: &'a [Point], samples: u64) -> Option<Evidence<'a>> {
        let n = points.len();
        let span = points[n - 1].t - points[0].t;
        let overall = fit(points)?;
        let m = n / 3;
        let first = Third::of(&points[..m])?;
        let last = Third::of(&points[n - m..])?;
        let latest = points[n - 1].v;
        let weight = if samples > 0 && latest > 0.0 {
            (latest / samples as f64).min(MAX_SAMPLE_WEIGHT)
        } else {
            0.0
        };
        let min = points.iter().map(|p| p.v).fold(f64::INFINITY, f64::min);
        let max = points.iter().map(|p| p.v).fold(f64::NEG_INFINITY, f64::max);
        let releases = releases(points, max - min);
        // From the point after each release (its low) to the next release's peak, or the end.
        let troughs = releases
            .iter()
            .map(|&i| i + 1)
            .zip(
                releases
                    .iter()
                    .skip(1)
                    .map(|&i| i + 1)
                    .chain(std::iter::once(n)),
            )
            .map(|(a, b)| lowest(&points[a..b]))
            .collect();
        let steps = || points.windows(2).map(|w| w[1].v - w[0].v);
        Some(Evidence {
            points,
            n,
            span,
            min,
            max,
            overall,
            first,
            last,
            weight,
            releases,
            troughs,
            ups: steps().filter(|d| *d > 0.0).count(),
            downs: steps().filter(|d| *d < 0.0).count(),
        })
    }

    /// Change from the first third's mean to the last third's, bytes.
    fn change(&self) -> f64 {
        self.last.mean() - self.first.mean()
    }

    /// Variance, bytes², of a change of `bytes` made of samples of `weight` bytes: the count
    /// of samples N = bytes / weight is uncertain by sqrt(N).
    fn counting_var(&self, bytes: f64) -> f64 {
        self.weight * bytes.abs()
    }

    /// Standard errors in the change.
    fn change_z(&self) -> f64 {
        let var = self.first.mean_var() + self.last.mean_var() + self.counting_var(self.change());
        z(self.change().abs(), var)
    }

    /// Average rate, bytes per second: the change over the time between the thirds' centres.
    fn average_rate(&self) -> f64 {
        self.change() / (self.last.fit.t_mean - self.first.fit.t_mean)
    }

    /// The last third's slope, bytes per second.
    fn recent_rate(&self) -> f64 {
        self.last.fit.slope
    }

    /// The difference between the recent rate and the average rate, in standard errors (the
    /// scatter of the last third's slope, and the counting error of growth at the average
    /// rate over the last third).
    fn recent_z(&self) -> f64 {
        let average = self.average_rate();
        z(
            self.recent_rate() - average,
            self.last.slope_var()
                + self.counting_var(average.max(0.0) * self.last.span) / self.last.span.powi(2),
        )
    }

    /// How far the highest value after the release at `i` rises above the highest before it,
    /// bytes (a slow sawtooth's teeth reach the same height; a leak's keep climbing).
    fn peak_after_release_gain(&self, i: usize) -> f64 {
        let peak = |s: &[Point]| s.iter().map(|p| p.v).fold(f64::NEG_INFINITY, f64::max);
        peak(&self.points[i + 1..]) - peak(&self.points[..=i])
    }

    /// Whether the last fifth of the window (at least [`TAIL_POINTS`] snapshots) stopped
    /// growing: its slope at most [`PLATEAU_RATE`] × the average rate, [`SLOWED_Z`] standard
    /// errors below it and under [`STILL_RISING_Z`] above flat. Gives the tail's snapshots, its
    /// rate over the average, and the two distances in standard errors.
    fn flat_tail(&self) -> Option<(usize, f64, f64, f64)> {
        let q = (self.n / 5).max(TAIL_POINTS);
        if q * 2 > self.n {
            return None;
        }
        let tail = Third::of(&self.points[self.n - q..])?;
        let (rate, average) = (tail.fit.slope, self.average_rate());
        let var =
            tail.slope_var() + self.counting_var(average.max(0.0) * tail.span) / tail.span.powi(2);
        let (below, above) = (z(average - rate, var), z(rate, var));
        (rate <= PLATEAU_RATE * average && below >= SLOWED_Z && above < STILL_RISING_Z).then_some((
            q,
            rate / average,
            below,
            above,
        ))
    }

    /// The rise at the end of the window and its slope in standard errors above flat: the
    /// steepest (in standard errors) of the last third's, the last fifth's and the last
    /// [`TAIL_POINTS`]' (growth that started late shows at the very end before it dominates
    /// the last third).
    fn rising_tail(&self) -> (f64, f64) {
        let third = (self.recent_rate() * self.last.span, self.recent_slope_z());
        let tail = |q: usize| {
            Third::of(&self.points[self.n - q..]).map(|tail| {
                let rise = tail.fit.slope * tail.span;
                let var = tail.slope_var() + self.counting_var(rise.max(0.0)) / tail.span.powi(2);
                (rise, z(tail.fit.slope, var))
            })
        };
        [tail((self.n / 5).max(TAIL_POINTS)), tail(TAIL_POINTS)]
            .into_iter()
            .flatten()
            .fold(third, |best, t| if t.1 > best.1 { t } else { best })
    }

    /// Standard error of the change, bytes.
    fn change_se(&self) -> f64 {
        (self.first.mean_var() + self.last.mean_var() + self.counting_var(self.change())).sqrt()
    }

    /// The last third's slope in standard errors above flat (its scatter, and the counting
    /// error of its own rise).
    fn recent_slope_z(&self) -> f64 {
        let rise = self.recent_rate().max(0.0) * self.last.span;
        z(
            self.recent_rate(),
            self.last.slope_var() + self.counting_var(rise) / self.last.span.powi(2),
        )
    }

    /// Slope (bytes per second) and r² of the line through the troughs (`None` with fewer
    /// than two).
    fn trough_line(&self) -> Option<(f64, f64)> {
        slope(&self.troughs)
    }

    /// Fraction of the moving steps that go up (0.5 when nothing moves).
    fn up_fraction(&self) -> f64 {
        if self.ups + self.downs == 0 {
            0.5
        } else {
            self.ups as f64 / (self.ups + self.downs) as f64
        }
    }
}

/// `x` in standard errors given its variance (infinite when there is no noise and `x > 0`).
fn z(x: f64, var: f64) -> f64 {
    if var > 0.0 {
        x / var.sqrt()
    } else if x > 0.0 {
        f64::INFINITY
    } else if x < 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    }
}

/// Indices of the releases: falls between consecutive snapshots of at least
/// `RELEASE_OF_RANGE` × range, `RELEASE_OF_LEVEL` × the value before the fall and
/// `RELEASE_OF_STEP` × the 75th percentile of step sizes, each after the series has risen by
/// at least `RELEASE_OF_RANGE` × range from its lowest point since the previous release.
fn releases(points: &[Point], range: f64) -> Vec<usize> {
    let mut sizes: Vec<f64> = points.windows(2).map(|w| (w[1].v - w[0].v).abs()).collect();
    sizes.sort_by(f64::total_cmp);
    let typical = sizes[(sizes.len() - 1) * 3 / 4];
    let fall_min = (RELEASE_OF_RANGE * range).max(RELEASE_OF_STEP * typical);
    let mut out = Vec::new();
    if range <= 0.0 {
        return out;
    }
    let mut low = points[0].v;
    for (i, w) in points.windows(2).enumerate() {
        let (a, b) = (w[0].v, w[1].v);
        low = low.min(a);
        if a - b >= fall_min && a - b >= RELEASE_OF_LEVEL * a && a - low >= RELEASE_OF_RANGE * range
        {
            out.push(i);
            low = b;
        }
    }
    out
}

fn lowest(points: &[Point]) -> Point {
    *points
        .iter()
        .min_by(|a, b| a.v.total_cmp(&b.v))
        .expect("segments between releases are never empty")
}

/// Classifies a site's live-bytes series (time order); `samples` is the number of sampled
/// live objects behind the latest value (in exact mode, the live objects). See the module
/// documentation for the rule.
pub(crate) fn classify(points: &[Point], samples: u64) -> Verdict {
    let n = points.len();
    let span = if n > 0 {
        points[n - 1].t - points[0].t
    } else {
        0.0
    };
    let evidence = if n >= MIN_POINTS && span > 0.0 {
        Evidence::gather(points, samples)
    } else {
        None
    };
    let Some(e) = evidence else {
        let rate = slope_per_hour(points);
        return if n >= MIN_POINTS && span > 0.0 {
            insufficient(
                rate,
                (n / 3).max(1),
                format!(
                    "{n} snapshots over {}, but a third of the window has all its snapshots at \
                     one time, or a value is not a number",
                    duration(span)
                ),
            )
        } else {
            let needed = if n >= MIN_POINTS { 1 } else { MIN_POINTS - n };
            insufficient(
                rate,
                needed,
                format!(
                    "{n} snapshot{} over {}: a verdict needs at least {MIN_POINTS} over a \
                     nonzero time",
                    if n == 1 { "" } else { "s" },
                    duration(span.max(0.0)),
                ),
            )
        };
    };
    judge(&e, samples)
}

fn slope_per_hour(points: &[Point]) -> f64 {
    slope(points).map_or(0.0, |(rate, _)| rate * 3600.0)
}

/// The verdict for a series that cannot be judged yet: about `needed` more snapshots.
fn insufficient(growth_bytes_per_hour: f64, needed: usize, why: String) -> Verdict {
    let needed = needed.clamp(1, MAX_NEEDED);
    Verdict {
        pattern: Pattern::InsufficientEvidence,
        growth_bytes_per_hour: if growth_bytes_per_hour.is_finite() {
            growth_bytes_per_hour
        } else {
            0.0
        },
        confidence: 0.0,
        reason: format!(
            "insufficient evidence: {why}; about {needed} more snapshot{} needed",
            if needed == 1 { "" } else { "s" }
        ),
        needs_snapshots: Some(needed as u32),
    }
}

fn judge(e: &Evidence<'_>, samples: u64) -> Verdict {
    // How much evidence there is: saturates at FULL_POINTS snapshots and FULL_SAMPLES samples.
    let quantity = (e.n as f64 / FULL_POINTS).min(1.0) * (samples as f64 / FULL_SAMPLES).min(1.0);
    let overall_rate = e.overall.slope * 3600.0;
    let range = e.max - e.min;
    let window = format!("{} in {} snapshots", duration(e.span), e.n);
    let steps = format!(
        "{} of {} steps up, {} down, {samples} sample{}",
        e.ups,
        e.n - 1,
        e.downs,
        if samples == 1 { "" } else { "s" }
    );
    let verdict = |pattern, growth_bytes_per_hour, confidence: f64, reason| Verdict {
        pattern,
        growth_bytes_per_hour,
        confidence: confidence.clamp(0.0, 1.0),
        reason,
        needs_snapshots: None,
    };

    if e.max <= 0.0 {
        return verdict(
            Pattern::StableLongLived,
            0.0,
            quantity,
            format!("no live bytes over {window}"),
        );
    }

    // Snapshots per cycle, from the releases seen (the first cycle runs from the start).
    let period = match e.releases.as_slice() {
        [] => e.n,
        [only] => only + 1,
        [first, .., last] => (last - first) / (e.releases.len() - 1),
    }
    .max(1);

    if e.releases.len() >= MIN_RELEASES {
        let mut reason = format!(
            "live bytes grew and were released {} times over {window} (range {})",
            e.releases.len(),
            bytes(range),
        );
        let trough = e.trough_line();
        let rising = trough.filter(|&(rate, r2)| {
            rate * e.span >= TROUGH_RISE_OF_RANGE * range && r2 >= TROUGH_MIN_R2
        });
        if let Some((rate, r2)) = rising {
            let _ = write!(
                reason,
                ", and the troughs rise: {} along their line through {} troughs ({}/h, \
                 r²={r2:.2}; {steps})",
                SignedBytes(rate * e.span),
                e.troughs.len(),
                SignedBytes(rate * 3600.0),
            );
            if e.troughs.len() < MIN_TROUGHS {
                let _ = write!(
                    reason,
                    "; a leak under cycles needs at least {MIN_TROUGHS} troughs (a line through \
                     two always fits)"
                );
                let needed = period * (MIN_TROUGHS - e.troughs.len());
                return insufficient(rate * 3600.0, needed, reason);
            }
            // More troughs, more confidence: saturates at FULL_TROUGHS.
            let troughs = (e.troughs.len() as f64 / FULL_TROUGHS).min(1.0);
            let confidence = quantity * troughs * (r2 + e.up_fraction()) / 2.0;
            return verdict(Pattern::SteadyGrowth, rate * 3600.0, confidence, reason);
        }
        if let Some((rate, r2)) = trough {
            let _ = write!(
                reason,
                "; the troughs do not rise: {} along their line through {} troughs \
                 (r²={r2:.2})",
                SignedBytes(rate * e.span),
                e.troughs.len(),
            );
        }
        return verdict(Pattern::Sawtooth, overall_rate, quantity, reason);
    }

    let change = e.change();
    let level = e.first.mean().abs().max(e.last.mean().abs());
    let change_z = e.change_z();
    let percent = 100.0 * change / level;
    let small = change.abs() < CHANGE_OF_LEVEL * level;
    if small || change_z < CHANGE_Z {
        let reason = format!(
            "live bytes stayed near {} over {window} ({steps}): the last third's mean differs \
             from the first's by {} ({percent:+.1}%, {change_z:.1} standard errors), under the \
             {:.0}% and {CHANGE_Z:.0} standard errors a change needs",
            bytes(e.last.mean()),
            SignedBytes(change),
            100.0 * CHANGE_OF_LEVEL,
        );
        // Growth that started late: the last third alone rises, plainly.
        let (recent_rise, recent_z) = e.rising_tail();
        if recent_rise >= CHANGE_OF_LEVEL * level && recent_z >= CHANGE_Z {
            return insufficient(
                overall_rate,
                e.last.m,
                format!(
                    "live bytes were level, then rose {} at the end of {window} \
                     ({recent_z:.1} standard errors; {steps}): growth that started late is \
                     judged once it spans more of the window",
                    SignedBytes(recent_rise)
                ),
            );
        }
        // A rise big enough to matter that the noise hides: not an all-clear.
        // (Or that rose at nearly every step that moved: no jitter does that.)
        let monotone = e.ups >= MONOTONE_STEPS && e.up_fraction() >= MONOTONE_FRACTION;
        if change > 0.0 && !small && (change_z >= NOISE_Z || monotone) {
            let more = (CHANGE_Z / change_z).powi(2) - 1.0;
            return insufficient(
                overall_rate,
                (e.n as f64 * more).ceil() as usize,
                format!(
                    "live bytes rose {} ({percent:+.1}%) from the first third of {window} to \
                     the last, {change_z:.1} standard errors ({steps}): too noisy to tell a \
                     leak from jitter; a leak verdict needs {CHANGE_Z:.0}",
                    SignedBytes(change)
                ),
            );
        }
        // Few snapshots: stable only if the change is known to be small.
        if e.n < STABLE_MIN_POINTS && change.abs() + 2.0 * e.change_se() >= CHANGE_OF_LEVEL * level
        {
            return insufficient(
                overall_rate,
                STABLE_MIN_POINTS - e.n,
                format!(
                    "live bytes moved {} ({percent:+.1}%) over {window} ({steps}), within \
                     {} (2 standard errors): too few snapshots to rule out a change of \
                     {:.0}%",
                    SignedBytes(change),
                    bytes(2.0 * e.change_se()),
                    100.0 * CHANGE_OF_LEVEL,
                ),
            );
        }
        return verdict(Pattern::StableLongLived, overall_rate, quantity, reason);
    }
    let fitted = e.overall.slope * e.span;
    let mut reason = format!(
        "live bytes {} {} over {window} ({}/h, r²={:.2}, {steps}); the last third's mean is \
         {} ({percent:+.0}%) from the first's, {change_z:.1} standard errors",
        if fitted < 0.0 { "fell" } else { "rose" },
        bytes(fitted),
        SignedBytes(overall_rate),
        e.overall.r2,
        SignedBytes(change),
    );
    if change < 0.0 {
        return verdict(Pattern::Declining, overall_rate, quantity, reason);
    }

    let ratio = e.recent_rate() / e.average_rate();
    let recent_z = e.recent_z();
    if ratio <= PLATEAU_RATE && recent_z <= -PLATEAU_Z {
        let _ = write!(
            reason,
            "; then it stopped: the last third grew at {ratio:.2}× the average rate \
             ({:.1} standard errors below)",
            -recent_z
        );
        return verdict(Pattern::Plateau, overall_rate, quantity, reason);
    }
    if let [release] = e.releases.as_slice()
        && e.peak_after_release_gain(*release) < RELEASE_OF_RANGE * range
    {
        let _ = write!(
            reason,
            "; but it was released once (after snapshot {}): growth under cycles needs at \
             least {MIN_TROUGHS} troughs",
            release + 1
        );
        let seen = e.n - release - 1;
        let needed = (period * (MIN_TROUGHS - 1)).saturating_sub(seen);
        return insufficient(overall_rate, needed, reason);
    }
    let pattern = if ratio >= ACCEL_RATE && recent_z >= ACCEL_Z {
        let _ = write!(
            reason,
            "; faster and faster: the last third grew at {ratio:.1}× the average rate \
             ({recent_z:.1} standard errors above)"
        );
        Pattern::AcceleratingGrowth
    } else {
        let still = e.recent_slope_z();
        if ratio <= PLATEAU_RATE && recent_z <= -SLOWED_Z && still < STILL_RISING_Z {
            let _ = write!(
                reason,
                "; then it slowed: the last third grew at {ratio:.2}× the average rate \
                 ({:.1} standard errors below it, {still:.1} above flat): a cache filling up \
                 and a leak look alike until it clearly stops or keeps rising",
                -recent_z
            );
            return insufficient(overall_rate, e.last.m, reason);
        }
        if let Some((q, tail_ratio, below, above)) = e.flat_tail() {
            let _ = write!(
                reason,
                "; then it slowed: the last {q} snapshots grew at {tail_ratio:.2}× the average \
                 rate ({below:.1} standard errors below it, {above:.1} above flat): a cache \
                 that filled and a leak that paused look alike until it clearly stops or \
                 rises again"
            );
            return insufficient(overall_rate, q, reason);
        }
        let _ = write!(
            reason,
            "; still rising in the last third ({ratio:.1}× the average rate)"
        );
        Pattern::SteadyGrowth
    };
    let confidence = quantity * (e.overall.r2 + e.up_fraction()) / 2.0;
    verdict(pattern, overall_rate, confidence, reason)
}

fn bytes(v: f64) -> ByteSize {
    ByteSize(v.abs().round() as u64)
}

/// `470 ms`, `38 s`, `9.8 min`, `3.5 h`, `2.1 d`.
fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else if seconds < 120.0 {
        format!("{seconds:.0} s")
    } else if seconds < 7200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else if seconds < 172_800.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} d", seconds / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::collections::BTreeMap;

    use super::*;

    /// xorshift64* (Vigna): a tiny deterministic generator for test noise.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        /// Uniform in `[0, 1)`.
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform in `[-a, a)`.
        fn sym(&mut self, a: f64) -> f64 {
            (2.0 * self.unit() - 1.0) * a
        }

        /// Poisson (Knuth's method; `lambda` is small here).
        fn poisson(&mut self, lambda: f64) -> u64 {
            let limit = (-lambda).exp();
            let (mut k, mut p) = (0, 1.0);
            loop {
                p *= self.unit();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }

        fn binomial(&mut self, n: u64, p: f64) -> u64 {
            (0..n).filter(|_| self.unit() < p).count() as u64
        }
    }

    const KIB: f64 = 1024.0;
    const MIB: f64 = 1024.0 * 1024.0;
    /// Nominal seconds between snapshots.
    const DT: f64 = 10.0;
    /// Bytes per sample in the sampled-mode series (the default mean interval).
    const W: f64 = 512.0 * KIB;
    /// Seeds every randomized test runs over (a few under miri, where each costs seconds).
    const SEEDS: u64 = if cfg!(miri) { 3 } else { 200 };

    thread_local! {
        /// Snapshots per generated series (60 unless a test changes it).
        static POINTS: Cell<usize> = const { Cell::new(60) };
    }

    /// Snapshot times: `DT` apart on average, each interval stretched or shrunk by up to 50%.
    fn times(rng: &mut Rng) -> Vec<f64> {
        let mut t = 0.0;
        (0..POINTS.get())
            .map(|i| {
                if i > 0 {
                    t += DT * (0.5 + rng.unit());
                }
                t
            })
            .collect()
    }

    /// A series at uneven times; `f(t, x, rng)` with `x = t / span` in `[0, 1]`. Bytes never go
    /// below 0.
    fn series(rng: &mut Rng, mut f: impl FnMut(f64, f64, &mut Rng) -> f64) -> Vec<Point> {
        let ts = times(rng);
        let span = ts[ts.len() - 1];
        ts.iter()
            .map(|&t| Point {
                t,
                v: f(t, t / span, rng).max(0.0),
            })
            .collect()
    }

    /// `n` points `DT` apart, no noise.
    fn even(n: usize, f: impl Fn(f64) -> f64) -> Vec<Point> {
        (0..n)
            .map(|i| {
                let t = i as f64 * DT;
                Point { t, v: f(t) }
            })
            .collect()
    }

    // The generators. Levels are in MiB; "noise" is uniform.

    /// A leak of `rate` bytes/s on a 2 MiB base, noise ± `noise` × the final level.
    fn linear(seed: u64, rate: f64, noise: f64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let base = 2.0 * MIB;
        let final_level = base + rate * DT * POINTS.get() as f64;
        series(&mut rng, |t, _, r| {
            base + rate * t + r.sym(noise * final_level)
        })
    }

    /// 1 MiB + 50 MiB x², ± 0.5 MiB.
    fn quadratic(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, x, r| {
            MIB + 50.0 * MIB * x * x + r.sym(0.5 * MIB)
        })
    }

    /// Flat at 10 MiB for the first half, then a leak of 30 MiB over the second; ± 0.3 MiB.
    fn late_leak(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, x, r| {
            10.0 * MIB + 60.0 * MIB * (x - 0.5).max(0.0) + r.sym(0.3 * MIB)
        })
    }

    /// A cache filling along a logistic curve to 40 MiB (98% full by mid-window), ± 0.4 MiB.
    fn logistic_cache(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, x, r| {
            40.0 * MIB / (1.0 + (-(x - 0.25) / 0.06).exp()) + r.sym(0.4 * MIB)
        })
    }

    /// A cache filling linearly to 40 MiB over 60% of the window, then flat; ± 0.4 MiB.
    fn linear_then_flat(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, x, r| {
            40.0 * MIB * (x / 0.6).min(1.0) + r.sym(0.4 * MIB)
        })
    }

    /// Teeth of 20 MiB (8 to 12 snapshots each, random phase) over a floor that starts at
    /// 0.5 MiB and rises `floor_rise` × 20 MiB over the window; ± 0.4 MiB.
    fn sawtooth(seed: u64, floor_rise: f64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let period = 8 + (rng.next() % 5) as usize;
        let mut i = (rng.next() % period as u64) as usize;
        series(&mut rng, |_, x, r| {
            let tooth = 20.0 * MIB * ((i % period) as f64 + 1.0) / period as f64;
            i += 1;
            0.5 * MIB + floor_rise * 20.0 * MIB * x + tooth + r.sym(0.4 * MIB)
        })
    }

    /// Nothing for two snapshots, then a 64 MiB buffer kept to the end; ± 0.2 MiB.
    fn buffer_once(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let mut i = 0;
        series(&mut rng, |_, _, r| {
            i += 1;
            if i <= 2 {
                0.0
            } else {
                64.0 * MIB + r.sym(0.2 * MIB)
            }
        })
    }

    /// A leak from 12 to 40 MiB under noise of ± 30% of the final level (± 12 MiB).
    fn heavy_noise(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let f = 40.0 * MIB;
        series(&mut rng, |_, x, r| 0.3 * f + 0.7 * f * x + r.sym(0.3 * f))
    }

    /// Sampled mode: 4 samples of `W`, plus a Poisson stream of new ones (30 per 600 s on
    /// average) that are never freed.
    fn sampled_leak(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let mut k = 4u64;
        let mut last = 0.0;
        series(&mut rng, |t, _, r| {
            k += r.poisson(30.0 * (t - last) / 600.0);
            last = t;
            k as f64 * W
        })
    }

    /// Sampled mode, flat: 40 samples of `W` in equilibrium; per `DT`, each live sample dies
    /// with probability `turnover` and 40 × `turnover` new ones arrive (Poisson).
    fn sampled_flat(seed: u64, turnover: f64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let mut k = 40u64;
        let mut last = 0.0;
        series(&mut rng, |t, _, r| {
            let p = (turnover * (t - last) / DT).min(1.0);
            last = t;
            let born = r.poisson(40.0 * p);
            let died = r.binomial(k, p);
            k = k + born - died;
            k as f64 * W
        })
    }

    /// One buffer (one sample) whose capacity doubles from 1 MiB to 64 MiB over the window.
    fn doubling_buffer(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let shift = rng.unit();
        series(&mut rng, |_, x, _| {
            MIB * (6.0 * x + shift).floor().min(6.0).exp2()
        })
    }

    /// From 40 MiB down to 8 MiB, ± 1 MiB.
    fn declining(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, x, r| {
            40.0 * MIB * (1.0 - 0.8 * x) + r.sym(MIB)
        })
    }

    /// 30 MiB ± 0.5 MiB.
    fn stable(seed: u64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, _, r| 30.0 * MIB + r.sym(0.5 * MIB))
    }

    /// Samples behind the last value of a sampled-mode series.
    fn sampled(p: &[Point]) -> u64 {
        (p[p.len() - 1].v / W).round() as u64
    }

    /// Classifies `generate(seed)` for every seed and asserts `ok` for each, listing failures.
    fn check(
        name: &str,
        generate: impl Fn(u64) -> Vec<Point>,
        samples: impl Fn(&[Point]) -> u64,
        ok: impl Fn(&Verdict, &[Point]) -> bool,
    ) {
        let mut failures = Vec::new();
        for seed in 0..SEEDS {
            let p = generate(seed);
            let v = classify(&p, samples(&p));
            if !ok(&v, &p) {
                failures.push(format!("seed {seed}: {:?} ({})", v.pattern, v.reason));
            }
        }
        assert!(
            failures.is_empty(),
            "{name}: {} of {SEEDS} seeds fail:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// Classifies `generate(seed)` for every seed: every verdict is `want` or waits for more
    /// evidence, and at least 95% of them are `want`.
    fn mostly(
        name: &str,
        generate: impl Fn(u64) -> Vec<Point>,
        samples: impl Fn(&[Point]) -> u64,
        want: impl Fn(Pattern) -> bool,
    ) {
        check(name, &generate, &samples, |v, _| {
            want(v.pattern) || v.pattern == Pattern::InsufficientEvidence
        });
        let hits = (0..SEEDS)
            .filter(|&seed| {
                let p = generate(seed);
                want(classify(&p, samples(&p)).pattern)
            })
            .count() as u64;
        // A rate needs many seeds; under miri (3 seeds, run for undefined behaviour, with its
        // deliberately imprecise float functions) one seed may wait for evidence.
        let enough = if cfg!(miri) {
            hits + 1 >= SEEDS
        } else {
            hits * 100 >= SEEDS * 95
        };
        assert!(enough, "{name}: {hits} of {SEEDS} seeds as expected");
    }

    /// [`mostly`] leaks: never an all-clear.
    fn mostly_leaks(
        name: &str,
        generate: impl Fn(u64) -> Vec<Point>,
        samples: impl Fn(&[Point]) -> u64,
    ) {
        mostly(name, generate, samples, Pattern::is_leak);
    }

    /// The exact growth rate of `linear(_, rate, _)` in bytes per hour.
    fn per_hour(rate_per_s: f64) -> f64 {
        rate_per_s * 3600.0
    }

    fn relative_error(got: f64, want: f64) -> f64 {
        ((got - want) / want).abs()
    }

    #[test]
    fn severity_thresholds() {
        assert_eq!(Severity::from_growth(0.0), Severity::Low);
        assert_eq!(Severity::from_growth(-5e12), Severity::Low);
        assert_eq!(Severity::from_growth(f64::NAN), Severity::Low);
        assert_eq!(Severity::from_growth(9.99 * MIB), Severity::Low);
        assert_eq!(Severity::from_growth(10.0 * MIB), Severity::Medium);
        assert_eq!(Severity::from_growth(99.9 * MIB), Severity::Medium);
        assert_eq!(Severity::from_growth(100.0 * MIB), Severity::High);
        assert_eq!(Severity::from_growth(1023.0 * MIB), Severity::High);
        assert_eq!(Severity::from_growth(1024.0 * MIB), Severity::Critical);
        assert_eq!(Severity::from_growth(f64::INFINITY), Severity::Critical);
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::Medium < Severity::High);
        assert!(Severity::High < Severity::Critical);
    }

    #[test]
    fn leaks_and_names() {
        let all = [
            (Pattern::SteadyGrowth, true, "steady_growth"),
            (Pattern::AcceleratingGrowth, true, "accelerating_growth"),
            (Pattern::Plateau, false, "plateau"),
            (Pattern::Sawtooth, false, "sawtooth"),
            (Pattern::StableLongLived, false, "stable_long_lived"),
            (Pattern::Declining, false, "declining"),
            (
                Pattern::InsufficientEvidence,
                false,
                "insufficient_evidence",
            ),
        ];
        for (pattern, leak, name) in all {
            assert_eq!(pattern.is_leak(), leak, "{pattern:?}");
            let json = serde_json::to_string(&pattern).unwrap();
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Pattern>(&json).unwrap(), pattern);
        }
        assert_eq!(
            serde_json::to_string(&Severity::Critical).unwrap(),
            "\"critical\""
        );
        assert_eq!(
            serde_json::from_str::<Severity>("\"medium\"").unwrap(),
            Severity::Medium
        );
    }

    #[test]
    fn too_short() {
        let leak = |n| even(n, |t| MIB + 1000.0 * t);
        for n in [0, 1, 2, MIN_POINTS - 1] {
            let v = classify(&leak(n), 100);
            assert_eq!(v.pattern, Pattern::InsufficientEvidence, "{n} points");
            assert_eq!(v.confidence, 0.0);
            assert!(v.reason.contains("at least 9"), "{}", v.reason);
        }
        // The growth rate is still the slope when there is one.
        let v = classify(&leak(MIN_POINTS - 1), 100);
        assert!(relative_error(v.growth_bytes_per_hour, 3_600_000.0) < 1e-9);
        // Enough points but no time between them.
        let same_time: Vec<Point> = (0..12)
            .map(|i| Point {
                t: 5.0,
                v: f64::from(i),
            })
            .collect();
        assert_eq!(
            classify(&same_time, 100).pattern,
            Pattern::InsufficientEvidence
        );
        // A third whose snapshots share one time cannot be fitted.
        let mut stuck = leak(12);
        for p in &mut stuck[..4] {
            p.t = 0.0;
        }
        let v = classify(&stuck, 100);
        assert_eq!(v.pattern, Pattern::InsufficientEvidence);
        assert!(v.reason.contains("one time"), "{}", v.reason);
        // The minimum is enough for a clean leak.
        let v = classify(&leak(MIN_POINTS), 100_000);
        assert_eq!(v.pattern, Pattern::SteadyGrowth, "{}", v.reason);
        assert!((v.confidence - MIN_POINTS as f64 / 20.0).abs() < 1e-9);
    }

    #[test]
    fn exact_linear_leak() {
        // 1 KiB/s on 1 MiB, no noise, even timing.
        let p = even(60, |t| MIB + KIB * t);
        let v = classify(&p, 10_000);
        assert_eq!(v.pattern, Pattern::SteadyGrowth, "{}", v.reason);
        assert!(relative_error(v.growth_bytes_per_hour, 3600.0 * KIB) < 1e-9);
        assert!(v.confidence > 0.99, "{}", v.confidence);
        for part in [
            "rose 590 KiB",
            "9.8 min in 60 snapshots",
            "r²=1.00",
            "59 of 59 steps up",
        ] {
            assert!(v.reason.contains(part), "{part:?} in {}", v.reason);
        }
    }

    #[test]
    fn linear_leak_with_noise() {
        // 180 MiB/h on 2 MiB, noise ± 2% of the final level, uneven timing.
        let rate = 0.05 * MIB;
        check(
            "linear leak",
            |seed| linear(seed, rate, 0.02),
            |_| 100,
            |v, _| {
                v.pattern == Pattern::SteadyGrowth
                    && v.confidence > 0.7
                    && relative_error(v.growth_bytes_per_hour, per_hour(rate)) < 0.05
            },
        );
    }

    #[test]
    fn two_leaks_ordered_by_rate() {
        let (fast, slow) = (0.05 * MIB, 0.005 * MIB);
        for seed in 0..SEEDS {
            let f = classify(&linear(seed, fast, 0.02), 100);
            let s = classify(&linear(seed + 10_000, slow, 0.02), 100);
            assert_eq!(
                f.pattern,
                Pattern::SteadyGrowth,
                "seed {seed}: {}",
                f.reason
            );
            assert_eq!(
                s.pattern,
                Pattern::SteadyGrowth,
                "seed {seed}: {}",
                s.reason
            );
            assert!(relative_error(f.growth_bytes_per_hour, per_hour(fast)) < 0.05);
            assert!(relative_error(s.growth_bytes_per_hour, per_hour(slow)) < 0.05);
            assert!(f.growth_bytes_per_hour > 5.0 * s.growth_bytes_per_hour);
            assert_eq!(
                Severity::from_growth(f.growth_bytes_per_hour),
                Severity::High
            );
            assert_eq!(
                Severity::from_growth(s.growth_bytes_per_hour),
                Severity::Medium
            );
        }
    }

    #[test]
    fn quadratic_leak_accelerates() {
        check(
            "quadratic leak",
            quadratic,
            |_| 1000,
            |v, _| v.pattern == Pattern::AcceleratingGrowth && v.reason.contains("faster"),
        );
        // With 100 samples the counting error makes the acceleration hard to prove, but the
        // leak is plain.
        check(
            "quadratic leak, 100 samples",
            quadratic,
            |_| 100,
            |v, _| v.pattern.is_leak(),
        );
    }

    #[test]
    fn leak_starting_midway_is_a_leak() {
        check("late leak", late_leak, |_| 100, |v, _| v.pattern.is_leak());
    }

    #[test]
    fn cache_that_fills_is_a_plateau() {
        for (name, generate) in [
            ("logistic cache", logistic_cache as fn(u64) -> Vec<Point>),
            ("linear then flat", linear_then_flat),
        ] {
            check(
                name,
                generate,
                |_| 100,
                |v, _| v.pattern == Pattern::Plateau && v.reason.contains("then it stopped"),
            );
        }
        // Exact figures, many objects: still a plateau.
        check(
            "exact cache",
            linear_then_flat,
            |_| 1_000_000,
            |v, _| v.pattern == Pattern::Plateau,
        );
    }

    #[test]
    fn sawtooth_is_reuse() {
        check(
            "sawtooth",
            |seed| sawtooth(seed, 0.0),
            |_| 100,
            |v, _| v.pattern == Pattern::Sawtooth && v.reason.contains("do not rise"),
        );
    }

    #[test]
    fn sawtooth_with_rising_troughs_is_a_leak() {
        // The floor rises 10 MiB under 20 MiB teeth: found through the troughs, at about the
        // floor's rate.
        check(
            "sawtooth, floor +10 MiB",
            |seed| sawtooth(seed, 0.5),
            |_| 100,
            |v, p| {
                let floor_rate = per_hour(10.0 * MIB / p[p.len() - 1].t);
                v.pattern == Pattern::SteadyGrowth
                    && v.reason.contains("troughs rise")
                    && relative_error(v.growth_bytes_per_hour, floor_rate) < 0.2
            },
        );
        // A floor rising 40 MiB under 20 MiB teeth: the falls no longer count as releases,
        // and the rise is plain.
        // A floor rising 40 MiB under 20 MiB teeth: the falls mostly no longer count as
        // releases, and the rise is plain; where two still do, two troughs are not enough.
        mostly_leaks(
            "sawtooth, floor +40 MiB",
            |seed| sawtooth(seed, 2.0),
            |_| 100,
        );
    }

    #[test]
    fn buffer_allocated_once_is_not_a_leak() {
        check(
            "buffer once",
            buffer_once,
            |_| 100,
            |v, _| matches!(v.pattern, Pattern::StableLongLived | Pattern::Plateau),
        );
        // Allocated a third of the way in: grew, then stopped.
        let p = even(60, |t| if t < 200.0 { 0.0 } else { 64.0 * MIB });
        assert_eq!(classify(&p, 64).pattern, Pattern::Plateau);
    }

    #[test]
    fn leak_under_heavy_noise() {
        check(
            "heavy noise",
            heavy_noise,
            |_| 100,
            |v, _| !v.pattern.is_leak() || v.confidence < 0.7,
        );
        // Noise of ± 30% hides whether the last third still grows in a few seeds: those wait
        // for more snapshots, none is called harmless.
        mostly_leaks("heavy noise", heavy_noise, |_| 100);
    }

    #[test]
    fn sampled_leak_and_sampled_jitter() {
        mostly_leaks("sampled leak", sampled_leak, sampled);
        // Flat but noisy (40 samples, half of them replaced per snapshot): stable, except for
        // the few seeds whose jitter rises 2 standard errors, which wait for more snapshots.
        mostly(
            "sampled jitter",
            |seed| sampled_flat(seed, 0.5),
            sampled,
            |p| p == Pattern::StableLongLived,
        );
    }

    #[test]
    fn one_buffer_growing_by_reallocation_is_a_leak() {
        // One live sample, growing from 1 MiB to 64 MiB: the counting error is capped, so a
        // single big object can be a leak, with little confidence (1 sample).
        check(
            "doubling buffer",
            doubling_buffer,
            |_| 1,
            |v, _| !v.pattern.is_leak() || v.confidence < 0.2,
        );
        // (A seed whose last doubling came early ends flat: it waits for more snapshots.)
        mostly_leaks("doubling buffer", doubling_buffer, |_| 1);
    }

    #[test]
    fn declining_and_stable() {
        check(
            "declining",
            declining,
            |_| 100,
            |v, _| v.pattern == Pattern::Declining && v.growth_bytes_per_hour < 0.0,
        );
        check(
            "stable",
            stable,
            |_| 100,
            |v, _| v.pattern == Pattern::StableLongLived && v.reason.contains("stayed near"),
        );
        let zeros = even(30, |_| 0.0);
        let v = classify(&zeros, 0);
        assert_eq!(v.pattern, Pattern::StableLongLived);
        assert!(v.reason.starts_with("no live bytes"), "{}", v.reason);
        assert_eq!(v.confidence, 0.0);
        // Exactly flat.
        let v = classify(&even(30, |_| 8.0 * MIB), 16);
        assert_eq!(v.pattern, Pattern::StableLongLived);
        assert_eq!(v.growth_bytes_per_hour, 0.0);
        assert_eq!(v.confidence, 1.0);
    }

    #[test]
    fn small_rise_on_a_large_base_is_judged_against_the_level() {
        // 200 MiB base, exact: +3% over the window is under the 5% bar; +15% is a leak.
        let small = even(60, |t| 200.0 * MIB + 6.0 * MIB * t / 590.0);
        let v = classify(&small, 1_000_000);
        assert_eq!(v.pattern, Pattern::StableLongLived, "{}", v.reason);
        let large = even(60, |t| 200.0 * MIB + 30.0 * MIB * t / 590.0);
        assert_eq!(classify(&large, 1_000_000).pattern, Pattern::SteadyGrowth);
    }

    #[test]
    fn few_samples_weaken_the_confidence() {
        // 60 MiB of growth made of samples of 256 KiB: plain with 400 samples. Through 2 samples
        // (heavier than the cap) the same series is still a leak, with a quarter of the
        // confidence.
        let p = even(60, |t| 40.0 * MIB + 60.0 * MIB * t / 590.0);
        let many = classify(&p, 400);
        let few = classify(&p, 2);
        assert_eq!(many.pattern, Pattern::SteadyGrowth);
        assert_eq!(few.pattern, Pattern::SteadyGrowth);
        assert!((few.confidence - many.confidence / 4.0).abs() < 1e-9);
        assert!(few.reason.contains("2 samples"), "{}", few.reason);
        // Fewer snapshots, less confidence.
        let short = classify(&p[..10], 400);
        assert!((short.confidence - many.confidence / 2.0).abs() < 1e-9);
    }

    #[test]
    fn counting_error_decides_small_changes() {
        // +4 samples of 512 KiB on 40, exactly linear: only 4 samples of evidence, under the
        // 3-standard-error bar. With 40 times the samples (exact figures), the same rise is a
        // leak.
        let p = even(60, |t| 40.0 * W + 4.0 * W * t / 590.0);
        // A rise of 10% that the counting error hides is not an all-clear: the detector waits.
        let v = classify(&p, 44);
        assert_eq!(v.pattern, Pattern::InsufficientEvidence, "{}", v.reason);
        assert!(v.reason.contains("standard errors"), "{}", v.reason);
        assert!(v.needs_snapshots.unwrap() > 0);
        // The same figures going up and down around the line (no steady climb): a rise of
        // 1.6 standard errors is jitter, stable.
        let p = even(60, |t| {
            40.0 * W + 4.0 * W * t / 590.0 + if (t / DT) as u64 % 2 == 0 { W } else { -W }
        });
        let v = classify(&p, 44);
        assert_eq!(v.pattern, Pattern::StableLongLived, "{}", v.reason);
        assert_eq!(classify(&p, 44 * 40).pattern, Pattern::SteadyGrowth);
    }

    #[test]
    fn uneven_timing_does_not_bias_the_rate() {
        // Snapshots bunched at the start, then sparse: the rate is the true one.
        let mut t = 0.0;
        let p: Vec<Point> = (0..40)
            .map(|i| {
                t += if i < 20 { 1.0 } else { 30.0 };
                Point {
                    t,
                    v: 5.0 * MIB + 2.0 * KIB * t,
                }
            })
            .collect();
        let v = classify(&p, 1000);
        assert_eq!(v.pattern, Pattern::SteadyGrowth, "{}", v.reason);
        assert!(relative_error(v.growth_bytes_per_hour, 7200.0 * KIB) < 1e-9);
    }

    #[test]
    fn verdicts_are_finite() {
        // Degenerate and hostile inputs never give NaN rates or confidences out of range.
        let inputs = [
            even(20, |_| 0.0),
            even(20, |t| if t < 50.0 { 0.0 } else { 1.0 }),
            even(20, |t| 1e15 * (t / 10.0).sin().abs()),
            vec![
                Point {
                    t: 0.0,
                    v: f64::NAN
                };
                20
            ],
        ];
        for p in &inputs {
            for samples in [0, 1, u64::MAX] {
                let v = classify(p, samples);
                assert!(v.growth_bytes_per_hour.is_finite(), "{v:?}");
                assert!((0.0..=1.0).contains(&v.confidence), "{v:?}");
            }
        }
    }

    /// Teeth of 20 MiB, `period` snapshots each, random phase, on 0.5 MiB; ± 0.4 MiB.
    fn slow_sawtooth(seed: u64, period: usize) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let mut i = (rng.next() % period as u64) as usize;
        series(&mut rng, |_, _, r| {
            let tooth = 20.0 * MIB * ((i % period) as f64 + 1.0) / period as f64;
            i += 1;
            0.5 * MIB + tooth + r.sym(0.4 * MIB)
        })
    }

    /// A cache filling linearly to 40 MiB over the fraction `fill` of the window, then flat;
    /// ± 0.4 MiB.
    fn cache_filling(seed: u64, fill: f64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        series(&mut rng, |_, x, r| {
            40.0 * MIB * (x / fill).min(1.0) + r.sym(0.4 * MIB)
        })
    }

    /// Flat at 10 MiB until the fraction `start` of the window, then a leak of 0.05 MiB/s;
    /// ± 0.3 MiB.
    fn leak_from(seed: u64, start: f64) -> Vec<Point> {
        let mut rng = Rng::new(seed);
        let span = DT * (POINTS.get() - 1) as f64;
        series(&mut rng, |_, x, r| {
            10.0 * MIB + 0.05 * MIB * span * (x - start).max(0.0) + r.sym(0.3 * MIB)
        })
    }

    #[test]
    fn short_windows_wait_for_evidence() {
        // Under MIN_POINTS snapshots, whatever the shape: insufficient evidence, saying how
        // many more snapshots a verdict needs.
        for n in 0..MIN_POINTS {
            for p in [
                even(n, |t| MIB + KIB * t),
                even(n, |_| 8.0 * MIB),
                even(n, |t| if (t / DT) as u64 % 3 == 2 { 0.0 } else { MIB }),
            ] {
                let v = classify(&p, 1000);
                assert_eq!(
                    v.pattern,
                    Pattern::InsufficientEvidence,
                    "{n}: {}",
                    v.reason
                );
                assert_eq!(v.needs_snapshots, Some((MIN_POINTS - n) as u32));
                assert_eq!(v.confidence, 0.0);
                assert!(
                    v.reason.contains(&format!("about {} more", MIN_POINTS - n)),
                    "{}",
                    v.reason
                );
            }
        }
        // From MIN_POINTS to STABLE_MIN_POINTS, a noisy flat series is never a leak and is
        // called stable only when the change is bounded tightly; a clean leak is a leak, with
        // a confidence that grows with the snapshots.
        let mut last_confidence = 0.0;
        for n in MIN_POINTS..=STABLE_MIN_POINTS {
            POINTS.set(n);
            for seed in 0..SEEDS {
                let p = stable(seed);
                let v = classify(&p, 100);
                assert!(
                    matches!(
                        v.pattern,
                        Pattern::StableLongLived | Pattern::InsufficientEvidence
                    ),
                    "{n} snapshots, seed {seed}: {}",
                    v.reason
                );
            }
            let v = classify(&even(n, |t| MIB + KIB * t), 10_000);
            assert_eq!(v.pattern, Pattern::SteadyGrowth, "{n}: {}", v.reason);
            assert!(v.confidence > last_confidence, "{n}: {}", v.confidence);
            last_confidence = v.confidence;
        }
        POINTS.set(60);
        // A leak of 10% over 12 snapshots under noise of ± 4%: not provable yet, and not
        // called stable.
        let p = even(12, |t| {
            let noise = if (t / DT) as u64 % 2 == 0 { 4.0 } else { -4.0 };
            (100.0 + 10.0 * t / 110.0 + noise) * MIB
        });
        let v = classify(&p, 1_000_000);
        assert_eq!(v.pattern, Pattern::InsufficientEvidence, "{}", v.reason);
        assert!(v.needs_snapshots.unwrap() > 0);
    }

    #[test]
    fn two_troughs_never_make_a_leak() {
        // Three teeth of 10 snapshots on a floor rising 10 MiB: two releases, two troughs. A
        // line through two troughs always fits; the detector waits for a third.
        for samples in [1, 8, 100, 1_000_000] {
            let p = even(30, |t| {
                let i = (t / DT) as usize;
                MIB + 10.0 * MIB * t / 290.0 + 20.0 * MIB * ((i % 10) as f64 + 1.0) / 10.0
            });
            let v = classify(&p, samples);
            assert_eq!(v.pattern, Pattern::InsufficientEvidence, "{}", v.reason);
            assert!(v.reason.contains("2 troughs"), "{}", v.reason);
            assert_eq!(v.needs_snapshots, Some(10), "{}", v.reason);
            // One more tooth: three troughs, a leak at the floor's rate.
            let p = even(40, |t| {
                let i = (t / DT) as usize;
                MIB + 10.0 * MIB * t / 290.0 + 20.0 * MIB * ((i % 10) as f64 + 1.0) / 10.0
            });
            let v = classify(&p, samples);
            assert_eq!(v.pattern, Pattern::SteadyGrowth, "{}", v.reason);
        }
        // More troughs, more confidence.
        let teeth = |n: usize| {
            even(n, |t| {
                let i = (t / DT) as usize;
                MIB + 10.0 * MIB * t / 290.0 + 20.0 * MIB * ((i % 10) as f64 + 1.0) / 10.0
            })
        };
        let (three, five) = (classify(&teeth(40), 100), classify(&teeth(60), 100));
        assert!(three.confidence < five.confidence, "{three:?} {five:?}");
    }

    #[test]
    fn slow_sawtooth_is_never_a_leak() {
        // Teeth of 15 to 45 snapshots in a 60-snapshot window: one to four releases. Never a
        // leak; with four teeth, a sawtooth. (A tooth longer than the window is a rise the
        // window cannot tell from a leak until it is released.)
        for period in [15, 20, 30, 45] {
            check(
                &format!("slow sawtooth, period {period}"),
                |seed| slow_sawtooth(seed, period),
                |_| 100,
                |v, _| !v.pattern.is_leak(),
            );
        }
        check(
            "slow sawtooth, period 15",
            |seed| slow_sawtooth(seed, 15),
            |_| 100,
            |v, _| v.pattern == Pattern::Sawtooth,
        );
    }

    #[test]
    fn caches_that_plateau_are_not_leaks() {
        // Filled over 30% to 65% of the window, then flat: a plateau.
        for fill in [0.3, 0.5, 0.65] {
            check(
                &format!("cache filled over {fill}"),
                |seed| cache_filling(seed, fill),
                |_| 100,
                |v, _| v.pattern == Pattern::Plateau,
            );
        }
        // Filled over 80% of the window: the flat part is short; never a leak (insufficient
        // evidence while the last third's slope cannot tell).
        check(
            "cache filled over 0.8",
            |seed| cache_filling(seed, 0.8),
            |_| 100,
            |v, _| !v.pattern.is_leak(),
        );
        // A short window over the same cache: never a leak either.
        POINTS.set(15);
        check(
            "cache, 15 snapshots",
            |seed| cache_filling(seed, 0.5),
            |_| 100,
            |v, _| !v.pattern.is_leak(),
        );
        POINTS.set(60);
    }

    #[test]
    fn leaks_that_start_late() {
        // Starting at half or two thirds of the window: a leak.
        for start in [0.5, 0.67] {
            check(
                &format!("leak from {start}"),
                |seed| leak_from(seed, start),
                |_| 100,
                |v, _| v.pattern.is_leak(),
            );
        }
        // Starting in the last fifth: never an all-clear (stable, plateau, sawtooth,
        // declining); a leak or, while it spans little of the window, insufficient evidence.
        check(
            "leak from 0.8",
            |seed| leak_from(seed, 0.8),
            |_| 100,
            |v, _| v.pattern.is_leak() || v.pattern == Pattern::InsufficientEvidence,
        );
        // In the last tenth (4 to 7 snapshots of growth under the noise): at least 95% of the
        // seeds are not called stable.
        let stable = (0..SEEDS)
            .filter(|&seed| {
                let p = leak_from(seed, 0.9);
                classify(&p, 100).pattern == Pattern::StableLongLived
            })
            .count() as u64;
        assert!(stable * 100 <= SEEDS * 5, "{stable} of {SEEDS} stable");
    }

    #[test]
    fn confidence_grows_with_snapshots() {
        // The same noisy leak seen over more and more of its history.
        let mut leaks = 0;
        for seed in 0..SEEDS {
            let p = linear(seed, 0.05 * MIB, 0.02);
            let v: Vec<Verdict> = [12, 16, 20]
                .iter()
                .map(|&n| classify(&p[..n], 100))
                .collect();
            // Never an all-clear on the way.
            assert!(
                v.iter()
                    .all(|v| v.pattern.is_leak() || v.pattern == Pattern::InsufficientEvidence),
                "seed {seed}: {v:?}"
            );
            if v.iter().all(|v| v.pattern.is_leak()) {
                leaks += 1;
                let c: Vec<f64> = v.iter().map(|v| v.confidence).collect();
                assert!(c[0] < c[1] && c[1] < c[2], "seed {seed}: {c:?}");
            }
        }
        assert!(leaks * 100 >= SEEDS * 90, "{leaks} of {SEEDS}");
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0.47), "470 ms");
        assert_eq!(duration(38.0), "38 s");
        assert_eq!(duration(590.0), "9.8 min");
        assert_eq!(duration(3.5 * 3600.0), "3.5 h");
        assert_eq!(duration(3.0 * 86400.0), "3.0 d");
    }

    #[test]
    #[ignore = "prints verdict rates over many seeds: cargo test rates -- --ignored --nocapture"]
    fn rates() {
        type Gen = Box<dyn Fn(u64) -> Vec<Point>>;
        type Samples = Box<dyn Fn(&[Point]) -> u64>;
        let fixed = |n: u64| -> Samples { Box::new(move |_| n) };
        let seeds: u64 = std::env::var("SEEDS").map_or(1000, |s| s.parse().unwrap());
        let sizes: Vec<usize> = std::env::var("SIZES").map_or(vec![60, 120], |s| {
            s.split(',').map(|n| n.parse().unwrap()).collect()
        });
        for n in sizes {
            POINTS.set(n);
            let gens: Vec<(&str, Gen, Samples)> = vec![
                (
                    "linear",
                    Box::new(|s| linear(s, 0.05 * MIB, 0.02)),
                    fixed(100),
                ),
                (
                    "linear_slow",
                    Box::new(|s| linear(s, 0.005 * MIB, 0.02)),
                    fixed(100),
                ),
                ("quadratic_100", Box::new(quadratic), fixed(100)),
                ("quadratic_1000", Box::new(quadratic), fixed(1000)),
                ("late_leak", Box::new(late_leak), fixed(100)),
                ("logistic", Box::new(logistic_cache), fixed(100)),
                ("linear_flat", Box::new(linear_then_flat), fixed(100)),
                ("sawtooth", Box::new(|s| sawtooth(s, 0.0)), fixed(100)),
                ("saw_rise_0.5", Box::new(|s| sawtooth(s, 0.5)), fixed(100)),
                ("saw_rise_2", Box::new(|s| sawtooth(s, 2.0)), fixed(100)),
                ("buffer", Box::new(buffer_once), fixed(100)),
                ("heavy_100", Box::new(heavy_noise), fixed(100)),
                ("heavy_1000", Box::new(heavy_noise), fixed(1000)),
                ("sampled_leak", Box::new(sampled_leak), Box::new(sampled)),
                (
                    "sampled_flat_0.5",
                    Box::new(|s| sampled_flat(s, 0.5)),
                    Box::new(sampled),
                ),
                (
                    "sampled_flat_0.3",
                    Box::new(|s| sampled_flat(s, 0.3)),
                    Box::new(sampled),
                ),
                (
                    "sampled_flat_0.2",
                    Box::new(|s| sampled_flat(s, 0.2)),
                    Box::new(sampled),
                ),
                ("declining", Box::new(declining), fixed(100)),
                ("stable", Box::new(stable), fixed(100)),
                ("doubling_buffer", Box::new(doubling_buffer), fixed(1)),
            ];
            println!("== {n} snapshots, {seeds} seeds");
            for (name, generate, samples) in &gens {
                let mut counts = BTreeMap::new();
                let mut confidence = 0.0;
                for seed in 0..seeds {
                    let p = generate(seed);
                    let v = classify(&p, samples(&p));
                    *counts.entry(format!("{:?}", v.pattern)).or_insert(0) += 1;
                    confidence += v.confidence;
                }
                println!(
                    "{name:>18}: {counts:?} mean confidence {:.2}",
                    confidence / seeds as f64
                );
                let p = generate(0);
                println!("{:>18}  seed 0: {}", "", classify(&p, samples(&p)).reason);
            }
        }
    }
}
