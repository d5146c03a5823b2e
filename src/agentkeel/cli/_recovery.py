"""``keel snapshots``, ``keel rollback`` and ``keel history``: an agent's saved states.

These commands look at what is stored, whatever the retention settings of the
program that stored it (expired snapshots and versions are shown until they are
pruned). ``keel rollback`` prints the restored state as JSON on stdout (the
summary goes to stderr, so ``keel rollback agent > state.json`` works), notes the
rollback on the agent's timeline as a manual intervention, and exits 1 when there
is nothing it may restore: a corrupt snapshot is never printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

import agentkeel
from agentkeel.cli._app import (
    JsonOption,
    StoreOption,
    app,
    err,
    fail,
    opened_store,
    out,
    print_json,
)
from agentkeel.recovery import (
    CorruptStateError,
    HistoryManager,
    RollbackManager,
    UnknownSnapshotError,
    UnknownVersionError,
)
from agentkeel.store import Store

AgentArgument = Annotated[str, typer.Argument(help="The agent's ID.", show_default=False)]
TaskOption = Annotated[str | None, typer.Option("--task", help="Only this task.")]
LimitOption = Annotated[int, typer.Option(help="How many entries at most.", min=1)]


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _short(data: Any, width: int = 40) -> str:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name (a container, say): still a person
        return "cli"


@contextlib.contextmanager
def _recording(store: Store) -> Iterator[None]:
    """Send this command's events (restored, corrupt) to the same store, flushed at the end."""
    agentkeel.configure(store=store)
    try:
        yield
    finally:
        agentkeel.shutdown()


@app.command()
def snapshots(
    store: StoreOption = None,
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent.")] = None,
    task: TaskOption = None,
    limit: LimitOption = 50,
    as_json: JsonOption = False,
) -> None:
    """List state snapshots, newest first, with their integrity."""
    with opened_store(store) as s:
        found = RollbackManager(store=s, cleanup_after_hours=None).list_snapshots_sync(
            agent, task_id=task, limit=limit
        )
    if as_json:
        print_json([info.to_dict() for info in found])
        return
    if not found:
        scope = f" for agent {agent}" if agent else ""
        out.print(f"No snapshots{escape(scope)}.")
        return
    table = Table(title=f"{len(found)} snapshots", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("snapshot", "agent", "task", "created UTC", "size", "stored", "check", "meta"):
        table.add_column(column, overflow="fold")
    for info in found:
        table.add_row(
            escape(info.snapshot_id),
            escape(info.agent_id),
            escape(info.task_id or "-"),
            _when(info.created_at),
            _size(info.size),
            _size(info.stored_size) + (" z" if info.compressed else ""),
            "[green]ok[/]" if info.intact else "[bold red]CORRUPT[/]",
            escape(_short(info.metadata)) if info.metadata else "-",
        )
    out.print(table)


@app.command()
def rollback(
    agent: AgentArgument,
    store: StoreOption = None,
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", help="This snapshot (default: the latest intact one)."),
    ] = None,
    task: TaskOption = None,
    as_json: JsonOption = False,
) -> None:
    """Restore an agent's latest intact snapshot (or --snapshot ID) and print its state."""
    with opened_store(store) as s, _recording(s):
        manager = RollbackManager(store=s, cleanup_after_hours=None)
        try:
            result = manager.rollback_sync(
                agent, snapshot, task_id=task, kind="manual", actor=_operator()
            )
        except (CorruptStateError, UnknownSnapshotError) as exc:
            fail(str(exc))
    if as_json:
        print_json(result.to_dict())
    if not result.success:
        fail(result.reason)
    if not as_json:
        created = _when(result.created_at) if result.created_at is not None else "?"
        err.print(
            f"rolled back agent {escape(agent)} to snapshot {escape(result.snapshot_id or '')} "
            f"(taken {created} UTC): {escape(result.reason)}"
        )
        print_json(result.state)


@app.command()
def history(  # noqa: PLR0917 - typer takes each option as a parameter
    agent: AgentArgument,
    store: StoreOption = None,
    task: TaskOption = None,
    diff: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--diff",
            help="Compare two versions of --task, e.g. --diff v0001 v0003.",
            show_default=False,
        ),
    ] = None,
    limit: LimitOption = 100,
    as_json: JsonOption = False,
) -> None:
    """An agent's recorded states and interventions in time order, or a diff of two versions."""
    if diff is not None and task is None:
        fail("--diff needs --task: versions are numbered per task (keel history AGENT --task T)")
    with opened_store(store) as s:
        manager = HistoryManager(store=s, retention_days=None)
        if diff is not None and task is not None:
            _show_diff(manager, agent, task, diff, as_json=as_json)
            return
        timeline = manager.get_timeline_sync(agent, task, limit=limit)
    if as_json:
        print_json([entry.to_dict() for entry in timeline])
        return
    if not timeline:
        scope = f"agent {agent}" + (f", task {task}" if task else "")
        out.print(f"No history for {escape(scope)}.")
        return
    table = Table(title=f"History of {escape(agent)}", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("time UTC", "task", "what", "details"):
        table.add_column(column, overflow="fold")
    for entry in timeline:
        if entry.version is not None:
            v = entry.version
            what = v.version_id if v.intact else f"{v.version_id} [bold red]CORRUPT[/]"
            details = escape(_short(v.metadata)) if v.metadata else f"{_size(v.size)} state"
        elif entry.intervention is not None:
            i = entry.intervention
            what = f"{i.kind} {escape(i.action)}"
            details = escape(f"by {i.actor}" + (f" {_short(i.details)}" if i.details else ""))
        else:
            continue
        table.add_row(_when(entry.at), escape(entry.task_id or "-"), what, details)
    out.print(table)


def _show_diff(
    manager: HistoryManager, agent: str, task: str, versions: tuple[str, str], *, as_json: bool
) -> None:
    old, new = versions
    try:
        diff = manager.compare_versions_sync(agent, task, old, new)
    except (UnknownVersionError, CorruptStateError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"agent_id": agent, "task_id": task, "from": old, "to": new, **diff.to_dict()})
        return
    out.print(
        f"[bold]{escape(agent)}[/] task {escape(task)}: {escape(old)} -> {escape(new)}, "
        f"{diff.total_changes} change(s)"
    )
    out.print(diff.render(width=60), markup=False)
