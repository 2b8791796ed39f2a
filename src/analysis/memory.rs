//! The process's memory at one moment, as the kernel and jemalloc see it (measured, not
//! estimated: these figures include every allocation, sampled or not, and heaptide's own).

use serde::{Deserialize, Serialize};

/// The process's memory at one moment, measured: the kernel's view of the process and
/// jemalloc's of its heap.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct MemoryStats {
    /// Resident set size (`/proc/self/statm`), bytes. 0 if unreadable.
    pub rss_bytes: u64,
    /// Virtual size (`/proc/self/statm`), bytes; includes heaptide's `PROT_NONE` reservation
    /// for sampled blocks (see `profiler.reserved_bytes`), which costs no memory.
    pub virtual_bytes: u64,
    /// jemalloc's statistics after an `epoch` refresh.
    pub jemalloc: JemallocStats,
    /// `jemalloc.resident / jemalloc.allocated`: bytes of physical memory the heap holds per
    /// byte the program asked for (1.0 is perfect; 0 if nothing is allocated).
    pub fragmentation_ratio: f64,
    /// `jemalloc.active / jemalloc.allocated`: page-level waste inside active extents.
    pub active_ratio: f64,
    /// `jemalloc.metadata / jemalloc.allocated`: the allocator's bookkeeping per byte.
    pub metadata_ratio: f64,
    /// The control group's memory use, limit and pressure (`None` outside a memory cgroup):
    /// the figures a container's OOM killer acts on.
    #[serde(default)]
    pub cgroup: Option<super::cgroup::CgroupMemory>,
}

/// jemalloc's global statistics, bytes (`man jemalloc`, `stats.*`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct JemallocStats {
    /// Bytes allocated by the application (`stats.allocated`).
    pub allocated: u64,
    /// Bytes in active pages (`stats.active`), a multiple of the page size.
    pub active: u64,
    /// Bytes of jemalloc's own metadata (`stats.metadata`).
    pub metadata: u64,
    /// Bytes in physically resident data pages (`stats.resident`).
    pub resident: u64,
    /// Bytes in extents mapped by jemalloc (`stats.mapped`).
    pub mapped: u64,
    /// Bytes retained: unmapped from use but kept as virtual memory (`stats.retained`).
    pub retained: u64,
}

/// Measures the memory snapshot now. Missing sources leave their figures at 0.
pub(crate) fn snapshot() -> MemoryStats {
    let (virtual_bytes, rss_bytes) = statm().unwrap_or((0, 0));
    let jemalloc = crate::backend::ctl::stats()
        .map(|s| JemallocStats {
            allocated: s.allocated,
            active: s.active,
            metadata: s.metadata,
            resident: s.resident,
            mapped: s.mapped,
            retained: s.retained,
        })
        .unwrap_or_default();
    let ratio = |x: u64| {
        if jemalloc.allocated == 0 {
            0.0
        } else {
            x as f64 / jemalloc.allocated as f64
        }
    };
    MemoryStats {
        rss_bytes,
        virtual_bytes,
        jemalloc,
        fragmentation_ratio: ratio(jemalloc.resident),
        active_ratio: ratio(jemalloc.active),
        metadata_ratio: ratio(jemalloc.metadata),
        cgroup: super::cgroup::read(),
    }
}

/// `(virtual, resident)` bytes from `/proc/self/statm`.
fn statm() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = text.split_ascii_whitespace();
    let size: u64 = fields.next()?.parse().ok()?;
    let resident: u64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = if page > 0 { page as u64 } else { 4096 };
    Some((size * page, resident * page))
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg_attr(
        miri,
        ignore = "calls jemalloc (C, which miri cannot run) and reads /proc"
    )]
    fn snapshot_reads_kernel_and_jemalloc_figures() {
        // Unit tests run on the system allocator: give jemalloc something to count.
        let layout = std::alloc::Layout::from_size_align(1 << 20, 8).unwrap();
        // SAFETY: a valid non-zero layout.
        let block = unsafe { crate::backend::plain::alloc(layout) };
        assert!(!block.is_null());
        let m = super::snapshot();
        // SAFETY: allocated above with this layout.
        unsafe { crate::backend::plain::dealloc(block, layout) };
        assert!(m.rss_bytes > 0 && m.virtual_bytes >= m.rss_bytes, "{m:?}");
        let j = m.jemalloc;
        assert!(j.allocated > 0 && j.active >= j.allocated, "{j:?}");
        assert!(j.resident >= j.active / 2 && j.mapped >= j.active, "{j:?}");
        assert!(m.fragmentation_ratio > 0.0);
    }
}
