//! The process's memory, measured ([`memory`]), and the analysis of the snapshot history:
//! trends of the process's memory, the leak detector, health and alerts. Runs on the drain
//! thread (snapshots, alerts) and when a report is built; never on an allocating thread.

pub(crate) mod cgroup;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod leaks;
pub(crate) mod memory;
pub(crate) mod pattern;
pub(crate) mod settings;
pub(crate) mod trend;

/// How long the drain thread may sleep between passes: its own pace, or less if snapshots are
/// due more often.
pub(crate) fn max_sleep(pass_interval: std::time::Duration) -> std::time::Duration {
    pass_interval.min(settings::interval())
}
