//! The leak detector's input and output: each reported call site's live-bytes history from the
//! snapshot ring, its verdict ([`super::pattern::classify`]), and the leak candidates.

use serde::{Deserialize, Serialize};

use super::history::History;
use super::pattern::{Pattern, Severity, Verdict, classify};
use super::trend::{Point, Trend, trend};
use crate::drain::aggregate::DurationPercentiles;
use crate::symbolize::Frame;

/// A call site whose live memory keeps growing: a leak candidate, with the evidence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Leak {
    /// The site's id (as in `sites[].id`).
    pub site_id: u64,
    /// The site's stack, innermost first.
    pub frames: Vec<Frame>,
    /// The frame a person would blame, as in [`Site::blamed`](crate::report::Site::blamed): the
    /// innermost frame that is not allocation plumbing (`None` without frames).
    #[serde(default)]
    pub blamed: Option<Frame>,
    /// Live bytes now (estimated unless the report is exact).
    pub live_bytes: u64,
    /// Sampled objects behind `live_bytes` (the evidence's size: few samples, noisy figure).
    pub live_samples: u64,
    /// Growth of the site's live bytes, least-squares slope over the snapshot window.
    pub growth_bytes_per_hour: f64,
    /// `steady_growth` or `accelerating_growth`.
    pub pattern: Pattern,
    /// From the growth rate (see [`Severity`]).
    pub severity: Severity,
    /// How sure the detector is, in `[0, 1]`; `reason` says why.
    pub confidence: f64,
    /// The evidence in words.
    pub reason: String,
    /// Ages of the site's live objects (how long ago each live sample was allocated), ns: a
    /// leak keeps old objects and adds new ones, so ages spread over the whole window.
    pub age_ns: Option<DurationPercentiles>,
    /// The site's live bytes at each snapshot: `[timestamp_ms, bytes]`.
    pub history: Vec<(u64, u64)>,
    /// The site's labels, as in [`Site::labels`](crate::report::Site::labels); empty (and
    /// absent from JSON) when unlabelled.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One reported site to judge: the raw sites that make it up.
#[derive(Debug)]
pub(crate) struct Candidate<'a> {
    /// Index of the site in the caller's list.
    pub(crate) index: usize,
    pub(crate) raw: &'a [u32],
}

/// A site's verdict and the series it was made from.
#[derive(Debug)]
pub(crate) struct Judged {
    pub(crate) index: usize,
    pub(crate) verdict: Verdict,
    pub(crate) live_samples: u64,
    /// `[timestamp_ms, bytes]` per snapshot.
    pub(crate) history: Vec<(u64, u64)>,
}

/// Judges each candidate from the history (at least two snapshots; otherwise nothing).
pub(crate) fn judge(history: &History, candidates: &[Candidate<'_>]) -> Vec<Judged> {
    let Some(first) = history.snaps.front() else {
        return Vec::new();
    };
    let t0 = first.time_ns;
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        let mut points = Vec::with_capacity(history.snaps.len());
        let mut series = Vec::with_capacity(history.snaps.len());
        let mut samples = 0u64;
        for snap in &history.snaps {
            let (mut bytes, mut n) = (0.0, 0u64);
            for &raw in c.raw {
                if let Some(s) = snap.site(raw) {
                    bytes += s.live_bytes;
                    n += u64::from(s.live_samples);
                }
            }
            points.push(Point {
                t: snap.time_ns.saturating_sub(t0) as f64 / 1e9,
                v: bytes,
            });
            series.push((snap.wall_ms, bytes.round() as u64));
            samples = n;
        }
        out.push(Judged {
            index: c.index,
            verdict: classify(&points, samples),
            live_samples: samples,
            history: series,
        });
    }
    out
}

/// Trends of the measured heap (jemalloc's allocated bytes) and of RSS over the window.
pub(crate) fn trends(history: &History, limit: Option<u64>) -> (Option<Trend>, Option<Trend>) {
    let Some(first) = history.snaps.front() else {
        return (None, None);
    };
    let t0 = first.time_ns;
    let series = |f: &dyn Fn(&super::history::Snap) -> u64| -> Vec<Point> {
        history
            .snaps
            .iter()
            .map(|s| Point {
                t: s.time_ns.saturating_sub(t0) as f64 / 1e9,
                v: f(s) as f64,
            })
            .collect()
    };
    let limit = limit.map(|l| l as f64);
    (
        trend(&series(&|s| s.jemalloc_allocated), limit),
        trend(&series(&|s| s.rss_bytes), limit),
    )
}

impl Leak {
    /// The innermost frame that is not allocation plumbing: usually the function to blame.
    pub fn blamed_frame(&self) -> Option<&Frame> {
        self.blamed
            .as_ref()
            .or_else(|| crate::symbolize::from_blamed(&self.frames).first())
    }
}

impl Judged {
    /// Whether this verdict makes the site a leak candidate.
    pub(crate) fn is_leak(&self) -> bool {
        self.verdict.pattern.is_leak()
    }

    /// The leak entry (frames, live bytes, ages filled in by the caller).
    pub(crate) fn leak(&self, site_id: u64, frames: Vec<Frame>, live_bytes: u64) -> Leak {
        Leak {
            site_id,
            blamed: crate::symbolize::from_blamed(&frames).first().cloned(),
            frames,
            live_bytes,
            live_samples: self.live_samples,
            growth_bytes_per_hour: self.verdict.growth_bytes_per_hour,
            pattern: self.verdict.pattern,
            severity: Severity::from_growth(self.verdict.growth_bytes_per_hour),
            confidence: self.verdict.confidence,
            reason: self.verdict.reason.clone(),
            age_ns: None,
            history: self.history.clone(),
            labels: Default::default(),
        }
    }
}
