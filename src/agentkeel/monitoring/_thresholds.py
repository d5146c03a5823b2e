"""Thresholds, and the findings they give for a set of measurements.

Each limit is the *warning* level; the *critical* level is ``critical_factor`` times
further (double, by default), except for the pairs given explicitly (disk space and
the metric rules, whose names come from the seed guides: ``template_load_ms_warning``
and ``_critical`` …). ``None`` turns a check off. Rates need ``min_calls`` calls (or
runs) in the window before they are judged, so one failed call at 3 a.m. is not a
100% error rate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from agentkeel._errors import ConfigurationError
from agentkeel.monitoring import _validate
from agentkeel.monitoring._alerts import AlertSeverity


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricRule:
    """A threshold on a metric recorded with ``record_metric``.

    Gauges are judged by their worst current value over all label sets; histograms
    by the mean of what was observed since the previous evaluation; counters by how
    much they grew since then. ``above=False`` alerts when the value falls *below*.
    """

    metric: str
    warning: float | None = None
    critical: float | None = None
    above: bool = True
    component: str = "metrics"

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ConfigurationError(f"a metric rule needs a metric name, got {self.metric!r}")
        _validate.non_negative(self.warning, f"warning of rule {self.metric!r}")
        _validate.non_negative(self.critical, f"critical of rule {self.metric!r}")
        if self.warning is None and self.critical is None:
            raise ConfigurationError(
                f"the rule on {self.metric!r} has neither warning nor critical: give one"
            )
        if self.warning is not None and self.critical is not None:
            wrong = self.critical < self.warning if self.above else self.critical > self.warning
            if wrong:
                direction = "at or above" if self.above else "at or below"
                raise ConfigurationError(
                    f"the rule on {self.metric!r} alerts when the value is "
                    f"{'above' if self.above else 'below'} a level, so critical "
                    f"({self.critical}) must be {direction} warning ({self.warning})"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitoringThresholds:
    """When to alert. Every field is optional; ``None`` switches that check off.

    Rates are fractions (0.1 = 10%) except ``min_recovery_rate``, a percentage like
    the tracker's ``recovery_rate``. ``error_rate`` is failed tool and LLM calls over
    all of them; ``failure_rate`` is failed runs over finished runs.
    """

    max_error_rate: float | None = 0.1
    max_failure_rate: float | None = 0.25
    min_recovery_rate: float | None = None
    max_response_time_ms: float | None = 5000.0
    max_p95_latency_ms: float | None = 10_000.0
    max_memory_mb: float | None = 1024.0
    max_cpu_percent: float | None = 90.0
    max_pipeline_lag_seconds: float | None = 30.0
    alert_on_dropped_events: bool = True
    disk_free_warning_percent: float | None = 5.0
    disk_free_critical_percent: float | None = 1.0
    alert_on_breaker_open: bool = True
    alert_on_loop_detected: bool = True
    critical_factor: float = 2.0
    min_calls: int = 10
    window: float | timedelta = 300.0
    dedup_window: float | timedelta = 300.0
    # The seed guide's thresholds, for the metrics its subsystems record.
    template_load_ms_warning: float | None = None
    template_load_ms_critical: float | None = None
    cache_hit_rate_warning: float | None = None
    cache_hit_rate_critical: float | None = None
    pattern_precision_warning: float | None = None
    pattern_precision_critical: float | None = None
    rules: Sequence[MetricRule] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("max_error_rate", "max_failure_rate"):
            _validate.fraction(getattr(self, name), name)
        for name in (
            "min_recovery_rate",
            "max_response_time_ms",
            "max_p95_latency_ms",
            "max_memory_mb",
            "max_cpu_percent",
            "max_pipeline_lag_seconds",
            "disk_free_warning_percent",
            "disk_free_critical_percent",
            "template_load_ms_warning",
            "template_load_ms_critical",
        ):
            _validate.non_negative(getattr(self, name), name)
        for name in (
            "min_recovery_rate",
            "disk_free_warning_percent",
            "disk_free_critical_percent",
        ):
            value = getattr(self, name)
            if value is not None and value > 100:
                raise ConfigurationError(f"{name} is a percentage (0-100), got {value!r}")
        for name in (
            "cache_hit_rate_warning",
            "cache_hit_rate_critical",
            "pattern_precision_warning",
            "pattern_precision_critical",
        ):
            _validate.fraction(getattr(self, name), name)
        if (
            isinstance(self.critical_factor, bool)
            or not isinstance(self.critical_factor, int | float)
            or not math.isfinite(self.critical_factor)
            or self.critical_factor < 1
        ):
            raise ConfigurationError(
                f"critical_factor must be a number >= 1 (2 means twice the warning level), "
                f"got {self.critical_factor!r}"
            )
        _validate.positive_int(self.min_calls, "min_calls")
        _validate.duration(self.window, "window")
        _validate.duration(self.dedup_window, "dedup_window", allow_zero=True)
        if isinstance(self.rules, MetricRule) or not all(
            isinstance(r, MetricRule) for r in self.rules
        ):
            raise ConfigurationError(f"rules must be a sequence of MetricRule, got {self.rules!r}")
        object.__setattr__(self, "rules", tuple(self.rules))
        disk_w, disk_c = self.disk_free_warning_percent, self.disk_free_critical_percent
        if disk_w is not None and disk_c is not None and disk_c > disk_w:
            raise ConfigurationError(
                f"disk_free_critical_percent ({disk_c}) must not be above "
                f"disk_free_warning_percent ({disk_w})"
            )
        self.metric_rules()  # the seed pairs are checked like any rule

    @property
    def window_seconds(self) -> float:
        return _validate.duration(self.window, "window")

    @property
    def dedup_window_seconds(self) -> float:
        return _validate.duration(self.dedup_window, "dedup_window", allow_zero=True)

    def metric_rules(self) -> tuple[MetricRule, ...]:
        """``rules`` plus those the seed-named fields describe."""
        seeded: list[MetricRule] = []
        pairs = (
            ("template_load_duration_ms", "template_cache", True, "template_load_ms"),
            ("cache_hit_rate", "template_cache", False, "cache_hit_rate"),
            ("pattern_precision", "pattern_feedback", False, "pattern_precision"),
        )
        for metric, component, above, prefix in pairs:
            warning = getattr(self, f"{prefix}_warning")
            critical = getattr(self, f"{prefix}_critical")
            if warning is not None or critical is not None:
                seeded.append(
                    MetricRule(
                        metric=metric,
                        warning=warning,
                        critical=critical,
                        above=above,
                        component=component,
                    )
                )
        return (*seeded, *self.rules)


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurements:
    """What one evaluation measured. ``None`` means "not measured": no judgement."""

    calls: int = 0
    error_rate: float | None = None
    avg_latency_ms: float | None = None
    p95_latency_ms: float | None = None
    runs_finished: int = 0
    run_failure_rate: float | None = None
    failures: int = 0
    recovery_rate: float | None = None
    loops_detected: int | None = None
    breakers: Mapping[str, str] = field(default_factory=dict)
    memory_mb: float | None = None
    cpu_percent: float | None = None
    pipeline_lag_seconds: float | None = None
    dropped_events: int | None = None
    disk_free_percent: float | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict of one check. ``severity`` None: within limits (resolves its alert)."""

    component: str
    name: str
    severity: AlertSeverity | None
    message: str
    threshold: float | None
    actual_value: float | None


