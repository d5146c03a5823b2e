"""AutoGen through its event loggers and a recording client, offline with the replay client."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from _autogen_fakes import MODEL_INFO as REPLAY_MODEL_INFO
from _autogen_fakes import (
    LoggingReplayClient,
    broken_add,
    make_agent,
    replay_client,
    script,
)
from _no_network import no_network
from autogen_agentchat import EVENT_LOGGER_NAME as AGENTCHAT_LOGGER
from autogen_core import EVENT_LOGGER_NAME as CORE_LOGGER
from autogen_core.logging import LLMCallEvent, MessageHandlerExceptionEvent
from autogen_core.models import UserMessage
from autogen_core.tools import FunctionTool
from fake_clock import FakeClock

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.integrations import InstrumentationHandle, RobustConfig, instrument_autogen
from agentkeel.integrations.autogen import AutoGenInstrumentor, KeelChatCompletionClient

__all__ = ["no_network"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.usefixtures("no_network")


def _instrument(handles: list[InstrumentationHandle], **options: Any) -> AutoGenInstrumentor:
    handle = instrument_autogen(**options)
    handles.append(handle)
    instrumentor = handle.instrumentor
    assert isinstance(instrumentor, AutoGenInstrumentor)
    return instrumentor


async def _run_agent(client: Any, *, tool: Any = None, stream: bool = False) -> list[str]:
    agent = make_agent(client, stream=stream) if tool is None else make_agent(client, tool=tool)
    async with agentkeel.run("calc-agent"):
        result = await agent.run(task="Add 2 and 3.")
    return [f"{type(m).__name__}:{m.to_text()}" for m in result.messages]


def _run(client: Any, **options: Any) -> list[str]:
    return asyncio.run(_run_agent(client, **options))


def _events() -> list[Any]:
    agentkeel.flush()
    store = agentkeel.get_store()
    runs = store.list_runs(name="calc-agent")  # newest first: the run under test
    assert runs, "no run was recorded"
    return [s.event for s in store.list_events(run_id=runs[0].run_id)]


def _types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


# ------------------------------------------------------------------- recording
def test_tool_and_llm_calls_are_recorded(handles: list[InstrumentationHandle]) -> None:
    instrumentor = _instrument(handles)
    inner = replay_client()
    messages = _run(instrumentor.wrap_client(inner))

    assert messages[-1] == "TextMessage:The sum is 5"
    events = _events()
    types = _types(events)
    assert types.count(EventType.TOOL_CALL_START) == types.count(EventType.TOOL_CALL_END) == 1
    assert types.count(EventType.LLM_CALL_START) == types.count(EventType.LLM_CALL_END) == 2
    tool_start = next(e for e in events if e.type == EventType.TOOL_CALL_START)
    tool_end = next(e for e in events if e.type == EventType.TOOL_CALL_END)
    assert tool_start.name == tool_end.name == "add"
    assert tool_start.attributes["gen_ai.tool.call.id"] == "call-1"
    assert tool_start.attributes["agent"] == "calc"
    assert "arguments" not in tool_start.attributes
    assert tool_end.attributes["status"] == "succeeded"
    assert tool_end.attributes["duration_ms"] >= 0
    ends = [e for e in events if e.type == EventType.LLM_CALL_END]
    assert [e.attributes["gen_ai.usage.input_tokens"] for e in ends] == [30, 45]
    assert [e.attributes["gen_ai.usage.output_tokens"] for e in ends] == [8, 6]
    assert [e.attributes["gen_ai.response.finish_reasons"] for e in ends] == [
        ["function_calls"],
        ["stop"],
    ]
    assert ends[0].attributes["tool_calls"] == ["add"]
    assert all(e.attributes["duration_ms"] >= 0 for e in ends)
    assert {e.name for e in ends} == {"ReplayChatCompletionClient"}
    # Everything sits in the run it happened in, in order.
    run_start = events[0]
    assert run_start.type == EventType.AGENT_START
    assert {e.correlation_id for e in events} == {run_start.correlation_id}
    assert types.index(EventType.TOOL_CALL_START) < types.index(EventType.TOOL_CALL_END)
    assert instrumentor.get_health_status()["state"] == "healthy"


def test_content_is_captured_only_when_asked(handles: list[InstrumentationHandle]) -> None:
    instrumentor = _instrument(handles, capture_content=True)
    _run(instrumentor.wrap_client(replay_client(), name="replay-model"))
    events = _events()
    tool_start = next(e for e in events if e.type == EventType.TOOL_CALL_START)
    tool_end = next(e for e in events if e.type == EventType.TOOL_CALL_END)
    assert json.loads(tool_start.attributes["arguments"]) == {"a": 2, "b": 3}
    assert tool_end.attributes["result"] == "5"
    llm_start = next(e for e in events if e.type == EventType.LLM_CALL_START)
    assert llm_start.name == "replay-model"
    assert "Add 2 and 3." in json.dumps(llm_start.attributes["messages"])
    last_end = [e for e in events if e.type == EventType.LLM_CALL_END][-1]
    assert last_end.attributes["response"] == "The sum is 5"


def test_a_failing_tool_is_recorded_as_a_failure(handles: list[InstrumentationHandle]) -> None:
    instrumentor = _instrument(handles)
    failing = FunctionTool(broken_add, name="add", description="Add two integers.")
    messages = _run(instrumentor.wrap_client(replay_client()), tool=failing)

    assert messages[-1] == "TextMessage:The sum is 5"  # the agent carries on
    events = _events()
    tool_end = next(e for e in events if e.type == EventType.TOOL_CALL_END)
    assert tool_end.attributes["status"] == "failed"
    assert "calculator backend unreachable" in tool_end.attributes["error_message"]
    failures = agentkeel.get_store().list_failures(run_id=events[0].run_id)
    assert [(f.tool_name, f.error_type) for f in failures] == [("add", "ToolError")]


def test_a_failing_model_call_is_recorded_and_raised_unchanged(
    handles: list[InstrumentationHandle],
) -> None:
    instrumentor = _instrument(handles)
    wrapped = instrumentor.wrap_client(replay_client())
    boom = TimeoutError("model did not answer in 30 s")

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise boom

    wrapped.client.create = fail

    async def call() -> None:
        async with agentkeel.run("calc-agent"):
            await wrapped.create([UserMessage(content="hi", source="user")])

    with pytest.raises(TimeoutError) as raised:
        asyncio.run(call())
    assert raised.value is boom
    events = _events()
    end = next(e for e in events if e.type == EventType.LLM_CALL_END)
    assert end.attributes["status"] == "failed"
    assert end.attributes["error_type"] == "TimeoutError"
    failures = agentkeel.get_store().list_failures(run_id=events[0].run_id)
    assert [(f.error_type, f.category) for f in failures] == [("TimeoutError", "timeout")]


def test_streaming_calls_are_recorded_and_streamed_unchanged(
    handles: list[InstrumentationHandle],
) -> None:
    bare = _run(replay_client(), stream=True)
    instrumentor = _instrument(handles)
    observed = _run(instrumentor.wrap_client(replay_client()), stream=True)
    assert observed == bare
    ends = [e for e in _events() if e.type == EventType.LLM_CALL_END]
    assert [e.attributes["gen_ai.usage.output_tokens"] for e in ends] == [8, 6]


def test_llm_events_logged_by_the_client_are_recorded_once(
    handles: list[InstrumentationHandle],
) -> None:
    _instrument(handles)
    _run(LoggingReplayClient(script(), model_info=REPLAY_MODEL_INFO))  # not wrapped
    ends = [e for e in _events() if e.type == EventType.LLM_CALL_END]
    assert [e.name for e in ends] == ["gpt-test", "gpt-test"]
    assert [e.attributes["gen_ai.usage.input_tokens"] for e in ends] == [30, 45]
    assert ends[1].attributes["gen_ai.response.finish_reasons"] == ["stop"]
    agentkeel.shutdown()

    instrumentor = _instrument(handles)  # wrapped: the wrapper's record, not the log's
    _run(instrumentor.wrap_client(LoggingReplayClient(script(), model_info=REPLAY_MODEL_INFO)))
    ends = [e for e in _events() if e.type == EventType.LLM_CALL_END]
    assert [e.name for e in ends] == ["LoggingReplayClient", "LoggingReplayClient"]


def test_handler_exceptions_are_failures(handles: list[InstrumentationHandle]) -> None:
    from autogen_core import AgentId

    _instrument(handles)

    async def main() -> None:
        async with agentkeel.run("calc-agent"):
            logging.getLogger(CORE_LOGGER).error(
                MessageHandlerExceptionEvent(
                    payload="{}",
                    handling_agent=AgentId("calc", "default"),
                    exception=ValueError("bad payload"),
                )
            )

    asyncio.run(main())
    failures = agentkeel.get_store().list_failures(run_id=_events()[0].run_id)
    assert [(f.error_type, f.error_message, f.graph_node) for f in failures] == [
        ("MessageHandlerException", "bad payload", "calc/default")
    ]


# ------------------------------------------------ never change the agent's behaviour
def test_instrumentation_changes_nothing_the_agent_does(
    handles: list[InstrumentationHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare_client = replay_client()
    bare = _run(bare_client)

    instrumentor = _instrument(handles)
    observed_client = replay_client()
    observed = _run(instrumentor.wrap_client(observed_client))
    instrumentor.uninstrument()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("agentkeel bug injected on every callback")

    monkeypatch.setattr(AutoGenInstrumentor, "_on_record", broken)
    monkeypatch.setattr(KeelChatCompletionClient, "_started", broken)
    monkeypatch.setattr(KeelChatCompletionClient, "_finished", broken)
    faulty_instrumentor = _instrument(handles)
    faulty_client = replay_client()
    faulty = _run(faulty_instrumentor.wrap_client(faulty_client))

    assert bare[-1] == "TextMessage:The sum is 5"
    assert observed == faulty == bare
    calls = [len(c.create_calls) for c in (bare_client, observed_client, faulty_client)]
    assert calls == [2, 2, 2]
    assert observed_client.create_calls[1]["messages"] == bare_client.create_calls[1]["messages"]
    status = faulty_instrumentor.get_health_status()
    assert status["error_count"] >= 4
    assert status["state"] == "degraded"


def test_a_faulty_instrumentor_degrades_then_recovers(
    handles: list[InstrumentationHandle], monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(wall_offset=0.0)
    instrumentor = _instrument(
        handles,
        config=RobustConfig(max_consecutive_errors=3, error_recovery_timeout=30.0),
        clock=clock,
    )

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("agentkeel bug injected on every callback")

    with monkeypatch.context() as patch:
        patch.setattr(AutoGenInstrumentor, "_on_record", broken)
        patch.setattr(KeelChatCompletionClient, "_started", broken)
        patch.setattr(KeelChatCompletionClient, "_finished", broken)
        assert _run(instrumentor.wrap_client(replay_client()))[-1].endswith("The sum is 5")
    assert instrumentor.get_health_status()["state"] == "degraded"

    clock.now += 29.0
    assert instrumentor.get_health_status()["state"] == "degraded"
    clock.now += 2.0
    assert instrumentor.get_health_status()["state"] == "recovering"
    agentkeel.shutdown()
    _run(instrumentor.wrap_client(replay_client()))
    status = instrumentor.get_health_status()
    assert status["state"] == "healthy"
    assert status["recovery_attempts"] == 1
    assert EventType.TOOL_CALL_END in _types(_events())


def test_the_loggers_output_is_unchanged(handles: list[InstrumentationHandle]) -> None:
    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, str]] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.seen.append((record.name, type(record.msg).__name__))

    collect = Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    core = logging.getLogger(CORE_LOGGER)
    core.setLevel(logging.INFO)  # a user who wants AutoGen's INFO events
    try:
        _run(replay_client())
        bare = list(collect.seen)
        collect.seen.clear()
        instrumentor = _instrument(handles)
        assert logging.getLogger(AGENTCHAT_LOGGER).level == logging.DEBUG
        _run(instrumentor.wrap_client(replay_client()))
        assert collect.seen == bare
        assert ("autogen_core.events", "ToolCallEvent") in bare  # INFO: shown before too
        assert all(name != AGENTCHAT_LOGGER for name, _ in bare)  # DEBUG: hidden, still
    finally:
        root.removeHandler(collect)
        core.setLevel(logging.NOTSET)


# ----------------------------------------------------------------- lifecycle
def test_uninstrument_stops_every_event(handles: list[InstrumentationHandle]) -> None:
    agentchat = logging.getLogger(AGENTCHAT_LOGGER)
    before = (agentchat.level, list(agentchat.filters))
    instrumentor = _instrument(handles)
    wrapped = instrumentor.wrap_client(replay_client())
    assert agentchat.level == logging.DEBUG and len(agentchat.filters) == len(before[1]) + 1
    instrumentor.uninstrument()
    assert (agentchat.level, list(agentchat.filters)) == before

    messages = _run(wrapped)
    assert messages[-1] == "TextMessage:The sum is 5"
    types = _types(_events())
    assert types == [EventType.AGENT_START, EventType.AGENT_END]  # the run, nothing from us
    assert instrumentor.get_health_status()["callbacks"] == 0


def test_a_standalone_wrapper_needs_no_instrument_call() -> None:
    _run(KeelChatCompletionClient(replay_client(), name="replay"))
    types = _types(_events())
    assert types.count(EventType.LLM_CALL_END) == 2
    assert EventType.TOOL_CALL_START not in types  # the loggers were left alone


def test_the_wrapper_passes_the_rest_through() -> None:
    inner = replay_client()
    wrapped = KeelChatCompletionClient(inner)
    assert wrapped.model_info == inner.model_info
    messages = [UserMessage(content="hello there", source="user")]
    assert wrapped.count_tokens(messages) == inner.count_tokens(messages)
    assert wrapped.remaining_tokens(messages) == inner.remaining_tokens(messages)
    assert wrapped.total_usage() == inner.total_usage()
    assert wrapped.actual_usage() == inner.actual_usage()
    assert "ReplayChatCompletionClient" in repr(wrapped)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: instrument_autogen(capture_content=1), "capture_content must be True or False"),
        (lambda: instrument_autogen(config=0.5), "config must be a RobustConfig"),
        (lambda: KeelChatCompletionClient(object()), "wraps an autogen ChatCompletionClient"),
        (lambda: KeelChatCompletionClient(replay_client(), name=" "), "name must be"),
        (
            lambda: KeelChatCompletionClient(replay_client(), instrumentor=object()),
            "instrumentor must be an AutoGenInstrumentor",
        ),
    ],
)
def test_bad_inputs_are_configuration_errors(make: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_a_logged_llm_call_outside_any_client_is_recorded(
    handles: list[InstrumentationHandle],
) -> None:
    _instrument(handles, capture_content=True)

    async def main() -> None:
        async with agentkeel.run("calc-agent"):
            logging.getLogger(CORE_LOGGER).info(
                LLMCallEvent(
                    messages=[{"role": "user", "content": "hi"}],
                    response={"model": "m-1"},
                    prompt_tokens=3,
                    completion_tokens=4,
                )
            )

    asyncio.run(main())
    end = next(e for e in _events() if e.type == EventType.LLM_CALL_END)
    assert end.name == "m-1"
    assert end.attributes["gen_ai.usage.output_tokens"] == 4
    assert end.attributes["response"] == {"model": "m-1"}
