"""instrument_openai against a real OpenAI-compatible server on loopback: what is recorded.

Sync, async and streaming calls; the events in the store; uninstrument; bad input;
and an instrumentor whose own code fails on every call.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import pytest
from _openai_server import OpenAIServer, bad_request, response_model, stream_dropped
from fake_clock import FakeClock

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.events import Event
from agentkeel.integrations import RobustConfig, instrument_openai
from agentkeel.integrations import instrument_openai as lazy_instrument_openai
from agentkeel.integrations.openai import _record
from agentkeel.integrations.openai._instrumentor import OPERATION
from agentkeel.resilience import Retry
from agentkeel.tracking import FailureTracker, use_failure_tracker

MESSAGES = [{"role": "user", "content": "what is the weather in Lisbon"}]
DOC = Path(__file__).parents[3] / "docs" / "integrations" / "openai.md"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def client(server: OpenAIServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key="test-key", max_retries=0) as sync:
        yield sync


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[FailureTracker]:
    with FailureTracker(runtime_dir=tmp_path) as recording, use_failure_tracker(recording):
        yield recording


def stored(*types: str) -> list[Event]:
    assert agentkeel.flush(timeout=5)
    rows = agentkeel.get_store().list_events(types=list(types) or None)
    return [row.event for row in rows]


# -- what a call records -----------------------------------------------------------


def test_a_sync_call_records_model_tokens_finish_reason_and_latency(
    client: openai.OpenAI,
) -> None:
    bare = openai.OpenAI(base_url=client.base_url, api_key="test-key", max_retries=0)
    expected = bare.chat.completions.create(model="gpt-test", messages=MESSAGES)
    handle = instrument_openai(client)
    result = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert type(result) is type(expected)
    assert result.choices[0].message.content == expected.choices[0].message.content

    start, end = stored(EventType.LLM_CALL_START, EventType.LLM_CALL_END)
    assert start.type == EventType.LLM_CALL_START
    assert start.name == end.name == "gpt-test"
    assert start.attributes["gen_ai.request.model"] == "gpt-test"
    assert start.attributes["gen_ai.system"] == "openai"
    attrs = end.attributes
    assert attrs["status"] == "succeeded"
    assert attrs["gen_ai.response.model"] == response_model("gpt-test")
    assert attrs["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens == 6
    assert attrs["gen_ai.usage.output_tokens"] == result.usage.completion_tokens
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["duration_ms"] > 0
    assert "gen_ai.input.messages" not in start.attributes  # content is opt-in
    assert handle.get_health_status()["state"] == "healthy"
    bare.close()


def test_capture_content_records_prompt_and_answer(client: openai.OpenAI) -> None:
    instrument_openai(client, capture_content=True)
    result = client.chat.completions.create(model="gpt-test", messages=MESSAGES, temperature=0.2)
    start, end = stored(EventType.LLM_CALL_START, EventType.LLM_CALL_END)
    assert start.attributes["gen_ai.input.messages"] == MESSAGES
    assert start.attributes["gen_ai.request.temperature"] == 0.2
    assert end.attributes["gen_ai.output.messages"] == [result.choices[0].message.content]


def test_an_async_client_is_observed_and_its_create_stays_a_coroutine_function(
    server: OpenAIServer,
) -> None:
    async def scenario() -> None:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key="k", max_retries=0
        ) as aclient:
            instrument_openai(aclient)
            assert asyncio.iscoroutinefunction(aclient.chat.completions.create)
            result = await aclient.chat.completions.create(model="gpt-async", messages=MESSAGES)
            assert result.model == response_model("gpt-async")

    asyncio.run(scenario())
    (end,) = stored(EventType.LLM_CALL_END)
    assert end.attributes["gen_ai.response.model"] == response_model("gpt-async")
    assert end.attributes["gen_ai.usage.output_tokens"] > 0


def test_a_sync_stream_is_recorded_when_it_ends(client: openai.OpenAI) -> None:
    instrument_openai(client)
    stream = client.chat.completions.create(
        model="gpt-stream",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert isinstance(stream, openai.Stream)  # the SDK's own object, not a look-alike
    assert stored(EventType.LLM_CALL_END) == []  # not over until it is read
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.startswith("echo:")
    (end,) = stored(EventType.LLM_CALL_END)
    attrs = end.attributes
    assert attrs["stream"] is True
    assert attrs["gen_ai.response.model"] == response_model("gpt-stream")
    assert attrs["gen_ai.usage.input_tokens"] == 6
    assert attrs["gen_ai.usage.output_tokens"] == len(text.split())
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert 0 < attrs["time_to_first_token_ms"] <= attrs["duration_ms"]
    assert "stream_completed" not in attrs


def test_a_stream_without_usage_is_not_changed_to_ask_for_it(
    client: openai.OpenAI, server: OpenAIServer
) -> None:
    instrument_openai(client)
    with client.chat.completions.create(model="m", messages=MESSAGES, stream=True) as stream:
        chunks = list(stream)
    assert "stream_options" not in server.requests[-1].body
    (end,) = stored(EventType.LLM_CALL_END)
    assert "gen_ai.usage.input_tokens" not in end.attributes
    assert end.attributes["stream_chunks"] == len(chunks)


def test_the_stream_helper_goes_through_the_wrapper(client: openai.OpenAI) -> None:
    instrument_openai(client)
    with client.chat.completions.stream(model="m", messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].finish_reason == "stop"
    (end,) = stored(EventType.LLM_CALL_END)
    assert end.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_a_stream_abandoned_early_is_recorded_as_incomplete(client: openai.OpenAI) -> None:
    instrument_openai(client)
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()  # the caller is done with it before its end
    (end,) = stored(EventType.LLM_CALL_END)
    assert end.attributes["status"] == "succeeded"
    assert end.attributes["stream_completed"] is False


def test_an_async_stream_is_recorded(server: OpenAIServer) -> None:
    async def scenario() -> str:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k") as aclient:
            instrument_openai(aclient)
            stream = await aclient.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
            assert isinstance(stream, openai.AsyncStream)
            parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
            return "".join(parts)

    text = asyncio.run(scenario())
    (end,) = stored(EventType.LLM_CALL_END)
    assert end.attributes["gen_ai.usage.output_tokens"] == len(text.split())
    assert end.attributes["gen_ai.response.finish_reasons"] == ["stop"]


def test_a_stream_cut_mid_way_raises_as_before_and_is_a_network_failure(
    client: openai.OpenAI, server: OpenAIServer, tracker: FailureTracker
) -> None:
    instrument_openai(client)
    server.push(stream_dropped())
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    with pytest.raises(Exception, match="incomplete chunked read") as caught:
        list(stream)
    (failure,) = tracker.failures
    assert failure.category == "network"
    assert failure.error_type == type(caught.value).__name__
    (end,) = stored(EventType.LLM_CALL_END)
    assert end.attributes["status"] == "failed"


# -- failures without policies -----------------------------------------------------


def test_an_error_is_raised_unchanged_and_recorded(
    client: openai.OpenAI, server: OpenAIServer, tracker: FailureTracker
) -> None:
    instrument_openai(client)
    server.push(bad_request())
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 400
    (failure,) = tracker.failures
    assert failure.category == "validation"
    assert failure.tool_name == OPERATION
    assert failure.attributes["gen_ai.request.model"] == "gpt-test"
    assert failure.attributes["http.response.status_code"] == 400
    (end,) = stored(EventType.LLM_CALL_END)
    assert end.attributes["status"] == "failed"
    assert end.attributes["error_type"] == "BadRequestError"
    assert end.category == "validation"
    assert len(server.requests) == 1


# -- uninstrument ------------------------------------------------------------------


def test_uninstrument_restores_the_client_exactly_and_stops_events(
    client: openai.OpenAI,
) -> None:
    completions = client.chat.completions
    assert "create" not in vars(completions)
    handle = instrument_openai(client)
    assert "create" in vars(completions)
    handle.uninstrument()
    assert "create" not in vars(completions)
    assert completions.create.__func__ is type(completions).create  # type: ignore[attr-defined]
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert stored(EventType.LLM_CALL_START, EventType.LLM_CALL_END) == []
    handle.uninstrument()  # twice is harmless
    instrument_openai(client)  # and it can be instrumented again
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(stored(EventType.LLM_CALL_END)) == 1


def test_other_clients_are_not_touched(client: openai.OpenAI) -> None:
    other = openai.OpenAI(base_url=client.base_url, api_key="k", max_retries=0)
    instrument_openai(client)
    other.chat.completions.create(model="m", messages=MESSAGES)
    assert stored(EventType.LLM_CALL_END) == []
    other.close()


def test_a_wrapper_installed_over_ours_keeps_working_after_uninstrument(
    client: openai.OpenAI,
) -> None:
    handle = instrument_openai(client)
    ours = client.chat.completions.create
    calls: list[str] = []

    def theirs(**kwargs: Any) -> Any:
        calls.append(kwargs["model"])
        return ours(**kwargs)

    client.chat.completions.create = theirs  # type: ignore[method-assign]
    handle.uninstrument()
    assert client.chat.completions.create is theirs  # not ripped out from under them
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert calls == ["m"]
    assert stored(EventType.LLM_CALL_END) == []  # ours passes calls straight on


def test_instrumenting_a_client_twice_is_refused(client: openai.OpenAI) -> None:
    instrument_openai(client)
    with pytest.raises(ConfigurationError, match="instrumented already"):
        instrument_openai(client)


# -- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("not_a_client", [openai, object(), "client", None])
def test_something_that_is_not_a_client_is_a_configuration_error(not_a_client: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"openai\.OpenAI or openai\.AsyncOpenAI"):
        instrument_openai(not_a_client)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry": "yes"}, "retry must be"),
        ({"retry": 0}, "attempts"),
        ({"fallback_models": "gpt-4o-mini"}, "list of model names"),
        ({"fallback_models": ["ok", ""]}, "non-empty model names"),
        ({"timeout": -1}, "timeout must be seconds"),
        ({"timeout": "10s"}, "timeout must be seconds"),
        ({"breaker": 3}, "breaker must be"),
        ({"config": {"max_consecutive_errors": 1}}, "RobustConfig"),
        ({"capture_content": "no"}, "capture_content"),
    ],
)
def test_bad_options_say_what_to_pass(
    client: openai.OpenAI, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        instrument_openai(client, **options)
    assert "create" not in vars(client.chat.completions)  # nothing half-installed


def test_good_option_forms_are_accepted(client: openai.OpenAI) -> None:
    for retry in (True, 2, Retry(on=openai.APIConnectionError), None, False):
        handle = instrument_openai(client, retry=retry, timeout=timedelta(seconds=5))
        handle.uninstrument()


def test_the_lazy_entry_point_returns_the_same_kind_of_handle(client: openai.OpenAI) -> None:
    with lazy_instrument_openai(client) as handle:
        assert handle.instrumentor.framework == "openai"
        assert handle.get_health_status()["installed"] is True
    assert "create" not in vars(client.chat.completions)


# -- our own failures never reach the caller ---------------------------------------


def test_internals_that_always_fail_leave_results_identical_and_degrade_then_recover(
    client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(100.0)
    config = RobustConfig(max_consecutive_errors=3, error_recovery_timeout=30)
    handle = instrument_openai(client, config=config, clock=clock)
    working_emit = _record.emit_llm_event

    def broken_emit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug in our emit helper")

    monkeypatch.setattr(_record, "emit_llm_event", broken_emit)
    bare = openai.OpenAI(base_url=client.base_url, api_key="test-key", max_retries=0)
    for _ in range(4):
        ours = client.chat.completions.create(model="m", messages=MESSAGES)
        theirs = bare.chat.completions.create(model="m", messages=MESSAGES)
        assert ours.model_dump(exclude={"created"}) == theirs.model_dump(exclude={"created"})
    status = handle.get_health_status()
    assert status["state"] == "degraded"
    assert status["error_count"] >= 3
    assert "bug in our emit helper" in status["last_error"]

    monkeypatch.setattr(_record, "emit_llm_event", working_emit)
    clock.now += 31  # the recovery timeout passes: a probation starts
    assert handle.get_health_status()["state"] == "recovering"
    for _ in range(2):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert handle.get_health_status()["state"] == "healthy"
    assert len(stored(EventType.LLM_CALL_END)) == 2
    bare.close()


def test_a_failing_emit_does_not_hide_the_calls_own_error(
    client: openai.OpenAI, server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = instrument_openai(client)

    def broken_emit(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(_record, "emit_llm_event", broken_emit)
    server.push(bad_request())
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert handle.get_health_status()["error_count"] == 2  # start and end


# -- the docs' example -------------------------------------------------------------


def test_the_docs_example_runs_against_the_test_server(server: OpenAIServer) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert blocks, "docs/integrations/openai.md has no python example"
    example = blocks[0].replace("http://127.0.0.1:8000/v1", server.base_url)
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(example, "openai.md example", "exec"), namespace)
    ends = stored(EventType.LLM_CALL_END)
    assert ends
    assert all(e.attributes["status"] == "succeeded" for e in ends)
