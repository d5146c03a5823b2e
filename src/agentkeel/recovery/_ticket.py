"""Escalation tickets: levels, statuses, and the pure fold from events to a ticket.

A ticket is never stored as a row: it is the fold of its ``escalation.created``
event and the ``escalation.updated`` events that follow, in store order. Any process
that can read the store sees the same ticket, a restarted watcher carries on where
the last one stopped, and the history of who did what is the ticket's own timeline.

The transitions the fold accepts (anything else is ignored, so the first of two
racing changes wins and a finished ticket stays finished)::

    open ──acknowledged──▶ acknowledged
    open | acknowledged ──escalated──▶ open (next level, new deadline)
    open | acknowledged ──resolved──▶ resolved      (final)
    open | acknowledged ──expired───▶ expired       (final)

Notes (notifications sent or failed, fallbacks run) never change the status.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from agentkeel._errors import ConfigurationError
from agentkeel.events import Event, EventType

__all__ = [
    "CREATED",
    "UPDATED",
    "EscalationLevel",
    "Ticket",
    "TicketChange",
    "TicketStatus",
    "fold_ticket",
    "fold_tickets",
]

CREATED = EventType.ESCALATION_CREATED.value
UPDATED = EventType.ESCALATION_UPDATED.value


class EscalationLevel(enum.StrEnum):
    """Who has to look at it, from no one (automatic recovery) to everyone."""

    AUTO_RECOVERY = "auto_recovery"
    SUPERVISOR_REVIEW = "supervisor_review"
    HUMAN_INTERVENTION = "human_intervention"
    CRITICAL_ALERT = "critical_alert"

    @property
    def rank(self) -> int:
        """1 (auto recovery) to 4 (critical alert)."""
        return _ORDER.index(self) + 1

    def next(self) -> EscalationLevel | None:
        """The level above, or ``None`` at the top."""
        rank = self.rank
        return _ORDER[rank] if rank < len(_ORDER) else None

    @classmethod
    def parse(cls, value: object) -> EscalationLevel:
        """Accept a level, its value or name in any case, or its rank 1..4."""
        if isinstance(value, EscalationLevel):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(_ORDER):
            return _ORDER[value - 1]
        if isinstance(value, str):
            text = value.strip().lower().replace("-", "_").replace(" ", "_")
            for level in _ORDER:
                if text == level.value:
                    return level
        names = ", ".join(level.value for level in _ORDER)
        raise ConfigurationError(f"unknown escalation level {value!r}: use one of {names} (or 1-4)")


_ORDER: tuple[EscalationLevel, ...] = tuple(EscalationLevel)


class TicketStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in (TicketStatus.RESOLVED, TicketStatus.EXPIRED)

    @classmethod
    def parse(cls, value: object) -> TicketStatus:
        if isinstance(value, TicketStatus):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        names = ", ".join(s.value for s in cls)
        raise ConfigurationError(f"unknown ticket status {value!r}: use one of {names}")


@dataclass(frozen=True, slots=True)
class TicketChange:
    """One line of a ticket's timeline."""

    at: float
    action: str
    status: TicketStatus
    level: EscalationLevel
    actor: str = ""
    note: str = ""
    resolution: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "status": self.status.value,
            "level": self.level.value,
            "actor": self.actor,
            "note": self.note,
            "resolution": self.resolution,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticket:
    """An escalation as its events describe it now. Times are seconds since the epoch.

    ``deadline`` is when the ticket escalates (or expires) unless someone acts;
    ``None`` once acknowledged (unless the config sets an acknowledgement timeout) or
    finished.
    """

    ticket_id: str
    level: EscalationLevel
    priority: int
    status: TicketStatus
    error_type: str
    error_message: str
    category: str
    severity: str
    fingerprint: str
    created_at: float
    updated_at: float
    deadline: float | None
    agent_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    recovery_attempts: int = 0
    attempts: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)
    acknowledged_by: str | None = None
    acknowledged_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None
    resolution: str | None = None
    escalations: int = 0
    changes: tuple[TicketChange, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def overdue(self, now: float) -> bool:
        """Whether its deadline has passed at ``now`` (epoch seconds)."""
        return self.deadline is not None and not self.is_final and now >= self.deadline

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "level": self.level.value,
            "priority": self.priority,
            "status": self.status.value,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "category": self.category,
            "severity": self.severity,
            "fingerprint": self.fingerprint,
            "agent_id": self.agent_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "recovery_attempts": self.recovery_attempts,
            "attempts": list(self.attempts),
            "flags": list(self.flags),
            "context": self.context,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deadline": self.deadline,
            "acknowledged_by": self.acknowledged_by,
            "acknowledged_at": self.acknowledged_at,
            "resolved_by": self.resolved_by,
            "resolved_at": self.resolved_at,
            "resolution": self.resolution,
            "escalations": self.escalations,
            "changes": [change.to_dict() for change in self.changes],
        }


