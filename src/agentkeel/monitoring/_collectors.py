"""Metrics read at scrape time: pipeline, internal errors, breakers, health, alerts.

These are states owned by other parts (the pipeline's counters, the breaker
registry, the health table); copying them into gauges on every change would couple
those parts to Prometheus. A custom collector reads them when Prometheus asks.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agentkeel import _internal
from agentkeel.monitoring._deps import require_prometheus
from agentkeel.monitoring._live import live_breakers, live_pipeline, pipeline_origin
from agentkeel.monitoring._sink import MetricsSink, ReportedPipeline

BREAKER_STATES = ("closed", "half_open", "open")
ALERT_SEVERITIES = ("info", "warning", "critical")


class KeelCollector:
    """A prometheus collector (``collect``/``describe``) of agentkeel's live state."""

    def __init__(
        self,
        *,
        sink: MetricsSink,
        health: Callable[[], Mapping[str, bool]],
        alerts: Callable[[], Mapping[str, int]],
    ) -> None:
        require_prometheus()
        self._core = importlib.import_module("prometheus_client.core")
        self._sink = sink
        self._health = health
        self._alerts = alerts

    def describe(self) -> Iterator[Any]:
        # Names only, so the registry can refuse duplicates without a collection.
        yield from self._families().values()

    def collect(self) -> Iterator[Any]:
        families = self._families()
        self._pipelines(families)
        self._internal_errors(families)
        self._breakers(families)
        health = families["health"]
        for component, healthy in sorted(self._health().items()):
            health.add_metric([component], 1.0 if healthy else 0.0)
        alerts = self._alerts()
        for severity in ALERT_SEVERITIES:
            families["alerts"].add_metric([severity], float(alerts.get(severity, 0)))
        yield from families.values()

    def _families(self) -> dict[str, Any]:
        counter, gauge = self._core.CounterMetricFamily, self._core.GaugeMetricFamily
        o = ["origin"]
        return {
            "emitted": counter(
                "agentkeel_pipeline_events_emitted", "Events emitted into a pipeline.", labels=o
            ),
            "written": counter(
                "agentkeel_pipeline_events_written", "Events every sink acknowledged.", labels=o
            ),
            "dropped": counter(
                "agentkeel_pipeline_events_dropped",
                "Events a pipeline dropped, by reason.",
                labels=[*o, "reason"],
            ),
            "sink_errors": counter(
                "agentkeel_pipeline_sink_errors", "Sink calls that raised (retried).", labels=o
            ),
            "buffered": gauge(
                "agentkeel_pipeline_events_buffered", "Events waiting to be written.", labels=o
            ),
            "lag": gauge(
                "agentkeel_pipeline_lag_seconds",
                "Age of the oldest event not yet written.",
                labels=o,
            ),
            "reported": gauge(
                "agentkeel_pipeline_report_timestamp_seconds",
                "When these pipeline figures were read (live: now; else the last report).",
                labels=o,
            ),
            "internal": counter(
                "agentkeel_internal_errors",
                "agentkeel's own failures in this process, by where they happened.",
                labels=["where"],
            ),
            "breaker_state": gauge(
                "agentkeel_circuit_breaker_state",
                "1 for the state each circuit breaker is in (closed, half_open, open).",
                labels=["breaker", "state"],
            ),
            "breaker_calls": counter(
                "agentkeel_circuit_breaker_calls",
                "Calls through a circuit breaker of this process.",
                labels=["breaker"],
            ),
            "breaker_failed": counter(
                "agentkeel_circuit_breaker_failed_calls",
                "Failed calls through a circuit breaker of this process.",
                labels=["breaker"],
            ),
            "breaker_rate": gauge(
                "agentkeel_circuit_breaker_failure_rate",
                "Failure rate a circuit breaker of this process currently sees.",
                labels=["breaker"],
            ),
            "health": gauge(
                "agentkeel_component_healthy",
                "1 if a component last reported itself healthy, else 0.",
                labels=["component"],
            ),
            "alerts": gauge(
                "agentkeel_alerts_active", "Active alerts, by severity.", labels=["severity"]
            ),
        }

    def _pipelines(self, families: dict[str, Any]) -> None:
        reports: dict[str, ReportedPipeline] = self._sink.reported_pipelines()
        pipeline = live_pipeline()
        if pipeline is not None:
            s = pipeline.stats()
            origin = pipeline_origin(pipeline)
            reports[origin] = ReportedPipeline(
                origin=origin,
                reported_at=time.time(),
                emitted=s.emitted,
                written=s.written,
                buffered=s.buffered,
                dropped=s.dropped,
                dropped_by_reason=dict(s.dropped_by_reason),
                sink_errors=s.sink_errors,
                lag_seconds=s.lag_seconds,
            )
        for origin, r in sorted(reports.items()):
            families["emitted"].add_metric([origin], float(r.emitted))
            families["written"].add_metric([origin], float(r.written))
            for reason in sorted(set(r.dropped_by_reason) | {"buffer_full", "sink_failed"}):
                families["dropped"].add_metric(
                    [origin, reason], float(r.dropped_by_reason.get(reason, 0))
                )
            families["sink_errors"].add_metric([origin], float(r.sink_errors))
            families["buffered"].add_metric([origin], float(r.buffered))
            families["lag"].add_metric([origin], r.lag_seconds)
            families["reported"].add_metric([origin], r.reported_at)

    def _internal_errors(self, families: dict[str, Any]) -> None:
        for where, count in sorted(_internal.internal_error_counts().items()):
            families["internal"].add_metric([where], float(count))

    def _breakers(self, families: dict[str, Any]) -> None:
        states = {name: b.state for name, b in self._sink.breaker_states().items()}
        for name, breaker in live_breakers().items():
            states[name] = breaker.state  # this process's own registry is the truth
            if breaker.total_calls is not None:
                families["breaker_calls"].add_metric([name], float(breaker.total_calls))
            if breaker.failed_calls is not None:
                families["breaker_failed"].add_metric([name], float(breaker.failed_calls))
            if breaker.failure_rate is not None:
                families["breaker_rate"].add_metric([name], breaker.failure_rate)
        for name, state in sorted(states.items()):
            for candidate in BREAKER_STATES:
                families["breaker_state"].add_metric(
                    [name, candidate], 1.0 if state == candidate else 0.0
                )
