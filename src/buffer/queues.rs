//! The queues between the sampling threads and the drain, as the process's statics: the
//! registry of per-thread rings, the two intrusive stacks of what must never be dropped
//! (deferred frees, events that found their ring full), their counters, and the drain
//! thread's wake-up.
//!
//! Producers (the allocation path) push and wake; the drain (`drain/`) is the only consumer.

use crate::backend::sampled_arena::Header;
use crate::buffer::event::{Event, OverflowNode};
use crate::buffer::registry::Registry;
use crate::buffer::stack::Stack;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Events per thread ring: 128 slots of an [`Event`] (616 bytes on 64-bit targets, with room
/// for an allocation's 72 frames), 77 KiB per sampling thread.
pub(crate) const RING_CAPACITY: usize = 128;

/// The global ring registry.
pub(crate) static REGISTRY: Registry<Event> = Registry::new(RING_CAPACITY);
/// Sampled blocks freed while their thread's ring was full or gone; released by the drain.
pub(crate) static DEFERRED: Stack<Header> = Stack::new();
/// Events that did not fit in their thread's ring (or found the thread without one), in any
/// sampling mode, each in an [`OverflowNode`].
pub(crate) static OVERFLOW: Stack<OverflowNode> = Stack::new();
/// Samples not taken because memory was short (no overflow node, or the sampled arena could not
/// serve the block). A full ring never drops a sample: see `drain::backpressure`.
pub(crate) static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Overflow nodes not yet consumed by the drain: events that found their thread's ring full
/// (or the thread without one).
pub(crate) static OVERFLOW_NODES: AtomicUsize = AtomicUsize::new(0);
/// Whether the drain thread is polling: producers need not wake it.
static POLLING: AtomicBool = AtomicBool::new(false);

/// Says whether the drain thread is polling (producers then need not wake it).
pub(crate) fn set_polling(polling: bool) {
    POLLING.store(polling, Ordering::Relaxed);
}

/// The drain thread's handle (leaked box), for `unpark`. Null until it runs.
static DRAIN_THREAD: AtomicPtr<std::thread::Thread> = AtomicPtr::new(std::ptr::null_mut());

/// The global ring registry ([`REGISTRY`]).
pub(crate) fn registry() -> &'static Registry<Event> {
    &REGISTRY
}

/// Wakes the drain thread if it is parked (not if it is polling: see `drain::run`). Lock-free; safe
/// from any thread, any time.
pub(crate) fn wake() {
    if POLLING.load(Ordering::Relaxed) {
        return;
    }
    let t = DRAIN_THREAD.load(Ordering::Acquire);
    if !t.is_null() {
        // SAFETY: the box is leaked on purpose and never freed.
        unsafe { (*t).unpark() };
    }
}

/// Publishes the drain thread's handle (a leaked box, never freed) for [`wake`]; null: no
/// drain thread (the child of a fork, until it starts one).
pub(crate) fn set_drain_thread(thread: *mut std::thread::Thread) {
    DRAIN_THREAD.store(thread, Ordering::Release);
}
