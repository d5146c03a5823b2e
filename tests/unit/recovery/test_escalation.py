"""EscalationManager: tickets in a store, changes, reports, timeouts, waits, notifications."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _loop_support import Captured, FakeClock

import agentkeel
from agentkeel import ConfigurationError, Severity, StoreError, _internal
from agentkeel.pipeline import Pipeline
from agentkeel.recovery import (
    EscalationConfig,
    EscalationLevel,
    EscalationManager,
    Notification,
    Ticket,
    TicketStateError,
    TicketStatus,
    UnknownTicketError,
)
from agentkeel.store import Store, open_store


@pytest.fixture
def memory() -> Iterator[Store]:
    store = open_store("memory://")
    yield store
    store.close()


class Inbox:
    """A notifier that keeps what it is told (and can be told to fail)."""

    name = "inbox"
    channel = "webhook"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.got: list[Notification] = []

    def __call__(self, notification: Notification, /) -> None:
        if self.fail:
            raise ConnectionError("receiver is down")
        self.got.append(notification)

    @property
    def kinds(self) -> list[tuple[str, str]]:
        return [(n.kind, n.ticket.level.value) for n in self.got]


def manager(store: Store, clock: FakeClock | None = None, **kw: Any) -> EscalationManager:
    config = kw.pop("config", None) or EscalationConfig(notify_in_background=False)
    return EscalationManager(config=config, store=store, clock=clock or FakeClock(), **kw)


# ---------------------------------------------------------------------- create


def test_a_ticket_is_created_stored_and_announced(memory: Store) -> None:
    inbox = Inbox()
    m = manager(memory, notifiers=[inbox])
    ticket_id = m.create_escalation_sync(
        ConnectionError("upstream refused"),
        recovery_attempts=[ConnectionError("refused"), "retry 2 failed", {"attempt": 3}],
        agent_id="agent-1",
        task_id="book",
    )
    assert ticket_id.startswith("esc-") and len(ticket_id) == 16
    ticket = m.get_ticket(ticket_id)
    assert ticket.status is TicketStatus.OPEN
    assert ticket.level is EscalationLevel.SUPERVISOR_REVIEW and ticket.priority == 45
    assert ticket.recovery_attempts == 3
    assert ticket.attempts == ("ConnectionError: refused", "retry 2 failed", "{'attempt': 3}")
    assert ticket.deadline == ticket.created_at + 600
    assert (ticket.agent_id, ticket.task_id) == ("agent-1", "book")
    stored = memory.list_events(types=["escalation.created"])
    assert len(stored) == 1 and stored[0].event.severity == Severity.MEDIUM
    assert stored[0].event.attributes["ticket_id"] == ticket_id
    assert inbox.kinds == [("created", "supervisor_review")]
    assert [c.action for c in m.get_ticket(ticket_id).changes] == ["created", "notified"]


def test_explicit_level_and_quiet_low_levels(memory: Store) -> None:
    inbox = Inbox()
    m = manager(memory, notifiers=[inbox])
    low = m.create_escalation_sync(ValueError("meh"))
    assert m.get_ticket(low).level is EscalationLevel.AUTO_RECOVERY
    high = m.create_escalation_sync(ValueError("meh"), level="critical_alert", note="by hand")
    assert m.get_ticket(high).level is EscalationLevel.CRITICAL_ALERT
    assert m.get_ticket(high).changes[0].note == "by hand"
    assert inbox.kinds == [("created", "critical_alert")]  # auto recovery is not announced


def test_async_create_and_report(memory: Store) -> None:
    m = manager(memory)

    async def main() -> None:
        ticket_id = await m.create_escalation(
            {"error": MemoryError("oom"), "agent_id": "a", "data_loss": True},
            recovery_attempts=iter(["one", "two"]),
            level=EscalationLevel.HUMAN_INTERVENTION,
        )
        report = await m.get_escalation_report(ticket_id)
        assert report.ticket.level is EscalationLevel.HUMAN_INTERVENTION
        assert report.ticket.recovery_attempts == 2

    asyncio.run(main())


# ---------------------------------------------------------------------- changes


def test_acknowledge_then_resolve(memory: Store) -> None:
    inbox = Inbox()
    m = manager(memory, notifiers=[inbox])
    ticket_id = m.create_escalation_sync(TimeoutError("slow"), level=2)
    acked = m.acknowledge(ticket_id[:8], actor="ana", note="on it")
    assert acked.status is TicketStatus.ACKNOWLEDGED and acked.deadline is None
    with pytest.raises(TicketStateError, match="already acknowledged by ana"):
        m.acknowledge(ticket_id, actor="bo")
    with pytest.raises(ConfigurationError, match="resolution must say what fixed it"):
        m.resolve(ticket_id, resolution="  ")
    done = m.resolve(ticket_id, resolution="raised the timeout", actor="ana")
    assert done.status is TicketStatus.RESOLVED and done.resolved_by == "ana"
    with pytest.raises(TicketStateError, match="already resolved by ana"):
        m.resolve(ticket_id, resolution="again")
    with pytest.raises(TicketStateError, match="already resolved"):
        m.escalate(ticket_id)
    assert [k for k, _ in inbox.kinds] == ["created", "resolved"]


def test_manual_escalation_and_notes(memory: Store) -> None:
    m = manager(memory)
    ticket_id = m.create_escalation_sync(KeyError("x"), level="human_intervention")
    ticket = m.escalate(ticket_id, actor="ana", note="customers affected")
    assert ticket.level is EscalationLevel.CRITICAL_ALERT and ticket.escalations == 1
    with pytest.raises(TicketStateError, match="already at the top level"):
        m.escalate(ticket_id)
    noted = m.add_note(ticket_id, "paged the vendor", actor="ana")
    assert noted.changes[-1].note == "paged the vendor"
    assert noted.status is TicketStatus.OPEN


def test_unknown_and_ambiguous_ids(memory: Store) -> None:
    m = manager(memory)
    with pytest.raises(UnknownTicketError, match="keel escalations list"):
        m.get_ticket("esc-nope")
    for _ in range(20):
        m.create_escalation_sync(ValueError("x"))
    with pytest.raises(UnknownTicketError, match="ambiguous"):
        m.get_ticket("esc-")
    with pytest.raises(LookupError):
        m.get_ticket("")


def test_list_tickets_filters(memory: Store) -> None:
    clock = FakeClock()
    m = manager(memory, clock)
    first = m.create_escalation_sync({"error": "a", "agent_id": "x"}, level=1)
    clock.advance(1)
    second = m.create_escalation_sync({"error": "b", "agent_id": "y"}, level=3)
    m.resolve(first, resolution="fixed")
    assert [t.ticket_id for t in m.list_tickets()] == [second, first]
    assert [t.ticket_id for t in m.list_tickets(status="open")] == [second]
    assert [t.ticket_id for t in m.list_tickets(level="auto_recovery")] == [first]
    assert [t.ticket_id for t in m.list_tickets(agent_id="y", limit=1)] == [second]
    with pytest.raises(ConfigurationError, match="unknown ticket status 'closed'"):
        m.list_tickets(status="closed")
    stats = m.get_statistics()
    assert stats["by_status"] == {"resolved": 1, "open": 1} and stats["tickets"] == 2


# ---------------------------------------------------------------------- report


def test_report_has_analysis_similar_tickets_and_recommendations(memory: Store) -> None:
    clock = FakeClock()
    m = manager(memory, clock)
    old = m.create_escalation_sync(ConnectionError("refused by 10.0.0.1"), recovery_attempts=3)
    m.resolve(old, resolution="restarted the proxy", actor="ana")
    clock.advance(60)
    new = m.create_escalation_sync(
        {"error": ConnectionError("refused by 10.0.0.2"), "user_facing": True},
        recovery_attempts=3,
    )
    report = m.get_escalation_report_sync(new)
    analysis = report.analysis
    assert analysis["classification"]["category"] == "network"
    assert analysis["classification"]["retryable"] is True
    assert analysis["recovery_attempts"] == 3 and analysis["similar_count"] == 1
    assert analysis["similar_tickets"][0]["ticket_id"] == old
    assert analysis["similar_tickets"][0]["match"] == "fingerprint"
    assert analysis["timeline"][0]["action"] == "created"
    recommendations = " | ".join(report.recommendations)
    assert "resolved before; the latest" in recommendations
    assert "restarted the proxy" in recommendations
    assert "tried 3 time(s)" in recommendations
    assert "Transient network failure" in recommendations
    assert "Users are affected" in recommendations
    assert f"keel escalations ack {new}" in recommendations
    text = report.render()
    assert f"Escalation {new}  [open]" in text and "Similar tickets" in text
    assert report.to_dict()["ticket"]["ticket_id"] == new


# --------------------------------------------------------------------- timeouts


def test_an_unanswered_ticket_climbs_then_expires_and_the_fallback_runs(memory: Store) -> None:
    clock = FakeClock()
    inbox = Inbox()
    fallen_back: list[Ticket] = []
    m = manager(memory, clock, notifiers=[inbox], on_timeout=fallen_back.append)
    ticket_id = m.create_escalation_sync(TimeoutError("slow"), level="supervisor_review")
    assert m.check_timeouts() == []
    clock.advance(600)
    (escalated,) = m.check_timeouts()
    assert escalated.level is EscalationLevel.HUMAN_INTERVENTION
    assert escalated.deadline == clock.wall() + 600
    clock.advance(600)
    m.check_timeouts()
    clock.advance(600)
    (expired,) = m.check_timeouts()
    assert expired.status is TicketStatus.EXPIRED
    assert [t.ticket_id for t in fallen_back] == [ticket_id]
    assert [c.action for c in expired.changes if c.action != "notified"] == [
        "created",
        "escalated",
        "escalated",
        "expired",
        "fallback_ran",
    ]
    assert inbox.kinds == [
        ("created", "supervisor_review"),
        ("escalated", "human_intervention"),
        ("escalated", "critical_alert"),
        ("expired", "critical_alert"),
    ]
    assert m.get_statistics()["fallbacks"] == 1


def test_acknowledging_stops_the_clock_unless_an_ack_timeout_is_set(memory: Store) -> None:
    clock = FakeClock()
    m = manager(memory, clock)
    ticket_id = m.create_escalation_sync(ValueError("x"), level=2)
    m.acknowledge(ticket_id)
    clock.advance(10_000)
    assert m.check_timeouts() == []
    config = EscalationConfig(acknowledged_timeout=60, notify_in_background=False)
    m2 = manager(memory, clock, config=config)
    other = m2.create_escalation_sync(ValueError("y"), level=2)
    m2.acknowledge(other)
    clock.advance(61)
    (climbed,) = m2.check_timeouts()
    assert climbed.ticket_id == other and climbed.status is TicketStatus.OPEN


def test_expire_at_the_first_timeout_and_a_failing_fallback(memory: Store) -> None:
    clock = FakeClock()

    def broken_fallback(ticket: Ticket) -> None:
        raise RuntimeError("fallback broke")

    config = EscalationConfig(timeout_action="expire", notify_in_background=False)
    m = manager(memory, clock, config=config, on_timeout=broken_fallback)
    ticket_id = m.create_escalation_sync(ValueError("x"), level=1)
    clock.advance(600)
    (ticket,) = m.check_timeouts()
    assert ticket.status is TicketStatus.EXPIRED and ticket.ticket_id == ticket_id
    assert ticket.changes[-1].action == "fallback_failed"
    assert "RuntimeError: fallback broke" in ticket.changes[-1].note


# ------------------------------------------------------------------------ waits


def test_wait_returns_when_someone_resolves_it(memory: Store) -> None:
    m = manager(memory, clock=agentkeel_clock())
    ticket_id = m.create_escalation_sync(ValueError("x"), level=3)
    threading.Timer(0.1, lambda: m.resolve(ticket_id, resolution="done")).start()
    started = time.monotonic()
    ticket = m.wait_for_resolution_sync(ticket_id, timeout=10)
    assert ticket.status is TicketStatus.RESOLVED
    assert time.monotonic() - started < 5


def test_a_bounded_wait_returns_the_open_ticket(memory: Store) -> None:
    m = manager(memory, clock=agentkeel_clock())
    ticket_id = m.create_escalation_sync(ValueError("x"), level=3)
    started = time.monotonic()
    ticket = m.wait_for_resolution_sync(ticket_id, timeout=0.2, poll_interval=0.05)
    assert ticket.status is TicketStatus.OPEN
    assert 0.15 < time.monotonic() - started < 3


def test_an_unbounded_wait_ends_at_the_deadline_with_the_ticket_escalated(memory: Store) -> None:
    config = EscalationConfig(escalation_timeout=0.3, notify_in_background=False)
    m = manager(memory, clock=agentkeel_clock(), config=config)
    ticket_id = m.create_escalation_sync(ValueError("x"), level="human_intervention")
    started = time.monotonic()
    ticket = m.wait_for_resolution_sync(ticket_id, poll_interval=0.05)
    assert ticket.level is EscalationLevel.CRITICAL_ALERT and ticket.status is TicketStatus.OPEN
    assert 0.25 < time.monotonic() - started < 3

    async def main() -> Ticket:
        return await m.wait_for_resolution(ticket_id, poll_interval=0.05)

    assert asyncio.run(main()).status is TicketStatus.EXPIRED
    # An acknowledged ticket has no deadline; the wait is still bounded.
    other = m.create_escalation_sync(ValueError("y"), level=1)
    m.acknowledge(other)
    assert m.wait_for_resolution_sync(other, poll_interval=0.05).status.value == "acknowledged"


def test_watchdogs_thread_and_asyncio(memory: Store) -> None:
    config = EscalationConfig(escalation_timeout=0.1, notify_in_background=False)
    m = manager(memory, clock=agentkeel_clock(), config=config)
    ticket_id = m.create_escalation_sync(ValueError("x"), level="critical_alert")
    m.start_watchdog(interval=0.05)
    assert m.start_watchdog(interval=0.05) is m
    deadline = time.monotonic() + 5
    while m.get_ticket(ticket_id).status is TicketStatus.OPEN and time.monotonic() < deadline:
        time.sleep(0.02)
    m.close()
    assert m.get_ticket(ticket_id).status is TicketStatus.EXPIRED

    other = m.create_escalation_sync(ValueError("y"), level="critical_alert")

    async def main() -> None:
        task = asyncio.create_task(m.run_watchdog(interval=0.05))
        for _ in range(100):
            if m.get_ticket(other).status is TicketStatus.EXPIRED:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert m.get_ticket(other).status is TicketStatus.EXPIRED


def agentkeel_clock() -> Any:
    from agentkeel._clock import SYSTEM_CLOCK

    return SYSTEM_CLOCK


# ---------------------------------------------------------------- notifications


def test_a_failing_notifier_never_reaches_the_agent_and_is_noted(memory: Store) -> None:
    good, bad = Inbox(), Inbox(fail=True)
    m = manager(memory, notifiers=[bad, good])
    ticket_id = m.create_escalation_sync(ValueError("x"), level=3)  # strict mode is on
    ticket = m.get_ticket(ticket_id)
    failed = [c for c in ticket.changes if c.action == "notification_failed"]
    assert len(failed) == 1
    assert failed[0].note == "created via inbox: ConnectionError: receiver is down"
    assert len(good.got) == 1
    assert m.get_statistics()["notification_failed"] == 1
    assert _internal.internal_error_counts()["recovery.notifier"] == 1
    report = m.get_escalation_report_sync(ticket_id)
    assert report.analysis["notifications"] == {"sent": 1, "failed": 1}
    assert any("notification(s) failed" in r for r in report.recommendations)


def test_background_delivery_and_channel_switches(memory: Store) -> None:
    slow_started = threading.Event()
    release = threading.Event()

    def slow(notification: Notification) -> None:
        slow_started.set()
        release.wait(5)

    email = Inbox()
    email.channel = "email"
    config = EscalationConfig(notification_channels={"email": False})
    m = EscalationManager(config=config, store=memory, notifiers=[slow, email])
    started = time.monotonic()
    ticket_id = m.create_escalation_sync(ValueError("x"), level=3)
    assert time.monotonic() - started < 1  # the agent did not wait for the notifier
    assert slow_started.wait(5)
    assert not m.flush_notifications(timeout=0.05)
    release.set()
    assert m.flush_notifications(timeout=5)
    assert email.got == []  # switched off
    assert [c.action for c in m.get_ticket(ticket_id).changes] == ["created", "notified"]
    assert m.close(timeout=5)


def test_a_full_notification_queue_drops_and_counts(memory: Store) -> None:
    release = threading.Event()
    config = EscalationConfig(max_pending_notifications=1)
    m = EscalationManager(
        config=config, store=memory, notifiers=[lambda n: release.wait(5)], clock=FakeClock()
    )
    for _ in range(4):
        m.create_escalation_sync(ValueError("x"), level=3)
    release.set()
    assert m.close(timeout=5)
    assert m.get_statistics()["notifications_dropped"] >= 2


def test_notifiers_must_be_callable(memory: Store) -> None:
    with pytest.raises(ConfigurationError, match="notifiers must be callables"):
        EscalationManager(store=memory, notifiers=["https://example.com"])  # type: ignore[list-item]


# ------------------------------------------------------------- where events go


def test_two_processes_share_tickets_through_a_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keel.db'}"
    agent_side, operator_side = open_store(url), open_store(url)
    try:
        agent = manager(agent_side, clock=agentkeel_clock())
        operator = manager(operator_side, clock=agentkeel_clock())
        ticket_id = agent.create_escalation_sync(ValueError("x"), level=2)
        operator.acknowledge(ticket_id, actor="ana")
        assert agent.get_ticket(ticket_id).acknowledged_by == "ana"
        assert agent.wait_for_resolution_sync(ticket_id, timeout=0.01).status.value == (
            "acknowledged"
        )
    finally:
        agent_side.close()
        operator_side.close()


def test_default_runtime_pipeline_and_store() -> None:
    m = EscalationManager(config=EscalationConfig(notify_in_background=False))
    ticket_id = m.create_escalation_sync(ValueError("x"), level=2)
    assert m.get_ticket(ticket_id).status is TicketStatus.OPEN  # read before it is stored
    assert agentkeel.flush(timeout=5)
    fresh = EscalationManager()
    assert fresh.get_ticket(ticket_id).level is EscalationLevel.SUPERVISOR_REVIEW
    agentkeel.configure(store="none")
    memory_only = EscalationManager()
    assert memory_only.list_tickets() == []
    other = memory_only.create_escalation_sync(ValueError("y"))
    assert memory_only.get_ticket(other).status is TicketStatus.OPEN


def test_a_pipeline_of_ones_own(memory: Store) -> None:
    captured = Captured()
    pipeline = Pipeline(sinks=[captured])
    m = EscalationManager(pipeline=pipeline, config=EscalationConfig(notify_in_background=False))
    ticket_id = m.create_escalation_sync(ValueError("x"), level=4)
    m.resolve(ticket_id, resolution="ok")
    assert pipeline.flush(5)
    assert [e.type for e in captured.events] == ["escalation.created", "escalation.updated"]
    assert captured.events[0].severity == Severity.CRITICAL
    pipeline.close()


class BrokenStore:
    """A store whose writes fail (a full disk, say)."""

    url = "memory://broken"

    def __init__(self) -> None:
        self.inner = open_store("memory://")

    def write_events(self, events: Any) -> None:
        raise StoreError("disk full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_failing_store_does_not_lose_the_ticket_nor_hide_a_persons_change() -> None:
    store: Any = BrokenStore()
    m = manager(store)
    with pytest.raises(StoreError):  # strict mode: our own failures are raised
        m.create_escalation_sync(ValueError("x"))
    _internal.set_strict(False)
    ticket_id = m.create_escalation_sync(ValueError("x"), level=2)
    assert m.get_ticket(ticket_id).status is TicketStatus.OPEN  # kept in memory
    with pytest.raises(StoreError, match="disk full"):  # a person must know it failed
        m.acknowledge(ticket_id)


def test_a_wait_ends_in_real_time_even_on_a_frozen_clock(memory: Store) -> None:
    m = manager(memory, FakeClock())  # time never moves on this clock
    ticket_id = m.create_escalation_sync(ValueError("x"), level=2)
    started = time.monotonic()
    ticket = m.wait_for_resolution_sync(ticket_id, timeout=0.1, poll_interval=0.02)
    assert ticket.status is TicketStatus.OPEN
    assert time.monotonic() - started < 3
