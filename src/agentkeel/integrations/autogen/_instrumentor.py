"""AutoGen (autogen-agentchat 0.4+) seen through its structured event loggers.

AutoGen logs typed event objects on two stdlib loggers: ``autogen_core.events``
(``LLMCallEvent`` from the real model clients, ``ToolCallEvent`` from tools, handler
exceptions) and ``autogen_agentchat.events`` (an agent's ``ToolCallRequestEvent`` and
``ToolCallExecutionEvent``, with call IDs and an error flag). We tap them with a
``logging.Filter`` on each logger rather than a handler: a filter sees each record once,
in the agent's own task (so the current agentkeel run is right there), before any
handler. To see the DEBUG-level agentchat events the logger's level is lowered while we
are installed; the filter then lets through to the logger's handlers, and up to its
parents, exactly the records the old level let through, so nobody's log output changes.

Clients that log no LLM event (the replay client, custom clients) are covered by
:class:`KeelChatCompletionClient`, see ``_client.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

from autogen_agentchat import EVENT_LOGGER_NAME as AGENTCHAT_LOGGER_NAME
from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallRequestEvent
from autogen_core import EVENT_LOGGER_NAME as CORE_LOGGER_NAME
from autogen_core.logging import (
    AgentConstructionExceptionEvent,
    LLMCallEvent,
    LLMStreamEndEvent,
    LLMStreamStartEvent,
    MessageHandlerExceptionEvent,
    ToolCallEvent,
)

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._context import current_scope
from agentkeel._encoding import bound, safe_repr, truncate
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import emit
from agentkeel.events import Category, EventType, Severity
from agentkeel.integrations._robust import RobustConfig, RobustInstrumentor
from agentkeel.tracking import get_failure_tracker

__all__ = ["AutoGenInstrumentor", "inside_wrapped_call"]

CONTENT_LIMIT = 2_000  # characters of a prompt, a result or tool arguments kept
_MAX_OPEN_CALLS = 10_000
# Records kept even when degraded: errors, and the ends of calls whose starts we saw.
_ESSENTIAL = (MessageHandlerExceptionEvent, AgentConstructionExceptionEvent, ToolCallExecutionEvent)
# Set while a KeelChatCompletionClient awaits its inner client: the inner client's own
# LLMCallEvent is then a duplicate of what the wrapper records, and is skipped.
inside_wrapped_call: ContextVar[bool] = ContextVar("agentkeel_autogen_wrapped", default=False)


def content(value: object) -> Any:
    """A bounded, JSON-friendly copy of a prompt, result or argument set."""
    if isinstance(value, str):
        return truncate(value, CONTENT_LIMIT)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            value = dump(mode="json")
        except Exception:  # noqa: BLE001 - an odd pydantic model is shown by its repr
            return safe_repr(value, CONTENT_LIMIT)
    if isinstance(value, dict | list | tuple | int | float | bool) or value is None:
        if isinstance(value, list | tuple):
            return [content(item) for item in value[:100]]
        return bound(value)
    return safe_repr(value, CONTENT_LIMIT)


class _LoggerTap(logging.Filter):
    """Observes every record of one logger, then keeps the logger's old threshold."""

    def __init__(self, instrumentor: AutoGenInstrumentor, logger: logging.Logger) -> None:
        super().__init__(f"agentkeel:{logger.name}")
        self.instrumentor = instrumentor
        self.logger = logger
        self.saved_level = logger.level
        self.lowered = False

    def threshold(self) -> int:
        """The level below which the logger dropped records before we lowered it."""
        if self.saved_level:
            return self.saved_level
        parent = self.logger.parent
        return parent.getEffectiveLevel() if parent is not None else logging.WARNING

    def filter(self, record: logging.LogRecord) -> bool:
        instrumentor = self.instrumentor
        if instrumentor.is_instrumented:
            instrumentor.observe_record(record)
        return record.levelno >= self.threshold()


