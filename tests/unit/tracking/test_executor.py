from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

import agentkeel
from agentkeel import ConfigurationError, _internal
from agentkeel.events import EventType
from agentkeel.tracking import (
    FailureTracker,
    current_node,
    executor_with_tracking,
    track_node,
    use_failure_tracker,
)

if TYPE_CHECKING:
    from conftest import CapturedEvents


def test_success_passes_through(tracker: FailureTracker, events: CapturedEvents) -> None:
    @track_node("planner", tracker=tracker)
    def planner(state: dict[str, Any]) -> dict[str, Any]:
        assert current_node() == "planner"
        return {**state, "plan": ["a"]}

    assert planner({"q": 1}) == {"q": 1, "plan": ["a"]}
    assert planner.__name__ == "planner"
    assert tracker.failures == []
    assert current_node() is None
    assert [e.name for e in events.of_type(EventType.STEP_START)] == ["planner"]


def test_failure_is_recorded_and_reraised(tracker: FailureTracker) -> None:
    error = ValueError("Invalid date format")

    @track_node("intent_parser", tracker=tracker)
    def parse(state: dict[str, Any]) -> dict[str, Any]:
        raise error

    with pytest.raises(ValueError) as info:
        parse({})
    assert info.value is error
    (record,) = tracker.failures
    assert (record.graph_node, record.category, record.recovered) == (
        "intent_parser",
        "validation",
        False,
    )
    assert record.latency_ms is not None


def test_bare_decorator_uses_the_function_name(tracker: FailureTracker) -> None:
    @track_node
    def summarise(x: int) -> int:
        raise TimeoutError

    with use_failure_tracker(tracker), pytest.raises(TimeoutError):
        summarise(1)
    assert tracker.failures[0].graph_node == "summarise"


def test_recover_returns_its_result_and_marks_recovery(tracker: FailureTracker) -> None:
    def use_cached(exc: Exception, state: dict[str, Any]) -> dict[str, Any]:
        assert isinstance(exc, ConnectionError)
        return {**state, "source": "cache"}

    @track_node("executor", tracker=tracker, recover=use_cached)
    def executor(state: dict[str, Any]) -> dict[str, Any]:
        raise ConnectionError("down")

    assert executor({"q": 1}) == {"q": 1, "source": "cache"}
    (record,) = tracker.failures
    assert record.recovered
    assert record.recovery_action == (
        "recovered by test_recover_returns_its_result_and_marks_recovery.<locals>.use_cached"
    )
    assert tracker.get_summary()["recovery_rate"] == 100.0


def test_recovery_action_text(tracker: FailureTracker) -> None:
    @track_node(
        "executor",
        tracker=tracker,
        recover=lambda exc, x: None,
        recovery_action="Step marked as blocked, orchestrator continues",
    )
    def executor(x: int) -> int:
        raise TimeoutError

    assert executor(1) is None
    assert tracker.failures[0].recovery_action == "Step marked as blocked, orchestrator continues"


def test_failing_recovery(tracker: FailureTracker) -> None:
    def bad_recover(exc: Exception) -> None:
        raise RuntimeError("no fallback either")

    @track_node("executor", tracker=tracker, recover=bad_recover)
    def executor() -> None:
        raise ConnectionError("down")

    with pytest.raises(RuntimeError, match="no fallback") as info:
        executor()
    assert isinstance(info.value.__context__, ConnectionError)
    (record,) = tracker.failures
    assert not record.recovered
    assert record.attributes["recovery_error"] == "RuntimeError: no fallback either"


def test_async_node(tracker: FailureTracker) -> None:
    async def fallback(exc: Exception, city: str) -> str:
        await asyncio.sleep(0)
        return f"no data for {city}"

    @track_node("fetch", tracker=tracker, recover=fallback)
    async def fetch(city: str) -> str:
        assert current_node() == "fetch"
        await asyncio.sleep(0)
        raise TimeoutError("slow")

    @track_node("strict_fetch", tracker=tracker)
    async def strict_fetch(city: str) -> str:
        raise TimeoutError("slow")

    async def main() -> None:
        assert await fetch("Paris") == "no data for Paris"
        with pytest.raises(TimeoutError):
            await strict_fetch("Paris")

    asyncio.run(main())
    assert [(r.graph_node, r.recovered) for r in tracker.failures] == [
        ("fetch", True),
        ("strict_fetch", False),
    ]


def test_node_runs_as_a_step_of_the_run(tracker: FailureTracker, events: CapturedEvents) -> None:
    @track_node("executor", tracker=tracker)
    def executor() -> None:
        raise ConnectionError

    with agentkeel.run("trip") as scope, pytest.raises(ConnectionError):
        executor()
    (end,) = events.of_type(EventType.STEP_END)
    assert end.run_id == scope.run_id
    assert end.attributes["status"] == "failed"


def test_executor_with_tracking(tracker: FailureTracker) -> None:
    def executor(state: dict[str, Any], *, tools: object = None) -> dict[str, Any]:
        raise ConnectionError("hotel service unavailable")

    node = executor_with_tracking(
        executor, tracker=tracker, recover=lambda exc, state, **kw: {**state, "blocked": True}
    )
    assert node({"q": 1}, tools=None) == {"q": 1, "blocked": True}
    assert tracker.failures[0].graph_node == "executor"
    assert tracker.failures[0].recovered


def test_tracking_errors_never_replace_the_node_exception(
    tracker: FailureTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracker bug")

    monkeypatch.setattr(tracker, "record_failure", broken)

    @track_node("n", tracker=tracker)
    def node() -> None:
        raise KeyError("k")

    before = _internal.internal_error_counts().get("tracking.node", 0)
    with pytest.raises(KeyError):
        node()
    assert _internal.internal_error_counts()["tracking.node"] == before + 1


@pytest.mark.parametrize("name", ["", "  ", 3])
def test_bad_node_name(name: object) -> None:
    with pytest.raises(ConfigurationError):
        track_node(name)  # type: ignore[call-overload]


def test_recover_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="recover"):
        track_node("n", recover="fallback")  # type: ignore[arg-type]


def test_track_node_needs_a_function() -> None:
    with pytest.raises(ConfigurationError, match="needs a function"):
        track_node("n")(3)  # type: ignore[arg-type]


def test_failing_async_recovery(tracker: FailureTracker) -> None:
    async def bad_recover(exc: Exception) -> None:
        raise RuntimeError("no fallback")

    @track_node("fetch", tracker=tracker, recover=bad_recover)
    async def fetch() -> None:
        raise ConnectionError

    with pytest.raises(RuntimeError):
        asyncio.run(fetch())
    assert not tracker.failures[0].recovered
