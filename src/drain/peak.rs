//! The peak snapshot: which call sites were live when the estimated live heap was highest.
//!
//! The drain applies events one at a time, and after each the aggregate knows the estimated
//! live heap (the size buckets' live bytes summed). After an allocation event it asks
//! [`Peak::is_new`]; on a new peak it copies, into the [`Peak`] record, every site that holds
//! live bytes then: its frames (the `Arc` the site holds, not a copy of them), live bytes and
//! live count, with the moment and the total.
//!
//! **When a copy is taken.** When the live heap exceeds the recorded peak `P` by more than one
//! step, `max(P / 64, R)`, `R` being the sampling mean (1 in exact mode). Before the first
//! record `P` is 0, so the first sample records one.
//!
//! **Error.** The true sampled peak `M` (the highest estimated live heap any event left) lies
//! within one step above the record: `P <= M <= P + max(P / 64, R)`; a higher value would have
//! been recorded. The sites are those live at the recorded moment, so their sum is `P`.
//!
//! **Cost.** A copy takes time and memory in proportion to the sites with live bytes, which
//! the site table's budget bounds (its memory is reused from copy to copy). Copies are
//! geometric: each needs the live heap to have grown past the last record by a step, so a heap
//! growing to `P` is copied at most 64 times until it reaches `64 R`, then at most about
//! `65 ln(P / 64R)` times more (about 560 copies from nothing to 64 GiB at the default 512 KiB
//! mean). A heap that falls and returns to the same height (a sawtooth) copies nothing more.

use std::sync::Arc;

/// The steps of the peak record: a new peak is recorded when it exceeds the last by more than
/// the record divided by this (or one sampling mean, whichever is larger).
pub(crate) const STEP_DIVISOR: f64 = 64.0;

/// One call site's figures at the peak.
#[derive(Debug, Clone)]
pub(crate) struct PeakSite {
    /// The site's id at the time.
    pub(crate) id: u32,
    /// Its raw stack, shared with the site.
    pub(crate) frames: Arc<[usize]>,
    /// Its label set (`label::table`; 0: none).
    pub(crate) label: u32,
    pub(crate) live_bytes: f64,
    pub(crate) live_count: f64,
    /// Whether it is an "other" site (call stacks merged by the table's budget).
    pub(crate) other: bool,
}

/// The peak record (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Peak {
    /// Estimated live heap at the recorded peak.
    pub(crate) bytes: f64,
    /// When it was recorded: the time of the event that reached it, monotonic ns.
    pub(crate) time_ns: u64,
    /// The sites with live bytes then (in no order).
    pub(crate) sites: Vec<PeakSite>,
    /// Copies taken since start.
    pub(crate) copies: u64,
}

impl Peak {
    /// The step above the record a live heap must exceed to be recorded, with sampling mean
    /// `mean` (also the bound on the record's error).
    pub(crate) fn step(&self, mean: u64) -> f64 {
        (self.bytes / STEP_DIVISOR).max(mean as f64)
    }

    /// Whether a live heap of `live` bytes is a new peak to record.
    pub(crate) fn is_new(&self, live: f64, mean: u64) -> bool {
        live > self.bytes + self.step(mean)
    }

    /// Records a new peak of `live` bytes at `time_ns` with the sites live then.
    pub(crate) fn record(
        &mut self,
        live: f64,
        time_ns: u64,
        sites: impl Iterator<Item = PeakSite>,
    ) {
        self.bytes = live;
        self.time_ns = time_ns;
        self.sites.clear();
        self.sites.extend(sites);
        self.copies += 1;
    }

    /// Whether a peak was recorded.
    pub(crate) fn is_recorded(&self) -> bool {
        self.copies > 0
    }
}

#[cfg(test)]
mod tests {
    use crate::buffer::event::Record;
    use crate::drain::aggregate::Aggregate;

