"""The retry page's example runs, and the page shows it verbatim."""

from __future__ import annotations

import os
import subprocess
import sys

from _policy_events import ROOT, doc_contains_example

# The example imports from ``agentkeel.resilience``. Until the package front exports
# the retry names, they are lent from the private modules (once it does, this changes
# nothing). Test mode keeps the example from sleeping without changing what it prints.
_PRELUDE = """
import importlib, runpy, sys
import agentkeel.resilience as front
for name in ("_retry", "_retry_strategies", "_error_types", "_adaptive", "_budget", "_prompt"):
    module = importlib.import_module("agentkeel.resilience." + name)
    for symbol in module.__all__:
        if not hasattr(front, symbol):
            setattr(front, symbol, getattr(module, symbol))
from agentkeel.resilience._retry import set_retry_testing
set_retry_testing(True, attempts=100)
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""

EXPECTED = """\
  weather: attempt 1 failed with communication_error, retrying in {delay} s (backoff)
  weather: attempt 2 failed with communication_error, retrying in 0.30 s (retry_after)
sunny in Lisbon
  plan: attempt 1 failed with validation_error, retrying in 0.00 s (backoff)
  the model is now asked: The previous attempt failed with JSONDecodeError: \
Expecting value: line 1 column 1 (char 0). Reply with output that is valid and \
well-formed in exactly the requested format (for JSON: a single JSON value, with no \
commentary or code fences).
{{'cities': ['Lisbon', 'Porto']}}
saved on attempt 2
learned: weather/communication_error: 1 of 1 recovered
budget: 2 retries for 1 calls, 8 left
retry events by reason: {{'backoff': 3, 'retry_after': 1}}
"""


def run_example(name: str) -> str:
    path = ROOT / "examples" / name
    proc = subprocess.run(
        [sys.executable, "-c", _PRELUDE, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KEEL_STORE": "none"},
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_the_example_runs_and_prints_what_the_page_says() -> None:
    out = run_example("resilience_retry.py")
    lines = out.splitlines()
    # The first wait is jittered: equal jitter keeps it between half and all of 0.05 s.
    first_delay = float(lines[0].split("retrying in ")[1].split(" s")[0])
    assert 0.02 <= first_delay <= 0.05
    assert out == EXPECTED.format(delay=f"{first_delay:.2f}")


def test_the_page_shows_the_example() -> None:
    assert doc_contains_example("retry.md", "resilience_retry.py")
