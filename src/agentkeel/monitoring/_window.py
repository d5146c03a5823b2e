"""Reading a time window of events out of a store, and summarising it.

The Store protocol pages events by ``store_seq`` and has no time filter. Events are
written in batches soon after they happen, so ``store_seq`` follows wall time
closely; a binary search over ``store_seq`` (``list_events(after_seq=n, limit=1)``,
an index lookup) finds where a window starts in O(log n) queries instead of
reading the whole history. Events from a process whose clock is skewed may sit a
little outside the window at its edge: the figures are for operators, not billing.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentkeel.events import Event, EventType
from agentkeel.monitoring._sink import (
    ALERT_RAISED,
    ALERT_RESOLVED,
    CIRCUIT_STATES,
    PIPELINE_STATS,
    BreakerState,
    ReportedPipeline,
)
from agentkeel.store import Store

# A window larger than this many events is summarised from its first part only (and
# says so): collection must stay fast enough to run every minute.
DEFAULT_MAX_EVENTS = 200_000
PAGE = 2000


def last_store_seq(store: Store) -> int:
    """The highest ``store_seq`` in the store (0 when it is empty)."""
    first = store.list_events(after_seq=0, limit=1)
    if not first:
        return 0
    lo, step = first[0].store_seq, 1024
    # Gallop until nothing lies beyond, then bisect: (lo exists, nothing after hi).
    while True:
        beyond = store.list_events(after_seq=lo + step, limit=1)
        if not beyond:
            hi = lo + step
            break
        lo, step = beyond[0].store_seq, step * 2
    while lo < hi:
        mid = (lo + hi) // 2
        page = store.list_events(after_seq=mid, limit=1)
        if page:
            lo = page[0].store_seq
        else:
            hi = mid
    return lo


def seq_before(store: Store, wall_time: float, *, last: int | None = None) -> int:
    """An ``after_seq`` from which on events happened at or after ``wall_time``."""
    hi = last_store_seq(store) if last is None else last
    lo = 0
    cutoff_ns = int(wall_time * 1e9)
    while lo < hi:
        mid = (lo + hi) // 2
        page = store.list_events(after_seq=mid, limit=1)
        if not page:
            break
        if page[0].event.wall_ns >= cutoff_ns:
            hi = mid
        else:
            lo = page[0].store_seq
    return lo


def iter_events(
    store: Store,
    *,
    types: Sequence[str] | None,
    after_seq: int = 0,
    max_events: int | None = None,
) -> Iterator[tuple[int, Event]]:
    """Stored events (seq, event) of these types after ``after_seq``, page by page."""
    seen = 0
    while max_events is None or seen < max_events:
        page = store.list_events(types=types, after_seq=after_seq, limit=PAGE)
        for stored in page:
            yield stored.store_seq, stored.event
            seen += 1
            if max_events is not None and seen >= max_events:
                return
        if len(page) < PAGE:
            return
        after_seq = page[-1].store_seq


def breaker_states(store: Store, *, since: float | None = None) -> dict[str, BreakerState]:
    """The last state each circuit breaker reported (optionally: since a wall time)."""
    start = seq_before(store, since) if since is not None else 0
    states: dict[str, BreakerState] = {}
    for _, event in iter_events(store, types=list(CIRCUIT_STATES), after_seq=start):
        name = event.name or "unknown"
        known = states.get(name)
        if known is None or known.since <= event.timestamp:
            states[name] = BreakerState(
                name, CIRCUIT_STATES[event.type], event.timestamp, dict(event.attributes)
            )
    return states


def pipeline_reports(store: Store, *, since: float) -> dict[str, ReportedPipeline]:
    """The latest ``pipeline.stats`` report of each process since a wall time."""
    reports: dict[str, ReportedPipeline] = {}
    start = seq_before(store, since)
    for _, event in iter_events(store, types=[PIPELINE_STATS], after_seq=start):
        report = ReportedPipeline.from_event(event)
        known = reports.get(report.origin)
        if known is None or known.reported_at <= report.reported_at:
            reports[report.origin] = report
    return reports


def alert_events(store: Store, *, since: float | None = None) -> list[Event]:
    start = seq_before(store, since) if since is not None else 0
    return [e for _, e in iter_events(store, types=[ALERT_RAISED, ALERT_RESOLVED], after_seq=start)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(slots=True)
class _Calls:
    calls: int = 0
    failed: int = 0
    durations: list[float] = field(default_factory=list)

    def add(self, event: Event) -> None:
        self.calls += 1
        if event.attributes.get("status") in {"failed", "error"}:
            self.failed += 1
        duration = event.attributes.get("duration_ms")
        if isinstance(duration, int | float) and math.isfinite(duration) and duration >= 0:
            self.durations.append(float(duration))

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "failed": self.failed,
            "error_rate": self.failed / self.calls if self.calls else 0.0,
            "avg_latency_ms": sum(self.durations) / len(self.durations) if self.durations else None,
            "p50_latency_ms": percentile(self.durations, 50),
            "p95_latency_ms": percentile(self.durations, 95),
        }


@dataclass(slots=True)
class WindowSummary:
    """What happened in a time window, counted from the events."""

    window_seconds: float
    tools: dict[str, _Calls] = field(default_factory=dict)
    llms: dict[str, _Calls] = field(default_factory=dict)
    tokens: Counter[str] = field(default_factory=Counter)
    failures_by_category: Counter[str] = field(default_factory=Counter)
    failures_by_severity: Counter[str] = field(default_factory=Counter)
    recovered: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    gave_up: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    rejections: Counter[str] = field(default_factory=Counter)
    transitions: Counter[str] = field(default_factory=Counter)
    loops: int = 0
    escalations: int = 0
    chaos_faults: int = 0
    runs_finished: int = 0
    runs_failed: int = 0
    alerts_raised: int = 0
    total_events: int = 0
    scanned: int = 0
    truncated: bool = False

    def add(self, event: Event) -> None:
        self.scanned += 1
        handler = _ADD.get(event.type)
        if handler is not None:
            handler(self, event)

    def _tool(self, event: Event) -> None:
        self.tools.setdefault(event.name or "unknown", _Calls()).add(event)

    def _llm(self, event: Event) -> None:
        attrs = event.attributes
        model = str(attrs.get("gen_ai.request.model") or event.name or "unknown")
        self.llms.setdefault(model, _Calls()).add(event)
        for kind in ("input", "output"):
            n = attrs.get(f"gen_ai.usage.{kind}_tokens")
            if isinstance(n, int | float) and n > 0:
                self.tokens[kind] += int(n)

    def _failure(self, event: Event) -> None:
        self.failures_by_category[event.category or "unknown"] += 1
        self.failures_by_severity[_severity_name(event.severity)] += 1

    def _recovered(self, event: Event) -> None:
        self.recovered += 1

    def _retry(self, event: Event) -> None:
        if event.attributes.get("giving_up"):
            self.gave_up += 1
        else:
            self.retries[event.name or "unknown"] += 1

    def _timeout(self, event: Event) -> None:
        self.timeouts += 1

    def _fallback(self, event: Event) -> None:
        self.fallbacks += 1

    def _rejected(self, event: Event) -> None:
        self.rejections[event.name or "unknown"] += 1

    def _transition(self, event: Event) -> None:
        self.transitions[CIRCUIT_STATES[event.type]] += 1

    def _loop(self, event: Event) -> None:
        self.loops += 1

    def _escalation(self, event: Event) -> None:
        self.escalations += 1

    def _chaos(self, event: Event) -> None:
        self.chaos_faults += 1

    def _run_end(self, event: Event) -> None:
        self.runs_finished += 1
        if event.attributes.get("status") == "failed":
            self.runs_failed += 1

    def _alert(self, event: Event) -> None:
        self.alerts_raised += 1

    # ------------------------------------------------------------------ figures
    @property
    def failures(self) -> int:
        return sum(self.failures_by_category.values())

    @property
    def recovery_rate(self) -> float:
        """Recovered as a percentage of failures, like the tracker's summary (0 if none)."""
        return min(100.0, 100.0 * self.recovered / self.failures) if self.failures else 0.0

    def _all(self, table: dict[str, _Calls]) -> _Calls:
        total = _Calls()
        for calls in table.values():
            total.calls += calls.calls
            total.failed += calls.failed
            total.durations.extend(calls.durations)
        return total

    @property
    def calls(self) -> _Calls:
        """Tool and LLM calls together: what error rate and latency thresholds read."""
        both = self._all(self.tools)
        llm = self._all(self.llms)
        both.calls += llm.calls
        both.failed += llm.failed
        both.durations.extend(llm.durations)
        return both

    @property
    def run_failure_rate(self) -> float | None:
        return self.runs_failed / self.runs_finished if self.runs_finished else None

    def to_dict(self) -> dict[str, Any]:
        tools = self._all(self.tools).to_dict()
        tools["by_tool"] = {name: c.to_dict() for name, c in sorted(self.tools.items())}
        llm = self._all(self.llms).to_dict()
        llm["by_model"] = {name: c.to_dict() for name, c in sorted(self.llms.items())}
        llm["input_tokens"] = self.tokens["input"]
        llm["output_tokens"] = self.tokens["output"]
        calls = self.calls
        return {
            "events": {
                "total": self.total_events,
                "per_second": self.total_events / self.window_seconds,
                "scanned": self.scanned,
                "truncated": self.truncated,
            },
            "tools": tools,
            "llm": llm,
            "calls": {
                "total": calls.calls,
                "failed": calls.failed,
                "error_rate": calls.failed / calls.calls if calls.calls else 0.0,
                "p95_latency_ms": percentile(calls.durations, 95),
            },
            "failures": {
                "total": self.failures,
                "by_category": dict(self.failures_by_category.most_common()),
                "by_severity": dict(self.failures_by_severity.most_common()),
                "recovered": self.recovered,
                "recovery_rate": self.recovery_rate,
            },
            "retries": {
                "total": sum(self.retries.values()),
                "by_operation": dict(self.retries),
                "gave_up": self.gave_up,
            },
            "timeouts": self.timeouts,
            "fallbacks": self.fallbacks,
            "circuit_breakers": {
                "transitions": dict(self.transitions),
                "rejections": dict(self.rejections),
            },
            "loops_detected": self.loops,
            "escalations": self.escalations,
            "chaos_faults": self.chaos_faults,
            "runs": {
                "finished": self.runs_finished,
                "failed": self.runs_failed,
                "failure_rate": self.run_failure_rate,
            },
            "alerts_raised": self.alerts_raised,
        }


