"""The health check behind ``keel health``: can agentkeel do its job, and how are
the agents doing?

Checks, in order: the store (reachable, schema current, answers a query), the event
pipelines (drops, lag), the circuit breakers, recent failures, active alerts, disk
space, framework integrations and sampling. Breakers, pipelines and alerts live in
the agents' processes, so the check reads what those processes stored: the latest
``circuit.*`` event per breaker, the latest ``pipeline.stats`` report per process,
the ``alert.*`` events. What this process holds itself (a pipeline, a breaker
registry) is read live and wins.

The overall status is the worst check's: an unreachable store or a full disk is
*unhealthy* (exit 2), an open breaker, dropped events or a high error rate
*degraded* (exit 1). A check that cannot be made is *unknown* and counts for nothing.
"""

from __future__ import annotations

import importlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from agentkeel import _internal
from agentkeel._errors import ConfigurationError, KeelError
from agentkeel.monitoring import _validate
from agentkeel.monitoring._alerts import AlertManager, AlertSeverity
from agentkeel.monitoring._health import HealthStatus
from agentkeel.monitoring._live import live_breakers, live_pipeline, pipeline_origin
from agentkeel.monitoring._sink import ReportedPipeline
from agentkeel.monitoring._thresholds import (
    Measurements,
    MonitoringThresholds,
    evaluate_thresholds,
)
from agentkeel.monitoring._window import (
    alert_events,
    breaker_states,
    pipeline_reports,
    summarize_window,
)
from agentkeel.store import Store, keel_home, open_store, resolve_store_url
from agentkeel.store._derive import mask_url

