//! What a sampling thread tells the drain.

/// Deepest stack a user can ask for (`HEAPTIDE_DEPTH`).
pub(crate) const MAX_DEPTH: usize = 64;
/// Extra frames captured for heaptide's own frames on top of the stack, trimmed by the drain.
pub(crate) const OWN_FRAMES: usize = 8;
/// Frame slots in one event.
pub(crate) const FRAME_SLOTS: usize = MAX_DEPTH + OWN_FRAMES;

/// Kind of a sample event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A sampled block came to life (fresh allocation, or the new side of a realloc).
    Alloc,
    /// A sampled block died (free, or the old side of a realloc).
    Free,
}

/// One sample event. Plain data: rings copy it in and out.
///
/// Allocation and free are paired by `id` (unique for the life of the process), never by
/// address, so the drain may see them in either order and address reuse cannot confuse it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub(crate) kind: Kind,
    /// Frames used in `frames` (Alloc only).
    pub(crate) depth: u16,
    pub(crate) id: u64,
    /// The user's size in bytes (Alloc only).
    pub(crate) size: u64,
    /// CLOCK_MONOTONIC nanoseconds.
    pub(crate) time_ns: u64,
    /// The `heaptide::testing` scope that tracked this allocation (0: none). A tracked
    /// allocation was recorded with certainty, so it weighs exactly itself (Alloc only).
    pub(crate) scope: u64,
    /// Return addresses, innermost first (Alloc only).
    pub(crate) frames: [usize; FRAME_SLOTS],
}

impl Event {
    /// A free event (no stack).
    pub(crate) fn free(id: u64, time_ns: u64) -> Self {
        Self {
            kind: Kind::Free,
            depth: 0,
            id,
            size: 0,
            time_ns,
            scope: 0,
            frames: [0; FRAME_SLOTS],
        }
    }
}

/// A heap node carrying an event that did not fit in its ring (exact mode only).
#[derive(Debug)]
pub(crate) struct OverflowNode {
    next: *mut OverflowNode,
    pub(crate) event: Event,
}

impl OverflowNode {
    /// Layout of a node, for the backend's raw allocation.
    pub(crate) const LAYOUT: std::alloc::Layout = std::alloc::Layout::new::<OverflowNode>();
}

// SAFETY: `set_next`/`next` touch only the `next` field.
unsafe impl super::stack::Node for OverflowNode {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns `this`.
        unsafe { (*this).next = next }
    }
    unsafe fn next(this: *const Self) -> *mut Self {
        // SAFETY: the caller owns `this`.
        unsafe { (*this).next }
    }
}
