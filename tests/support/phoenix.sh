#!/usr/bin/env bash
# Create (or reuse) a virtualenv holding Arize Phoenix, our real OTLP receiver in tests.
#
# Phoenix lives in its own virtualenv, never in the project's: it is ~850 MB, and its
# client package registers a pytest plugin that slows every collection by seconds.
#
#   tests/support/phoenix.sh [VENV_DIR]     # default: <repo>/.venv-phoenix
#
# Prints the path of the `phoenix` executable on success. Exit status 0 when ready.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-${KEEL_PHOENIX_VENV:-$repo/.venv-phoenix}}"
python="${KEEL_PHOENIX_PYTHON:-python3}"
# Pinned to the major version the test's read-back API was checked against.
spec="${KEEL_PHOENIX_SPEC:-arize-phoenix>=12,<21}"
stamp="$venv/.installed"

if [[ ! -f "$stamp" || ! -x "$venv/bin/phoenix" ]]; then
  # A lock, so two test sessions starting at once do not install into one venv twice.
  exec 9>"$venv.lock"
  if command -v flock >/dev/null; then flock 9; fi
  if [[ ! -f "$stamp" || ! -x "$venv/bin/phoenix" ]]; then
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec" >&2
    touch "$stamp"
  fi
fi
echo "$venv/bin/phoenix"
