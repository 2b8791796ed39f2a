//! Analysis of the snapshot history: trends of the process's memory, the leak detector, health
//! and alerts. Runs on the drain thread (snapshots, alerts) and when a report is built; never on
//! an allocating thread.

pub(crate) mod advice;
pub(crate) mod health;
pub(crate) mod history;
pub(crate) mod leaks;
pub(crate) mod pattern;
pub(crate) mod settings;
pub(crate) mod trend;

/// Called by the drain thread after each pass: takes a snapshot when one is due; then, if
/// anyone listens for alerts or a threshold is set, judges health and leaks (which raises the
/// alerts of any transition) and hands pending alerts to the callback.
pub(crate) fn tick() {
    if history::due() {
        history::take();
        let s = settings::get();
        if health::has_callback() || s.warn.is_some() || s.critical.is_some() || s.limit.is_some() {
            crate::report::evaluate();
        }
    }
    health::deliver();
}

/// How long the drain thread may sleep between passes: its own pace, or less if snapshots are
/// due more often.
pub(crate) fn max_sleep(pass_interval: std::time::Duration) -> std::time::Duration {
    pass_interval.min(settings::interval())
}
