//! Lock-free registry of per-thread ring slots.
//!
//! A thread takes a slot the first time it samples, and gives it back when it exits. Slots
//! are never freed, only reused, so the registry is an append-only linked list: pushing a new
//! slot is one CAS on the head, and readers walk it without a lock.
//!
//! Each slot moves through three states:
//!
//! ```text
//!   FREE --(thread takes it: CAS, Acquire)--> IN_USE --(thread exits: store, Release)--> RETIRED
//!     ^                                                                                     |
//!     +---------------(drain emptied the ring after seeing RETIRED: store, Release)----------+
//! ```
//!
//! Only the drain moves a slot from `RETIRED` to `FREE`, and only after it has popped every
//! event; the `Release`/`Acquire` pairs carry the ring's indices and the id counter from the
//! old owner, through the drain, to the next owner.

use std::alloc::Layout;

use super::ring::Ring;
use crate::sync::{AtomicPtr, AtomicU8, AtomicUsize, Ordering, UnsafeCell};

const FREE: u8 = 0;
const IN_USE: u8 = 1;
const RETIRED: u8 = 2;

/// Slots are numbered in 16 bits: the top bits of a sample id. The last number is kept for
/// samples taken by threads that have no slot ([`orphan_id`]).
pub(crate) const MAX_SLOTS: usize = (1 << 16) - 1;
const COUNTER_BITS: u32 = 48;

/// A sample id for a thread without a slot (exiting, or none could be had): slot number
/// `MAX_SLOTS`, counter from a shared atomic. Rare, so the shared counter costs nothing.
#[cfg(not(loom))]
pub(crate) fn orphan_id() -> u64 {
    static COUNTER: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
    // Modulo 2^48 - 1, so the counter part never has all bits set: u64::MAX is the sampled
    // arena's "retired block" marker, never a sample id.
    ((MAX_SLOTS as u64) << COUNTER_BITS) | (n % ((1u64 << COUNTER_BITS) - 1))
}

/// One thread's ring plus its hand-over state.
pub(crate) struct Slot<T: Copy> {
    state: AtomicU8,
    index: usize,
    next: AtomicPtr<Slot<T>>,
    /// Producer-private counter for sample ids; continues across owners so ids never repeat.
    counter: UnsafeCell<u64>,
    ring: Ring<T>,
}

impl<T: Copy> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<T: Copy> Slot<T> {
    /// The slot's ring (push from the owner, pop under the drain lock).
    pub(crate) fn ring(&self) -> &Ring<T> {
        &self.ring
    }

    /// The slot's number (0-based, dense).
    #[cfg(test)]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// A sample id never handed out before: slot number in the top 16 bits, counter below.
    ///
    /// # Safety
    /// Only the slot's current owner (its producer) calls this.
    pub(crate) unsafe fn next_id(&self) -> u64 {
        // SAFETY: the owner is the only thread touching `counter` while the slot is IN_USE,
        // and ownership changes are ordered by the state protocol.
        self.counter.with_mut(|c| unsafe {
            *c = (*c + 1) & ((1u64 << COUNTER_BITS) - 1);
            ((self.index as u64) << COUNTER_BITS) | *c
        })
    }
}

/// The registry. `T` is the event type carried by the rings.
pub(crate) struct Registry<T: Copy> {
    head: AtomicPtr<Slot<T>>,
    count: AtomicUsize,
    ring_capacity: usize,
}

// SAFETY: slots are shared between their owner thread and the drain under the protocol in the
// module docs; the registry itself only holds atomics.
unsafe impl<T: Copy + Send> Sync for Registry<T> {}
// SAFETY: as above.
unsafe impl<T: Copy + Send> Send for Registry<T> {}

impl<T: Copy> std::fmt::Debug for Registry<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("slots", &self.slots())
            .finish_non_exhaustive()
    }
}