_ADD: dict[str, Callable[[WindowSummary, Event], None]] = {
    EventType.TOOL_CALL_END.value: WindowSummary._tool,
    EventType.LLM_CALL_END.value: WindowSummary._llm,
    EventType.FAILURE.value: WindowSummary._failure,
    EventType.FAILURE_RECOVERED.value: WindowSummary._recovered,
    EventType.RETRY.value: WindowSummary._retry,
    EventType.TIMEOUT.value: WindowSummary._timeout,
    EventType.FALLBACK.value: WindowSummary._fallback,
    EventType.CIRCUIT_REJECTED.value: WindowSummary._rejected,
    **dict.fromkeys(CIRCUIT_STATES, WindowSummary._transition),
    EventType.LOOP_DETECTED.value: WindowSummary._loop,
    EventType.ESCALATION_CREATED.value: WindowSummary._escalation,
    EventType.CHAOS_INJECTED.value: WindowSummary._chaos,
    EventType.AGENT_END.value: WindowSummary._run_end,
    ALERT_RAISED: WindowSummary._alert,
}
SUMMARY_TYPES = tuple(_ADD)


def summarize_window(
    store: Store,
    *,
    minutes: float,
    now: float | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
) -> WindowSummary:
    """Summarise the last ``minutes`` of the store's events."""
    now = time.time() if now is None else now
    window = minutes * 60
    last = last_store_seq(store)
    start = seq_before(store, now - window, last=last)
    summary = WindowSummary(window_seconds=window, total_events=last - start)
    for _, event in iter_events(store, types=SUMMARY_TYPES, after_seq=start, max_events=max_events):
        summary.add(event)
    summary.truncated = summary.scanned >= max_events
    return summary


def _severity_name(value: int) -> str:
    names = ("info", "low", "medium", "high", "critical")
    return names[value] if 0 <= value < len(names) else str(value)