HEALTHY, DEGRADED, UNHEALTHY, UNKNOWN = (
    HealthStatus.HEALTHY,
    HealthStatus.DEGRADED,
    HealthStatus.UNHEALTHY,
    HealthStatus.UNKNOWN,
)
# A process's pipeline report older than this says nothing about now.
PIPELINE_REPORT_MAX_AGE = 3600.0


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """The result of one check: its status, a one-line summary, details, advice."""

    name: str
    status: HealthStatus
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    recommendations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "summary": self.summary,
            "details": self.details,
            "recommendations": list(self.recommendations),
        }


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Every check, the overall status, and what to do about it."""

    status: HealthStatus
    checks: tuple[HealthCheck, ...]
    store_url: str
    timestamp: float

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    @property
    def recommendations(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for check in self.checks:
            for advice in check.recommendations:
                seen.setdefault(advice, None)
        return tuple(seen)

    @property
    def reason(self) -> str:
        """Why the status is what it is: the summaries of the worst checks."""
        if self.status is HEALTHY:
            return "all checks passed"
        worst = [c for c in self.checks if c.status is self.status]
        return "; ".join(f"{c.name}: {c.summary}" for c in worst)

    def check(self, name: str) -> HealthCheck:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "timestamp": self.timestamp,
            "store": self.store_url,
            "checks": {c.name: c.to_dict() for c in self.checks},
            "recommendations": list(self.recommendations),
        }


def run_health_check(
    store_url: str | None = None,
    *,
    home: str | os.PathLike[str] | None = None,
    thresholds: MonitoringThresholds | None = None,
    window: float | timedelta = 3600.0,
    breaker_max_age: float | timedelta = 86_400.0,
    now: float | None = None,
) -> HealthReport:
    """Run every check against the store at ``store_url`` (default: ``$KEEL_STORE``,
    else SQLite under ``home``/``$KEEL_HOME``).

    ``window`` is how far back failures count; breakers whose last reported change
    is older than ``breaker_max_age`` are listed as stale and do not degrade.
    """
    t = thresholds if thresholds is not None else MonitoringThresholds()
    window_s = _validate.duration(window, "window")
    max_age = _validate.duration(breaker_max_age, "breaker_max_age")
    now = time.time() if now is None else now
    store_check, store, url = _check_store(store_url, home)
    checks = [store_check]
    if store is None:
        fresh = store_check.status is HEALTHY
        why_not = "nothing recorded yet" if fresh else "skipped: the store cannot be read"
    else:
        why_not = ""
    try:
        for name, check in (
            ("pipeline", lambda s: _check_pipeline(s, now, t)),
            ("circuit_breakers", lambda s: _check_breakers(s, now, max_age)),
            ("failures", lambda s: _check_failures(s, now, t, window_s)),
            ("alerts", _check_alerts),
        ):
            checks.append(_guarded(name, check, store, why_not))
    finally:
        if store is not None:
            store.close()
    checks.append(_guarded("disk", lambda _s: _check_disk(home, t), None, ""))
    checks.append(_guarded("frameworks", lambda _s: _check_frameworks(), None, ""))
    checks.append(_guarded("sampling", lambda _s: _check_sampling(), None, ""))
    status = HealthStatus.worst(c.status for c in checks)
    return HealthReport(status=status, checks=tuple(checks), store_url=url, timestamp=now)


def _guarded(
    name: str,
    check: Callable[[Store | None], HealthCheck],
    store: Store | None,
    why_not: str,
) -> HealthCheck:
    """Run one check; a store error fails only that check, a bug is reported."""
    # Pipelines and breakers are also read live from this process; the rest needs the store.
    if why_not and name in {"failures", "alerts"}:
        return HealthCheck(name, UNKNOWN, why_not)
    try:
        return check(store)
    except KeelError as exc:
        return HealthCheck(
            name,
            UNHEALTHY,
            f"the store failed while reading: {exc}",
            recommendations=("Check the store: it answered the first query but not this one.",),
        )
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        _internal.report_internal_error(f"monitoring.health.{name}", exc)
        return HealthCheck(name, UNKNOWN, f"the check itself failed: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------- store
def _check_store(url: str | None, home: Any) -> tuple[HealthCheck, Store | None, str]:
    """The store check, and the open store when the other checks can read it."""
    try:
        resolved = resolve_store_url(url, home=home)
    except ConfigurationError as exc:
        advice = "Fix --store or KEEL_STORE: " + str(exc)
        return HealthCheck("store", UNHEALTHY, str(exc), recommendations=(advice,)), None, url or ""
    shown = mask_url(resolved)
    details: dict[str, Any] = {"url": shown, "backend": resolved.split("://", 1)[0]}
    early = _check_sqlite_file(resolved, details) if resolved.startswith("sqlite:///") else None
    if early is not None:
        return early, None, shown
    started = time.perf_counter()
    try:
        store = open_store(resolved, migrate=False)
    except KeelError as exc:
        advice = f"Make the store at {shown} reachable (is the server running? the URL right?)"
        return (
            HealthCheck("store", UNHEALTHY, f"store unreachable: {exc}", details, (advice,)),
            None,
            shown,
        )
    try:
        problem = _query_store(store, details)
    except KeelError as exc:
        problem = HealthCheck(
            "store",
            UNHEALTHY,
            f"store opened but does not answer: {exc}",
            details,
            (f"Check the store at {shown}: it accepted a connection but failed a query.",),
        )
    if problem is not None:
        store.close()
        return problem, None, shown
    details["query_ms"] = round((time.perf_counter() - started) * 1000, 2)
    summary = f"{details['backend']} store answers ({details['events']} events)"
    return HealthCheck("store", HEALTHY, summary, details), store, shown


def _check_sqlite_file(url: str, details: dict[str, Any]) -> HealthCheck | None:
    """A verdict without opening the file: unwritable, or not created yet."""
    path = Path(url[len("sqlite:///") :])
    details["path"] = str(path)
    writable = path if path.exists() else _existing_ancestor(path.parent)
    if not os.access(writable, os.W_OK):
        return HealthCheck(
            "store",
            UNHEALTHY,
            f"{writable} is not writable: agents cannot record events",
            details,
            (f"Give this user write access to {writable}, or set KEEL_HOME elsewhere.",),
        )
    if not path.exists():
        summary = f"no database yet at {path}: it is created when an agent first records"
        return HealthCheck("store", HEALTHY, summary, details)
    return None


def _query_store(store: Store, details: dict[str, Any]) -> HealthCheck | None:
    """Schema current and a query answered (None), or why the store cannot be read."""
    schema = store.schema_status()
    details["schema_version"] = schema.current
    details["schema_latest"] = schema.latest
    if not schema.up_to_date:
        return HealthCheck(
            "store",
            DEGRADED,
            f"schema version {schema.current} of {schema.latest}: agents cannot write "
            "until it is upgraded",
            details,
            ("Run `keel db upgrade` to apply the pending migrations.",),
        )
    details["events"] = store.count_events()
    store.list_runs(limit=1)
    return None


def _existing_ancestor(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")


# ------------------------------------------------------------------- pipeline
def _check_pipeline(store: Store | None, now: float, t: MonitoringThresholds) -> HealthCheck:
    reports: dict[str, ReportedPipeline] = {}
    if store is not None:
        reports.update(pipeline_reports(store, since=now - PIPELINE_REPORT_MAX_AGE))
    pipeline = live_pipeline()
    if pipeline is not None and pipeline.stats().emitted > 0:
        s = pipeline.stats()
        origin = pipeline_origin(pipeline)
        reports[origin] = ReportedPipeline(
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
    if not reports:
        return HealthCheck(
            "pipeline",
            UNKNOWN,
            "no pipeline statistics reported in the last hour (agents report them with "
            "agentkeel.monitoring.report_pipeline_stats())",
        )
    problems: list[str] = []
    advice: list[str] = []
    for origin, r in sorted(reports.items()):
        if r.dropped:
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(r.dropped_by_reason.items()) if v)
            problems.append(f"process {origin} dropped {r.dropped} events ({reasons})")
            if r.dropped_by_reason.get("sink_failed"):
                advice.append("Events were lost because a sink failed: check the store's health.")
            if r.dropped_by_reason.get("buffer_full"):
                advice.append(
                    "Events were dropped for lack of room: raise agentkeel.configure(capacity=...)"
                    " or make the store faster."
                )
        limit = t.max_pipeline_lag_seconds
        if limit is not None and r.lag_seconds > limit:
            problems.append(f"process {origin} lags {r.lag_seconds:.1f} s behind (limit {limit} s)")
            advice.append("The pipeline lags: the store writes too slowly for the event rate.")
    details = {"processes": {o: r.to_dict() for o, r in sorted(reports.items())}}
    if problems:
        return HealthCheck("pipeline", DEGRADED, "; ".join(problems), details, tuple(advice))
    total = sum(r.emitted for r in reports.values())
    summary = f"{len(reports)} process(es) reported, {total} events emitted, none dropped"
    return HealthCheck("pipeline", HEALTHY, summary, details)


# ----------------------------------------------------------- circuit breakers
def _check_breakers(store: Store | None, now: float, max_age: float) -> HealthCheck:
    rows: dict[str, dict[str, Any]] = {}
    if store is not None:
        for name, state in breaker_states(store).items():
            a = state.attributes
            failure_rate = a.get("failure_rate")
            rows[name] = {
                "state": state.state,
                "since": state.since,
                "source": "store",
                "stale": now - state.since > max_age,
                "calls": a.get("calls"),
                "failures": None,
                "success_rate": 1 - failure_rate if isinstance(failure_rate, int | float) else None,
            }
    for name, live in live_breakers().items():
        rows[name] = {
            "state": live.state,
            "since": live.status.get("last_state_change_ts"),
            "source": "live",
            "stale": False,
            "calls": live.total_calls,
            "failures": live.failed_calls,
            "success_rate": None if live.failure_rate is None else 1 - live.failure_rate,
        }
    if not rows:
        return HealthCheck("circuit_breakers", HEALTHY, "no circuit breakers reported")
    current = {n: r for n, r in rows.items() if not r["stale"]}
    opened = sorted(n for n, r in current.items() if r["state"] == "open")
    half = sorted(n for n, r in current.items() if r["state"] == "half_open")
    counts = ", ".join(
        f"{sum(1 for r in current.values() if r['state'] == s)} {s}"
        for s in ("open", "half_open", "closed")
    )
    stale = len(rows) - len(current)
    summary = f"{len(rows)} breaker(s): {counts}" + (f", {stale} stale" if stale else "")
    advice: list[str] = []
    if opened:
        summary += f"; open: {', '.join(opened)}"
        advice.append(
            f"Circuit breakers open: {', '.join(opened)} - check the services behind them; "
            "a breaker closes after a successful trial call."
        )
    if half:
        summary += f"; half-open: {', '.join(half)}"
        advice.append(f"Circuit breakers testing recovery (half-open): {', '.join(half)}.")
    status = DEGRADED if opened or half else HEALTHY
    return HealthCheck("circuit_breakers", status, summary, {"breakers": rows}, tuple(advice))


# ------------------------------------------------------------------- failures
def _check_failures(
    store: Store | None, now: float, t: MonitoringThresholds, window: float
) -> HealthCheck:
    if store is None:
        return HealthCheck("failures", UNKNOWN, "no store")
    summary = summarize_window(store, minutes=window / 60, now=now)
    calls = summary.calls
    # Only the call and run figures are measured here, so only those checks judge.
    measured = Measurements(
        calls=calls.calls,
        error_rate=calls.failed / calls.calls if calls.calls else None,
        avg_latency_ms=sum(calls.durations) / len(calls.durations) if calls.durations else None,
        p95_latency_ms=summary.to_dict()["calls"]["p95_latency_ms"],
        runs_finished=summary.runs_finished,
        run_failure_rate=summary.run_failure_rate,
        failures=summary.failures,
        recovery_rate=summary.recovery_rate if summary.failures else None,
    )
    findings = [f for f in evaluate_thresholds(t, measured) if f.severity is not None]
    minutes = f"{window / 60:g} min"
    text = (
        f"last {minutes}: {summary.runs_finished} run(s) ended ({summary.runs_failed} failed), "
        f"{calls.calls} call(s) ({calls.failed} failed), {summary.failures} failure(s) "
        f"recorded ({summary.recovery_rate:.0f}% recovered)"
    )
    details = summary.to_dict()
    if findings:
        advice = tuple(
            f"{f.message[0].upper()}{f.message[1:]}: see `keel failures` for the categories."
            for f in findings
        )
        return HealthCheck("failures", DEGRADED, text, details, advice)
    return HealthCheck("failures", HEALTHY, text, details)


# --------------------------------------------------------------------- alerts
def _check_alerts(store: Store | None) -> HealthCheck:
    manager = AlertManager(dedup_window=0)
    if store is not None:
        manager.restore(alert_events(store))
    active = manager.active()
    critical = [a for a in active if a.severity is AlertSeverity.CRITICAL]
    details = {"active": [a.to_dict() for a in active]}
    if not active:
        return HealthCheck("alerts", HEALTHY, "no active alerts", details)
    text = f"{len(active)} active alert(s), {len(critical)} critical"
    if critical:
        first = critical[0]
        return HealthCheck(
            "alerts",
            DEGRADED,
            f"{text}: {first.component}: {first.message}",
            details,
            ("Look at the critical alerts (keel health --json lists them).",),
        )
    return HealthCheck("alerts", HEALTHY, text, details)


# ----------------------------------------------------------------------- disk
def _check_disk(home: Any, t: MonitoringThresholds) -> HealthCheck:
    where = _existing_ancestor(keel_home(home))
    usage = shutil.disk_usage(where)
    free_pct = 100.0 * usage.free / usage.total if usage.total else 0.0
    details = {
        "path": str(where),
        "free_gb": round(usage.free / 1e9, 2),
        "total_gb": round(usage.total / 1e9, 2),
        "free_percent": round(free_pct, 2),
    }
    text = f"{free_pct:.1f}% free ({usage.free / 1e9:.1f} GB) at {where}"
    critical, warning = t.disk_free_critical_percent, t.disk_free_warning_percent
    if critical is not None and free_pct < critical:
        advice = f"Free disk space at {where}: agents can no longer record reliably."
        return HealthCheck("disk", UNHEALTHY, text, details, (advice,))
    if warning is not None and free_pct < warning:
        advice = f"Disk space at {where} is low: free some, or rotate logs and old runs."
        return HealthCheck("disk", DEGRADED, text, details, (advice,))
    return HealthCheck("disk", HEALTHY, text, details)


# --------------------------------------------------------- frameworks, sampling
def _check_frameworks() -> HealthCheck:
    """Installed frameworks by version (no imports: a probe must be quick), and the
    health of the instrumentors running in this process."""
    from agentkeel.integrations import get_compatibility_manager, get_instrumentors

    matrix = get_compatibility_manager().get_framework_matrix(import_features=False)
    instrumentors = [i.get_health_status() for i in get_instrumentors() if i.is_instrumented]
    incompatible = [name for name, row in matrix.items() if row["status"] == "incompatible"]
    unwell = [
        f"{h['framework']} instrumentor {h['state']}" for h in instrumentors if not h["is_healthy"]
    ]
    available = [name for name, row in matrix.items() if row["status"] == "available"]
    text = f"{len(available)} of {len(matrix)} framework(s) available" + (
        f" ({', '.join(available)})" if available else ""
    )
    troubles = [f"{name} incompatible" for name in incompatible] + unwell
    details: dict[str, Any] = {"frameworks": matrix, "instrumentors": instrumentors}
    if troubles:
        advice = [f"{name}: {matrix[name]['error_message']}" for name in incompatible] + [
            f"{t}: see its last_error in the details" for t in unwell
        ]
        return HealthCheck(
            "frameworks", DEGRADED, f"{text}; {', '.join(troubles)}", details, tuple(advice)
        )
    return HealthCheck("frameworks", HEALTHY, text, details)


# The seed's limit: sampling that costs more than this per event is too expensive.
MAX_SAMPLING_OVERHEAD_MS = 10.0


def _check_sampling() -> HealthCheck:
    try:
        observability = importlib.import_module("agentkeel.observability")
        manager = observability.get_sampling_manager()
    except (ImportError, AttributeError):
        return HealthCheck(
            "sampling", UNKNOWN, "adaptive sampling is not available in this version"
        )
    stats = dict(manager.get_sampling_statistics())
    overhead = float(stats.get("overhead_per_event_ms") or 0.0)
    rate = float(stats.get("sampling_rate") or 0.0)
    text = (
        f"strategy {stats.get('strategy')}, rate {rate:.0%}, {stats.get('total_events', 0)} "
        f"events in this process, {overhead:.3f} ms overhead per event"
    )
    if overhead > MAX_SAMPLING_OVERHEAD_MS:
        advice = ("High monitoring overhead detected: lower the sampling rate.",)
        return HealthCheck("sampling", DEGRADED, text, stats, advice)
    return HealthCheck("sampling", HEALTHY, text, stats)
