//! The dump signal: the handler only raises a flag and wakes the drain thread; the drain
//! thread notices the flag after its next pass and writes the dump (see
//! [`service_signal`](super::service_signal)).
//!
//! The handler is installed with `signal-hook-registry`, which keeps the handler the program
//! had before (if any, other than the default action or "ignore") and calls it first, on every
//! delivery. A handler another library installs later with a raw `sigaction` replaces ours
//! unless it chains in turn; that is outside heaptide's control.
//!
//! A burst of signals coalesces: every delivery sets the same flag, and the drain takes it
//! with one swap, so signals that arrive while a dump is being written cause at most one more.

use crate::sync::{AtomicBool, Ordering};

use super::settings::Signal;

/// Set by the handler; taken by the drain thread.
static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler for `signal`. `false` (with one stderr line) if it could not be.
pub(crate) fn install(signal: Signal) -> bool {
    // SAFETY: `on_signal` is async-signal-safe (an atomic store and a futex wake, no lock, no
    // allocation) and cannot panic. The signal is not one of signal-hook-registry's forbidden
    // ones (its `register` would panic for those).
    match unsafe { signal_hook_registry::register(signal.number(), on_signal) } {
        Ok(_) => true,
        Err(e) => {
            crate::diag::stderr_line(format_args!(
                "heaptide: cannot install the {} handler ({e}); dumps on signal are off",
                signal.name()
            ));
            false
        }
    }
}

/// The action run on each delivery (after the chained previous handler).
fn on_signal() {
    REQUESTED.store(true, Ordering::Release);
    // `Thread::unpark` is an atomic swap plus, if the thread is parked, a futex wake on these
    // systems: async-signal-safe. Elsewhere the drain notices the flag at its next periodic
    // pass (within 100 ms) instead.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    crate::buffer::queues::wake();
}

/// Whether a dump was asked for and not yet taken (does not clear the request).
pub(crate) fn pending() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Whether a dump was asked for since the last call (clears the request).
pub(crate) fn take_request() -> bool {
    REQUESTED.load(Ordering::Relaxed) && REQUESTED.swap(false, Ordering::Acquire)
}
