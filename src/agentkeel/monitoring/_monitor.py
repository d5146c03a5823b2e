"""The monitoring system: metrics, thresholds and alerts, and component health.

One object ties the parts together for an application::

    monitoring = get_monitoring_system()
    await monitoring.record_metric(name="cache_hit_rate", value=0.85,
                                   metric_type=MetricType.GAUGE, labels={"cache": "template"})
    monitoring.install()                 # agentkeel's own metrics, from the event stream
    print(await monitoring.export_prometheus_metrics())

Its prometheus registry is its own (never the global one), created on first use,
so health and alerts work even without the ``monitoring`` extra installed.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentkeel import _internal, _runtime
from agentkeel._clock import SYSTEM_CLOCK, Clock
from agentkeel._errors import ConfigurationError, KeelError
from agentkeel.monitoring._alerts import (
    Alert,
    AlertChange,
    AlertManager,
    AlertNotifier,
    AlertSeverity,
    EmitFn,
)
from agentkeel.monitoring._collectors import KeelCollector
from agentkeel.monitoring._deps import require_prometheus
from agentkeel.monitoring._health import ComponentHealth, HealthRegistry, HealthStatus
from agentkeel.monitoring._healthcheck import HealthReport
from agentkeel.monitoring._live import live_breakers, live_pipeline, pipeline_origin
from agentkeel.monitoring._metrics import (
    ChildCache,
    MetricsRecorder,
    MetricType,
    bad_value,
)
from agentkeel.monitoring._sink import MetricsSink, ReportedPipeline
from agentkeel.monitoring._thresholds import (
    Finding,
    Measurements,
    MonitoringThresholds,
    evaluate_thresholds,
)
from agentkeel.monitoring._window import breaker_states, pipeline_reports, summarize_window
from agentkeel.store import Store, keel_home
from agentkeel.store._derive import mask_url

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agentkeel.monitoring._http import MetricsServer
    from agentkeel.monitoring._system import ResourceSampler, SystemResources
    from agentkeel.pipeline import Pipeline

# Breakers whose last reported change is older than this are not judged by alerts.
BREAKER_MAX_AGE = 86_400.0
PIPELINE_REPORT_MAX_AGE = 3600.0
# Health checks that no threshold covers: the monitor alerts on them directly.
HEALTH_ALERT_CHECKS = ("store", "frameworks", "sampling")


class MonitoringSystem:
    """Metrics (Prometheus), thresholds and alerts, and component health.

    ``registry`` defaults to a new ``prometheus_client.CollectorRegistry`` of its own;
    ``store`` is where window summaries and breaker states are read (default: the
    process-wide store, if one is configured); ``emit`` is how alerts are stored:
    ``True`` (default) through :func:`agentkeel.emit`, a function with its signature,
    or ``None`` to keep them in memory only. Health and alerts work without the
    ``monitoring`` extra; metrics need it.
    """

    def __init__(
        self,
        *,
        registry: CollectorRegistry | None = None,
        thresholds: MonitoringThresholds | None = None,
        store: Store | None = None,
        clock: Clock = SYSTEM_CLOCK,
        notifiers: Iterable[AlertNotifier] = (),
        emit: EmitFn | bool | None = True,
    ) -> None:
        if thresholds is not None and not isinstance(thresholds, MonitoringThresholds):
            raise ConfigurationError(
                f"thresholds must be a MonitoringThresholds, got {thresholds!r}"
            )
        self.thresholds = thresholds if thresholds is not None else MonitoringThresholds()
        self._clock = clock
        self._store = store
        self._registry = registry
        self._registry_ready = False
        self._lock = threading.RLock()
        self._children: ChildCache = {}
        self._recorder = MetricsRecorder(lambda: self.registry, self._children)
        self._sink: MetricsSink | None = None
        self.health = HealthRegistry(clock=clock)
        store_alert: EmitFn | None = _runtime.emit if emit is True else emit or None
        self.alerts = AlertManager(
            dedup_window=self.thresholds.dedup_window_seconds,
            clock=clock,
            emit=store_alert,
            notifiers=notifiers,
        )
        self._sampler: ResourceSampler | None = None
        self._last_dropped: dict[str, int] = {}
        self._rule_totals: dict[str, tuple[float, float]] = {}

    # ------------------------------------------------------------------ registry
    @property
    def registry(self) -> CollectorRegistry:
        """The prometheus registry behind ``/metrics``, with agentkeel's own metrics."""
        if not self._registry_ready:
            with self._lock:
                if not self._registry_ready:
                    prometheus = require_prometheus()
                    registry = self._registry or prometheus.CollectorRegistry()
                    try:
                        sink = MetricsSink(registry)
                        registry.register(
                            KeelCollector(
                                sink=sink, health=self._health_flags, alerts=self._alert_counts
                            )
                        )
                    except ValueError as exc:
                        raise ConfigurationError(
                            f"this registry already holds agentkeel's metrics ({exc}): give "
                            "each MonitoringSystem its own registry"
                        ) from exc
                    self._registry, self._sink = registry, sink
                    self._registry_ready = True
        assert self._registry is not None  # set together with _registry_ready
        return self._registry

    @property
    def metrics_sink(self) -> MetricsSink:
        """The pipeline sink that turns events into agentkeel's metrics."""
        self.registry  # noqa: B018 - creates the sink with the registry
        assert self._sink is not None
        return self._sink

    def install(self, pipeline: Pipeline | None = None) -> MetricsSink:
        """Add :attr:`metrics_sink` to a pipeline (default: the process-wide one).

        Equivalent to ``agentkeel.configure(sinks=[monitoring.metrics_sink])`` without
        replacing the pipeline. Installing twice is harmless.
        """
        target = pipeline if pipeline is not None else _runtime.get_pipeline()
        sink = self.metrics_sink
        if any(s is sink for s in getattr(target, "sinks", ())):
            return sink
        add_sink = getattr(target, "add_sink", None)
        if add_sink is None:
            raise ConfigurationError(
                "this pipeline cannot take sinks after it is made: use "
                "agentkeel.configure(sinks=[monitoring.metrics_sink])"
            )
        add_sink(sink)
        return sink

    # ------------------------------------------------------------------- metrics
    async def record_metric(
        self,
        *,
        name: str,
        value: float,
        metric_type: MetricType | str,
        labels: Mapping[str, Any] | None = None,
        help_text: str = "",
        buckets: Sequence[float] | None = None,
    ) -> None:
        """Record one value: add it to a counter, set a gauge, observe it in a histogram.

        The first recording of ``name`` fixes its type and label names. Costs about
        a dict lookup more than prometheus_client's own ``child.inc()``.
        """
        self.record_metric_sync(
            name=name,
            value=value,
            metric_type=metric_type,
            labels=labels,
            help_text=help_text,
            buckets=buckets,
        )

    def record_metric_sync(
        self,
        *,
        name: str,
        value: float,
        metric_type: MetricType | str,
        labels: Mapping[str, Any] | None = None,
        help_text: str = "",
        buckets: Sequence[float] | None = None,
    ) -> None:
        """:meth:`record_metric` for synchronous code."""
        entry = self._children.get((name, tuple(labels.items())) if labels else (name, ()))
        if entry is not None and entry[0] == metric_type and buckets is None:
            try:
                entry[1](value)
            except (TypeError, ValueError) as exc:
                raise bad_value(name, entry[0], value) from exc
            return
        self._recorder.record(
            name=name,
            value=value,
            metric_type=metric_type,
            labels=labels,
            help_text=help_text,
            buckets=buckets,
        )

    async def export_prometheus_metrics(self) -> str:
        """Every metric in the Prometheus text format (what ``/metrics`` serves)."""
        return self.export_prometheus_metrics_sync()

    def export_prometheus_metrics_sync(self) -> str:
        prometheus = require_prometheus()
        text: bytes = prometheus.generate_latest(self.registry)
        return text.decode("utf-8")

    # ------------------------------------------------------------------- summary
    async def collect_all_metrics(self, time_window_minutes: float = 60) -> dict[str, Any]:
        """A summary of every subsystem over the last ``time_window_minutes``.

        Calls, failures, retries, breakers, events per second and latency
        percentiles come from the store; pipeline counters, breakers and internal
        errors of this process are read live. The store is read in the caller's
        thread: from an event loop, consider ``asyncio.to_thread(monitoring.
        collect_all_metrics_sync, 60)`` for long windows.
        """
        return self.collect_all_metrics_sync(time_window_minutes)

    def collect_all_metrics_sync(self, time_window_minutes: float = 60) -> dict[str, Any]:
        if (
            isinstance(time_window_minutes, bool)
            or not isinstance(time_window_minutes, int | float)
            or not math.isfinite(time_window_minutes)
            or time_window_minutes <= 0
        ):
            raise ConfigurationError(
                f"time_window_minutes must be a number above 0, got {time_window_minutes!r}"
            )
        started = time.perf_counter()
        now = self._clock.wall()
        result: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
            "time_window_minutes": time_window_minutes,
        }
        store, problem = self._resolve_store()
        result["store"] = {"url": mask_url(store.url) if store else None, "error": problem}
        breakers: dict[str, dict[str, Any]] = {}
        reports: dict[str, ReportedPipeline] = {}
        if store is not None:
            try:
                summary = summarize_window(store, minutes=time_window_minutes, now=now)
                result.update(summary.to_dict())
                breakers = {
                    n: {"state": b.state, "since": b.since, "source": "store"}
                    for n, b in breaker_states(store).items()
                }
                reports = pipeline_reports(store, since=now - PIPELINE_REPORT_MAX_AGE)
            except KeelError as exc:
                result["store"]["error"] = str(exc)
        for name, live in live_breakers().items():
            breakers[name] = {
                "state": live.state,
                "since": live.status.get("last_state_change_ts"),
                "source": "live",
                "total_calls": live.total_calls,
                "failed_calls": live.failed_calls,
                "failure_rate": live.failure_rate,
            }
        result.setdefault("circuit_breakers", {})["states"] = breakers
        reports.update(self._live_pipeline_report(now))
        result["pipeline"] = {origin: r.to_dict() for origin, r in sorted(reports.items())}
        result["internal_errors"] = _internal.internal_error_counts()
        result["alerts"] = self._alert_counts()
        result["health"] = {"overall_status": self.health.overall().value}
        result["collection_time_ms"] = (time.perf_counter() - started) * 1000
        return result

    # -------------------------------------------------------------------- health
    async def update_health_status(
        self,
        *,
        component: str,
        healthy: bool,
        status: HealthStatus | str | None = None,
        error_message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ComponentHealth:
        """Record what a component says about itself (see :class:`HealthStatus`)."""
        return self.update_health_status_sync(
            component=component,
            healthy=healthy,
            status=status,
            error_message=error_message,
            metadata=metadata,
        )

    def update_health_status_sync(
        self,
        *,
        component: str,
        healthy: bool,
        status: HealthStatus | str | None = None,
        error_message: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ComponentHealth:
        return self.health.update(
            component=component,
            healthy=healthy,
            status=status,
            error_message=error_message,
            metadata=metadata,
        )

    def get_monitoring_summary(self) -> dict[str, Any]:
        """Health per component and overall, active alerts, recorded metrics."""
        components = self.health.components()
        return {
            "timestamp": dt.datetime.fromtimestamp(self._clock.wall(), dt.UTC).isoformat(),
            "health": {
                "overall_status": self.health.overall().value,
                "components": {name: c.to_dict() for name, c in sorted(components.items())},
            },
            "alerts": {
                **self._alert_counts(),
                "active": len(self.alerts.active()),
                "resolved_last_24h": len(self.alerts.resolved(24)),
            },
            "metrics": {
                "recorded": sorted(d.name for d in self._recorder.definitions()),
                "events_observed": self._sink.events_observed if self._sink else 0,
            },
        }

    # -------------------------------------------------------------------- alerts
    def get_active_alerts(self, severity: AlertSeverity | str | None = None) -> list[Alert]:
        """Active alerts, most severe first (optionally only one severity)."""
        return self.alerts.active(severity)

    def get_resolved_alerts(self, hours: float = 24) -> list[Alert]:
        """Alerts resolved in the last ``hours``."""
        return self.alerts.resolved(hours)

    def add_notifier(self, notifier: AlertNotifier) -> None:
        self.alerts.add_notifier(notifier)

    def restore_alerts(self) -> int:
        """Load alert state from the store (so a restarted monitor does not re-raise)."""
        from agentkeel.monitoring._window import alert_events

        store, _ = self._resolve_store()
        return 0 if store is None else self.alerts.restore(alert_events(store))

    async def check_thresholds(
        self,
        *,
        measurements: Measurements | None = None,
        system: bool = True,
    ) -> list[AlertChange]:
        """Measure, compare with the thresholds, raise and resolve alerts."""
        return self.evaluate(measurements=measurements, system=system)

    def evaluate(
        self,
        *,
        measurements: Measurements | None = None,
        system: bool = True,
        resources: SystemResources | None = None,
    ) -> list[AlertChange]:
        """:meth:`check_thresholds` for synchronous code; returns what changed."""
        measured = (
            measurements
            if measurements is not None
            else self.measure(system=system, resources=resources)
        )
        return self._apply(evaluate_thresholds(self.thresholds, measured))

    def alert_on_health(
        self, report: HealthReport, *, checks: Sequence[str] = HEALTH_ALERT_CHECKS
    ) -> list[AlertChange]:
        """Alerts for health checks that thresholds do not cover (by default the store,
        frameworks and sampling): degraded is a warning, unhealthy critical."""
        findings = []
        for check in report.checks:
            if check.name not in checks or check.status is HealthStatus.UNKNOWN:
                continue
            severity = {
                HealthStatus.DEGRADED: AlertSeverity.WARNING,
                HealthStatus.UNHEALTHY: AlertSeverity.CRITICAL,
            }.get(check.status)
            findings.append(
                Finding(
                    "health",
                    check.name,
                    severity,
                    f"{check.name}: {check.summary}",
                    None,
                    float(check.status.rank),
                )
            )
        return self._apply(findings)

    def _apply(self, findings: Iterable[Finding]) -> list[AlertChange]:
        changes: list[AlertChange] = []
        for finding in findings:
            if finding.severity is None:
                resolved = self.alerts.resolve(
                    finding.component, finding.name, actual_value=finding.actual_value
                )
                if resolved is not None:
                    changes.append(AlertChange("resolved", resolved))
                continue
            before = {a.key: a for a in self.alerts.active()}.get((finding.component, finding.name))
            alert = self.alerts.raise_alert(
                component=finding.component,
                name=finding.name,
                severity=finding.severity,
                message=finding.message,
                threshold=finding.threshold,
                actual_value=finding.actual_value,
            )
            if before is None:
                action = "raised"
            elif before.severity is not alert.severity:
                action = "changed"
            else:
                action = "repeated"
            changes.append(AlertChange(action, alert))
        return changes

    def measure(
        self, *, system: bool = True, resources: SystemResources | None = None
    ) -> Measurements:
        """Gather what the thresholds judge: the store's window, live state, resources."""
        now = self._clock.wall()
        t = self.thresholds
        values: dict[str, Any] = {}
        store, _ = self._resolve_store()
        breakers: dict[str, str] = {}
        reports: dict[str, ReportedPipeline] = {}
        if store is not None:
            try:
                summary = summarize_window(store, minutes=t.window_seconds / 60, now=now)
                calls = summary.calls
                values.update(
                    calls=calls.calls,
                    error_rate=calls.failed / calls.calls if calls.calls else None,
                    avg_latency_ms=sum(calls.durations) / len(calls.durations)
                    if calls.durations
                    else None,
                    p95_latency_ms=summary.to_dict()["calls"]["p95_latency_ms"],
                    runs_finished=summary.runs_finished,
                    run_failure_rate=summary.run_failure_rate,
                    failures=summary.failures,
                    recovery_rate=summary.recovery_rate if summary.failures else None,
                    loops_detected=summary.loops,
                )
                breakers = {
                    n: b.state
                    for n, b in breaker_states(store, since=now - BREAKER_MAX_AGE).items()
                }
                reports = pipeline_reports(store, since=now - PIPELINE_REPORT_MAX_AGE)
            except KeelError as exc:
                _internal.report_internal_error("monitoring.measure", exc, reraise=False)
        if self._sink is not None:
            breakers.update({n: b.state for n, b in self._sink.breaker_states().items()})
        breakers.update({n: b.state for n, b in live_breakers().items()})
        reports.update(self._live_pipeline_report(now))
        if reports:
            values["pipeline_lag_seconds"] = max(r.lag_seconds for r in reports.values())
            dropped = 0
            for origin, r in reports.items():
                dropped += max(0, r.dropped - self._last_dropped.get(origin, r.dropped))
                self._last_dropped[origin] = r.dropped
            values["dropped_events"] = dropped
        if system:
            sample = resources if resources is not None else self._sample_resources()
            if sample is not None:
                values["memory_mb"] = sample.rss_mb
                values["cpu_percent"] = sample.cpu_percent
        values["disk_free_percent"] = _disk_free_percent()
        values["metrics"] = self._rule_values()
        return Measurements(breakers=breakers, **values)

    # ------------------------------------------------------------------- serving
    def serve(self, *, host: str = "127.0.0.1", port: int = 9464) -> MetricsServer:
        """Serve ``/metrics`` and ``/health`` from this process on a daemon thread.

        Loopback by default; ``host="0.0.0.0"`` exposes it to the network. ``port=0``
        picks a free port (see ``server.port``).
        """
        from agentkeel.monitoring._http import MetricsServer

        def health() -> tuple[int, dict[str, Any]]:
            summary = self.get_monitoring_summary()
            status = HealthStatus.parse(summary["health"]["overall_status"])
            return (503 if status is HealthStatus.UNHEALTHY else 200), summary["health"]

        registry = self.registry  # fails here, not on the first scrape, without the extra
        return MetricsServer(metrics=lambda: registry, health=health, host=host, port=port).start()

    # ------------------------------------------------------------------- helpers
    def _resolve_store(self) -> tuple[Store | None, str | None]:
        if self._store is not None:
            return self._store, None
        if _runtime._pipeline is None and os.environ.get("KEEL_STORE", "").lower() == "none":
            return None, "no store is configured"
        try:
            return _runtime.get_store(), None
        except KeelError as exc:
            return None, str(exc)

    def _live_pipeline_report(self, now: float) -> dict[str, ReportedPipeline]:
        pipeline = live_pipeline()
        if pipeline is None:
            return {}
        s = pipeline.stats()
        origin = pipeline_origin(pipeline)
        return {
            origin: ReportedPipeline(
                origin,
                now,
                s.emitted,
                s.written,
                s.buffered,
                s.dropped,
                dict(s.dropped_by_reason),
                s.sink_errors,
                s.lag_seconds,
            )
        }

    def _sample_resources(self) -> SystemResources | None:
        try:
            if self._sampler is None:
                from agentkeel.monitoring._system import ResourceSampler

                self._sampler = ResourceSampler()
            return self._sampler.sample()
        except ConfigurationError:
            return None  # psutil is not installed: resources are simply not judged

    def _rule_values(self) -> dict[str, float | None]:
        values: dict[str, float | None] = {}
        for rule in self.thresholds.metric_rules():
            found = self._recorder.samples(rule.metric)
            if found is None:
                continue
            definition, samples = found
            if definition.metric_type is MetricType.GAUGE:
                points = [s.value for s in samples if math.isfinite(s.value)]
                if points:
                    values[rule.metric] = max(points) if rule.above else min(points)
                continue
            if definition.metric_type is MetricType.HISTOGRAM:
                total = sum(s.value for s in samples if s.name.endswith("_sum"))
                count = sum(s.value for s in samples if s.name.endswith("_count"))
            else:
                total = sum(s.value for s in samples if s.name.endswith("_total"))
                count = 1.0
            last_total, last_count = self._rule_totals.get(rule.metric, (0.0, 0.0))
            self._rule_totals[rule.metric] = (total, count)
            if definition.metric_type is MetricType.COUNTER:
                values[rule.metric] = total - last_total
            elif count > last_count:
                values[rule.metric] = (total - last_total) / (count - last_count)
        return values

    def _health_flags(self) -> dict[str, bool]:
        return {name: c.healthy for name, c in self.health.components().items()}

    def _alert_counts(self) -> dict[str, int]:
        counts = {severity.value: 0 for severity in AlertSeverity}
        for alert in self.alerts.active():
            counts[alert.severity.value] += 1
        return counts


def _disk_free_percent() -> float | None:
    home = keel_home()
    for candidate in (home, *home.absolute().parents):
        if candidate.exists():
            usage = shutil.disk_usage(candidate)
            return 100.0 * usage.free / usage.total if usage.total else None
    return None


_system: MonitoringSystem | None = None
_system_lock = threading.Lock()


def get_monitoring_system() -> MonitoringSystem:
    """The process-wide monitoring system, created with the defaults on first use."""
    global _system  # noqa: PLW0603 - the documented process-wide instance
    system = _system
    if system is None:
        with _system_lock:
            if _system is None:
                _system = MonitoringSystem()
            system = _system
    return system


def set_monitoring_system(system: MonitoringSystem | None) -> MonitoringSystem | None:
    """Replace the process-wide monitoring system (None: a fresh one on next use).

    Returns the previous one. For applications that configure their own thresholds
    or registry, and for tests.
    """
    global _system
    if system is not None and not isinstance(system, MonitoringSystem):
        raise ConfigurationError(f"expected a MonitoringSystem, got {system!r}")
    with _system_lock:
        previous, _system = _system, system
    return previous
