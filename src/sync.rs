//! The one place concurrency primitives come from.
//!
//! Under `--cfg loom` every atomic and `UnsafeCell` is loom's, so the model checker sees each
//! access of the lock-free structures (ring, registry, intrusive stack). Everything else in the
//! crate imports from here, never from `std::sync` directly: `clippy.toml` makes std's
//! `Mutex`, `MutexGuard`, `Condvar` and `RwLock` disallowed types, and only this module may
//! name them.
//!
//! [`Mutex`] and [`Condvar`] wrap std's and ignore poisoning (see [`Mutex`] for why). They
//! exist only outside loom: nothing that takes a lock is compiled under `--cfg loom`.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `std::cell::UnsafeCell` with loom's closure API, so the same code compiles under both.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Pads and aligns a value to a cache line so the producer's and the consumer's indices never
/// share one (false sharing would put a shared cache-line write on the sampling path).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(not(loom))]
pub(crate) use lock::{Condvar, Mutex, MutexGuard};

/// The poison-tolerant lock and condition variable, over std's.
#[cfg(not(loom))]
#[allow(
    clippy::disallowed_types,
    reason = "the facade is the one place that may name std's Mutex, MutexGuard and Condvar"
)]
mod lock {
    // === impl Mutex ===

    /// A mutual-exclusion lock that ignores poisoning: [`lock`](Mutex::lock) returns the
    /// guard whether or not a thread panicked while holding it.
    ///
    /// A profiler must keep working after a panic in its host. With std's poisoning, one
    /// panic while a lock was held (a bug in a drain pass, or in a library it calls, such as
    /// the symbolizer) would make every later `lock()` an error: reports, dumps and the drain
    /// thread would stop or panic in turn, and a panic in a fork handler aborts the process.
    /// The data a panicking holder left may be half-updated, which at worst skews a figure;
    /// the locked values are plain data whose every state is memory-safe, so heaptide keeps
    /// using them.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

    /// The guard of a [`Mutex`]: the lock is held until it is dropped.
    #[derive(Debug)]
    #[must_use = "the lock is released as soon as the guard is dropped"]
    pub(crate) struct MutexGuard<'a, T: ?Sized>(std::sync::MutexGuard<'a, T>);

    impl<T> Mutex<T> {
        /// A new unlocked mutex holding `value`.
        pub(crate) const fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        /// Waits for the lock and returns its guard, even if a holder panicked (poison ignored).
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        }

        /// The lock's guard if the lock is free now, poisoned or not; `None` if another thread
        /// holds it. Never waits.
        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(MutexGuard(guard)),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    Some(MutexGuard(poisoned.into_inner()))
                }
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
    }

    impl<T: ?Sized> std::ops::Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T: ?Sized> std::ops::DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            &mut self.0
        }
    }

    // === impl Condvar ===

    /// A condition variable for a [`Mutex`], whose wait ignores poisoning as the mutex does.
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        /// A new condition variable.
        pub(crate) const fn new() -> Self {
            Self(std::sync::Condvar::new())
        }

        /// Releases `guard`'s lock, waits for a notification (or a spurious wake-up: callers
        /// loop on their condition), and returns the lock's guard again, even if a holder
        /// panicked meanwhile.
        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            MutexGuard(
                self.0
                    .wait(guard.0)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        }

        /// Wakes one thread waiting on this condition variable, if any.
        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Condvar, Mutex};

    /// Poisons `mutex`: a holder panics (the message goes to the test's captured output).
    fn poison(mutex: &Mutex<u32>, value: u32) {
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut guard = mutex.lock();
            *guard = value;
            panic!("a holder panics");
        }));
        assert!(panicked.is_err());
    }

    /// After a holder panicked, `lock` and `try_lock` still hand out the lock, with what the
    /// holder left; `try_lock` never waits for a held lock.
    #[test]
    fn a_panicking_holder_locks_no_one_out() {
        let mutex = Mutex::new(1);
        poison(&mutex, 2);
        assert_eq!(*mutex.lock(), 2);
        *mutex.try_lock().expect("a free, poisoned lock is taken") += 1;
        let held = mutex.lock();
        assert_eq!(*held, 3);
        assert!(mutex.try_lock().is_none(), "a held lock is not taken");
    }

    /// A wait on a poisoned lock returns its guard once notified.
    #[test]
    fn a_wait_on_a_poisoned_lock_returns() {
        let mutex = Mutex::new(0);
        let condvar = Condvar::new();
        poison(&mutex, 0);
        std::thread::scope(|s| {
            s.spawn(|| {
                *mutex.lock() = 1;
                condvar.notify_one();
            });
            let mut guard = mutex.lock();
            while *guard == 0 {
                guard = condvar.wait(guard);
            }
            assert_eq!(*guard, 1);
        });
    }
}