_STATE_CHANGES = frozenset({"acknowledged", "escalated", "resolved", "expired"})


def fold_ticket(events: Iterable[Event]) -> Ticket | None:
    """The ticket that ``events`` (one ticket's, oldest first) describe.

    ``None`` until its ``escalation.created`` event is among them; updates seen
    before it are ignored, as are repeats of a change (same ``change_id``) and
    changes the current status does not allow.
    """
    ticket: Ticket | None = None
    seen: set[str] = set()
    for event in events:
        attrs = event.attributes
        change_id = str(attrs.get("change_id") or "")
        if change_id:
            if change_id in seen:
                continue
            seen.add(change_id)
        if event.type == CREATED:
            if ticket is None:
                ticket = _created(event)
        elif event.type == UPDATED and ticket is not None:
            ticket = _apply(ticket, attrs)
    return ticket


def fold_tickets(events: Iterable[Event]) -> dict[str, Ticket]:
    """Every ticket in ``events`` (any mix of tickets, oldest first), by ID, oldest first."""
    grouped: dict[str, list[Event]] = {}
    for event in events:
        if event.type not in (CREATED, UPDATED):
            continue
        ticket_id = event.attributes.get("ticket_id")
        if isinstance(ticket_id, str) and ticket_id:
            grouped.setdefault(ticket_id, []).append(event)
    tickets: dict[str, Ticket] = {}
    for ticket_id, ticket_events in grouped.items():
        ticket = fold_ticket(ticket_events)
        if ticket is not None:
            tickets[ticket_id] = ticket
    return dict(sorted(tickets.items(), key=lambda item: item[1].created_at))


def _created(event: Event) -> Ticket:
    a = event.attributes
    at = _float(a.get("at")) or event.timestamp
    level = _level(a.get("level"), EscalationLevel.SUPERVISOR_REVIEW)
    status = TicketStatus.OPEN
    return Ticket(
        ticket_id=str(a.get("ticket_id")),
        level=level,
        priority=_int(a.get("priority")),
        status=status,
        error_type=str(a.get("error_type") or ""),
        error_message=str(a.get("error_message") or ""),
        category=str(a.get("category") or "unknown"),
        severity=str(a.get("severity") or "medium"),
        fingerprint=str(a.get("fingerprint") or ""),
        created_at=at,
        updated_at=at,
        deadline=_float(a.get("deadline")),
        agent_id=_text(a.get("agent_id")),
        task_id=_text(a.get("task_id")),
        run_id=event.run_id,
        recovery_attempts=_int(a.get("recovery_attempts")),
        attempts=tuple(str(x) for x in a.get("attempts") or ()),
        flags=tuple(str(x) for x in a.get("flags") or ()),
        context=dict(a.get("context") or {}) if isinstance(a.get("context"), Mapping) else {},
        changes=(
            TicketChange(
                at=at,
                action="created",
                status=status,
                level=level,
                actor=str(a.get("actor") or ""),
                note=str(a.get("note") or ""),
            ),
        ),
    )


def _apply(ticket: Ticket, a: Mapping[str, Any]) -> Ticket:
    action = str(a.get("action") or "note")
    at = _float(a.get("at")) or ticket.updated_at
    actor = str(a.get("actor") or "")
    note = str(a.get("note") or "")
    if action not in _STATE_CHANGES:
        change = TicketChange(at, action, ticket.status, ticket.level, actor, note)
        return replace(ticket, changes=(*ticket.changes, change))
    if ticket.is_final or (action == "acknowledged" and ticket.status is TicketStatus.ACKNOWLEDGED):
        return ticket
    updates: dict[str, Any] = {"updated_at": at, "deadline": _float(a.get("deadline"))}
    resolution = ""
    if action == "acknowledged":
        updates.update(
            status=TicketStatus.ACKNOWLEDGED, acknowledged_by=actor or None, acknowledged_at=at
        )
    elif action == "escalated":
        updates.update(
            status=TicketStatus.OPEN,
            level=_level(a.get("level"), ticket.level),
            escalations=ticket.escalations + 1,
        )
    elif action == "resolved":
        resolution = str(a.get("resolution") or "")
        updates.update(
            status=TicketStatus.RESOLVED,
            resolved_by=actor or None,
            resolved_at=at,
            resolution=resolution,
            deadline=None,
        )
    else:  # expired
        updates.update(status=TicketStatus.EXPIRED, deadline=None)
    ticket = replace(ticket, **updates)
    change = TicketChange(at, action, ticket.status, ticket.level, actor, note, resolution)
    return replace(ticket, changes=(*ticket.changes, change))


def _level(value: object, default: EscalationLevel) -> EscalationLevel:
    try:
        return EscalationLevel.parse(value)
    except ConfigurationError:
        return default


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: object) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return 0


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)
