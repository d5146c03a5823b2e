"""The escalation policy, as pure functions: configuration, priority, level, timeouts.

Priority is a score from 0 to 100, the sum of (each table configurable)::

    severity          critical 40 · high 30 · medium 20 · low 10 · info 0
    attempts          +5 per failed recovery attempt, at most +20
    error type        + error_type_weights[type]  (resource 15, loop 15, auth 10,
                        configuration 10, state 10; the largest that matches)
    critical type     +25 if the error is one of critical_error_types
    context flags     user_facing +10 · data_loss +20 · security +20

clamped to 0..100. Unless a level is given, the level is the highest whose threshold
the score reaches (supervisor_review 30, human_intervention 50, critical_alert 75;
below 30: auto_recovery), raised to at least supervisor_review once recovery was tried
``max_auto_recovery_attempts`` times, and to at least human_intervention for a
critical error type.

An error "matches" a type name if the name is its class name, its category
(``network``), its category with ``_error`` (``resource_error``), or, for loops,
``infinite_loop`` — so the seed's error-type names work as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from agentkeel._encoding import safe_repr, truncate
from agentkeel._errors import ConfigurationError
from agentkeel.events import Category, Severity
from agentkeel.recovery import _config_checks as check
from agentkeel.recovery._ticket import EscalationLevel, Ticket
from agentkeel.tracking import classify_error, fingerprint
from agentkeel.tracking._classify import DEFAULT_SEVERITY

__all__ = [
    "ErrorFacts",
    "EscalationConfig",
    "TimeoutDecision",
    "choose_level",
    "describe_error",
    "plan_timeouts",
    "score_priority",
]

TimeoutAction = Literal["escalate", "expire"]
_SEVERITIES = ("info", "low", "medium", "high", "critical")
_FLAGS = ("user_facing", "data_loss", "security")
_NOTIFY_KINDS = ("created", "escalated", "expired", "acknowledged", "resolved")
_CHANNELS = ("email", "slack", "webhook")


def _default_severity_points() -> dict[str, int]:
    return {"critical": 40, "high": 30, "medium": 20, "low": 10, "info": 0}


def _default_type_weights() -> dict[str, int]:
    return {"resource": 15, "loop": 15, "auth": 10, "configuration": 10, "state": 10}


def _default_flag_points() -> dict[str, int]:
    return {"user_facing": 10, "data_loss": 20, "security": 20}


def _default_thresholds() -> dict[str, int]:
    return {"supervisor_review": 30, "human_intervention": 50, "critical_alert": 75}


@dataclass(frozen=True, slots=True, kw_only=True)
class EscalationConfig:
    """How tickets are scored, routed, timed out and announced.

    * ``escalation_timeout`` — how long an open ticket waits for someone to act
      before it moves up a level (seconds or ``timedelta``; default 600).
    * ``acknowledged_timeout`` — optional: an acknowledged ticket that is not
      resolved by then escalates too (default: acknowledging stops the clock).
    * ``timeout_action`` — ``"escalate"`` (default; at the top level the ticket
      expires and the fallback runs) or ``"expire"`` (expire at the first timeout).
    * ``max_auto_recovery_attempts``, ``critical_error_types``, the point tables and
      ``level_thresholds`` — see the module's formula.
    * ``notify_min_level`` — new tickets below it are recorded but not announced.
    * ``notify_on`` — which changes are announced: created, escalated, expired,
      acknowledged, resolved.
    * ``notification_channels`` — the seed's switches (``{"slack": False}``): a
      notifier whose ``channel`` is switched off is skipped.
    * ``notify_in_background`` — deliver on a worker thread (default) so a slow
      webhook never holds up the agent; ``max_pending_notifications`` bounds its queue.
    * ``similar_ticket_limit`` — how many similar past tickets a report lists.
    """

    max_auto_recovery_attempts: int = 3
    escalation_timeout: float | timedelta = 600.0
    acknowledged_timeout: float | timedelta | None = None
    timeout_action: TimeoutAction = "escalate"
    critical_error_types: tuple[str, ...] = ("resource_error", "infinite_loop")
    severity_points: Mapping[str, int] = field(default_factory=_default_severity_points)
    attempt_points: int = 5
    max_attempt_points: int = 20
    error_type_weights: Mapping[str, int] = field(default_factory=_default_type_weights)
    critical_type_points: int = 25
    context_flag_points: Mapping[str, int] = field(default_factory=_default_flag_points)
    level_thresholds: Mapping[str, int] = field(default_factory=_default_thresholds)
    notify_min_level: EscalationLevel | str = EscalationLevel.SUPERVISOR_REVIEW
    notify_on: tuple[str, ...] = ("created", "escalated", "expired", "resolved")
    notification_channels: Mapping[str, bool] = field(default_factory=dict)
    notify_in_background: bool = True
    max_pending_notifications: int = 1_000
    similar_ticket_limit: int = 5

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check.count(self.max_auto_recovery_attempts, "max_auto_recovery_attempts", minimum=0)
        set_(
            self, "escalation_timeout", check.seconds(self.escalation_timeout, "escalation_timeout")
        )
        if self.acknowledged_timeout is not None:
            set_(
                self,
                "acknowledged_timeout",
                check.seconds(self.acknowledged_timeout, "acknowledged_timeout"),
            )
        if self.timeout_action not in ("escalate", "expire"):
            raise ConfigurationError(
                f"timeout_action must be 'escalate' or 'expire', got {self.timeout_action!r}"
            )
        types = check.names(self.critical_error_types, "critical_error_types")
        set_(self, "critical_error_types", tuple(t.lower() for t in types))
        severity = _default_severity_points()
        severity.update(check.points(self.severity_points, "severity_points", keys=_SEVERITIES))
        set_(self, "severity_points", severity)
        check.count(self.attempt_points, "attempt_points", minimum=0)
        check.count(self.max_attempt_points, "max_attempt_points", minimum=0)
        set_(
            self, "error_type_weights", check.points(self.error_type_weights, "error_type_weights")
        )
        check.count(self.critical_type_points, "critical_type_points", minimum=0)
        flags = check.points(self.context_flag_points, "context_flag_points", keys=_FLAGS)
        set_(self, "context_flag_points", {**_default_flag_points(), **flags})
        levels = [level.value for level in EscalationLevel][1:]
        thresholds = _default_thresholds()
        thresholds.update(check.points(self.level_thresholds, "level_thresholds", keys=levels))
        ordered = [thresholds[level] for level in levels]
        if ordered != sorted(ordered) or not all(0 <= t <= 100 for t in ordered):
            raise ConfigurationError(
                f"level_thresholds must rise with the level and lie in 0..100, got {thresholds}"
            )
        set_(self, "level_thresholds", thresholds)
        set_(self, "notify_min_level", EscalationLevel.parse(self.notify_min_level))
        kinds = check.names(self.notify_on, "notify_on")
        for kind in kinds:
            if kind not in _NOTIFY_KINDS:
                raise ConfigurationError(
                    f"notify_on has {kind!r}: use any of {', '.join(_NOTIFY_KINDS)}"
                )
        set_(self, "notify_on", kinds)
        channels = self.notification_channels
        if not isinstance(channels, Mapping) or not all(
            k in _CHANNELS and isinstance(v, bool) for k, v in channels.items()
        ):
            raise ConfigurationError(
                f"notification_channels must map {', '.join(_CHANNELS)} to True/False, "
                f"got {channels!r}"
            )
        set_(self, "notification_channels", dict(channels))
        check.flag(self.notify_in_background, "notify_in_background")
        check.count(self.max_pending_notifications, "max_pending_notifications")
        check.count(self.similar_ticket_limit, "similar_ticket_limit", minimum=0)

    @property
    def timeout_seconds(self) -> float:
        return _as_float(self.escalation_timeout)

    @property
    def acknowledged_timeout_seconds(self) -> float | None:
        value = self.acknowledged_timeout
        return None if value is None else _as_float(value)

    @property
    def min_notify_level(self) -> EscalationLevel:
        return EscalationLevel.parse(self.notify_min_level)

    def channel_enabled(self, channel: str | None) -> bool:
        return channel is None or self.notification_channels.get(channel, True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EscalationConfig:
        """Build from a plain mapping (the seed's ``'escalation'`` section).

        Unknown keys are an error that lists the allowed ones.
        """
        return check.from_mapping(cls, data, label="escalation")


def _as_float(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorFacts:
    """What an escalation knows about the error, whatever form it was given in."""

    error_type: str
    error_message: str
    category: str
    severity: str
    fingerprint: str
    retryable: bool | None = None
    agent_id: str | None = None
    task_id: str | None = None
    flags: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)

    def type_names(self) -> frozenset[str]:
        """The names this error answers to in ``critical_error_types`` and weights."""
        names = {self.error_type.lower(), self.category, f"{self.category}_error"}
        if self.category == Category.LOOP.value:
            names.add("infinite_loop")
        return frozenset(names)


_KNOWN_KEYS = frozenset(
    {
        "error",
        "exception",
        "error_type",
        "error_message",
        "message",
        "category",
        "severity",
        "agent_id",
        "task_id",
        *_FLAGS,
    }
)
_MAX_CONTEXT_KEYS = 30


def describe_error(error_context: object) -> ErrorFacts:
    """Facts from an exception, a mapping, or an object with the same attribute names.

    Recognised keys: ``error``/``exception`` (an exception or a message), ``error_type``,
    ``error_message``/``message``, ``category``, ``severity``, ``agent_id``,
    ``task_id``, and the flags ``user_facing``, ``data_loss``, ``security``. Anything
    else is kept (bounded) as context. An explicit category or severity wins over the
    one classification finds.
    """
    if isinstance(error_context, BaseException):
        values: dict[str, Any] = {"error": error_context}
    elif isinstance(error_context, Mapping):
        values = {str(k): v for k, v in error_context.items()}
    elif isinstance(error_context, str):
        values = {"error_message": error_context}
    else:
        attrs = getattr(error_context, "__dict__", None) or {
            name: getattr(error_context, name)
            for name in getattr(type(error_context), "__slots__", ())
            if hasattr(error_context, name)
        }
        values = {str(k): v for k, v in dict(attrs).items() if not str(k).startswith("_")}
    error = values.get("error", values.get("exception"))
    exc = error if isinstance(error, BaseException) else None
    classification = classify_error(exc) if exc is not None else None
    error_type = _label(values.get("error_type")) or (type(exc).__name__ if exc else "Error")
    message = values.get("error_message", values.get("message"))
    if message is None:
        message = str(exc) if exc is not None else ("" if error is None else str(error))
    category = _category(values.get("category"))
    if category is None:
        category = classification.category.value if classification else Category.UNKNOWN.value
    severity = _severity(values.get("severity"))
    if severity is None:
        if classification is not None and _category(values.get("category")) is None:
            severity = classification.severity.name.lower()
        else:  # the category given says how bad such errors usually are
            try:
                severity = DEFAULT_SEVERITY[Category(category)].name.lower()
            except ValueError:  # a category of the caller's own
                severity = "medium"
    flags = tuple(name for name in _FLAGS if values.get(name))
    context = {
        key: _bounded(value)
        for key, value in list(values.items())[:_MAX_CONTEXT_KEYS]
        if key not in _KNOWN_KEYS
    }
    message = truncate(str(message), 2_000)
    return ErrorFacts(
        error_type=error_type,
        error_message=message,
        category=category,
        severity=severity,
        fingerprint=fingerprint(error_type, category, None, None, message),
        retryable=classification.retryable if classification else None,
        agent_id=_text(values.get("agent_id")),
        task_id=_text(values.get("task_id")),
        flags=flags,
        context=context,
    )


def _label(value: object) -> str | None:
    """An enum's value or a string; other things are not labels."""
    raw = getattr(value, "value", value)
    return raw.strip() if isinstance(raw, str) and raw.strip() else None


def _category(value: object) -> str | None:
    label = _label(value)
    if label is None:
        return None
    try:
        return Category.parse(label).value
    except ConfigurationError:
        return label.lower()  # a category of the caller's own is kept as given


def _severity(value: object) -> str | None:
    if value is None:
        return None
    raw = getattr(value, "value", value)
    if isinstance(raw, str):
        raw = raw.strip()
    elif not isinstance(raw, int) or isinstance(raw, bool):
        raw = getattr(value, "name", raw)
    try:
        return Severity.parse(raw).name.lower()
    except ConfigurationError:
        return None


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _bounded(value: object) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return truncate(value, 500) if isinstance(value, str) else value
    return safe_repr(value, 500)


def score_priority(facts: ErrorFacts, attempts: int, config: EscalationConfig) -> int:
    """The 0..100 priority of the module's formula."""
    score = config.severity_points.get(facts.severity, 0)
    score += min(max(attempts, 0) * config.attempt_points, config.max_attempt_points)
    names = facts.type_names()
    weights = [w for name, w in config.error_type_weights.items() if name in names]
    score += max(weights, default=0)
    if names & set(config.critical_error_types):
        score += config.critical_type_points
    score += sum(config.context_flag_points.get(flag, 0) for flag in facts.flags)
    return max(0, min(100, score))


def choose_level(
    priority: int, facts: ErrorFacts, attempts: int, config: EscalationConfig
) -> EscalationLevel:
    """The level the module's rules give this priority, error and attempt count."""
    level = EscalationLevel.AUTO_RECOVERY
    for candidate in tuple(EscalationLevel)[1:]:
        if priority >= config.level_thresholds[candidate.value]:
            level = candidate
    floor = EscalationLevel.AUTO_RECOVERY
    if attempts >= config.max_auto_recovery_attempts:
        floor = EscalationLevel.SUPERVISOR_REVIEW
    if facts.type_names() & set(config.critical_error_types):
        floor = EscalationLevel.HUMAN_INTERVENTION
    return level if level.rank >= floor.rank else floor


@dataclass(frozen=True, slots=True)
class TimeoutDecision:
    """What to do with one overdue ticket: move it to ``level``, or expire it."""

    ticket_id: str
    action: TimeoutAction
    level: EscalationLevel
    deadline: float | None


def plan_timeouts(
    tickets: Iterable[Ticket], now: float, config: EscalationConfig
) -> list[TimeoutDecision]:
    """The decisions for every ticket whose deadline passed at ``now``. Pure."""
    decisions = []
    for ticket in tickets:
        if not ticket.overdue(now):
            continue
        upper = ticket.level.next() if config.timeout_action == "escalate" else None
        if upper is None:
            decisions.append(TimeoutDecision(ticket.ticket_id, "expire", ticket.level, None))
        else:
            deadline = now + config.timeout_seconds
            decisions.append(TimeoutDecision(ticket.ticket_id, "escalate", upper, deadline))
    return decisions
