"""CrewAI seen through its own event bus: crews become runs, tasks, tools and LLM calls events.

CrewAI runs synchronous bus handlers on a thread pool, each in a copy of the context the
event was emitted in. So nothing here may rely on "the current run" being set by an
earlier handler: each handler works out where its event belongs from the event alone.

* The run: the innermost ``crew_kickoff_started`` on CrewAI's own scope stack (which the
  copied context carries), else the agentkeel run the crew was kicked off in. Its run ID
  is derived from the kickoff event's ID, so every handler derives the same one.
* The span: crew kickoffs and agent executions are scopes (AGENT_* and STEP_* with span
  IDs derived from CrewAI's event IDs); tasks, tool calls and LLM calls are calls inside
  the innermost scope (TASK_*, TOOL_CALL_*, LLM_CALL_*), matched start to end by name.
* Durations come from CrewAI's own timestamps: the end event names its start event
  (``started_event_id``), which CrewAI keeps in its runtime state.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from crewai.events import crewai_event_bus
from crewai.events.event_bus import CrewAIEventsBus
from crewai.events.types.agent_events import (
    AgentExecutionCompletedEvent,
    AgentExecutionErrorEvent,
    AgentExecutionStartedEvent,
    LiteAgentExecutionCompletedEvent,
    LiteAgentExecutionErrorEvent,
    LiteAgentExecutionStartedEvent,
)
from crewai.events.types.crew_events import (
    CrewKickoffCompletedEvent,
    CrewKickoffFailedEvent,
    CrewKickoffStartedEvent,
)
from crewai.events.types.llm_events import (
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
)
from crewai.events.types.task_events import (
    TaskCompletedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
)
from crewai.events.types.tool_usage_events import (
    ToolSelectionErrorEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
    ToolValidateInputErrorEvent,
)

from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._context import Scope, current_scope, reset_scope, set_scope
from agentkeel._encoding import bound, safe_repr, truncate
from agentkeel._errors import ConfigurationError
from agentkeel._runtime import emit
from agentkeel.events import Category, EventType, Severity
from agentkeel.integrations._robust import InstrumentationHandle, RobustConfig, RobustInstrumentor
from agentkeel.tracking import classify_error, get_failure_tracker

try:  # CrewAI's scope stack: private, so read defensively (missing -> fall back, see _where)
    from crewai.events.event_context import _event_id_stack as _crewai_stack
except ImportError:  # pragma: no cover - depends on the CrewAI version
    _crewai_stack = None  # type: ignore[assignment]

__all__ = ["CrewAIInstrumentor", "instrument_crewai", "run_id_for_kickoff"]

_KICKOFF = "crew_kickoff_started"
_STEP_STARTS = frozenset({"agent_execution_started", "lite_agent_execution_started"})
_CONTENT_LIMIT = 2_000  # characters of a prompt, an output or tool arguments kept
_MAX_PENDING_STARTS = 10_000  # start timestamps kept for CrewAI versions without a record
Handler = Callable[[Any, Any, Any], None]


def _hex16(event_id: str) -> str:
    """A 16-hex-digit ID from a CrewAI UUID, the same in every handler that derives it."""
    return event_id.replace("-", "")[:16]


def run_id_for_kickoff(kickoff_event_id: str) -> str:
    """The agentkeel run ID of the crew kickoff whose start event has this ID."""
    return f"run-{_hex16(kickoff_event_id)}"


def _stack() -> tuple[tuple[str, str], ...]:
    if _crewai_stack is None:  # pragma: no cover - depends on the CrewAI version
        return ()
    stack = _crewai_stack.get()
    return stack if isinstance(stack, tuple) else ()


def _seconds(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _content(value: object) -> Any:
    if isinstance(value, str):
        return truncate(value, _CONTENT_LIMIT)
    raw = getattr(value, "raw", None)  # TaskOutput, CrewOutput
    if isinstance(raw, str):
        return truncate(raw, _CONTENT_LIMIT)
    if isinstance(value, Mapping | list | tuple | int | float | bool) or value is None:
        return bound(value)
    return safe_repr(value, _CONTENT_LIMIT)


class _Where:
    """Where one CrewAI event belongs in agentkeel: its run, spans and context."""

    __slots__ = ("parent_run_id", "parent_span", "run_id", "scope", "scope_span")

    def __init__(
        self,
        *,
        run_id: str | None,
        scope_span: str | None,
        parent_span: str | None,
        parent_run_id: str | None,
        scope: Scope,
    ) -> None:
        self.run_id = run_id
        self.scope_span = scope_span
        self.parent_span = parent_span
        self.parent_run_id = parent_run_id
        self.scope = scope


class CrewAIInstrumentor(RobustInstrumentor):
    """Subscribes to CrewAI's event bus; every handler body runs through :meth:`observe`.

    ``capture_content`` adds prompts, outputs, tool arguments and results (truncated to
    2,000 characters) to the events; off by default because they routinely hold
    personal data and secrets. ``record_failures`` sends tool, LLM and crew errors to
    the run's :class:`~agentkeel.tracking.FailureTracker`. ``bus`` is for tests that
    want a bus of their own; by default CrewAI's process-wide bus.
    """

    framework = "crewai"

    def __init__(
        self,
        *,
        config: RobustConfig | None = None,
        clock: Clock = SYSTEM_CLOCK,
        capture_content: bool = False,
        record_failures: bool = True,
        bus: CrewAIEventsBus | None = None,
    ) -> None:
        flags = {"capture_content": capture_content, "record_failures": record_failures}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")
        super().__init__(config=config, clock=clock)
        self.capture_content = capture_content
        self.record_failures = record_failures
        self._bus: CrewAIEventsBus = bus if bus is not None else crewai_event_bus
        self._registered: list[tuple[type[Any], Handler]] = []
        self._starts: OrderedDict[str, float] = OrderedDict()
        self._starts_lock = threading.Lock()
        self._rejections: weakref.WeakKeyDictionary[Any, set[tuple[str, str, str]]] = (
            weakref.WeakKeyDictionary()
        )
        self._translators: dict[type[Any], Callable[[Any, _Where, Any], None]] = {
            CrewKickoffStartedEvent: self._crew_started,
            CrewKickoffCompletedEvent: self._crew_completed,
            CrewKickoffFailedEvent: self._crew_failed,
            TaskStartedEvent: self._task_started,
            TaskCompletedEvent: self._task_completed,
            TaskFailedEvent: self._task_failed,
            AgentExecutionStartedEvent: self._agent_started,
            AgentExecutionCompletedEvent: self._agent_completed,
            AgentExecutionErrorEvent: self._agent_failed,
            LiteAgentExecutionStartedEvent: self._agent_started,
            LiteAgentExecutionCompletedEvent: self._agent_completed,
            LiteAgentExecutionErrorEvent: self._agent_failed,
            ToolUsageStartedEvent: self._tool_started,
            ToolUsageFinishedEvent: self._tool_finished,
            ToolUsageErrorEvent: self._tool_error,
            ToolSelectionErrorEvent: self._tool_rejected,
            ToolValidateInputErrorEvent: self._tool_rejected,
            LLMCallStartedEvent: self._llm_started,
            LLMCallCompletedEvent: self._llm_completed,
            LLMCallFailedEvent: self._llm_failed,
        }
        self._essential = frozenset(
            {
                CrewKickoffStartedEvent,
                CrewKickoffCompletedEvent,
                CrewKickoffFailedEvent,
                TaskFailedEvent,
                AgentExecutionErrorEvent,
                LiteAgentExecutionErrorEvent,
                ToolUsageErrorEvent,
                ToolSelectionErrorEvent,
                ToolValidateInputErrorEvent,
                LLMCallFailedEvent,
            }
        )

    # ---------------------------------------------------------------- lifecycle
    def _install(self) -> None:
        for event_class in self._translators:
            handler = self._make_handler(event_class)
            self._bus.on(event_class)(handler)
            self._registered.append((event_class, handler))

    def _uninstall(self) -> None:
        registered, self._registered = self._registered, []
        for event_class, handler in registered:
            self._bus.off(event_class, handler)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait for CrewAI's pending handlers, then for agentkeel's store to have it all."""
        from agentkeel._runtime import flush

        done = self._bus.flush(timeout=timeout)
        return flush(timeout) and done

    def _make_handler(self, event_class: type[Any]) -> Handler:
        observe = self.observe_essential if event_class in self._essential else self.observe

        # Three parameters: CrewAI then passes its RuntimeState (where start events live).
        def handler(source: Any, event: Any, state: Any) -> None:
            if self._installed:  # a handler already queued when uninstrument() ran
                observe(self._handle, source, event, state)

        handler.__name__ = f"agentkeel_{event_class.__name__}"
        handler.__qualname__ = handler.__name__
        return handler

    # ----------------------------------------------------------------- dispatch
    def _handle(self, source: Any, event: Any, state: Any) -> None:
        translate = self._translators.get(type(event))
        if translate is None:  # a subclass the bus delivered to us: not ours to map
            return
        if translate == self._tool_rejected and not self._first_rejection(source, event):
            return
        where = self._where(event)
        token = set_scope(where.scope)
        try:
            translate(event, where, state)
        finally:
            reset_scope(token)

    def _where(self, event: Any) -> _Where:
        user = current_scope()  # the context the event was emitted in (copied by CrewAI)
        own_id = event.event_id
        run_key: str | None = None
        if event.type == _KICKOFF:
            run_key = own_id
        elif event.type in ("crew_kickoff_completed", "crew_kickoff_failed"):
            run_key = event.started_event_id
        enclosing: str | None = None  # the innermost crew or agent scope around the event
        parent_run_key: str | None = None
        for entry_id, entry_type in reversed(_stack()):
            if entry_id in (own_id, run_key):
                continue
            if entry_type == _KICKOFF:
                enclosing = enclosing or entry_id
                if run_key is None:
                    run_key = entry_id
                else:
                    parent_run_key = entry_id
                    break
            elif entry_type in _STEP_STARTS:
                enclosing = enclosing or entry_id
        if run_key is None:  # not inside a crew kickoff: the user's own run, if any
            span = _hex16(enclosing) if enclosing else user.span_id
            return _Where(
                run_id=user.run_id,
                scope_span=span,
                parent_span=span,
                parent_run_id=user.parent_run_id,
                scope=user,
            )
        run_id = run_id_for_kickoff(run_key)
        parent_run_id = run_id_for_kickoff(parent_run_key) if parent_run_key else user.run_id
        is_run_event = run_key in (own_id, event.started_event_id)
        if is_run_event:  # the kickoff's own span, under whatever encloses the kickoff
            scope_span = _hex16(run_key)
            parent_span = _hex16(enclosing) if enclosing else user.span_id
        else:
            scope_span = parent_span = _hex16(enclosing) if enclosing else _hex16(run_key)
        scope = Scope(
            run_id=run_id,
            user_id=user.user_id,
            session_id=user.session_id,
            correlation_id=user.correlation_id or run_id,
            span_id=scope_span,
            parent_span_id=parent_span if is_run_event else None,
            parent_run_id=parent_run_id,
            tags=user.tags,
        )
        return _Where(
            run_id=run_id,
            scope_span=scope_span,
            parent_span=parent_span,
            parent_run_id=parent_run_id,
            scope=scope,
        )

    def _first_rejection(self, source: Any, event: Any) -> bool:
        """CrewAI re-parses a bad action up to six times, emitting an error each time;
        one tool call (one ``ToolUsage``) is one failure."""
        key = (event.type, str(event.tool_name), str(event.error))
        with self._starts_lock:
            try:
                seen = self._rejections.setdefault(source, set())
            except TypeError:  # a source that cannot be weakly referenced: no dedup
                return True
            if key in seen:
                return False
            seen.add(key)
            return True

    # ------------------------------------------------------------ shared parts
    def _remember_start(self, event: Any) -> None:
        stamp = _seconds(event.timestamp)
        if stamp is None:
            return
        with self._starts_lock:
            self._starts[event.event_id] = stamp
            while len(self._starts) > _MAX_PENDING_STARTS:
                self._starts.popitem(last=False)

    def _duration_ms(self, event: Any, state: Any) -> float | None:
        """From the start event CrewAI recorded (or we remembered) to this end event."""
        start_id = event.started_event_id
        ended = _seconds(event.timestamp)
        if not start_id or ended is None:
            return None
        with self._starts_lock:
            started = self._starts.pop(start_id, None)
        if started is None:
            record = getattr(state, "event_record", None)
            node = record.get(start_id) if record is not None else None
            started = _seconds(getattr(getattr(node, "event", None), "timestamp", None))
        if started is None:
            return None
        return max(0.0, (ended - started) * 1000.0)

    def _end_attributes(
        self, event: Any, state: Any, *, error_type: str | None = None, error: object = None
    ) -> dict[str, Any]:
        """What every end event carries: status, duration and, if it failed, the error."""
        attrs = self._common(event)
        if error_type is None:
            attrs["status"] = "succeeded"
        else:
            attrs["status"] = "failed"
            attrs["error_type"] = error_type
            attrs["error_message"] = truncate(str(event.error if error is None else error), 2_000)
        duration = self._duration_ms(event, state)
        if duration is not None:
            attrs["duration_ms"] = duration
        return attrs

    def _common(self, event: Any) -> dict[str, Any]:
        attrs: dict[str, Any] = {"framework": "crewai"}
        if event.agent_role:
            attrs["agent_role"] = event.agent_role
        if event.task_name:
            attrs["task_name"] = truncate(str(event.task_name), 200)
        if event.emission_sequence is not None:
            attrs["crewai.emission_sequence"] = event.emission_sequence
        return attrs

    def _fail(
        self,
        where: _Where,
        *,
        error: object,
        error_type: str,
        category: Category | None = None,
        tool_name: str | None = None,
        graph_node: str | None = None,
    ) -> None:
        if not self.record_failures:
            return
        tracker = get_failure_tracker()
        if isinstance(error, BaseException):
            tracker.record_failure(error, tool_name=tool_name, graph_node=graph_node)
            return
        message = str(error)
        if category is None:  # a message only: classify it as if it had been raised
            guess = classify_error(RuntimeError(message)).category
            category = guess if guess is not Category.UNKNOWN else None
        tracker.record_failure(
            error_type=error_type,
            error_message=message,
            category=category,
            tool_name=tool_name,
            graph_node=graph_node,
        )

    # --------------------------------------------------------------- crew runs
    def _crew_started(self, event: Any, where: _Where, state: Any) -> None:
        self._remember_start(event)
        user = where.scope
        attrs = self._common(event)
        attrs.update(
            user_id=user.user_id,
            session_id=user.session_id,
            parent_run_id=where.parent_run_id,
            tags=list(user.tags),
        )
        if self.capture_content and event.inputs:
            attrs["inputs"] = _content(event.inputs)
        emit(
            EventType.AGENT_START,
            name=event.crew_name or "crew",
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
            parent_span_id=where.parent_span,
        )

    def _crew_completed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state)
        if event.total_tokens:
            attrs["total_tokens"] = event.total_tokens
        if self.capture_content:
            attrs["output"] = _content(event.output)
        emit(
            EventType.AGENT_END,
            name=event.crew_name or "crew",
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _crew_failed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state, error_type="CrewKickoffFailed")
        message = attrs["error_message"]
        name = event.crew_name or "crew"
        self._fail(where, error=message, error_type="CrewKickoffFailed", graph_node=name)
        emit(
            EventType.AGENT_ERROR,
            name=name,
            severity=Severity.HIGH,
            attributes={"error_type": "CrewKickoffFailed", "error_message": message},
            run_id=where.run_id,
            span_id=where.scope_span,
        )
        emit(
            EventType.AGENT_END,
            name=name,
            severity=Severity.HIGH,
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    # -------------------------------------------------------------------- tasks
    def _task_name(self, event: Any) -> str:
        return truncate(str(event.task_name or event.task_id or "task"), 200)

    def _task_started(self, event: Any, where: _Where, state: Any) -> None:
        self._remember_start(event)
        attrs = self._common(event)
        if event.task_id:
            attrs["task_id"] = event.task_id
        if self.capture_content and event.context:
            attrs["context"] = _content(event.context)
        emit(
            EventType.TASK_START,
            name=self._task_name(event),
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _task_completed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state)
        if self.capture_content:
            attrs["output"] = _content(event.output)
        emit(
            EventType.TASK_COMPLETE,
            name=self._task_name(event),
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _task_failed(self, event: Any, where: _Where, state: Any) -> None:
        error_type = event.error_type.__name__ if event.error_type is not None else "TaskFailed"
        attrs = self._end_attributes(event, state, error_type=error_type)
        emit(
            EventType.TASK_FAIL,
            name=self._task_name(event),
            severity=Severity.HIGH,
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    # ------------------------------------------------------------------- agents
    def _agent_name(self, event: Any) -> str:
        role = getattr(getattr(event, "agent", None), "role", None)
        if role is None:
            info = getattr(event, "agent_info", None)
            role = info.get("role") if isinstance(info, Mapping) else None
        return f"agent {role or event.agent_role or 'agent'}"

    def _agent_started(self, event: Any, where: _Where, state: Any) -> None:
        self._remember_start(event)
        attrs = self._common(event)
        task = getattr(event, "task", None)
        task_name = getattr(task, "name", None) or getattr(task, "description", None)
        if task_name:
            attrs["task_name"] = truncate(str(task_name), 200)
        emit(
            EventType.STEP_START,
            name=self._agent_name(event),
            attributes=attrs,
            run_id=where.run_id,
            span_id=_hex16(event.event_id),
            parent_span_id=where.scope_span,
        )

    def _agent_completed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state)
        if self.capture_content:
            attrs["output"] = _content(event.output)
        self._end_agent(event, where, attrs, Severity.INFO)

    def _agent_failed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state, error_type="AgentExecutionError")
        self._end_agent(event, where, attrs, Severity.HIGH)

    def _end_agent(self, event: Any, where: _Where, attrs: dict[str, Any], severity: int) -> None:
        start_id = event.started_event_id
        emit(
            EventType.STEP_END,
            name=self._agent_name(event),
            severity=severity,
            attributes=attrs,
            run_id=where.run_id,
            span_id=_hex16(start_id) if start_id else where.scope_span,
        )

    # -------------------------------------------------------------------- tools
    def _tool_attrs(self, event: Any) -> dict[str, Any]:
        attrs = self._common(event)
        attrs["gen_ai.tool.name"] = event.tool_name
        attrs["tool"] = event.tool_name
        if event.run_attempts:
            attrs["attempt"] = event.run_attempts
        if self.capture_content:
            attrs["arguments"] = _content(event.tool_args)
        return attrs

    def _tool_started(self, event: Any, where: _Where, state: Any) -> None:
        self._remember_start(event)
        emit(
            EventType.TOOL_CALL_START,
            name=event.tool_name,
            attributes=self._tool_attrs(event),
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _tool_finished(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._common(event)
        attrs["gen_ai.tool.name"] = event.tool_name
        attrs["tool"] = event.tool_name
        started, finished = _seconds(event.started_at), _seconds(event.finished_at)
        if started is not None and finished is not None:
            attrs["duration_ms"] = max(0.0, (finished - started) * 1000.0)
        with self._starts_lock:
            self._starts.pop(event.started_event_id or "", None)
        attrs["from_cache"] = bool(event.from_cache)
        failure = event.failure
        severity: int = Severity.INFO
        if failure is None:
            attrs["status"] = "succeeded"
        else:  # the tool returned, but says the work was not done
            attrs.update(
                status="failed",
                error_type="ToolFailure",
                error_message=truncate(str(getattr(failure, "message", failure)), 2_000),
            )
            severity = Severity.MEDIUM
        if self.capture_content:
            attrs["result"] = _content(event.output)
        emit(
            EventType.TOOL_CALL_END,
            name=event.tool_name,
            severity=severity,
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _tool_error(self, event: Any, where: _Where, state: Any) -> None:
        error = event.error
        error_type = type(error).__name__ if isinstance(error, BaseException) else "ToolError"
        attrs = self._end_attributes(event, state, error_type=error_type, error=error)
        attrs["gen_ai.tool.name"] = attrs["tool"] = event.tool_name
        self._fail(where, error=error, error_type=error_type, tool_name=event.tool_name)
        emit(
            EventType.TOOL_CALL_END,
            name=event.tool_name,
            severity=Severity.MEDIUM,
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _tool_rejected(self, event: Any, where: _Where, state: Any) -> None:
        """The model named a tool that does not exist, or gave it arguments that do not fit."""
        unknown = event.type == "tool_selection_error"
        error_type = "ToolSelectionError" if unknown else "ToolInputValidationError"
        category = Category.TOOL_NOT_FOUND if unknown else Category.VALIDATION
        self._fail(
            where,
            error=truncate(str(event.error), 2_000),
            error_type=error_type,
            category=category,
            tool_name=event.tool_name or None,
        )

    # --------------------------------------------------------------- LLM calls
    def _model(self, event: Any) -> str:
        return str(event.model or "llm")

    def _llm_started(self, event: Any, where: _Where, state: Any) -> None:
        self._remember_start(event)
        attrs = self._common(event)
        attrs["gen_ai.request.model"] = self._model(event)
        attrs["gen_ai.system"] = "crewai"
        attrs["call_id"] = event.call_id
        if event.temperature is not None:
            attrs["gen_ai.request.temperature"] = event.temperature
        if event.max_tokens is not None:
            attrs["gen_ai.request.max_tokens"] = event.max_tokens
        messages = event.messages
        if isinstance(messages, list):
            attrs["message_count"] = len(messages)
        if self.capture_content and messages is not None:
            attrs["messages"] = _content(messages)
        emit(
            EventType.LLM_CALL_START,
            name=self._model(event),
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _llm_completed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state)
        attrs["gen_ai.response.model"] = self._model(event)
        usage = event.usage if isinstance(event.usage, Mapping) else {}
        input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
        output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
        if isinstance(input_tokens, int):
            attrs["gen_ai.usage.input_tokens"] = input_tokens
        if isinstance(output_tokens, int):
            attrs["gen_ai.usage.output_tokens"] = output_tokens
        if event.finish_reason:
            attrs["gen_ai.response.finish_reasons"] = [event.finish_reason]
        if event.response_id:
            attrs["gen_ai.response.id"] = event.response_id
        if self.capture_content:
            attrs["response"] = _content(event.response)
        emit(
            EventType.LLM_CALL_END,
            name=self._model(event),
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )

    def _llm_failed(self, event: Any, where: _Where, state: Any) -> None:
        attrs = self._end_attributes(event, state, error_type="LLMCallFailed")
        message = attrs["error_message"]
        self._fail(where, error=message, error_type="LLMCallFailed", category=None)
        emit(
            EventType.LLM_CALL_END,
            name=self._model(event),
            severity=Severity.MEDIUM,
            attributes=attrs,
            run_id=where.run_id,
            span_id=where.scope_span,
        )


def instrument_crewai(
    *,
    config: RobustConfig | None = None,
    capture_content: bool = False,
    record_failures: bool = True,
    clock: Clock = SYSTEM_CLOCK,
    bus: CrewAIEventsBus | None = None,
) -> InstrumentationHandle:
    """Observe every CrewAI crew in this process: ``handle = instrument_crewai()``.

    Crew kickoffs become runs (``keel runs``), with their tasks, agent executions, tool
    calls and LLM calls; tool, LLM and crew errors go to the run's FailureTracker.
    ``handle.uninstrument()`` unregisters every handler from the bus.
    """
    instrumentor = CrewAIInstrumentor(
        config=config,
        clock=clock,
        capture_content=capture_content,
        record_failures=record_failures,
        bus=bus,
    )
    return instrumentor.instrument()
