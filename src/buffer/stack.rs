//! Intrusive lock-free stack: any thread pushes, one consumer takes everything at once.
//!
//! Used where a ring has no room and the event must not be lost:
//! - a sampled free whose ring is full (or whose thread has already released its ring) puts
//!   the freed block itself on the deferred-free stack; the block is only returned to jemalloc
//!   after the drain has recorded the free, so its address cannot be reused meanwhile;
//! - any other event that does not fit (an allocation's, in any sampling mode, or a death
//!   recorded on the resize path or for a tracked block outside the range) goes into an
//!   overflow node.
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

    /// Pushes `node`. Never blocks; retries when the head moved under it (another push, or a
    /// take) or the weak compare-exchange failed spuriously.
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

// The sampled arena's blocks wait on the deferred-free stack through their header's `next`.
#[cfg(not(loom))]
// SAFETY: `set_next`/`next` touch only the `next` field.
unsafe impl Node for crate::backend::sampled_arena::Header {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the block.
        unsafe { (*this).next = next }
    }
    unsafe fn next(this: *const Self) -> *mut Self {
        // SAFETY: the caller owns the block.
        unsafe { (*this).next }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct TestNode {
        next: *mut TestNode,
        value: u64,
    }

    // SAFETY: `set_next` and `next` touch only the `next` field.
    unsafe impl Node for TestNode {
        unsafe fn set_next(this: *mut Self, next: *mut Self) {
            // SAFETY: the caller owns `this`.
            unsafe { (*this).next = next };
        }

        unsafe fn next(this: *const Self) -> *mut Self {
            // SAFETY: the caller owns `this`.
            unsafe { (*this).next }
        }
    }

    /// Two threads push while a third takes: every node comes out exactly once, and a batch
    /// holds each thread's nodes newest first. (Under miri, this checks the publication of
    /// `next` through the Release CAS and the Acquire swap for data races.)
    #[test]
    fn concurrent_pushes_are_taken_exactly_once() {
        let per_thread: u64 = if cfg!(miri) { 50 } else { 20_000 };
        let stack = Stack::<TestNode>::new();
        let mut seen: Vec<u64> = Vec::new();
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let stack = &stack;
                s.spawn(move || {
                    for i in 0..per_thread {
                        let node = Box::into_raw(Box::new(TestNode {
                            next: std::ptr::null_mut(),
                            value: (t << 32) | i,
                        }));
                        // SAFETY: a fresh node, handed over to the stack.
                        unsafe { stack.push(node) };
                    }
                });
            }
            while (seen.len() as u64) < 2 * per_thread {
                let mut last = [u64::MAX; 2];
                for node in stack.take_all() {
                    // SAFETY: taken nodes are ours; each was made by `Box::into_raw`.
                    let value = unsafe { Box::from_raw(node) }.value;
                    let t = (value >> 32) as usize;
                    assert!(value < last[t], "a batch is newest first per thread");
                    last[t] = value;
                    seen.push(value);
                }
                std::hint::spin_loop();
            }
        });
        assert!(stack.take_all().next().is_none());
        seen.sort_unstable();
        let want: Vec<u64> = (0..2u64)
            .flat_map(|t| (0..per_thread).map(move |i| (t << 32) | i))
            .collect();
        assert_eq!(seen, want);
    }
}
