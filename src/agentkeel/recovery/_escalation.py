"""The escalation manager: tickets, notifications, timeouts, reports.

Tickets are event-sourced (see ``_ticket``): every change is an
``escalation.created`` or ``escalation.updated`` event, and a ticket is the fold of
its events. Where the events go and come from:

* ``store=`` given — read from it, and write each change straight to it before the
  call returns (a ``keel escalations ack`` must be durable when it says "done").
* ``pipeline=`` given — write through the pipeline (batched, off-thread); read from
  ``store`` if also given.
* neither — the process-wide pipeline and store (``agentkeel.configure``).

This process's own changes are kept in memory too, so it reads its writes at once
even while the pipeline is still delivering them; changes from other processes
appear on the next read.

Decisions are pure functions (``_escalation_policy``); this module does the I/O:
store, notifiers (on a worker thread unless configured otherwise), the watchdog
thread and the waits — and no wait is unbounded.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from agentkeel import _context, _internal
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._encoding import safe_repr, truncate
from agentkeel._errors import ConfigurationError, KeelError
from agentkeel.events import Event, Severity
from agentkeel.pipeline import Pipeline
from agentkeel.recovery import _config_checks as check
from agentkeel.recovery._dispatch import Dispatcher
from agentkeel.recovery._errors import TicketStateError, UnknownTicketError
from agentkeel.recovery._escalation_policy import (
    EscalationConfig,
    TimeoutDecision,
    choose_level,
    describe_error,
    plan_timeouts,
    score_priority,
)
from agentkeel.recovery._escalation_report import EscalationReport, build_report
from agentkeel.recovery._notifiers import Notification, Notifier, build_notification
from agentkeel.recovery._ticket import (
    CREATED,
    UPDATED,
    EscalationLevel,
    Ticket,
    TicketStatus,
    fold_ticket,
)
from agentkeel.store import Store

__all__ = ["EscalationManager"]

_log = logging.getLogger("agentkeel.recovery")
_LEVEL_SEVERITY = {
    EscalationLevel.AUTO_RECOVERY: Severity.LOW,
    EscalationLevel.SUPERVISOR_REVIEW: Severity.MEDIUM,
    EscalationLevel.HUMAN_INTERVENTION: Severity.HIGH,
    EscalationLevel.CRITICAL_ALERT: Severity.CRITICAL,
}
_PAGE = 1_000
_DEADLINE_SLACK = 0.05  # seconds a deadline wait oversleeps, for clock skew
_MAX_ATTEMPTS_KEPT = 10
TimeoutCallback = Callable[[Ticket], object]


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (containers): still an actor
        return "unknown"


class EscalationManager:
    """Creates, routes, times out and reports escalation tickets.

    ``notifiers`` are called for the changes ``config.notify_on`` names (see
    :class:`Notifier`); ``on_timeout(ticket)`` is the fallback run when a ticket
    expires. ``clock`` is for tests.
    """

    def __init__(
        self,
        *,
        config: EscalationConfig | None = None,
        store: Store | None = None,
        notifiers: Sequence[Notifier] = (),
        clock: Clock = SYSTEM_CLOCK,
        pipeline: Pipeline | None = None,
        on_timeout: TimeoutCallback | None = None,
    ) -> None:
        self.config = config if config is not None else EscalationConfig()
        self._store = store
        self._pipeline = pipeline
        self._runtime = store is None and pipeline is None
        for notifier in notifiers:
            if not callable(notifier):
                raise ConfigurationError(
                    f"notifiers must be callables taking a Notification, got {notifier!r}"
                )
        self._notifiers = tuple(notifiers)
        self._clock = clock
        self._on_timeout = on_timeout
        self._origin = _context.new_id("esc", 4)
        self._seq = itertools.count(1)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._timeouts_lock = threading.Lock()
        self._events: dict[str, list[Event]] = {}
        self._seen: set[str] = set()
        self._last_store_seq = 0
        self._dispatcher = Dispatcher(capacity=self.config.max_pending_notifications)
        self._watchdog: threading.Thread | None = None
        self._watchdog_stop = threading.Event()
        self._stats = {"notified": 0, "notification_failed": 0, "timeouts": 0, "fallbacks": 0}

    # ------------------------------------------------------------------ create
    def create_escalation_sync(
        self,
        error_context: object,
        recovery_attempts: int | Iterable[object] = 0,
        level: EscalationLevel | str | int | None = None,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        note: str = "",
    ) -> str:
        """Open a ticket for an error; return its ID.

        ``error_context`` is an exception, a mapping (``error``, ``agent_id``,
        ``task_id``, ``severity``, ``user_facing`` …) or an object with those
        attributes. ``recovery_attempts`` is a count or the list of attempts made
        (kept, summarised, on the ticket). ``level=None`` lets the priority decide.
        """
        facts = describe_error(error_context)
        summaries: list[str] = []
        if isinstance(recovery_attempts, int):
            attempts = check.count(recovery_attempts, "recovery_attempts", minimum=0)
        else:
            tried = list(recovery_attempts)
            attempts = len(tried)
            summaries = [truncate(_summary(a), 300) for a in tried[-_MAX_ATTEMPTS_KEPT:]]
        priority = score_priority(facts, attempts, self.config)
        chosen = (
            choose_level(priority, facts, attempts, self.config)
            if level is None
            else EscalationLevel.parse(level)
        )
        now = self._clock.wall()
        ticket_id = _context.new_id("esc-", 6)
        self._record(
            CREATED,
            {
                "ticket_id": ticket_id,
                "at": now,
                "level": chosen.value,
                "priority": priority,
                "status": TicketStatus.OPEN.value,
                "error_type": facts.error_type,
                "error_message": facts.error_message,
                "category": facts.category,
                "severity": facts.severity,
                "fingerprint": facts.fingerprint,
                "agent_id": agent_id or facts.agent_id,
                "task_id": task_id or facts.task_id,
                "recovery_attempts": attempts,
                "attempts": summaries,
                "flags": list(facts.flags),
                "context": facts.context,
                "deadline": now + self.config.timeout_seconds,
                "note": note,
            },
            severity=_LEVEL_SEVERITY[chosen],
            category=facts.category,
            durable=False,
        )
        ticket = self.get_ticket(ticket_id)
        if chosen.rank >= self.config.min_notify_level.rank:
            self._notify("created", ticket)
        return ticket_id

    async def create_escalation(
        self,
        error_context: object,
        recovery_attempts: int | Iterable[object] = 0,
        level: EscalationLevel | str | int | None = None,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        note: str = "",
    ) -> str:
        """:meth:`create_escalation_sync`, off the event loop (it may write to the store)."""
        if not isinstance(recovery_attempts, int):
            recovery_attempts = list(recovery_attempts)  # an iterator must not cross threads
        return await asyncio.to_thread(
            self.create_escalation_sync,
            error_context,
            recovery_attempts,
            level,
            agent_id=agent_id,
            task_id=task_id,
            note=note,
        )

    # ----------------------------------------------------------------- changes
    def acknowledge(self, ticket_id: str, *, actor: str | None = None, note: str = "") -> Ticket:
        """Someone is on it: stop the escalation clock (see ``acknowledged_timeout``)."""
        ticket = self.get_ticket(ticket_id)
        if ticket.is_final or ticket.status is TicketStatus.ACKNOWLEDGED:
            raise TicketStateError(_state_message(ticket, "acknowledge"))
        timeout = self.config.acknowledged_timeout_seconds
        now = self._clock.wall()
        return self._change(
            ticket,
            "acknowledged",
            actor=actor,
            note=note,
            deadline=None if timeout is None else now + timeout,
        )

    def resolve(
        self, ticket_id: str, *, resolution: str, actor: str | None = None, note: str = ""
    ) -> Ticket:
        """Close the ticket with what fixed it (shown on similar tickets later)."""
        if not isinstance(resolution, str) or not resolution.strip():
            raise ConfigurationError(
                "resolution must say what fixed it (it is shown on similar tickets later)"
            )
        ticket = self.get_ticket(ticket_id)
        if ticket.is_final:
            raise TicketStateError(_state_message(ticket, "resolve"))
        return self._change(
            ticket, "resolved", actor=actor, note=note, resolution=resolution.strip()
        )

    def escalate(self, ticket_id: str, *, actor: str | None = None, note: str = "") -> Ticket:
        """Move the ticket up a level now (it re-opens there with a fresh deadline)."""
        ticket = self.get_ticket(ticket_id)
        upper = ticket.level.next()
        if ticket.is_final or upper is None:
            raise TicketStateError(
                _state_message(ticket, "escalate")
                if ticket.is_final
                else f"ticket {ticket.ticket_id} is already at the top level "
                f"({ticket.level.value}); resolve it instead"
            )
        now = self._clock.wall()
        return self._change(
            ticket,
            "escalated",
            actor=actor,
            note=note,
            level=upper,
            deadline=now + self.config.timeout_seconds,
        )

    def add_note(self, ticket_id: str, note: str, *, actor: str | None = None) -> Ticket:
        """Add a line to the ticket's timeline without changing it."""
        ticket = self.get_ticket(ticket_id)
        self._record_update(ticket, "note", actor=actor or _default_actor(), note=note)
        return self.get_ticket(ticket.ticket_id)

    def _change(
        self,
        ticket: Ticket,
        action: str,
        *,
        actor: str | None,
        note: str,
        resolution: str = "",
        level: EscalationLevel | None = None,
        deadline: float | None = None,
    ) -> Ticket:
        self._record_update(
            ticket,
            action,
            actor=actor or _default_actor(),
            note=note,
            resolution=resolution,
            level=level,
            deadline=deadline,
            durable=True,
        )
        updated = self.get_ticket(ticket.ticket_id)
        self._notify(action, updated)
        return updated

    def _record_update(
        self,
        ticket: Ticket,
        action: str,
        *,
        actor: str = "",
        note: str = "",
        resolution: str = "",
        level: EscalationLevel | None = None,
        deadline: float | None = None,
        durable: bool = False,
    ) -> None:
        new_level = level or ticket.level
        self._record(
            UPDATED,
            {
                "ticket_id": ticket.ticket_id,
                "at": self._clock.wall(),
                "action": action,
                "level": new_level.value,
                "actor": actor,
                "note": truncate(note, 2_000),
                "resolution": resolution,
                "deadline": deadline,
            },
            severity=_LEVEL_SEVERITY[new_level] if action == "escalated" else Severity.INFO,
            category=ticket.category,
            durable=durable,
        )

    # ------------------------------------------------------------------- events
    def _record(
        self,
        event_type: str,
        attributes: dict[str, Any],
        *,
        severity: int,
        category: str,
        durable: bool,
    ) -> None:
        """Keep the change in memory, then write it: to the store (durable) or pipeline.

        ``durable`` changes (a person's ack or resolve) raise if the store refuses
        them; automatic ones are reported as internal errors and kept in memory.
        """
        attributes["change_id"] = change_id = f"{self._origin}-{next(self._seq)}"
        name = f"escalation.{attributes.get('action') or attributes.get('level')}"
        scope = _context.current_scope()
        event = Event(
            type=event_type,
            name=name,
            severity=severity,
            category=category,
            attributes=attributes,
            run_id=scope.run_id,
            correlation_id=_context.get_correlation_id(),
            wall_ns=int(self._clock.wall() * 1e9),
            mono_ns=time.perf_counter_ns(),
            seq=int(change_id.rsplit("-", 1)[1]),
            origin=self._origin,
        )
        with self._changed:
            self._remember(event)
            self._changed.notify_all()
        try:
            if self._pipeline is not None:
                self._pipeline.emit(
                    event_type,
                    name=name,
                    severity=severity,
                    category=category,
                    attributes=attributes,
                )
            elif self._store is not None:
                self._store.write_events([event])
            else:
                from agentkeel._runtime import get_pipeline

                get_pipeline().emit(
                    event_type,
                    name=name,
                    severity=severity,
                    category=category,
                    attributes=attributes,
                )
        except KeelError as exc:
            if durable:
                raise
            _internal.report_internal_error("recovery.escalation_write", exc)

    def _remember(self, event: Event) -> None:
        change_id = event.attributes.get("change_id")
        if isinstance(change_id, str):
            if change_id in self._seen:
                return
            self._seen.add(change_id)
        ticket_id = event.attributes.get("ticket_id")
        if isinstance(ticket_id, str) and ticket_id:
            self._events.setdefault(ticket_id, []).append(event)

    def _source(self) -> Store | None:
        if self._store is not None:
            return self._store
        if not self._runtime:
            return None
        from agentkeel._runtime import get_store

        try:
            return get_store()
        except ConfigurationError:
            return None  # KEEL_STORE=none: this process's own tickets only

    def refresh(self) -> None:
        """Read changes other processes stored since the last read."""
        store = self._source()
        if store is None:
            return
        try:
            while True:
                page = store.list_events(
                    types=[CREATED, UPDATED], after_seq=self._last_store_seq, limit=_PAGE
                )
                with self._changed:
                    for stored in page:
                        self._remember(stored.event)
                        self._last_store_seq = max(self._last_store_seq, stored.store_seq)
                    if page:
                        self._changed.notify_all()
                if len(page) < _PAGE:
                    return
        except KeelError as exc:
            _internal.report_internal_error("recovery.escalation_read", exc)

    # -------------------------------------------------------------------- reads
    def get_ticket(self, ticket_id: str) -> Ticket:
        """The ticket with this ID (or the only one whose ID starts with it)."""
        self.refresh()
        with self._lock:
            events = self._events.get(ticket_id)
            if events is None:
                matches = sorted(t for t in self._events if t.startswith(ticket_id))
                if len(matches) != 1 or not ticket_id:
                    raise UnknownTicketError(_unknown(ticket_id, matches))
                events = self._events[matches[0]]
            ticket = fold_ticket(list(events))
        if ticket is None:
            raise UnknownTicketError(
                f"ticket {ticket_id!r} has updates but no creation event in the store; "
                "it was created by a process whose events were lost"
            )
        return ticket

    def list_tickets(
        self,
        *,
        status: TicketStatus | str | Iterable[TicketStatus | str] | None = None,
        level: EscalationLevel | str | None = None,
        agent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Ticket]:
        """Tickets, newest first, optionally of some statuses, a level or an agent."""
        self.refresh()
        wanted: set[TicketStatus] | None = None
        if status is not None:
            items = [status] if isinstance(status, str | TicketStatus) else list(status)
            wanted = {TicketStatus.parse(s) for s in items}
        wanted_level = None if level is None else EscalationLevel.parse(level)
        tickets = [t for t in self._all_tickets() if wanted is None or t.status in wanted]
        if wanted_level is not None:
            tickets = [t for t in tickets if t.level is wanted_level]
        if agent_id is not None:
            tickets = [t for t in tickets if t.agent_id == agent_id]
        tickets.sort(key=lambda t: t.created_at, reverse=True)
        return tickets if limit is None else tickets[: check.count(limit, "limit")]

    def _all_tickets(self) -> list[Ticket]:
        with self._lock:
            groups = [list(events) for events in self._events.values()]
        return [t for t in (fold_ticket(g) for g in groups) if t is not None]

    def get_escalation_report_sync(self, ticket_id: str) -> EscalationReport:
        """The ticket with its analysis (classification, attempts, timeline, similar
        tickets) and recommendations."""
        ticket = self.get_ticket(ticket_id)
        return build_report(ticket, self._all_tickets(), now=self._clock.wall(), config=self.config)

    async def get_escalation_report(self, ticket_id: str) -> EscalationReport:
        return await asyncio.to_thread(self.get_escalation_report_sync, ticket_id)

    def get_statistics(self) -> dict[str, Any]:
        tickets = self.list_tickets()
        by_status: dict[str, int] = {}
        by_level: dict[str, int] = {}
        for t in tickets:
            by_status[t.status.value] = by_status.get(t.status.value, 0) + 1
            by_level[t.level.value] = by_level.get(t.level.value, 0) + 1
        with self._lock:
            stats = dict(self._stats)
        return {
            "tickets": len(tickets),
            "by_status": by_status,
            "by_level": by_level,
            **stats,
            "notifications_dropped": self._dispatcher.dropped,
            "notifications_pending": self._dispatcher.pending,
        }

    # ------------------------------------------------------------ notifications
    def _notify(self, kind: str, ticket: Ticket) -> None:
        if kind not in self.config.notify_on:
            return
        for notifier in self._notifiers:
            if not self.config.channel_enabled(getattr(notifier, "channel", None)):
                continue
            notification = build_notification(kind, ticket, delivery_id=_context.new_id("dlv-", 8))
            job = self._delivery(notifier, notification)
            if not self.config.notify_in_background:
                job()
            elif not self._dispatcher.submit(job):
                _log.warning(
                    "escalation notification dropped (queue of %d full): %s %s",
                    self.config.max_pending_notifications,
                    kind,
                    ticket.ticket_id,
                )

    def _delivery(self, notifier: Notifier, notification: Notification) -> Callable[[], None]:
        name = str(getattr(notifier, "name", None) or getattr(notifier, "__name__", notifier))
        ticket = notification.ticket

        def deliver() -> None:
            try:
                notifier(notification)
            except Exception as exc:  # noqa: BLE001 - a notifier must never reach the agent
                with self._lock:
                    self._stats["notification_failed"] += 1
                # Never strict: a dead mail server is an outage to report, not our bug.
                _internal.report_internal_error("recovery.notifier", exc, reraise=False)
                self._record_update(
                    ticket,
                    "notification_failed",
                    note=f"{notification.kind} via {name}: {type(exc).__name__}: {exc}",
                )
                return
            with self._lock:
                self._stats["notified"] += 1
            self._record_update(ticket, "notified", note=f"{notification.kind} via {name}")

        return deliver

    def flush_notifications(self, timeout: float | timedelta = 30.0) -> bool:
        """Wait until queued notifications were delivered (or failed)."""
        return self._dispatcher.flush(check.seconds(timeout, "timeout", allow_zero=True))

    # ----------------------------------------------------------------- timeouts
    def check_timeouts(self) -> list[Ticket]:
        """Escalate (or expire, running ``on_timeout``) every overdue ticket.

        Returns the tickets changed. Safe to call from several threads: one applies.
        """
        with self._timeouts_lock:
            now = self._clock.wall()
            live = self.list_tickets(status=(TicketStatus.OPEN, TicketStatus.ACKNOWLEDGED))
            changed = []
            for decision in plan_timeouts(live, now, self.config):
                changed.append(self._apply_timeout(decision))
            return changed

    def _apply_timeout(self, decision: TimeoutDecision) -> Ticket:
        ticket = self.get_ticket(decision.ticket_id)
        with self._lock:
            self._stats["timeouts"] += 1
        if decision.action == "escalate":
            self._record_update(
                ticket,
                "escalated",
                actor="agentkeel",
                note="no response before the deadline",
                level=decision.level,
                deadline=decision.deadline,
            )
            updated = self.get_ticket(ticket.ticket_id)
            self._notify("escalated", updated)
            return updated
        self._record_update(
            ticket, "expired", actor="agentkeel", note="no resolution at the top level in time"
        )
        updated = self.get_ticket(ticket.ticket_id)
        self._notify("expired", updated)
        if self._on_timeout is not None:
            self._run_fallback(updated)
        return self.get_ticket(ticket.ticket_id)

    def _run_fallback(self, ticket: Ticket) -> None:
        try:
            self._on_timeout(ticket)  # type: ignore[misc]  # checked by the caller
        except Exception as exc:  # noqa: BLE001 - the watchdog must outlive a bad fallback
            _log.warning("escalation fallback for %s failed: %r", ticket.ticket_id, exc)
            self._record_update(
                ticket, "fallback_failed", actor="agentkeel", note=f"{type(exc).__name__}: {exc}"
            )
            return
        with self._lock:
            self._stats["fallbacks"] += 1
        self._record_update(ticket, "fallback_ran", actor="agentkeel")

    def start_watchdog(self, interval: float | timedelta = 30.0) -> EscalationManager:
        """Check timeouts every ``interval`` seconds on a daemon thread until ``close``."""
        seconds = check.seconds(interval, "interval")
        with self._lock:
            if self._watchdog is not None and self._watchdog.is_alive():
                return self
            self._watchdog_stop.clear()
            self._watchdog = threading.Thread(
                target=self._watch, args=(seconds,), name="agentkeel-escalation-watchdog"
            )
            self._watchdog.daemon = True
            self._watchdog.start()
        return self

    def _watch(self, interval: float) -> None:
        while not self._watchdog_stop.wait(interval):
            try:
                self.check_timeouts()
            except Exception as exc:  # noqa: BLE001 - keep watching; the error is reported
                _internal.report_internal_error("recovery.watchdog", exc, reraise=False)

    def stop_watchdog(self, timeout: float = 5.0) -> None:
        self._watchdog_stop.set()
        thread = self._watchdog
        if thread is not None:
            thread.join(timeout)
        self._watchdog = None

    async def run_watchdog(self, interval: float | timedelta = 30.0) -> None:
        """Check timeouts every ``interval`` seconds until the task is cancelled."""
        seconds = check.seconds(interval, "interval")
        while True:
            try:
                await asyncio.to_thread(self.check_timeouts)
            except Exception as exc:  # noqa: BLE001 - keep watching; the error is reported
                _internal.report_internal_error("recovery.watchdog", exc, reraise=False)
            await asyncio.sleep(seconds)

    # -------------------------------------------------------------------- waits
    def _wait_step(
        self, ticket_id: str, end: float, until_deadline: bool
    ) -> tuple[Ticket, float | None]:
        """One look at the ticket: (ticket, seconds to wait) or (ticket, None) to return.

        ``end`` is on the real monotonic clock, whatever clock was injected: the
        wait really sleeps, so only real time can bound it.
        """
        ticket = self.get_ticket(ticket_id)
        if ticket.is_final:
            return ticket, None
        now = self._clock.wall()
        if ticket.overdue(now):
            self.check_timeouts()
            ticket = self.get_ticket(ticket_id)
            if until_deadline or ticket.is_final:
                return ticket, None
        left = end - time.monotonic()
        if left <= 0:
            return ticket, None
        if ticket.deadline is not None:
            left = min(left, max(0.0, ticket.deadline - now))
        return ticket, left

    def wait_for_resolution_sync(
        self,
        ticket_id: str,
        *,
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 1.0,
    ) -> Ticket:
        """Block until the ticket is resolved or expired, or the wait ends; return it.

        ``timeout=None`` waits until the ticket's deadline and applies it (so the
        ticket comes back escalated or expired; an acknowledged ticket without a
        deadline is waited for one ``escalation_timeout``); a ``timeout`` bounds the
        wait instead. Other processes' changes are seen every ``poll_interval`` s.
        """
        poll = check.seconds(poll_interval, "poll_interval")
        end, until_deadline = self._end(ticket_id, timeout)
        while True:
            ticket, left = self._wait_step(ticket_id, end, until_deadline)
            if left is None:
                return ticket
            with self._changed:
                self._changed.wait(min(max(left, 0.001), poll))

    async def wait_for_resolution(
        self,
        ticket_id: str,
        *,
        timeout: float | timedelta | None = None,
        poll_interval: float | timedelta = 1.0,
    ) -> Ticket:
        """:meth:`wait_for_resolution_sync` for asyncio (polls; never blocks the loop)."""
        poll = check.seconds(poll_interval, "poll_interval")
        end, until_deadline = self._end(ticket_id, timeout)
        while True:
            ticket, left = await asyncio.to_thread(self._wait_step, ticket_id, end, until_deadline)
            if left is None:
                return ticket
            await asyncio.sleep(min(max(left, 0.001), poll))

    def _end(self, ticket_id: str, timeout: float | timedelta | None) -> tuple[float, bool]:
        """When the wait ends on the real monotonic clock, and whether that is the
        ticket's deadline (then it is applied before returning)."""
        if timeout is not None:
            return time.monotonic() + check.seconds(timeout, "timeout", allow_zero=True), False
        ticket = self.get_ticket(ticket_id)
        if ticket.deadline is None:
            # Acknowledged, no acknowledgement timeout (or finished): bound it anyway.
            return time.monotonic() + self.config.timeout_seconds, False
        # A little past the deadline, so that the deadline has passed when it is applied.
        remaining = max(0.0, ticket.deadline - self._clock.wall())
        return time.monotonic() + remaining + _DEADLINE_SLACK, True

    # ------------------------------------------------------------------ closing
    def close(self, timeout: float = 10.0) -> bool:
        """Stop the watchdog and deliver queued notifications (up to ``timeout`` s)."""
        self.stop_watchdog(timeout)
        return self._dispatcher.close(timeout)

    def __enter__(self) -> EscalationManager:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _summary(attempt: object) -> str:
    if isinstance(attempt, str):
        return attempt
    if isinstance(attempt, BaseException):
        return f"{type(attempt).__name__}: {attempt}"
    return safe_repr(attempt, 300)


def _state_message(ticket: Ticket, verb: str) -> str:
    if ticket.status is TicketStatus.RESOLVED:
        who = f" by {ticket.resolved_by}" if ticket.resolved_by else ""
        return f"cannot {verb} ticket {ticket.ticket_id}: it was already resolved{who}"
    if ticket.status is TicketStatus.EXPIRED:
        return f"cannot {verb} ticket {ticket.ticket_id}: it expired; open a new escalation"
    who = f" by {ticket.acknowledged_by}" if ticket.acknowledged_by else ""
    return f"ticket {ticket.ticket_id} is already acknowledged{who}; resolve it when fixed"


def _unknown(ticket_id: str, matches: list[str]) -> str:
    if len(matches) > 1:
        shown = ", ".join(matches[:10]) + (", …" if len(matches) > 10 else "")
        return f"ticket ID prefix {ticket_id!r} is ambiguous: {shown}; give more characters"
    return f"no escalation ticket {ticket_id!r}; list them with: keel escalations list"
