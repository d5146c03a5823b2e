"""AgentDiagnostics: memory, state, tools, response time and error rate of an agent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.monitoring import (
    AgentDiagnostics,
    CallSample,
    CheckStatus,
    MonitoringThresholds,
)
from agentkeel.store import Store
from agentkeel.tracking import TrackedToolRegistry


class Agent:
    name = "travel"

    def __init__(self) -> None:
        self.tools = {"weather": lambda city: city, "flights": lambda: None}

    def get_state(self) -> dict[str, Any]:
        return {"step": 3, "plan": ["weather", "flights"]}


def test_a_healthy_agent_passes_every_check() -> None:
    report = asyncio.run(
        AgentDiagnostics(Agent(), recent_calls=[(120.0, True), (80.0, True)]).run_diagnostics()
    )
    assert report.agent_name == "travel"
    assert {n: c.status for n, c in report.checks.items()} == {
        "memory": CheckStatus.OK,
        "state": CheckStatus.OK,
        "tools": CheckStatus.OK,
        "response_time": CheckStatus.OK,
        "error_rate": CheckStatus.OK,
    }
    assert report.status is CheckStatus.OK
    assert report.issues == []
    data = report.to_dict()
    assert data["checks"]["response_time"]["average_ms"] == 100.0
    assert data["checks"]["memory"]["rss_mb"] > 0
    assert data["checks"]["state"]["state_bytes"] > 0


def test_slow_and_failing_calls() -> None:
    thresholds = MonitoringThresholds(max_response_time_ms=100, max_error_rate=0.1)
    calls = [CallSample(150.0, ok=True), CallSample(150.0, ok=False), (150.0, False)]
    report = AgentDiagnostics(Agent(), recent_calls=calls, thresholds=thresholds)
    checks = report.run_diagnostics_sync().checks
    assert checks["response_time"].status is CheckStatus.WARNING
    assert checks["error_rate"].status is CheckStatus.CRITICAL  # 67% is over 2x 10%
    assert "2 of 3 call(s) failed" in checks["error_rate"].summary


def test_state_problems() -> None:
    class Broken:
        def get_state(self) -> Any:
            raise RuntimeError("lock poisoned")

    check = AgentDiagnostics(Broken()).run_diagnostics_sync().checks["state"]
    assert check.status is CheckStatus.CRITICAL
    assert "lock poisoned" in check.summary
    odd = AgentDiagnostics(None, state={"conn": object()}).run_diagnostics_sync()
    assert odd.checks["state"].status is CheckStatus.WARNING
    assert "not JSON-serialisable" in odd.checks["state"].summary
    big = AgentDiagnostics(None, state="x" * 100, max_state_bytes=10).run_diagnostics_sync()
    assert big.checks["state"].status is CheckStatus.CRITICAL
    plain = AgentDiagnostics(object()).run_diagnostics_sync()
    assert plain.checks["state"].status is CheckStatus.SKIPPED
    assert plain.checks["tools"].status is CheckStatus.SKIPPED
    assert plain.checks["response_time"].status is CheckStatus.SKIPPED
    assert "no run" in plain.checks["response_time"].summary


def test_tools_missing_or_not_callable() -> None:
    registry = TrackedToolRegistry({"weather": lambda: 1})
    ok = AgentDiagnostics(None, tools=registry, required_tools=["weather"])
    assert ok.run_diagnostics_sync().checks["tools"].status is CheckStatus.OK
    bad = AgentDiagnostics(None, tools={"a": 42}, required_tools=["a", "hotels"])
    check = bad.run_diagnostics_sync().checks["tools"]
    assert check.status is CheckStatus.CRITICAL
    assert check.summary == "missing: hotels; not callable: a"

    def weather() -> None: ...

    listed = AgentDiagnostics(None, tools=[weather]).run_diagnostics_sync()
    assert listed.checks["tools"].details["total"] == 1


def test_calls_of_the_current_run_come_from_the_store(store: Store) -> None:
    agentkeel.configure(store=store)
    with agentkeel.run("diag") as scope:
        for status in ("succeeded", "failed", "succeeded"):
            agentkeel.emit(
                EventType.TOOL_CALL_END,
                name="t",
                attributes={"duration_ms": 10.0, "status": status},
            )
        report = AgentDiagnostics(Agent()).run_diagnostics_sync()
    error_rate = report.checks["error_rate"]
    assert error_rate.details["calls"] == 3
    assert error_rate.details["failed"] == 1
    assert error_rate.details["source"] == f"run {scope.run_id}"
    agentkeel.flush()  # before the store fixture closes the store
    again = AgentDiagnostics(Agent(), store=store, run_id=scope.run_id).run_diagnostics_sync()
    assert again.checks["response_time"].details["calls"] == 3


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="recent_calls takes"):
        AgentDiagnostics(None, recent_calls=["fast"])  # type: ignore[list-item]
    with pytest.raises(ConfigurationError, match="max_state_bytes"):
        AgentDiagnostics(None, max_state_bytes=0)
