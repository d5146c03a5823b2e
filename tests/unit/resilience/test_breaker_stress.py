"""Many threads and tasks on one breaker: invariants that must hold under contention.

* Half-open never has more trial calls running than its quota, nor more slots
  taken than the quota (an ignored trial gives its slot back).
* Every attempt is accounted for exactly once: successful + failed + ignored +
  rejected = attempts, and the tool ran exactly successful + failed + ignored times.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from typing import Any

import pytest

from agentkeel.resilience._breaker import CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import HALF_OPEN, BreakerMachine, Permit, Rejection
from agentkeel.resilience._errors import CircuitOpenError

QUOTA = 3


class SpyMachine(BreakerMachine):
    """Tracks half-open's slots: taken by acquire, given back by release (under the lock)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.half_open_generations: set[int] = set()
        self.taken: Counter[int] = Counter()
        self.max_taken: Counter[int] = Counter()

    def acquire(self, now: float) -> Permit | Rejection:
        decision = super().acquire(now)
        if isinstance(decision, Permit) and self.state is HALF_OPEN:
            generation = decision.generation
            self.half_open_generations.add(generation)
            self.taken[generation] += 1
            self.max_taken[generation] = max(self.max_taken[generation], self.taken[generation])
        return decision

    def release(self, permit: Permit | None) -> None:
        if (
            permit is not None
            and self.state is HALF_OPEN
            and permit.generation == self.generation
            and self.taken[permit.generation] > 0
        ):
            self.taken[permit.generation] -= 1  # an ignored trial gives its slot back
        super().release(permit)


class Tracker:
    """Counts tool runs and the trial calls running at once, per half-open period."""

    def __init__(self, breaker: CircuitBreaker, spy: SpyMachine) -> None:
        self.breaker = breaker
        self.spy = spy
        self.lock = threading.Lock()
        self.running: Counter[int] = Counter()
        self.max_running: Counter[int] = Counter()
        self.runs = 0

    def enter(self) -> int | None:
        """The half-open generation this run belongs to, if any."""
        generation = self.spy.generation
        with self.lock:
            self.runs += 1
            if self.spy.state is not HALF_OPEN or generation not in self.spy.half_open_generations:
                return None
            self.running[generation] += 1
            self.max_running[generation] = max(
                self.max_running[generation], self.running[generation]
            )
            return generation

    def leave(self, generation: int | None) -> None:
        if generation is not None:
            with self.lock:
                self.running[generation] -= 1


def make_breaker() -> tuple[CircuitBreaker, SpyMachine]:
    config = CircuitBreakerConfig(
        minimum_calls=4,
        window_size=8,
        failure_rate_threshold=0.5,
        wait_in_open=0.002,
        half_open_max_calls=QUOTA,
        success_threshold=2,
        ignore_exceptions=(KeyError,),
    )
    breaker = CircuitBreaker("stress", config)
    spy = SpyMachine(config.resolved, time.monotonic())
    breaker._machine = spy
    return breaker, spy


def check(breaker: CircuitBreaker, spy: SpyMachine, tracker: Tracker, attempts: int) -> None:
    metrics = breaker.get_status()["metrics"]
    accounted = (
        metrics["successful_calls"]
        + metrics["failed_calls"]
        + metrics["ignored_calls"]
        + metrics["rejected_calls"]
    )
    assert accounted == attempts
    assert (
        tracker.runs
        == metrics["successful_calls"] + metrics["failed_calls"] + metrics["ignored_calls"]
    )
    assert spy.half_open_generations, "the test never reached half-open: tune it"
    assert max(spy.max_taken.values()) <= QUOTA
    assert max(tracker.max_running.values(), default=0) <= QUOTA


@pytest.fixture(autouse=True)
def _no_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_STORE", "none")


def outcome(rng: random.Random) -> BaseException | None:
    roll = rng.random()
    if roll < 0.45:
        return ConnectionError("flaky")
    if roll < 0.5:
        return KeyError("ignored")
    return None


def test_threads_never_exceed_the_half_open_quota_and_counts_add_up() -> None:
    breaker, spy = make_breaker()
    tracker = Tracker(breaker, spy)
    threads_n, per_thread = 12, 400

    def tool(error: BaseException | None) -> None:
        generation = tracker.enter()
        try:
            time.sleep(0.0001 if generation is None else 0.0005)
            if error is not None:
                raise error
        finally:
            tracker.leave(generation)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_thread):
            error = outcome(rng)
            with contextlib.suppress(CircuitOpenError, ConnectionError, KeyError):
                breaker.call(tool, error)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(breaker, spy, tracker, threads_n * per_thread)


def test_tasks_never_exceed_the_half_open_quota_and_counts_add_up() -> None:
    breaker, spy = make_breaker()
    tracker = Tracker(breaker, spy)
    tasks_n, per_task = 40, 150

    async def tool(error: BaseException | None) -> None:
        generation = tracker.enter()
        try:
            await asyncio.sleep(0 if generation is None else 0.001)
            if error is not None:
                raise error
        finally:
            tracker.leave(generation)

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(per_task):
            error = outcome(rng)
            try:
                await breaker.acall(tool, error)
            except (CircuitOpenError, ConnectionError, KeyError):
                await asyncio.sleep(0.0005)

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(tasks_n)))

    asyncio.run(main())
    check(breaker, spy, tracker, tasks_n * per_task)


def test_threads_racing_through_a_closed_breaker_lose_no_counts() -> None:
    breaker = CircuitBreaker("counts", CircuitBreakerConfig(minimum_calls=100_000))
    threads_n, per_thread = 8, 5_000
    barrier = threading.Barrier(threads_n)

    def worker() -> None:
        barrier.wait()
        for i in range(per_thread):
            if i % 10 == 0:
                breaker.record_failure()
            else:
                breaker.call(int, i)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metrics = breaker.get_status()["metrics"]
    assert metrics["total_calls"] == threads_n * per_thread
    assert metrics["failed_calls"] == threads_n * per_thread // 10
    assert metrics["window_calls"] == 100  # the default window: the last 100 calls
