"""A ChatCompletionClient that records every call of the client it wraps.

AutoGen's real clients log an ``LLMCallEvent`` after each call, but without its
latency, its finish reason or a failed call, and test doubles or custom clients log
nothing. Wrapping the client is precise: one LLM_CALL_START before the call, one
LLM_CALL_END after it (latency, tokens from ``CreateResult.usage``, finish reason),
and a failure in the run's FailureTracker when the call raises. The call itself goes
to the inner client untouched, its result or exception returned or raised unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any, Literal

from autogen_core import CancellationToken
from autogen_core.models import (
    ChatCompletionClient,
    CreateResult,
    LLMMessage,
    ModelCapabilities,
    ModelInfo,
    RequestUsage,
)
from autogen_core.tools import Tool, ToolSchema
from pydantic import BaseModel

from agentkeel._errors import ConfigurationError
from agentkeel._runtime import emit
from agentkeel.events import EventType, Severity
from agentkeel.integrations.autogen._instrumentor import (
    AutoGenInstrumentor,
    content,
    inside_wrapped_call,
)
from agentkeel.tracking import get_failure_tracker

__all__ = ["KeelChatCompletionClient"]

_default: AutoGenInstrumentor | None = None
_default_lock = threading.Lock()


def _default_instrumentor() -> AutoGenInstrumentor:
    """The instrumentor behind wrappers made without one: installed, loggers untouched."""
    global _default  # noqa: PLW0603 - one shared instrumentor, created on first use
    with _default_lock:
        if _default is None:
            _default = AutoGenInstrumentor(loggers=False)
            _default.instrument()
        return _default


def _model_name(client: ChatCompletionClient) -> str:
    create_args = getattr(client, "_create_args", None)  # the OpenAI and Azure clients
    if isinstance(create_args, Mapping) and create_args.get("model"):
        return str(create_args["model"])
    model = getattr(client, "model", None)
    if isinstance(model, str) and model:
        return model
    try:
        family = client.model_info.get("family")
    except Exception:  # noqa: BLE001 - a client without model_info still has a name
        family = None
    if isinstance(family, str) and family and family != "unknown":
        return family
    return type(client).__name__


class KeelChatCompletionClient(ChatCompletionClient):
    """``KeelChatCompletionClient(client)``: the same client, every call recorded.

    ``name`` is the model name used in events (default: the client's model, else its
    class name). ``instrumentor`` is the one whose health, content setting and
    ``uninstrument()`` apply (``handle.instrumentor.wrap_client(client)`` passes it);
    without one, a shared instrumentor that never touches AutoGen's loggers is used.
    """

    component_type = "model"

    def __init__(
        self,
        client: ChatCompletionClient,
        *,
        name: str | None = None,
        instrumentor: AutoGenInstrumentor | None = None,
    ) -> None:
        if not isinstance(client, ChatCompletionClient):
            raise ConfigurationError(
                f"KeelChatCompletionClient wraps an autogen ChatCompletionClient, got {client!r}"
            )
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        if instrumentor is not None and not isinstance(instrumentor, AutoGenInstrumentor):
            raise ConfigurationError(
                f"instrumentor must be an AutoGenInstrumentor, got {instrumentor!r}"
            )
        self.client = client
        self.name = name or _model_name(client)
        self.instrumentor = instrumentor or _default_instrumentor()

    # ---------------------------------------------------------------- recording
    def _started(self, messages: Sequence[LLMMessage], tools: Sequence[Any]) -> None:
        attrs: dict[str, Any] = {
            "framework": "autogen",
            "gen_ai.system": "autogen",
            "gen_ai.request.model": self.name,
            "message_count": len(messages),
        }
        if tools:
            attrs["tool_count"] = len(tools)
        if self.instrumentor.capture_content:
            attrs["messages"] = content(list(messages))
        emit(EventType.LLM_CALL_START, name=self.name, attributes=attrs)

    def _finished(self, result: CreateResult, elapsed_ms: float) -> None:
        usage = result.usage
        attrs: dict[str, Any] = {
            "framework": "autogen",
            "gen_ai.response.model": self.name,
            "gen_ai.usage.input_tokens": usage.prompt_tokens,
            "gen_ai.usage.output_tokens": usage.completion_tokens,
            "gen_ai.response.finish_reasons": [result.finish_reason],
            "duration_ms": elapsed_ms,
            "cached": result.cached,
            "status": "succeeded",
        }
        if isinstance(result.content, list):
            attrs["tool_calls"] = [call.name for call in result.content]
        if self.instrumentor.capture_content:
            attrs["response"] = content(result.content)
        emit(EventType.LLM_CALL_END, name=self.name, attributes=attrs)

    def _failed(self, exc: BaseException, elapsed_ms: float) -> None:
        attrs: dict[str, Any] = {
            "framework": "autogen",
            "gen_ai.response.model": self.name,
            "duration_ms": elapsed_ms,
            "status": "failed",
            "error_type": type(exc).__name__,
            "error_message": str(exc)[:2_000],
        }
        if self.instrumentor.record_failures and isinstance(exc, Exception):
            get_failure_tracker().record_failure(
                exc, latency_ms=elapsed_ms, attributes={"model": self.name}
            )
        emit(EventType.LLM_CALL_END, name=self.name, severity=Severity.MEDIUM, attributes=attrs)

    # --------------------------------------------------------------- the calls
    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        instrumentor = self.instrumentor
        if not instrumentor.is_instrumented:
            return await self.client.create(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
        instrumentor.observe(self._started, messages, tools)
        started = time.perf_counter()
        token = inside_wrapped_call.set(True)
        try:
            result = await self.client.create(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                json_output=json_output,
                extra_create_args=extra_create_args,
                cancellation_token=cancellation_token,
            )
        except BaseException as exc:
            elapsed = (time.perf_counter() - started) * 1000.0
            instrumentor.observe_essential(self._failed, exc, elapsed)
            raise
        finally:
            inside_wrapped_call.reset(token)
        instrumentor.observe(self._finished, result, (time.perf_counter() - started) * 1000.0)
        return result

    async def create_stream(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
        tool_choice: Tool | Literal["auto", "required", "none"] = "auto",
        json_output: bool | type[BaseModel] | None = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> AsyncGenerator[str | CreateResult, None]:
        stream = self.client.create_stream(
            messages,
            tools=tools,
            tool_choice=tool_choice,
            json_output=json_output,
            extra_create_args=extra_create_args,
            cancellation_token=cancellation_token,
        )
        instrumentor = self.instrumentor
        recording = instrumentor.is_instrumented
        if recording:
            instrumentor.observe(self._started, messages, tools)
        started = time.perf_counter()
        while True:
            # The flag is set around each step only: set across a yield, it would leak
            # into the consumer's context.
            token = inside_wrapped_call.set(recording)
            try:
                item = await stream.__anext__()
            except StopAsyncIteration:
                return
            except BaseException as exc:
                if recording:
                    elapsed = (time.perf_counter() - started) * 1000.0
                    instrumentor.observe_essential(self._failed, exc, elapsed)
                raise
            finally:
                inside_wrapped_call.reset(token)
            if recording and isinstance(item, CreateResult):
                elapsed = (time.perf_counter() - started) * 1000.0
                instrumentor.observe(self._finished, item, elapsed)
            yield item

    # ----------------------------------------------------------- pass-through
    async def close(self) -> None:
        await self.client.close()

    def actual_usage(self) -> RequestUsage:
        return self.client.actual_usage()

    def total_usage(self) -> RequestUsage:
        return self.client.total_usage()

    def count_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        return self.client.count_tokens(messages, tools=tools)

    def remaining_tokens(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = [],
    ) -> int:
        return self.client.remaining_tokens(messages, tools=tools)

    @property
    def capabilities(self) -> ModelCapabilities:  # deprecated upstream, still abstract
        return self.client.capabilities

    @property
    def model_info(self) -> ModelInfo:
        return self.client.model_info

    def __repr__(self) -> str:
        return f"KeelChatCompletionClient({self.client!r}, name={self.name!r})"
