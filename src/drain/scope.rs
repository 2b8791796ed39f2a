//! What the drain keeps for one `heaptide::testing` tracking scope: every allocation the scope's
//! thread made while tracked, exactly (weight 1), and what became of it.
//!
//! Live figures follow events as the drain applies them. The peak needs the true order of
//! allocations and frees, which the drain does not see (a free on another thread may reach it
//! before or after the tracked thread's later allocations), so the scope keeps each change with
//! its monotonic timestamp and replays them in time order when the peak is asked for.

use rustc_hash::FxHashMap as HashMap;

/// Bytes and blocks of one site.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) bytes: u64,
    pub(crate) blocks: u64,
}

/// One tracking scope's record.
#[derive(Debug, Default)]
pub(crate) struct Scope {
    pub(crate) alloc_bytes: u64,
    pub(crate) alloc_count: u64,
    /// Live figures per raw site.
    pub(crate) live: HashMap<u32, Held>,
    /// Every change of live bytes: `(time_ns, site, +size or -size)`.
    history: Vec<(u64, u32, i64)>,
}

impl Scope {
    /// A tracked block of `size` bytes was allocated at `site`.
    pub(crate) fn alloc(&mut self, site: u32, size: u64, time_ns: u64) {
        self.alloc_bytes += size;
        self.alloc_count += 1;
        let held = self.live.entry(site).or_default();
        held.bytes += size;
        held.blocks += 1;
        self.history.push((time_ns, site, size as i64));
    }

    /// A tracked block died (on any thread).
    pub(crate) fn free(&mut self, site: u32, size: u64, time_ns: u64) {
        if let Some(held) = self.live.get_mut(&site) {
            held.bytes = held.bytes.saturating_sub(size);
            held.blocks = held.blocks.saturating_sub(1);
            if held.blocks == 0 {
                self.live.remove(&site);
            }
        }
        self.history.push((time_ns, site, -(size as i64)));
    }

    /// Live bytes and blocks over all sites.
    pub(crate) fn live_total(&self) -> Held {
        self.live.values().fold(Held::default(), |a, h| Held {
            bytes: a.bytes + h.bytes,
            blocks: a.blocks + h.blocks,
        })
    }

    /// The highest live bytes at any moment, and what each site held then. Frees stamped at
    /// the same nanosecond as allocations are applied first (the lower peak; the clock cannot
    /// tell them apart).
    pub(crate) fn peak(&mut self) -> (u64, HashMap<u32, Held>) {
        // Mostly in order already (the tracked thread's own events arrive in order): check
        // first, and use the stable sort, which runs in linear time on sorted runs.
        if !self.history.is_sorted_by_key(|&(t, _, d)| (t, d)) {
            self.history.sort_by_key(|&(t, _, d)| (t, d));
        }
        let (mut live, mut peak, mut at) = (0i64, 0i64, 0usize);
        for (i, &(_, _, d)) in self.history.iter().enumerate() {
            live += d;
            if live > peak {
                peak = live;
                at = i + 1;
            }
        }
        let mut held: HashMap<u32, Held> = HashMap::default();
        for &(_, site, d) in &self.history[..at] {
            let h = held.entry(site).or_default();
            if d >= 0 {
                h.bytes += d as u64;
                h.blocks += 1;
            } else {
                h.bytes = h.bytes.saturating_sub(d.unsigned_abs());
                h.blocks = h.blocks.saturating_sub(1);
            }
        }
        held.retain(|_, h| h.blocks > 0);
        (peak.max(0) as u64, held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_replays_in_time_order() {
        let mut s = Scope::default();
        // Arrival order differs from time order: the free at t=15 arrives last.
        s.alloc(1, 100, 10);
        s.alloc(2, 50, 20);
        s.alloc(1, 30, 30);
        s.free(1, 100, 15);
        assert_eq!(
            s.live_total(),
            Held {
                bytes: 80,
                blocks: 2
            }
        );
        assert_eq!(s.alloc_bytes, 180);
        let (peak, held) = s.peak();
        // t=10: 100, t=15: 0, t=20: 50, t=30: 80.
        assert_eq!(peak, 100);
        assert_eq!(
            held.get(&1),
            Some(&Held {
                bytes: 100,
                blocks: 1
            })
        );
        assert_eq!(held.get(&2), None);
    }
}
