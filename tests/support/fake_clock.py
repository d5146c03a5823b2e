"""The tests' clock: time moves only when a test advances it or a policy sleeps on it.

It satisfies agentkeel's ``Clock`` protocol (``monotonic``, ``wall``) and stands in for
the ``sleep`` / ``async_sleep`` that policies take, recording every nap.
"""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float = 1_000.0, *, wall_offset: float = 1.7e9) -> None:
        self.now = now
        self.wall_offset = wall_offset  # wall() = wall_offset + now: late 2023 by default
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.wall_offset + self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)

    @property
    def slept(self) -> float:
        """Seconds slept in all."""
        return sum(self.sleeps)
