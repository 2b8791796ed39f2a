//! Labels: memory by component. A sampled allocation carries the labels (`key=value` pairs) its
//! thread had when it was made, so a report can say how much of the heap the cache holds, or a
//! tenant, or a request type, whatever call stacks that memory came from.
//!
//! A thread's labels are set for the length of a closure ([`label`](crate::label())), of a
//! guard ([`label_guard`]), or of each poll of a future
//! ([`Labelled`]); nested labels add up, and an inner value replaces an outer one for the same
//! key. The labels are read only when an allocation is sampled: an unsampled allocation costs
//! what it costs without labels (docs/performance.md, "Labels"). Setting a label takes the
//! label table's lock for two hash-map lookups (the label sets are interned, see [`table`]):
//! meant per request, per task or per component, not per allocation.
//!
//! What a label does not follow: a thread spawned inside a label starts without one (label its
//! work where it runs), and memory keeps the labels it was allocated under (a `Vec` filled in
//! one component and handed to another stays the first one's).

pub(crate) mod table;
#[cfg(feature = "tracing")]
pub(crate) mod tracing;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::sample::thread;

/// Runs `f` with `key=value` added to this thread's labels: allocations it makes on this
/// thread carry the label in reports.
///
/// ```
/// let cache: Vec<u8> = heaptide::label("component", "cache", || vec![0; 1 << 20]);
/// # drop(cache);
/// ```
pub fn label<R>(key: &str, value: &str, f: impl FnOnce() -> R) -> R {
    let _guard = label_guard(key, value);
    f()
}

/// Adds `key=value` to this thread's labels until the guard is dropped.
///
/// Guards nest; drop them in the reverse order of making them (as scopes do). The guard stays
/// on its thread (it is not `Send`): for async code, which may resume on another thread, use
/// [`Labelled`].
pub fn label_guard(key: &str, value: &str) -> LabelGuard {
    let set = table::with(thread::label(), key, value);
    LabelGuard {
        previous: thread::set_label(set),
        _not_send: PhantomData,
    }
}

/// Restores the thread's previous labels when dropped (see [`label_guard`]).
#[must_use = "the label is removed as soon as the guard is dropped"]
#[derive(Debug)]
pub struct LabelGuard {
    previous: u32,
    _not_send: PhantomData<*const ()>,
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        thread::set_label(self.previous);
    }
}

/// A future whose every poll runs with its labels, on whichever thread polls it, so an async
/// task keeps its label across `.await`. Made by [`labelled`]: the labels of the thread that
/// made it plus one pair.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Labelled<F> {
    inner: F,
    set: u32,
}

/// Wraps `future` so its polls run with the current thread's labels plus `key=value`.
///
/// ```
/// # async fn load() -> Vec<u8> { vec![0; 4096] }
/// let task = heaptide::labelled("component", "loader", load());
/// # drop(task);
/// // tokio::spawn(task) / runtime.block_on(task): its allocations are labelled.
/// ```
pub fn labelled<F: Future>(key: &str, value: &str, future: F) -> Labelled<F> {
    Labelled {
        inner: future,
        set: table::with(thread::label(), key, value),
    }
}

impl<F: Future> Future for Labelled<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self` (no method
        // gives it out by value or by `&mut`, and `Labelled` has no `Drop` that moves it), and
        // `set` is a plain `u32` read by copy.
        let (inner, set) = unsafe {
            let this = self.get_unchecked_mut();
            (Pin::new_unchecked(&mut this.inner), this.set)
        };
        let previous = thread::set_label(set);
        let _restore = Restore(previous);
        inner.poll(cx)
    }
}

/// Puts a thread's labels back, also when a poll panics.
struct Restore(u32);

impl Drop for Restore {
    fn drop(&mut self) {
        thread::set_label(self.0);
    }
}
