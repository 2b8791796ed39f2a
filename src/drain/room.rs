//! Room in the queues for a sample's events, secured before anything irreversible happens:
//! slots in the thread's ring (after helping the drain if its lock is free), else overflow
//! nodes, after backpressure when the backlog is at its mark. The sampling path (`alloc.rs`)
//! takes room first, then allocates the block and pushes its events, so an event never finds
//! the queues full once the block exists.

use std::ptr;

use crate::backend::sampled_arena;
use crate::buffer::event::{Event, OverflowNode, Record};
use crate::buffer::queues;
use crate::buffer::registry::Slot;
use crate::sample::scope::ProfilerScope;
use crate::sync::Ordering;

/// Room for `n` events, secured before anything irreversible happens.
pub(crate) struct Room<'a> {
    /// The thread's ring slot; `None` for a thread that has none (exiting, or no slot could
    /// be had): its events all go to overflow nodes.
    slot: Option<&'a Slot<Event>>,
    /// Overflow nodes (ring full or no ring), one per event that will not fit.
    nodes: [*mut OverflowNode; 2],
}

impl<'a> Room<'a> {
    /// Secures room for `n` (1 or 2) events: ring slots (after helping the drain if the lock
    /// is free), else overflow nodes, after backpressure when the overflow backlog is at its
    /// mark ([`super::backpressure`]). `None` counts a dropped sample: only when no memory is
    /// left for a node. Runs inside a profiler scope.
    pub(crate) fn secure(slot: Option<&'a Slot<Event>>, n: usize, exact: bool) -> Option<Self> {
        let mut room = Room {
            slot,
            nodes: [ptr::null_mut(); 2],
        };
        if let Some(slot) = slot {
            // SAFETY: this thread owns `slot` (it is the ring's producer).
            let room_now = |slot: &Slot<Event>| unsafe { slot.ring().has_room(n) };
            if room_now(slot) || (super::try_help() && room_now(slot)) {
                return Some(room);
            }
        }
        super::backpressure(if exact {
            super::EXACT_BACKLOG_MARK
        } else {
            super::SAMPLED_BACKLOG_MARK
        });
        for node in room.nodes.iter_mut().take(n) {
            // SAFETY: non-zero size.
            *node = unsafe { crate::backend::raw_alloc(OverflowNode::LAYOUT) }.cast();
            if node.is_null() {
                room.release();
                break;
            }
            queues::OVERFLOW_NODES.fetch_add(1, Ordering::Relaxed);
        }
        if !room.nodes[n - 1].is_null() {
            return Some(room);
        }
        queues::DROPPED.fetch_add(1, Ordering::Relaxed);
        queues::wake();
        None
    }

    /// A sample id from the thread's slot, or from the shared space of slotless threads.
    pub(crate) fn next_id(&self) -> u64 {
        match self.slot {
            // SAFETY: this thread owns the slot.
            Some(slot) => unsafe { slot.next_id() },
            None => crate::buffer::registry::orphan_id(),
        }
    }

    /// Pushes an event holding `record` into the secured room.
    pub(crate) fn push(&mut self, record: &Record<'_>) {
        if let Some(node) = self.nodes.iter_mut().find(|n| !n.is_null()) {
            let node = std::mem::replace(node, ptr::null_mut());
            // SAFETY: the node is fresh memory of the node layout, owned by us until pushed; its
            // event field is valid for writes and aligned, and `write` initialises it.
            unsafe {
                Event::write(&raw mut (*node).event, record);
                queues::OVERFLOW.push(node);
            }
            queues::wake();
            return;
        }
        let Some(slot) = self.slot else {
            debug_assert!(false, "a slotless room always has nodes");
            return;
        };
        let pushed = push_to_ring(slot, record);
        debug_assert!(pushed, "secured ring room vanished");
    }

    /// Records the death of the block whose header id is `id`, if it stood for a sample
    /// (a retired block stands for none).
    pub(crate) fn push_death(&mut self, id: u64, now: u64) {
        if id != sampled_arena::RETIRED {
            self.push(&Record::Free { id, time_ns: now });
        }
    }

    /// Gives back unused overflow nodes.
    fn release(&mut self) {
        for node in &mut self.nodes {
            if !node.is_null() {
                // SAFETY: made by `raw_alloc` with this layout, never published.
                unsafe { crate::backend::raw_free(node.cast(), OverflowNode::LAYOUT) };
                queues::OVERFLOW_NODES.fetch_sub(1, Ordering::Relaxed);
                *node = ptr::null_mut();
            }
        }
    }
}

impl Drop for Room<'_> {
    fn drop(&mut self) {
        if self.nodes.iter().any(|n| !n.is_null()) {
            let _scope = ProfilerScope::enter();
            self.release();
        }
    }
}

/// Pushes an event holding `record` to this thread's ring, written in place (only the fields
/// the record uses); wakes the drain once the ring is half full. `false` if the ring is full.
pub(crate) fn push_to_ring(slot: &Slot<Event>, record: &Record<'_>) -> bool {
    // SAFETY: `slot` is this thread's own (from `thread::slot`), so it is the ring's producer;
    // `Event::write` initialises the slot it is given, which is valid for writes and aligned.
    let pushed = unsafe { slot.ring().push_with(|dst| Event::write(dst, record)) };
    if slot.ring().len() * 2 >= slot.ring().capacity() {
        queues::wake();
    }
    pushed
}
