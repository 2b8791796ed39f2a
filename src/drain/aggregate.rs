//! Per-site aggregation: events in, estimated bytes and counts per call site out.
//!
//! A site is a deduplicated raw stack (as captured: heaptide's own frames on top; reports
//! trim them and merge sites that then coincide). Each sampled allocation adds its weight (see [`crate::sample::weight`]) to its
//! site's allocated and live figures; when the sample dies, the same weight leaves the live
//! figures. Weights are fixed per object when it is sampled, so a free always removes exactly
//! what its allocation added.

use std::collections::HashMap;

use super::ledger::{Ledger, LiveSample, Settled};
use crate::buffer::event::{Event, Kind};
use crate::sample::weight::weight;

/// Figures of one call site.
#[derive(Debug, Clone)]
pub(crate) struct SiteStats {
    /// Return addresses, innermost first, as captured (heaptide's own frames on top).
    pub(crate) frames: Box<[usize]>,
    pub(crate) alloc_count: f64,
    pub(crate) alloc_bytes: f64,
    pub(crate) live_count: f64,
    pub(crate) live_bytes: f64,
    /// Samples taken at this site, and how many are live.
    pub(crate) samples: u64,
    pub(crate) live_samples: u64,
    pub(crate) first_ns: u64,
    pub(crate) last_ns: u64,
}

/// Everything the drain has accumulated.
#[derive(Debug)]
pub(crate) struct Aggregate {
    mean: u64,
    ledger: Ledger,
    index: HashMap<Box<[usize]>, u32>,
    pub(crate) sites: Vec<SiteStats>,
    /// Allocation events seen (samples taken).
    pub(crate) samples: u64,
}

impl Aggregate {
    /// An empty aggregate for sampling with mean `mean` bytes (1: exact).
    pub(crate) fn new(mean: u64) -> Self {
        Self {
            mean,
            ledger: Ledger::default(),
            index: HashMap::new(),
            sites: Vec::new(),
            samples: 0,
        }
    }

    /// Records one event.
    pub(crate) fn apply(&mut self, event: &Event) {
        match event.kind {
            Kind::Alloc => {
                self.samples += 1;
                let depth = usize::from(event.depth).min(event.frames.len());
                let site = self.intern(&event.frames[..depth]);
                let (count_weight, bytes_weight) = weight(event.size, self.mean);
                let s = &mut self.sites[site as usize];
                s.alloc_count += count_weight;
                s.alloc_bytes += bytes_weight;
                s.live_count += count_weight;
                s.live_bytes += bytes_weight;
                s.samples += 1;
                s.live_samples += 1;
                if s.first_ns == 0 {
                    s.first_ns = event.time_ns;
                }
                s.last_ns = s.last_ns.max(event.time_ns);
                let sample = LiveSample {
                    site,
                    size: event.size,
                    count_weight,
                    bytes_weight,
                    born_ns: event.time_ns,
                };
                if let Settled::Died(sample, freed_ns) = self.ledger.alloc(event.id, sample) {
                    self.retire(sample, freed_ns);
                }
            }
            Kind::Free => {
                if let Settled::Died(sample, freed_ns) = self.ledger.free(event.id, event.time_ns) {
                    self.retire(sample, freed_ns);
                }
            }
        }
    }

    fn retire(&mut self, sample: LiveSample, _freed_ns: u64) {
        let s = &mut self.sites[sample.site as usize];
        s.live_count = (s.live_count - sample.count_weight).max(0.0);
        s.live_bytes = (s.live_bytes - sample.bytes_weight).max(0.0);
        s.live_samples -= 1;
        if s.live_samples == 0 {
            // No rounding residue when nothing of the site is live.
            s.live_count = 0.0;
            s.live_bytes = 0.0;
        }
    }

    /// The site of a raw stack. No symbols are looked up here: the drain must keep up with
    /// the rings, and the first symbol lookup loads debug info (can take a second).
    fn intern(&mut self, frames: &[usize]) -> u32 {
        if let Some(&id) = self.index.get(frames) {
            return id;
        }
        let id = self.sites.len() as u32;
        self.index.insert(frames.into(), id);
        self.sites.push(SiteStats {
            frames: frames.into(),
            alloc_count: 0.0,
            alloc_bytes: 0.0,
            live_count: 0.0,
            live_bytes: 0.0,
            samples: 0,
            live_samples: 0,
            first_ns: 0,
            last_ns: 0,
        });
        id
    }

    /// Live samples and frees still waiting for their allocation.
    pub(crate) fn ledger_sizes(&self) -> (usize, usize) {
        (self.ledger.live_samples(), self.ledger.pending_frees())
    }
}
