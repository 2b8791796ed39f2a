//! Health (ok / warning / critical, with the reasons) and alerts.
//!
//! Health is judged on the process's resident memory (RSS: what the kernel, a container limit
//! or an OOM killer sees) and on the leak detector's verdicts:
//! - **critical**: RSS >= `HEAPTIDE_CRITICAL`, or RSS >= `HEAPTIDE_LIMIT`;
//! - **warning**: RSS >= `HEAPTIDE_WARN`; or a leak of high or critical severity found with
//!   confidence >= [`SERIOUS_MIN_CONFIDENCE`]; or RSS
//!   projected to reach `HEAPTIDE_LIMIT` within [`WARN_HORIZON_SECS`] at its current growth;
//! - **ok** otherwise.
//!
//! Judging health ([`assess`]) reads its inputs and changes nothing: a report is built with it
//! as many times as anyone likes. Alerts come from a separate step, [`record`]: it compares
//! an assessment with the previous one and raises an alert per transition: when the status
//! changes (either way), and when a site becomes a leak of high or critical severity (again
//! only after it stopped being one for [`REARM_AFTER`] evaluations in a row). Its callers are
//! the drain thread's evaluation after each periodic snapshot (when a callback is registered
//! or a threshold is set) and the taking of a full report ([`crate::report()`], dumps, the
//! HTTP endpoints), each after the report is built (`crate::report::record_alerts`).
//! Alerts are kept in a log (the last [`ALERT_LOG`]) that reports carry, and handed to the
//! callback registered with [`crate::on_alert`], always from the drain thread, never from an
//! allocating thread, outside every heaptide lock (the callback may take a report).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::leaks::Leak;
use super::pattern::Severity;
use super::trend::Trend;
use crate::config::ByteSize;
use crate::sync::Mutex;

/// Within this many seconds of reaching the limit (at the current growth), health warns.
pub const WARN_HORIZON_SECS: f64 = 3600.0;
/// A leak counts for health and alerts only with at least this confidence (a verdict from a
/// couple of samples or a short history is listed in the report, but raises nothing).
pub const SERIOUS_MIN_CONFIDENCE: f64 = 0.5;
/// Alerts kept in the log.
pub const ALERT_LOG: usize = 100;
/// A site alerted as a serious leak is alerted again only after this many evaluations in a row
/// without it (a verdict that flickers near a threshold does not repeat the alert).
pub const REARM_AFTER: u32 = 5;

/// Overall status.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum HealthStatus {
    /// Nothing crossed.
    #[default]
    Ok,
    /// A warning threshold crossed, or a serious leak found.
    Warning,
    /// A critical threshold crossed.
    Critical,
}

