from __future__ import annotations

import asyncio
import contextvars
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

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.resilience._errors import ToolTimeoutError
from agentkeel.resilience._timeout import Timeout, TimeoutToolExecutor


@pytest.fixture
def events() -> Iterator[CapturedEvents]:
    yield from CapturedEvents.installed()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown, so hung test functions (abandoned threads) end with the test."""
    gate = threading.Event()
    yield gate
    gate.set()


def add(a: int, b: int) -> int:
    return a + b


# ---------------------------------------------------------------------- sync
def test_sync_call_returns_the_result_and_passes_errors_through_unchanged() -> None:
    timeout = Timeout(1)
    assert timeout.call(add, 2, b=3) == 5

    class ToolError(Exception):
        pass

    error = ToolError("boom")

    def fails() -> None:
        raise error

    with pytest.raises(ToolError) as caught:
        timeout.call(fails)
    assert caught.value is error


def test_a_hung_sync_call_is_cut_and_its_thread_counted_until_it_ends(
    events: CapturedEvents, release: threading.Event
) -> None:
    timeout = Timeout(0.05, name="search")
    started = time.monotonic()
    with pytest.raises(ToolTimeoutError) as caught:
        timeout.call(release.wait, 5)
    assert time.monotonic() - started < 1
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.name == "search"
    assert caught.value.timeout == 0.05
    assert "IsolatedToolExecutor" in str(caught.value)
    assert timeout.abandoned == 1
    stats = timeout.stats()
    assert (stats.timed_out, stats.abandoned, stats.refused) == (1, 1, 0)
    (event,) = events.of_type(EventType.TIMEOUT)
    assert event.name == "search"
    assert event.category == "timeout"
    assert event.attributes == {"timeout_s": 0.05, "mode": "thread", "abandoned": 1}

    release.set()  # the background thread finishes on its own and is no longer counted
    assert wait_until(lambda: timeout.abandoned == 0)
    assert timeout.call(add, 1, 1) == 2


def test_max_abandoned_refuses_new_calls_while_hung_threads_run(
    events: CapturedEvents, release: threading.Event
) -> None:
    timeout = Timeout(0.02, max_abandoned=2)
    for _ in range(2):
        with pytest.raises(ToolTimeoutError):
            timeout.call(release.wait, 5)
    ran: list[int] = []
    with pytest.raises(ToolTimeoutError, match="max_abandoned=2") as caught:
        timeout.call(ran.append, 1)
    assert ran == []  # refused before it started, not cut
    assert "was not started" in str(caught.value)
    assert timeout.stats().refused == 1
    refused = [e for e in events.of_type(EventType.TIMEOUT) if e.attributes.get("refused")]
    assert len(refused) == 1

    release.set()
    assert wait_until(lambda: timeout.abandoned == 0)
    assert timeout.call(add, 1, 2) == 3


def test_context_follows_the_call_into_the_worker_thread() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")
    request_id.set("req-7")
    agentkeel.configure(store="none")
    with agentkeel.run("agent") as scope:
        seen = Timeout(1).call(lambda: (request_id.get(), agentkeel.current_scope().run_id))
    assert seen == ("req-7", scope.run_id)


def test_worker_threads_are_reused() -> None:
    timeout = Timeout(1)
    timeout.call(add, 0, 0)
    before = threading.active_count()
    for i in range(50):
        assert timeout.call(add, i, 1) == i + 1
    assert threading.active_count() <= before


def test_concurrent_sync_calls_each_get_their_own_result() -> None:
    timeout = Timeout(2)
    results: dict[int, int] = {}

    def worker(k: int) -> None:
        for i in range(50):
            results[k * 1000 + i] = timeout.call(add, k * 1000, i)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {key: key for key in results}
    assert len(results) == 300


def test_sync_call_of_a_coroutine_function_is_a_configuration_error() -> None:
    async def coro() -> None:
        return None

    with pytest.raises(ConfigurationError, match="acall"):
        Timeout(1).call(coro)


# ---------------------------------------------------------------------- async
@async_test
async def test_async_call_is_cancelled_at_the_deadline(events: CapturedEvents) -> None:
    cancelled = asyncio.Event()

    async def hangs() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    started = time.monotonic()
    with pytest.raises(ToolTimeoutError) as caught:
        await Timeout(0.05).acall(hangs)
    assert time.monotonic() - started < 1
    assert cancelled.is_set()
    assert caught.value.name.endswith("hangs")
    (event,) = events.of_type(EventType.TIMEOUT)
    assert event.attributes["mode"] == "async"


@async_test
async def test_async_call_returns_and_keeps_the_functions_own_timeout_error() -> None:
    async def fine(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    async def own_timeout() -> None:
        raise TimeoutError("upstream said so")

    timeout = Timeout(1)
    assert await timeout.acall(fine, 21) == 42
    with pytest.raises(TimeoutError, match="upstream") as caught:
        await timeout.acall(own_timeout)
    assert not isinstance(caught.value, ToolTimeoutError)


@async_test
async def test_acall_of_a_sync_function_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not an awaitable"):
        await Timeout(1).acall(add, 1, 2)  # type: ignore[arg-type]


@async_test
async def test_decorator_picks_sync_or_async_and_keeps_names(release: threading.Event) -> None:
    timeout = Timeout(0.05)

    @timeout
    def slow_sync(x: int) -> int:
        release.wait(5)
        return x

    @timeout
    async def slow_async(x: int) -> int:
        await asyncio.sleep(10)
        return x

    assert slow_sync.__name__ == "slow_sync"
    assert slow_async.__name__ == "slow_async"
    with pytest.raises(ToolTimeoutError):
        slow_sync(1)
    with pytest.raises(ToolTimeoutError):
        await slow_async(1)


# ---------------------------------------------------------------------- configuration
@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "1", True])
def test_invalid_timeouts_are_refused(seconds: Any) -> None:
    with pytest.raises(ConfigurationError):
        Timeout(seconds)
    with pytest.raises(ValueError, match="seconds"):
        Timeout(seconds)


def test_other_invalid_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_abandoned"):
        Timeout(1, max_abandoned=0)
    with pytest.raises(ConfigurationError, match="name"):
        Timeout(1, name="")
    with pytest.raises(ConfigurationError, match="default_timeout"):
        TimeoutToolExecutor(-1)
    with pytest.raises(ConfigurationError, match="max_workers"):
        TimeoutToolExecutor(1, max_workers=0)
    with pytest.raises(ConfigurationError, match="timeout"):
        TimeoutToolExecutor(1).execute_tool(add, 1, 2, timeout=0)


def test_durations_accept_timedelta() -> None:
    assert Timeout(timedelta(milliseconds=250)).seconds == 0.25
    assert TimeoutToolExecutor(timedelta(minutes=1)).default_timeout == 60


# ---------------------------------------------------------------------- executor
class WeatherTool:
    """A tool object in the style of seed users: ``execute`` / ``execute_async``."""

    name = "weather"

    def __init__(self, gate: threading.Event) -> None:
        self.gate = gate

    def execute(self, *, city: str, hang: bool = False) -> str:
        if hang:
            self.gate.wait(5)
        return f"sunny in {city}"

    async def execute_async(self, *, city: str, hang: bool = False) -> str:
        if hang:
            await asyncio.sleep(10)
        return f"sunny in {city}"


def test_executor_runs_functions_and_tool_objects_with_per_call_timeouts(
    events: CapturedEvents, release: threading.Event
) -> None:
    executor = TimeoutToolExecutor(default_timeout=1)
    assert executor.execute_tool(add, 1, b=2) == 3
    tool = WeatherTool(release)
    assert executor.execute_tool(tool, city="Lisbon") == "sunny in Lisbon"
    with pytest.raises(ToolTimeoutError, match=r"'weather' did not finish within 0\.05 s"):
        executor.execute_tool(tool, city="Lisbon", hang=True, timeout=0.05)
    assert executor.stats().timed_out == 1
    assert [e.name for e in events.of_type(EventType.TIMEOUT)] == ["weather"]


@async_test
async def test_executor_async_cancels_at_the_timeout() -> None:
    executor = TimeoutToolExecutor(default_timeout=1)
    tool = WeatherTool(threading.Event())
    assert await executor.execute_tool_async(tool, city="Porto") == "sunny in Porto"

    async def fetch(url: str) -> str:
        await asyncio.sleep(10)
        return url

    with pytest.raises(ToolTimeoutError, match="fetch"):
        await executor.execute_tool_async(fetch, "https://example.org", timeout=0.05)
    with pytest.raises(ToolTimeoutError, match="weather"):
        await executor.execute_tool_async(tool, city="Porto", hang=True, timeout=0.05)


def test_executor_without_a_free_worker_never_starts_the_call(
    events: CapturedEvents, release: threading.Event
) -> None:
    executor = TimeoutToolExecutor(default_timeout=2, max_workers=1)
    started: list[str] = []
    busy = threading.Event()

    def tool(label: str) -> str:
        started.append(label)
        if label == "first":
            busy.set()
            release.wait(5)
        return label

    first = threading.Thread(target=executor.execute_tool, args=(tool, "first"))
    first.start()
    assert busy.wait(2)
    with pytest.raises(ToolTimeoutError, match=r"was not started within 0\.05 s"):
        executor.execute_tool(tool, "second", timeout=0.05)
    release.set()
    first.join(2)
    assert started == ["first"]  # the refused call never ran, not even later
    assert executor.execute_tool(tool, "third") == "third"
    assert any(e.attributes.get("started") is False for e in events.of_type(EventType.TIMEOUT))


@async_test
async def test_executor_async_respects_max_workers() -> None:
    executor = TimeoutToolExecutor(default_timeout=2, max_workers=1)
    gate = asyncio.Event()

    async def tool(label: str) -> str:
        if label == "first":
            await gate.wait()
        return label

    first = asyncio.create_task(executor.execute_tool_async(tool, "first"))
    await asyncio.sleep(0.01)
    with pytest.raises(ToolTimeoutError, match="was not started"):
        await executor.execute_tool_async(tool, "second", timeout=0.05)
    gate.set()
    assert await first == "first"
    assert await executor.execute_tool_async(tool, "third") == "third"


def test_executor_rejects_things_it_cannot_run() -> None:
    with pytest.raises(ConfigurationError, match=r"has no execute\(\)"):
        TimeoutToolExecutor(1).execute_tool(object())


# ---------------------------------------------------------------------- docs
def test_the_documented_example_runs() -> None:
    out = run_example("resilience_timeout.py")
    assert "timed out" in out
    assert doc_contains_example("timeout.md", "resilience_timeout.py")