def _judge(
    component: str,
    name: str,
    actual: float | None,
    *,
    warning: float | None,
    critical: float | None,
    what: str,
    unit: str = "",
    above: bool = True,
) -> Finding | None:
    """Compare one value with its warning and critical levels (either may be None)."""
    if actual is None or (warning is None and critical is None):
        return None

    def beyond(limit: float | None) -> bool:
        return limit is not None and (actual > limit if above else actual < limit)

    if beyond(critical):
        level, limit = AlertSeverity.CRITICAL, critical
    elif beyond(warning):
        level, limit = AlertSeverity.WARNING, warning
    else:
        shown = warning if warning is not None else critical
        message = f"{what} {_fmt(actual, unit)} is within limits"
        return Finding(component, name, None, message, shown, actual)
    assert limit is not None  # beyond() is False for a missing level
    side = "above" if above else "below"
    message = f"{what} is {_fmt(actual, unit)}, {side} the {level} level {_fmt(limit, unit)}"
    return Finding(component, name, level, message, limit, actual)


def _times(warning: float | None, factor: float) -> float | None:
    """The critical level of a maximum: ``factor`` times the warning (none for 0)."""
    return warning * factor if warning else None


def _fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.1%}"
    if unit == "pct":
        return f"{value:.1f}%"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".rstrip()


