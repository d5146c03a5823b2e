"""The escalation report: what went wrong, what was tried, what to do next. Pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentkeel.recovery._escalation_policy import EscalationConfig
from agentkeel.recovery._ticket import Ticket, TicketStatus

__all__ = ["EscalationReport", "build_report"]

_RETRYABLE = frozenset({"network", "timeout", "rate_limit"})
_ADVICE = {
    "network": "Transient network failure: check the upstream service; retries with back-off "
    "and a circuit breaker usually absorb these.",
    "timeout": "Calls timed out: check the upstream's latency; raise the timeout only if the "
    "work is legitimately slow, and put a circuit breaker in front of it.",
    "rate_limit": "Rate-limited: honour Retry-After, lower the concurrency, or ask for a "
    "higher quota.",
    "auth": "Authentication or permission failure: retrying will not help; check or rotate "
    "the credentials and the permissions they grant.",
    "resource": "Resources exhausted (memory, disk, file handles): free them or raise the "
    "limits before resuming; retrying makes it worse.",
    "validation": "Invalid input or output: inspect the arguments the agent produced and "
    "adjust the prompt or the output schema.",
    "parsing": "Output could not be parsed: tighten the format instructions or use a "
    "structured-output mode.",
    "tool_not_found": "The agent called a tool that does not exist: check the tool registry "
    "against the tool names in the prompt.",
    "loop": "The agent was looping: read its loop patterns (get_loop_patterns), change the "
    "prompt or the tools, then reset_agent.",
    "llm": "The model call failed: check the provider's status and the model name; consider "
    "a fallback model.",
    "state": "The agent's state is inconsistent: roll back to the last good snapshot.",
    "configuration": "A setting is wrong: fix the configuration; retrying will not help.",
}
_FLAG_ADVICE = {
    "data_loss": "Data may have been lost: restore the agent's state from the last good "
    "rollback snapshot before resuming it.",
    "security": "Security-relevant: rotate any exposed credentials, review the access logs, "
    "and keep the agent stopped until that is done.",
    "user_facing": "Users are affected: tell them, and serve a fallback answer meanwhile.",
}


@dataclass(frozen=True, slots=True)
class EscalationReport:
    """A ticket with its analysis and recommendations, as ``keel escalations show`` prints."""

    ticket: Ticket
    analysis: dict[str, Any]
    recommendations: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket.to_dict(),
            "analysis": self.analysis,
            "recommendations": list(self.recommendations),
        }

    def render(self) -> str:
        """Plain text, for terminals and emails."""
        t, a = self.ticket, self.analysis
        lines = [
            f"Escalation {t.ticket_id}  [{t.status.value}]  level {t.level.value}  "
            f"priority {t.priority}/100",
            f"  error     {t.error_type}: {t.error_message}",
            f"  class     {t.category}, severity {t.severity}, "
            f"{'retryable' if a['classification']['retryable'] else 'not retryable'}",
            f"  agent     {t.agent_id or '-'}   task {t.task_id or '-'}   run {t.run_id or '-'}",
            f"  created   {_when(t.created_at)}   deadline {_when(t.deadline)}",
            f"  attempts  {t.recovery_attempts} automatic recovery attempt(s)",
        ]
        lines.extend(f"            - {attempt}" for attempt in t.attempts)
        if t.resolution:
            lines.append(f"  resolved  by {t.resolved_by or '?'}: {t.resolution}")
        lines.append("Timeline")
        for change in t.changes:
            who = f" by {change.actor}" if change.actor else ""
            note = f": {change.note}" if change.note else ""
            lines.append(f"  {_when(change.at)}  {change.action}{who} [{change.level.value}]{note}")
        similar = a["similar_tickets"]
        if similar:
            lines.append("Similar tickets")
            for row in similar:
                resolution = f" - {row['resolution']}" if row["resolution"] else ""
                lines.append(f"  {row['ticket_id']}  {row['status']}{resolution}")
        lines.append("Recommendations")
        lines.extend(f"  {n}. {text}" for n, text in enumerate(self.recommendations, 1))
        return "\n".join(lines)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _similar(ticket: Ticket, others: Iterable[Ticket], limit: int) -> list[tuple[Ticket, str]]:
    found: list[tuple[Ticket, str]] = []
    for other in others:
        if other.ticket_id == ticket.ticket_id:
            continue
        if ticket.fingerprint and other.fingerprint == ticket.fingerprint:
            found.append((other, "fingerprint"))
        elif other.error_type == ticket.error_type and other.category == ticket.category:
            found.append((other, "error_type"))
    # Same fingerprint first, then the most recent.
    found.sort(key=lambda pair: (pair[1] != "fingerprint", -pair[0].created_at))
    return found[:limit]


def build_report(
    ticket: Ticket, others: Iterable[Ticket], *, now: float, config: EscalationConfig
) -> EscalationReport:
    """The report on ``ticket``; ``others`` are the tickets to look for similar ones in."""
    all_similar = _similar(ticket, others, limit=10_000)
    shown = all_similar[: config.similar_ticket_limit]
    notes_failed = sum(1 for c in ticket.changes if c.action == "notification_failed")
    notes_sent = sum(1 for c in ticket.changes if c.action == "notified")
    analysis: dict[str, Any] = {
        "classification": {
            "error_type": ticket.error_type,
            "category": ticket.category,
            "severity": ticket.severity,
            "retryable": ticket.category in _RETRYABLE,
            "fingerprint": ticket.fingerprint,
        },
        "level": ticket.level.value,
        "priority": ticket.priority,
        "status": ticket.status.value,
        "recovery_attempts": ticket.recovery_attempts,
        "attempts": list(ticket.attempts),
        "flags": list(ticket.flags),
        "age_seconds": max(0.0, (ticket.resolved_at or now) - ticket.created_at),
        "time_to_acknowledge": _since(ticket.acknowledged_at, ticket.created_at),
        "time_to_resolve": _since(ticket.resolved_at, ticket.created_at),
        "escalations": ticket.escalations,
        "overdue": ticket.overdue(now),
        "notifications": {"sent": notes_sent, "failed": notes_failed},
        "timeline": [change.to_dict() for change in ticket.changes],
        "similar_count": len(all_similar),
        "similar_resolved": sum(1 for t, _ in all_similar if t.status is TicketStatus.RESOLVED),
        "similar_tickets": [
            {
                "ticket_id": other.ticket_id,
                "match": match,
                "status": other.status.value,
                "level": other.level.value,
                "created_at": other.created_at,
                "resolution": other.resolution,
            }
            for other, match in shown
        ],
    }
    return EscalationReport(ticket, analysis, tuple(_recommend(ticket, all_similar, now, config)))


def _since(later: float | None, earlier: float) -> float | None:
    return None if later is None else max(0.0, later - earlier)


def _recommend(
    ticket: Ticket, similar: list[tuple[Ticket, str]], now: float, config: EscalationConfig
) -> list[str]:
    advice: list[str] = []
    resolved = [t for t, _ in similar if t.status is TicketStatus.RESOLVED and t.resolution]
    if resolved:
        last = max(resolved, key=lambda t: t.resolved_at or t.created_at)
        advice.append(
            f"{len(resolved)} similar ticket(s) were resolved before; the latest "
            f"({last.ticket_id}) by: {last.resolution}"
        )
    if len(similar) >= 3:
        advice.append(
            f"This error has been escalated {len(similar) + 1} times: treat it as a recurring "
            "problem and fix the cause, not the symptom."
        )
    if ticket.recovery_attempts >= max(1, config.max_auto_recovery_attempts):
        advice.append(
            f"Automatic recovery was tried {ticket.recovery_attempts} time(s) without success: "
            "stop retrying and find the cause before resuming the agent."
        )
    advice.append(
        _ADVICE.get(
            ticket.category,
            "Unclassified error: read the message and the run's events to find the cause.",
        )
    )
    advice.extend(_FLAG_ADVICE[flag] for flag in ticket.flags if flag in _FLAG_ADVICE)
    if ticket.run_id:
        advice.append(f"The run's failure report has the context: keel report {ticket.run_id}")
    failed = sum(1 for c in ticket.changes if c.action == "notification_failed")
    if failed:
        advice.append(
            f"{failed} notification(s) failed: check the notifier settings (the ticket's "
            "timeline has the errors)."
        )
    if ticket.status is TicketStatus.OPEN:
        upper = ticket.level.next()
        then = f"it escalates to {upper.value}" if upper else "it expires"
        when = "now overdue" if ticket.overdue(now) else f"deadline {_when(ticket.deadline)}"
        advice.append(
            f"Acknowledge the ticket so others know it is handled "
            f"(keel escalations ack {ticket.ticket_id}); otherwise {then} ({when})."
        )
    return advice
