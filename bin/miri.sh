#!/usr/bin/env bash
# Runs heaptide's unit tests under miri: undefined behaviour, data races, memory leaks, and
# (with -Zmiri-strict-provenance) pointer provenance in the pure-Rust parts.
#
# Usage: bin/miri.sh [TEST_FILTER [cargo test args...]]
#
# What runs: every unit test of the library (`--lib`) except those marked
# `#[cfg_attr(miri, ignore = "...")]`, which reach jemalloc's C code (miri cannot run it), /proc,
# the file system or the clock (miri's isolation refuses them). Under cfg(miri) the profiler's
# own memory (rings, registry slots, overflow nodes) comes from std::alloc::System instead of
# jemalloc (src/backend/mod.rs), so the lock-free ring, registry and stack run under miri;
# so do the estimators (sample::weight), the drain's ledger and tracking scopes, the trend and
# leak-pattern math, the settings parsers, and the report writers (JSON via serde, pprof,
# folded, text, HTML). Long randomized tests use fewer iterations under cfg(miri).
# Then the three lock-free buffer tests run again over 16 scheduler seeds
# (-Zmiri-many-seeds), which explores more thread interleavings and weak-memory outcomes.
#
# Needs the nightly miri component: rustup +nightly component add miri rust-src.
# Time on the 2-core development machine: about 20 minutes of tests, plus the first build (the
# miri sysroot and the dependencies, jemalloc's C build script included: a few minutes).
# MIRI_TIMEOUT (seconds, default 1500) bounds each of the two runs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"
flags="-Zmiri-strict-provenance ${MIRIFLAGS:-}"
limit="${MIRI_TIMEOUT:-1500}"

cargo +nightly miri setup >/dev/null

echo "== miri: unit tests"
MIRIFLAGS="$flags" timeout -k 30 "$limit" cargo +nightly miri test --lib "$@"

if [ $# -eq 0 ]; then
  echo "== miri: lock-free buffers over 16 scheduler seeds"
  MIRIFLAGS="$flags -Zmiri-many-seeds=0..16" timeout -k 30 "$limit" \
    cargo +nightly miri test --lib buffer::
fi
