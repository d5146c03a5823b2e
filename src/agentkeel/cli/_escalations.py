"""``keel escalations list | show | ack | resolve``: escalation tickets for people.

Tickets live in the store as events, so these commands work on tickets that any
agent process opened; ``ack`` and ``resolve`` write straight to the store and return
once the change is durable. Exit codes: 0 done, 1 no such ticket or a change the
ticket's status does not allow, 2 the store or a setting is wrong.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from agentkeel._errors import ConfigurationError
from agentkeel.cli._app import JsonOption, StoreOption, app, fail, opened_store, out, print_json
from agentkeel.recovery import (
    EscalationConfig,
    EscalationManager,
    Ticket,
    TicketStateError,
    UnknownTicketError,
)
from agentkeel.store import Store

escalations_app = typer.Typer(
    help="Escalation tickets: list, show (with analysis), acknowledge, resolve.",
    no_args_is_help=True,
)
app.add_typer(escalations_app, name="escalations")

TicketArgument = Annotated[str, typer.Argument(help="A ticket ID, or a unique prefix of one.")]
ActorOption = Annotated[
    str | None, typer.Option("--actor", "--by", help="Who does it (default: your login name).")
]
NoteOption = Annotated[str, typer.Option(help="A line for the ticket's timeline.")]
_COLOUR = {"open": "red", "acknowledged": "yellow", "resolved": "green", "expired": "magenta"}


def _manager(store: Store) -> EscalationManager:
    # No notifiers here: announcing is the agents' side; a person at a terminal
    # must not wait for a webhook.
    return EscalationManager(store=store, config=EscalationConfig(notify_in_background=False))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%m-%d %H:%M:%S")


def _deadline(ticket: Ticket) -> str:
    if ticket.deadline is None:
        return "-"
    left = ticket.deadline - time.time()
    span = abs(left)
    text = f"{span / 3600:.1f}h" if span >= 3600 else f"{span / 60:.0f}m" if span >= 60 else "<1m"
    return f"in {text}" if left >= 0 else f"[red]overdue {text}[/]"


@escalations_app.command("list")
def list_tickets(  # noqa: PLR0917 - typer takes each option as a parameter
    store: StoreOption = None,
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged, resolved or expired.")
    ] = None,
    level: Annotated[
        str | None,
        typer.Option(help="auto_recovery, supervisor_review, human_intervention, critical_alert."),
    ] = None,
    agent: Annotated[str | None, typer.Option(help="Only this agent's tickets.")] = None,
    limit: Annotated[int, typer.Option(help="How many tickets, newest first.", min=1)] = 50,
    as_json: JsonOption = False,
) -> None:
    """List escalation tickets, newest first."""
    with opened_store(store) as s:
        try:
            tickets = _manager(s).list_tickets(
                status=status, level=level, agent_id=agent, limit=limit
            )
        except ConfigurationError as exc:
            fail(str(exc), code=2)
    if as_json:
        rows = [t.to_dict() for t in tickets]
        for row in rows:
            row.pop("changes", None)
        print_json(rows)
        return
    if not tickets:
        out.print("No escalation tickets" + (" match." if status or level or agent else " yet."))
        return
    table = Table(title=f"{len(tickets)} escalation ticket(s)", box=box.SIMPLE_HEAD)
    for column in ("ticket", "status", "level", "prio", "agent", "error", "created UTC", "next"):
        table.add_column(column, overflow="fold" if column == "error" else "ellipsis")
    for t in tickets:
        colour = _COLOUR.get(t.status.value, "white")
        table.add_row(
            t.ticket_id,
            f"[{colour}]{t.status.value}[/]",
            t.level.value,
            str(t.priority),
            escape(t.agent_id or "-"),
            escape(f"{t.error_type}: {t.error_message}"[:120]),
            _when(t.created_at),
            _deadline(t),
        )
    out.print(table)


@escalations_app.command("show")
def show(ticket_id: TicketArgument, store: StoreOption = None, as_json: JsonOption = False) -> None:
    """One ticket with its timeline, analysis, similar tickets and recommendations."""
    with opened_store(store) as s:
        try:
            report = _manager(s).get_escalation_report_sync(ticket_id)
        except UnknownTicketError as exc:
            fail(str(exc).strip("'\""))
    if as_json:
        print_json(report.to_dict())
        return
    out.print(report.render(), markup=False)


@escalations_app.command("ack")
def ack(
    ticket_id: TicketArgument,
    store: StoreOption = None,
    actor: ActorOption = None,
    note: NoteOption = "",
) -> None:
    """Acknowledge a ticket: someone is on it, so it stops escalating."""
    with opened_store(store) as s:
        try:
            ticket = _manager(s).acknowledge(ticket_id, actor=actor, note=note)
        except (UnknownTicketError, TicketStateError) as exc:
            fail(str(exc).strip("'\""))
    out.print(
        f"acknowledged {ticket.ticket_id} by {ticket.acknowledged_by} "
        f"(level {ticket.level.value}, priority {ticket.priority})",
        markup=False,
    )


@escalations_app.command("resolve")
def resolve(
    ticket_id: TicketArgument,
    resolution: Annotated[
        str, typer.Option("--resolution", "-r", help="What fixed it (shown on similar tickets).")
    ],
    store: StoreOption = None,
    actor: ActorOption = None,
    note: NoteOption = "",
) -> None:
    """Resolve a ticket with what fixed it."""
    with opened_store(store) as s:
        try:
            ticket = _manager(s).resolve(ticket_id, resolution=resolution, actor=actor, note=note)
        except (UnknownTicketError, TicketStateError) as exc:
            fail(str(exc).strip("'\""))
        except ConfigurationError as exc:
            fail(str(exc), code=2)
    out.print(f"resolved {ticket.ticket_id} by {ticket.resolved_by}: {resolution}", markup=False)
