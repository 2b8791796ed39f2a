#!/usr/bin/env bash
# Tests of the HTTP server (cargo feature `http`), with the tools they check it against:
# `promtool check metrics` and a real Prometheus server (Debian package `prometheus`), and
# `go tool pprof` (package `golang-go`). Installs what is missing, checks the alert rules of
# deploy/prometheus with `promtool check rules` and their unit tests with `promtool test rules`,
# then runs the unit tests of src/http and the integration tests tests/http_*.rs (among them
# tests/http_alert_rules.rs: the rules and the Grafana dashboard against a real Prometheus).
#
# Usage: bin/http-check.sh [extra cargo test arguments, e.g. -- --nocapture]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
  missing+=(prometheus)
fi
if ! command -v go >/dev/null; then
  missing+=(golang-go)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    sudo=(sudo)
  fi
  echo "http-check: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq >/dev/null
  # The package's own Prometheus service is not needed (the tests start theirs on a free port).
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for tool in promtool prometheus go; do
  if ! command -v "$tool" >/dev/null; then
    echo "http-check: $tool is still not on PATH" >&2
    exit 1
  fi
done

promtool check rules deploy/prometheus/heaptide-rules.yml
promtool test rules deploy/prometheus/heaptide-rules.test.yml

cargo test --features http --lib http:: "$@"
cargo test --features http --test 'http_*' "$@"
