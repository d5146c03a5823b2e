"""Offline AutoGen for tests: a replay model client scripted to call a tool, then answer."""

from __future__ import annotations

import logging
from typing import Any

from autogen_agentchat.agents import AssistantAgent
from autogen_core import EVENT_LOGGER_NAME, FunctionCall
from autogen_core.logging import LLMCallEvent
from autogen_core.models import ChatCompletionClient, CreateResult, ModelInfo, RequestUsage
from autogen_ext.models.replay import ReplayChatCompletionClient

__all__ = [
    "MODEL_INFO",
    "LoggingReplayClient",
    "add",
    "broken_add",
    "make_agent",
    "replay_client",
]

MODEL_INFO = ModelInfo(
    vision=False,
    function_calling=True,
    json_output=False,
    family="unknown",
    structured_output=False,
)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def broken_add(a: int, b: int) -> int:
    """Add two integers (its backend is down)."""
    raise ConnectionError("calculator backend unreachable")


def script() -> list[str | CreateResult]:
    return [
        CreateResult(
            finish_reason="function_calls",
            content=[FunctionCall(id="call-1", name="add", arguments='{"a": 2, "b": 3}')],
            usage=RequestUsage(prompt_tokens=30, completion_tokens=8),
            cached=False,
        ),
        CreateResult(
            finish_reason="stop",
            content="The sum is 5",
            usage=RequestUsage(prompt_tokens=45, completion_tokens=6),
            cached=False,
        ),
    ]


def replay_client() -> ReplayChatCompletionClient:
    return ReplayChatCompletionClient(script(), model_info=MODEL_INFO)


class LoggingReplayClient(ReplayChatCompletionClient):
    """A replay client that logs its calls like AutoGen's real clients (OpenAI, Anthropic …)."""

    async def create(self, messages: Any, **kwargs: Any) -> CreateResult:
        result = await super().create(messages, **kwargs)
        choices = [{"finish_reason": result.finish_reason}]
        logging.getLogger(EVENT_LOGGER_NAME).info(
            LLMCallEvent(
                messages=[{"role": "user", "content": "…"}],
                response={"model": "gpt-test", "choices": choices},
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
            )
        )
        return result


def make_agent(
    client: ChatCompletionClient, *, tool: Any = add, stream: bool = False
) -> AssistantAgent:
    return AssistantAgent(
        "calc",
        model_client=client,
        tools=[tool],
        reflect_on_tool_use=True,
        model_client_stream=stream,
    )
