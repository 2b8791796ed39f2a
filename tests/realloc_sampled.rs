//! Sampled mode with a small interval (one sample per 4 KiB on average): realloc chains cross
//! between unsampled and sampled blocks thousands of times (unsampled -> sampled,
//! sampled -> unsampled, sampled -> sampled), across threads. Contents survive every step, each
//! realloc is sampled with the probability its new size calls for, and once everything is freed
//! nothing of the sites is live (no phantom leak).

use std::alloc::{Layout, alloc, dealloc, realloc};
use std::hint::black_box;
use std::sync::mpsc;

const R: u64 = 4096;

#[global_allocator]
static A: heaptide::Heaptide = heaptide::Heaptide::new().sample_every(R).seed(1234);

mod common;

// The tests of this binary run one at a time (`serial()`), so the process-wide dropped count
// is theirs.
use common::{serial, settled_report, sum_figures as figures};

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8) ^ seed) as u8)
        .collect()
}

// === raw realloc chains ===

const ALIGN: usize = 8;
/// Up to here the chain moves one byte per step: the region where a realloc is sampled with
/// probability 1 - exp(-s/4096) between 0 and 98%, so consecutive steps flip between sampled
/// and unsampled blocks all the time.
const FINE: usize = 16 << 10;
const TOP: usize = 1 << 20;
const COARSE_STEP: usize = 4_099;

struct Chain {
    ptr: *mut u8,
    size: usize,
    seed: usize,
}
// SAFETY: a chain's block is owned by one thread at a time.
unsafe impl Send for Chain {}

#[inline(never)]
fn rs_first_alloc(size: usize) -> *mut u8 {
    // SAFETY: non-zero size.
    black_box(unsafe { alloc(Layout::from_size_align(size, ALIGN).unwrap()) })
}

#[inline(never)]
fn rs_realloc_step(p: *mut u8, old: usize, new: usize) -> *mut u8 {
    // SAFETY: per the caller, `p` is a live block of `old` bytes at ALIGN; `new > 0`.
    black_box(unsafe { realloc(p, Layout::from_size_align(old, ALIGN).unwrap(), new) })
}

/// Sum of p(s) and of p(s)(1-p(s)) over the new sizes of a chain's reallocs: the expected
/// number of sampled reallocs and its variance (each realloc charges its new size to the
/// thread's countdown, so it is sampled with probability p(new size), independently).
#[derive(Default, Clone, Copy)]
struct Expect {
    reallocs: u64,
    mean: f64,
    var: f64,
}

impl Chain {
    fn resize(&mut self, pat: &[u8], new: usize, expect: &mut Expect) {
        let p = rs_realloc_step(self.ptr, self.size, new);
        assert!(!p.is_null());
        let kept = self.size.min(new);
        // SAFETY: `p` has `new` bytes, `kept <= new`.
        let now = unsafe { std::slice::from_raw_parts(p, kept) };
        assert!(
            now == &pat[..kept],
            "chain {}: contents lost in realloc {} -> {new}",
            self.seed,
            self.size
        );
        if new > kept {
            // SAFETY: `p` has `new` bytes; `pat` has at least TOP.
            unsafe {
                std::ptr::copy_nonoverlapping(pat.as_ptr().add(kept), p.add(kept), new - kept)
            };
        }
        let pr = -(-(new as f64) / R as f64).exp_m1();
        expect.reallocs += 1;
        expect.mean += pr;
        expect.var += pr * (1.0 - pr);
        self.ptr = p;
        self.size = new;
    }

    fn grow(&mut self, pat: &[u8], expect: &mut Expect) {
        while self.size < FINE {
            self.resize(pat, self.size + 1, expect);
        }
        while self.size < TOP {
            self.resize(pat, (self.size + COARSE_STEP).min(TOP), expect);
        }
    }

    fn shrink(&mut self, pat: &[u8], expect: &mut Expect) {
        while self.size > FINE {
            self.resize(pat, (self.size - COARSE_STEP).max(FINE), expect);
        }
        while self.size > 1 {
            self.resize(pat, self.size - 1, expect);
        }
    }

    fn free(self) {
        // SAFETY: a live block of `size` bytes at ALIGN.
        unsafe { dealloc(self.ptr, Layout::from_size_align(self.size, ALIGN).unwrap()) }
    }
}

