//! Automatic dumps: written by the drain thread, after a pass, when the memory reaches a point
//! worth a look, without a signal or a call.
//!
//! - **Peak** (`HEAPTIDE_DUMP_ON_PEAK=<size>`, e.g. `512MiB`): when the recorded peak of the
//!   estimated live heap ([`crate::drain::peak`]) reaches the size; after that, again only when
//!   the peak has grown 10% or more past the last peak dumped ([`PEAK_GROWTH`]), and at most
//!   one peak dump per [`PEAK_GAP`] (60 s; a peak reached within the gap is dumped when the
//!   gap ends).
//! - **Critical** (`HEAPTIDE_DUMP_ON_CRITICAL=1`): once per transition of the recorded health
//!   status into critical (RSS at `HEAPTIDE_CRITICAL` or `HEAPTIDE_LIMIT`: without either,
//!   health is never critical). Health is recorded after each periodic snapshot and with each
//!   full report.
//! - **Near the cgroup's limit** (`HEAPTIDE_DUMP_NEAR_LIMIT=<fraction>`, e.g. `0.9`): when the
//!   control group's memory use reaches that fraction of its limit (`memory.max`; v1:
//!   `memory.limit_in_bytes`); once per crossing: it is armed again when the use falls below
//!   the fraction minus [`REARM_MARGIN`] (0.05). The group's files are read at most once per
//!   [`CGROUP_POLL`] (1 s); without a limit, nothing is dumped.
//!
//! A dump is the signal dump's ([`super`]: same directory, formats and messages), named
//! `heaptide-<pid>-<seq>-<reason>.<ext>` with `reason` one of `peak`, `critical`,
//! `near-limit`. A dump that cannot be written gives its one stderr line and counts as done
//! (the conditions above are not retried at once).
//!
//! The decision is [`Auto::decide`], a function of its state and a [`Reading`] (the time and
//! the figures), so tests give it both. Its state is the drain thread's own (a thread-local:
//! no lock, and a forked child's drain thread starts afresh). A forked child inherits the
//! parent's samples, and so its peak record: with `HEAPTIDE_DUMP_ON_PEAK` set and that peak
//! past the size, the child writes one peak dump of its own (under its pid) when it first
//! samples, which shows what it inherited.

use std::cell::RefCell;
use std::time::Duration;

use super::settings::Settings;

/// A later peak dump needs the peak this much (10%) past the last one dumped.
pub(crate) const PEAK_GROWTH: f64 = 1.1;
/// Peak dumps are at least this far apart.
pub(crate) const PEAK_GAP: Duration = Duration::from_secs(60);
/// The near-limit dump is armed again below its fraction minus this.
pub(crate) const REARM_MARGIN: f64 = 0.05;
/// The cgroup's files are read at most this often.
pub(crate) const CGROUP_POLL: Duration = Duration::from_secs(1);

/// Why an automatic dump was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// `HEAPTIDE_DUMP_ON_PEAK`.
    Peak,
    /// `HEAPTIDE_DUMP_ON_CRITICAL`.
    Critical,
    /// `HEAPTIDE_DUMP_NEAR_LIMIT`.
    NearLimit,
}

impl Reason {
    /// The part of the file name that says why.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Reason::Peak => "peak",
            Reason::Critical => "critical",
            Reason::NearLimit => "near-limit",
        }
    }
}

/// The figures a decision reads, at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reading {
    /// Now, monotonic ns.
    pub(crate) now_ns: u64,
    /// The recorded peak of the estimated live heap, bytes.
    pub(crate) peak_bytes: u64,
    /// Times the recorded health status has become critical since start.
    pub(crate) critical_entries: u64,
    /// The cgroup's use as a fraction of its limit, when it was read for this decision
    /// (`None`: not read this time; no cgroup or no limit reads as 0).
    pub(crate) cgroup_used: Option<f64>,
}

/// The automatic dumps' settings and what they have done.
#[derive(Debug, Clone)]
pub(crate) struct Auto {
    on_peak: Option<u64>,
    on_critical: bool,
    near_limit: Option<f64>,
    /// The peak last dumped, bytes, and when (monotonic ns).
    last_peak: Option<(u64, u64)>,
    /// `critical_entries` as of the last decision.
    critical_seen: u64,
    /// Whether a near-limit crossing would be dumped.
    near_armed: bool,
    /// When the cgroup was last read (monotonic ns).
    cgroup_read_ns: Option<u64>,
}

