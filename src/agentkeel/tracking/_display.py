"""The failure report in the terminal, rendered with rich.

Every piece of text that came from a failure (messages, node and tool names) goes
into rich ``Text`` objects, never into markup strings, so an error message such as
``"[bold]"`` or ``"list[int]"`` is shown as written.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from agentkeel.events import FailureRecord
from agentkeel.tracking._jsonl import read_failure_log
from agentkeel.tracking._report import (
    SEVERITY_NAMES,
    Tally,
    category_label,
    describe_error,
    detail_rows,
    format_time,
    where,
)

__all__ = ["display_failure_report", "render_failure_report"]

_SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
_TIMELINE_MESSAGE = 100


def _severity_text(severity: str) -> Text:
    return Text(severity.upper(), style=_SEVERITY_STYLE.get(severity, ""))


def _counts_table(title: str, label: str, counter: Counter[str]) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column(label)
    table.add_column("Failures", justify="right")
    for name, n in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(Text(name), str(n))
    return table


def render_failure_report(
    records: Sequence[FailureRecord],
    *,
    run_id: str | None = None,
    user_id: str | None = None,
    console: Console | None = None,
    verbose: bool = False,
) -> None:
    """Print the failure report of ``records`` to ``console`` (default: stdout).

    A summary panel, then tables by category (with the severity split), by
    severity, by node and by tool, and the timeline; ``verbose`` adds every
    failure's details.
    """
    out = console if console is not None else Console()
    tally = Tally()
    for record in records:
        tally.add(record)
    if records:
        run_ids = {r.run_id for r in records}
        run_id = run_id or (records[0].run_id if len(run_ids) == 1 else f"{len(run_ids)} runs")
        user_id = user_id or records[0].user_id

    summary = Text()
    summary.append("Run ID: ", style="bold").append(run_id or "-").append("\n")
    summary.append("User ID: ", style="bold").append(user_id or "-").append("\n")
    summary.append("Total failures: ", style="bold").append(str(tally.total))
    if tally.total:
        summary.append("\nRecovery rate: ", style="bold").append(
            f"{tally.recovery_rate:.1f}% ({tally.recovered} of {tally.total} recovered)"
        )
    border = "green" if not tally.total else "red" if tally.recovered < tally.total else "yellow"
    out.print(Panel(summary, title="Failure report", border_style=border, expand=False))
    if not tally.total:
        out.print(Text("No failures recorded.", style="green"))
        return

    by_category = Table(title="By category", title_justify="left")
    by_category.add_column("Category")
    by_category.add_column("Failures", justify="right")
    for severity in SEVERITY_NAMES:
        by_category.add_column(
            severity.capitalize(), justify="right", style=_SEVERITY_STYLE[severity]
        )
    for category, n in sorted(tally.by_category.items(), key=lambda kv: (-kv[1], kv[0])):
        split = tally.by_category_severity.get(category, Counter())
        by_category.add_row(
            Text(category_label(category)),
            str(n),
            *(str(split[s]) if split[s] else "-" for s in SEVERITY_NAMES),
        )
    out.print(by_category)

    by_severity = Table(title="By severity", title_justify="left")
    by_severity.add_column("Severity")
    by_severity.add_column("Failures", justify="right")
    for severity in SEVERITY_NAMES:
        by_severity.add_row(_severity_text(severity), str(tally.by_severity[severity]))
    out.print(by_severity)

    if tally.by_node:
        out.print(_counts_table("By node", "Node", tally.by_node))
    if tally.by_tool:
        out.print(_counts_table("By tool", "Tool", tally.by_tool))

    timeline = Table(title="Failure timeline (UTC)", title_justify="left")
    # Short columns never wrap, so a narrow terminal squeezes only the error text.
    timeline.add_column("Time", no_wrap=True, min_width=12)
    timeline.add_column("Failure", min_width=8)
    timeline.add_column("Where", no_wrap=True, max_width=16, overflow="ellipsis")
    timeline.add_column("Error", overflow="fold", ratio=1, min_width=16)
    timeline.add_column("Rec.", no_wrap=True)
    for record in records:
        failure = Text(category_label(record.category) + " ")
        failure.append_text(_severity_text(record.severity))
        timeline.add_row(
            format_time(record.timestamp),
            failure,
            Text(where(record)),
            Text(describe_error(record, _TIMELINE_MESSAGE)),
            Text("yes", style="green") if record.recovered else Text("no", style="red"),
        )
    out.print(timeline)

    if verbose:
        for index, record in enumerate(records, 1):
            out.print(_details_panel(index, record))


def _details_panel(index: int, record: FailureRecord) -> Panel:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in detail_rows(record):
        table.add_row(label, Text(value))
    for key, value in record.attributes.items():
        table.add_row(Text(f"attributes.{key}"), Text(str(value)))
    title = Text(f"Failure {index}: ")
    title.append(category_label(record.category)).append(" ")
    title.append_text(_severity_text(record.severity))
    title.append(f" @ {where(record)}")
    return Panel(Group(table), title=title, title_align="left", expand=False)


def display_failure_report(
    log_path: str | os.PathLike[str],
    verbose: bool = False,
    console: Console | None = None,
) -> None:
    """Read a failure log written by :class:`FailureTracker` and print its report.

    A missing or unreadable log is reported in one line, not with a traceback.
    """
    out = console if console is not None else Console()
    path = Path(log_path)
    try:
        records = read_failure_log(path)
    except FileNotFoundError:
        out.print(
            Text(
                f"No failure log at {path}: either the run recorded no failures (the log "
                "is created with the first one) or it was written elsewhere; "
                "FailureTracker.log_path says where.",
                style="yellow",
            )
        )
        return
    except OSError as exc:
        out.print(Text(f"Cannot read the failure log {path}: {exc.strerror or exc}", style="red"))
        return
    render_failure_report(records, console=out, verbose=verbose)
