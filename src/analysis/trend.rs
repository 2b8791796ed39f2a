//! Trend statistics of a time series of byte counts: least-squares growth rate and fit, peak,
//! minimum, time-weighted average, volatility and the projected time to a limit.
//!
//! Pure functions of the points; the leak classifier ([`super::pattern`]) reuses [`slope`].

use serde::{Deserialize, Serialize};

/// One observation of a series: a value at a time. Series are in time order; the intervals
/// between points may be uneven.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    /// Seconds since the start.
    pub(crate) t: f64,
    /// Bytes.
    pub(crate) v: f64,
}

/// How a byte count moved over the snapshot window: the least-squares line through the
/// snapshots, their extremes and average, and, if a limit is configured, when the current growth
/// would reach it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Trend {
    /// Seconds from the first snapshot of the window to the last.
    pub window_seconds: f64,
    /// Snapshots in the window.
    pub points: u64,
    /// Growth rate, bytes per hour: the slope of the least-squares line through the snapshots
    /// (value against time) times 3600. Negative when the value falls.
    pub growth_bytes_per_hour: f64,
    /// How well that line fits, in `[0, 1]` (coefficient of determination, r²): 1 when every
    /// snapshot is on the line, near 0 when time explains none of the variation. 0 when the
    /// series is flat (no variation to explain).
    pub r_squared: f64,
    /// Highest value in the window, bytes.
    pub peak_bytes: f64,
    /// Lowest value in the window, bytes.
    pub min_bytes: f64,
    /// Time-weighted mean, bytes: the area under the line joining consecutive snapshots divided
    /// by `window_seconds` (so a burst of closely spaced snapshots does not outweigh the rest).
    pub average_bytes: f64,
    /// Scatter around the trend, as a fraction of the level (a coefficient of variation,
    /// dimensionless): the root mean square of the snapshots' distances from the least-squares
    /// line (divisor: the number of snapshots) divided by `average_bytes`. 0 for a series on a
    /// straight line, whatever its slope; 0.1 means the value typically strays 10% of its
    /// average from the trend line. 0 when `average_bytes` is 0.
    pub volatility: f64,
    /// The last snapshot's value, bytes.
    pub latest_bytes: f64,
    /// Seconds until the value reaches the configured limit if it keeps growing at
    /// `growth_bytes_per_hour` from `latest_bytes`: `(limit - latest) / slope`. `Some(0.0)` when
    /// `latest_bytes` is already at or over the limit (growing or not); `None` when there is no
    /// limit, or the value is under it and not growing.
    pub seconds_to_limit: Option<f64>,
}

/// The least-squares line through `points`, value against time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Fit {
    /// Bytes per second.
    pub(crate) slope: f64,
    /// Fitted value at `t_mean`.
    pub(crate) v_mean: f64,
    /// Mean time of the points.
    pub(crate) t_mean: f64,
    /// Coefficient of determination in `[0, 1]`; 0 for a flat series.
    pub(crate) r2: f64,
    /// Sum of squared residuals.
    pub(crate) sse: f64,
    /// Sum of squared deviations of `t` from `t_mean`.
    pub(crate) sxx: f64,
}

impl Fit {
    /// The fitted value at time `t`.
    pub(crate) fn at(&self, t: f64) -> f64 {
        self.v_mean + self.slope * (t - self.t_mean)
    }
}

