"""A retry budget: retries may be at most a fraction of calls, so a fleet cannot storm.

Retries multiply load exactly when a provider is struggling: with three attempts
per call, an outage triples the traffic hitting it. A budget shared by every
:class:`Retry` in a process caps retries in a sliding window to
``ratio * calls + min_retries_per_window``: with the default ratio of 0.2 an outage
adds at most 20 % to the load (plus a small floor, so that a quiet service can
still retry its rare failures).

The window slides in ten steps (a bucket per tenth of the window); calls and
retries older than the window are forgotten a bucket at a time.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import timedelta

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel.resilience._base import as_seconds, check_count, check_rate

__all__ = ["BudgetStats", "RetryBudget"]

_BUCKETS = 10


@dataclass(frozen=True, slots=True)
class BudgetStats:
    """The budget's window right now."""

    calls: int  # first attempts recorded in the window
    retries: int  # retries granted in the window
    allowed: int  # retries the window allows in total (granted + still available)
    rejected: int  # retries refused since the budget was made
    window_s: float

    @property
    def available(self) -> int:
        return max(0, self.allowed - self.retries)


class RetryBudget:
    """Caps retries to ``ratio`` of calls per sliding ``window``, plus a floor.

    Share one budget between the policies that call the same provider:
    ``budget = RetryBudget(); Retry(on=..., budget=budget)``. Thread-safe; the
    cost of a recorded call is one lock and one clock read.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.2,
        min_retries_per_window: int = 10,
        window: float | timedelta = 60.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.ratio = check_rate(ratio, "ratio")
        self.min_retries_per_window = check_count(
            min_retries_per_window, "min_retries_per_window", minimum=0
        )
        self.window = as_seconds(window, "window", allow_zero=False)
        self._bucket_width = self.window / _BUCKETS
        self._clock = clock
        self._lock = threading.Lock()
        self._calls = [0] * _BUCKETS
        self._retries = [0] * _BUCKETS
        self._call_total = 0
        self._retry_total = 0
        self._rejected = 0
        self._epoch = self._epoch_now()

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, min_retries_per_window="
            f"{self.min_retries_per_window}, window={self.window:g})"
        )

    def _epoch_now(self) -> int:
        return math.floor(self._clock.monotonic() / self._bucket_width)

    def _advance(self) -> int:
        """Forget buckets that slid out of the window; the current bucket's index."""
        epoch = self._epoch_now()
        passed = epoch - self._epoch
        if passed > 0:
            calls, retries = self._calls, self._retries
            for step in range(1, min(passed, _BUCKETS) + 1):
                index = (self._epoch + step) % _BUCKETS
                self._call_total -= calls[index]
                self._retry_total -= retries[index]
                calls[index] = retries[index] = 0
            self._epoch = epoch
        # A clock that went backwards (a bad fake) keeps the current bucket.
        return self._epoch % _BUCKETS

    def _allowed(self) -> int:
        return math.floor(self.ratio * self._call_total) + self.min_retries_per_window

    def record_call(self) -> None:
        """A call is about to make its first attempt (every call, not only failed ones)."""
        with self._lock:
            index = self._advance()
            self._calls[index] += 1
            self._call_total += 1

    def try_acquire(self) -> bool:
        """Take one retry from the budget; ``False`` (and counted) if none is left."""
        with self._lock:
            index = self._advance()
            if self._retry_total >= self._allowed():
                self._rejected += 1
                return False
            self._retries[index] += 1
            self._retry_total += 1
            return True

    def stats(self) -> BudgetStats:
        with self._lock:
            self._advance()
            return BudgetStats(
                calls=self._call_total,
                retries=self._retry_total,
                allowed=self._allowed(),
                rejected=self._rejected,
                window_s=self.window,
            )
