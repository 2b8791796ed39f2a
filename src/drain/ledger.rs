//! Pairs each sampled allocation with its free, by sample id, in whatever order they arrive.
//!
//! Events from different threads reach the drain through different rings, so a free can be
//! seen before the allocation it ends (the block was allocated on thread A and freed on thread
//! B, and the drain read B's ring first). Ids are unique for the life of the process, so the
//! ledger keeps such a free as an "early free" until its allocation shows up, and the two then
//! cancel out. Nothing is ever matched by address, so address reuse cannot pair the wrong
//! events: a freed sample is never reported live (no phantom leaks).

use rustc_hash::FxHashMap as HashMap;

/// What the drain remembers of one live sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LiveSample {
    pub(crate) site: u32,
    pub(crate) size: u64,
    /// Estimated allocations this sample stands for.
    pub(crate) count_weight: f64,
    /// Estimated bytes this sample stands for.
    pub(crate) bytes_weight: f64,
    pub(crate) born_ns: u64,
    /// The `heaptide::testing` scope that tracked it (0: none).
    pub(crate) scope: u64,
}

/// Live samples by id, plus frees that arrived before their allocation.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    live: HashMap<u64, LiveSample>,
    early_frees: HashMap<u64, u64>,
    /// Sum of the live samples' sizes (requested bytes).
    live_bytes: u64,
}

/// The outcome of recording an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Settled {
    /// The sample is now live.
    Live,
    /// The sample died (its free was already known, or just arrived): freed at this time.
    Died(LiveSample, u64),
    /// A free whose allocation has not arrived yet; kept until it does.
    Pending,
}

impl Ledger {
    /// Records an allocation.
    pub(crate) fn alloc(&mut self, id: u64, sample: LiveSample) -> Settled {
        match self.early_frees.remove(&id) {
            Some(freed_ns) => Settled::Died(sample, freed_ns),
            None => {
                self.live_bytes += sample.size;
                self.live.insert(id, sample);
                Settled::Live
            }
        }
    }

    /// Records a free.
    pub(crate) fn free(&mut self, id: u64, freed_ns: u64) -> Settled {
        match self.live.remove(&id) {
            Some(sample) => {
                self.live_bytes -= sample.size;
                Settled::Died(sample, freed_ns)
            }
            None => {
                self.early_frees.insert(id, freed_ns);
                Settled::Pending
            }
        }
    }

    /// Live samples.
    pub(crate) fn live(&self) -> impl Iterator<Item = (&u64, &LiveSample)> {
        self.live.iter()
    }

    /// Number of live samples.
    pub(crate) fn live_samples(&self) -> usize {
        self.live.len()
    }

    /// Requested bytes of the live samples (the blocks themselves, not what they stand for).
    pub(crate) fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Frees still waiting for their allocation.
    pub(crate) fn pending_frees(&self) -> usize {
        self.early_frees.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(site: u32) -> LiveSample {
        LiveSample {
            site,
            size: 8,
            count_weight: 1.0,
            bytes_weight: 8.0,
            born_ns: 0,
            scope: 0,
        }
    }

    /// Every interleaving of a set of alloc/free pairs (any order across ids, and free before
    /// alloc allowed) leaves exactly the never-freed ids live, and nothing pending.
    #[test]
    fn any_arrival_order_settles_to_the_truth() {
        let mut x: u64 = 12345;
        let rounds = if cfg!(miri) { 100 } else { 2_000 };
        for round in 0..rounds {
            let n = 1 + round % 17;
            // ids that are freed, and ids that stay live
            let mut events: Vec<(bool, u64)> = Vec::new();
            for id in 0..n as u64 {
                events.push((true, id));
                if id % 3 != 0 {
                    events.push((false, id));
                }
            }
            for i in (1..events.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                events.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut ledger = Ledger::default();
            let mut died = 0;
            for (is_alloc, id) in events {
                let r = if is_alloc {
                    ledger.alloc(id, s(id as u32))
                } else {
                    ledger.free(id, 1)
                };
                if let Settled::Died(..) = r {
                    died += 1;
                }
            }
            let mut live: Vec<u64> = ledger.live().map(|(id, _)| *id).collect();
            live.sort();
            let want: Vec<u64> = (0..n as u64).filter(|id| id % 3 == 0).collect();
            assert_eq!(live, want);
            assert_eq!(died, n - want.len());
            assert_eq!(ledger.pending_frees(), 0);
            assert_eq!(ledger.live_bytes(), 8 * want.len() as u64);
        }
    }
}