def evaluate_thresholds(t: MonitoringThresholds, m: Measurements) -> list[Finding]:
    """Judge the measurements; one Finding per check that had something to judge."""
    f = t.critical_factor
    enough_calls = m.calls >= t.min_calls
    found: list[Finding | None] = [
        _judge(
            "calls",
            "error_rate",
            m.error_rate if enough_calls else None,
            warning=t.max_error_rate,
            critical=_times(t.max_error_rate, f),
            what="error rate of tool and LLM calls",
            unit="%",
        ),
        _judge(
            "calls",
            "response_time_ms",
            m.avg_latency_ms if enough_calls else None,
            warning=t.max_response_time_ms,
            critical=_times(t.max_response_time_ms, f),
            what="mean call duration",
            unit="ms",
        ),
        _judge(
            "calls",
            "p95_latency_ms",
            m.p95_latency_ms if enough_calls else None,
            warning=t.max_p95_latency_ms,
            critical=_times(t.max_p95_latency_ms, f),
            what="p95 call duration",
            unit="ms",
        ),
        _judge(
            "runs",
            "failure_rate",
            m.run_failure_rate if m.runs_finished >= t.min_calls else None,
            warning=t.max_failure_rate,
            critical=_times(t.max_failure_rate, f),
            what="share of failed runs",
            unit="%",
        ),
        _judge(
            "failures",
            "recovery_rate",
            m.recovery_rate if m.failures >= t.min_calls else None,
            warning=t.min_recovery_rate,
            critical=None if t.min_recovery_rate is None else t.min_recovery_rate / f,
            what="recovery rate",
            unit="pct",
            above=False,
        ),
        _judge(
            "system",
            "memory_mb",
            m.memory_mb,
            warning=t.max_memory_mb,
            critical=_times(t.max_memory_mb, f),
            what="RSS memory",
            unit="MB",
        ),
        _judge(
            "system",
            "cpu_percent",
            m.cpu_percent,
            warning=t.max_cpu_percent,
            critical=_times(t.max_cpu_percent, f),
            what="CPU",
            unit="pct",
        ),
        _judge(
            "pipeline",
            "lag_seconds",
            m.pipeline_lag_seconds,
            warning=t.max_pipeline_lag_seconds,
            critical=_times(t.max_pipeline_lag_seconds, f),
            what="event pipeline lag",
            unit="s",
        ),
        _judge(
            "disk",
            "free_percent",
            m.disk_free_percent,
            warning=t.disk_free_warning_percent,
            critical=t.disk_free_critical_percent,
            what="free disk space",
            unit="pct",
            above=False,
        ),
    ]
    if t.alert_on_dropped_events and m.dropped_events is not None:
        # Any loss is worth a warning; a hundred events lost between two checks is critical.
        found.append(
            _judge(
                "pipeline",
                "dropped_events",
                float(m.dropped_events),
                warning=0.0,
                critical=100.0,
                what="events dropped since the last check",
            )
        )
    if t.alert_on_loop_detected and m.loops_detected is not None:
        found.append(
            _judge(
                "loops",
                "detected",
                float(m.loops_detected),
                warning=0.0,
                critical=None,
                what=f"loops detected in the last {t.window_seconds:g} s",
            )
        )
    if t.alert_on_breaker_open:
        found.extend(_breaker_findings(m.breakers))
    for rule in t.metric_rules():
        warning = rule.warning
        critical = rule.critical
        if rule.above and critical is None:
            critical = _times(warning, f)
        found.append(
            _judge(
                rule.component,
                rule.metric,
                m.metrics.get(rule.metric),
                warning=warning,
                critical=critical,
                what=f"metric {rule.metric}",
                above=rule.above,
            )
        )
    return [x for x in found if x is not None]


def _breaker_findings(breakers: Mapping[str, str]) -> list[Finding]:
    findings = []
    for breaker, state in sorted(breakers.items()):
        component = f"circuit_breaker:{breaker}"
        if state == "open":
            level: AlertSeverity | None = AlertSeverity.WARNING
            message, value = f"circuit breaker {breaker!r} is open: calls are refused", 2.0
        elif state == "half_open":
            level = AlertSeverity.INFO
            message, value = f"circuit breaker {breaker!r} is half-open: testing recovery", 1.0
        else:
            level, message, value = None, f"circuit breaker {breaker!r} is {state}", 0.0
        findings.append(Finding(component, "state", level, message, None, value))
    return findings
