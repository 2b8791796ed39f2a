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
# With HTML_CHECK_FILTER=KEY=VALUE (split at the first `=`) it also uses the label filter as a
# person would, through chromedriver (WebDriver, driven by python3's standard library): picks
# KEY=VALUE in the page's filter control, waits (up to 20 s) for the page to say it is filtered,
# then checks that the sites table and the leak table list only sites labelled KEY=VALUE
# (against the page's own data block), that the table still lists the largest such site, that
# the flame graph's root is the filtered sites' live bytes, and that the script hit no error;
# saves a screenshot of the filtered page to OUT-filter.png. The report must have sites with
# and without the pair, or the check would prove nothing.
#
# Environment: HTML_CHECK_MIN_FLAME (default 11), HTML_CHECK_MIN_CHART (default 1),
# HTML_CHECK_WINDOW (default 1400,2200), HTML_CHECK_FILTER (default: no filter check).
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
filter=${HTML_CHECK_FILTER:-}

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
if [ -n "$filter" ]; then
  case "$filter" in
    *=*) ;;
    *) fail "HTML_CHECK_FILTER must be KEY=VALUE, not \"$filter\"" ;;
  esac
  if ! command -v chromedriver >/dev/null 2>&1 || ! command -v python3 >/dev/null 2>&1; then
    echo "html-check: installing chromium-driver and python3 (for the filter check)" >&2
    [ "$(id -u)" -eq 0 ] || fail "the filter check needs chromedriver and python3; installing them needs root"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed"
    apt-get install -y -qq --no-install-recommends chromium-driver python3 >/dev/null \
      || fail "apt-get install chromium-driver python3 failed"
  fi
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
first=$(head -1 <<<"$selftest")
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

[ -n "$filter" ] || exit 0

# 3. The label filter, used through WebDriver: chromedriver drives the same Chromium (same
# flags, without the virtual time budget: WebDriver waits for conditions instead).
filter_png=${png_abs%.png}-filter.png
rm -f "$filter_png"
HC_URL=$url HC_FILTER=$filter HC_PNG=$filter_png HC_WORK=$work HC_WINDOW=$window \
HC_CHROMIUM=$(command -v chromium) HC_DRIVER=$(command -v chromedriver) \
python3 - <<'PY' || fail "the label filter check (above)"
import base64, json, os, socket, subprocess, sys, time, urllib.error, urllib.request

url, pair, png, work = (os.environ[k] for k in ("HC_URL", "HC_FILTER", "HC_PNG", "HC_WORK"))
width, height = (int(x) for x in os.environ["HC_WINDOW"].split(","))
key, value = pair.split("=", 1)


def die(msg):
    print("html-check: FAILED: filter " + pair + ": " + msg, file=sys.stderr)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
base = "http://127.0.0.1:%d" % port
log = open(os.path.join(work, "chromedriver.log"), "wb")
driver = subprocess.Popen([os.environ["HC_DRIVER"], "--port=%d" % port], stdout=log, stderr=log)


def call(method, path, body=None, timeout=60):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        die("WebDriver %s %s: %s" % (method, path, e.read().decode(errors="replace")[:2000]))


def until(what, deadline_s, probe):
    # Polls `probe` until it returns something true, for at most `deadline_s` seconds.
    deadline = time.monotonic() + deadline_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            die("timed out after %d s waiting for %s" % (deadline_s, what))
        time.sleep(0.05)


def ready():
    try:
        with urllib.request.urlopen(base + "/status", timeout=2) as r:
            return json.load(r)["value"].get("ready")
    except OSError:
        return driver.poll() is not None and die("chromedriver exited (%s)" % driver.returncode)


