"""Many threads and many tasks share one policy, budget and learner: invariants hold."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections.abc import Iterator

import pytest
from _policy_events import CapturedEvents, async_test

from agentkeel import EventType
from agentkeel.resilience._adaptive import SuccessRateLearner
from agentkeel.resilience._budget import RetryBudget
from agentkeel.resilience._error_types import ErrorType
from agentkeel.resilience._retry import Retry
from agentkeel.resilience._retry_strategies import fixed

THREADS = 8
CALLS_PER_THREAD = 150
RATIO = 0.1
FLOOR = 5


class FrozenClock:
    """Time stands still, so the budget's window never slides during the test."""

    def monotonic(self) -> float:
        return 42.0

    def wall(self) -> float:
        return 42.0


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


class Counting:
    """Fails at random (seeded per worker); counts every attempt, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts = 0

    def make(self, seed: int, failure_rate: float = 0.5):  # type: ignore[no-untyped-def]
        rng = random.Random(seed)

        def work() -> str:
            with self.lock:
                self.attempts += 1
            if rng.random() < failure_rate:
                raise ConnectionError("flaky")
            return "ok"

        return work


def run_threads(target, count: int) -> None:  # type: ignore[no-untyped-def]
    barrier = threading.Barrier(count)

    def start(index: int) -> None:
        barrier.wait()
        target(index)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive()


def test_threads_never_exceed_the_budget(events: CapturedEvents) -> None:
    clock = FrozenClock()
    budget = RetryBudget(ratio=RATIO, min_retries_per_window=FLOOR, window=60, clock=clock)
    learner = SuccessRateLearner(success_rate_threshold=0.0, min_samples=1, window=10_000)
    retry = Retry(
        on=ConnectionError,
        attempts=4,
        timeout=None,
        backoff=fixed(0.5),
        budget=budget,
        learner=learner,
        name="stress",
        clock=clock,
        sleep=lambda s: None,
    )
    counting = Counting()
    outcomes = {"ok": 0, "failed": 0}
    outcome_lock = threading.Lock()

    def worker(index: int) -> None:
        work = counting.make(index)
        for _ in range(CALLS_PER_THREAD):
            try:
                retry.call(work)
                key = "ok"
            except ConnectionError:
                key = "failed"
            with outcome_lock:
                outcomes[key] += 1

    run_threads(worker, THREADS)

    calls = THREADS * CALLS_PER_THREAD
    stats = budget.stats()
    assert stats.calls == calls
    assert outcomes["ok"] + outcomes["failed"] == calls
    # Every attempt beyond a call's first is a retry the budget granted, and no more.
    assert counting.attempts - calls == stats.retries
    assert stats.retries <= math.floor(RATIO * calls) + FLOOR
    assert stats.rejected > 0  # half the calls fail: the budget ran dry
    # The learner heard once per call that retried and then succeeded or ran out of attempts.
    (row,) = learner.stats()
    assert row.error_type is ErrorType.COMMUNICATION_ERROR
    assert 0 < row.samples <= stats.retries
    # One event per granted retry, one per give-up.
    attempts_events = [
        e for e in events.of_type(EventType.RETRY) if not e.attributes.get("giving_up")
    ]
    assert len(attempts_events) == stats.retries
    give_ups = [e for e in events.of_type(EventType.RETRY) if e.attributes.get("giving_up")]
    assert len(give_ups) == outcomes["failed"]


def test_threads_on_the_budget_alone_count_exactly() -> None:
    budget = RetryBudget(ratio=0.5, min_retries_per_window=0, clock=FrozenClock())
    granted = [0] * THREADS

    def worker(index: int) -> None:
        for _ in range(500):
            budget.record_call()
            if budget.try_acquire():
                granted[index] += 1
            budget.try_acquire()

    run_threads(worker, THREADS)
    stats = budget.stats()
    assert stats.calls == THREADS * 500
    assert sum(granted) <= stats.retries <= stats.allowed == THREADS * 250
    assert stats.retries + stats.rejected == THREADS * 1_000


def test_threads_share_a_learner_safely() -> None:
    learner = SuccessRateLearner(min_samples=1, window=100_000)

    def worker(index: int) -> None:
        for i in range(2_000):
            learner.record(f"op{index % 2}", ErrorType.TIMEOUT_ERROR, i % 4 == 0)
            learner.should_retry(f"op{index % 2}", ErrorType.TIMEOUT_ERROR)

    run_threads(worker, THREADS)
    rows = learner.stats()
    assert [row.samples for row in rows] == [THREADS // 2 * 2_000] * 2
    assert all(row.success_rate == 0.25 for row in rows)


@async_test
async def test_tasks_never_exceed_the_budget() -> None:
    clock = FrozenClock()
    budget = RetryBudget(ratio=RATIO, min_retries_per_window=FLOOR, window=60, clock=clock)
    attempts = 0

    async def yield_only(seconds: float) -> None:
        await asyncio.sleep(0)  # let the other tasks run; time itself stands still

    retry = Retry(
        on=ConnectionError,
        attempts=4,
        timeout=None,
        backoff=fixed(1),
        budget=budget,
        clock=clock,
        async_sleep=yield_only,
    )

    def make(seed: int):  # type: ignore[no-untyped-def]
        rng = random.Random(seed)

        async def work() -> str:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(0)
            if rng.random() < 0.5:
                raise ConnectionError("flaky")
            return "ok"

        return work

    async def caller(seed: int) -> int:
        work = make(seed)
        done = 0
        for _ in range(20):
            with contextlib.suppress(ConnectionError):
                await retry.acall(work)
            done += 1
        return done

    done = await asyncio.gather(*(caller(seed) for seed in range(50)))
    calls = sum(done)
    stats = budget.stats()
    assert calls == stats.calls == 1_000
    assert attempts - calls == stats.retries
    assert stats.retries <= math.floor(RATIO * calls) + FLOOR
    assert stats.rejected > 0
