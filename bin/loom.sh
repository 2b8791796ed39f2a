#!/usr/bin/env bash
# Model-checks the lock-free buffers (ring, registry, intrusive stack) with loom, and the
# drain pass over them (no phantom leak: src/loom_tests.rs, `drain_never_leaves_...`).
#
# Usage: bin/loom.sh [TEST_FILTER [cargo test args...]]
#   bin/loom.sh                           every model (filter `loom_tests`)
#   bin/loom.sh loom_tests::ring          only the ring models
#   bin/loom.sh loom_tests::drain         only the drain pass model
#   bin/loom.sh loom_tests -- --nocapture
#
# LOOM_MAX_PREEMPTIONS (default 2) bounds the preemptions per explored execution; raise it for
# a deeper (much slower) search. Builds into target/loom so the normal target dir is not
# rebuilt with `--cfg loom`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

export RUSTFLAGS="--cfg loom ${RUSTFLAGS:-}"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/loom}"

filter="${1:-loom_tests}"
shift || true

exec cargo test --release --lib "$filter" "$@"
