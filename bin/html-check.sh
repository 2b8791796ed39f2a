#!/usr/bin/env bash
# Opens a heaptide HTML report in headless Chromium, as a person would, and checks it.
#
#   bin/html-check.sh FILE FUNCTION OUT.png
#
# Checks: the page's script ran without errors (its own error count, and no console error in
# Chromium's log), the flame graph and the memory chart drew elements, FUNCTION's name is on
# the page; saves a screenshot to OUT.png. Exits non-zero with a message naming what failed.
# Installs chromium and chromium-driver with apt-get if they are missing (needs root).
#
# Environment: HTML_CHECK_MIN_FLAME (default 11), HTML_CHECK_MIN_CHART (default 1),
# HTML_CHECK_WINDOW (default 1400,2200).
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 FILE FUNCTION OUT.png" >&2
  exit 2
fi
file=$1
function=$2
png=$3
min_flame=${HTML_CHECK_MIN_FLAME:-11}
min_chart=${HTML_CHECK_MIN_CHART:-1}
window=${HTML_CHECK_WINDOW:-1400,2200}

fail() {
  echo "html-check: FAILED: $*" >&2
  exit 1
}

[ -f "$file" ] || fail "no such file: $file"

if ! command -v chromium >/dev/null 2>&1; then
  echo "html-check: installing chromium and chromium-driver" >&2
  if [ "$(id -u)" -ne 0 ]; then
    fail "chromium is not installed and installing it needs root"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || fail "apt-get update failed"
  apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null \
    || fail "apt-get install chromium chromium-driver failed"
fi

abs=$(cd "$(dirname "$file")" && pwd)/$(basename "$file")
url="file://$abs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Headless, without the GPU or the sandbox (which root in a container cannot use), no first-run
# or background networking, and 5 s of virtual time for the page's script; a throwaway profile;
# console messages go to stderr at level 0.
flags=(--headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking
  --user-data-dir="$work/profile" --enable-logging=stderr --v=0 --hide-scrollbars
  --virtual-time-budget=5000 --window-size="$window")

# 1. The DOM after the page's script ran.
if ! timeout 120 chromium "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/dom.log"; then
  cat "$work/dom.log" >&2
  fail "chromium could not render $file"
fi

# 2. The screenshot (a second run: --dump-dom and --screenshot do not combine).
mkdir -p "$(dirname "$png")"
png_abs=$(cd "$(dirname "$png")" && pwd)/$(basename "$png")
rm -f "$png_abs"
if ! timeout 120 chromium "${flags[@]}" --screenshot="$png_abs" "$url" >"$work/shot.out" 2>"$work/shot.log"; then
  cat "$work/shot.log" >&2
  fail "chromium could not take the screenshot"
fi
[ -s "$png_abs" ] || fail "no screenshot was written to $png"

# Console: Chromium logs every console message of the page as `INFO:CONSOLE:<line>] "message"`,
# console.error and uncaught exceptions alike (the level does not tell them apart). The page
# itself never writes to the console, so any such line (an exception, a console.error, a
# request the page's security policy blocked) is an error.
console=$(grep -h -E ':CONSOLE[:(]|Uncaught' "$work/dom.log" "$work/shot.log" || true)
if [ -n "$console" ]; then
  printf '%s\n' "$console" >&2
  fail "the page wrote to the console (above); it never should"
fi

# The page's self-test line: flame=N chart=M errors=K, then the errors.
selftest=$(tr '\n' '\v' <"$work/dom.html" | grep -o '<pre id="selftest"[^>]*>[^<]*' \
  | sed 's/^<pre[^>]*>//; s/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&amp;/\&/g' | tr '\v' '\n' || true)
[ -n "$selftest" ] || fail "the page's script did not run to the end (no self-test line in the DOM)"
first=$(printf '%s\n' "$selftest" | head -1)
read -r flame chart errors < <(printf '%s\n' "$first" | sed -E 's/^flame=([0-9]+) chart=([0-9]+) errors=([0-9]+).*/\1 \2 \3/')
case "$flame$chart$errors" in
  *[!0-9]*|'') fail "unreadable self-test line: $first" ;;
esac
if [ "$errors" -ne 0 ]; then
  printf '%s\n' "$selftest" >&2
  fail "the page's script hit $errors error(s) (above)"
fi

# Counted again from the DOM, not only from the page's word.
drawn_flame=$({ grep -o 'data-flame="[0-9]*"' "$work/dom.html" || true; } | wc -l)
drawn_chart=$({ grep -o 'data-chart="[a-z]*"' "$work/dom.html" || true; } | wc -l)
[ "$flame" -ge "$min_flame" ] && [ "$drawn_flame" -ge "$min_flame" ] \
  || fail "the flame graph drew $flame frames ($drawn_flame in the DOM), fewer than $min_flame"
[ "$chart" -ge "$min_chart" ] \
  || fail "the memory chart drew $chart elements, fewer than $min_chart"
[ "$drawn_chart" -ge "$chart" ] || fail "the DOM has $drawn_chart chart elements, the page counted $chart"

# The function's name as text on the page (not only inside the JSON data block).
visible=$(sed 's/<script type="application\/json"[^>]*>.*//' "$work/dom.html")
grep -qF -- "$function" <<<"$visible" || fail "\"$function\" is not on the page"

size=$(wc -c <"$file")
echo "html-check: ok: $file ($size bytes): flame graph $flame frames, memory chart $chart elements, no console errors, \"$function\" shown; screenshot $png"
