"""A clock for the instrumentors' health tests: it moves only when a test moves it."""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now
