"""From agentkeel events to OpenTelemetry names, IDs and attributes.

The GenAI semantic conventions (``gen_ai.*``) name the operation, agent, model,
tool and token usage; what they lack (retry attempt and delay, breaker state, loop
verdict, escalation ticket, recovery strategy, failure category) goes under
``agentkeel.*``. Event attributes with a namespaced key (``gen_ai.usage.input_tokens``,
``app.tenant``) are copied as they are; plain keys go under ``agentkeel.``.

No OpenTelemetry import here: this is plain data, testable without the extra.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from agentkeel.events import Event, EventType, Severity

__all__ = [
    "CHILD_ENDS",
    "CHILD_STARTS",
    "MAX_STRING",
    "attempt_of",
    "copy_attributes",
    "derived_span_id",
    "describe_point",
    "first_of",
    "span_id_for_event",
    "span_id_int",
    "trace_id_for_run",
    "trace_id_int",
]

MAX_STRING = 4096

# Start type -> (end types, GenAI operation or None, span name prefix).
CHILD_STARTS: dict[str, tuple[frozenset[str], str | None, str]] = {
    EventType.TOOL_CALL_START: (frozenset({EventType.TOOL_CALL_END}), "execute_tool", ""),
    EventType.LLM_CALL_START: (frozenset({EventType.LLM_CALL_END}), "chat", ""),
    EventType.TASK_START: (
        frozenset({EventType.TASK_COMPLETE, EventType.TASK_FAIL}),
        None,
        "task ",
    ),
    EventType.DECISION_START: (frozenset({EventType.DECISION_COMPLETE}), None, "decision "),
}
CHILD_ENDS: dict[str, str] = {
    end: start for start, (ends, _, _) in CHILD_STARTS.items() for end in ends
}
# Attributes that become span fields (timing, status, GenAI keys) rather than copies.
_CONSUMED = frozenset(
    {
        "duration_ms",
        "status",
        "error_type",
        "error_message",
        "user_id",
        "session_id",
        "tags",
        "attempt",
    }
)
_CIRCUIT_STATES: dict[str, str] = {
    EventType.CIRCUIT_OPENED: "open",
    EventType.CIRCUIT_HALF_OPEN: "half_open",
    EventType.CIRCUIT_CLOSED: "closed",
    EventType.CIRCUIT_REJECTED: "open",
}
# Where the emitters of other rooms put what our attributes report (first key found).
_ATTEMPT_KEYS = ("attempt", "retry.attempt", "attempt_number")
_DELAY_KEYS = ("delay_s", "delay_seconds", "delay", "sleep_s", "wait_s")
_VERDICT_KEYS = ("verdict", "loop_type", "kind", "pattern")
_TICKET_KEYS = ("ticket_id", "ticket", "escalation_id")
_STRATEGY_KEYS = ("strategy", "recovery_strategy", "action")


# ------------------------------------------------------------------------ IDs
def trace_id_int(run_id: str) -> int:
    digest = hashlib.blake2b(run_id.encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") or 1


def span_id_int(span_id: str) -> int:
    """agentkeel's span IDs are 16 hex digits already; anything else is hashed."""
    if len(span_id) == 16:
        try:
            value = int(span_id, 16)
        except ValueError:
            pass
        else:
            if value:
                return value
    return int.from_bytes(hashlib.blake2b(span_id.encode(), digest_size=8).digest(), "big") or 1


