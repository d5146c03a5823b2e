"""What each page shows, read from the store: filters checked, queries bounded.

Every function here returns plain data (dicts, records, timeline nodes) that both
the HTML pages and the JSON API use, so the two never disagree. Bad query values
raise :class:`BadInputError` (a 400 with the message), never a 500.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentkeel.dashboard._timeline import TimelineNode, build_timeline, count_nodes
from agentkeel.events import Category, EventType
from agentkeel.monitoring import AlertManager
from agentkeel.monitoring._sink import CIRCUIT_STATES
from agentkeel.monitoring._window import (
    alert_events,
    breaker_states,
    iter_events,
    last_store_seq,
    percentile,
    seq_before,
)
from agentkeel.store import RunRecord, Store, StoredEvent
from agentkeel.store._derive import RUN_SORTS, RUN_STATUSES
from agentkeel.tracking import summarize_failures

RUNS_PER_PAGE = 50
MAX_PER_PAGE = 500
# The run page renders at most this many events at once; "load more" pages on.
TIMELINE_PAGE = 1000
MAX_FAILURES_SHOWN = 5000
MAX_TEXT_FILTER = 200


class BadInputError(Exception):
    """A query value the dashboard cannot use; shown to the user as a 400."""


# ----------------------------------------------------------------- parsing
def parse_time(value: str | None, name: str) -> float | None:
    """An ISO date/time (UTC unless it says otherwise) or epoch seconds; empty → None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(number):
            return number
        raise BadInputError(f"{name} must be a date, got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInputError(
            f"{name} must be a date like 2025-01-31 or 2025-01-31T14:30 (UTC), got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def parse_int(value: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if value is None or not value.strip():
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadInputError(f"{name} must be a whole number, got {value!r}") from None
    if not low <= number <= high:
        raise BadInputError(f"{name} must be between {low} and {high}, got {number}")
    return number


def parse_float(value: str | None, name: str, *, default: float, low: float, high: float) -> float:
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise BadInputError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise BadInputError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return number


def parse_text(value: str | None, name: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > MAX_TEXT_FILTER:
        raise BadInputError(f"{name} is too long (at most {MAX_TEXT_FILTER} characters)")
    return value.strip()


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def brief(value: Any, width: int = 200) -> str:
    """A value as short JSON text, for a diff line (escaped by the template)."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms" if ms < 10 else f"{ms:.0f} ms"


# --------------------------------------------------------------------- runs
@dataclass(frozen=True, slots=True)
class RunFilters:
    status: str | None = None
    user: str | None = None
    name: str | None = None
    since: float | None = None
    until: float | None = None
    sort: str = "-started_at"
    page: int = 1
    per_page: int = RUNS_PER_PAGE

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> RunFilters:
        status = parse_text(q.get("status"), "status")
        if status is not None and status not in RUN_STATUSES:
            raise BadInputError(f"unknown status {status!r}: use {', '.join(RUN_STATUSES)}")
        sort = q.get("sort") or "-started_at"
        if sort not in RUN_SORTS:
            raise BadInputError(f"unknown sort {sort!r}: use one of {', '.join(RUN_SORTS)}")
        since, until = parse_time(q.get("since"), "since"), parse_time(q.get("until"), "until")
        if since is not None and until is not None and since >= until:
            raise BadInputError("since must be before until")
        return cls(
            status=status,
            user=parse_text(q.get("user"), "user"),
            name=parse_text(q.get("name"), "name"),
            since=since,
            until=until,
            sort=sort,
            page=parse_int(q.get("page"), "page", default=1, low=1, high=10_000_000),
            per_page=parse_int(
                q.get("per_page"), "per_page", default=RUNS_PER_PAGE, low=1, high=MAX_PER_PAGE
            ),
        )

    def store_filters(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "user_id": self.user,
            "name": self.name,
            "since": self.since,
            "until": self.until,
        }

    def query(self, **changes: Any) -> dict[str, str]:
        """These filters as query parameters (for links), with some changed."""
        values: dict[str, Any] = {
            "status": self.status,
            "user": self.user,
            "name": self.name,
            "since": _iso(self.since),
            "until": _iso(self.until),
            "sort": self.sort if self.sort != "-started_at" else None,
            "page": self.page if self.page != 1 else None,
            "per_page": self.per_page if self.per_page != RUNS_PER_PAGE else None,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def runs_page(store: Store, f: RunFilters) -> dict[str, Any]:
    total = store.count_runs(**f.store_filters())
    pages = max(1, math.ceil(total / f.per_page))
    records: list[RunRecord] = []
    if f.page <= pages:
        records = store.list_runs(
            limit=f.per_page, offset=(f.page - 1) * f.per_page, sort=f.sort, **f.store_filters()
        )
    return {
        "runs": records,
        "total": total,
        "pages": pages,
        "page": f.page,
        "past_end": f.page > pages,
        "filters": f,
    }


def run_to_dict(r: RunRecord) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "name": r.name,
        "status": r.status,
        "user_id": r.user_id,
        "session_id": r.session_id,
        "parent_run_id": r.parent_run_id,
        "tags": list(r.tags),
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "duration_ms": r.duration_ms,
        "failure_count": r.failure_count,
        "recovered_count": r.recovered_count,
        "recovery_rate": r.recovery_rate,
        "event_count": r.event_count,
        "error_type": r.error_type,
        "error_message": r.error_message,
    }


# ---------------------------------------------------------------------- run
@dataclass(slots=True)
class RunView:
    run: RunRecord
    timeline: list[TimelineNode]
    shown_events: int
    after: int
    next_after: int | None
    last_seq: int
    failures: list[Any]
    failures_truncated: bool
    summary: dict[str, Any]
    tool_latency: list[tuple[str, float, int]]


def run_view(store: Store, run_id: str, *, after: int = 0, page: int = TIMELINE_PAGE) -> RunView:
    """One run: a page of its timeline from ``after``, its failures and their summary."""
    run = store.get_run(run_id)
    events = store.list_events(run_id=run.run_id, after_seq=after, limit=page + 1)
    more = len(events) > page
    events = events[:page]
    failures = store.list_failures(run_id=run.run_id, limit=MAX_FAILURES_SHOWN + 1)
    truncated = len(failures) > MAX_FAILURES_SHOWN
    if truncated:
        # The summary must be right even when the table is cut: count them all.
        summary = summarize_failures(
            store.list_failures(run_id=run.run_id, limit=10_000_000),
            run_id=run.run_id,
            user_id=run.user_id,
        )
        failures = failures[:MAX_FAILURES_SHOWN]
    else:
        summary = summarize_failures(failures, run_id=run.run_id, user_id=run.user_id)
    timeline = build_timeline(events, started_at=run.started_at)
    return RunView(
        run=run,
        timeline=timeline,
        shown_events=count_nodes(timeline),
        after=after,
        next_after=events[-1].store_seq if more and events else None,
        last_seq=events[-1].store_seq if events else after,
        failures=failures,
        failures_truncated=truncated,
        summary=summary,
        tool_latency=tool_latency(e for e in events),
    )


def tool_latency(events: Any) -> list[tuple[str, float, int]]:
    """(tool, p95 ms, calls) from tool.end events, the slowest first."""
    durations: dict[str, list[float]] = {}
    for stored in events:
        event = stored.event if isinstance(stored, StoredEvent) else stored
        if event.type != EventType.TOOL_CALL_END.value:
            continue
        value = event.attributes.get("duration_ms")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            durations.setdefault(event.name or "unknown", []).append(float(value))
    rows = [
        (name, percentile(values, 95) or 0.0, len(values)) for name, values in durations.items()
    ]
    return sorted(rows, key=lambda r: (-r[1], r[0]))


# ----------------------------------------------------------------- failures
def failures_page(store: Store, q: Mapping[str, str]) -> dict[str, Any]:
    category = parse_text(q.get("category"), "category")
    if category is not None:
        try:
            category = Category.parse(category).value
        except ValueError as exc:
            raise BadInputError(str(exc)) from None
    hours = parse_float(q.get("hours"), "hours", default=0, low=0, high=24 * 365 * 10)
    since = time.time() - hours * 3600 if hours else None
    limit = parse_int(q.get("limit"), "limit", default=100, low=1, high=1000)
    groups = store.failure_groups(category=category, since=since, limit=limit)
    return {"groups": groups, "category": category, "hours": hours, "limit": limit}


# ----------------------------------------------------------------- breakers
def breakers_page(store: Store, q: Mapping[str, str]) -> dict[str, Any]:
    hours = parse_float(q.get("hours"), "hours", default=24, low=0.01, high=24 * 365)
    since = time.time() - hours * 3600
    states = breaker_states(store)
    window: dict[str, Counter[str]] = {}
    start = seq_before(store, since)
    types = [*CIRCUIT_STATES, EventType.CIRCUIT_REJECTED.value]
    for _, event in iter_events(store, types=types, after_seq=start, max_events=200_000):
        if event.timestamp < since:
            continue
        counts = window.setdefault(event.name or "unknown", Counter())
        counts[CIRCUIT_STATES.get(event.type, "rejected")] += 1
    rows = []
    for name in sorted(set(states) | set(window)):
        state = states.get(name)
        a = state.attributes if state is not None else {}
        counts = window.get(name, Counter())
        rate = a.get("failure_rate")
        rows.append(
            {
                "name": name,
                "state": state.state if state is not None else "unknown",
                "since": state.since if state is not None else None,
                "calls": a.get("calls"),
                "failure_rate": rate if isinstance(rate, int | float) else None,
                "slow_call_rate": a.get("slow_call_rate"),
                "reason": a.get("reason"),
                "opened": counts["open"],
                "half_opened": counts["half_open"],
                "closed": counts["closed"],
                "rejected": counts["rejected"],
            }
        )
    return {"breakers": rows, "hours": hours}


# ------------------------------------------------------------------- alerts
def alerts_page(store: Store, q: Mapping[str, str]) -> dict[str, Any]:
    hours = parse_float(q.get("hours"), "hours", default=24, low=0.01, high=24 * 365)
    manager = AlertManager(dedup_window=0)
    manager.restore(alert_events(store))
    return {
        "active": manager.active(),
        "resolved": manager.resolved(hours=hours),
        "hours": hours,
    }


# ------------------------------------------------------------------- charts
def charts_data(store: Store, q: Mapping[str, str]) -> dict[str, Any]:
    """Failures per time bucket by category, p95 latency by tool, events per second."""
    hours = parse_float(q.get("hours"), "hours", default=24, low=0.05, high=24 * 90)
    buckets = parse_int(q.get("buckets"), "buckets", default=24, low=2, high=120)
    now = time.time()
    start_time = now - hours * 3600
    width = hours * 3600 / buckets
    last = last_store_seq(store)
    # Events per bucket from the store order alone: where each bucket starts is a
    # binary search over store_seq, so no event has to be read.
    bounds = [seq_before(store, start_time + i * width, last=last) for i in range(buckets)]
    bounds.append(last)
    rate = [max(0, bounds[i + 1] - bounds[i]) / width for i in range(buckets)]
    by_category: list[Counter[str]] = [Counter() for _ in range(buckets)]
    latencies: dict[str, list[float]] = {}
    types = [EventType.FAILURE.value, EventType.TOOL_CALL_END.value]
    for _, event in iter_events(store, types=types, after_seq=bounds[0], max_events=200_000):
        index = int((event.timestamp - start_time) // width)
        if not 0 <= index < buckets:
            continue
        if event.type == EventType.FAILURE.value:
            by_category[index][event.category or "unknown"] += 1
        else:
            value = event.attributes.get("duration_ms")
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                latencies.setdefault(event.name or "unknown", []).append(float(value))
    p95 = sorted(
        ((name, percentile(v, 95) or 0.0, len(v)) for name, v in latencies.items()),
        key=lambda r: (-r[1], r[0]),
    )
    return {
        "hours": hours,
        "start": start_time,
        "bucket_seconds": width,
        "failures_by_category": [dict(c) for c in by_category],
        "p95_latency_by_tool": p95,
        "events_per_second": rate,
    }
