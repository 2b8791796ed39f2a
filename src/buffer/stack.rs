//! Intrusive lock-free stack: any thread pushes, one consumer takes everything at once.
//!
//! Used where a ring has no room and the event must not be lost:
//! - a sampled free whose ring is full (or whose thread has already released its ring) puts
//!   the freed block itself on the deferred-free stack; the block is only returned to jemalloc
//!   after the drain has recorded the free, so its address cannot be reused meanwhile;
//! - in exact mode, an allocation event that does not fit goes into an overflow node.
//!
//! Taking is a single `swap(null)`, so there is no ABA: a node is never popped while another
//! thread is still reading it.

use crate::sync::{AtomicPtr, Ordering};

/// A node of an intrusive stack.
///
/// # Safety
/// `set_next`/`next` read and write a pointer field inside `*this`, and nothing else.
pub(crate) unsafe trait Node {
    /// Stores the successor.
    ///
    /// # Safety
    /// `this` is valid for writes and owned by the caller.
    unsafe fn set_next(this: *mut Self, next: *mut Self);
    /// Loads the successor.
    ///
    /// # Safety
    /// `this` is valid for reads and owned by the caller.
    unsafe fn next(this: *const Self) -> *mut Self;
}

/// The stack's head.
pub(crate) struct Stack<N: Node> {
    head: AtomicPtr<N>,
}

impl<N: Node> std::fmt::Debug for Stack<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("empty", &self.head.load(Ordering::Relaxed).is_null())
            .finish()
    }
}

impl<N: Node> Stack<N> {
    /// An empty stack.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// An empty stack.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// Pushes `node`. Never blocks; retries only when another push won the race.
    ///
    /// # Safety
    /// `node` is valid, owned by the caller, and is handed to the stack's consumer.
    pub(crate) unsafe fn push(&self, node: *mut N) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: the caller owns `node` until the CAS below publishes it.
            unsafe { N::set_next(node, head) };
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }

    /// Takes every node pushed so far, newest first.
    pub(crate) fn take_all(&self) -> Taken<N> {
        Taken {
            cur: self.head.swap(std::ptr::null_mut(), Ordering::Acquire),
        }
    }
}

/// Nodes taken from a [`Stack`], yielded as raw pointers now owned by the caller.
#[derive(Debug)]
pub(crate) struct Taken<N: Node> {
    cur: *mut N,
}

impl<N: Node> Iterator for Taken<N> {
    type Item = *mut N;

    fn next(&mut self) -> Option<*mut N> {
        if self.cur.is_null() {
            return None;
        }
        let node = self.cur;
        // SAFETY: the swap in `take_all` (Acquire) made every pushed node, including its
        // `next` written before the Release CAS, visible and exclusively ours. We read the
        // successor before handing `node` out, so the caller may free it.
        self.cur = unsafe { N::next(node) };
        Some(node)
    }
}
