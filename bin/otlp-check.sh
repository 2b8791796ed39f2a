#!/usr/bin/env bash
# Tests of the OTLP export (cargo feature `otlp`) with the feature alone (without `http`):
# the unit tests of src/otlp and src/report/metrics.rs, and tests/otlp_export.rs, which checks
# the pushed requests with the official OpenTelemetry protobuf bindings (PyPI packages
# `opentelemetry-proto` and `protobuf`, installed by the test into a virtual environment under
# target/). Installs `python3` and its `venv` module (Debian packages `python3`, `python3-venv`)
# when missing, so the test never skips here.
#
# Usage: bin/otlp-check.sh [extra cargo test arguments, e.g. -- --nocapture]
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  sudo=()
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
    sudo=(sudo)
  fi
  echo "otlp-check: installing python3 python3-venv"
  "${sudo[@]}" apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  echo "otlp-check: python3 with the venv module is still not available" >&2
  exit 1
fi

cargo test --features otlp --lib -- otlp:: report::metrics "$@"
cargo test --features otlp --test otlp_export "$@"