impl<T: Copy> Registry<T> {
    /// An empty registry whose rings will hold `ring_capacity` events each.
    #[cfg(not(loom))]
    pub(crate) const fn new(ring_capacity: usize) -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
            count: AtomicUsize::new(0),
            ring_capacity,
        }
    }

    /// An empty registry whose rings will hold `ring_capacity` events each.
    #[cfg(loom)]
    pub(crate) fn new(ring_capacity: usize) -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
            count: AtomicUsize::new(0),
            ring_capacity,
        }
    }

    /// Slots created so far (in use, retired or free).
    pub(crate) fn slots(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Memory held by all slots and their rings.
    pub(crate) fn memory_bytes(&self) -> usize {
        let mut total = 0;
        self.for_each(|slot| {
            total += size_of::<Slot<T>>() + slot.ring.memory_bytes() - size_of::<Ring<T>>()
        });
        total
    }

    fn for_each(&self, mut f: impl FnMut(&Slot<T>)) {
        let mut cur = self.head.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: published slots are never freed while the registry lives, and the
            // Acquire load of `head` (whose release sequence covers every later push) makes
            // each slot's initialisation visible.
            let slot = unsafe { &*cur };
            f(slot);
            cur = slot.next.load(Ordering::Relaxed);
        }
    }

    /// Takes a free slot, or creates one. `None` if `MAX_SLOTS` are in use or memory is short.
    /// The caller becomes the slot's producer until it calls [`Registry::release`].
    pub(crate) fn acquire(&self) -> Option<&Slot<T>> {
        let mut found = None;
        self.for_each(|slot| {
            if found.is_none()
                && slot
                    .state
                    .compare_exchange(FREE, IN_USE, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                found = Some(slot as *const Slot<T>);
            }
        });
        if let Some(slot) = found {
            // SAFETY: slots live as long as the registry, which `&self` borrows.
            return Some(unsafe { &*slot });
        }
        self.create()
    }

    fn create(&self) -> Option<&Slot<T>> {
        let index = self.count.fetch_add(1, Ordering::Relaxed);
        if index >= MAX_SLOTS {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        let Some(ring) = Ring::new(self.ring_capacity) else {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        };
        let layout = Layout::new::<Slot<T>>();
        // SAFETY: `Slot` has a non-zero size.
        let slot = unsafe { crate::backend::raw_alloc(layout) }.cast::<Slot<T>>();
        if slot.is_null() {
            self.count.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        // SAFETY: `slot` is fresh memory of the right layout, written once before publishing.
        unsafe {
            slot.write(Slot {
                state: AtomicU8::new(IN_USE),
                index,
                next: AtomicPtr::new(std::ptr::null_mut()),
                counter: UnsafeCell::new(0),
                ring,
            })
        };
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the slot is not yet shared; only this thread writes it.
            unsafe { (*slot).next.store(head, Ordering::Relaxed) };
            match self
                .head
                .compare_exchange_weak(head, slot, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => head = now,
            }
        }
        // SAFETY: published slots live as long as the registry.
        Some(unsafe { &*slot })
    }

    /// The owner is done with `slot` (thread exit). The drain will empty it, then free it.
    pub(crate) fn release(&self, slot: &Slot<T>) {
        slot.state.store(RETIRED, Ordering::Release);
    }

    /// Pops the events queued in every slot when the pass reaches it (not those pushed while
    /// it runs, so a pass always ends) into `f`, and frees the slots whose owners have left
    /// once they are empty.
    ///
    /// # Safety
    /// The caller is the only consumer of every ring (it holds the drain lock).
    pub(crate) unsafe fn drain(&self, mut f: impl FnMut(&T)) {
        self.for_each(|slot| {
            // Read the state first: if it is RETIRED, every push the owner made is visible to
            // the pops below (Acquire pairs with the owner's Release in `release`).
            let state = slot.state.load(Ordering::Acquire);
            for _ in 0..slot.ring.len() {
                // SAFETY: the caller is the single consumer.
                if unsafe { slot.ring.pop_with(&mut f) }.is_none() {
                    break;
                }
            }
            if state == RETIRED {
                slot.state.store(FREE, Ordering::Release);
            }
        });
    }
}

impl<T: Copy> Drop for Registry<T> {
    fn drop(&mut self) {
        // `&mut self`: no other user, so a plain load sees the last push (loom's `AtomicPtr`
        // has no `get_mut`).
        let mut cur = self.head.load(Ordering::Relaxed);
        while !cur.is_null() {
            // SAFETY: `&mut self`: no other user; each slot came from `raw_alloc` with this
            // layout and is dropped (its ring freed) exactly once.
            unsafe {
                let next = (*cur).next.load(Ordering::Relaxed);
                std::ptr::drop_in_place(cur);
                crate::backend::raw_free(cur.cast(), Layout::new::<Slot<T>>());
                cur = next;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn retired_slots_are_drained_then_reused() {
        let reg = Registry::<u32>::new(4);
        let a = reg.acquire().unwrap();
        // SAFETY: this test owns `a`.
        unsafe { a.ring().push(7).unwrap() };
        // SAFETY: this test owns `a`.
        let id_before = unsafe { a.next_id() };
        reg.release(a);
        let b = reg.acquire().unwrap();
        assert_ne!(
            a.index(),
            b.index(),
            "a retired slot is not reused before it is drained"
        );
        let mut seen = vec![];
        // SAFETY: single consumer.
        unsafe { reg.drain(|v| seen.push(*v)) };
        assert_eq!(seen, vec![7]);
        let c = reg.acquire().unwrap();
        assert_eq!(c.index(), a.index(), "a drained slot is reused");
        // SAFETY: this test owns `c`.
        let id_after = unsafe { c.next_id() };
        assert!(id_after > id_before, "ids continue across owners");
        assert_eq!(reg.slots(), 2);
    }
}