impl Auto {
    /// Nothing dumped yet, with the automatic dumps `settings` configures.
    pub(crate) fn new(settings: &Settings) -> Self {
        Auto {
            on_peak: settings.on_peak,
            on_critical: settings.on_critical,
            near_limit: settings.near_limit,
            last_peak: None,
            critical_seen: 0,
            near_armed: true,
            cgroup_read_ns: None,
        }
    }

    /// Whether the cgroup should be read for a decision at `now_ns` (the near-limit dump is
    /// configured and [`CGROUP_POLL`] has passed since the last reading).
    pub(crate) fn wants_cgroup(&self, now_ns: u64) -> bool {
        self.near_limit.is_some()
            && self
                .cgroup_read_ns
                .is_none_or(|t| now_ns.saturating_sub(t) >= CGROUP_POLL.as_nanos() as u64)
    }

    /// The dumps due given `r`, in the order peak, critical, near limit; the state moves on as
    /// if each was written.
    pub(crate) fn decide(&mut self, r: &Reading) -> Vec<Reason> {
        let mut due = Vec::new();
        if let Some(threshold) = self.on_peak
            && r.peak_bytes >= threshold
        {
            let grown = self
                .last_peak
                .is_none_or(|(bytes, _)| r.peak_bytes as f64 >= bytes as f64 * PEAK_GROWTH);
            let apart = self
                .last_peak
                .is_none_or(|(_, at)| r.now_ns.saturating_sub(at) >= PEAK_GAP.as_nanos() as u64);
            if grown && apart {
                self.last_peak = Some((r.peak_bytes, r.now_ns));
                due.push(Reason::Peak);
            }
        }
        if r.critical_entries > self.critical_seen {
            self.critical_seen = r.critical_entries;
            if self.on_critical {
                due.push(Reason::Critical);
            }
        }
        if let (Some(fraction), Some(used)) = (self.near_limit, r.cgroup_used) {
            if used >= fraction {
                if self.near_armed {
                    self.near_armed = false;
                    due.push(Reason::NearLimit);
                }
            } else if used < fraction - REARM_MARGIN {
                self.near_armed = true;
            }
        }
        if self.near_limit.is_some() && r.cgroup_used.is_some() {
            self.cgroup_read_ns = Some(r.now_ns);
        }
        due
    }
}

thread_local! {
    /// The drain thread's [`Auto`] (made at its first pass with dumps configured).
    static AUTO: RefCell<Option<Auto>> = const { RefCell::new(None) };
}

