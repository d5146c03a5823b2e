from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from _policy_events import (
    CapturedEvents,
    async_test,
    doc_contains_example,
    run_example,
    wait_until,
)
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agentkeel import ConfigurationError
from agentkeel.resilience._bulkhead import Bulkhead, _Slots, _Waiter
from agentkeel.resilience._errors import BulkheadFullError


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


class Gauge:
    """Counts calls inside the bulkhead and remembers the most at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


def hold(bulkhead: Bulkhead, gate: threading.Event, started: threading.Semaphore) -> None:
    def work() -> None:
        started.release()
        gate.wait(5)

    bulkhead.call(work)


# ---------------------------------------------------------------------- sync
def test_a_full_bulkhead_refuses_at_once_and_says_why(events: CapturedEvents) -> None:
    bulkhead = Bulkhead(2, name="search")
    gate, started = threading.Event(), threading.Semaphore(0)
    holders = [threading.Thread(target=hold, args=(bulkhead, gate, started)) for _ in range(2)]
    for t in holders:
        t.start()
    for _ in holders:
        assert started.acquire(timeout=2)
    assert bulkhead.active == 2

    with pytest.raises(BulkheadFullError, match="'search' is full: 2 of 2"):
        bulkhead.call(lambda: None)
    gate.set()
    for t in holders:
        t.join(2)
    stats = bulkhead.stats()
    assert (stats.active, stats.waiting, stats.accepted, stats.rejected) == (0, 0, 2, 1)
    (event,) = events.of_type("bulkhead.rejected")
    assert event.name == "search"
    assert event.attributes == {"max_concurrent": 2, "max_wait_s": 0.0}


def test_a_waiting_call_gets_the_slot_freed_within_max_wait() -> None:
    bulkhead = Bulkhead(1, max_wait=2)
    gate, started = threading.Event(), threading.Semaphore(0)
    holder = threading.Thread(target=hold, args=(bulkhead, gate, started))
    holder.start()
    assert started.acquire(timeout=2)
    threading.Timer(0.05, gate.set).start()
    assert bulkhead.call(lambda: "mine") == "mine"
    holder.join(2)
    assert bulkhead.stats().rejected == 0


def test_a_wait_that_runs_out_is_refused() -> None:
    bulkhead = Bulkhead(1, max_wait=timedelta(milliseconds=50))
    gate, started = threading.Event(), threading.Semaphore(0)
    holder = threading.Thread(target=hold, args=(bulkhead, gate, started))
    holder.start()
    assert started.acquire(timeout=2)
    started_at = time.monotonic()
    with pytest.raises(BulkheadFullError, match=r"none freed within 0\.05 s"):
        bulkhead.call(lambda: None)
    assert 0.04 < time.monotonic() - started_at < 1
    gate.set()
    holder.join(2)
    assert bulkhead.stats().waiting == 0
    assert bulkhead.call(lambda: 1) == 1


def test_waiters_are_served_in_order() -> None:
    bulkhead = Bulkhead(1, max_wait=5)
    order: list[int] = []
    bulkhead.__enter__()
    threads = []
    for i in range(5):
        t = threading.Thread(target=bulkhead.call, args=(order.append, i))
        t.start()
        threads.append(t)
        assert wait_until(lambda n=i: bulkhead.stats().waiting == n + 1)
    bulkhead.__exit__(None, None, None)
    for t in threads:
        t.join(2)
    assert order == [0, 1, 2, 3, 4]


def test_context_manager_and_errors_release_the_slot() -> None:
    bulkhead = Bulkhead(1)
    with bulkhead:
        assert bulkhead.active == 1
        with pytest.raises(BulkheadFullError), bulkhead:
            pass
    assert bulkhead.active == 0

    def fails() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        bulkhead.call(fails)
    assert bulkhead.active == 0
    with pytest.raises(RuntimeError, match="released more times"):
        bulkhead.__exit__(None, None, None)


# ---------------------------------------------------------------------- async
@async_test
async def test_async_calls_share_the_limit_and_wait_in_order() -> None:
    bulkhead = Bulkhead(2, max_wait=2)
    gauge = Gauge()
    order: list[int] = []

    async def work(i: int) -> int:
        with gauge:
            order.append(i)
            await asyncio.sleep(0.005)
        return i

    results = await asyncio.gather(*(bulkhead.acall(work, i) for i in range(10)))
    assert results == list(range(10))
    assert gauge.peak == 2
    assert order == list(range(10))


@async_test
async def test_async_full_bulkhead_refuses_and_async_with_works(events: CapturedEvents) -> None:
    bulkhead = Bulkhead(1, max_wait=0.02)
    async with bulkhead:
        with pytest.raises(BulkheadFullError):
            async with bulkhead:
                pass
        with pytest.raises(BulkheadFullError):
            await bulkhead.acall(asyncio.sleep, 0)
    assert bulkhead.active == 0
    assert len(events.of_type("bulkhead.rejected")) == 2


@async_test
async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    bulkhead = Bulkhead(1, max_wait=5)
    await bulkhead.__aenter__()
    waiter = asyncio.create_task(bulkhead.acall(asyncio.sleep, 0))
    await asyncio.sleep(0.01)
    assert bulkhead.stats().waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await bulkhead.__aexit__(None, None, None)
    assert bulkhead.stats().active == 0
    assert bulkhead.stats().waiting == 0


@async_test
async def test_a_slot_granted_to_a_cancelled_waiter_is_passed_on() -> None:
    bulkhead = Bulkhead(1, max_wait=5)
    await bulkhead.__aenter__()
    first = asyncio.create_task(bulkhead.acall(asyncio.sleep, 0, "first"))
    second = asyncio.create_task(bulkhead.acall(asyncio.sleep, 0, "second"))
    await asyncio.sleep(0.01)
    await bulkhead.__aexit__(None, None, None)  # grants the slot to `first` ...
    first.cancel()  # ... which is cancelled before it can run
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "second"
    assert bulkhead.active == 0


def test_threads_and_event_loops_share_one_limit() -> None:
    bulkhead = Bulkhead(1, max_wait=5)
    got_it = threading.Event()
    bulkhead.__enter__()  # a thread holds the only slot

    def loop_in_thread() -> None:
        async def main() -> None:
            async with bulkhead:
                got_it.set()

        asyncio.run(main())

    t = threading.Thread(target=loop_in_thread)
    t.start()
    assert wait_until(lambda: bulkhead.stats().waiting == 1)
    assert not got_it.is_set()
    bulkhead.__exit__(None, None, None)  # released from this thread, wakes that loop
    t.join(2)
    assert got_it.is_set()
    assert bulkhead.active == 0


# ---------------------------------------------------------------------- stress
def test_threads_never_exceed_the_limit_under_contention() -> None:
    bulkhead = Bulkhead(3, max_wait=10)
    gauge = Gauge()

    def work() -> None:
        with gauge:
            time.sleep(0)

    def worker() -> None:
        for _ in range(200):
            bulkhead.call(work)

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    stats = bulkhead.stats()
    assert gauge.peak <= 3
    assert (stats.accepted, stats.rejected, stats.active, stats.waiting) == (2400, 0, 0, 0)


def test_mixed_threads_and_loops_never_exceed_the_limit() -> None:
    bulkhead = Bulkhead(2, max_wait=10)
    gauge = Gauge()

    def sync_worker() -> None:
        for _ in range(100):
            with bulkhead, gauge:
                time.sleep(0)

    def async_worker() -> None:
        async def one() -> None:
            async with bulkhead:
                with gauge:
                    await asyncio.sleep(0)

        async def main() -> None:
            await asyncio.gather(*(one() for _ in range(100)))

        asyncio.run(main())

    threads = [threading.Thread(target=sync_worker) for _ in range(3)]
    threads += [threading.Thread(target=async_worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert gauge.peak <= 2
    stats = bulkhead.stats()
    assert (stats.accepted, stats.rejected, stats.active, stats.waiting) == (600, 0, 0, 0)


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0,), {}),
        ((-1,), {}),
        ((1.5,), {}),
        ((True,), {}),
        ((1,), {"max_wait": -1}),
        ((1,), {"max_wait": float("inf")}),
        ((1,), {"name": ""}),
    ],
)
def test_invalid_settings_are_refused(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Bulkhead(*args, **kwargs)


# ---------------------------------------------------------------------- state machine
class SlotsMachine(RuleBasedStateMachine):
    """The counting core against a model: holders, a FIFO of waiters, nothing lost."""

    def __init__(self) -> None:
        super().__init__()
        self.slots = _Slots(3)
        self.holders = 0
        self.queue: list[_Waiter] = []

    @rule()
    def enter(self) -> None:
        entered = self.slots.try_enter()
        assert entered == (self.holders < 3)
        if entered:
            self.holders += 1
        else:
            waiter = _Waiter()
            self.slots.wait(waiter)
            self.queue.append(waiter)

    @precondition(lambda self: self.holders > 0)
    @rule()
    def release(self) -> None:
        granted = self.slots.release()
        if self.queue:
            assert granted is self.queue.pop(0)
            assert granted.granted
        else:
            assert granted is None
            self.holders -= 1

    @precondition(lambda self: bool(self.queue))
    @rule(data=st.data())
    def give_up(self, data: st.DataObject) -> None:
        waiter = data.draw(st.sampled_from(self.queue))
        assert self.slots.withdraw(waiter)
        self.queue.remove(waiter)

    @invariant()
    def matches_the_model(self) -> None:
        assert self.slots.active == self.holders <= 3
        assert list(self.slots.waiters) == self.queue
        if self.queue:
            assert self.slots.active == 3  # nobody waits while a slot is free


TestSlotsMachine = SlotsMachine.TestCase
TestSlotsMachine.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)


# ---------------------------------------------------------------------- docs
def test_the_documented_example_runs() -> None:
    out = run_example("resilience_bulkhead.py")
    assert "refused" in out
    assert doc_contains_example("bulkhead.md", "resilience_bulkhead.py")
