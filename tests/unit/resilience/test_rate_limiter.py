from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from fractions import Fraction
from typing import Any

import pytest
from _policy_events import CapturedEvents, async_test, doc_contains_example, run_example
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from agentkeel import ConfigurationError
from agentkeel.resilience._errors import RateLimitExceededError
from agentkeel.resilience._rate_limiter import RateLimiter, TokenBucket


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


class FakeClock:
    """A clock that moves only when told; ``sleep`` moves it (and records the nap)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.naps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self.now

    def wall(self) -> float:
        return self.monotonic()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.advance(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)


def limiter(clock: FakeClock, *args: Any, **kwargs: Any) -> RateLimiter:
    return RateLimiter(
        *args, clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **kwargs
    )


# ---------------------------------------------------------------------- token bucket
def test_bucket_starts_full_refills_at_its_rate_and_caps_at_capacity() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3.0, now=0.0)
    assert [bucket.try_acquire(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_acquire(0.0) == 0.5  # one token every half second
    assert bucket.try_acquire(0.25) == 0.25  # nothing taken by asking
    assert bucket.try_acquire(0.5) == 0.0
    assert bucket.available(100.0) == 3.0
    assert bucket.try_acquire(100.0, 2) == 0.0
    assert bucket.try_acquire(100.0, 2) == 0.5


def test_bucket_reservations_queue_up_and_only_the_latest_is_refundable() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == 1.0
    first = bucket.ticket
    assert bucket.reserve(0.0) == 2.0
    second = bucket.ticket
    assert not bucket.refund(0.5, 1.0, first)  # a later reservation counted on it
    assert bucket.refund(0.5, 1.0, second)
    assert bucket.available(0.5) == -0.5
    assert bucket.reserve(0.5) == 1.5  # due at 2.0, as the refunded one was


def test_a_clock_stepping_back_is_treated_as_standing_still() -> None:
    bucket = TokenBucket(rate=1.0, capacity=1.0, now=10.0, tokens=0.0)
    assert bucket.try_acquire(5.0) == 1.0
    assert bucket.try_acquire(11.0) == 0.0


# ---------------------------------------------------------------------- state machine
class BucketMachine(RuleBasedStateMachine):
    """The float bucket against an exact model, and the promise that matters: in any
    window of time, grants never exceed ``capacity + rate * length``.

    Rates are powers of two and times multiples of 1/8, so the floats are exact and
    must agree with the Fractions to the last bit.
    """

    @initialize(
        rate=st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]),
        capacity=st.sampled_from([1, 2, 3, 5]),
    )
    def setup(self, rate: float, capacity: int) -> None:
        self.bucket = TokenBucket(rate=rate, capacity=capacity, now=0.0)
        self.rate = Fraction(rate)
        self.capacity = Fraction(capacity)
        self.now = Fraction(0)
        self.tokens = Fraction(capacity)
        self.updated = Fraction(0)
        self.ticket = 0
        # (time the tokens may be used, how many, ticket) for every take
        self.grants: list[tuple[Fraction, int, int]] = []

    def refill(self) -> None:
        self.tokens = min(self.capacity, self.tokens + (self.now - self.updated) * self.rate)
        self.updated = self.now

    @rule(eighths=st.integers(0, 40))
    def advance(self, eighths: int) -> None:
        self.now += Fraction(eighths, 8)

    @rule(n=st.integers(1, 2))
    def try_acquire(self, n: int) -> None:
        n = min(n, int(self.capacity))
        got = self.bucket.try_acquire(float(self.now), n)
        self.refill()
        if self.tokens >= n:
            self.tokens -= n
            self.ticket += 1
            self.grants.append((self.now, n, self.ticket))
            assert got == 0.0
        else:
            assert got == float((n - self.tokens) / self.rate)

    @rule(n=st.integers(1, 2))
    def reserve(self, n: int) -> None:
        n = min(n, int(self.capacity))
        wait = self.bucket.reserve(float(self.now), n)
        self.refill()
        self.tokens -= n
        self.ticket += 1
        expected = Fraction(0) if self.tokens >= 0 else -self.tokens / self.rate
        assert wait == float(expected)
        self.grants.append((self.now + expected, n, self.ticket))

    @precondition(lambda self: bool(self.grants))
    @rule()
    def refund_latest(self) -> None:
        due, n, ticket = self.grants[-1]
        honoured = self.bucket.refund(float(self.now), n, ticket)
        self.refill()
        assert honoured == (ticket == self.ticket and self.tokens < 0)
        if honoured:
            assert due > self.now
            self.tokens += n
            self.grants.pop()

    @invariant()
    def agrees_with_the_model(self) -> None:
        if hasattr(self, "bucket"):
            assert self.bucket.available(float(self.now)) == float(
                min(self.capacity, self.tokens + (self.now - self.updated) * self.rate)
            )

    @invariant()
    def never_grants_more_than_the_rate_allows(self) -> None:
        if not hasattr(self, "grants"):
            return
        grants = sorted(self.grants)
        for i, (start, _, _) in enumerate(grants):
            total = 0
            for end, n, _ in grants[i:]:
                total += n
                assert total <= self.capacity + self.rate * (end - start)


TestBucketMachine = BucketMachine.TestCase
TestBucketMachine.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)


# ---------------------------------------------------------------------- limiter
def test_a_burst_then_refusal_with_retry_after(events: CapturedEvents) -> None:
    clock = FakeClock()
    limits = limiter(clock, 10, per=60, name="llm")  # 10 a minute, burst 10
    for _ in range(10):
        limits.acquire()
    with pytest.raises(RateLimitExceededError) as caught:
        limits.acquire()
    assert caught.value.name == "llm"
    assert caught.value.retry_after == pytest.approx(6.0)
    clock.advance(6.0)
    limits.acquire()
    stats = limits.stats()
    assert (stats.granted, stats.waited, stats.rejected) == (11, 0, 1)
    assert stats.rate_per_second == pytest.approx(1 / 6)
    (event,) = events.of_type("ratelimit.rejected")
    assert event.name == "llm"
    assert event.category == "rate_limit"
    assert event.attributes["retry_after_s"] == pytest.approx(6.0)


def test_calls_wait_up_to_max_wait_in_turn() -> None:
    clock = FakeClock()
    limits = limiter(clock, 2, burst=1, max_wait=1.0)  # one token every half second
    calls = [limits.call(lambda i=i: i) for i in range(3)]
    assert calls == [0, 1, 2]
    assert clock.naps == [0.5, 0.5]
    clock.naps.clear()
    limits.acquire()  # reserved: due in 0.5 s
    assert clock.naps == [0.5]
    assert limits.stats().waited == 3


def test_a_wait_longer_than_max_wait_is_refused_without_sleeping() -> None:
    clock = FakeClock()
    limits = limiter(clock, 1, max_wait=0.5)
    limits.acquire()
    with pytest.raises(RateLimitExceededError, match=r"next call allowed in 1\.000 s"):
        limits.acquire()
    assert clock.naps == []


def test_try_acquire_and_multi_token_requests() -> None:
    clock = FakeClock()
    limits = limiter(clock, 5, burst=5)
    assert limits.try_acquire(3)
    assert not limits.try_acquire(3)
    assert limits.try_acquire(2)
    with pytest.raises(ConfigurationError, match="can never be granted"):
        limits.acquire(6)
    with pytest.raises(ConfigurationError, match="tokens"):
        limits.try_acquire(0)


def test_context_managers_and_decorators() -> None:
    clock = FakeClock()
    limits = limiter(clock, 2)

    @limits
    def tool(x: int) -> int:
        return x

    with limits:
        pass
    assert tool(1) == 1
    with pytest.raises(RateLimitExceededError, match="'tool'"):
        tool(2)

    async def main() -> None:
        clock.advance(10)
        async with limits:
            pass

        @limits
        async def atool(x: int) -> int:
            return x

        assert await atool(3) == 3
        with pytest.raises(RateLimitExceededError, match="'atool'"):
            await atool(4)

    asyncio.run(main())


@async_test
async def test_async_waits_with_async_sleep_and_a_cancelled_waiter_returns_its_token() -> None:
    clock = FakeClock()
    started = asyncio.Event()
    gate = asyncio.Event()

    async def stuck_sleep(seconds: float) -> None:
        started.set()
        await gate.wait()  # cancelled while "sleeping"

    limits = RateLimiter(
        1, burst=1, max_wait=5, clock=clock, sleep=clock.sleep, async_sleep=stuck_sleep
    )
    await limits.aacquire()
    waiter = asyncio.create_task(limits.aacquire())
    await started.wait()
    assert limits.stats().available == -1.0
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limits.stats().available == 0.0  # the reserved token came back
    assert limits.stats().granted == 1

    fast = limiter(clock, 4, burst=1, max_wait=1)
    await fast.aacquire()
    await fast.aacquire()
    assert clock.naps == [0.25]


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0,), {}),
        ((-1,), {}),
        ((float("nan"),), {}),
        ((float("inf"),), {}),
        ((True,), {}),
        ((1, 0), {}),
        ((1, -1), {}),
        ((1,), {"burst": 0.5}),
        ((1,), {"burst": 0}),
        ((1,), {"max_wait": -1}),
        ((1,), {"name": ""}),
    ],
)
def test_invalid_settings_are_refused(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(*args, **kwargs)


def test_durations_accept_timedelta_and_burst_defaults_to_the_rate() -> None:
    limits = RateLimiter(30, per=timedelta(minutes=1), max_wait=timedelta(seconds=2))
    assert (limits.per, limits.burst, limits.max_wait) == (60.0, 30.0, 2.0)
    assert RateLimiter(0.5).burst == 1.0


# ---------------------------------------------------------------------- stress
def test_threads_never_get_more_than_burst_plus_rate_times_elapsed() -> None:
    rate, burst = 200.0, 5.0
    limits = RateLimiter(rate, burst=burst, max_wait=0.02)
    granted = 0
    lock = threading.Lock()
    stop = time.monotonic() + 0.3

    def worker() -> None:
        nonlocal granted
        while time.monotonic() < stop:
            try:
                limits.acquire()
            except RateLimitExceededError as refused:
                # Back off as told, as a caller should; spinning threads would starve the
                # sleeping waiters of the GIL on a busy machine.
                time.sleep(min(refused.retry_after, 0.01))
                continue
            with lock:
                granted += 1

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    elapsed = time.monotonic() - started
    assert granted <= burst + rate * elapsed
    # And it lets calls through past the burst: the bucket refills. (How many depends on
    # how busy the machine is, so only the refill itself is asserted.)
    assert granted > burst


def test_with_a_fake_clock_grants_stay_within_the_bound_at_every_step() -> None:
    clock = FakeClock()
    rate, burst = 50.0, 3.0
    limits = RateLimiter(rate, burst=burst, clock=clock)
    start = clock.monotonic()
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            limits.try_acquire()
            time.sleep(0)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(100):
            clock.advance(0.003)
            time.sleep(0.0005)
            # Every grant so far was decided at a time <= now: the bound holds now.
            now = clock.monotonic()
            assert limits.stats().granted <= burst + rate * (now - start) + 1e-9
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert limits.stats().granted > burst  # and it does refill


@async_test
async def test_async_tasks_never_get_more_than_burst_plus_rate_times_elapsed() -> None:
    rate, burst = 400.0, 4.0
    limits = RateLimiter(rate, burst=burst, max_wait=1.0)
    started = time.monotonic()
    granted_at: list[float] = []

    async def one() -> None:
        await limits.aacquire()
        granted_at.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(60)))
    elapsed = time.monotonic() - started
    assert len(granted_at) == 60
    assert burst + rate * elapsed >= 60
    assert elapsed >= (60 - burst) / rate * 0.9  # the waiters really were spaced out


# ---------------------------------------------------------------------- docs
def test_the_documented_example_runs() -> None:
    out = run_example("resilience_rate_limiter.py")
    assert "refused" in out
    assert doc_contains_example("rate-limiter.md", "resilience_rate_limiter.py")