#[test]
fn realloc_chains_cross_between_sampled_and_unsampled() {
    let _serial = serial();
    const THREADS: usize = 4;
    let dropped_before = heaptide::report().profiler.dropped;
    // Each thread grows its chain from 1 byte to 1 MiB, hands it to the next thread, and
    // shrinks the chain it receives back to 1 byte: reallocs of blocks sampled on another
    // thread, frees recorded on another thread's ring.
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::sync_channel::<Chain>(1)).unzip();
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let next = txs[(t + 1) % THREADS].clone();
            std::thread::spawn(move || {
                let mut expect = Expect::default();
                let pat = pattern(TOP, t);
                let p = rs_first_alloc(1);
                // SAFETY: one byte.
                unsafe { p.write(pat[0]) };
                let mut chain = Chain {
                    ptr: p,
                    size: 1,
                    seed: t,
                };
                chain.grow(&pat, &mut expect);
                next.send(chain).unwrap();
                let mut theirs = rx.recv().unwrap();
                let their_pat = pattern(TOP, theirs.seed);
                theirs.shrink(&their_pat, &mut expect);
                // Grow and shrink once more on this thread, byte by byte in the fine region.
                theirs.grow(&their_pat, &mut expect);
                theirs.shrink(&their_pat, &mut expect);
                theirs.free();
                expect
            })
        })
        .collect();
    drop(txs);
    let mut expect = Expect::default();
    for h in handles {
        let e = h.join().unwrap();
        expect.reallocs += e.reallocs;
        expect.mean += e.mean;
        expect.var += e.var;
    }

    let r = settled_report();
    assert!(!r.exact);
    let dropped = r.profiler.dropped - dropped_before;
    let steps = figures(&r, "rs_realloc_step");
    let first = figures(&r, "rs_first_alloc");
    // No phantom leak: every block was freed.
    assert_eq!(
        (steps.live_bytes, steps.live_count),
        (0, 0),
        "phantom leak at the realloc site: {steps:?}"
    );
    assert_eq!(
        (first.live_bytes, first.live_count),
        (0, 0),
        "phantom leak at the first allocation: {first:?}"
    );
    assert_eq!(
        r.profiler.pending_frees, 0,
        "frees never matched: {:?}",
        r.profiler
    );

    // Each realloc is sampled with probability p(new size): the count of sampled reallocs is
    // within 4 standard deviations of its mean (samples dropped for a full ring are not at
    // the site, so they are added back for the lower bound).
    let sd = expect.var.sqrt();
    eprintln!(
        "{} reallocs, {} sampled (expected {:.0} +- {sd:.0}), {dropped} dropped; {:?}",
        expect.reallocs, steps.samples, expect.mean, r.profiler
    );
    assert!(
        (steps.samples as f64) <= expect.mean + 4.0 * sd
            && (steps.samples + dropped) as f64 >= expect.mean - 4.0 * sd,
        "{} of {} reallocs sampled (+{dropped} dropped), expected {:.0} +- 4 x {sd:.0}",
        steps.samples,
        expect.reallocs,
        expect.mean
    );
    // Both kinds of steps happened many times.
    assert!(
        steps.samples > 1_000 && steps.samples < expect.reallocs - 1_000,
        "{steps:?}"
    );
}

// === Vec growing byte by byte ===

#[inline(never)]
fn rs_vec_grow(pat: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for &b in pat {
        v.push(b);
    }
    v
}

#[inline(never)]
fn rs_vec_shrink(v: &mut Vec<u8>, pat: &[u8]) {
    while v.len() > 1 {
        let len = v.len() * 3 / 4;
        v.truncate(len.max(1));
        v.shrink_to_fit();
        assert_eq!(v.capacity(), v.len());
        assert!(
            v[..] == pat[..v.len()],
            "Vec contents lost shrinking to {}",
            v.len()
        );
    }
}

