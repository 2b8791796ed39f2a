//! `POST /memory/purge`: asks jemalloc to give the dirty pages of every arena back to the
//! kernel now (`arena.<MALLCTL_ARENAS_ALL>.purge`), instead of when their decay time
//! (`dirty_decay_ms`, default 10 s) has passed, and measures what that changed.

use serde::Serialize;

/// What a purge changed. Resident figures are measured before and after.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Purged {
    /// jemalloc's resident bytes (`stats.resident`, after an `epoch` refresh) before.
    pub(crate) resident_bytes_before: u64,
    /// The same after the purge.
    pub(crate) resident_bytes_after: u64,
    /// `before - after` (0 if resident memory grew meanwhile: other threads allocate).
    pub(crate) released_bytes: u64,
    /// The process's RSS (`/proc/self/statm`) before.
    pub(crate) rss_bytes_before: u64,
    /// The process's RSS after.
    pub(crate) rss_bytes_after: u64,
    /// How long the purge took, seconds.
    pub(crate) seconds: f64,
}

/// Purges every arena; `None` if jemalloc refused (e.g. built without the control, or not the
/// allocator).
pub(crate) fn purge_all() -> Option<Purged> {
    let before = crate::analysis::memory::snapshot();
    let started = std::time::Instant::now();
    let purged = crate::backend::ctl::purge_all_arenas();
    let seconds = started.elapsed().as_secs_f64();
    if !purged {
        return None;
    }
    let after = crate::analysis::memory::snapshot();
    Some(Purged {
        resident_bytes_before: before.jemalloc.resident,
        resident_bytes_after: after.jemalloc.resident,
        released_bytes: before
            .jemalloc
            .resident
            .saturating_sub(after.jemalloc.resident),
        rss_bytes_before: before.rss_bytes,
        rss_bytes_after: after.rss_bytes,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_freed_pages() {
        // Unit tests run on the system allocator: dirty some jemalloc pages directly.
        let layout = std::alloc::Layout::from_size_align(16 << 20, 4096).unwrap();
        // SAFETY: a valid non-zero layout.
        let block = unsafe { crate::backend::plain::alloc(layout) };
        assert!(!block.is_null());
        // SAFETY: `block` holds `layout.size()` bytes; touch every page, then free the block.
        unsafe {
            for page in (0..layout.size()).step_by(4096) {
                block.add(page).write(1);
            }
            crate::backend::plain::dealloc(block, layout);
        }
        let p = purge_all().expect("jemalloc accepts arena.4096.purge");
        assert!(p.resident_bytes_before > 0, "{p:?}");
        assert_eq!(
            p.released_bytes,
            p.resident_bytes_before
                .saturating_sub(p.resident_bytes_after)
        );
        assert!(p.rss_bytes_after > 0 && p.seconds >= 0.0, "{p:?}");
    }
}
