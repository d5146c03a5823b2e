"""The circuit-breaker page's example is the example file, and it runs as described."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "circuit_breaker_example.py"
PAGE = ROOT / "docs" / "resilience" / "circuit-breaker.md"
NAMES = (
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "get_all_circuit_breakers",
    "get_circuit_breaker",
)


def test_the_page_shows_the_example_file_verbatim() -> None:
    assert f"```python\n{EXAMPLE.read_text()}```" in PAGE.read_text()


def test_the_example_runs_and_prints_what_the_page_says() -> None:
    resilience = importlib.import_module("agentkeel.resilience")
    missing = [name for name in NAMES if not hasattr(resilience, name)]
    if missing:
        pytest.skip(f"agentkeel.resilience does not export {missing} yet")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "KEEL_STORE": "none"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[:4] == ["failed: search backend is down"] * 4
    assert lines[4:6] == ["skipped: breaker open, retry in 0.5 s"] * 2
    assert lines[6] == "state=open failure_rate=100%"
    assert lines[7:9] == ["results for 'news: agents'", "results for 'agents'"]
    assert lines[9] == "web_search: closed, 6 calls, 2 rejected"
