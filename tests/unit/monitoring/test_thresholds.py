"""MonitoringThresholds: validated at construction; findings per check."""

from __future__ import annotations

import datetime as dt

import pytest

from agentkeel import ConfigurationError
from agentkeel.monitoring import AlertSeverity, Measurements, MetricRule, MonitoringThresholds
from agentkeel.monitoring._thresholds import evaluate_thresholds


def by_key(thresholds: MonitoringThresholds, m: Measurements) -> dict[tuple[str, str], object]:
    return {(f.component, f.name): f.severity for f in evaluate_thresholds(thresholds, m)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_error_rate": -0.1}, "max_error_rate must be zero or more"),
        ({"max_error_rate": 5}, "fraction between 0 and 1"),
        ({"max_failure_rate": float("nan")}, "finite number"),
        ({"max_memory_mb": -1}, "max_memory_mb must be zero or more"),
        ({"max_p95_latency_ms": "fast"}, "max_p95_latency_ms must be a finite number"),
        ({"min_recovery_rate": 150}, "percentage"),
        ({"critical_factor": 0.5}, "critical_factor must be a number >= 1"),
        ({"min_calls": 0}, "min_calls must be an integer >= 1"),
        ({"dedup_window": -5}, "dedup_window must be a finite duration"),
        ({"window": 0}, "window must be a finite duration more than zero"),
        ({"disk_free_warning_percent": 1, "disk_free_critical_percent": 5}, "must not be above"),
        ({"cache_hit_rate_warning": 2}, "fraction"),
        ({"template_load_ms_warning": 80, "template_load_ms_critical": 40}, "at or above"),
        ({"cache_hit_rate_warning": 0.6, "cache_hit_rate_critical": 0.7}, "at or below"),
        ({"rules": [object()]}, "rules must be a sequence of MetricRule"),
    ],
)
def test_bad_thresholds_say_what_is_wrong(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MonitoringThresholds(**kwargs)  # type: ignore[arg-type]


def test_durations_accept_timedelta_and_positional_is_refused() -> None:
    t = MonitoringThresholds(dedup_window=dt.timedelta(minutes=2), window=dt.timedelta(hours=1))
    assert t.dedup_window_seconds == 120
    assert t.window_seconds == 3600
    with pytest.raises(TypeError):
        MonitoringThresholds(0.2)  # type: ignore[misc]


def test_metric_rule_validation() -> None:
    with pytest.raises(ConfigurationError, match="neither warning nor critical"):
        MetricRule(metric="x")
    with pytest.raises(ConfigurationError, match="needs a metric name"):
        MetricRule(metric="", warning=1)
    with pytest.raises(ConfigurationError, match="warning of rule 'x' must be zero or more"):
        MetricRule(metric="x", warning=-1)


def test_seed_fields_become_rules_on_the_seed_metric_names() -> None:
    t = MonitoringThresholds(
        template_load_ms_warning=40.0,
        template_load_ms_critical=80.0,
        cache_hit_rate_warning=0.75,
        cache_hit_rate_critical=0.65,
        pattern_precision_warning=0.88,
        pattern_precision_critical=0.82,
        rules=[MetricRule(metric="queue_depth", warning=100)],
    )
    rules = {r.metric: r for r in t.metric_rules()}
    assert rules["template_load_duration_ms"].above
    assert not rules["cache_hit_rate"].above
    assert rules["pattern_precision"].component == "pattern_feedback"
    found = by_key(
        t,
        Measurements(
            metrics={
                "template_load_duration_ms": 90.0,
                "cache_hit_rate": 0.7,
                "pattern_precision": 0.95,
                "queue_depth": 250.0,
            }
        ),
    )
    assert found[("template_cache", "template_load_duration_ms")] is AlertSeverity.CRITICAL
    assert found[("template_cache", "cache_hit_rate")] is AlertSeverity.WARNING
    assert found[("pattern_feedback", "pattern_precision")] is None
    assert found[("metrics", "queue_depth")] is AlertSeverity.CRITICAL  # 2x the warning


def test_each_check_warns_then_goes_critical() -> None:
    t = MonitoringThresholds(min_recovery_rate=80.0)
    warn = Measurements(
        calls=100,
        error_rate=0.15,
        avg_latency_ms=6000,
        p95_latency_ms=12_000,
        runs_finished=20,
        run_failure_rate=0.3,
        failures=20,
        recovery_rate=60.0,
        memory_mb=1500,
        cpu_percent=95,
        pipeline_lag_seconds=40,
        dropped_events=3,
        disk_free_percent=4.0,
        loops_detected=1,
        breakers={"w": "open", "h": "half_open"},
    )
    found = by_key(t, warn)
    for key in [
        ("calls", "error_rate"),
        ("calls", "response_time_ms"),
        ("calls", "p95_latency_ms"),
        ("runs", "failure_rate"),
        ("failures", "recovery_rate"),
        ("system", "memory_mb"),
        ("system", "cpu_percent"),
        ("pipeline", "lag_seconds"),
        ("pipeline", "dropped_events"),
        ("disk", "free_percent"),
        ("loops", "detected"),
        ("circuit_breaker:w", "state"),
    ]:
        assert found[key] is AlertSeverity.WARNING, key
    assert found[("circuit_breaker:h", "state")] is AlertSeverity.INFO
    critical = Measurements(
        calls=100,
        error_rate=0.5,
        memory_mb=5000,
        dropped_events=500,
        disk_free_percent=0.5,
        failures=20,
        recovery_rate=30.0,
    )
    found = by_key(t, critical)
    for key in [
        ("calls", "error_rate"),
        ("system", "memory_mb"),
        ("pipeline", "dropped_events"),
        ("disk", "free_percent"),
        ("failures", "recovery_rate"),
    ]:
        assert found[key] is AlertSeverity.CRITICAL, key


def test_within_limits_and_too_few_samples() -> None:
    t = MonitoringThresholds()
    found = by_key(
        t,
        Measurements(
            calls=100, error_rate=0.01, breakers={"w": "closed"}, loops_detected=0, dropped_events=0
        ),
    )
    assert found == {
        ("calls", "error_rate"): None,
        ("circuit_breaker:w", "state"): None,
        ("loops", "detected"): None,
        ("pipeline", "dropped_events"): None,
    }
    # one failed call in three is not judged: min_calls is 10
    assert by_key(t, Measurements(calls=3, error_rate=0.33)) == {}


def test_checks_can_be_switched_off() -> None:
    t = MonitoringThresholds(
        max_error_rate=None,
        alert_on_breaker_open=False,
        alert_on_loop_detected=False,
        alert_on_dropped_events=False,
        max_memory_mb=None,
    )
    m = Measurements(
        calls=100,
        error_rate=0.9,
        breakers={"w": "open"},
        loops_detected=5,
        dropped_events=10,
        memory_mb=99999,
    )
    assert by_key(t, m) == {}