/// Health and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// One line per reason (empty when ok).
    pub reasons: Vec<String>,
    /// `HEAPTIDE_WARN`, bytes of RSS.
    pub warn_bytes: Option<u64>,
    /// `HEAPTIDE_CRITICAL`, bytes of RSS.
    pub critical_bytes: Option<u64>,
    /// `HEAPTIDE_LIMIT`, bytes of RSS.
    pub limit_bytes: Option<u64>,
}

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertKind {
    /// The health status changed.
    Health,
    /// A site became a leak of high or critical severity.
    Leak,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Alert {
    /// When it was raised, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// What it is about.
    pub kind: AlertKind,
    /// The health status after the change (health alerts) or when the leak was found.
    pub status: HealthStatus,
    /// The leak's severity (leak alerts).
    pub severity: Option<Severity>,
    /// The leaking site (leak alerts).
    pub site_id: Option<u64>,
    /// The alert in words.
    pub message: String,
}

/// Judges health from the RSS, its trend and the leaks found. Reads only its arguments.
pub(crate) fn assess(
    rss: u64,
    rss_trend: Option<&Trend>,
    leaks: &[Leak],
    settings: &super::settings::Settings,
) -> Health {
    let mut status = HealthStatus::Ok;
    let mut reasons = Vec::new();
    let mut raise = |s: HealthStatus, why: String| {
        status = status.max(s);
        reasons.push(why);
    };
    if let Some(c) = settings.critical
        && rss >= c
    {
        raise(
            HealthStatus::Critical,
            format!("RSS {} >= HEAPTIDE_CRITICAL {}", ByteSize(rss), ByteSize(c)),
        );
    }
    if let Some(l) = settings.limit {
        if rss >= l {
            raise(
                HealthStatus::Critical,
                format!("RSS {} >= HEAPTIDE_LIMIT {}", ByteSize(rss), ByteSize(l)),
            );
        } else if let Some(secs) = rss_trend.and_then(|t| t.seconds_to_limit)
            && secs < WARN_HORIZON_SECS
        {
            raise(
                HealthStatus::Warning,
                format!(
                    "RSS projected to reach HEAPTIDE_LIMIT {} in {:.0} s at its current growth",
                    ByteSize(l),
                    secs
                ),
            );
        }
    }
    if let Some(w) = settings.warn
        && rss >= w
    {
        raise(
            HealthStatus::Warning,
            format!("RSS {} >= HEAPTIDE_WARN {}", ByteSize(rss), ByteSize(w)),
        );
    }
    for leak in leaks.iter().filter(|l| is_serious(l)) {
        raise(HealthStatus::Warning, leak_summary(leak));
    }
    Health {
        status,
        reasons,
        warn_bytes: settings.warn,
        critical_bytes: settings.critical,
        limit_bytes: settings.limit,
    }
}

/// A leak of high or critical severity, with enough confidence to act on.
fn is_serious(leak: &Leak) -> bool {
    leak.severity >= Severity::High && leak.confidence >= SERIOUS_MIN_CONFIDENCE
}

/// `leak at app::f (src/f.rs:3): growing +1.2 GiB/h (critical severity), 3.4 MiB live`.
fn leak_summary(leak: &Leak) -> String {
    format!(
        "leak at {}: growing {}/h ({} severity), {} live",
        leak_site_name(leak),
        crate::config::SignedBytes(leak.growth_bytes_per_hour),
        format!("{:?}", leak.severity).to_lowercase(),
        ByteSize(leak.live_bytes),
    )
}

fn leak_site_name(leak: &Leak) -> String {
    leak.blamed_frame().map_or_else(
        || format!("site {}", leak.site_id),
        |f| crate::symbolize::short_frame(f).to_string(),
    )
}

/// The registered callback.
pub(crate) type Callback = Arc<dyn Fn(&Alert) + Send + Sync>;

/// Alert state: the log, what was last seen, and alerts the callback has not had yet.
pub(crate) struct State {
    log: VecDeque<Alert>,
    pending: Vec<Alert>,
    last_status: HealthStatus,
    /// Sites alerted as serious leaks (site id, evaluations in a row without it).
    leaking: Vec<(u64, u32)>,
    callback: Option<Callback>,
    /// Times the recorded status became critical.
    critical_entries: u64,
}

static STATE: Mutex<State> = Mutex::new(State::new());

/// The health state's lock guard (held across `fork()` by the fork handlers).
pub(crate) type Guard = crate::sync::MutexGuard<'static, State>;

/// Locks the health state (the fork handlers hold it across `fork()`).
pub(crate) fn lock() -> Guard {
    state()
}

fn state() -> crate::sync::MutexGuard<'static, State> {
    STATE.lock()
}

/// Registers the alert callback (replacing an earlier one).
pub(crate) fn set_callback(callback: Callback) {
    state().callback = Some(callback);
}

/// Whether a callback is registered.
pub(crate) fn has_callback() -> bool {
    state().callback.is_some()
}

/// The alert log, oldest first (a copy). Call inside a profiler scope.
pub(crate) fn alert_log() -> Vec<Alert> {
    state().log()
}

/// Compares a new assessment with the last one and raises the alerts of the transitions (see
/// [`State::record`]). Returns the alert log. Call inside a profiler scope.
pub(crate) fn record(health: &Health, leaks: &[Leak], timestamp_ms: u64) -> Vec<Alert> {
    state().record(health, leaks, timestamp_ms)
}

/// How many times the recorded health status has become critical since start (each
/// transition into critical counts once; see [`record`]).
pub(crate) fn critical_entries() -> u64 {
    state().critical_entries
}

