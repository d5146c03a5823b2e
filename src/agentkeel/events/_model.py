"""The one event model: every run, step, tool call, failure and recovery is an Event.

Events are frozen msgspec Structs: building one costs about a tenth of a frozen
dataclass, and they encode to JSON without a detour through ``dict``.
"""

from __future__ import annotations

import enum
from typing import Any

import msgspec


class EventType(enum.StrEnum):
    """What happened. Custom strings are allowed too; these are the ones we give meaning."""

    AGENT_START = "agent.start"
    AGENT_END = "agent.end"
    AGENT_ERROR = "agent.error"
    TASK_START = "task.start"
    TASK_COMPLETE = "task.complete"
    TASK_FAIL = "task.fail"
    STEP_START = "step.start"
    STEP_END = "step.end"
    DECISION_START = "decision.start"
    DECISION_COMPLETE = "decision.complete"
    TOOL_CALL_START = "tool.start"
    TOOL_CALL_END = "tool.end"
    LLM_CALL_START = "llm.start"
    LLM_CALL_END = "llm.end"
    FAILURE = "failure.recorded"
    FAILURE_RECOVERED = "failure.recovered"
    RETRY = "retry.attempt"
    TIMEOUT = "timeout"
    FALLBACK = "fallback"
    CIRCUIT_OPENED = "circuit.opened"
    CIRCUIT_HALF_OPEN = "circuit.half_open"
    CIRCUIT_CLOSED = "circuit.closed"
    CIRCUIT_REJECTED = "circuit.rejected"
    RECOVERY_START = "recovery.start"
    RECOVERY_PHASE = "recovery.phase"
    RECOVERY_SUCCESS = "recovery.success"
    RECOVERY_FAILED = "recovery.failed"
    LOOP_DETECTED = "loop.detected"
    ESCALATION_CREATED = "escalation.created"
    ESCALATION_UPDATED = "escalation.updated"
    SNAPSHOT_CREATED = "snapshot.created"
    SNAPSHOT_RESTORED = "snapshot.restored"
    CHAOS_INJECTED = "chaos.injected"
    CUSTOM = "custom"


class Severity(enum.IntEnum):
    """How bad it is. Higher values are kept first when the pipeline must drop."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, value: object) -> Severity:
        """Accept a Severity, its name in any case, or its number."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value)
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        from agentkeel._errors import ConfigurationError

        names = ", ".join(s.name.lower() for s in cls)
        raise ConfigurationError(f"unknown severity {value!r}: use one of {names}")


class Category(enum.StrEnum):
    """Why it failed. Matches the failure-tracking categories users already know."""

    NETWORK = "network"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    AUTH = "auth"
    VALIDATION = "validation"
    PARSING = "parsing"
    TOOL_NOT_FOUND = "tool_not_found"
    RESOURCE = "resource"
    LLM = "llm"
    STATE = "state"
    LOOP = "loop"
    CONFIGURATION = "configuration"
    UNKNOWN = "unknown"

    @classmethod
    def parse(cls, value: object) -> Category:
        if isinstance(value, Category):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        from agentkeel._errors import ConfigurationError

        names = ", ".join(c.value for c in cls)
        raise ConfigurationError(f"unknown category {value!r}: use one of {names}")


_NO_ATTRIBUTES: dict[str, Any] = {}


class Event(msgspec.Struct, frozen=True, gc=False):
    """One thing that happened, tied to its run, span and correlation ID.

    ``wall_ns`` is the wall clock (for people), ``mono_ns`` a monotonic clock (for
    durations and ordering within a process); ``seq`` orders events emitted by one
    process and, with ``origin``, makes ``event_id`` unique across processes.

    Build events with keywords; the pipeline's hot path passes them by position,
    which is why the field order is part of the contract. (``gc=False`` is safe:
    an event is immutable and cannot end up in a reference cycle with itself.)
    """

    type: str
    name: str = ""
    severity: int = Severity.INFO
    category: str | None = None
    attributes: dict[str, Any] = msgspec.field(default_factory=dict)
    run_id: str | None = None
    correlation_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    wall_ns: int = 0
    mono_ns: int = 0
    seq: int = 0
    origin: str = ""

    @property
    def event_id(self) -> str:
        return f"{self.origin}-{self.seq:x}"

    @property
    def timestamp(self) -> float:
        """Wall-clock seconds since the epoch."""
        return self.wall_ns / 1e9
