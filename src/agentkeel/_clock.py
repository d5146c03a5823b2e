"""Clocks are injected so that policies and tests never depend on real time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the policies need to know about time."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    __slots__ = ()

    # The functions themselves, not methods calling them: policies on hot paths read
    # the clock per call, and a Python frame there would cost more than the read.
    monotonic = staticmethod(time.monotonic)
    wall = staticmethod(time.time)


SYSTEM_CLOCK = SystemClock()
