"""The pure fold from escalation events to tickets, and the level/status enums."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentkeel import ConfigurationError
from agentkeel.events import Event
from agentkeel.recovery import EscalationLevel, TicketStatus, fold_ticket, fold_tickets

_seq = itertools.count(1)


def created(ticket_id: str = "esc-1", at: float = 100.0, **attrs: Any) -> Event:
    attributes = {
        "ticket_id": ticket_id,
        "change_id": f"c{next(_seq)}",
        "at": at,
        "level": "supervisor_review",
        "priority": 45,
        "status": "open",
        "error_type": "ConnectionError",
        "error_message": "refused",
        "category": "network",
        "severity": "high",
        "fingerprint": "fp1",
        "agent_id": "agent-1",
        "task_id": "t",
        "recovery_attempts": 3,
        "attempts": ["retry 1", "retry 2"],
        "flags": ["user_facing"],
        "context": {"region": "eu"},
        "deadline": at + 600,
    }
    attributes.update(attrs)
    return Event(type="escalation.created", attributes=attributes, run_id="run-1")


def updated(action: str, ticket_id: str = "esc-1", at: float = 200.0, **attrs: Any) -> Event:
    attributes = {
        "ticket_id": ticket_id,
        "change_id": f"c{next(_seq)}",
        "at": at,
        "action": action,
        "actor": "ana",
        "note": "",
        "level": "supervisor_review",
        "deadline": None,
    }
    attributes.update(attrs)
    return Event(type="escalation.updated", attributes=attributes)


def test_created_then_acknowledged_then_resolved() -> None:
    ticket = fold_ticket(
        [
            created(),
            updated("acknowledged", at=150.0, note="looking"),
            updated("resolved", at=300.0, resolution="restarted the proxy", actor="bo"),
        ]
    )
    assert ticket is not None
    assert ticket.status is TicketStatus.RESOLVED and ticket.is_final
    assert ticket.acknowledged_by == "ana" and ticket.acknowledged_at == 150.0
    assert ticket.resolved_by == "bo" and ticket.resolution == "restarted the proxy"
    assert ticket.deadline is None and ticket.updated_at == 300.0
    assert ticket.run_id == "run-1" and ticket.context == {"region": "eu"}
    assert ticket.attempts == ("retry 1", "retry 2") and ticket.flags == ("user_facing",)
    assert [c.action for c in ticket.changes] == ["created", "acknowledged", "resolved"]
    assert ticket.changes[1].note == "looking"
    assert ticket.to_dict()["changes"][2]["resolution"] == "restarted the proxy"


def test_escalation_raises_the_level_and_reopens() -> None:
    ticket = fold_ticket(
        [
            created(),
            updated("acknowledged"),
            updated("escalated", level="human_intervention", deadline=1_000.0),
        ]
    )
    assert ticket is not None
    assert ticket.level is EscalationLevel.HUMAN_INTERVENTION
    assert ticket.status is TicketStatus.OPEN and ticket.escalations == 1
    assert ticket.deadline == 1_000.0
    assert ticket.overdue(1_000.0) and not ticket.overdue(999.0)


def test_a_finished_ticket_stays_finished_and_notes_never_change_the_status() -> None:
    ticket = fold_ticket(
        [
            created(),
            updated("expired"),
            updated("resolved", resolution="late"),
            updated("acknowledged"),
            updated("notified", note="expired via webhook"),
        ]
    )
    assert ticket is not None and ticket.status is TicketStatus.EXPIRED
    assert ticket.resolution is None
    assert [c.action for c in ticket.changes] == ["created", "expired", "notified"]
    assert not ticket.overdue(1e12)


def test_repeated_changes_updates_without_creation_and_double_acks_are_ignored() -> None:
    ack = updated("acknowledged")
    assert fold_ticket([ack]) is None
    ticket = fold_ticket([created(), ack, ack, updated("acknowledged", actor="other")])
    assert ticket is not None and ticket.acknowledged_by == "ana"
    assert len(ticket.changes) == 2
    first = created()
    assert fold_ticket([first, created(error_type="Other")]).error_type == "ConnectionError"  # type: ignore[union-attr]


def test_fold_tickets_groups_by_ticket_oldest_first() -> None:
    events = [
        created("esc-b", at=200.0),
        created("esc-a", at=100.0),
        updated("resolved", "esc-b", resolution="x"),
        Event(type="tool.start", attributes={"ticket_id": "esc-a"}),
        updated("acknowledged", "esc-zzz"),
    ]
    tickets = fold_tickets(events)
    assert list(tickets) == ["esc-a", "esc-b"]
    assert tickets["esc-b"].status is TicketStatus.RESOLVED


def test_odd_attribute_values_do_not_break_the_fold() -> None:
    ticket = fold_ticket([created(level="weird", priority="high", deadline="soon", context=[1])])
    assert ticket is not None
    assert ticket.level is EscalationLevel.SUPERVISOR_REVIEW
    assert ticket.priority == 0 and ticket.deadline is None and ticket.context == {}


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["acknowledged", "escalated", "resolved", "expired", "note"]), max_size=12
    )
)
def test_any_sequence_of_changes_folds_to_a_consistent_ticket(actions: list[str]) -> None:
    events = [created()]
    for n, action in enumerate(actions):
        events.append(updated(action, at=200.0 + n, level="critical_alert", resolution="fixed"))
    ticket = fold_ticket(events)
    assert ticket is not None
    finals = [a for a in actions if a in ("resolved", "expired")]
    if finals:
        assert ticket.status.value == finals[0]
        assert ticket.deadline is None
    else:
        assert ticket.status in (TicketStatus.OPEN, TicketStatus.ACKNOWLEDGED)
    assert ticket.changes[0].action == "created"
    assert [c.at for c in ticket.changes] == sorted(c.at for c in ticket.changes)


def test_levels_parse_rank_and_climb() -> None:
    assert EscalationLevel.parse("Human Intervention") is EscalationLevel.HUMAN_INTERVENTION
    assert EscalationLevel.parse(4) is EscalationLevel.CRITICAL_ALERT
    assert EscalationLevel.parse("auto-recovery").rank == 1
    assert EscalationLevel.SUPERVISOR_REVIEW.next() is EscalationLevel.HUMAN_INTERVENTION
    assert EscalationLevel.CRITICAL_ALERT.next() is None
    with pytest.raises(ConfigurationError, match="unknown escalation level 'urgent'"):
        EscalationLevel.parse("urgent")
    with pytest.raises(ConfigurationError, match="use one of open, acknowledged"):
        TicketStatus.parse("closed")
    assert TicketStatus.parse(" Open ") is TicketStatus.OPEN