class AutoGenInstrumentor(RobustInstrumentor):
    """Observes AutoGen's event loggers; every callback body runs through :meth:`observe`.

    ``capture_content`` adds prompts, results and tool arguments (truncated) to the
    events. ``record_failures`` sends tool errors, model client errors and message
    handler exceptions to the current run's FailureTracker. ``loggers=False`` leaves
    the loggers alone (for an instrumentor that only backs client wrappers).
    """

    framework = "autogen"

    def __init__(
        self,
        *,
        config: RobustConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        capture_content: bool = False,
        record_failures: bool = True,
        loggers: bool = True,
    ) -> None:
        flags = {
            "capture_content": capture_content,
            "record_failures": record_failures,
            "loggers": loggers,
        }
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")
        super().__init__(config=config, clock=clock)
        self.capture_content = capture_content
        self.record_failures = record_failures
        self.use_loggers = loggers
        self._taps: list[_LoggerTap] = []
        self._open_calls: OrderedDict[str, tuple[float, str, str | None]] = OrderedDict()
        self._calls_lock = threading.Lock()

    # ---------------------------------------------------------------- lifecycle
    def _install(self) -> None:
        if not self.use_loggers:
            return
        for name in (CORE_LOGGER_NAME, AGENTCHAT_LOGGER_NAME):
            logger = logging.getLogger(name)
            tap = _LoggerTap(self, logger)
            logger.addFilter(tap)
            if logger.getEffectiveLevel() > logging.DEBUG:
                logger.setLevel(logging.DEBUG)
                tap.lowered = True
            self._taps.append(tap)

    def _uninstall(self) -> None:
        taps, self._taps = self._taps, []
        for tap in taps:
            tap.logger.removeFilter(tap)
            # Put the old level back unless someone has set another since.
            if tap.lowered and tap.logger.level == logging.DEBUG:
                tap.logger.setLevel(tap.saved_level)

    def wrap_client(self, client: Any, *, name: str | None = None) -> Any:
        """``client`` wrapped so its calls are recorded by this instrumentor."""
        from agentkeel.integrations.autogen._client import KeelChatCompletionClient

        return KeelChatCompletionClient(client, name=name, instrumentor=self)

    # ------------------------------------------------------------------ records
    def observe_record(self, record: logging.LogRecord) -> None:
        message = record.msg
        essential = isinstance(message, _ESSENTIAL)
        if essential:
            self.observe_essential(self._on_record, message)
        else:
            self.observe(self._on_record, message)

    def _on_record(self, message: Any) -> None:
        if isinstance(message, ToolCallRequestEvent):
            self._tool_requests(message)
        elif isinstance(message, ToolCallExecutionEvent):
            self._tool_results(message)
        elif isinstance(message, ToolCallEvent):
            self._tool_logged(message)
        elif isinstance(message, LLMCallEvent):
            if not inside_wrapped_call.get():
                self._llm_logged(message.kwargs, stream=False)
        elif isinstance(message, LLMStreamStartEvent):
            if not inside_wrapped_call.get():
                emit(EventType.LLM_CALL_START, name="llm", attributes=self._llm_start_attrs())
        elif isinstance(message, LLMStreamEndEvent):
            if not inside_wrapped_call.get():
                self._llm_logged(message.kwargs, stream=True)
        elif isinstance(message, MessageHandlerExceptionEvent | AgentConstructionExceptionEvent):
            self._handler_exception(message.kwargs)

    # -------------------------------------------------------------------- tools
    def _tool_requests(self, message: Any) -> None:
        run_id = current_scope().run_id
        now = time.perf_counter()
        for call in message.content:
            attrs: dict[str, Any] = {
                "framework": "autogen",
                "gen_ai.tool.name": call.name,
                "tool": call.name,
                "gen_ai.tool.call.id": call.id,
                "agent": message.source,
            }
            if self.capture_content:
                attrs["arguments"] = truncate(str(call.arguments), CONTENT_LIMIT)
            with self._calls_lock:
                self._open_calls[call.id] = (now, call.name, run_id)
                while len(self._open_calls) > _MAX_OPEN_CALLS:
                    self._open_calls.popitem(last=False)
            emit(EventType.TOOL_CALL_START, name=call.name, attributes=attrs)

    def _tool_results(self, message: Any) -> None:
        now = time.perf_counter()
        for result in message.content:
            with self._calls_lock:
                opened = self._open_calls.pop(result.call_id, None)
            attrs: dict[str, Any] = {
                "framework": "autogen",
                "gen_ai.tool.name": result.name,
                "tool": result.name,
                "gen_ai.tool.call.id": result.call_id,
                "agent": message.source,
            }
            if opened is not None:
                attrs["duration_ms"] = (now - opened[0]) * 1000.0
            severity: int = Severity.INFO
            if result.is_error:
                error = truncate(str(result.content), CONTENT_LIMIT)
                attrs.update(status="failed", error_type="ToolError", error_message=error)
                severity = Severity.MEDIUM
                if self.record_failures:
                    get_failure_tracker().record_failure(
                        error_type="ToolError",
                        error_message=error,
                        tool_name=result.name,
                        latency_ms=attrs.get("duration_ms"),
                    )
            else:
                attrs["status"] = "succeeded"
                if self.capture_content:
                    attrs["result"] = truncate(str(result.content), CONTENT_LIMIT)
            emit(EventType.TOOL_CALL_END, name=result.name, severity=severity, attributes=attrs)

    def _tool_logged(self, message: Any) -> None:
        """A tool run outside an agent's tool step (an agent's own is already recorded)."""
        kwargs = message.kwargs
        name = str(kwargs.get("tool_name"))
        run_id = current_scope().run_id
        with self._calls_lock:
            inside_agent_step = any(
                open_name == name and open_run == run_id
                for _, open_name, open_run in self._open_calls.values()
            )
        if inside_agent_step:
            return
        attrs: dict[str, Any] = {"framework": "autogen", "gen_ai.tool.name": name, "tool": name}
        if self.capture_content:
            attrs["arguments"] = content(kwargs.get("arguments"))
        emit(EventType.TOOL_CALL_START, name=name, attributes=dict(attrs))
        attrs["status"] = "succeeded"
        if self.capture_content:
            attrs["result"] = truncate(str(kwargs.get("result")), CONTENT_LIMIT)
        emit(EventType.TOOL_CALL_END, name=name, attributes=attrs)

    # --------------------------------------------------------------- LLM calls
    def _llm_start_attrs(self) -> dict[str, Any]:
        return {"framework": "autogen", "gen_ai.system": "autogen", "logged": True}

    def _llm_logged(self, kwargs: dict[str, Any], *, stream: bool) -> None:
        """A model client's own LLM event, logged after the call: start and end at once."""
        response = kwargs.get("response")
        model = response.get("model") if isinstance(response, dict) else None
        name = "llm" if stream else str(model or "llm")
        if not stream:
            attrs = self._llm_start_attrs()
            if model:
                attrs["gen_ai.request.model"] = str(model)
            if self.capture_content:
                attrs["messages"] = content(kwargs.get("messages"))
            emit(EventType.LLM_CALL_START, name=name, attributes=attrs)
        end: dict[str, Any] = {"framework": "autogen", "status": "succeeded"}
        if model:
            end["gen_ai.response.model"] = str(model)
        for key, ours in (
            ("prompt_tokens", "gen_ai.usage.input_tokens"),
            ("completion_tokens", "gen_ai.usage.output_tokens"),
        ):
            value = kwargs.get(key)
            if isinstance(value, int):
                end[ours] = value
        choices = response.get("choices") if isinstance(response, dict) else None
        if isinstance(choices, list):
            reasons = [c.get("finish_reason") for c in choices if isinstance(c, dict)]
            if any(reasons):
                end["gen_ai.response.finish_reasons"] = [str(r) for r in reasons if r]
        if self.capture_content and response is not None:
            end["response"] = content(response)
        emit(EventType.LLM_CALL_END, name=name, attributes=end)

    # ----------------------------------------------------------------- failures
    def _handler_exception(self, kwargs: dict[str, Any]) -> None:
        if not self.record_failures:
            return
        kind = str(kwargs.get("type") or "AutoGenException")
        agent = kwargs.get("handling_agent") or kwargs.get("agent_id")
        get_failure_tracker().record_failure(
            error_type=kind,
            error_message=truncate(str(kwargs.get("exception")), CONTENT_LIMIT),
            graph_node=str(agent) if agent else None,
            category=Category.UNKNOWN,
        )
