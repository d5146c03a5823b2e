"""The handler's deferral: callbacks are queued on the agent's thread and become events on
the pipeline's writer, in their own order and at their own time; errors are handled at
once; memory stays bounded when the writer is stuck."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest
from _langchain_fakes import model, react_agent, runs, stored, tool_call
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

import agentkeel
from agentkeel import Event, EventType
from agentkeel.integrations.langchain import KeelCallbackHandler, instrument_langchain
from agentkeel.integrations.langchain import _deferral as deferral
from agentkeel.tracking import FailureTracker, use_failure_tracker

INPUT = {"messages": [("user", "go")]}
inside_tool_ns: list[int] = []


@tool
def timed(seconds: float) -> str:
    """Wait, note when, and say so in the timeline."""
    time.sleep(seconds)
    inside_tool_ns.append(time.perf_counter_ns())
    agentkeel.emit("custom", name="from inside the tool")
    return "done"


@tool
def broken(x: int) -> int:
    """Always fails."""
    raise ValueError("tool exploded")


def _script(name: str, args: dict[str, Any]) -> list[AIMessage]:
    return [tool_call(name, args, "call-0"), AIMessage(content="finished")]


def test_events_keep_the_order_and_the_time_of_their_callbacks() -> None:
    inside_tool_ns.clear()
    handler = KeelCallbackHandler()
    react_agent(model(_script("timed", {"seconds": 0.03})), [timed]).invoke(
        INPUT, config={"callbacks": [handler]}
    )
    events = stored()
    types = [e.type for e in events]
    # The event the tool emitted directly sits between the tool's start and end, in
    # store order as in sequence order, although those two were built afterwards.
    start = types.index(EventType.TOOL_CALL_START)
    assert types[start + 1 : start + 3] == ["custom", EventType.TOOL_CALL_END]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    tool_start, custom, tool_end = events[start : start + 3]
    # Times are the callbacks' own, not when the writer got to them.
    [inside] = inside_tool_ns
    assert tool_start.mono_ns < inside < custom.mono_ns < tool_end.mono_ns
    assert tool_end.attributes["duration_ms"] == pytest.approx(
        (tool_end.mono_ns - tool_start.mono_ns) / 1e6
    )
    assert tool_end.attributes["duration_ms"] >= 30


def test_a_tool_error_is_a_failure_as_it_happens_not_when_the_writer_comes() -> None:
    from langgraph.prebuilt import ToolNode, create_react_agent

    # The ToolNode turns the error into a message for the model: the run goes on.
    tools = ToolNode([broken], handle_tool_errors=True)
    with warnings.catch_warnings():  # create_react_agent's deprecation notice
        warnings.simplefilter("ignore")
        agent = create_react_agent(model(_script("broken", {"x": 1})), tools)
    with use_failure_tracker(FailureTracker()) as tracker:
        result = agent.invoke(INPUT, config={"callbacks": [KeelCallbackHandler()]})
    assert "tool exploded" in result["messages"][2].content
    # No flush: the failure was tracked, with its node and tool, as the error passed.
    [failure] = tracker.failures
    assert (failure.tool_name, failure.graph_node) == ("broken", "tools")
    [tool_end] = stored(EventType.TOOL_CALL_END)
    assert tool_end.attributes["status"] == "failed"


def test_content_is_captured_when_the_callback_runs_not_later() -> None:
    handler = KeelCallbackHandler(capture_content=True)
    inputs: dict[str, Any] = {"question": "before"}
    run = uuid4()
    handler.on_chain_start({"name": "chain"}, inputs, run_id=run)
    inputs["question"] = "changed after the callback returned"
    handler.on_chain_end({"answer": 42}, run_id=run)
    [start] = stored(EventType.AGENT_START)
    assert "before" in str(start.attributes["input"])


def test_concurrent_runs_on_one_handler_each_come_out_whole() -> None:
    def one_run(i: int) -> None:
        react_agent(model(_script("timed", {"seconds": 0})), [timed]).invoke(
            {"messages": [("user", f"run {i}")]}
        )

    with instrument_langchain(), ThreadPoolExecutor(6) as pool:
        list(pool.map(one_run, range(24)))
    recorded = runs()
    assert len(recorded) == 24 and {r.status for r in recorded} == {"succeeded"}
    events = stored()
    by_run: dict[str, list[Event]] = {}
    for e in events:
        if e.run_id is not None and e.type != "custom":
            by_run.setdefault(e.run_id, []).append(e)
    for run_events in by_run.values():
        spans = {e.span_id for e in run_events}
        # Every parent is a span of the same run (or the run's root, which has none).
        assert {e.parent_span_id for e in run_events} <= spans | {None}
        started = [e.span_id for e in run_events if e.type.endswith(".start")]
        ended = [e.span_id for e in run_events if e.type.endswith(".end")]
        assert sorted(started) == sorted(ended)
    assert agentkeel.get_pipeline().stats().emitted == len(events)


class Stuck:
    """A sink that holds the writer until released (a store that hangs)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, batch: Sequence[Event]) -> None:
        self.release.wait(30)


def test_with_the_writer_stuck_the_queue_stays_bounded_and_nothing_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(deferral, "_MAX_PENDING", 50)
    stuck = Stuck()
    pipeline = agentkeel.get_pipeline()
    pipeline.add_sink(stuck)
    handler = KeelCallbackHandler()
    try:
        agentkeel.emit("custom", name="occupies the writer")
        time.sleep(0.3)  # the writer is now waiting in the stuck sink
        for _ in range(5):  # 5 runs x 30 recorded callbacks
            react_agent(model(_script("timed", {"seconds": 0})), [timed]).invoke(
                INPUT, config={"callbacks": [handler]}
            )
            assert len(handler._pending) <= 51
    finally:
        stuck.release.set()
    assert len(stored(EventType.AGENT_END)) == 5
    assert pipeline.remove_sink(stuck)
