"""The recovery orchestrator: assessment → strategy selection → execution → validation → completion.

Strategy selection is a pure function of the assessment (error type, severity,
what is available, what happened before), so it is tested on its own; execution
only calls the subsystems. Every phase is a ``recovery.phase`` event.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentkeel.events import Severity
from agentkeel.resilience import CircuitOpenError, ErrorType


class RecoveryStrategy(enum.StrEnum):
    """How the orchestrator tries to recover (seed 004's strategies)."""

    AUTO_RETRY = "auto_retry"
    ROLLBACK = "rollback"
    ESCALATION = "escalation"
    CIRCUIT_BREAKER = "circuit_breaker"
    HYBRID = "hybrid"  # roll back to the last good state, then retry
    MANUAL = "manual"  # nothing to run: a person must act


class RecoveryPhase(enum.StrEnum):
    ASSESSMENT = "assessment"
    STRATEGY_SELECTION = "strategy_selection"
    EXECUTION = "execution"
    VALIDATION = "validation"
    COMPLETION = "completion"


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the orchestrator knows about an error before it chooses what to do."""

    error_type: ErrorType
    severity: Severity
    category: str
    retryable: bool
    agent_id: str | None
    task_id: str | None
    has_callback: bool
    has_snapshot: bool
    previous_failures: int  # failed recoveries for this agent and task so far
    critical: bool  # an error type the configuration escalates at once
    state_corrupted: bool  # the caller says the agent's state may be bad
    retry_after: float | None = None


def select_strategy(  # noqa: PLR0911 - one return per documented rule
    a: Assessment, *, max_auto_recovery_attempts: int
) -> RecoveryStrategy:
    """The strategy for an assessment; documented rules, first match wins."""
    if a.error_type is ErrorType.INFINITE_LOOP or a.critical or a.severity >= Severity.CRITICAL:
        # Retrying a loop or a critical error repeats the damage: restore, then a person.
        return RecoveryStrategy.HYBRID if a.has_snapshot else RecoveryStrategy.ESCALATION
    if a.previous_failures >= max_auto_recovery_attempts:
        return RecoveryStrategy.ESCALATION
    if not a.has_callback:
        return (
            RecoveryStrategy.ROLLBACK
            if a.has_snapshot and a.state_corrupted
            else (RecoveryStrategy.MANUAL)
        )
    if a.error_type is ErrorType.CONFIGURATION_ERROR:
        return RecoveryStrategy.ESCALATION  # bad credentials or settings: retries cannot help
    if (
        a.retry_after is not None
        and a.category == "network"
        and a.error_type is (ErrorType.COMMUNICATION_ERROR)
    ):
        return RecoveryStrategy.CIRCUIT_BREAKER
    if a.state_corrupted:
        return RecoveryStrategy.HYBRID if a.has_snapshot else RecoveryStrategy.AUTO_RETRY
    return RecoveryStrategy.AUTO_RETRY


def is_breaker_refusal(error: BaseException) -> bool:
    return isinstance(error, CircuitOpenError)


@dataclass(frozen=True, slots=True)
class RecoveryResult(Mapping[str, Any]):
    """The outcome of ``handle_error``; reads like the dict the seed guide shows.

    ``success`` is true only when a recovery ran *and* passed validation.
    """

    success: bool
    strategy: RecoveryStrategy
    error_type: ErrorType
    severity: Severity
    attempts: int = 0
    result: Any = None
    error: str | None = None
    escalation_ticket: str | None = None
    snapshot_id: str | None = None
    phases: tuple[str, ...] = ()
    duration_ms: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "result": self.result,
            "error": self.error,
            "strategy": self.strategy.value,
            "error_type": self.error_type.value,
            "severity": self.severity.name.lower(),
            "attempts": self.attempts,
            "escalation_ticket": self.escalation_ticket,
            "snapshot_id": self.snapshot_id,
            "phases": list(self.phases),
            "duration_ms": self.duration_ms,
            **self.details,
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


RecoveryCallback = Callable[..., Any] | Callable[..., Awaitable[Any]]


def accepts_keyword(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` takes ``name=`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind is inspect.Parameter.VAR_KEYWORD
        or (p.name == name and p.kind is not inspect.Parameter.POSITIONAL_ONLY)
        for p in params
    )
