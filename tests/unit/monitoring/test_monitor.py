"""MonitoringSystem: health, summary, thresholds over the store, HTTP serving."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.monitoring import (
    AlertSeverity,
    HealthStatus,
    Measurements,
    MetricRule,
    MetricType,
    MonitoringSystem,
    MonitoringThresholds,
    get_monitoring_system,
    set_monitoring_system,
)
from agentkeel.store import Store


def test_health_updates_and_the_summary_as_the_seed_reads_it() -> None:
    monitoring = MonitoringSystem(emit=None)

    async def update() -> None:
        await monitoring.update_health_status(
            component="template_cache",
            healthy=True,
            status="healthy",
            metadata={"cache_size_mb": 25.5, "hit_rate": 0.87},
        )
        await monitoring.update_health_status(
            component="event_processor",
            healthy=False,
            status="critical",
            error_message="kafka unreachable",
        )

    asyncio.run(update())
    summary = monitoring.get_monitoring_summary()
    assert summary["health"]["overall_status"] == "unhealthy"
    components = summary["health"]["components"]
    assert components["template_cache"]["metadata"]["hit_rate"] == 0.87
    unhealthy = {n: c["error"] for n, c in components.items() if not c["healthy"]}
    assert unhealthy == {"event_processor": "kafka unreachable"}
    monitoring.update_health_status_sync(
        component="event_processor", healthy=True, status="degraded"
    )
    assert monitoring.get_monitoring_summary()["health"]["overall_status"] == "degraded"
    assert monitoring.health.overall() is HealthStatus.DEGRADED


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"component": "", "healthy": True}, "component must be a non-empty name"),
        ({"component": "c", "healthy": "yes"}, "healthy must be True or False"),
        ({"component": "c", "healthy": True, "status": "on fire"}, "unknown health status"),
        ({"component": "c", "healthy": True, "status": "unhealthy"}, "make them agree"),
        ({"component": "c", "healthy": False, "status": "ok"}, "make them agree"),
    ],
)
def test_bad_health_updates(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MonitoringSystem(emit=None).update_health_status_sync(**kwargs)


def test_the_process_wide_system() -> None:
    first = get_monitoring_system()
    assert get_monitoring_system() is first
    mine = MonitoringSystem(emit=None, thresholds=MonitoringThresholds(max_error_rate=0.5))
    assert set_monitoring_system(mine) is first
    assert get_monitoring_system() is mine
    set_monitoring_system(None)
    assert get_monitoring_system() is not mine
    with pytest.raises(ConfigurationError):
        set_monitoring_system("nope")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="MonitoringThresholds"):
        MonitoringSystem(thresholds={"max_error_rate": 0.1})  # type: ignore[arg-type]


def test_check_thresholds_raises_and_resolves_with_given_measurements() -> None:
    monitoring = MonitoringSystem(emit=None)
    heard: list[Any] = []
    monitoring.add_notifier(heard.append)
    bad = Measurements(calls=50, error_rate=0.5, breakers={"weather": "open"})
    changes = asyncio.run(monitoring.check_thresholds(measurements=bad))
    assert {(c.action, c.alert.component) for c in changes} == {
        ("raised", "calls"),
        ("raised", "circuit_breaker:weather"),
    }
    critical = monitoring.get_active_alerts(severity=AlertSeverity.CRITICAL)
    assert [a.name for a in critical] == ["error_rate"]
    assert critical[0].threshold == pytest.approx(0.2)
    assert critical[0].actual_value == 0.5
    again = monitoring.evaluate(measurements=bad)
    assert {c.action for c in again} == {"repeated"}
    good = Measurements(calls=50, error_rate=0.0, breakers={"weather": "closed"})
    resolved = monitoring.evaluate(measurements=good)
    assert {c.action for c in resolved} == {"resolved"}
    assert monitoring.get_active_alerts() == []
    assert len(monitoring.get_resolved_alerts(hours=1)) == 2
    assert len(heard) == 4
    summary = monitoring.get_monitoring_summary()["alerts"]
    assert summary["active"] == 0
    assert summary["resolved_last_24h"] == 2


def filled(store: Store, events: Any) -> None:
    now = time.time()
    store.write_events(
        [
            *[
                events.make(
                    EventType.TOOL_CALL_END,
                    "weather",
                    at=now - 5,
                    duration_ms=50.0,
                    status="failed" if i % 2 else "succeeded",
                )
                for i in range(20)
            ],
            events.make(EventType.CIRCUIT_OPENED, "weather", at=now - 3, severity=3),
            events.make(EventType.LOOP_DETECTED, "planner", at=now - 2),
            events.make(
                "pipeline.stats", "pipeline", at=now - 1, emitted=100, dropped=0, lag_seconds=0.1
            ),
        ]
    )


def test_evaluate_reads_the_store(store: Store, events: Any) -> None:
    filled(store, events)
    monitoring = MonitoringSystem(store=store, emit=None)
    changes = monitoring.evaluate(system=False)
    raised = {(c.alert.component, c.alert.name): c.alert.severity for c in changes}
    assert raised[("calls", "error_rate")] is AlertSeverity.CRITICAL
    assert raised[("circuit_breaker:weather", "state")] is AlertSeverity.WARNING
    assert raised[("loops", "detected")] is AlertSeverity.WARNING
    # the process reported drops: the next check alerts on the increase only
    now = time.time()
    store.write_events(
        [
            events.make(
                "pipeline.stats",
                "pipeline",
                at=now,
                emitted=150,
                dropped=4,
                dropped_by_reason={"buffer_full": 4},
            )
        ]
    )
    changes = monitoring.evaluate(system=False)
    dropped = [c for c in changes if c.alert.name == "dropped_events"]
    assert dropped[0].action == "raised"
    assert dropped[0].alert.actual_value == 4
    later = monitoring.evaluate(system=False)
    assert [c.action for c in later if c.alert.name == "dropped_events"] == ["resolved"]


def test_alerts_are_stored_as_events_and_restored(store: Store) -> None:
    agentkeel.configure(store=store)
    monitoring = MonitoringSystem(store=store)
    monitoring.evaluate(measurements=Measurements(calls=50, error_rate=0.9))
    agentkeel.flush()
    stored = store.list_events(types=["alert.raised"])
    assert [e.event.attributes["name"] for e in stored] == ["error_rate"]
    assert stored[0].event.severity == 3  # CRITICAL alerts travel as HIGH events
    later = MonitoringSystem(store=store)
    assert later.restore_alerts() == 1
    assert [a.name for a in later.get_active_alerts()] == ["error_rate"]


def test_metric_rules_read_recorded_metrics() -> None:
    thresholds = MonitoringThresholds(
        cache_hit_rate_warning=0.75,
        cache_hit_rate_critical=0.65,
        template_load_ms_warning=40.0,
        rules=[MetricRule(metric="jobs_failed", warning=5)],
    )
    monitoring = MonitoringSystem(emit=None, thresholds=thresholds)
    record = monitoring.record_metric_sync
    record(name="cache_hit_rate", value=0.9, metric_type=MetricType.GAUGE, labels={"c": "a"})
    record(name="cache_hit_rate", value=0.7, metric_type=MetricType.GAUGE, labels={"c": "b"})
    for ms in (30.0, 70.0):
        record(name="template_load_duration_ms", value=ms, metric_type=MetricType.HISTOGRAM)
    record(name="jobs_failed", value=7, metric_type=MetricType.COUNTER)
    changes = monitoring.evaluate(measurements=monitoring.measure(system=False))
    raised = {c.alert.name: c.alert for c in changes}
    assert raised["cache_hit_rate"].actual_value == 0.7  # the worst label set
    assert raised["cache_hit_rate"].severity is AlertSeverity.WARNING
    assert raised["template_load_duration_ms"].actual_value == 50.0  # mean since last time
    assert raised["jobs_failed"].actual_value == 7
    record(name="template_load_duration_ms", value=10.0, metric_type=MetricType.HISTOGRAM)
    changes = monitoring.evaluate(measurements=monitoring.measure(system=False))
    actions = {c.alert.name: c.action for c in changes}
    assert actions["template_load_duration_ms"] == "resolved"  # only the new observation
    assert actions["jobs_failed"] == "resolved"  # no growth since


def test_collect_all_metrics_from_the_store(store: Store, events: Any) -> None:
    filled(store, events)
    monitoring = MonitoringSystem(store=store, emit=None)
    metrics = asyncio.run(monitoring.collect_all_metrics(time_window_minutes=60))
    assert metrics["tools"]["calls"] == 20
    assert metrics["tools"]["error_rate"] == 0.5
    assert metrics["circuit_breakers"]["states"]["weather"]["state"] == "open"
    assert metrics["pipeline"]["proc0001"]["emitted"] == 100
    assert metrics["store"] == {"url": "memory://", "error": None}
    assert metrics["collection_time_ms"] > 0
    assert metrics["health"] == {"overall_status": "healthy"}
    json.dumps(metrics)  # ready for a dashboard
    with pytest.raises(ConfigurationError, match="time_window_minutes"):
        monitoring.collect_all_metrics_sync(0)


def test_collect_all_metrics_without_a_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_STORE", "none")
    metrics = MonitoringSystem(emit=None).collect_all_metrics_sync(5)
    assert metrics["store"]["error"] == "no store is configured"
    assert "tools" not in metrics
    assert metrics["pipeline"] == {}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_serve_metrics_and_health_over_http() -> None:
    monitoring = MonitoringSystem(emit=None)
    monitoring.record_metric_sync(name="served", value=3, metric_type=MetricType.GAUGE)
    with monitoring.serve(port=0) as server:
        status, text = get(f"{server.url}/metrics")
        assert status == 200
        families = {f.name for f in text_string_to_metric_families(text)}
        assert {"served", "agentkeel_tool_calls", "agentkeel_component_healthy"} <= families
        assert get(f"{server.url}/health")[0] == 200
        monitoring.update_health_status_sync(component="db", healthy=False)
        status, body = get(f"{server.url}/health")
        assert status == 503
        assert json.loads(body)["overall_status"] == "unhealthy"
        assert get(f"{server.url}/nope")[0] == 404
        assert get(f"{server.url}/")[0] == 200
        with pytest.raises(ConfigurationError, match="already in use"):
            monitoring.serve(port=server.port)