/// Called by the drain thread after each pass: reads the figures the configured dumps need
/// and writes the dumps due. Does nothing when none is configured.
pub(crate) fn service(settings: &Settings) {
    if !settings.auto() {
        return;
    }
    let due = AUTO.with(|auto| {
        let mut auto = auto.borrow_mut();
        let auto = auto.get_or_insert_with(|| Auto::new(settings));
        let now_ns = crate::state::now_ns();
        let reading = Reading {
            now_ns,
            peak_bytes: crate::drain::peak_bytes(),
            critical_entries: if settings.on_critical {
                crate::analysis::health::critical_entries()
            } else {
                0
            },
            cgroup_used: if auto.wants_cgroup(now_ns) {
                Some(
                    crate::analysis::cgroup::read()
                        .and_then(|cg| cg.used_ratio())
                        .unwrap_or(0.0),
                )
            } else {
                None
            },
        };
        auto.decide(&reading)
    });
    for reason in due {
        super::dump_and_log(Some(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const SEC: u64 = 1_000_000_000;

    fn settings(on_peak: Option<u64>, on_critical: bool, near_limit: Option<f64>) -> Settings {
        Settings {
            signal: None,
            formats: super::super::settings::Formats::DEFAULT,
            dir: std::path::PathBuf::from("/nonexistent"),
            at_exit: false,
            on_peak,
            on_critical,
            near_limit,
        }
    }

    fn at(now_s: u64, peak_mib: u64) -> Reading {
        Reading {
            now_ns: now_s * SEC,
            peak_bytes: peak_mib * MIB,
            ..Reading::default()
        }
    }

    /// The first peak at the threshold is dumped; then only 10% growth past the last one
    /// dumped, and never within 60 s of it (a peak held back by the gap is dumped when the
    /// gap ends).
    #[test]
    fn peak_dumps_need_the_threshold_growth_and_the_gap() {
        let mut auto = Auto::new(&settings(Some(512 * MIB), false, None));
        assert!(auto.decide(&at(1, 100)).is_empty());
        assert!(auto.decide(&at(2, 511)).is_empty());
        assert_eq!(auto.decide(&at(3, 512)), [Reason::Peak]);
        // Same peak, or under 10% more, however late: nothing.
        assert!(auto.decide(&at(4, 512)).is_empty());
        assert!(auto.decide(&at(500, 563)).is_empty());
        // 10% more, but within 60 s of the last dump: held back...
        let mut later = auto.clone();
        assert!(later.decide(&at(30, 600)).is_empty());
        assert!(later.decide(&at(62, 600)).is_empty());
        // ... and dumped when the gap ends.
        assert_eq!(later.decide(&at(63, 600)), [Reason::Peak]);
        // The next one is measured from 600 MiB.
        assert!(later.decide(&at(200, 650)).is_empty());
        assert_eq!(later.decide(&at(201, 660)), [Reason::Peak]);
        // Much later and much higher: one dump, not one per step passed.
        assert_eq!(auto.decide(&at(1000, 4096)), [Reason::Peak]);
        assert!(auto.decide(&at(1001, 4096)).is_empty());
    }

    #[test]
    fn no_peak_threshold_no_peak_dump() {
        let mut auto = Auto::new(&settings(None, false, None));
        assert!(auto.decide(&at(1, 1 << 20)).is_empty());
    }

    /// One dump per transition into critical, however many decisions see the same count.
    #[test]
    fn critical_dumps_once_per_transition() {
        let mut auto = Auto::new(&settings(None, true, None));
        let r = |now_s: u64, entries: u64| Reading {
            now_ns: now_s * SEC,
            critical_entries: entries,
            ..Reading::default()
        };
        assert!(auto.decide(&r(1, 0)).is_empty());
        assert_eq!(auto.decide(&r(2, 1)), [Reason::Critical]);
        assert!(auto.decide(&r(3, 1)).is_empty());
        assert!(auto.decide(&r(4, 1)).is_empty());
        assert_eq!(auto.decide(&r(5, 2)), [Reason::Critical]);
        // Several transitions between two decisions: one dump.
        assert_eq!(auto.decide(&r(6, 5)), [Reason::Critical]);
        assert!(auto.decide(&r(7, 5)).is_empty());
        // Not configured: transitions are followed, nothing dumped.
        let mut off = Auto::new(&settings(None, false, None));
        assert!(off.decide(&r(1, 3)).is_empty());
    }

    /// One dump per crossing of the fraction, re-armed below the fraction minus 0.05.
    #[test]
    fn near_limit_dumps_once_per_crossing() {
        let mut auto = Auto::new(&settings(None, false, Some(0.9)));
        let mut decide = |now_s: u64, used: f64| {
            let now_ns = now_s * SEC;
            assert!(auto.wants_cgroup(now_ns));
            auto.decide(&Reading {
                now_ns,
                cgroup_used: Some(used),
                ..Reading::default()
            })
        };
        assert!(decide(1, 0.5).is_empty());
        assert_eq!(decide(2, 0.9), [Reason::NearLimit]);
        assert!(decide(3, 0.95).is_empty());
        // Below the fraction but not below 0.85: still disarmed.
        assert!(decide(4, 0.86).is_empty());
        assert!(decide(5, 0.91).is_empty());
        // Below 0.85: armed again, and the next crossing dumps.
        assert!(decide(6, 0.84).is_empty());
        assert!(decide(7, 0.89).is_empty());
        assert_eq!(decide(8, 0.92), [Reason::NearLimit]);
    }

    /// The cgroup is read at most once a second, and only with the near-limit dump on.
    #[test]
    fn cgroup_reads_are_paced() {
        let mut auto = Auto::new(&settings(None, false, Some(0.9)));
        assert!(auto.wants_cgroup(SEC));
        auto.decide(&Reading {
            now_ns: SEC,
            cgroup_used: Some(0.1),
            ..Reading::default()
        });
        assert!(!auto.wants_cgroup(SEC + SEC / 2));
        assert!(auto.wants_cgroup(2 * SEC));
        assert!(!Auto::new(&settings(Some(MIB), true, None)).wants_cgroup(SEC));
    }

    /// Several reasons at once: one dump each, in order.
    #[test]
    fn reasons_together() {
        let mut auto = Auto::new(&settings(Some(MIB), true, Some(0.5)));
        let due = auto.decide(&Reading {
            now_ns: SEC,
            peak_bytes: 2 * MIB,
            critical_entries: 1,
            cgroup_used: Some(0.6),
        });
        assert_eq!(due, [Reason::Peak, Reason::Critical, Reason::NearLimit]);
        assert_eq!(
            due.iter().map(|r| r.tag()).collect::<Vec<_>>(),
            ["peak", "critical", "near-limit"]
        );
    }
}
