"""instrument_langchain(): every run in the process, undone by uninstrument; faults never leak."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from _langchain_fakes import add, adding_script, model, react_agent, runs, stored
from fake_clock import FakeClock

import agentkeel
from agentkeel import EventType, _internal
from agentkeel.integrations import RobustConfig, get_instrumentors, instrument_langchain
from agentkeel.integrations.langchain import KeelCallbackHandler, installed_handler

INPUT = {"messages": [("user", "add some numbers")]}


def run_agent(config: dict[str, Any] | None = None) -> Any:
    return react_agent(model(adding_script()), [add]).invoke(INPUT, config=config)


def test_one_line_records_every_run_and_uninstrument_stops_it() -> None:
    handle = instrument_langchain()  # through agentkeel.integrations' lazy entry point
    try:
        assert isinstance(installed_handler(), KeelCallbackHandler)
        assert handle.instrumentor in get_instrumentors()
        run_agent()
        # A thread of its own (a fresh context) is recorded too.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run_agent).result()
        assert "installed=True" in repr(handle)
    finally:
        handle.uninstrument()
    assert installed_handler() is None
    recorded = runs()
    assert [r.status for r in recorded] == ["succeeded", "succeeded"]
    before = len(stored())
    run_agent()
    assert len(stored()) == before  # nothing after uninstrument
    assert handle.get_health_status()["installed"] is False


def test_the_global_handler_is_added_once_even_when_also_passed_explicitly() -> None:
    with instrument_langchain() as handle:
        run_agent({"callbacks": [handle.instrumentor]})
    assert len(stored(EventType.AGENT_START)) == 1
    assert len(stored(EventType.TOOL_CALL_END)) == 3


def test_a_second_instrument_replaces_the_first() -> None:
    first = instrument_langchain()
    second = instrument_langchain(chains="all")
    try:
        assert installed_handler() is second.instrumentor
        assert not first.instrumentor.is_instrumented
        first.uninstrument()  # a no-op: it is no longer installed
        assert installed_handler() is second.instrumentor
        run_agent()
        assert "call_model" in {e.name for e in stored(EventType.STEP_START)}
    finally:
        second.uninstrument()


def test_internal_faults_never_change_the_agent_and_the_handler_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    expected = run_agent()  # uninstrumented
    clock = FakeClock()
    handle = instrument_langchain(
        config=RobustConfig(max_consecutive_errors=5, error_recovery_timeout=30.0),
        clock=clock,
    )
    handler = handle.instrumentor
    assert isinstance(handler, KeelCallbackHandler)
    events_before = len(stored())

    def broken_emit(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(handler, "_emit", broken_emit)
    try:
        faulty = run_agent()
        async_faulty = _arun_agent()
        # Most callbacks are handled on the pipeline's writer: the fault must still be
        # there when they are (flush() waits for them).
        agentkeel.flush()
    finally:
        monkeypatch.undo()
    # The agent's result is identical, message for message, to the uninstrumented run.
    assert _messages(faulty) == _messages(expected)
    assert _messages(async_faulty) == _messages(expected)
    health = handle.get_health_status()
    assert health["state"] == "degraded"
    assert health["error_count"] >= 5 and "disk on fire" in health["last_error"]
    assert _internal.internal_error_counts()["integrations.langchain"] >= 5
    assert len(stored()) == events_before  # nothing was recorded

    # After the recovery timeout, with the fault gone, a probation heals it.
    clock.now += 31.0
    assert handle.get_health_status()["state"] == "recovering"
    healed = run_agent()
    assert _messages(healed) == _messages(expected)
    assert handle.get_health_status()["state"] == "healthy"
    handle.uninstrument()
    assert runs()[0].status == "succeeded"  # the healed run was recorded whole


def test_while_degraded_only_part_of_the_routine_callbacks_are_observed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FakeClock()
    handler = KeelCallbackHandler(
        config=RobustConfig(max_consecutive_errors=2, min_functionality_level=0.5), clock=clock
    )
    calls = []
    real_emit = handler._emit

    def count_then_fail(*args: Any, **kwargs: Any) -> None:
        calls.append(args[0])
        if len(calls) <= 2:
            raise RuntimeError("flaky sink")
        real_emit(*args, **kwargs)

    monkeypatch.setattr(handler, "_emit", count_then_fail)
    result = run_agent({"callbacks": [handler]})
    assert result["messages"][-1].content == "the sums are 1, 2 and 3"
    assert handler.get_health_status()["state"] == "degraded"
    # Ends are essential, starts are sampled: the run's end is recorded although its
    # start's event failed, and only part of the rest was observed.
    [run] = runs()
    assert run.status == "succeeded"
    events = stored()
    assert 1 < len(events) < 30
    starts = {e.span_id for e in events if e.type.endswith(".start")}
    ends = [e for e in events if e.type.endswith(".end") and e.type != EventType.AGENT_END]
    # An end without its start only where the start's own event failed (the node's).
    assert sum(e.span_id not in starts for e in ends) == 1


def _arun_agent() -> Any:
    import asyncio

    return asyncio.run(react_agent(model(adding_script()), [add]).ainvoke(INPUT))


def _messages(result: Any) -> list[tuple[str, Any, Any]]:
    return [(m.type, m.content, getattr(m, "tool_calls", None)) for m in result["messages"]]


def test_instrumentors_report_langchain_by_name() -> None:
    with instrument_langchain() as handle:
        assert handle.get_health_status()["framework"] == "langchain"
    assert agentkeel.flush()
