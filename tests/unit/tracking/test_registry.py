from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentkeel import ConfigurationError, _internal
from agentkeel.events import EventType
from agentkeel.tracking import (
    FailureTracker,
    TrackedToolRegistry,
    TrackingSettings,
    UnknownToolError,
    set_failure_tracker,
    track_node,
)

if TYPE_CHECKING:
    from conftest import CapturedEvents


class Boom(Exception):
    pass


def weather(city: str) -> str:
    if city == "Atlantis":
        raise ConnectionError("weather service unreachable")
    return f"sunny in {city}"


async def hotels(city: str) -> list[str]:
    await asyncio.sleep(0)
    if city == "Atlantis":
        raise TimeoutError("hotel search timed out")
    return [f"{city} Inn"]


class ObjectRegistry:
    """Like most hand-written registries: get() raises KeyError for unknown names."""

    def __init__(self) -> None:
        self.tools: dict[str, Callable[..., Any]] = {"weather": weather, "hotels": hotels}
        self.version = "1.2"

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self.tools:
            raise KeyError(name)
        return self.tools[name]

    def describe(self) -> str:
        return "two tools"


class GetItemOnly:
    def __getitem__(self, name: str) -> Callable[..., Any]:
        if name != "weather":
            raise KeyError(name)
        return weather

    def names(self) -> list[str]:
        return ["weather"]


@pytest.fixture(params=["dict", "object", "getitem"])
def registry(request: pytest.FixtureRequest, tracker: FailureTracker) -> TrackedToolRegistry:
    tools: object = {
        "dict": {"weather": weather, "hotels": hotels},
        "object": ObjectRegistry(),
        "getitem": GetItemOnly(),
    }[request.param]
    return TrackedToolRegistry(tools, tracker=tracker, graph_node="executor")


def test_successful_call(registry: TrackedToolRegistry, tracker: FailureTracker) -> None:
    assert registry.call("weather", "Paris") == "sunny in Paris"
    assert registry["weather"]("Rome") == "sunny in Rome"
    assert registry.get("weather")(city="Oslo") == "sunny in Oslo"
    assert tracker.failures == []


def test_failure_is_recorded_and_the_original_reraised(
    registry: TrackedToolRegistry, tracker: FailureTracker
) -> None:
    with pytest.raises(ConnectionError) as info:
        registry.call("weather", "Atlantis")
    (record,) = tracker.failures
    assert record.tool_name == "weather"
    assert record.graph_node == "executor"
    assert record.category == "network"
    assert record.latency_ms is not None
    assert record.latency_ms >= 0
    assert str(info.value) == "weather service unreachable"


def test_the_very_same_exception_object_is_reraised(tracker: FailureTracker) -> None:
    error = Boom("mine")

    def tool() -> None:
        raise error

    registry = TrackedToolRegistry({"tool": tool}, tracker=tracker)
    with pytest.raises(Boom) as info:
        registry.call("tool")
    assert info.value is error
    assert info.value.__traceback__ is not None


def test_unknown_tool(registry: TrackedToolRegistry, tracker: FailureTracker) -> None:
    with pytest.raises(KeyError) as info:
        registry.call("wether", "Paris")
    assert isinstance(info.value, UnknownToolError)
    assert "did you mean 'weather'" in str(info.value)
    assert "weather" in str(info.value)
    (record,) = tracker.failures
    assert record.category == "tool_not_found"
    assert record.tool_name == "wether"
    assert registry.get("wether", None) is None
    assert len(tracker.failures) == 1  # a lookup with a default is not a failure


def test_async_tools(tracker: FailureTracker) -> None:
    registry = TrackedToolRegistry(ObjectRegistry(), tracker=tracker)

    async def main() -> None:
        assert await registry.call("hotels", "Paris") == ["Paris Inn"]
        with pytest.raises(TimeoutError):
            await registry["hotels"]("Atlantis")

    asyncio.run(main())
    (record,) = tracker.failures
    assert (record.tool_name, record.category) == ("hotels", "timeout")


def test_sync_callable_returning_a_coroutine(
    tracker: FailureTracker, events: CapturedEvents
) -> None:
    # Not a coroutine function (inspect sees through functools.partial, not a lambda),
    # yet it returns a coroutine: the call is timed when awaited.
    registry = TrackedToolRegistry({"hotels": lambda city: hotels(city)}, tracker=tracker)  # noqa: PLW0108

    async def main() -> None:
        assert await registry.call("hotels", "Paris") == ["Paris Inn"]
        with pytest.raises(TimeoutError):
            await registry.call("hotels", "Atlantis")

    asyncio.run(main())
    assert [r.tool_name for r in tracker.failures] == ["hotels"]
    ends = events.of_type(EventType.TOOL_CALL_END)
    assert [e.attributes["status"] for e in ends] == ["succeeded", "failed"]


