//! Bounded single-producer single-consumer ring of `Copy` records.
//!
//! The producer is the thread that owns the ring's registry slot (it pushes sample events);
//! the consumer is whoever holds the drain lock. As in rtrb: the two indices live on separate
//! cache lines, each side keeps a private cached copy of the other's index and refreshes it
//! only when the ring looks full (producer) or empty (consumer); a slot is written before the
//! tail is published with `Release` and read after the tail is loaded with `Acquire`.
//! A full ring hands the value back (`Err(value)`); the caller counts or reroutes it.
//!
//! Values are written and read in place: [`Ring::push_with`] lets the producer write a record
//! into its slot field by field (a sample event writes only the fields its kind uses, see
//! `buffer::event`), and [`Ring::pop_with`] lends the consumer the slot, so neither side copies
//! a whole record.
//!
//! Indices increase forever (wrapping `usize`) and are masked into the power-of-two buffer,
//! so `tail - head` is the length and a ring handed to a new producer simply continues.

use std::alloc::Layout;
use std::mem::MaybeUninit;

use crate::sync::{AtomicPtr, AtomicUsize, CachePadded, Ordering, UnsafeCell};

/// A fixed-capacity SPSC ring. See the module docs for the protocol.
pub(crate) struct Ring<T: Copy> {
    /// Next index to read; written only by the consumer.
    head: CachePadded<AtomicUsize>,
    /// Next index to write; written only by the producer.
    tail: CachePadded<AtomicUsize>,
    /// The producer's last view of `head`.
    producer_head: CachePadded<UnsafeCell<usize>>,
    /// The consumer's last view of `tail`.
    consumer_tail: UnsafeCell<usize>,
    /// The buffer; null while the ring is unbacked ([`Ring::release_buffer`]). Written only
    /// when the ring is empty and has no producer (release) or by the producer before its
    /// first push (restore), so the consumer, which reads it only after seeing a push
    /// (`Acquire` on `tail`), always sees the buffer that push wrote into.
    slots: AtomicPtr<UnsafeCell<MaybeUninit<T>>>,
    mask: usize,
}

// SAFETY: the ring moves `T: Copy + Send` values between exactly two threads at a time, and the
// protocol (see module docs) gives each slot a single accessor at any moment; the raw `slots`
// buffer is owned memory. The unsafe producer/consumer methods carry the single-producer and
// single-consumer obligations.
unsafe impl<T: Copy + Send> Send for Ring<T> {}
// SAFETY: as above; shared references only reach the atomics and, through the unsafe methods,
// slots whose ownership the indices establish.
unsafe impl<T: Copy + Send> Sync for Ring<T> {}

impl<T: Copy> std::fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<T: Copy> Ring<T> {
    /// A ring of `capacity` slots (rounded up to a power of two), memory from the backend.
    /// Returns `None` if that memory cannot be had.
    pub(crate) fn new(capacity: usize) -> Option<Self> {
        let capacity = capacity.max(2).next_power_of_two();
        let slots = Self::new_buffer(capacity)?;
        Some(Self {
            head: CachePadded(AtomicUsize::new(0)),
            tail: CachePadded(AtomicUsize::new(0)),
            producer_head: CachePadded(UnsafeCell::new(0)),
            consumer_tail: UnsafeCell::new(0),
            slots: AtomicPtr::new(slots),
            mask: capacity - 1,
        })
    }

    /// A buffer of `capacity` uninitialised slots from the backend; `None` if memory is short.
    fn new_buffer(capacity: usize) -> Option<*mut UnsafeCell<MaybeUninit<T>>> {
        let layout = Self::slots_layout(capacity);
        // SAFETY: the layout has a non-zero size (capacity >= 2 slots of at least one byte).
        let slots =
            unsafe { crate::backend::raw_alloc(layout) }.cast::<UnsafeCell<MaybeUninit<T>>>();
        if slots.is_null() {
            return None;
        }
        for i in 0..capacity {
            // SAFETY: `slots` points at `capacity` uninitialised cells; each is written once.
            unsafe { slots.add(i).write(UnsafeCell::new(MaybeUninit::uninit())) };
        }
        Some(slots)
    }

