//! Between the sampling threads and the drain: per-thread rings in a lock-free registry, and
//! two intrusive stacks for what must never be dropped (deferred frees, exact-mode overflow).

pub(crate) mod event;
#[cfg(not(loom))]
pub(crate) mod queues;
pub(crate) mod registry;
pub(crate) mod ring;
pub(crate) mod stack;