def test_tool_events(tracker: FailureTracker, events: CapturedEvents) -> None:
    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)
    registry.call("weather", "Paris")
    with pytest.raises(ConnectionError):
        registry.call("weather", "Atlantis")
    starts = events.of_type(EventType.TOOL_CALL_START)
    ends = events.of_type(EventType.TOOL_CALL_END)
    assert [e.name for e in starts] == ["weather", "weather"]
    assert [e.attributes["status"] for e in ends] == ["succeeded", "failed"]
    assert ends[1].attributes["error_type"] == "ConnectionError"
    assert all(e.attributes["duration_ms"] >= 0 for e in ends)
    assert len(events.of_type(EventType.FAILURE)) == 1


def test_tool_events_can_be_turned_off(tracker: FailureTracker, events: CapturedEvents) -> None:
    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker, emit_tool_events=False)
    with pytest.raises(ConnectionError):
        registry.call("weather", "Atlantis")
    assert events.of_type(EventType.TOOL_CALL_START) == []
    assert len(tracker.failures) == 1


def test_track_tools_off(tmp_path: Path) -> None:
    quiet = FailureTracker(
        run_id="q", runtime_dir=tmp_path, settings=TrackingSettings(track_tools=False)
    )
    registry = TrackedToolRegistry({"weather": weather}, tracker=quiet)
    with pytest.raises(ConnectionError):
        registry.call("weather", "Atlantis")
    assert quiet.failures == []


def test_uses_the_current_tracker_when_none_given(tracker: FailureTracker) -> None:
    registry = TrackedToolRegistry({"weather": weather})
    set_failure_tracker(tracker)
    try:
        with pytest.raises(ConnectionError):
            registry.call("weather", "Atlantis")
    finally:
        set_failure_tracker(None)
    assert len(tracker.failures) == 1


def test_node_name_comes_from_the_running_tracked_node(tracker: FailureTracker) -> None:
    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)

    @track_node("executor", tracker=tracker, recover=lambda exc, city: "no weather")
    def executor(city: str) -> str:
        return registry.call("weather", city)

    assert executor("Atlantis") == "no weather"
    # Recorded once (by the registry), then marked recovered by the node.
    (record,) = tracker.failures
    assert (record.tool_name, record.graph_node, record.recovered) == ("weather", "executor", True)


def test_mapping_like_behaviour(registry: TrackedToolRegistry) -> None:
    assert "weather" in registry
    assert "nope" not in registry
    assert 3 not in registry  # type: ignore[operator]
    assert "weather" in registry.names()
    assert len(registry) == len(registry.names()) >= 1
    assert set(registry) == set(registry.names())


def test_attribute_passthrough(tracker: FailureTracker) -> None:
    inner = ObjectRegistry()
    registry = TrackedToolRegistry(inner, tracker=tracker)
    assert registry.version == "1.2"
    assert registry.describe() == "two tools"
    assert registry.wrapped is inner
    with pytest.raises(AttributeError):
        registry.missing_attribute  # noqa: B018


def test_wrappers_are_cached_and_keep_metadata(tracker: FailureTracker) -> None:
    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)
    assert registry["weather"] is registry["weather"]
    assert registry["weather"].__name__ == "weather"
    assert registry["weather"].__wrapped__ is weather  # type: ignore[attr-defined]


def test_non_callable_tools_are_returned_as_is(tracker: FailureTracker) -> None:
    registry = TrackedToolRegistry({"config": {"a": 1}}, tracker=tracker)
    assert registry["config"] == {"a": 1}


def test_registry_errors_other_than_not_found_propagate(tracker: FailureTracker) -> None:
    class Broken:
        def get(self, name: str) -> Any:
            raise RuntimeError("registry is broken")

    with pytest.raises(RuntimeError, match="registry is broken"):
        TrackedToolRegistry(Broken(), tracker=tracker).call("x")


def test_cannot_wrap_an_object_without_lookup() -> None:
    with pytest.raises(ConfigurationError, match="get\\(name\\)"):
        TrackedToolRegistry(object())


