"""Prometheus metrics derived from the event stream: a pipeline sink, no coupling.

The tracker, the tools registry, the policies and runs only emit events; this sink
turns them into counters and histograms on the writer thread, so nothing on the hot
path knows Prometheus exists. The same sink is fed from a store by ``keel serve``
(:class:`StoreFeed`), which makes the metrics of agents in other processes visible.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentkeel import _internal
from agentkeel.events import Event, EventType, Severity
from agentkeel.monitoring._deps import require_prometheus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agentkeel.store import Store

PIPELINE_STATS = "pipeline.stats"
ALERT_RAISED = "alert.raised"
ALERT_RESOLVED = "alert.resolved"
CIRCUIT_STATES = {
    EventType.CIRCUIT_OPENED.value: "open",
    EventType.CIRCUIT_HALF_OPEN.value: "half_open",
    EventType.CIRCUIT_CLOSED.value: "closed",
}
# Beyond this many label combinations one metric maps new ones to "_other": a label
# fed from data (a tool name made of user input) must not grow Prometheus unbounded.
MAX_SERIES_PER_METRIC = 1000
OTHER = "_other"

_TOOL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LLM_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_RUN_BUCKETS = (0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True, slots=True)
class BreakerState:
    """The last known state of one circuit breaker, as its events told it."""

    name: str
    state: str
    since: float
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ReportedPipeline:
    """Pipeline counters one process reported in a ``pipeline.stats`` event."""

    origin: str
    reported_at: float
    emitted: int
    written: int
    buffered: int
    dropped: int
    dropped_by_reason: dict[str, int]
    sink_errors: int
    lag_seconds: float

    @classmethod
    def from_event(cls, event: Event) -> ReportedPipeline:
        a = event.attributes
        reasons = a.get("dropped_by_reason")
        return cls(
            origin=event.origin or "unknown",
            reported_at=event.timestamp,
            emitted=_int(a.get("emitted")),
            written=_int(a.get("written")),
            buffered=_int(a.get("buffered")),
            dropped=_int(a.get("dropped")),
            dropped_by_reason={str(k): _int(v) for k, v in reasons.items()}
            if isinstance(reasons, dict)
            else {},
            sink_errors=_int(a.get("sink_errors")),
            lag_seconds=_float(a.get("lag_seconds")) or 0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "reported_at": self.reported_at,
            "emitted": self.emitted,
            "written": self.written,
            "buffered": self.buffered,
            "dropped": self.dropped,
            "dropped_by_reason": dict(self.dropped_by_reason),
            "sink_errors": self.sink_errors,
            "lag_seconds": self.lag_seconds,
        }


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and math.isfinite(value) else 0


def _float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _label(value: object, default: str = "unknown") -> str:
    return str(value) if value not in (None, "") else default


class MetricsSink:
    """A pipeline sink that keeps agentkeel's own Prometheus metrics current.

    Install it with ``agentkeel.configure(sinks=[monitoring.metrics_sink])``; it runs
    on the pipeline's writer thread and never raises there (a bug is counted as an
    internal error, and raised only in strict mode).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        p = require_prometheus()
        r = registry

        def counter(name: str, doc: str, labels: Sequence[str]) -> Any:
            return p.Counter(name, doc, labels, registry=r)

        def histogram(name: str, doc: str, labels: Sequence[str], buckets: Any) -> Any:
            return p.Histogram(name, doc, labels, registry=r, buckets=buckets)

        self.tool_calls = counter(
            "agentkeel_tool_calls", "Tool calls that ended, by tool and status.", ["tool", "status"]
        )
        self.tool_duration = histogram(
            "agentkeel_tool_call_duration_seconds",
            "Duration of tool calls.",
            ["tool", "status"],
            _TOOL_BUCKETS,
        )
        self.llm_calls = counter(
            "agentkeel_llm_calls", "LLM calls that ended, by model and status.", ["model", "status"]
        )
        self.llm_duration = histogram(
            "agentkeel_llm_call_duration_seconds", "Duration of LLM calls.", ["model"], _LLM_BUCKETS
        )
        self.llm_tokens = counter(
            "agentkeel_llm_tokens", "Tokens used by LLM calls (input, output).", ["model", "type"]
        )
        self.failures = counter(
            "agentkeel_failures",
            "Failures recorded, by category, severity and graph node.",
            ["category", "severity", "node"],
        )
        self.recoveries = counter(
            "agentkeel_failures_recovered", "Failures marked recovered, by category.", ["category"]
        )
        self.retries = counter(
            "agentkeel_retries",
            "Retry decisions, by operation and outcome (retry, gave_up).",
            ["operation", "outcome"],
        )
        self.timeouts = counter("agentkeel_timeouts", "Calls cut by a timeout.", ["operation"])
        self.fallbacks = counter("agentkeel_fallbacks", "Fallbacks taken.", ["operation"])
        self.breaker_transitions = counter(
            "agentkeel_circuit_breaker_transitions",
            "Circuit breaker state changes, by breaker and new state.",
            ["breaker", "state"],
        )
        self.breaker_rejections = counter(
            "agentkeel_circuit_breaker_rejections",
            "Calls refused by an open circuit breaker.",
            ["breaker"],
        )
        self.loops = counter("agentkeel_loops_detected", "Loops detected, by detector.", ["loop"])
        self.escalations = counter(
            "agentkeel_escalations", "Escalations to a person, by level.", ["level"]
        )
        self.chaos = counter(
            "agentkeel_chaos_faults", "Faults injected by chaos mode.", ["tool", "kind"]
        )
        self.runs = counter(
            "agentkeel_runs", "Runs that ended, by name and status.", ["name", "status"]
        )
        self.run_duration = histogram(
            "agentkeel_run_duration_seconds", "Duration of runs.", ["name"], _RUN_BUCKETS
        )
        self.alerts = counter(
            "agentkeel_alerts_raised",
            "Alerts raised, by component and severity.",
            ["component", "severity"],
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._series: dict[int, int] = {}
        self._lock = threading.Lock()
        self._breakers: dict[str, BreakerState] = {}
        self._pipelines: dict[str, ReportedPipeline] = {}
        self.events_observed = 0
        self._handlers: dict[str, Callable[[Event], None]] = {
            EventType.TOOL_CALL_END.value: self._tool_end,
            EventType.LLM_CALL_END.value: self._llm_end,
            EventType.FAILURE.value: self._failure,
            EventType.FAILURE_RECOVERED.value: self._recovered,
            EventType.RETRY.value: self._retry,
            EventType.TIMEOUT.value: self._by_name(self.timeouts),
            EventType.FALLBACK.value: self._by_name(self.fallbacks),
            EventType.CIRCUIT_OPENED.value: self._circuit,
            EventType.CIRCUIT_HALF_OPEN.value: self._circuit,
            EventType.CIRCUIT_CLOSED.value: self._circuit,
            EventType.CIRCUIT_REJECTED.value: self._by_name(self.breaker_rejections),
            EventType.LOOP_DETECTED.value: self._loop,
            EventType.ESCALATION_CREATED.value: self._escalation,
            EventType.CHAOS_INJECTED.value: self._chaos,
            EventType.AGENT_END.value: self._run_end,
            PIPELINE_STATS: self._pipeline_stats,
            ALERT_RAISED: self._alert,
        }

    @property
    def event_types(self) -> tuple[str, ...]:
        """The event types this sink reads (what a store replay needs to fetch)."""
        return tuple(self._handlers)

    def __call__(self, batch: Sequence[Event], /) -> None:
        handlers = self._handlers
        first_error: Exception | None = None
        for event in batch:
            handler = handlers.get(event.type)
            if handler is None:
                continue
            try:
                handler(event)
            except Exception as exc:  # noqa: BLE001 - one odd event must not cost the batch
                _internal.report_internal_error("monitoring.metrics_sink", exc, reraise=False)
                first_error = first_error or exc
        self.events_observed += len(batch)
        if first_error is not None and _internal.is_strict():
            raise first_error  # our tests must see the bug; users only get it counted

    # ------------------------------------------------------------------ state read
    def breaker_states(self) -> dict[str, BreakerState]:
        with self._lock:
            return dict(self._breakers)

    def reported_pipelines(self) -> dict[str, ReportedPipeline]:
        with self._lock:
            return dict(self._pipelines)

    # ------------------------------------------------------------------- handlers
    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                count = self._series.get(id(metric), 0)
                if count >= MAX_SERIES_PER_METRIC:
                    values = tuple(OTHER for _ in values)
                    key = (id(metric), values)
                else:
                    self._series[id(metric)] = count + 1
                child = self._children.get(key)
                if child is None:
                    child = metric.labels(*values)
                    self._children[key] = child
        return child

    def _by_name(self, metric: Any) -> Callable[[Event], None]:
        def handle(event: Event) -> None:
            self._child(metric, _label(event.name)).inc()

        return handle

    def _tool_end(self, event: Event) -> None:
        attrs = event.attributes
        tool = _label(event.name)
        status = _label(attrs.get("status"), "succeeded")
        self._child(self.tool_calls, tool, status).inc()
        duration_ms = _float(attrs.get("duration_ms"))
        if duration_ms is not None:
            self._child(self.tool_duration, tool, status).observe(duration_ms / 1000)

    def _llm_end(self, event: Event) -> None:
        attrs = event.attributes
        model = _label(
            attrs.get("gen_ai.request.model") or attrs.get("gen_ai.response.model") or event.name
        )
        self._child(self.llm_calls, model, _label(attrs.get("status"), "succeeded")).inc()
        duration_ms = _float(attrs.get("duration_ms"))
        if duration_ms is not None:
            self._child(self.llm_duration, model).observe(duration_ms / 1000)
        for kind in ("input", "output"):
            tokens = _float(attrs.get(f"gen_ai.usage.{kind}_tokens"))
            if tokens:
                self._child(self.llm_tokens, model, kind).inc(tokens)

    def _retry(self, event: Event) -> None:
        outcome = "gave_up" if event.attributes.get("giving_up") else "retry"
        self._child(self.retries, _label(event.name), outcome).inc()

    def _failure(self, event: Event) -> None:
        severity = (
            Severity(event.severity).name.lower()
            if 0 <= event.severity <= Severity.CRITICAL
            else str(event.severity)
        )
        node = _label(event.attributes.get("graph_node"), "none")
        self._child(self.failures, _label(event.category), severity, node).inc()

    def _recovered(self, event: Event) -> None:
        self._child(self.recoveries, _label(event.category)).inc()

    def _circuit(self, event: Event) -> None:
        state = CIRCUIT_STATES[event.type]
        name = _label(event.name)
        self._child(self.breaker_transitions, name, state).inc()
        with self._lock:
            known = self._breakers.get(name)
            if known is None or known.since <= event.timestamp:
                self._breakers[name] = BreakerState(
                    name, state, event.timestamp, dict(event.attributes)
                )

    def _loop(self, event: Event) -> None:
        kind = event.attributes.get("kind") or event.attributes.get("loop_type") or event.name
        self._child(self.loops, _label(kind)).inc()

    def _escalation(self, event: Event) -> None:
        level = event.attributes.get("level") or event.name
        self._child(self.escalations, _label(level)).inc()

    def _chaos(self, event: Event) -> None:
        kind = _label(event.attributes.get("kind"))
        self._child(self.chaos, _label(event.name), kind).inc()

    def _run_end(self, event: Event) -> None:
        name = _label(event.name)
        self._child(self.runs, name, _label(event.attributes.get("status"))).inc()
        duration_ms = _float(event.attributes.get("duration_ms"))
        if duration_ms is not None:
            self._child(self.run_duration, name).observe(duration_ms / 1000)

    def _pipeline_stats(self, event: Event) -> None:
        report = ReportedPipeline.from_event(event)
        with self._lock:
            known = self._pipelines.get(report.origin)
            if known is None or known.reported_at <= report.reported_at:
                self._pipelines[report.origin] = report

    def _alert(self, event: Event) -> None:
        attrs = event.attributes
        self._child(
            self.alerts, _label(attrs.get("component")), _label(attrs.get("severity"))
        ).inc()


class StoreFeed:
    """Feeds a sink with the events a store holds, then with new ones as they arrive.

    The first ``poll()`` reads every stored event of the sink's types (in pages,
    oldest first), so counters restart from the store's totals (``skip_to_end()``
    first to start from now); later calls read what came after.
    Several processes may write the store: the feed sees all of them.
    """

    def __init__(
        self,
        store: Store,
        sink: Callable[[Sequence[Event]], None],
        *,
        types: Sequence[str] | None = None,
        page_size: int = 2000,
    ) -> None:
        self.store = store
        self.sink = sink
        self.types = list(types) if types is not None else None
        self.page_size = page_size
        self.last_seq = 0
        self.events_fed = 0
        self.last_error: str | None = None

    def skip_to_end(self) -> None:
        """Start after the newest stored event (feed only what comes next)."""
        from agentkeel.monitoring._window import last_store_seq

        self.last_seq = last_store_seq(self.store)

    def poll(self, *, max_pages: int | None = None) -> int:
        """Feed the events stored since the last call; returns how many."""
        fed = 0
        pages = 0
        while max_pages is None or pages < max_pages:
            page = self.store.list_events(
                types=self.types, after_seq=self.last_seq, limit=self.page_size
            )
            if not page:
                break
            self.sink([stored.event for stored in page])
            self.last_seq = page[-1].store_seq
            fed += len(page)
            pages += 1
            if len(page) < self.page_size:
                break
        self.events_fed += fed
        return fed

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll until ``stop`` is set; store errors are remembered, not raised."""
        while not stop.wait(interval):
            try:
                self.poll()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a store outage must not end the feed
                self.last_error = f"{type(exc).__name__}: {exc}"
                _internal.report_internal_error("monitoring.store_feed", exc, reraise=False)
