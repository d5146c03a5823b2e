"""Guard: policies composed in the documented order, every attempt tracked."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

import agentkeel
from agentkeel import ConfigurationError, Event
from agentkeel.resilience import (
    Bulkhead,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    Fallback,
    Guard,
    Retry,
    Timeout,
    ToolTimeoutError,
    fixed,
    guard,
)
from agentkeel.tracking import FailureTracker, TrackingSettings


class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, batch: Sequence[Event]) -> None:
        self.events.extend(batch)

    def of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]


@pytest.fixture
def events() -> Events:
    sink = Events()
    agentkeel.configure(store="none", sinks=[sink], flush_interval=0.01)
    return sink


@pytest.fixture
def tracker(tmp_path: Path) -> FailureTracker:
    return FailureTracker(run_id="run-guard", runtime_dir=tmp_path, settings=TrackingSettings())


def no_sleep(_seconds: float) -> None:
    return None


def quick_retry(**kwargs: object) -> Retry:
    options: dict[str, object] = {
        "on": (ConnectionError, TimeoutError, CircuitOpenError),
        "attempts": 3,
        "backoff": fixed(0),
        "jitter": False,
        "sleep": no_sleep,
    }
    options.update(kwargs)
    return Retry(**options)  # type: ignore[arg-type]


class Flaky:
    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, x: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"flaky call {self.calls}")
        return x * 2


def test_retry_then_success_marks_failures_recovered(
    events: Events, tracker: FailureTracker
) -> None:
    tool = Flaky(2)
    g = Guard(name="weather", retry=quick_retry(), tracker=tracker)
    assert g.call(tool, 21) == 42
    assert tool.calls == 3
    assert len(tracker.failures) == 2
    assert all(f.recovered for f in tracker.failures)
    assert {f.recovery_action for f in tracker.failures} == {"retried: attempt 3 succeeded"}
    assert {f.tool_name for f in tracker.failures} == {"weather"}
    agentkeel.flush()
    (end,) = events.of("tool.end")
    assert end.name == "weather"
    assert end.attributes["status"] == "succeeded" and end.attributes["attempts"] == 3


def test_exhausted_retries_reraise_the_original_error(tracker: FailureTracker) -> None:
    tool = Flaky(10)
    g = Guard(retry=quick_retry(), tracker=tracker)
    with pytest.raises(ConnectionError, match="flaky call 3"):
        g.call(tool, 1)
    assert tool.calls == 3
    assert len(tracker.failures) == 3 and not any(f.recovered for f in tracker.failures)


def test_fallback_answers_and_is_recorded(events: Events, tracker: FailureTracker) -> None:
    g = Guard(
        name="forecast",
        retry=quick_retry(attempts=2),
        fallback=[("cached", lambda x: -x)],
        tracker=tracker,
    )
    assert g.call(Flaky(10), 5) == -5
    assert [f.recovery_action for f in tracker.failures] == ["fallback: answered by cached"] * 2
    agentkeel.flush()
    (fallback,) = events.of("fallback")
    assert fallback.attributes["answered_by"] == "cached"
    assert events.of("tool.end")[0].attributes["answered_by"] == "cached"


def test_breaker_sits_inside_retry_and_counts_each_attempt(tracker: FailureTracker) -> None:
    breaker = CircuitBreaker(
        "guard-test-breaker",
        CircuitBreakerConfig(failure_rate_threshold=0.5, minimum_calls=2, window_size=2),
    )
    g = Guard(retry=quick_retry(attempts=4), breaker=breaker, tracker=tracker)
    tool = Flaky(100)
    with pytest.raises(CircuitOpenError):
        g.call(tool, 1)
    # Two real failures open the breaker; the next attempts are refused without a call.
    assert tool.calls == 2
    assert breaker.get_status()["state"] == "open"
    # Refusals are circuit.rejected events, not new failures of the tool.
    assert [f.error_type for f in tracker.failures] == ["ConnectionError", "ConnectionError"]


def test_timeout_cuts_a_hung_attempt_and_retry_tries_again(tracker: FailureTracker) -> None:
    calls = 0

    def sometimes_hangs(x: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(2)  # hung: cut by the timeout, left to finish in the background
        return x

    g = Guard(retry=quick_retry(), timeout=0.05, tracker=tracker)
    started = time.monotonic()
    assert g.call(sometimes_hangs, 7) == 7
    assert time.monotonic() - started < 1.5
    assert tracker.failures[0].error_type == "ToolTimeoutError"
    assert tracker.failures[0].category == "timeout" and tracker.failures[0].recovered


def test_async_guard(events: Events, tracker: FailureTracker) -> None:
    calls = 0

    async def aflaky(x: int) -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise ConnectionError("first")
        return x + 1

    async def no_async_sleep(_s: float) -> None:
        return None

    @guard(retry=quick_retry(async_sleep=no_async_sleep), bulkhead=2, tracker=tracker)
    async def guarded(x: int) -> int:
        return await aflaky(x)

    assert asyncio.run(guarded(1)) == 2
    assert guarded.__name__ == "guarded"
    assert calls == 2 and tracker.failures[0].recovered


def test_async_timeout_and_fallback(tracker: FailureTracker) -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(5)
        return x

    async def backup(x: int) -> int:
        return -x

    g = Guard(timeout=Timeout(0.05), fallback=Fallback(backup), tracker=tracker)
    assert asyncio.run(g.acall(slow, 3)) == -3
    assert tracker.failures[0].error_type == "ToolTimeoutError"


def test_decorator_keeps_the_signature_and_agent_errors_pass_through(
    tracker: FailureTracker,
) -> None:
    class AgentError(Exception):
        pass

    @guard(retry=quick_retry(), tracker=tracker)
    def tool(x: int) -> int:
        """Doc kept."""
        raise AgentError("not retryable here")

    with pytest.raises(AgentError) as caught:
        tool(1)
    assert tool.__doc__ == "Doc kept."
    assert isinstance(caught.value, AgentError)
    assert len(tracker.failures) == 1  # one attempt: AgentError is not in `on`


def test_no_tracking(tracker: FailureTracker) -> None:
    g = Guard(retry=quick_retry(), track=False, tracker=tracker)
    assert g.call(Flaky(1), 2) == 4
    assert tracker.failures == []


def test_bulkhead_limits_concurrency() -> None:
    g = Guard(bulkhead=Bulkhead(1), track=False)
    assert g.call(lambda: "ok") == "ok"


def test_breaker_by_name_uses_the_registry() -> None:
    g = Guard(breaker="guard-registry-test", track=False)
    assert g.breaker is agentkeel.resilience.get_circuit_breaker("guard-registry-test")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retry": 3}, "retry must be"),
        ({"breaker": 1.5}, "breaker must be"),
        ({"bulkhead": "many"}, "bulkhead must be"),
        ({"fallback": "backup"}, "fallback must be"),
        ({"name": ""}, "name must be"),
        ({"timeout": -1}, "timeout|seconds"),
        ({"tracker": "t"}, "tracker must be"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Guard(**kwargs)  # type: ignore[arg-type]


def test_repr_names_the_policies() -> None:
    text = repr(Guard(name="g", retry=quick_retry(), timeout=1.0, track=False))
    assert text.startswith("Guard(name='g'") and "retry=" in text and "timeout=" in text


def test_policy_errors_classify_into_categories() -> None:
    from agentkeel.resilience import BulkheadFullError, RateLimitExceededError
    from agentkeel.tracking import classify_error

    assert issubclass(ToolTimeoutError, TimeoutError)
    assert classify_error(ToolTimeoutError("t", 1.0)).category == "timeout"
    opened = classify_error(CircuitOpenError("b", 2.5))
    assert (opened.category, opened.retry_after) == ("network", 2.5)
    assert classify_error(BulkheadFullError("full")).category == "resource"
    assert classify_error(RateLimitExceededError("r", 0.5)).category == "rate_limit"