/// Fits the least-squares line. `None` with fewer than 2 points, when all points have the same
/// time, or when a value is not finite.
pub(crate) fn fit(points: &[Point]) -> Option<Fit> {
    if points.len() < 2 || points.iter().any(|p| !p.t.is_finite() || !p.v.is_finite()) {
        return None;
    }
    let n = points.len() as f64;
    let t_mean = points.iter().map(|p| p.t).sum::<f64>() / n;
    let v_mean = points.iter().map(|p| p.v).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for p in points {
        let (dt, dv) = (p.t - t_mean, p.v - v_mean);
        sxx += dt * dt;
        sxy += dt * dv;
        syy += dv * dv;
    }
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    let sse = points
        .iter()
        .map(|p| {
            let r = p.v - (v_mean + slope * (p.t - t_mean));
            r * r
        })
        .sum::<f64>();
    let r2 = if syy > 0.0 {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    Some(Fit {
        slope,
        v_mean,
        t_mean,
        r2,
        sse,
        sxx,
    })
}

/// Least-squares slope of `points` in bytes per second, and the fit's r² (0 for a flat
/// series). `None` with fewer than 2 points, a zero time span or a value that is not finite.
pub(crate) fn slope(points: &[Point]) -> Option<(f64, f64)> {
    fit(points).map(|f| (f.slope, f.r2))
}

/// Trend statistics of `points` (time order); `limit` in bytes for `seconds_to_limit`. `None`
/// with fewer than 2 points, a zero time span or a value that is not finite.
pub(crate) fn trend(points: &[Point], limit: Option<f64>) -> Option<Trend> {
    let f = fit(points)?;
    let (first, last) = (points[0], points[points.len() - 1]);
    let window = last.t - first.t;
    if window <= 0.0 {
        return None;
    }
    let peak = points.iter().map(|p| p.v).fold(f64::NEG_INFINITY, f64::max);
    let min = points.iter().map(|p| p.v).fold(f64::INFINITY, f64::min);
    let area = points
        .windows(2)
        .map(|w| (w[1].t - w[0].t) * (w[0].v + w[1].v) / 2.0)
        .sum::<f64>();
    let average = area / window;
    let rms = (f.sse / points.len() as f64).sqrt();
    let volatility = if average > 0.0 { rms / average } else { 0.0 };
    let seconds_to_limit = match limit {
        Some(l) if l.is_finite() => {
            if last.v >= l {
                Some(0.0)
            } else if f.slope > 0.0 {
                Some((l - last.v) / f.slope)
            } else {
                None
            }
        }
        _ => None,
    };
    Some(Trend {
        window_seconds: window,
        points: points.len() as u64,
        growth_bytes_per_hour: f.slope * 3600.0,
        r_squared: f.r2,
        peak_bytes: peak,
        min_bytes: min,
        average_bytes: average,
        volatility,
        latest_bytes: last.v,
        seconds_to_limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(tv: &[(f64, f64)]) -> Vec<Point> {
        tv.iter().map(|&(t, v)| Point { t, v }).collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn too_few_points_or_no_time_span() {
        assert_eq!(trend(&[], None), None);
        assert_eq!(trend(&pts(&[(1.0, 5.0)]), None), None);
        assert_eq!(trend(&pts(&[(1.0, 5.0), (1.0, 7.0)]), None), None);
        assert_eq!(slope(&pts(&[(2.0, 5.0), (2.0, 7.0), (2.0, 9.0)])), None);
        assert_eq!(slope(&pts(&[(0.0, 5.0), (1.0, f64::NAN)])), None);
        assert_eq!(trend(&pts(&[(0.0, f64::INFINITY), (1.0, 1.0)]), None), None);
    }

    #[test]
    fn straight_line() {
        // v = 100 + 2 t at uneven times.
        let p = pts(&[
            (0.0, 100.0),
            (1.0, 102.0),
            (5.0, 110.0),
            (6.0, 112.0),
            (10.0, 120.0),
        ]);
        let (s, r2) = slope(&p).unwrap();
        assert!(close(s, 2.0), "{s}");
        assert!(close(r2, 1.0), "{r2}");
        let t = trend(&p, Some(200.0)).unwrap();
        assert_eq!(t.points, 5);
        assert!(close(t.window_seconds, 10.0));
        assert!(close(t.growth_bytes_per_hour, 7200.0));
        assert!(close(t.r_squared, 1.0));
        assert_eq!(t.peak_bytes, 120.0);
        assert_eq!(t.min_bytes, 100.0);
        // Trapezoids of a straight line: its mean over the window, 110.
        assert!(close(t.average_bytes, 110.0), "{}", t.average_bytes);
        assert!(t.volatility.abs() < 1e-12, "{}", t.volatility);
        assert_eq!(t.latest_bytes, 120.0);
        // 80 bytes to go at 2 B/s.
        assert!(close(t.seconds_to_limit.unwrap(), 40.0));
    }

    #[test]
    fn two_points() {
        let t = trend(&pts(&[(10.0, 0.0), (20.0, 1000.0)]), Some(1500.0)).unwrap();
        assert!(close(t.window_seconds, 10.0));
        assert!(close(t.growth_bytes_per_hour, 360_000.0));
        assert!(close(t.r_squared, 1.0));
        assert!(close(t.average_bytes, 500.0));
        assert!(close(t.seconds_to_limit.unwrap(), 5.0));
    }

    #[test]
    fn flat_series() {
        let p = pts(&[(0.0, 64.0), (3.0, 64.0), (4.0, 64.0), (9.0, 64.0)]);
        assert_eq!(slope(&p), Some((0.0, 0.0)));
        let t = trend(&p, Some(100.0)).unwrap();
        assert_eq!(t.growth_bytes_per_hour, 0.0);
        assert_eq!(t.r_squared, 0.0);
        assert_eq!(
            (t.peak_bytes, t.min_bytes, t.latest_bytes),
            (64.0, 64.0, 64.0)
        );
        assert!(close(t.average_bytes, 64.0));
        assert_eq!(t.volatility, 0.0);
        // Under the limit and not growing: never reaches it.
        assert_eq!(t.seconds_to_limit, None);
        // No limit.
        assert_eq!(trend(&p, None).unwrap().seconds_to_limit, None);
    }

    #[test]
    fn all_zero() {
        let t = trend(&pts(&[(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]), None).unwrap();
        assert_eq!(t.average_bytes, 0.0);
        assert_eq!(t.volatility, 0.0);
        assert_eq!(t.r_squared, 0.0);
    }

    #[test]
    fn already_over_the_limit() {
        // Falling but over: 0 seconds, not None.
        let p = pts(&[(0.0, 300.0), (1.0, 250.0), (2.0, 200.0)]);
        let t = trend(&p, Some(100.0)).unwrap();
        assert_eq!(t.seconds_to_limit, Some(0.0));
        // Exactly at the limit counts as reached.
        assert_eq!(trend(&p, Some(200.0)).unwrap().seconds_to_limit, Some(0.0));
        // Falling and under: None.
        assert_eq!(trend(&p, Some(1000.0)).unwrap().seconds_to_limit, None);
        assert!(close(t.growth_bytes_per_hour, -50.0 * 3600.0));
        // A limit that is not a number is no limit.
        assert_eq!(trend(&p, Some(f64::NAN)).unwrap().seconds_to_limit, None);
    }

    #[test]
    fn limit_counts_from_latest_value_not_fitted_line() {
        // Points 0, 10, 0, 10, 20 at t = 0..4: slope 4 B/s (sxy = 40, sxx = 10); the fitted line
        // ends at 16. From the latest value, 20, reaching 50 takes (50 - 20) / 4 = 7.5 s.
        let p = pts(&[
            (0.0, 0.0),
            (1.0, 10.0),
            (2.0, 0.0),
            (3.0, 10.0),
            (4.0, 20.0),
        ]);
        let (s, _) = slope(&p).unwrap();
        assert!(close(s, 4.0), "{s}");
        let t = trend(&p, Some(50.0)).unwrap();
        assert!(close(t.seconds_to_limit.unwrap(), 7.5));
    }

    #[test]
    fn known_fit_with_residuals() {
        // t = 0, 1, 2, 3; v = 1, 3, 2, 4. Means 1.5 and 2.5; sxx = 5, sxy = 4, syy = 5.
        // slope 0.8, r² = 16/25 = 0.64; fitted 1.3, 2.1, 2.9, 3.7; residuals -0.3, 0.9, -0.9,
        // 0.3: sse = 1.8, rms = sqrt(0.45). Trapezoids: (2 + 2.5 + 3) / 3 = 2.5.
        let p = pts(&[(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)]);
        let (s, r2) = slope(&p).unwrap();
        assert!(close(s, 0.8), "{s}");
        assert!(close(r2, 0.64), "{r2}");
        let t = trend(&p, None).unwrap();
        assert!(close(t.growth_bytes_per_hour, 2880.0));
        assert!(close(t.average_bytes, 2.5));
        assert!(
            close(t.volatility, 0.45f64.sqrt() / 2.5),
            "{}",
            t.volatility
        );
        assert_eq!((t.peak_bytes, t.min_bytes, t.latest_bytes), (4.0, 1.0, 4.0));
    }

    #[test]
    fn time_weighted_average() {
        // 0 for 1 s, then 100 held over a long 9 s gap: trapezoids (0+100)/2*1 + 100*9 = 950
        // over 10 s = 95, where the plain mean of the three values would be 66.7.
        let p = pts(&[(0.0, 0.0), (1.0, 100.0), (10.0, 100.0)]);
        let t = trend(&p, None).unwrap();
        assert!(close(t.average_bytes, 95.0), "{}", t.average_bytes);
    }

    #[test]
    fn large_offsets_stay_exact() {
        // Seconds since start can be large and byte counts near a terabyte: centring keeps the
        // slope exact.
        let p: Vec<Point> = (0..100)
            .map(|i| Point {
                t: 1e7 + f64::from(i) * 10.0,
                v: 1e12 + f64::from(i) * 5000.0,
            })
            .collect();
        let (s, r2) = slope(&p).unwrap();
        assert!((s - 500.0).abs() < 1e-6, "{s}");
        assert!(r2 > 0.999_999);
    }

    #[test]
    fn serde_round_trip() {
        let t = trend(&pts(&[(0.0, 1.0), (1.0, 3.0), (2.0, 2.0)]), Some(10.0)).unwrap();
        let s = serde_json::to_string(&t).unwrap();
        assert!(s.contains("\"growth_bytes_per_hour\""), "{s}");
        assert_eq!(serde_json::from_str::<Trend>(&s).unwrap(), t);
    }
}