def derived_span_id(event: Event) -> int:
    """The span ID of a span that an event starts but that has no agentkeel span ID."""
    digest = hashlib.blake2b(event.event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def trace_id_for_run(run_id: str) -> str:
    """The OpenTelemetry trace ID (32 hex digits) of a top-level run's trace.

    Nested runs belong to the trace of the run at their root.
    """
    return format(trace_id_int(run_id), "032x")


def span_id_for_event(event: Event) -> str:
    """The OpenTelemetry span ID (16 hex digits) of the span a start event opens."""
    if event.type in (EventType.AGENT_START, EventType.STEP_START) and event.span_id:
        return format(span_id_int(event.span_id), "016x")
    return format(derived_span_id(event), "016x")


# ----------------------------------------------------------------- attributes
def first_of(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def attempt_of(attributes: Mapping[str, Any]) -> int | None:
    attempt = first_of(attributes, _ATTEMPT_KEYS)
    if isinstance(attempt, int) and not isinstance(attempt, bool):
        return attempt
    return None


def _clip(text: str) -> str:
    return text if len(text) <= MAX_STRING else text[:MAX_STRING] + "…"


def _value(value: Any) -> Any:
    """An OpenTelemetry attribute value for ``value``, or None to leave it out."""
    if isinstance(value, str):
        return _clip(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        sequence = _sequence(value)
        if sequence is not None:
            return sequence
    return _clip(repr(value))


def _sequence(values: list[Any] | tuple[Any, ...]) -> tuple[Any, ...] | None:
    # OpenTelemetry takes homogeneous sequences of primitives only.
    if all(isinstance(v, str) for v in values):
        return tuple(_clip(v) for v in values)
    if all(isinstance(v, bool) for v in values):
        return tuple(values)
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        return None
    if all(isinstance(v, int) for v in numbers):
        return tuple(numbers)
    return tuple(float(v) for v in numbers)


def copy_attributes(source: Mapping[str, Any], target: dict[str, Any]) -> None:
    """Copy event attributes: namespaced keys as they are, plain ones under agentkeel.*."""
    for key, raw in source.items():
        if key in _CONSUMED:
            continue
        value = _value(raw)
        if value is not None:
            target[key if "." in key else f"agentkeel.{key}"] = value


# --------------------------------------------------------------- point events
def _retry(event: Event, span: dict[str, Any]) -> None:
    attempt = attempt_of(event.attributes)
    if attempt is not None:
        span["agentkeel.retry.attempt"] = attempt
    delay = first_of(event.attributes, _DELAY_KEYS)
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        span["agentkeel.retry.delay_s"] = float(delay)


def _circuit(event: Event, span: dict[str, Any]) -> None:
    state = first_of(event.attributes, ("state", "to_state", "new_state"))
    span["agentkeel.circuit.state"] = str(state or _CIRCUIT_STATES[event.type])
    if event.name:
        span["agentkeel.circuit.name"] = event.name


def _loop(event: Event, span: dict[str, Any]) -> None:
    span["agentkeel.loop.verdict"] = str(first_of(event.attributes, _VERDICT_KEYS) or "loop")


def _escalation(event: Event, span: dict[str, Any]) -> None:
    ticket = first_of(event.attributes, _TICKET_KEYS)
    if ticket is not None:
        span["agentkeel.escalation.ticket"] = str(ticket)
    level = event.attributes.get("level")
    if level is not None:
        span["agentkeel.escalation.level"] = _value(level)


def _recovery(event: Event, span: dict[str, Any]) -> None:
    strategy = first_of(event.attributes, _STRATEGY_KEYS)
    if strategy is not None:
        span["agentkeel.recovery.strategy"] = str(strategy)
    if event.type in (EventType.RECOVERY_SUCCESS, EventType.RECOVERY_FAILED):
        span["agentkeel.recovery.outcome"] = event.type.rsplit(".", 1)[1]


def _failure(event: Event, span: dict[str, Any]) -> None:
    if event.category:
        span["agentkeel.failure.category"] = event.category


def _recovered(event: Event, span: dict[str, Any]) -> None:
    span["agentkeel.failure.recovered"] = True


def _fallback(event: Event, span: dict[str, Any]) -> None:
    span["agentkeel.fallback.used"] = True


_POINT_ATTRIBUTES: dict[str, Callable[[Event, dict[str, Any]], None]] = {
    EventType.RETRY: _retry,
    **dict.fromkeys(_CIRCUIT_STATES, _circuit),
    EventType.LOOP_DETECTED: _loop,
    EventType.ESCALATION_CREATED: _escalation,
    EventType.ESCALATION_UPDATED: _escalation,
    EventType.RECOVERY_START: _recovery,
    EventType.RECOVERY_PHASE: _recovery,
    EventType.RECOVERY_SUCCESS: _recovery,
    EventType.RECOVERY_FAILED: _recovery,
    EventType.FAILURE: _failure,
    EventType.FAILURE_RECOVERED: _recovered,
    EventType.FALLBACK: _fallback,
}


def describe_point(event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
    """The span attributes a point event sets, and the attributes of its span event."""
    span_attrs: dict[str, Any] = {}
    event_attrs: dict[str, Any] = {}
    copy_attributes(event.attributes, event_attrs)
    attempt = attempt_of(event.attributes)
    if attempt is not None:
        event_attrs["agentkeel.attempt"] = attempt
    if event.name:
        event_attrs["agentkeel.name"] = event.name
    if event.severity:
        severity = Severity(event.severity) if 0 <= event.severity <= 4 else None
        event_attrs["agentkeel.severity"] = (
            severity.name.lower() if severity is not None else event.severity
        )
    if event.category:
        event_attrs["agentkeel.category"] = event.category
    error_type = event.attributes.get("error_type")
    if error_type:
        event_attrs["error.type"] = str(error_type)
    message = event.attributes.get("error_message")
    if message:
        event_attrs["agentkeel.error_message"] = _clip(str(message))
    describe = _POINT_ATTRIBUTES.get(event.type)
    if describe is not None:
        describe(event, span_attrs)
    return span_attrs, event_attrs
