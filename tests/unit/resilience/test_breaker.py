"""CircuitBreaker: the behaviour users rely on, driven by a fake clock."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pytest
from fake_clock import FakeClock

import agentkeel
from agentkeel import ConfigurationError, EventType, Severity
from agentkeel.events import Event
from agentkeel.resilience._breaker import CircuitBreaker
from agentkeel.resilience._breaker_config import CircuitBreakerConfig
from agentkeel.resilience._breaker_machine import CircuitState
from agentkeel.resilience._breaker_resources import ResourceGuard
from agentkeel.resilience._errors import CircuitOpenError


class Captured:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, batch: Sequence[Event], /) -> None:
        with self.lock:
            self.events.extend(batch)

    def of(self, event_type: str) -> list[Event]:
        assert agentkeel.flush(timeout=5)
        with self.lock:
            return [e for e in self.events if e.type == event_type]


@pytest.fixture
def events() -> Iterator[Captured]:
    captured = Captured()
    agentkeel.configure(store="none", sinks=[captured])
    return captured


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def ok(value: Any = "ok") -> Any:
    return value


def boom() -> None:
    raise ConnectionError("down")


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(ConnectionError):
            breaker.call(boom)


def make(clock: FakeClock, **settings: Any) -> CircuitBreaker:
    return CircuitBreaker("svc", CircuitBreakerConfig(**settings), clock=clock)


# ---------------------------------------------------------------------- closed → open
def test_opens_once_the_failure_rate_reaches_the_threshold(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=4, window_size=10, failure_rate_threshold=0.5)
    breaker.call(ok)
    fail(breaker)
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)  # 4 calls, 2 failed: 50 % >= 50 %
    assert breaker.state is CircuitState.OPEN


def test_no_verdict_before_minimum_calls(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=5, window_size=10)
    fail(breaker, 4)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_a_success_that_fills_the_window_to_minimum_calls_can_open_it(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=4, failure_rate_threshold=0.75)
    fail(breaker, 3)
    breaker.call(ok)  # 3 of 4 failed
    assert breaker.state is CircuitState.OPEN


def test_count_window_forgets_the_oldest_calls(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=3, window_size=3, failure_rate_threshold=1.0)
    fail(breaker, 2)
    breaker.call(ok)
    fail(breaker, 2)  # window: ok, fail, fail
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)  # window: fail, fail, fail
    assert breaker.state is CircuitState.OPEN


def test_failure_threshold_is_consecutive_failures(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=3)
    fail(breaker, 2)
    breaker.call(ok)
    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_time_window_counts_only_the_last_seconds(clock: FakeClock) -> None:
    breaker = make(
        clock, sliding_window="time", window_size=10, minimum_calls=3, failure_rate_threshold=0.75
    )
    fail(breaker, 2)
    clock.advance(11)  # those two fall out of the window
    fail(breaker, 2)
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_status()["metrics"]["window_calls"] == 3
    fail(breaker)  # 3 of the 4 in the window failed
    assert breaker.state is CircuitState.OPEN


def test_slow_calls_open_the_breaker_at_the_slow_call_rate(clock: FakeClock) -> None:
    breaker = make(clock, minimum_calls=2, slow_call_duration=1.0, slow_call_rate_threshold=0.5)

    def slow() -> str:
        clock.advance(1.5)
        return "late"

    breaker.call(ok)
    assert breaker.call(slow) == "late"  # the result still comes back
    status = breaker.get_status()
    assert status["state"] == "open"
    assert status["reason"] == "slow_call_rate"
    assert status["metrics"]["slow_calls"] == 1
    assert status["metrics"]["slow_call_rate"] == 0.5


def test_timeout_records_a_late_success_as_a_failure(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, timeout=1.0)

    def late() -> str:
        clock.advance(2)
        return "done"

    assert breaker.call(late) == "done"
    assert breaker.call(late) == "done"
    assert breaker.state is CircuitState.OPEN
    assert breaker.get_status()["metrics"]["failed_calls"] == 2


# ---------------------------------------------------------------------- exceptions
def test_ignored_exceptions_do_not_count_and_pass_through(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, ignore_exceptions=(KeyError,))
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert breaker.state is CircuitState.CLOSED
    metrics = breaker.get_status()["metrics"]
    assert metrics["ignored_calls"] == 1
    assert metrics["total_calls"] == 0


def test_exceptions_outside_record_exceptions_count_as_successes(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, record_exceptions=(ConnectionError,))

    def bad_input() -> None:
        raise ValueError("the caller's fault")

    with pytest.raises(ValueError, match="caller's fault"):
        breaker.call(bad_input)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_status()["metrics"]["successful_calls"] == 1
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_ignore_wins_over_record(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=1,
        record_exceptions=(OSError,),
        ignore_exceptions=(FileNotFoundError,),
    )

    def missing() -> None:
        raise FileNotFoundError("x")

    with pytest.raises(FileNotFoundError):
        breaker.call(missing)
    assert breaker.state is CircuitState.CLOSED


def test_cancellation_is_not_counted(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(breaker.acall(cancelled))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_status()["metrics"]["ignored_calls"] == 1


# ---------------------------------------------------------------------- open → half-open → ?
def test_open_breaker_rejects_with_retry_after(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, wait_in_open=30)
    fail(breaker)
    clock.advance(10)
    calls: list[int] = []
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(calls.append, 1)
    assert calls == []  # the call was not attempted
    assert info.value.retry_after == pytest.approx(20)
    assert info.value.name == "svc"
    assert "20.00 s" in str(info.value)
    assert breaker.get_status()["metrics"]["rejected_calls"] == 1
    assert breaker.get_status()["retry_after"] == pytest.approx(20)


def test_half_open_admits_the_quota_then_closes_on_success(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, wait_in_open=5, half_open_max_calls=2)
    fail(breaker)
    clock.advance(5)
    assert breaker.state is CircuitState.HALF_OPEN
    # Two trial calls still running; a third is refused.
    with breaker, breaker, pytest.raises(CircuitOpenError, match="half-open") as info:
        breaker.call(ok)
    assert info.value.retry_after == 0.0
    assert breaker.state is CircuitState.CLOSED


def test_half_open_reopens_when_success_threshold_is_out_of_reach(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, wait_in_open=5, half_open_max_calls=3, success_threshold=2
    )
    fail(breaker)
    clock.advance(5)
    fail(breaker)  # one bad trial: 2 successes still possible
    assert breaker.state is CircuitState.HALF_OPEN
    fail(breaker)  # two bad: no longer
    assert breaker.state is CircuitState.OPEN
    status = breaker.get_status()
    assert status["reason"] == "half_open_failures"
    assert status["retry_after"] == pytest.approx(5)


def test_default_success_threshold_needs_every_trial(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, wait_in_open=1, half_open_max_calls=3)
    fail(breaker)
    clock.advance(1)
    breaker.call(ok)
    breaker.call(ok)
    assert breaker.state is CircuitState.HALF_OPEN
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_slow_trial_call_does_not_prove_recovery(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, wait_in_open=1, half_open_max_calls=1, slow_call_duration=0.5
    )
    fail(breaker)
    clock.advance(1)

    def slow() -> None:
        clock.advance(1)

    breaker.call(slow)
    assert breaker.state is CircuitState.OPEN


def test_ignored_trial_gives_its_slot_back(clock: FakeClock) -> None:
    breaker = make(
        clock,
        failure_threshold=1,
        wait_in_open=1,
        half_open_max_calls=1,
        ignore_exceptions=KeyError,
    )
    fail(breaker)
    clock.advance(1)
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["x"])
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.call(ok)  # the slot is free again
    assert breaker.state is CircuitState.CLOSED


def test_stuck_half_open_reopens_after_max_wait(clock: FakeClock) -> None:
    breaker = make(
        clock, failure_threshold=1, wait_in_open=1, half_open_max_calls=1, max_wait_in_half_open=10
    )
    fail(breaker)
    clock.advance(1)
    breaker.__enter__()  # a trial call that hangs
    clock.advance(10)
    assert breaker.state is CircuitState.OPEN
    assert breaker.get_status()["reason"] == "half_open_timeout"
    breaker.__exit__(None, None, None)  # when it does come back, it is only counted
    assert breaker.state is CircuitState.OPEN


def test_a_call_admitted_before_the_breaker_opened_cannot_sway_half_open(
    clock: FakeClock,
) -> None:
    breaker = make(clock, failure_threshold=1, wait_in_open=1, half_open_max_calls=1)
    with breaker:  # admitted while closed, still running when the breaker opens and heals
        fail(breaker)
        clock.advance(1)
        assert breaker.state is CircuitState.HALF_OPEN
    # Its success was counted, but it was no trial call: still half-open.
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.get_status()["metrics"]["successful_calls"] == 1


# ---------------------------------------------------------------------- the other forms
def test_decorator_keeps_the_signature_and_guards_sync_and_async(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)

    @breaker
    def add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    @breaker
    async def aadd(a: int) -> int:
        return a + 1

    assert add(1, b=2) == 3
    assert add.__name__ == "add"
    assert add.__doc__ == "Adds."
    assert asyncio.run(aadd(1)) == 2
    assert breaker.get_status()["metrics"]["successful_calls"] == 2


def test_acall_records_failures_and_rejects_when_open(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)

    async def aboom() -> None:
        raise TimeoutError("slow service")

    async def scenario() -> None:
        for _ in range(2):
            with pytest.raises(TimeoutError):
                await breaker.acall(aboom)
        with pytest.raises(CircuitOpenError):
            await breaker.acall(asyncio.sleep, 0)

    asyncio.run(scenario())


def test_context_manager_records_the_block(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2)
    with breaker:
        pass
    for _ in range(2):
        with pytest.raises(ConnectionError), breaker:
            raise ConnectionError("x")
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError), breaker:
        pytest.fail("an open breaker must not run the block")


def test_async_context_manager(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)

    async def scenario() -> None:
        async with breaker:
            await asyncio.sleep(0)
        with pytest.raises(ConnectionError):
            async with breaker:
                raise ConnectionError

    asyncio.run(scenario())
    assert breaker.state is CircuitState.OPEN


def test_context_manager_blocks_in_concurrent_tasks_settle_their_own_permits() -> None:
    clock = FakeClock()
    breaker = make(clock, minimum_calls=100)
    started = 0

    async def block(i: int) -> None:
        nonlocal started
        with pytest.raises(ConnectionError) if i % 2 else _nothing():
            async with breaker:
                started += 1
                await asyncio.sleep(0.001 * (10 - i))
                if i % 2:
                    raise ConnectionError

    async def scenario() -> None:
        await asyncio.gather(*(block(i) for i in range(10)))

    asyncio.run(scenario())
    metrics = breaker.get_status()["metrics"]
    assert (metrics["successful_calls"], metrics["failed_calls"]) == (5, 5)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_exit_without_enter_is_a_clear_error(clock: FakeClock) -> None:
    breaker = make(clock)
    with pytest.raises(RuntimeError, match="without a matching __enter__"):
        breaker.__exit__(None, None, None)


def test_record_success_and_failure_by_hand(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=2, wait_in_open=3, half_open_max_calls=1)
    breaker.record_failure()
    breaker.record_failure(KeyError("ignored? no: recorded by default"))
    assert breaker.state is CircuitState.OPEN
    clock.advance(3)
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_record_failure_applies_the_exception_lists(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1, ignore_exceptions=KeyError)
    breaker.record_failure(KeyError("x"))
    assert breaker.state is CircuitState.CLOSED
    assert breaker.get_status()["metrics"]["ignored_calls"] == 1


# ---------------------------------------------------------------------- status, reset, force
def test_get_status_has_the_fields_seed_users_read(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=4)
    breaker.call(ok)
    fail(breaker)
    status = breaker.get_status()
    assert status["name"] == "svc"
    assert status["state"] == "closed"
    metrics = status["metrics"]
    assert metrics["total_calls"] == 2
    assert metrics["failed_calls"] == 1
    assert metrics["successful_calls"] == 1
    assert metrics["failure_rate"] == 0.5
    assert f"{(1 - metrics['failure_rate']) * 100:.1f}%" == "50.0%"
    changed = datetime.fromisoformat(status["last_state_change"])
    assert changed.timestamp() == pytest.approx(clock.wall())
    assert status["last_state_change_ts"] == pytest.approx(clock.wall())
    assert status["config"]["window_size"] == 4
    assert status["shared"] is False


def test_last_state_change_moves_with_transitions(clock: FakeClock) -> None:
    breaker = make(clock, failure_threshold=1)
    clock.advance(42)
    fail(breaker)
    assert breaker.get_status()["last_state_change_ts"] == pytest.approx(clock.wall())


def test_reset_closes_and_empties(clock: FakeClock, events: Captured) -> None:
    breaker = make(clock, failure_threshold=1)
    fail(breaker)
    breaker.reset()
    status = breaker.get_status()
    assert status["state"] == "closed"
    assert status["metrics"]["total_calls"] == 0
    assert status["reason"] == "reset"
    closed = events.of(EventType.CIRCUIT_CLOSED)
    assert [e.attributes["reason"] for e in closed] == ["reset"]
    breaker.reset()  # already closed: no second event
    assert len(events.of(EventType.CIRCUIT_CLOSED)) == 1


def test_force_open_until_reset_or_for_a_while(clock: FakeClock) -> None:
    breaker = make(clock)
    breaker.force_open()
    with pytest.raises(CircuitOpenError, match="forced open") as info:
        breaker.call(ok)
    assert math.isinf(info.value.retry_after)
    clock.advance(1e6)
    assert breaker.state is CircuitState.OPEN
    assert breaker.get_status()["forced"] is True
    breaker.reset()
    breaker.force_open(duration=5)
    clock.advance(5)
    assert breaker.state is CircuitState.HALF_OPEN


def test_names_and_configs_are_checked(clock: FakeClock) -> None:
    with pytest.raises(ConfigurationError, match="non-empty name"):
        CircuitBreaker("")
    with pytest.raises(ConfigurationError, match="CircuitBreakerConfig"):
        CircuitBreaker("x", {"failure_threshold": 3})  # type: ignore[arg-type]
    assert "closed" in repr(CircuitBreaker("x"))


# ---------------------------------------------------------------------- events
def test_transitions_are_events(clock: FakeClock, events: Captured) -> None:
    breaker = make(clock, minimum_calls=2, window_size=2, wait_in_open=5, half_open_max_calls=1)
    breaker.call(ok)
    fail(breaker)
    clock.advance(5)
    breaker.call(ok)
    (opened,) = events.of(EventType.CIRCUIT_OPENED)
    assert opened.name == "svc"
    assert opened.severity == Severity.HIGH
    assert opened.attributes["reason"] == "failure_rate"
    assert opened.attributes["failure_rate"] == 0.5
    assert opened.attributes["slow_call_rate"] == 0.0
    assert opened.attributes["calls"] == 2
    assert opened.attributes["retry_after"] == 5
    assert opened.attributes["from_state"] == "closed"
    (half,) = events.of(EventType.CIRCUIT_HALF_OPEN)
    assert half.attributes["reason"] == "wait_elapsed"
    (closed,) = events.of(EventType.CIRCUIT_CLOSED)
    assert closed.attributes["reason"] == "half_open_success"
    assert closed.attributes["calls"] == 1


def test_rejections_are_sampled_into_few_events(clock: FakeClock, events: Captured) -> None:
    breaker = make(clock, failure_threshold=1, wait_in_open=60)
    fail(breaker)
    for _ in range(500):
        with pytest.raises(CircuitOpenError):
            breaker.call(ok)
    clock.advance(1)
    with pytest.raises(CircuitOpenError):
        breaker.call(ok)
    rejected = events.of(EventType.CIRCUIT_REJECTED)
    assert len(rejected) == 2  # one per second, not one per call
    assert sum(e.attributes["rejected"] for e in rejected) == 501
    assert breaker.get_status()["metrics"]["rejected_calls"] == 501


def test_transitions_are_logged(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    breaker = make(clock, failure_threshold=1)
    with caplog.at_level("INFO", logger="agentkeel.resilience.circuit_breaker"):
        fail(breaker)
    assert "'svc': closed -> open (failure_rate" in caplog.text


# ---------------------------------------------------------------------- resources
def test_resource_limits_trip_the_breaker(clock: FakeClock, events: Captured) -> None:
    breaker = make(clock, max_memory_usage=1000, wait_in_open=5)
    assert breaker._resources is not None
    rss = [500]
    breaker._resources = ResourceGuard(max_memory=1000, max_cpu=None, rss=lambda: rss[0])
    breaker.call(ok)
    assert breaker.state is CircuitState.CLOSED
    rss[0] = 5000
    breaker.call(ok)  # sampled at most once a second: not yet
    assert breaker.state is CircuitState.CLOSED
    clock.advance(1)
    breaker.call(ok)
    assert breaker.state is CircuitState.OPEN
    (opened,) = events.of(EventType.CIRCUIT_OPENED)
    assert opened.attributes["reason"] == "resource"
    assert opened.category == "resource"


def test_cpu_limit_measures_cpu_seconds_per_second() -> None:
    cpu = [0.0]
    guard = ResourceGuard(max_memory=None, max_cpu=0.5, cpu_seconds=lambda: cpu[0])
    assert guard.check(0.0) is None  # baseline
    cpu[0] = 0.4
    assert guard.check(1.0) is None  # 0.4 of a core
    cpu[0] = 1.4
    message = guard.check(2.0)
    assert message is not None
    assert "cpu 1.00 of a core > max_cpu_usage 0.5" in message


def test_the_default_memory_reader_reads_this_process() -> None:
    guard = ResourceGuard(max_memory=1, max_cpu=None)
    message = guard.check(0.0)
    assert message is not None
    assert message.startswith("memory ")