    /// Gives the buffer back to the backend: the ring keeps its indices but holds no memory
    /// beyond its control block until [`restore_buffer`](Self::restore_buffer).
    ///
    /// # Safety
    /// The caller is the ring's consumer, the ring is empty, and it has no producer until a
    /// happens-before edge (the registry's slot hand-over) passes the change to the next one.
    pub(crate) unsafe fn release_buffer(&self) {
        let slots = self.slots.swap(std::ptr::null_mut(), Ordering::Relaxed);
        if !slots.is_null() {
            // SAFETY: `slots` came from `new_buffer` with this capacity; nobody else can reach
            // it (no producer, the caller is the consumer and the ring is empty).
            unsafe { crate::backend::raw_free(slots.cast(), Self::slots_layout(self.capacity())) };
        }
    }

    /// Gives an unbacked ring a buffer again; `false` if memory is short (the ring stays
    /// unbacked, and every push hands its value back). A no-op on a backed ring.
    ///
    /// # Safety
    /// The caller is the ring's producer and has not pushed since the buffer was released.
    pub(crate) unsafe fn restore_buffer(&self) -> bool {
        if !self.slots.load(Ordering::Relaxed).is_null() {
            return true;
        }
        match Self::new_buffer(self.capacity()) {
            Some(slots) => {
                self.slots.store(slots, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn slots_layout(capacity: usize) -> Layout {
        let size = size_of::<UnsafeCell<MaybeUninit<T>>>().max(1);
        Layout::from_size_align(size * capacity, align_of::<UnsafeCell<MaybeUninit<T>>>())
            .expect("ring layout")
    }

    /// Number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Bytes of memory the ring holds (slots, if backed, plus the control block).
    pub(crate) fn memory_bytes(&self) -> usize {
        let buffer = if self.slots.load(Ordering::Relaxed).is_null() {
            0
        } else {
            Self::slots_layout(self.capacity()).size()
        };
        buffer + size_of::<Self>()
    }

    /// Whether `n` more values fit. A `true` stays true until the producer pushes (the
    /// consumer only frees slots), so a producer can check once for a multi-value update.
    ///
    /// # Safety
    /// Only the ring's single producer calls this (it touches the producer's cached index).
    pub(crate) unsafe fn has_room(&self, n: usize) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        // SAFETY: `producer_head` is the producer's private cache; the caller is the producer.
        let cached = self.producer_head.with(|p| unsafe { *p });
        if self.capacity() - tail.wrapping_sub(cached) >= n {
            return true;
        }
        let head = self.head.load(Ordering::Acquire);
        // SAFETY: as above.
        self.producer_head.with_mut(|p| unsafe { *p = head });
        self.capacity() - tail.wrapping_sub(head) >= n
    }

    /// Pushes `value`, or returns it if the ring is full.
    ///
    /// # Safety
    /// As [`push_with`](Self::push_with).
    #[cfg_attr(
        not(any(test, loom)),
        allow(
            dead_code,
            reason = "the sampling path writes in place, with push_with"
        )
    )]
    pub(crate) unsafe fn push(&self, value: T) -> Result<(), T> {
        // SAFETY: forwarded contract; the closure initialises the slot with `value`.
        if unsafe { self.push_with(|slot| slot.write(value)) } {
            Ok(())
        } else {
            Err(value)
        }
    }

    /// Pushes the value `init` writes in place into the next free slot; `false` if the ring is
    /// full or unbacked, and then `init` is not called. `init` gets the slot as a raw pointer
    /// to memory that is uninitialised, or still holds a value popped earlier.
    ///
    /// # Safety
    /// Only one thread at a time acts as producer of this ring, and a change of producer is
    /// ordered by a happens-before edge (the registry's slot hand-over does that). `init`
    /// leaves a valid `T` behind the pointer (its fields of `MaybeUninit` type excepted, which
    /// it may leave as they were).
    #[inline]
    pub(crate) unsafe fn push_with(&self, init: impl FnOnce(*mut T)) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        // SAFETY: the caller is the single producer, the only user of `producer_head`.
        let mut head = self.producer_head.with(|p| unsafe { *p });
        if tail.wrapping_sub(head) == self.capacity() {
            head = self.head.load(Ordering::Acquire);
            // SAFETY: as above.
            self.producer_head.with_mut(|p| unsafe { *p = head });
            if tail.wrapping_sub(head) == self.capacity() {
                return false;
            }
        }
        let slots = self.slots.load(Ordering::Relaxed);
        if slots.is_null() {
            // Unbacked (memory was short when it was restored): as good as full.
            return false;
        }
        // SAFETY: the slot pointer is in bounds because of the mask. Index `tail` is not
        // readable by the consumer until `tail + 1` is published below, and the consumer is done
        // with the value it last held there: `head` (loaded with Acquire, now or at an earlier
        // push) is above `tail - capacity`, and the consumer publishes `head + 1` only after its
        // read of slot `head`. `MaybeUninit<T>` has the layout of `T`, so the cast pointer is
        // valid for writes of a `T`, which `init` leaves initialised (the caller's contract).
        unsafe {
            (*slots.add(tail & self.mask)).with_mut(|slot| init(slot.cast::<T>()));
        }
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Pops the oldest value, if any.
    ///
    /// # Safety
    /// Only one thread at a time acts as consumer (the drain lock ensures it).
    #[cfg_attr(
        not(test),
        allow(dead_code, reason = "the drain reads in place, with pop_with")
    )]
    pub(crate) unsafe fn pop(&self) -> Option<T> {
        // SAFETY: forwarded contract.
        unsafe { self.pop_with(|value| *value) }
    }

    /// Hands the oldest value, in place (no copy out of the ring), to `f`, then frees its slot;
    /// `None` if the ring is empty.
    ///
    /// # Safety
    /// Only one thread at a time acts as consumer (the drain lock ensures it).
    pub(crate) unsafe fn pop_with<R>(&self, f: impl FnOnce(&T) -> R) -> Option<R> {
        let head = self.head.load(Ordering::Relaxed);
        // SAFETY: the caller is the single consumer, the only user of `consumer_tail`.
        let mut tail = self.consumer_tail.with(|p| unsafe { *p });
        if head == tail {
            tail = self.tail.load(Ordering::Acquire);
            // SAFETY: as above.
            self.consumer_tail.with_mut(|p| unsafe { *p = tail });
            if head == tail {
                return None;
            }
        }
        // The buffer the producer wrote slot `head` into: its store came before that push's
        // Release of `tail`, which the Acquire above (now or earlier) saw.
        let slots = self.slots.load(Ordering::Relaxed);
        // SAFETY: `head < tail` and the Acquire load of `tail` (now or earlier, by this same
        // consumer) makes the producer's write of slot `head` visible; the producer will not
        // touch the slot again until `head + 1` is published below, after `f` is done with it.
        let result =
            unsafe { (*slots.add(head & self.mask)).with(|slot| f((*slot).assume_init_ref())) };
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(result)
    }

    /// Values currently queued (approximate when called concurrently with push or pop).
    pub(crate) fn len(&self) -> usize {
        let tail = self.tail.load(Ordering::Acquire);
        let head = self.head.load(Ordering::Acquire);
        tail.wrapping_sub(head)
    }
}

