"""Counting failures and writing the plain-text failure report.

A :class:`Tally` is updated as failures arrive, so a tracker's summary stays right
even when it keeps only the first records in memory; :func:`summarize_failures`
builds the same summary from records read back from a log.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from agentkeel.events import FailureRecord

__all__ = ["SEVERITY_NAMES", "Tally", "generate_report", "summarize_failures", "text_report"]

# Failure severities, worst first (INFO is not a failure severity).
SEVERITY_NAMES = ("critical", "high", "medium", "low")
_TIMELINE_MESSAGE = 160


class Tally:
    """Running counts of failures by severity, category, node and tool. Not thread-safe:
    the owner holds its lock around updates."""

    __slots__ = (
        "by_category",
        "by_category_severity",
        "by_node",
        "by_severity",
        "by_tool",
        "recovered",
        "total",
    )

    def __init__(self) -> None:
        self.total = 0
        self.recovered = 0
        self.by_severity: Counter[str] = Counter(dict.fromkeys(SEVERITY_NAMES, 0))
        self.by_category: Counter[str] = Counter()
        self.by_category_severity: dict[str, Counter[str]] = {}
        self.by_node: Counter[str] = Counter()
        self.by_tool: Counter[str] = Counter()

    def add(self, record: FailureRecord) -> None:
        self.total += 1
        self.by_severity[record.severity] += 1
        self.by_category[record.category] += 1
        self.by_category_severity.setdefault(record.category, Counter())[record.severity] += 1
        if record.graph_node:
            self.by_node[record.graph_node] += 1
        if record.tool_name:
            self.by_tool[record.tool_name] += 1
        if record.recovered:
            self.recovered += 1

    def copy(self) -> Tally:
        other = Tally()
        other.total = self.total
        other.recovered = self.recovered
        other.by_severity = self.by_severity.copy()
        other.by_category = self.by_category.copy()
        other.by_category_severity = {k: v.copy() for k, v in self.by_category_severity.items()}
        other.by_node = self.by_node.copy()
        other.by_tool = self.by_tool.copy()
        return other

    @property
    def recovery_rate(self) -> float:
        """Recovered failures as a percentage of all failures (0.0 when there are none)."""
        return 100.0 * self.recovered / self.total if self.total else 0.0

    def summary(self, *, run_id: str | None, user_id: str | None) -> dict[str, Any]:
        return {
            "run_id": run_id,
            "user_id": user_id,
            "total_failures": self.total,
            "by_severity": {name: self.by_severity[name] for name in SEVERITY_NAMES[::-1]},
            "by_category": dict(_most_common(self.by_category)),
            "by_node": dict(_most_common(self.by_node)),
            "by_tool": dict(_most_common(self.by_tool)),
            "recovered": self.recovered,
            "recovery_rate": self.recovery_rate,
        }


def _most_common(counter: Counter[str]) -> list[tuple[str, int]]:
    # Ties broken by name so reports are stable from run to run.
    return sorted(((k, v) for k, v in counter.items() if v), key=lambda kv: (-kv[1], kv[0]))


def _tally(records: Iterable[FailureRecord]) -> Tally:
    tally = Tally()
    for record in records:
        tally.add(record)
    return tally


def summarize_failures(
    records: Iterable[FailureRecord], *, run_id: str | None = None, user_id: str | None = None
) -> dict[str, Any]:
    """The summary :meth:`FailureTracker.get_summary` gives, computed from records.

    ``run_id`` and ``user_id`` default to those of the first record.
    """
    records = list(records)
    if records:
        run_id = run_id if run_id is not None else records[0].run_id
        user_id = user_id if user_id is not None else records[0].user_id
    return _tally(records).summary(run_id=run_id, user_id=user_id)


def category_label(category: str) -> str:
    """``rate_limit`` → ``Rate limit``."""
    return category.replace("_", " ").capitalize() or "Unknown"


def severity_split(counts: Counter[str]) -> str:
    """``1 high, 2 medium``: the non-zero severities, worst first."""
    parts = [f"{counts[name]} {name}" for name in SEVERITY_NAMES if counts.get(name)]
    parts.extend(f"{n} {name}" for name, n in counts.items() if name not in SEVERITY_NAMES and n)
    return ", ".join(parts)


def format_time(timestamp: float, *, full: bool = False) -> str:
    """UTC, so that reports read the same on every machine."""
    when = _dt.datetime.fromtimestamp(timestamp, tz=_dt.UTC)
    if full:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"
    return when.strftime("%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def one_line(text: str, limit: int = _TIMELINE_MESSAGE) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def describe_error(record: FailureRecord, limit: int | None = None) -> str:
    message = record.error_message if limit is None else one_line(record.error_message, limit)
    if record.error_type and message:
        return f"{record.error_type} - {message}"
    return record.error_type or message or "(no message)"


def where(record: FailureRecord) -> str:
    return record.graph_node or record.tool_name or "-"


def _section(title: str) -> list[str]:
    return ["", title, "-" * len(title)]


def generate_report(
    records: Sequence[FailureRecord],
    *,
    run_id: str | None = None,
    user_id: str | None = None,
    limit: int | None = None,
) -> str:
    """The plain-text report of ``records`` (from a log or the store), as a tracker writes it.

    Summary, breakdowns by category, severity, node and tool, a timeline and every
    failure's details; ``limit`` caps how many failures are itemised. ``run_id`` and
    ``user_id`` default to those of the first record.
    """
    return text_report(records, run_id=run_id, user_id=user_id, limit=limit)


def text_report(
    records: Sequence[FailureRecord],
    *,
    run_id: str | None,
    user_id: str | None,
    limit: int | None,
    tally: Tally | None = None,
) -> str:
    """:func:`generate_report`, with ``tally`` giving the counts when ``records`` is not
    the whole run (a tracker keeps only its first ``max_records``)."""
    if records:
        run_id = run_id if run_id is not None else records[0].run_id
        user_id = user_id if user_id is not None else records[0].user_id
    counts = tally if tally is not None else _tally(records)
    title = "FAILURE TRACKING REPORT"
    lines = [title, "=" * len(title), ""]
    lines.append(f"Run ID: {run_id or '-'}")
    lines.append(f"User ID: {user_id or '-'}")
    lines.append(f"Total Failures: {counts.total}")
    if counts.total == 0:
        lines += ["", "No failures recorded."]
        return "\n".join(lines) + "\n"
    rate = f"{counts.recovery_rate:.1f}%"
    lines.append(f"Recovery Rate: {rate} ({counts.recovered} of {counts.total} recovered)")

    lines += _section("BY CATEGORY")
    for category, n in _most_common(counts.by_category):
        split = severity_split(counts.by_category_severity.get(category, Counter()))
        lines.append(f"{category_label(category)}: {n} ({split})")

    lines += _section("BY SEVERITY")
    lines += [f"{name.capitalize()}: {counts.by_severity[name]}" for name in SEVERITY_NAMES]

    for title_, counter in (("BY NODE", counts.by_node), ("BY TOOL", counts.by_tool)):
        if counter:
            lines += _section(title_)
            lines += [f"{name}: {n}" for name, n in _most_common(counter)]

    shown = list(records if limit is None else records[:limit])
    lines += _section("FAILURE TIMELINE")
    for record in shown:
        lines.append(
            f"[{format_time(record.timestamp)}] {category_label(record.category)} "
            f"({record.severity.upper()}) @ {where(record)}: {describe_error(record, 120)}"
        )
    hidden = counts.total - len(shown)
    if hidden > 0:
        lines.append(f"… {hidden} more failure(s) not itemised here; see the failure log")

    lines += _section("DETAILED RECORDS")
    for index, record in enumerate(shown, 1):
        lines.append(
            f"[Failure {index}] {category_label(record.category)} "
            f"({record.severity.upper()}) @ {where(record)}"
        )
        lines.extend(f"  {label}: {value}" for label, value in detail_rows(record))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def detail_rows(record: FailureRecord) -> list[tuple[str, str]]:
    """The labelled details of one failure, as the text and rich reports show them."""
    rows = [("Error", describe_error(record))]
    if record.tool_name:
        rows.append(("Tool", record.tool_name))
    if record.graph_node:
        rows.append(("Node", record.graph_node))
    if record.latency_ms is not None:
        rows.append(("Latency", f"{record.latency_ms:.1f}ms"))
    rows.append(("Recovered", "Yes" if record.recovered else "No"))
    if record.recovery_action:
        rows.append(("Recovery", record.recovery_action))
    if record.tags:
        rows.append(("Tags", ", ".join(record.tags)))
    if record.fingerprint:
        rows.append(("Fingerprint", record.fingerprint))
    rows.append(("Time", format_time(record.timestamp, full=True)))
    return rows
