#!/usr/bin/env bash
# Reads a heaptide pprof file with `go tool pprof` and checks which function holds the most
# live bytes.
#
# Usage: bin/pprof-check.sh FILE FUNCTION
#   Prints `go tool pprof -top -sample_index=inuse_space FILE` and exits 1 unless the first
#   function row (the one after the `flat flat% ...` header, the largest flat inuse_space)
#   contains FUNCTION. Installs golang-go with apt-get if `go` is missing.
#
# Example, with the profile the integration test writes on request:
#   HEAPTIDE_TEST_PPROF_OUT=/tmp/heaptide-test.pb.gz cargo test --test report_formats
#   bin/pprof-check.sh /tmp/heaptide-test.pb.gz formats_known_leaf
set -euo pipefail

if [ "$#" -ne 2 ]; then
  echo "usage: $0 FILE FUNCTION" >&2
  exit 2
fi
file=$1
function=$2

if [ ! -r "$file" ]; then
  echo "pprof-check: cannot read $file" >&2
  exit 1
fi

if ! command -v go >/dev/null; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    sudo=(sudo)
  fi
  echo "pprof-check: installing golang-go"
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  if ! command -v go >/dev/null; then
    echo "pprof-check: go is still not on PATH after installing golang-go" >&2
    exit 1
  fi
fi

if ! out=$(go tool pprof -top -sample_index=inuse_space "$file" 2>&1); then
  printf '%s\n' "$out" >&2
  echo "pprof-check: go tool pprof failed on $file" >&2
  exit 1
fi
printf '%s\n' "$out"

first=$(awk '/^ +flat +flat%/ { getline; print; exit }' <<<"$out")
case "$first" in
  *"$function"*) echo "pprof-check: $function holds the most live bytes: $first" ;;
  *)
    echo "pprof-check: the first row is not $function: ${first:-<no rows>}" >&2
    exit 1
    ;;
esac
