"""instrument_openai with retries, fallback and timeouts, against scripted server faults.

Our Retry sleeps on a fake clock, so a Retry-After of 30 s costs nothing and the delay
actually used can be asserted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _openai_server import (
    OpenAIServer,
    bad_request,
    dropped,
    malformed,
    rate_limited,
    server_error,
    slow,
)
from fake_clock import FakeClock

import agentkeel
from agentkeel import EventType
from agentkeel.events import Event
from agentkeel.integrations.openai import (
    instrument_openai,
    openai_error_category,
    openai_retry,
    openai_retry_after,
    retryable_openai_error,
)
from agentkeel.resilience import CircuitBreaker, CircuitBreakerConfig, Retry
from agentkeel.tracking import FailureTracker, use_failure_tracker

MESSAGES = [{"role": "user", "content": "plan my trip"}]


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as running:
        yield running


@pytest.fixture
def client(server: OpenAIServer) -> Iterator[openai.OpenAI]:
    # The SDK's default max_retries (2): our retry must turn it off for its own calls.
    with openai.OpenAI(base_url=server.base_url, api_key="k") as sync:
        yield sync


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[FailureTracker]:
    with FailureTracker(runtime_dir=tmp_path) as recording, use_failure_tracker(recording):
        yield recording


def retry(clock: FakeClock, **options: Any) -> Retry:
    options.setdefault("jitter", False)
    return openai_retry(clock=clock, sleep=clock.sleep, async_sleep=clock.async_sleep, **options)


def stored(*types: str) -> list[Event]:
    assert agentkeel.flush(timeout=5)
    return [row.event for row in agentkeel.get_store().list_events(types=list(types))]


def sdk_retry_counts(server: OpenAIServer) -> list[str]:
    return [r.headers.get("x-stainless-retry-count", "?") for r in server.requests]


# -- Retry-After -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected_delay"),
    [
        (rate_limited(retry_after=30), 30.0),
        (rate_limited(retry_after_ms=1500), 1.5),
        (rate_limited(retry_after=30, retry_after_ms=2500), 2.5),  # the precise one wins
    ],
)
def test_a_429_is_retried_after_the_delay_the_server_asked_for(
    client: openai.OpenAI,
    server: OpenAIServer,
    clock: FakeClock,
    tracker: FailureTracker,
    fault: Any,
    expected_delay: float,
) -> None:
    instrument_openai(client, retry=retry(clock))
    server.push(fault)
    result = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert result.choices[0].finish_reason == "stop"
    assert clock.sleeps == [expected_delay]
    assert len(server.requests) == 2
    assert sdk_retry_counts(server) == ["0", "0"]  # the SDK did not retry on its own
    (failure,) = tracker.failures
    assert failure.category == "rate_limit"
    assert failure.attributes["retry_after_s"] == expected_delay
    assert tracker.get_summary()["recovered"] == 1
    (retry_event,) = stored(EventType.RETRY)
    assert retry_event.attributes["reason"] == "retry_after"
    assert retry_event.attributes["delay_s"] == expected_delay
    ends = stored(EventType.LLM_CALL_END)
    assert [e.attributes["status"] for e in ends] == ["failed", "succeeded"]
    assert [e.attributes["attempt"] for e in ends] == [1, 2]


def test_a_500_then_a_503_are_retried_until_success(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock, tracker: FailureTracker
) -> None:
    instrument_openai(client, retry=retry(clock, attempts=3))
    server.push(server_error(500), server_error(503))
    client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert len(server.requests) == 3
    assert clock.sleeps == [0.5, 1.0]  # the SDK-like backoff, no Retry-After sent
    assert [f.category for f in tracker.failures] == ["network", "network"]
    assert all(f.recovered for f in tracker.failures)


def test_retries_stop_at_the_attempt_limit_and_raise_the_last_error(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock
) -> None:
    instrument_openai(client, retry=retry(clock, attempts=2))
    server.always("gpt-test", server_error(503))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.status_code == 503
    assert len(server.requests) == 2
    assert stored(EventType.RETRY)[-1].attributes["reason"] == "attempts_exhausted"


def test_without_our_retry_the_sdks_own_retries_are_left_alone(
    client: openai.OpenAI, server: OpenAIServer
) -> None:
    instrument_openai(client)
    server.push(rate_limited(retry_after_ms=1))
    client.chat.completions.create(model="m", messages=MESSAGES)
    assert sdk_retry_counts(server) == ["0", "1"]  # the SDK retried, as it would bare


def test_a_400_is_not_retried(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock, tracker: FailureTracker
) -> None:
    instrument_openai(client, retry=retry(clock))
    server.push(bad_request())
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(server.requests) == 1
    assert clock.sleeps == []
    assert [f.category for f in tracker.failures] == ["validation"]


def test_a_malformed_body_is_a_parsing_failure_and_is_not_retried(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock, tracker: FailureTracker
) -> None:
    instrument_openai(client, retry=retry(clock))
    server.push(malformed())
    with pytest.raises(ValueError, match="Expecting"):  # json.JSONDecodeError, from the SDK
        client.chat.completions.create(model="m", messages=MESSAGES)
    assert len(server.requests) == 1
    assert [f.category for f in tracker.failures] == ["parsing"]


# -- timeouts and dropped connections ------------------------------------------------


def test_a_slow_answer_becomes_a_timeout_failure_and_is_retried(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock, tracker: FailureTracker
) -> None:
    instrument_openai(client, retry=retry(clock), timeout=0.2)
    server.push(slow(10))
    result = client.chat.completions.create(model="m", messages=MESSAGES)
    assert result.choices[0].message.content
    assert len(server.requests) == 2
    (failure,) = tracker.failures
    assert failure.category == "timeout"
    assert failure.error_type == "APITimeoutError"
    assert failure.recovered


def test_the_callers_own_timeout_wins_over_ours(
    client: openai.OpenAI, server: OpenAIServer, tracker: FailureTracker
) -> None:
    no_sdk_retries = client.with_options(max_retries=0)
    instrument_openai(no_sdk_retries, timeout=30)
    server.push(slow(10))  # ours would wait for it; the caller's 0.2 s does not
    with pytest.raises(openai.APITimeoutError):
        no_sdk_retries.chat.completions.create(model="m", messages=MESSAGES, timeout=0.2)
    assert [f.category for f in tracker.failures] == ["timeout"]
    assert "timeout" not in server.requests[0].body  # a client option, never in the body


def test_a_connection_dropped_mid_answer_is_a_network_failure(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock, tracker: FailureTracker
) -> None:
    instrument_openai(client, retry=retry(clock))
    server.push(dropped())
    client.chat.completions.create(model="m", messages=MESSAGES)
    (failure,) = tracker.failures
    assert failure.error_type == "APIConnectionError"
    assert failure.category == "network"
    assert failure.recovered


# -- fallback ------------------------------------------------------------------------


def test_fallback_to_another_model_when_the_primary_keeps_failing(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock, tracker: FailureTracker
) -> None:
    instrument_openai(
        client, retry=retry(clock, attempts=2), fallback_models=["gpt-small", "gpt-local"]
    )
    server.always("gpt-big", server_error(503))
    server.always("gpt-small", rate_limited(retry_after=1))
    result = client.chat.completions.create(model="gpt-big", messages=MESSAGES)
    assert result.model.startswith("gpt-local")
    assert server.models_asked() == ["gpt-big", "gpt-big", "gpt-small", "gpt-local"]
    (fallback,) = stored(EventType.FALLBACK)
    assert fallback.attributes["outcome"] == "answered"
    assert fallback.attributes["answered_by"] == "gpt-local"
    ends = stored(EventType.LLM_CALL_END)
    assert [(e.name, e.attributes["status"]) for e in ends] == [
        ("gpt-big", "failed"),
        ("gpt-big", "failed"),
        ("gpt-small", "failed"),
        ("gpt-local", "succeeded"),
    ]
    assert ends[-1].attributes["fallback_from"] == "gpt-big"
    assert len(tracker.failures) == 3
    assert all(f.recovered for f in tracker.failures)
    assert tracker.failures[0].recovery_action == "fallback: answered by gpt-local"


def test_a_400_does_not_fall_back(
    client: openai.OpenAI, server: OpenAIServer, clock: FakeClock
) -> None:
    instrument_openai(client, fallback_models=["gpt-small"])
    server.push(bad_request())
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-big", messages=MESSAGES)
    assert server.models_asked() == ["gpt-big"]


def test_async_retry_and_fallback(server: OpenAIServer, clock: FakeClock) -> None:
    async def scenario() -> str:
        async with openai.AsyncOpenAI(base_url=server.base_url, api_key="k") as aclient:
            instrument_openai(
                aclient, retry=retry(clock, attempts=2), fallback_models=["gpt-small"]
            )
            result = await aclient.chat.completions.create(model="gpt-big", messages=MESSAGES)
            return result.model

    server.push(rate_limited(retry_after=7, model="gpt-big"))
    server.push(server_error(500, model="gpt-big"))
    model = asyncio.run(scenario())
    assert model.startswith("gpt-small")
    assert clock.sleeps == [7.0]
    assert server.models_asked() == ["gpt-big", "gpt-big", "gpt-small"]
    assert sdk_retry_counts(server) == ["0", "0", "0"]


def test_an_open_breaker_refuses_without_a_request_and_the_fallback_answers(
    client: openai.OpenAI, server: OpenAIServer
) -> None:
    breaker = CircuitBreaker(
        "openai-test",
        CircuitBreakerConfig(minimum_calls=2, window_size=2, failure_rate_threshold=0.5),
    )
    bare = client.with_options(max_retries=0)
    instrument_openai(bare, breaker=breaker, fallback_models=["gpt-small"])
    server.always("gpt-big", server_error(503))
    for _ in range(3):
        bare.chat.completions.create(model="gpt-big", messages=MESSAGES)
    # Two failures opened the breaker; the third call went to the fallback at once.
    assert server.models_asked() == ["gpt-big", "gpt-small", "gpt-big", "gpt-small", "gpt-small"]
    assert breaker.get_status()["state"] == "open"


# -- the plain functions -------------------------------------------------------------


def status_error(status: int, headers: dict[str, str] | None = None) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, headers=headers or {}, request=request)
    client = openai.OpenAI(api_key="k", base_url="http://127.0.0.1/v1")
    return client._make_status_error("scripted", body=None, response=response)


@pytest.mark.parametrize(
    ("status", "retryable", "category"),
    [
        (429, True, "rate_limit"),
        (500, True, "network"),
        (503, True, "network"),
        (408, True, "timeout"),
        (409, True, "network"),
        (400, False, "validation"),
        (422, False, "validation"),
        (401, False, "auth"),
        (403, False, "auth"),
        (404, False, "configuration"),
    ],
)
def test_status_errors_are_sorted_like_the_sdk_does(
    status: int, retryable: bool, category: str
) -> None:
    error = status_error(status)
    assert retryable_openai_error(error) is retryable
    assert openai_error_category(error) == category


def test_x_should_retry_overrides_the_status() -> None:
    assert retryable_openai_error(status_error(400, {"x-should-retry": "true"}))
    assert not retryable_openai_error(status_error(503, {"x-should-retry": "false"}))


def test_retry_after_headers_are_read() -> None:
    assert openai_retry_after(status_error(429, {"retry-after": "3"})) == 3.0
    assert openai_retry_after(status_error(429, {"retry-after-ms": "250"})) == 0.25
    assert openai_retry_after(status_error(429, {"retry-after": "soon"})) is None
    assert openai_retry_after(status_error(429)) is None
    assert openai_retry_after(ValueError("not an HTTP error")) is None


def test_non_status_errors_are_sorted_too() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/")
    assert retryable_openai_error(openai.APITimeoutError(request))
    assert openai_error_category(openai.APITimeoutError(request)) == "timeout"
    assert retryable_openai_error(openai.APIConnectionError(request=request))
    assert openai_error_category(openai.APIConnectionError(request=request)) == "network"
    stream_error = openai.APIError("error event in a stream", request, body=None)
    assert not retryable_openai_error(stream_error)
    assert openai_error_category(stream_error) == "llm"
    assert not retryable_openai_error(ValueError("bug"))
    assert openai_error_category(ConnectionResetError()) == "network"
