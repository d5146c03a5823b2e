"""run_health_check: what `keel health` reports, check by check."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import agentkeel
from agentkeel import EventType
from agentkeel.monitoring import HealthStatus, MonitoringThresholds, run_health_check
from agentkeel.store import open_store


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keel.db'}"


def write(url: str, *events: Any) -> None:
    store = open_store(url)
    try:
        store.write_events(list(events))
    finally:
        store.close()


def test_a_fresh_home_is_healthy_without_creating_a_database(tmp_path: Path) -> None:
    report = run_health_check(home=tmp_path / "home")
    assert report.status is HealthStatus.HEALTHY
    assert report.exit_code == 0
    assert "no database yet" in report.check("store").summary
    assert not (tmp_path / "home" / "keel.db").exists()
    assert report.check("failures").status is HealthStatus.UNKNOWN
    assert report.reason == "all checks passed"


def test_a_store_with_quiet_history_is_healthy(url: str, events: Any) -> None:
    write(
        url,
        events.make(EventType.AGENT_START, "run", run_id="r1"),
        events.make(EventType.AGENT_END, "run", run_id="r1", status="succeeded"),
    )
    report = run_health_check(url)
    assert report.status is HealthStatus.HEALTHY, report.to_dict()
    store = report.check("store")
    assert store.details["events"] == 2
    assert store.details["schema_version"] == store.details["schema_latest"]
    assert report.to_dict()["checks"]["store"]["status"] == "healthy"


def test_an_unreachable_store_is_unhealthy_with_the_reason() -> None:
    report = run_health_check("postgresql://127.0.0.1:1/x")
    assert report.status is HealthStatus.UNHEALTHY
    assert report.exit_code == 2
    assert "store unreachable" in report.reason
    assert report.check("failures").summary == "skipped: the store cannot be read"
    assert any("reachable" in advice for advice in report.recommendations)


def test_a_bad_url_is_unhealthy() -> None:
    report = run_health_check("mysql://x")
    assert report.status is HealthStatus.UNHEALTHY
    assert "unsupported store URL" in report.reason


def test_an_old_schema_is_degraded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE keel_schema_version (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at DOUBLE PRECISION NOT NULL)"
        )
    report = run_health_check(f"sqlite:///{path}")
    assert report.status is HealthStatus.DEGRADED
    assert "keel db upgrade" in report.recommendations[0]


def test_an_open_breaker_is_degraded_until_it_closes(url: str) -> None:
    agentkeel.configure(store=url)
    agentkeel.emit(
        EventType.CIRCUIT_OPENED,
        name="weather",
        severity=3,
        attributes={"failure_rate": 0.6, "calls": 10},
    )
    agentkeel.flush()
    report = run_health_check(url)
    assert report.status is HealthStatus.DEGRADED
    assert report.exit_code == 1
    breakers = report.check("circuit_breakers")
    assert "open: weather" in breakers.summary
    row = breakers.details["breakers"]["weather"]
    assert row["success_rate"] == pytest.approx(0.4)
    assert any("weather" in advice for advice in report.recommendations)
    agentkeel.emit(EventType.CIRCUIT_CLOSED, name="weather", severity=1)
    agentkeel.flush()
    assert run_health_check(url).status is HealthStatus.HEALTHY


def test_a_breaker_state_from_long_ago_is_stale(url: str, events: Any) -> None:
    write(url, events.make(EventType.CIRCUIT_OPENED, "old", at=time.time() - 3 * 86400))
    report = run_health_check(url)
    assert report.status is HealthStatus.HEALTHY
    assert "1 stale" in report.check("circuit_breakers").summary


def test_dropped_events_and_lag_are_degraded(url: str, events: Any) -> None:
    write(
        url,
        events.make(
            "pipeline.stats",
            "pipeline",
            emitted=100,
            written=90,
            dropped=10,
            dropped_by_reason={"buffer_full": 6, "sink_failed": 4},
            lag_seconds=45.0,
        ),
    )
    report = run_health_check(url)
    pipeline = report.check("pipeline")
    assert pipeline.status is HealthStatus.DEGRADED
    assert "dropped 10 events (buffer_full 6, sink_failed 4)" in pipeline.summary
    assert "lags 45.0 s" in pipeline.summary
    assert len(pipeline.recommendations) == 3


def test_the_live_pipeline_counts_too(url: str) -> None:
    agentkeel.configure(store=url)
    agentkeel.emit("custom", name="x")
    agentkeel.flush()
    check = run_health_check(url).check("pipeline")
    assert check.status is HealthStatus.HEALTHY
    assert "1 process(es) reported" in check.summary


def test_a_high_error_rate_is_degraded(url: str, events: Any) -> None:
    write(
        url,
        *[
            events.make(
                EventType.TOOL_CALL_END,
                "t",
                duration_ms=1.0,
                status="failed" if i < 5 else "succeeded",
            )
            for i in range(12)
        ],
    )
    report = run_health_check(url)
    failures = report.check("failures")
    assert failures.status is HealthStatus.DEGRADED
    assert "12 call(s) (5 failed)" in failures.summary
    assert "keel failures" in failures.recommendations[0]
    relaxed = run_health_check(url, thresholds=MonitoringThresholds(max_error_rate=0.5))
    assert relaxed.check("failures").status is HealthStatus.HEALTHY


def test_an_active_critical_alert_is_degraded(url: str, events: Any) -> None:
    alert = {
        "alert_id": "a1",
        "severity": "critical",
        "component": "disk",
        "name": "free_percent",
        "message": "disk almost full",
        "created_at": "2030-01-01T00:00:00+00:00",
    }
    write(url, events.make("alert.raised", "disk", attrs=alert))
    report = run_health_check(url)
    assert report.check("alerts").status is HealthStatus.DEGRADED
    assert "disk almost full" in report.check("alerts").summary
    write(
        url,
        events.make(
            "alert.resolved", "disk", attrs={**alert, "resolved_at": "2030-01-01T00:05:00+00:00"}
        ),
    )
    assert run_health_check(url).check("alerts").status is HealthStatus.HEALTHY


class Usage(NamedTuple):
    total: int
    used: int
    free: int


@pytest.mark.parametrize(
    ("free", "status"),
    [(50, HealthStatus.HEALTHY), (3, HealthStatus.DEGRADED), (0.5, HealthStatus.UNHEALTHY)],
)
def test_disk_space(
    url: str, monkeypatch: pytest.MonkeyPatch, free: float, status: HealthStatus
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: Usage(1000, 0, int(free * 10)))
    report = run_health_check(url)
    assert report.check("disk").status is status
    assert report.status is status


def test_frameworks_and_sampling_are_reported(url: str) -> None:
    import importlib.metadata

    report = run_health_check(url)
    frameworks = report.check("frameworks")
    assert frameworks.status is HealthStatus.HEALTHY
    matrix = frameworks.details["frameworks"]
    assert matrix["langchain"]["current_version"] == importlib.metadata.version("langchain-core")
    assert matrix["pyautogen"]["status"] == "unavailable"
    assert "langgraph" in frameworks.summary
    assert report.check("sampling").status in {HealthStatus.HEALTHY, HealthStatus.UNKNOWN}


def test_an_unwell_instrumentor_degrades_the_frameworks_check(url: str) -> None:
    from agentkeel.integrations import RobustConfig, RobustInstrumentor

    class Broken(RobustInstrumentor):
        framework = "broken-framework"

    broken = Broken(config=RobustConfig(max_consecutive_errors=1))
    with broken.instrument():
        broken.observe(lambda: 1 / 0)
        check = run_health_check(url).check("frameworks")
        assert check.status is HealthStatus.DEGRADED
        assert "broken-framework instrumentor degraded" in check.summary
        assert any(
            "ZeroDivisionError" in str(h["last_error"]) for h in check.details["instrumentors"]
        )
    assert run_health_check(url).check("frameworks").status is HealthStatus.HEALTHY


def test_bad_arguments(url: str) -> None:
    with pytest.raises(agentkeel.ConfigurationError, match="window"):
        run_health_check(url, window=-1)
    with pytest.raises(KeyError):
        run_health_check(url).check("nope")