impl<T: Copy> Drop for Ring<T> {
    fn drop(&mut self) {
        // `T: Copy` needs no drop; give the slots back.
        // SAFETY: `&mut self`: no producer or consumer is left, and the values need no drop.
        unsafe { self.release_buffer() };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn behaves_like_a_bounded_vecdeque() {
        let ring = Ring::<u64>::new(8).unwrap();
        let mut model = VecDeque::new();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let steps = if cfg!(miri) { 2_000 } else { 20_000 };
        for step in 0..steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 != 0 {
                // SAFETY: this test is the only producer.
                let pushed = unsafe { ring.push(step) };
                if model.len() < 8 {
                    assert!(pushed.is_ok());
                    model.push_back(step);
                } else {
                    assert_eq!(pushed, Err(step));
                }
            } else {
                // SAFETY: this test is the only consumer.
                assert_eq!(unsafe { ring.pop() }, model.pop_front());
            }
            assert_eq!(ring.len(), model.len());
            // SAFETY: only producer.
            unsafe {
                assert!(ring.has_room(8 - model.len()));
                assert!(!ring.has_room(9 - model.len()));
            }
        }
    }

    #[test]
    fn two_threads_see_every_value_in_order() {
        // Under miri (which checks the data-race freedom of every access), fewer values.
        let n: u64 = if cfg!(miri) { 1_000 } else { 200_000 };
        let ring = std::sync::Arc::new(Ring::<u64>::new(16).unwrap());
        let producer = {
            let ring = ring.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    // SAFETY: this thread is the only producer.
                    while unsafe { ring.push(i) }.is_err() {
                        std::hint::spin_loop();
                    }
                }
            })
        };
        let mut next = 0;
        while next < n {
            // SAFETY: this thread is the only consumer.
            if let Some(v) = unsafe { ring.pop() } {
                assert_eq!(v, next);
                next += 1;
            }
        }
        producer.join().unwrap();
    }
}
