"""This process's circuit breakers, read from the resilience registry when it exists."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from agentkeel._internal import internal_error_counts, set_strict
from agentkeel.monitoring import HealthStatus, MonitoringSystem, run_health_check
from agentkeel.monitoring._live import live_breakers


class Breaker:
    def __init__(self, state: str, total: int, failed: int) -> None:
        self.state, self.total, self.failed = state, total, failed

    def get_status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "metrics": {
                "total_calls": self.total,
                "failed_calls": self.failed,
                "failure_rate": self.failed / self.total if self.total else 0.0,
            },
            "last_state_change_ts": 1_800_000_000.0,
        }


class Broken:
    def get_status(self) -> dict[str, Any]:
        raise RuntimeError("breaker bug")


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    breakers: dict[str, object] = {}
    module = types.ModuleType("agentkeel.resilience")
    module.get_all_circuit_breakers = lambda: dict(breakers)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "agentkeel.resilience", module)
    return breakers


def test_no_registry_means_no_breakers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "agentkeel.resilience", types.ModuleType("x"))
    assert live_breakers() == {}


def test_live_breakers_in_metrics_health_and_alerts(
    registry: dict[str, object], tmp_path: Any
) -> None:
    registry["weather"] = Breaker("open", 10, 6)
    registry["flights"] = Breaker("closed", 4, 0)
    found = live_breakers()
    assert found["weather"].state == "open"
    assert found["weather"].failure_rate == 0.6
    monitoring = MonitoringSystem(emit=None)
    text = monitoring.export_prometheus_metrics_sync()
    assert 'agentkeel_circuit_breaker_state{breaker="weather",state="open"} 1.0' in text
    assert 'agentkeel_circuit_breaker_calls_total{breaker="weather"} 10.0' in text
    assert 'agentkeel_circuit_breaker_failure_rate{breaker="flights"} 0.0' in text
    changes = monitoring.evaluate(system=False)
    assert [c.alert.component for c in changes if c.action == "raised"] == [
        "circuit_breaker:weather"
    ]
    report = run_health_check(f"sqlite:///{tmp_path / 'keel.db'}")
    breakers = report.check("circuit_breakers")
    assert breakers.status is HealthStatus.DEGRADED
    assert breakers.details["breakers"]["weather"]["source"] == "live"
    assert breakers.details["breakers"]["weather"]["success_rate"] == pytest.approx(0.4)
    summary = monitoring.collect_all_metrics_sync(5)
    assert summary["circuit_breakers"]["states"]["weather"]["failed_calls"] == 6


def test_a_broken_breaker_is_skipped_and_counted(registry: dict[str, object]) -> None:
    registry["ok"] = Breaker("closed", 1, 0)
    registry["bad"] = Broken()
    set_strict(False)
    try:
        assert list(live_breakers()) == ["ok"]
    finally:
        set_strict(True)
    assert internal_error_counts()["monitoring.breakers"] == 1
