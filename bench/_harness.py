"""A small timing harness, the same method as ../shared/bench/anchors/peer_overhead.py.

``perf_counter_ns`` around ``for i in range(n): fn(i)``; ``process_time_ns`` read at
the same points (CPU of all threads, so background writers show up); repeats run
round-robin over all cases so drift hits every case alike; GC on, ``gc.collect()``
before each repeat, housekeeping outside the timer; medians reported.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    name: str
    group: str
    desc: str
    fn: Callable[[int], Any]
    is_async: bool = False
    before: Callable[[], None] | None = None
    # Waits for background work the calls caused (a pipeline flush): outside the
    # wall-clock timer, inside the CPU timer, so `cpu` is the whole cost of a call.
    settle: Callable[[], None] | None = None
    n: int = 0
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)


def _loop(case: Case, n: int) -> tuple[int, int]:
    fn = case.fn
    if case.is_async:

        async def body() -> tuple[int, int]:
            t0, c0 = time.perf_counter_ns(), time.process_time_ns()
            for i in range(n):
                await fn(i)
            wall = time.perf_counter_ns() - t0
            if case.settle:
                case.settle()
            return wall, time.process_time_ns() - c0

        return asyncio.run(body())
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    for i in range(n):
        fn(i)
    wall = time.perf_counter_ns() - t0
    if case.settle:
        case.settle()
    return wall, time.process_time_ns() - c0


def run_cases(
    cases: list[Case], *, n: int, repeats: int, target_s: float, min_n: int = 2_000
) -> None:
    for case in cases:  # warm-up and calibration
        if case.before:
            case.before()
        wall, _ = _loop(case, 200)
        per_call = max(wall / 200, 1)
        case.n = max(min_n, min(n, int(target_s * 1e9 / per_call)))
    for _ in range(repeats):
        for case in cases:
            if case.before:
                case.before()
            gc.collect()
            wall, cpu = _loop(case, case.n)
            case.wall.append(wall / case.n)
            case.cpu.append(cpu / case.n)