def test_tracking_errors_never_break_the_tool_call(
    tracker: FailureTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_record(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracker bug")

    monkeypatch.setattr(tracker, "record_failure", broken_record)
    before = _internal.internal_error_counts().get("tracking.tool", 0)
    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)
    # Even in strict mode, the tool's own exception is what the caller sees.
    with pytest.raises(ConnectionError):
        registry.call("weather", "Atlantis")
    assert _internal.internal_error_counts()["tracking.tool"] == before + 1
    assert registry.call("weather", "Paris") == "sunny in Paris"


def test_cancellation_is_not_a_failure(tracker: FailureTracker, events: CapturedEvents) -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    registry = TrackedToolRegistry({"slow": slow}, tracker=tracker)

    async def main() -> None:
        task = asyncio.ensure_future(registry.call("slow"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert tracker.failures == []
    (end,) = events.of_type(EventType.TOOL_CALL_END)
    assert end.attributes["status"] == "cancelled"


# ------------------------------------------------------------------------ edges


def test_unknown_tool_messages() -> None:
    assert str(UnknownToolError("x", ())) == "unknown tool 'x' (the registry has no tools)"
    many = tuple(f"tool{i:02d}" for i in range(25))
    text = str(UnknownToolError("zzz", many))
    assert "did you mean" not in text
    assert "tool19 and 5 more" in text


def test_tracker_must_be_a_failure_tracker() -> None:
    with pytest.raises(ConfigurationError, match="FailureTracker"):
        TrackedToolRegistry({}, tracker="t")  # type: ignore[arg-type]


def test_object_with_only_a_tools_mapping(tracker: FailureTracker) -> None:
    class Holder:
        def __init__(self) -> None:
            self.tools = {"weather": weather}

    registry = TrackedToolRegistry(Holder(), tracker=tracker)
    assert registry.call("weather", "Oslo") == "sunny in Oslo"
    assert registry.names() == ["weather"]
    assert "weather" in registry
    with pytest.raises(UnknownToolError):
        registry.get("nope")


def test_names_from_a_list_attribute_or_nothing(tracker: FailureTracker) -> None:
    class Listed(GetItemOnly):
        names = ["weather"]  # type: ignore[assignment]

    class Unlisted:
        def __getitem__(self, name: str) -> Callable[..., Any]:
            return weather

    assert TrackedToolRegistry(Listed(), tracker=tracker).names() == ["weather"]
    unlisted = TrackedToolRegistry(Unlisted(), tracker=tracker)
    assert unlisted.names() == []
    assert "anything" in unlisted
    assert repr(unlisted).startswith("TrackedToolRegistry(")
    with pytest.raises(AttributeError):
        unlisted.__fspath__  # noqa: B018 - dunders are never passed through


def test_interrupted_sync_tool(tracker: FailureTracker, events: CapturedEvents) -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    registry = TrackedToolRegistry({"i": interrupted}, tracker=tracker)
    with pytest.raises(KeyboardInterrupt):
        registry.call("i")
    assert tracker.failures == []
    assert events.of_type(EventType.TOOL_CALL_END)[0].attributes["status"] == "cancelled"


def test_cancelled_coroutine_returned_by_a_sync_callable(tracker: FailureTracker) -> None:
    async def slow() -> None:
        await asyncio.sleep(10)

    registry = TrackedToolRegistry({"slow": lambda: slow()}, tracker=tracker)  # noqa: PLW0108

    async def main() -> None:
        task = asyncio.ensure_future(registry.call("slow"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert tracker.failures == []


def test_nested_registries_record_once(tracker: FailureTracker) -> None:
    inner = TrackedToolRegistry({"weather": weather}, tracker=tracker)
    outer = TrackedToolRegistry({"weather": inner["weather"]}, tracker=tracker)
    with pytest.raises(ConnectionError):
        outer.call("weather", "Atlantis")
    assert len(tracker.failures) == 1


class _BrokenPipeline:
    def emit(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("pipeline bug")


def test_event_errors_are_reported_not_raised(
    tracker: FailureTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkeel.tracking import _registry

    monkeypatch.setattr(_registry, "get_pipeline", _BrokenPipeline)
    monkeypatch.setattr(_internal, "_strict", False)
    before = _internal.internal_error_counts().get("tracking.tool", 0)
    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)
    assert registry.call("weather", "Paris") == "sunny in Paris"  # start and end fail
    with pytest.raises(ConnectionError):
        registry.call("weather", "Atlantis")  # start and end fail, the failure is recorded
    assert _internal.internal_error_counts()["tracking.tool"] == before + 4
    assert len(tracker.failures) == 1


def test_event_errors_raise_in_strict_mode_but_never_mask_a_tool_error(
    tracker: FailureTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkeel.tracking import _registry

    registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)
    wrapped = registry["weather"]
    monkeypatch.setattr(_registry, "get_pipeline", _BrokenPipeline)
    with pytest.raises(RuntimeError, match="pipeline bug"):
        wrapped("Paris")
    monkeypatch.setattr(registry, "_start", lambda name: 0)
    with pytest.raises(ConnectionError):
        registry._wrap("weather", weather)("Atlantis")