    fn alloc(agg: &mut Aggregate, id: u64, stack: usize, size: u64, time_ns: u64) {
        let frames = [0x1000 + stack * 16, 0x2000];
        agg.apply(Record::Alloc {
            id,
            time_ns,
            size,
            scope: 0,
            label: 0,
            frames: &frames,
        });
    }

    fn free(agg: &mut Aggregate, id: u64, time_ns: u64) {
        agg.apply(Record::Free { id, time_ns });
    }

    /// The record names the sites live at the highest point, within one step of it, and
    /// frees afterwards do not change it.
    #[test]
    fn records_the_sites_live_at_the_highest_point() {
        let mut agg = Aggregate::new(1, None);
        // Site 1 grows to 1 MiB, site 2 holds 256 KiB; then site 1 is freed and site 3
        // allocates 512 KiB: a lower heap, which is not a peak.
        for i in 0..256 {
            alloc(&mut agg, i, 1, 4096, 10 + i);
        }
        alloc(&mut agg, 1000, 2, 256 << 10, 300);
        let true_peak = (1280 << 10) as f64;
        for i in 0..256 {
            free(&mut agg, i, 400 + i);
        }
        alloc(&mut agg, 2000, 3, 512 << 10, 700);
        let peak = agg.peak();
        assert!(peak.bytes <= true_peak, "{}", peak.bytes);
        assert!(true_peak <= peak.bytes + peak.step(1), "{}", peak.bytes);
        assert_eq!(peak.time_ns, 300);
        let mut sites: Vec<(usize, f64, f64)> = peak
            .sites
            .iter()
            .map(|s| (s.frames[0], s.live_bytes, s.live_count))
            .collect();
        sites.sort_by_key(|s| s.0);
        assert_eq!(
            sites,
            [
                (0x1010, (1 << 20) as f64, 256.0),
                (0x1020, (256 << 10) as f64, 1.0)
            ]
        );
        let sum: f64 = peak.sites.iter().map(|s| s.live_bytes).sum();
        assert_eq!(sum, peak.bytes);
    }

    /// A heap that keeps returning to the same height copies nothing more after the first
    /// climb, and growth to a height copies a logarithmic number of times.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "47,000 events take many minutes interpreted; the peak record is safe code, checked natively"
    )]
    fn sawtooth_does_not_copy_every_time() {
        let mut agg = Aggregate::new(1, None);
        let mut id = 0;
        let mut t = 1;
        let mut climb = |agg: &mut Aggregate, blocks: u64| {
            let first = id;
            for _ in 0..blocks {
                alloc(agg, id, 1, 64 << 10, t);
                id += 1;
                t += 1;
            }
            for i in first..id {
                free(agg, i, t);
                t += 1;
            }
        };
        // 1,024 blocks of 64 KiB: 64 MiB.
        climb(&mut agg, 1024);
        let copies = agg.peak().copies;
        // From 64 KiB to 64 MiB by steps of 1/64 or more: under 64 ln(1024) + 1.
        assert!((100..=445).contains(&copies), "{copies}");
        for _ in 0..20 {
            climb(&mut agg, 1024);
        }
        assert_eq!(agg.peak().copies, copies);
        let top = (64 << 20) as f64;
        assert!(agg.peak().bytes <= top && top <= agg.peak().bytes + agg.peak().step(1));
        // Higher by more than a step (7%): a few more copies.
        climb(&mut agg, 1100);
        let more = agg.peak().copies - copies;
        assert!((1..=6).contains(&more), "{more}");
    }

    /// With sampling, steps are at least one sampling mean.
    #[test]
    fn steps_are_at_least_one_mean() {
        let peak = super::Peak::default();
        assert_eq!(peak.step(512 << 10), (512 << 10) as f64);
        assert!(!peak.is_new((512 << 10) as f64, 512 << 10));
        assert!(peak.is_new((512 << 10) as f64 + 1.0, 512 << 10));
    }
}
