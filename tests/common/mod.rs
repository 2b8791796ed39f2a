//! Helpers shared by the integration tests. Each test binary includes this module with
//! `mod common;`; being a folder module, it is not built as a test binary of its own.

#![allow(
    dead_code,
    reason = "each test binary uses a subset of the shared helpers"
)]

pub mod child;

/// xorshift64*: a test's own deterministic sizes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

use std::alloc::{Layout, dealloc};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The figures of a set of reported sites, summed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub alloc_count: u64,
    pub alloc_bytes: u64,
    pub live_count: u64,
    pub live_bytes: u64,
    pub samples: u64,
}

impl Figures {
    /// The same figures with `samples` cleared, for comparisons of counts and bytes only.
    pub fn without_samples(self) -> Figures {
        Figures { samples: 0, ..self }
    }
}

/// The figures of every reported site whose stack mentions `name`, summed (zero if none does).
pub fn sum_figures(report: &heaptide::Report, name: &str) -> Figures {
    let mut f = Figures::default();
    for s in report.sites_mentioning(name) {
        f.alloc_count += s.alloc_count;
        f.alloc_bytes += s.alloc_bytes;
        f.live_count += s.live_count;
        f.live_bytes += s.live_bytes;
        f.samples += s.samples;
    }
    f
}

/// The figures of every reported site whose stack mentions `name`, summed; at least one site
/// must mention it.
pub fn figures(report: &heaptide::Report, name: &str) -> Figures {
    assert!(
        report.sites_mentioning(name).next().is_some(),
        "no site mentions {name}; reported sites: {}",
        report.sites.len()
    );
    sum_figures(report, name)
}

/// The figures an exact-mode site must show, computed by the test from what it did: one
/// allocation (and one sample) per entry of `alloc`, one live block per entry of `live`.
pub fn truth(alloc: &[usize], live: &[usize]) -> Figures {
    Figures {
        alloc_count: alloc.len() as u64,
        alloc_bytes: alloc.iter().sum::<usize>() as u64,
        live_count: live.len() as u64,
        live_bytes: live.iter().sum::<usize>() as u64,
        samples: alloc.len() as u64,
    }
}

/// A report taken once no free is waiting for its allocation. A report can catch a free on
/// another thread whose allocation was pushed after the drain read that thread's ring (other
/// tests of the binary run concurrently, too); the next pass settles it. Gives up after 10 s
/// and returns the last report: a free that never settles is a bug, for the caller to fail on.
pub fn settled_report() -> heaptide::Report {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = heaptide::report();
        if r.profiler.pending_frees == 0 || Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

/// A guard that keeps the tests of this binary that take it from running concurrently (a test
/// that panicked while holding it does not poison it for the others).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The layout of the tests' raw blocks: `size` bytes at alignment 8.
pub fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// A raw block of `self.1` bytes, allocated with `layout(self.1)`, that may cross threads.
pub struct Block(pub *mut u8, pub usize);
// SAFETY: the tests hand each block to exactly one thread at a time.
unsafe impl Send for Block {}

impl Block {
    pub fn free(self) {
        // SAFETY: every `Block` is made by a leaf from a block it allocated with
        // `layout(self.1)`; `free` consumes it, so it is freed once.
        unsafe { dealloc(self.0, layout(self.1)) }
    }
}

/// Defines `#[inline(never)] fn $name(size: usize) -> Block`, which makes exactly one
/// allocation of `layout(size)`. Each leaf's body names the leaf, so no two are identical (the
/// optimizer may merge identical functions, which then symbolize under one name); `black_box`
/// on the result keeps the call from becoming a tail call (which would drop the leaf's frame).
/// With `touch`, the leaf also writes the block's first byte, as a program would.
#[allow(unused_macros, reason = "not every test binary defines leaves")]
macro_rules! leaf {
    ($name:ident) => {
        $crate::common::leaf!(@ $name, false);
    };
    ($name:ident, touch) => {
        $crate::common::leaf!(@ $name, true);
    };
    (@ $name:ident, $touch:literal) => {
        #[inline(never)]
        fn $name(size: usize) -> $crate::common::Block {
            ::std::hint::black_box(stringify!($name));
            // SAFETY: non-zero size.
            let p = unsafe { ::std::alloc::alloc($crate::common::layout(size)) };
            assert!(!p.is_null());
            if $touch {
                // Touch the block, as a program would.
                // SAFETY: `p` has at least one byte.
                unsafe { p.write(size as u8) };
            }
            $crate::common::Block(::std::hint::black_box(p), size)
        }
    };
}
#[allow(unused_imports, reason = "not every test binary defines leaves")]
pub(crate) use leaf;