/// Hands pending alerts to the callback. Called by the drain thread only, outside every
/// heaptide lock, outside the profiler scope (the callback is the program's code).
pub(crate) fn deliver() {
    let (pending, callback) = {
        let mut st = state();
        if st.pending.is_empty() {
            return;
        }
        (std::mem::take(&mut st.pending), st.callback.clone())
    };
    if let Some(callback) = callback {
        for alert in &pending {
            // A panicking callback must not take the drain thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(alert)));
        }
    }
}

// === impl State ===

impl State {
    /// No alert yet, status ok, no callback.
    pub(crate) const fn new() -> Self {
        State {
            log: VecDeque::new(),
            pending: Vec::new(),
            last_status: HealthStatus::Ok,
            leaking: Vec::new(),
            callback: None,
            critical_entries: 0,
        }
    }

    /// The alert log, oldest first.
    fn log(&self) -> Vec<Alert> {
        self.log.iter().cloned().collect()
    }

    /// Compares a new assessment with the last one recorded: raises an alert if the status
    /// changed, and one per site that became a serious leak; counts one evaluation without it
    /// for each site alerted before and absent now (re-armed after [`REARM_AFTER`]). The
    /// alerts go to the log and, with a callback registered, to the pending list. Returns the
    /// log.
    pub(crate) fn record(
        &mut self,
        health: &Health,
        leaks: &[Leak],
        timestamp_ms: u64,
    ) -> Vec<Alert> {
        let mut raised = Vec::new();
        if health.status != self.last_status {
            raised.push(Alert {
                timestamp_ms,
                kind: AlertKind::Health,
                status: health.status,
                severity: None,
                site_id: None,
                message: format!(
                    "health {:?} -> {:?}{}{}",
                    self.last_status,
                    health.status,
                    if health.reasons.is_empty() { "" } else { ": " },
                    health.reasons.join("; ")
                ),
            });
            self.last_status = health.status;
            if health.status == HealthStatus::Critical {
                self.critical_entries += 1;
            }
        }
        let serious: Vec<u64> = leaks
            .iter()
            .filter(|l| is_serious(l))
            .map(|l| l.site_id)
            .collect();
        for entry in self.leaking.iter_mut() {
            entry.1 = if serious.contains(&entry.0) {
                0
            } else {
                entry.1 + 1
            };
        }
        self.leaking.retain(|&(_, absent)| absent < REARM_AFTER);
        for leak in leaks.iter().filter(|l| is_serious(l)) {
            if self.leaking.iter().any(|&(site, _)| site == leak.site_id) {
                continue;
            }
            self.leaking.push((leak.site_id, 0));
            raised.push(Alert {
                timestamp_ms,
                kind: AlertKind::Leak,
                status: health.status,
                severity: Some(leak.severity),
                site_id: Some(leak.site_id),
                message: format!("{} ({})", leak_summary(leak), leak.reason),
            });
        }
        for alert in raised {
            self.log.push_back(alert.clone());
            if self.log.len() > ALERT_LOG {
                self.log.pop_front();
            }
            if self.callback.is_some() {
                self.pending.push(alert);
            }
        }
        self.log()
    }

    /// Everything the state holds but the callback (to compare states in tests).
    #[cfg(test)]
    pub(crate) fn contents(&self) -> Contents {
        Contents {
            log: self.log(),
            pending: self.pending.clone(),
            last_status: self.last_status,
            leaking: self.leaking.clone(),
        }
    }
}

/// What a [`State`] holds but the callback.
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub(crate) struct Contents {
    pub(crate) log: Vec<Alert>,
    pub(crate) pending: Vec<Alert>,
    pub(crate) last_status: HealthStatus,
    pub(crate) leaking: Vec<(u64, u32)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each transition into critical counts once, however long it lasts.
    #[test]
    fn critical_entries_count_transitions() {
        let mut state = State::new();
        let health = |status| Health {
            status,
            ..Health::default()
        };
        for (status, entries) in [
            (HealthStatus::Ok, 0),
            (HealthStatus::Critical, 1),
            (HealthStatus::Critical, 1),
            (HealthStatus::Warning, 1),
            (HealthStatus::Critical, 2),
            (HealthStatus::Ok, 2),
        ] {
            state.record(&health(status), &[], 0);
            assert_eq!(state.critical_entries, entries, "{status:?}");
        }
    }
}
