"""The ``keel`` command line: the demo, runs, reports, failures and the database."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentkeel._errors import ConfigurationError, KeelError, UnknownRunError
from agentkeel.store import RunRecord, Store, open_store, resolve_store_url

app = typer.Typer(
    name="keel",
    help="agentkeel: keeps AI agents running when things go wrong, and shows what went wrong.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The store's schema: status and upgrades.", no_args_is_help=True)
app.add_typer(db_app, name="db")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="KEEL_STORE",
        help="Store URL: sqlite:///path/keel.db or postgresql://user@host/db "
        "(default: SQLite under $KEEL_HOME, ./.keel).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def fail(message: str, *, code: int = 1) -> NoReturn:
    """One line that says what went wrong and what to do; no traceback."""
    # Escaped: messages name extras like agentkeel[postgres], which rich would eat as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


@contextmanager
def opened_store(url: str | None, *, migrate: bool = True) -> Iterator[Store]:
    """Open the store, turning our errors into a one-line message and exit code 2."""
    try:
        store = open_store(url, migrate=migrate)
    except KeelError as exc:
        fail(str(exc), code=2)
    try:
        yield store
    except UnknownRunError as exc:
        fail(str(exc).strip("'\""))
    except KeelError as exc:
        fail(str(exc), code=2)
    finally:
        store.close()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def run_to_dict(record: RunRecord) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "name": record.name,
        "status": record.status,
        "user_id": record.user_id,
        "session_id": record.session_id,
        "parent_run_id": record.parent_run_id,
        "tags": list(record.tags),
        "started_at": record.started_at,
        "ended_at": record.ended_at,
        "duration_ms": record.duration_ms,
        "failure_count": record.failure_count,
        "recovered_count": record.recovered_count,
        "recovery_rate": record.recovery_rate,
        "event_count": record.event_count,
        "error_type": record.error_type,
        "error_message": record.error_message,
    }


def _positive(value: int, name: str) -> int:
    if value < 1:
        fail(f"{name} must be at least 1, got {value}")
    return value


def _guard(fn: Callable[[], T]) -> T:
    """Run a command body; configuration errors become one-line messages."""
    try:
        return fn()
    except ConfigurationError as exc:
        fail(str(exc), code=2)


# --------------------------------------------------------------------------- commands
@app.command()
def runs(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(help="How many runs, newest first.")] = 20,
    status: Annotated[str | None, typer.Option(help="running, succeeded or failed.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user's runs.")] = None,
    as_json: JsonOption = False,
) -> None:
    """List recent runs with their failures and recovery rate."""
    _positive(limit, "--limit")
    if status is not None and status not in {"running", "succeeded", "failed"}:
        fail(f"unknown status {status!r}: use running, succeeded or failed")
    with opened_store(store) as s:
        records = s.list_runs(limit=limit, status=status, user_id=user)
    if as_json:
        print_json([run_to_dict(r) for r in records])
        return
    if not records:
        out.print("No runs yet. Try [bold]keel demo[/].")
        return
    table = Table(title=f"Runs in {resolve_store_url(store)}", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("run", no_wrap=True)
    table.add_column("name", overflow="ellipsis", min_width=8, max_width=24)
    table.add_column("status", no_wrap=True)
    table.add_column("user", overflow="ellipsis", min_width=6, max_width=16)
    table.add_column("started UTC", no_wrap=True)
    table.add_column("took", justify="right", no_wrap=True)
    table.add_column("fail", justify="right", no_wrap=True)
    table.add_column("rec.", justify="right", no_wrap=True)
    colour = {"succeeded": "green", "failed": "red", "running": "yellow"}
    for r in records:
        table.add_row(
            r.run_id,
            r.name,
            f"[{colour.get(r.status, 'white')}]{r.status}[/]",
            r.user_id or "-",
            _when(r.started_at)[5:],  # MM-DD HH:MM:SS: the year is noise in a run list
            _duration(r.duration_ms),
            str(r.failure_count),
            f"{r.recovery_rate:.0f}%" if r.failure_count else "-",
        )
    out.print(table)


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="A run ID, or a unique prefix of one.")],
    store: StoreOption = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Every failure in detail.")
    ] = False,
    as_json: JsonOption = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Write the run (timeline, failures, summary) as one self-contained HTML file.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """The failure report of one run, rebuilt from the store."""
    from agentkeel.tracking import generate_report, render_failure_report, summarize_failures

    if html is not None:
        _write_html_report(run_id, store, html)
        return
    with opened_store(store) as s:
        record = s.get_run(run_id)
        failures = s.list_failures(run_id=record.run_id, limit=100_000)
    summary = summarize_failures(failures, run_id=record.run_id, user_id=record.user_id)
    if as_json:
        print_json(
            {
                "run": run_to_dict(record),
                "summary": summary,
                "failures": [f.to_dict() for f in failures],
            }
        )
        return
    out.print(
        f"[bold]{record.name}[/] {record.run_id}  status [bold]{record.status}[/]  "
        f"{_when(record.started_at)} UTC  {_duration(record.duration_ms)}"
    )
    if record.error_type:
        out.print(f"[red]run failed: {record.error_type}: {record.error_message}[/]")
    render_failure_report(
        failures, run_id=record.run_id, user_id=record.user_id, console=out, verbose=verbose
    )
    if verbose:
        out.print(
            generate_report(failures, run_id=record.run_id, user_id=record.user_id), markup=False
        )


def _write_html_report(run_id: str, store: str | None, path: Path) -> None:
    try:
        from agentkeel.dashboard import render_run_html
    except ImportError as exc:
        fail(str(exc), code=2)
    with opened_store(store) as s:
        page = render_run_html(s, run_id)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", code=2)
    out.print(f"wrote {path} ({len(page.encode()) // 1024 + 1} KiB)", markup=False)


@app.command()
def failures(
    store: StoreOption = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run (ID or prefix).")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category, e.g. network.")] = None,
    limit: Annotated[int, typer.Option(help="How many failures at most.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """List recorded failures, newest last."""
    from agentkeel.events import Category

    _positive(limit, "--limit")
    if category is not None:
        category = _guard(lambda: Category.parse(category).value)
    with opened_store(store) as s:
        run_id = s.get_run(run).run_id if run else None
        records = s.list_failures(run_id=run_id, category=category, limit=limit)
    if as_json:
        print_json([f.to_dict() for f in records])
        return
    if not records:
        out.print("No failures recorded" + (" for that selection." if run or category else "."))
        return
    table = Table(title=f"{len(records)} failures")
    for column in (
        "time (UTC)",
        "run",
        "category",
        "severity",
        "node",
        "tool",
        "error",
        "recovered",
    ):
        table.add_column(column, overflow="fold")
    for f in records:
        table.add_row(
            _when(f.timestamp),
            f.run_id,
            f.category,
            f.severity,
            f.graph_node or "-",
            f.tool_name or "-",
            f"{f.error_type}: {f.error_message}",
            f"yes: {f.recovery_action}" if f.recovered else "no",
        )
    out.print(table)


@db_app.command("status")
def db_status(store: StoreOption = None, as_json: JsonOption = False) -> None:
    """Show the schema version of the store and any pending migrations."""
    with opened_store(store, migrate=False) as s:
        status = s.schema_status()
    if as_json:
        print_json(
            {
                "url": resolve_store_url(store),
                "current": status.current,
                "latest": status.latest,
                "pending": list(status.pending),
            }
        )
        return
    out.print(f"store    {resolve_store_url(store)}")
    out.print(f"schema   version {status.current} of {status.latest}")
    if status.pending:
        out.print(f"pending  {', '.join(status.pending)}: run [bold]keel db upgrade[/]")
    else:
        out.print("[green]up to date[/]")


@db_app.command("upgrade")
def db_upgrade(store: StoreOption = None) -> None:
    """Apply pending schema migrations."""
    with opened_store(store, migrate=False) as s:
        applied = s.migrate()
        status = s.schema_status()
    if applied:
        out.print(f"applied {', '.join(applied)}; schema now at version {status.current}")
    else:
        out.print(f"already up to date at version {status.current}")


@app.command()
def demo(
    chaos: Annotated[
        bool, typer.Option("--chaos/--no-chaos", help="Inject faults into the tools.")
    ] = False,
    seed: Annotated[
        int | None, typer.Option(help="Seed for chaos, for a reproducible run.")
    ] = None,
    track_failures: Annotated[bool, typer.Option("--track-failures/--no-track-failures")] = True,
    track_tools: Annotated[bool, typer.Option("--track-tools/--no-track-tools")] = True,
    show_failures: Annotated[bool, typer.Option("--show-failures/--no-show-failures")] = True,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show every failure in detail.")
    ] = False,
    store: StoreOption = None,
    home: Annotated[
        Path | None,
        typer.Option(
            envvar="KEEL_HOME", help="Directory for the store and logs (default ./.keel)."
        ),
    ] = None,
    profile: Annotated[
        bool, typer.Option("--profile", help="Profile the run; show the top 15 functions.")
    ] = False,
) -> None:
    """Run the built-in travel-planning agent, then show what went wrong and what recovered."""
    from agentkeel.cli._demo import run_demo_command

    run_demo_command(
        chaos=chaos,
        seed=seed,
        track_failures=track_failures,
        track_tools=track_tools,
        show_failures=show_failures,
        verbose=verbose,
        store=store,
        home=home,
        profile=profile,
    )


def main() -> None:
    # The CLI reports store trouble itself, in one line, and narrates the policies;
    # agentkeel's stdlib log (internal errors with tracebacks, breaker transitions) is
    # for library users and shows here only with KEEL_DEBUG.
    if not os.environ.get("KEEL_DEBUG"):
        quiet = logging.getLogger("agentkeel")
        quiet.addHandler(logging.NullHandler())
        quiet.propagate = False
    try:
        app()
    except KeelError as exc:
        # Settings read deep inside a command (environment variables, say) land here:
        # still one line, never a traceback.
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        sys.exit(2)
