"""How agentkeel handles its own bugs and broken sinks.

Telemetry must never break the agent: an internal failure is logged on the
``agentkeel.internal`` stdlib logger and counted. In strict mode (``KEEL_STRICT=1``
or :func:`set_strict`), which our own test-suite turns on, it is raised instead so
that bugs are not hidden.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter

_log = logging.getLogger("agentkeel.internal")
_lock = threading.Lock()
_counts: Counter[str] = Counter()
_last_logged: dict[str, float] = {}
# A dead database fails every batch: log each kind of failure at most once a minute
# (with how many were silenced), count every one.
LOG_INTERVAL_SECONDS = 60.0
_strict = os.environ.get("KEEL_STRICT", "").strip().lower() in {"1", "true", "yes", "on"}


def set_strict(enabled: bool = True) -> None:
    """Raise internal failures instead of logging them (for tests)."""
    global _strict  # noqa: PLW0603 - one process-wide switch, like stamina.set_testing
    _strict = enabled


def is_strict() -> bool:
    return _strict


def internal_error_counts() -> dict[str, int]:
    """How many internal failures happened, by where they happened."""
    with _lock:
        return dict(_counts)


def reset() -> None:
    """Forget counts and log rate limits (tests start from a clean slate)."""
    with _lock:
        _counts.clear()
        _last_logged.clear()


def report_internal_error(where: str, exc: BaseException, *, reraise: bool = True) -> None:
    """Count and log an internal failure; in strict mode re-raise it.

    ``reraise=False`` is for background threads, where raising would only kill the
    thread: they keep the error and surface it on the caller's next call instead.
    """
    now = time.monotonic()
    with _lock:
        _counts[where] += 1
        last = _last_logged.get(where)
        should_log = last is None or now - last >= LOG_INTERVAL_SECONDS
        if should_log:
            _last_logged[where] = now
        count = _counts[where]
    if should_log:
        _log.warning(
            "agentkeel internal error in %s (%d so far; logged at most once a minute): %r",
            where,
            count,
            exc,
            exc_info=exc,
        )
    if _strict and reraise:
        raise exc