session = None
try:
    until("chromedriver to start", 30, ready)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--hide-scrollbars",
            "--user-data-dir=" + os.path.join(work, "wd-profile"),
            "--window-size=%d,%d" % (width, height)]
    caps = {"browserName": "chrome",
            "goog:chromeOptions": {"binary": os.environ["HC_CHROMIUM"], "args": args}}
    session = call("POST", "/session", {"capabilities": {"alwaysMatch": caps}}, timeout=120)["sessionId"]
    S = "/session/" + session

    def js(script, *args):
        return call("POST", S + "/execute/sync", {"script": script, "args": list(args)})

    def element(css, root=None):
        path = S + ("/element/%s/element" % root if root else "/element")
        return list(call("POST", path, {"using": "css selector", "value": css}).values())[0]

    call("POST", S + "/url", {"url": url})
    until("the page's script to finish (its self-test line)", 20,
          lambda: js("return document.getElementById('selftest').textContent"))
    if not js("return document.body.hasAttribute('data-label-filter')"):
        die("the page shows no label filter (does the report have labels?)")
    select = element("#label-filter")
    if not call("GET", S + "/element/%s/displayed" % select):
        die("the label filter control is not visible")
    options = call("POST", S + "/element/%s/elements" % select,
                   {"using": "css selector", "value": "option"})
    texts = [call("GET", S + "/element/%s/text" % list(o.values())[0]) for o in options]
    if pair not in texts:
        die("the filter control does not offer it; it offers: " + ", ".join(texts))
    option = list(options[texts.index(pair)].values())[0]
    call("POST", S + "/element/%s/click" % option, {})
    until("the page to show the filtered view", 20,
          lambda: js("return document.body.getAttribute('data-label-filter') === arguments[0]", pair))

    # What the page shows, and what its data block says it should show.
    got = js('''
      const key = arguments[0], value = arguments[1];
      const data = JSON.parse(document.getElementById('heaptide-data').textContent);
      const has = (set) => set != null && Object.prototype.hasOwnProperty.call(set, key) && set[key] === value;
      const rows = (css) => Array.from(document.querySelectorAll(css)).map((tr) => ({
        id: Number(tr.getAttribute('data-site')),
        chips: Array.from(tr.querySelectorAll('.chip')).map((c) => c.textContent),
      }));
      const sites = data.sites.filter((x) => has(x.labels));
      const byLive = sites.slice().sort((a, b) => b.live_bytes - a.live_bytes);
      const flame = document.querySelector('#flame-chart svg');
      const select = document.getElementById('label-filter');
      return {
        selected: select.options[select.selectedIndex].textContent,
        errors: window.heaptideErrors.slice(),
        selftest: document.getElementById('selftest').textContent,
        listed: data.sites.length,
        expected: sites.map((x) => x.id),
        largest: byLive.length ? byLive[0].id : null,
        expectedLive: sites.reduce((a, x) => a + (x.live_bytes > 0 ? x.live_bytes : 0), 0),
        expectedLeaks: data.leaks.filter((l) => has(l.labels)).map((l) => l.site_id),
        siteRows: rows('#sites-table tbody tr'),
        leakRows: rows('#leaks-table tbody tr'),
        flameTotal: flame ? Number(flame.getAttribute('data-total')) : null,
        flameFilter: flame ? flame.getAttribute('data-filter') : null,
        flameFrames: document.querySelectorAll('#flame-chart [data-flame]').length,
        note: document.getElementById('filter-note').textContent,
      };''', key, value)

    if got["errors"]:
        die("the page's script hit errors:\n" + "\n".join(got["errors"]))
    if not got["selftest"].startswith("flame=") or " errors=0" not in got["selftest"].split("\n")[0]:
        die("unexpected self-test line: " + got["selftest"])
    if got["selected"] != pair:
        die("the control shows %r" % got["selected"])
    expected = set(got["expected"])
    if not expected:
        die("no listed site is labelled so: nothing to check")
    if len(expected) == got["listed"]:
        die("every listed site is labelled so: the filter would change nothing")
    shown = [r["id"] for r in got["siteRows"]]
    wrong = [r for r in got["siteRows"] if r["id"] not in expected or pair not in r["chips"]]
    if not shown:
        die("the sites table is empty")
    if wrong:
        die("the sites table shows sites not labelled so: %s" % wrong)
    if got["largest"] not in shown:
        die("the sites table lacks site %s, the largest labelled so" % got["largest"])
    wrong = [r for r in got["leakRows"] if r["id"] not in set(got["expectedLeaks"])]
    if wrong:
        die("the leak table shows leaks not labelled so: %s" % wrong)
    if got["flameFilter"] != pair or got["flameTotal"] != got["expectedLive"]:
        die("the flame graph's root is %s bytes (filter %r); the sites labelled so hold %s"
            % (got["flameTotal"], got["flameFilter"], got["expectedLive"]))
    if got["flameFrames"] < 2:
        die("the filtered flame graph drew %d frames" % got["flameFrames"])
    if not got["note"].startswith("Filtered to " + pair):
        die("the filter bar does not say the view is filtered: %r" % got["note"])

    # The whole filtered page in one screenshot.
    full = js("return document.documentElement.scrollHeight")
    call("POST", S + "/window/rect", {"width": width, "height": max(height, min(int(full) + 40, 12000))})
    with open(png, "wb") as f:
        f.write(base64.b64decode(call("GET", S + "/screenshot")))
    print("html-check: ok: filter %s: %d of %d listed sites labelled so, the sites table shows %d of them "
          "and no other, %d leak row(s), flame graph root %d bytes (their live bytes), no script errors; "
          "screenshot %s" % (pair, len(expected), got["listed"], len(shown), len(got["leakRows"]),
                             got["flameTotal"], png))
finally:
    if session:
        try:
            call("DELETE", "/session/" + session, timeout=30)
        except SystemExit:
            pass
    driver.terminate()
    try:
        driver.wait(timeout=10)
    except subprocess.TimeoutExpired:
        driver.kill()
PY
