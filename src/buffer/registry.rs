//! Lock-free registry of per-thread ring slots.
//!
//! A thread takes a slot the first time it samples, and gives it back when it exits. Slots
//! are never freed, only reused, so the registry is an append-only linked list: pushing a new
//! slot is one CAS on the head, and readers walk it without a lock. Their ring buffers are
//! freed, though: beyond [`SPARE_RINGS`] free slots, the drain gives the buffers of the others
//! back (a slot then costs its control block, under 1 KiB, instead of about 80 KiB), and the
//! thread that takes such a slot allocates a buffer again.
//!
//! Each slot moves through these states:
//!
//! ```text
//!   FREE --(thread takes it: CAS, Acquire)--> IN_USE --(thread exits: store, Release)--> RETIRED
//!    ^  |                                       ^                                           |
//!    |  +-(drain, beyond the spares: CAS)--> RECLAIMING    +--(drain emptied the ring after
//!    |                                          | (buffer freed)   seeing RETIRED: CAS,
//!    |                                          v                  AcqRel)--> FREE
//!    |                 EMPTY --(thread takes it: CAS, Acquire; allocates a buffer)--> IN_USE
//! ```
//!
//! Only the drain moves a slot from `RETIRED` to `FREE`, and only after it has popped every
//! event; only the drain frees a buffer, of a `FREE` slot whose ring is empty, from the
//! `RECLAIMING` state no thread can take. The `Release`/`Acquire` pairs carry the ring's
//! indices, its buffer and the id counter from the old owner, through the drain, to the next
//! owner.

use std::alloc::Layout;

use super::ring::Ring;
use crate::sync::{AtomicPtr, AtomicU8, AtomicUsize, Ordering, UnsafeCell};

const FREE: u8 = 0;
const IN_USE: u8 = 1;
const RETIRED: u8 = 2;
/// The drain is freeing the slot's buffer.
const RECLAIMING: u8 = 3;
/// Free, without a buffer.
const EMPTY: u8 = 4;

/// Free slots whose ring buffers the drain keeps for the next threads (about 80 KiB each with
/// the event ring's capacity); the buffers of the others are freed.
pub(crate) const SPARE_RINGS: usize = 16;

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
    /// Free slots that keep their buffers ([`SPARE_RINGS`]).
    spares: usize,
    /// Ring buffers freed so far (drain side only).
    reclaimed: AtomicUsize,
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
            spares: SPARE_RINGS,
            reclaimed: AtomicUsize::new(0),
        }
    }

    /// An empty registry whose rings will hold `ring_capacity` events each.
    #[cfg(loom)]
    pub(crate) fn new(ring_capacity: usize) -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
            count: AtomicUsize::new(0),
            ring_capacity,
            spares: SPARE_RINGS,
            reclaimed: AtomicUsize::new(0),
        }
    }

    /// The same registry keeping `spares` free buffers instead of [`SPARE_RINGS`].
    #[cfg(any(test, loom))]
    pub(crate) fn with_spares(mut self, spares: usize) -> Self {
        self.spares = spares;
        self
    }

    /// Ring buffers of free slots freed so far.
    pub(crate) fn reclaimed(&self) -> usize {
        self.reclaimed.load(Ordering::Relaxed)
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

    /// Takes a free slot (one that keeps its buffer first, then one whose buffer was freed),
    /// or creates one. `None` if `MAX_SLOTS` are in use or memory is short. The caller becomes
    /// the slot's producer until it calls [`Registry::release`].
    pub(crate) fn acquire(&self) -> Option<&Slot<T>> {
        if let Some(slot) = self.take(FREE) {
            return Some(slot);
        }
        if let Some(slot) = self.take(EMPTY) {
            // SAFETY: this thread is the slot's producer now (the CAS in `take`) and has not
            // pushed; the Acquire there ordered the drain's release of the buffer before this.
            if unsafe { slot.ring.restore_buffer() } {
                return Some(slot);
            }
            slot.state.store(EMPTY, Ordering::Release);
            return None;
        }
        self.create()
    }

    /// Takes the first slot found in state `from` (CAS to `IN_USE`, Acquire).
    fn take(&self, from: u8) -> Option<&Slot<T>> {
        let mut found = None;
        self.for_each(|slot| {
            if found.is_none()
                && slot
                    .state
                    .compare_exchange(from, IN_USE, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                found = Some(slot as *const Slot<T>);
            }
        });
        // SAFETY: slots live as long as the registry, which `&self` borrows.
        found.map(|slot| unsafe { &*slot })
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
    /// it runs, so a pass always ends) into `f`, frees the slots whose owners have left once
    /// they are empty, and frees the ring buffers of free slots beyond [`SPARE_RINGS`].
    ///
    /// # Safety
    /// The caller is the only consumer of every ring (it holds the drain lock).
    pub(crate) unsafe fn drain(&self, mut f: impl FnMut(&T)) {
        let mut spares = 0;
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
            let free = match state {
                RETIRED => slot
                    .state
                    .compare_exchange(RETIRED, FREE, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok(),
                FREE => true,
                _ => false,
            };
            if free {
                spares += 1;
                if spares > self.spares {
                    self.reclaim(slot);
                }
            }
        });
    }

    /// Frees the buffer of `slot` if it is still free and its ring empty.
    fn reclaim(&self, slot: &Slot<T>) {
        if slot
            .state
            .compare_exchange(FREE, RECLAIMING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        if slot.ring.len() == 0 {
            // SAFETY: the drain is the consumer (caller of `drain`), the ring is empty, and in
            // RECLAIMING it has no producer; the Release store below hands the change over.
            unsafe { slot.ring.release_buffer() };
            self.reclaimed.fetch_add(1, Ordering::Relaxed);
            slot.state.store(EMPTY, Ordering::Release);
        } else {
            slot.state.store(FREE, Ordering::Release);
        }
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

    #[test]
    fn buffers_of_free_slots_beyond_the_spares_are_freed_and_restored() {
        let reg = Registry::<u64>::new(1024).with_spares(2);
        let slots: Vec<_> = (0..10).map(|_| reg.acquire().unwrap()).collect();
        let full = reg.memory_bytes();
        for slot in &slots {
            // SAFETY: this test owns every slot.
            unsafe { slot.ring().push(1).unwrap() };
            reg.release(slot);
        }
        let mut seen = 0;
        // SAFETY: single consumer.
        unsafe { reg.drain(|_| seen += 1) };
        assert_eq!(seen, 10);
        assert_eq!(reg.reclaimed(), 8);
        let ring_bytes = 1024 * size_of::<u64>();
        assert_eq!(reg.memory_bytes(), full - 8 * ring_bytes);
        // Two spares with buffers are taken first, then slots whose buffers were freed.
        let again: Vec<_> = (0..10).map(|_| reg.acquire().unwrap()).collect();
        assert_eq!(reg.slots(), 10, "every slot reused");
        assert_eq!(reg.memory_bytes(), full, "buffers restored");
        for slot in &again {
            // SAFETY: this test owns every slot.
            unsafe { slot.ring().push(2).unwrap() };
        }
        let mut seen = vec![];
        // SAFETY: single consumer.
        unsafe { reg.drain(|v| seen.push(*v)) };
        assert_eq!(seen, vec![2; 10]);
    }
}
