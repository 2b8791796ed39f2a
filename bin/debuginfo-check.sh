#!/usr/bin/env bash
# Checks that reports blame the program's function, not the standard library's allocation
# plumbing, at every debug-info level a release build may use.
#
# Usage: bin/debuginfo-check.sh [LEVEL...]   (default: none line-tables-only full)
#
# For each level, builds tests/fixtures/debuginfo (a tiny program that holds 4 MiB from its
# function `hold_pages` through `Box::new`) in release with `debug = LEVEL` and without frame
# pointers (a new user's build), runs it in exact mode with a dump, and checks the dump:
#   - text: the first row of "Top sites by live bytes" names hold_pages;
#   - JSON: `sites[0].blamed.function` is hold_pages (by any path prefix);
#   - pprof: `go tool pprof -top` puts hold_pages first (bin/pprof-check.sh);
#   - test assertions: `heaptide::testing::track` blames a leak of its pages on hold_pages.
# With `debug = "none"` cargo strips the debug info (its default `strip = "debuginfo"`): the
# frames are the symbol table's names, full paths such as `debuginfo_fixture::hold_pages`, and
# functions inlined into their caller do not appear at all (the fixture's function is
# `#[inline(never)]`). Installs jq with apt-get if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
fixture=$root/tests/fixtures/debuginfo
target=$root/target/debuginfo-check
function=hold_pages

if [ "$#" -eq 0 ]; then
  set -- none line-tables-only full
fi

if ! command -v jq >/dev/null; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    sudo=(sudo)
  fi
  echo "debuginfo-check: installing jq"
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
fi

fail() {
  echo "debuginfo-check ($level): $*" >&2
  exit 1
}

for level in "$@"; do
  echo "=== debug = \"$level\""
  # Each level has its own artifacts in the one target directory (the profile is part of
  # their hashes), so running the check again rebuilds nothing. jemalloc (C, never in a
  # captured stack) is built once, without debug info, for all levels.
  (cd "$fixture" && RUSTFLAGS="" CARGO_TARGET_DIR="$target" \
    cargo build --release --locked -q --config "profile.release.debug=\"$level\"" \
    --config 'profile.release.package.tikv-jemalloc-sys.debug="none"')
  dir=$(mktemp -d)
  out=$(HEAPTIDE_SAMPLE=1 HEAPTIDE_DIR="$dir" HEAPTIDE_FORMATS=json,pprof,text \
    "$target/release/debuginfo-fixture")

  text=$(echo "$dir"/heaptide-*-1.txt)
  first=$(awk '/^Top sites by live bytes:/ {getline; getline; print; exit}' "$text")
  case "$first" in
    *"$function" | *"$function "*) echo "text: $first" ;;
    *) cat "$text" >&2; fail "the text report's first live row is not $function: $first" ;;
  esac

  json=$(echo "$dir"/heaptide-*-1.json)
  blamed=$(jq -r '.sites[0].blamed.function' "$json")
  case "$blamed" in
    "$function" | *"::$function") echo "json: sites[0].blamed.function = $blamed" ;;
    *)
      jq '.sites[0]' "$json" >&2
      fail "the JSON's first site blames $blamed, not $function"
      ;;
  esac

  tracked=$(printf '%s\n' "$out" | sed -n 's/^tracked leak blamed: //p')
  case "$tracked" in
    "$function" | *"::$function") echo "heaptide::testing::track: the leak is blamed on $tracked" ;;
    *) fail "heaptide::testing::track blames the leak on ${tracked:-nothing}, not $function" ;;
  esac

  bash "$root/bin/pprof-check.sh" "$(echo "$dir"/heaptide-*-1.pb.gz)" "$function" |
    grep -E '^(File|Type|pprof-check):' || fail "go tool pprof does not put $function first"
  rm -rf "$dir"
done
echo "debuginfo-check: $function blamed at every level ($*)"
