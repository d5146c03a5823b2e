"""CrewAI through its event bus, offline: a scripted model, a real Agent, Task and Crew."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _crewai_fakes import (
    TOOL_THEN_ANSWER,
    BrokenTool,
    crewai_environment,
    crewai_event_bus,
    make_crew,
)
from _no_network import no_network
from fake_clock import FakeClock

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.integrations import InstrumentationHandle, RobustConfig, instrument_crewai
from agentkeel.integrations.crewai import CrewAIInstrumentor, run_id_for_kickoff
from agentkeel.integrations.crewai import instrument_crewai as direct_instrument_crewai

__all__ = ["crewai_environment", "no_network"]  # fixtures, re-exported for pytest

pytestmark = pytest.mark.usefixtures("crewai_environment", "no_network")


def _instrument(handles: list[InstrumentationHandle], **options: Any) -> InstrumentationHandle:
    handle = instrument_crewai(**options)
    handles.append(handle)
    return handle


def _settle(handle: InstrumentationHandle) -> None:
    instrumentor = handle.instrumentor
    assert isinstance(instrumentor, CrewAIInstrumentor)
    assert instrumentor.flush(10)


def _only_crew_run() -> Any:
    runs = [r for r in agentkeel.get_store().list_runs() if r.name == "calc-crew"]
    assert len(runs) == 1, runs
    return runs[0]


def _events(run_id: str) -> list[Any]:
    return [stored.event for stored in agentkeel.get_store().list_events(run_id=run_id)]


def _kickoff(**crew_options: Any) -> tuple[str, int, list[Any], int, int]:
    crew, llm, tool, steps = make_crew(**crew_options)
    output = crew.kickoff()
    return output.raw, len(llm.prompts), llm.prompts, len(steps), tool.runs  # type: ignore[attr-defined]


# ------------------------------------------------------------------- recording
def test_a_kickoff_is_a_run_with_its_task_agent_tool_and_llm_calls(
    handles: list[InstrumentationHandle],
) -> None:
    handle = _instrument(handles)
    crew, llm, tool, _ = make_crew()
    output = crew.kickoff()
    _settle(handle)

    assert output.raw == "The sum is 5"
    run = _only_crew_run()
    assert run.status == "succeeded"
    assert run.duration_ms is not None and run.duration_ms >= 0
    events = _events(run.run_id)
    types = [e.type for e in events]
    for expected in (
        EventType.AGENT_START,
        EventType.AGENT_END,
        EventType.TASK_START,
        EventType.TASK_COMPLETE,
        EventType.STEP_START,
        EventType.STEP_END,
    ):
        assert types.count(expected) == 1, (expected, types)
    assert types.count(EventType.TOOL_CALL_START) == types.count(EventType.TOOL_CALL_END) == 1
    assert types.count(EventType.LLM_CALL_START) == types.count(EventType.LLM_CALL_END) == 2
    assert {e.correlation_id for e in events} == {run.run_id}  # no run open: the crew's own

    tool_end = next(e for e in events if e.type == EventType.TOOL_CALL_END)
    assert tool_end.name == "adder"
    assert tool_end.attributes["status"] == "succeeded"
    assert tool_end.attributes["gen_ai.tool.name"] == "adder"
    assert tool_end.attributes["duration_ms"] >= 0
    assert "arguments" not in tool_end.attributes and "result" not in tool_end.attributes

    llm_ends = [e for e in events if e.type == EventType.LLM_CALL_END]
    for end in llm_ends:
        assert end.name == "scripted-model"
        assert end.attributes["gen_ai.usage.input_tokens"] == 40
        assert end.attributes["gen_ai.usage.output_tokens"] == 12
        assert end.attributes["gen_ai.response.finish_reasons"] == ["stop"]
        assert end.attributes["duration_ms"] >= 0

    # Spans: the run's span holds the task; the agent step holds the tool and LLM calls.
    start = next(e for e in events if e.type == EventType.AGENT_START)
    step = next(e for e in events if e.type == EventType.STEP_START)
    task = next(e for e in events if e.type == EventType.TASK_START)
    assert step.name == "agent calculator"
    assert step.parent_span_id == start.span_id == task.span_id
    assert {e.span_id for e in events if e.type.startswith(("tool.", "llm."))} == {step.span_id}
    step_end = next(e for e in events if e.type == EventType.STEP_END)
    assert step_end.span_id == step.span_id
    assert agentkeel.get_store().list_failures(run_id=run.run_id) == []
    assert handle.get_health_status()["state"] == "healthy"
    assert tool.runs == 1 and len(llm.prompts) == 2  # type: ignore[attr-defined]


def test_content_is_captured_only_when_asked(handles: list[InstrumentationHandle]) -> None:
    handle = _instrument(handles, capture_content=True)
    crew, *_ = make_crew()
    crew.kickoff()
    _settle(handle)

    events = _events(_only_crew_run().run_id)
    tool_start = next(e for e in events if e.type == EventType.TOOL_CALL_START)
    tool_end = next(e for e in events if e.type == EventType.TOOL_CALL_END)
    assert json.loads(tool_start.attributes["arguments"]) == {"a": 2, "b": 3}
    assert tool_end.attributes["result"] == "5"
    task_end = next(e for e in events if e.type == EventType.TASK_COMPLETE)
    assert task_end.attributes["output"] == "The sum is 5"
    llm_start = next(e for e in events if e.type == EventType.LLM_CALL_START)
    assert "Add 2 and 3." in str(llm_start.attributes["messages"])


def test_a_crew_kicked_off_inside_a_run_is_its_child(handles: list[InstrumentationHandle]) -> None:
    handle = _instrument(handles)
    with agentkeel.run("nightly-batch", user_id="u-7") as outer:
        crew, *_ = make_crew()
        crew.kickoff()
    _settle(handle)

    run = _only_crew_run()
    assert run.parent_run_id == outer.run_id
    assert run.user_id == "u-7"
    events = _events(run.run_id)
    assert {e.correlation_id for e in events} == {outer.correlation_id}
    start = next(e for e in events if e.type == EventType.AGENT_START)
    assert start.parent_span_id == outer.span_id


def test_the_run_id_is_derived_from_the_kickoff_event(handles: list[InstrumentationHandle]) -> None:
    from crewai.events.types.crew_events import CrewKickoffStartedEvent

    seen: list[str] = []

    def remember(source: Any, event: Any) -> None:
        seen.append(event.event_id)

    crewai_event_bus.on(CrewKickoffStartedEvent)(remember)
    try:
        handle = _instrument(handles)
        crew, *_ = make_crew()
        crew.kickoff()
        _settle(handle)
    finally:
        crewai_event_bus.off(CrewKickoffStartedEvent, remember)
    assert _only_crew_run().run_id == run_id_for_kickoff(seen[0])


# -------------------------------------------------------------------- failures
def test_a_failing_tool_is_recorded_as_a_failure_and_the_crew_goes_on(
    handles: list[InstrumentationHandle],
) -> None:
    handle = _instrument(handles)
    crew, _, tool, _ = make_crew(tool=BrokenTool())
    output = crew.kickoff()
    _settle(handle)

    assert tool.runs >= 1  # type: ignore[attr-defined]
    assert output.raw == "The sum is 5"  # CrewAI hands the error to the model, which answers
    run = _only_crew_run()
    assert run.status == "succeeded"
    failures = agentkeel.get_store().list_failures(run_id=run.run_id)
    assert failures, "the tool error was not recorded"
    assert {f.tool_name for f in failures} == {"adder"}
    assert {f.error_type for f in failures} == {"ConnectionError"}
    assert {f.category for f in failures} == {"network"}
    ends = [e for e in _events(run.run_id) if e.type == EventType.TOOL_CALL_END]
    assert ends and all(e.attributes["status"] == "failed" for e in ends)
    assert ends[0].attributes["error_message"] == "calculator backend unreachable"


def test_an_unknown_tool_is_a_tool_not_found_failure(handles: list[InstrumentationHandle]) -> None:
    handle = _instrument(handles)
    crew, *_ = make_crew(
        [
            'Thought: use it\nAction: multiplier\nAction Input: {"a": 2, "b": 3}',
            "Thought: done\nFinal Answer: 6",
        ]
    )
    crew.kickoff()
    _settle(handle)
    failures = agentkeel.get_store().list_failures(run_id=_only_crew_run().run_id)
    assert [f.category for f in failures] == ["tool_not_found"]
    assert failures[0].tool_name == "multiplier"


def test_a_failing_model_fails_the_run(handles: list[InstrumentationHandle]) -> None:
    handle = _instrument(handles)
    crew, *_ = make_crew(fail_with="upstream model overloaded (503)")
    with pytest.raises(RuntimeError, match="overloaded"):
        crew.kickoff()
    _settle(handle)

    run = _only_crew_run()
    assert run.status == "failed"
    events = _events(run.run_id)
    llm_end = next(e for e in events if e.type == EventType.LLM_CALL_END)
    assert llm_end.attributes["status"] == "failed"
    assert [e.type for e in events].count(EventType.TASK_FAIL) == 1
    assert EventType.AGENT_ERROR in [e.type for e in events]
    failures = agentkeel.get_store().list_failures(run_id=run.run_id)
    assert {f.error_type for f in failures} == {"LLMCallFailed", "CrewKickoffFailed"}


# ------------------------------------------------ never change the agent's behaviour
def test_instrumentation_changes_neither_output_nor_steps(
    handles: list[InstrumentationHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = _kickoff()

    handle = _instrument(handles)
    observed = _kickoff()
    _settle(handle)
    handle.uninstrument()

    def broken(self: CrewAIInstrumentor, source: Any, event: Any, state: Any) -> None:
        raise RuntimeError("agentkeel bug injected on every callback")

    monkeypatch.setattr(CrewAIInstrumentor, "_handle", broken)
    faulty_handle = _instrument(handles)
    faulty = _kickoff()
    crewai_event_bus.flush(timeout=10)

    assert bare[0] == "The sum is 5"
    assert observed == bare  # same output, model calls, prompts, steps, tool runs
    assert faulty == bare
    status = faulty_handle.get_health_status()
    assert status["error_count"] > 0
    assert status["state"] == "degraded"


def test_a_faulty_instrumentor_degrades_then_recovers(
    handles: list[InstrumentationHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(wall_offset=0.0)
    config = RobustConfig(max_consecutive_errors=3, error_recovery_timeout=30.0)
    handle = direct_instrument_crewai(config=config, clock=clock)
    handles.append(handle)

    def broken(self: CrewAIInstrumentor, source: Any, event: Any, state: Any) -> None:
        raise RuntimeError("agentkeel bug injected on every callback")

    with monkeypatch.context() as patch:
        patch.setattr(CrewAIInstrumentor, "_handle", broken)
        assert _kickoff()[0] == "The sum is 5"
        crewai_event_bus.flush(timeout=10)
    assert handle.get_health_status()["state"] == "degraded"

    clock.now += 29.0
    assert handle.get_health_status()["state"] == "degraded"  # not yet
    clock.now += 2.0
    assert handle.get_health_status()["state"] == "recovering"
    assert _kickoff()[0] == "The sum is 5"
    _settle(handle)
    status = handle.get_health_status()
    assert status["state"] == "healthy"
    assert status["recovery_attempts"] == 1
    assert _only_crew_run().status == "succeeded"  # the healthy kickoff was recorded


# ----------------------------------------------------------------- lifecycle
def test_uninstrument_unregisters_every_handler(handles: list[InstrumentationHandle]) -> None:
    def ours() -> int:
        return sum(
            1
            for handlers in crewai_event_bus._sync_handlers.values()
            for handler in handlers
            if handler.__name__.startswith("agentkeel_")
        )

    before = ours()
    handle = _instrument(handles)
    assert ours() == before + 20
    assert handle.instrumentor.is_instrumented
    handle.uninstrument()
    assert ours() == before
    handle.uninstrument()  # twice is fine

    crew, *_ = make_crew()
    crew.kickoff()
    crewai_event_bus.flush(timeout=10)
    agentkeel.flush()
    assert [r for r in agentkeel.get_store().list_runs() if r.name == "calc-crew"] == []


def test_instrumenting_twice_registers_once(handles: list[InstrumentationHandle]) -> None:
    instrumentor = CrewAIInstrumentor()
    first = instrumentor.instrument()
    handles.append(first)
    instrumentor.instrument()
    crew, *_ = make_crew()
    crew.kickoff()
    _settle(first)
    events = _events(_only_crew_run().run_id)
    assert [e.type for e in events].count(EventType.AGENT_START) == 1


def test_the_lazy_entry_point_and_the_subpackage_agree(
    handles: list[InstrumentationHandle],
) -> None:
    handle = _instrument(handles)
    assert isinstance(handle, InstrumentationHandle)
    assert isinstance(handle.instrumentor, CrewAIInstrumentor)
    assert handle.instrumentor.framework == "crewai"
    assert "crewai" in repr(handle)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"config": {"max_consecutive_errors": 3}}, "config must be a RobustConfig"),
        ({"capture_content": "yes"}, "capture_content must be True or False"),
        ({"record_failures": None}, "record_failures must be True or False"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        instrument_crewai(**options)


def test_failures_can_be_left_to_the_user(handles: list[InstrumentationHandle]) -> None:
    handle = _instrument(handles, record_failures=False)
    crew, *_ = make_crew(tool=BrokenTool())
    crew.kickoff()
    _settle(handle)
    run = _only_crew_run()
    assert agentkeel.get_store().list_failures(run_id=run.run_id) == []
    ends = [e for e in _events(run.run_id) if e.type == EventType.TOOL_CALL_END]
    assert ends and ends[0].attributes["status"] == "failed"


def test_the_scripted_replies_are_what_the_tests_think() -> None:
    # Guards the fakes: if CrewAI stopped parsing the script, every comparison above
    # would compare two broken runs.
    output, llm_calls, _, steps, tool_runs = _kickoff()
    assert (output, llm_calls, steps, tool_runs) == ("The sum is 5", 2, 2, 1)
    assert TOOL_THEN_ANSWER[1].endswith("The sum is 5")