#[test]
fn vecs_grow_byte_by_byte_to_a_mebibyte_and_shrink() {
    let _serial = serial();
    std::thread::scope(|scope| {
        for t in 0..2 {
            scope.spawn(move || {
                for round in 0..4 {
                    let pat = pattern(TOP, t * 16 + round);
                    let mut v = rs_vec_grow(&pat);
                    assert!(v[..] == pat[..], "Vec contents lost growing");
                    rs_vec_shrink(&mut v, &pat);
                    // Free some on another thread than the one that grew them.
                    if round % 2 == 0 {
                        std::thread::spawn(move || drop(v)).join().unwrap();
                    }
                }
            });
        }
    });
    let r = settled_report();
    let grow = figures(&r, "rs_vec_grow");
    let shrink = figures(&r, "rs_vec_shrink");
    assert!(
        grow.samples > 0 && shrink.samples > 0,
        "grow {grow:?}, shrink {shrink:?}"
    );
    assert_eq!(
        (grow.live_bytes, grow.live_count),
        (0, 0),
        "phantom leak: {grow:?}"
    );
    assert_eq!(
        (shrink.live_bytes, shrink.live_count),
        (0, 0),
        "phantom leak: {shrink:?}"
    );
    assert_eq!(
        r.profiler.pending_frees, 0,
        "frees never matched: {:?}",
        r.profiler
    );
}

// === retired blocks ===

#[inline(never)]
fn rs_retire_first(size: usize) -> *mut u8 {
    black_box("rs_retire_first");
    // SAFETY: non-zero size.
    black_box(unsafe { alloc(Layout::from_size_align(size, ALIGN).unwrap()) })
}

#[inline(never)]
fn rs_retire_step(p: *mut u8, old: usize, new: usize) -> *mut u8 {
    black_box("rs_retire_step");
    // SAFETY: per the caller, `p` is a live block of `old` bytes at ALIGN; `new > 0`.
    black_box(unsafe { realloc(p, Layout::from_size_align(old, ALIGN).unwrap(), new) })
}

/// A sampled block resized without being resampled stays in the sampled arena, retired: it no
/// longer stands for a sample. A 256 KiB block is sampled (all but surely at R = 4 KiB), shrunk
/// to 8 bytes (sampled with probability 0.2%, so nearly always retired), then grown a byte at a
/// time to 200 (each step sampled with probability under 5%: the chain flips between retired
/// and resampled), its bytes checked at every step, and freed. The first site's sample must
/// die at the shrink, the steps' samples must all die, nothing may be left waiting.
#[test]
fn blocks_resized_without_a_sample_retire_and_record_nothing_more() {
    let _serial = serial();
    const BIG: usize = 256 << 10;
    let chains = 200;
    for c in 0..chains {
        let mut p = rs_retire_first(BIG);
        assert!(!p.is_null());
        let mut size = BIG;
        let pat = pattern(BIG, c);
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe { std::ptr::copy_nonoverlapping(pat.as_ptr(), p, 8) };
        for new in std::iter::once(8).chain(9..=200) {
            p = rs_retire_step(p, size, new);
            assert!(!p.is_null());
            // SAFETY: `p` is a live block of `new >= 8` bytes.
            let got = unsafe { std::slice::from_raw_parts(p, 8) };
            assert_eq!(got, &pat[..8], "contents lost at size {new}");
            if new > 8 {
                // SAFETY: as above; byte `new - 1` is past the pattern, checked next step.
                unsafe { p.add(new - 1).write(new as u8) };
            }
            if new > 9 {
                // SAFETY: as above.
                assert_eq!(unsafe { p.add(new - 2).read() }, (new - 1) as u8);
            }
            size = new;
        }
        // SAFETY: a live block of `size` bytes at ALIGN, freed once.
        unsafe { dealloc(p, Layout::from_size_align(size, ALIGN).unwrap()) };
    }
    let r = settled_report();
    let first = figures(&r, "rs_retire_first");
    let steps = figures(&r, "rs_retire_step");
    assert!(
        first.samples >= chains as u64 * 9 / 10,
        "the big blocks are sampled: {first:?}"
    );
    assert!(steps.samples > 0, "some steps resample: {steps:?}");
    assert_eq!((first.live_bytes, first.live_count), (0, 0), "{first:?}");
    assert_eq!((steps.live_bytes, steps.live_count), (0, 0), "{steps:?}");
    assert_eq!(r.profiler.pending_frees, 0, "{:?}", r.profiler);
}
