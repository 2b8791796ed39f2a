//! The sampling decision and what is taken when it fires: the per-thread countdown and
//! generator, the per-object weights, the stack capture, and the reentrancy guard that keeps the
//! profiler's own work out of the user's numbers.

pub(crate) mod capture;
pub(crate) mod scope;
pub(crate) mod thread;
pub(crate) mod weight;
