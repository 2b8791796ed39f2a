//! The order in which a drain pass empties the queues. Generic over the blocks of the
//! deferred-free stack, so the loom models (`loom_tests.rs`) run this very code on queues of
//! their own; the drain runs it on the process's ([`crate::buffer::queues`]).
//!
//! No phantom leaks: once a sampled block's allocation and free events are both queued, the
//! first pass that begins afterwards leaves the sample neither live nor pending in the ledger.
//! Every queue publishes with `Release` and is read with `Acquire` (a ring's tail, a stack's
//! head), so a pass sees every event queued before it began, and it reads them all: the
//! rings, the overflow stack and the deferred-free stack. The ledger pairs the two events by
//! id in whichever order they come.
//!
//! A deferred free is settled by the pass that takes it. The deferred stack is taken first:
//! every event that happened before a block was pushed there (its allocation in particular,
//! queued by the allocating thread before the block was handed to the freeing one) is then
//! in a ring or on the overflow stack when those are read, later in the same pass. So the free
//! never waits in the ledger as an early free while its block is given back to jemalloc.

use crate::buffer::event::{Event, OverflowNode, Record};
use crate::buffer::registry::Registry;
use crate::buffer::stack::{Node, Stack};
use crate::sync::{AtomicUsize, Ordering};

/// A block on the deferred-free stack: a sampled block whose free could not be queued, given
/// back after the drain has recorded the free it stands for.
pub(crate) trait DeferredFree: Node {
    /// The free event the block stands for.
    ///
    /// # Safety
    /// `this` was taken from the stack by the caller, which owns it.
    unsafe fn free_record(this: *const Self) -> Record<'static>;
}

/// The queues a pass empties.
pub(crate) struct Queues<'a, D: DeferredFree> {
    /// The per-thread rings.
    pub(crate) registry: &'a Registry<Event>,
    /// Events that found their ring full, each in a node made by
    /// [`raw_alloc`](crate::backend::raw_alloc) with [`OverflowNode::LAYOUT`].
    pub(crate) overflow: &'a Stack<OverflowNode>,
    /// Overflow nodes not yet consumed: a pass counts down the ones it frees.
    pub(crate) overflow_nodes: &'a AtomicUsize,
    /// Sampled blocks whose free could not be queued.
    pub(crate) deferred: &'a Stack<D>,
}

impl<D: DeferredFree> Queues<'_, D> {
    /// Empties every ring (the events queued when the pass reaches it) and the overflow stack
    /// into `apply`, freeing each overflow node once its event is applied. Returns the number
    /// of events applied.
    ///
    /// # Safety
    /// The caller is the only consumer of every ring and of the overflow stack (it holds the
    /// drain lock); every node pushed on the overflow stack was made as its field says.
    pub(crate) unsafe fn drain_rings(&self, apply: &mut impl FnMut(Record<'_>)) -> usize {
        let overflow = self.overflow.take_all();
        let mut applied = 0;
        // SAFETY: the caller is the only consumer of every ring.
        unsafe {
            self.registry.drain(|event| {
                applied += 1;
                apply(event.record())
            })
        };
        for node in overflow {
            applied += 1;
            // SAFETY: a node taken from the stack is ours; its event was written before the
            // push that published it, which the take (Acquire) saw; per the contract it came
            // from `raw_alloc` with this layout, and nothing reads it after this.
            unsafe {
                apply((*node).event.record());
                crate::backend::raw_free(node.cast(), OverflowNode::LAYOUT);
            }
            self.overflow_nodes.fetch_sub(1, Ordering::Relaxed);
        }
        applied
    }

    /// A full pass: takes the deferred blocks, empties the rings and the overflow stack
    /// ([`drain_rings`](Self::drain_rings)), then applies each deferred block's free and hands
    /// the block to `recorded`. Returns the number of events applied. See the module docs for
    /// why the deferred blocks are taken first.
    ///
    /// # Safety
    /// As [`drain_rings`](Self::drain_rings); the caller is also the only consumer of the
    /// deferred stack, and `recorded` receives each block's ownership.
    pub(crate) unsafe fn pass(
        &self,
        apply: &mut impl FnMut(Record<'_>),
        mut recorded: impl FnMut(*mut D),
    ) -> usize {
        let deferred = self.deferred.take_all();
        // SAFETY: forwarded contract.
        let mut applied = unsafe { self.drain_rings(apply) };
        for block in deferred {
            applied += 1;
            // SAFETY: a block taken from the stack is ours (the iterator has already read its
            // link, so `recorded` may reuse it).
            apply(unsafe { D::free_record(block) });
            recorded(block);
        }
        applied
    }
}
