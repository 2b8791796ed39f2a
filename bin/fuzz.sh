#!/usr/bin/env bash
# Builds and runs heaptide's fuzz targets (fuzz/, cargo-fuzz on nightly; see fuzz/README.md).
#
# Usage:
#   bin/fuzz.sh build                      build every target
#   bin/fuzz.sh run TARGET [SECONDS] [libFuzzer options...]
#                                          fuzz one target (default: until stopped)
#   bin/fuzz.sh all [SECONDS]              build, then fuzz each target for SECONDS (default 40)
#
# Targets: alloc_exact, alloc_sampled, config, report. Needs `cargo +nightly fuzz`
# (`cargo install --locked cargo-fuzz`). Each target gets its libFuzzer options here (`options`);
# the corpus grows in fuzz/corpus/TARGET, crashes land in fuzz/artifacts/TARGET. libFuzzer's
# output goes to fuzz/artifacts/TARGET.log; the panic and the end of it are shown on a failure.
#
# FUZZ_SANITIZER (default: address, cargo-fuzz's default) picks the sanitizer: `none` builds a
# minute faster and runs about twice as many inputs. AddressSanitizer sees little here (every
# allocation of the alloc_* targets comes from jemalloc, which it does not instrument), so CI
# uses `none`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"

# The same flags for every build (a change rebuilds everything): frame pointers, as the main
# crate's .cargo/config.toml has them (cargo-fuzz's own RUSTFLAGS replace build.rustflags).
export RUSTFLAGS="-C force-frame-pointers=yes ${RUSTFLAGS:-}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGETS=(alloc_exact alloc_sampled config report)

# libFuzzer options of each target: input size limit, and for the targets whose inputs are
# sequences or structures, no slow ramp-up of input lengths (-len_control=0).
options() {
  case "$1" in
    alloc_exact | alloc_sampled) echo "-max_len=256 -len_control=0" ;;
    config) echo "-max_len=128" ;;
    report) echo "-max_len=4096 -len_control=0" ;;
    *) echo "unknown target: $1 (one of: ${TARGETS[*]})" >&2; return 2 ;;
  esac
}

build() {
  cargo +nightly fuzz build -s "$SANITIZER" "$@"
}

run() {
  local target="$1" seconds="${2:-0}"
  shift
  [ $# -eq 0 ] || shift
  local -a opts
  read -r -a opts <<<"$(options "$target")"
  if [ "$seconds" != 0 ]; then
    opts+=("-max_total_time=$seconds")
  fi
  mkdir -p "artifacts/$target" "corpus/$target"
  local log="artifacts/$target.log"
  local how="until stopped"
  [ "$seconds" = 0 ] || how="for ${seconds}s"
  echo "fuzzing $target $how: ${opts[*]} (log: fuzz/$log)"
  if cargo +nightly fuzz run -s "$SANITIZER" "$target" -- "${opts[@]}" -print_final_stats=1 "$@" >"$log" 2>&1; then
    grep -E '^(Done [0-9]+ runs|stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb))' "$log" || tail -n 3 "$log"
  else
    {
      echo "fuzz target $target failed (whole log: fuzz/$log)"
      grep -m 1 -A 6 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" || true
      echo "..."
      tail -n 40 "$log"
    } >&2
    return 1
  fi
}

case "${1:-}" in
  build)
    shift
    build "$@"
    ;;
  run)
    shift
    [ $# -ge 1 ] || { echo "usage: bin/fuzz.sh run TARGET [SECONDS] [libFuzzer options...]" >&2; exit 2; }
    options "$1" >/dev/null
    build "$1"
    run "$@"
    ;;
  all)
    seconds="${2:-40}"
    build
    status=0
    for t in "${TARGETS[@]}"; do
      run "$t" "$seconds" || status=1
    done
    exit "$status"
    ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
