"""Helpers shared by the policy tests: captured events and running the docs' examples."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec

import agentkeel
from agentkeel.events import Event

ROOT = Path(__file__).resolve().parents[3]
P = ParamSpec("P")


def async_test(fn: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run an ``async def`` test in a fresh event loop (no async plugin is installed)."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        asyncio.run(fn(*args, **kwargs))

    return run


class CapturedEvents:
    """A sink that keeps every event; :meth:`all` flushes the pipeline first."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, batch: Sequence[Event], /) -> None:
        with self._lock:
            self._events.extend(batch)

    def all(self) -> list[Event]:
        assert agentkeel.flush(timeout=5)
        with self._lock:
            return list(self._events)

    def of_type(self, event_type: str) -> list[Event]:
        return [e for e in self.all() if e.type == event_type]

    @classmethod
    def installed(cls) -> Iterator[CapturedEvents]:
        """Route the process-wide pipeline to a fresh capture (for a fixture)."""
        captured = cls()
        agentkeel.configure(store="none", sinks=[captured])
        yield captured


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


# All the examples run in one fresh interpreter (agentkeel is imported once, not five
# times), each under runpy as ``__main__``, with its stdout captured. They import their
# policies from ``agentkeel.resilience``; until the package front exports them, the
# prelude lends them from the private modules, and once it does it changes nothing.
EXAMPLES = (
    "resilience_timeout.py",
    "resilience_isolation.py",
    "resilience_fallback.py",
    "resilience_bulkhead.py",
    "resilience_rate_limiter.py",
)
_RUNNER = """
import contextlib, importlib, io, json, runpy, sys, traceback
import agentkeel.resilience as front
for name in ("_errors", "_timeout", "_isolation", "_fallback", "_bulkhead", "_rate_limiter"):
    module = importlib.import_module("agentkeel.resilience." + name)
    for symbol in getattr(module, "__all__", [n for n in vars(module) if n[0].isupper()]):
        if not hasattr(front, symbol):
            setattr(front, symbol, getattr(module, symbol))
results = {}
for path in sys.argv[1:]:
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name="__main__")
        results[path] = {"ok": True, "out": out.getvalue()}
    except BaseException:
        results[path] = {"ok": False, "out": out.getvalue() + traceback.format_exc()}
print(json.dumps(results))
"""


@functools.cache
def _run_examples() -> dict[str, dict[str, Any]]:
    paths = [str(ROOT / "examples" / name) for name in EXAMPLES]
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, *paths],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KEEL_STORE": "none"},
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, f"the examples' runner failed:\n{proc.stdout}\n{proc.stderr}"
    results: dict[str, dict[str, Any]] = json.loads(proc.stdout.splitlines()[-1])
    return {Path(path).name: result for path, result in results.items()}


def run_example(name: str) -> str:
    """The stdout of ``examples/<name>``, which must have run without an error."""
    result = _run_examples()[name]
    assert result["ok"], f"{name} failed:\n{result['out']}"
    return str(result["out"])


def doc_contains_example(doc: str, example: str) -> bool:
    """The doc page shows the example's code verbatim (so the two cannot drift)."""
    code = (ROOT / "examples" / example).read_text().strip()
    page = (ROOT / "docs" / "resilience" / doc).read_text()
    return code in page
