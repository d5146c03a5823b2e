"""ErrorHandlingSystem: the seed guide's calls, each strategy, and bad configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

import agentkeel
from agentkeel import ConfigurationError, Event
from agentkeel.events import Severity
from agentkeel.recovery import (
    Assessment,
    ErrorHandlingSystem,
    LoopDetectedError,
    RecoveryStrategy,
    select_strategy,
)
from agentkeel.resilience import ErrorType

SEED_CONFIG: dict[str, Any] = {
    "retry": {
        "max_retries": 5,
        "base_delay": 2.0,
        "backoff_multiplier": 1.5,
        "max_delay": 60.0,
        "adaptive_learning": True,
    },
    "rollback": {
        "max_snapshots": 20,
        "cleanup_after_hours": 48,
        "compression_enabled": True,
        "verification_enabled": True,
    },
    "escalation": {
        "max_auto_recovery_attempts": 3,
        "escalation_timeout": 600,
        "critical_error_types": ["resource_error", "infinite_loop"],
        "notification_channels": {"email": True, "slack": True, "webhook": False},
    },
    "loop_detection": {
        "max_iterations": 100,
        "similarity_threshold": 0.9,
        "time_window_seconds": 600,
        "enable_auto_pause": True,
    },
    "history": {"max_versions": 200, "retention_days": 60, "compression_enabled": True},
}


class Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, batch: Sequence[Event]) -> None:
        self.events.extend(batch)


@pytest.fixture
def events() -> Events:
    sink = Events()
    agentkeel.configure(store="memory://", sinks=[sink], flush_interval=0.01)
    return sink


async def no_sleep(_seconds: float) -> None:
    return None


def make_system(config: dict[str, Any] | None = None) -> ErrorHandlingSystem:
    return ErrorHandlingSystem(config, sleep=lambda _s: None, async_sleep=no_sleep)


def test_the_seed_guides_basic_usage(events: Events) -> None:
    calls: list[str | None] = []

    async def main() -> dict[str, Any]:
        system = make_system(SEED_CONFIG)
        try:
            try:
                raise ConnectionError("service unreachable")
            except Exception as error:
                context = {
                    "agent_id": "my_agent_01",
                    "task_id": "important_task",
                    "prompt": "Summarise the report",
                }

                async def recovery_callback(adjusted_prompt: str | None = None) -> str:
                    calls.append(adjusted_prompt)
                    if len(calls) < 2:
                        raise ConnectionError("still down")
                    return "summary"

                result = await system.handle_error(error, context, recovery_callback)
            health = await system.get_system_health()
            return {"result": result, "health": health}
        finally:
            await system.shutdown()

    out = asyncio.run(main())
    result = out["result"]
    assert result.get("success") is True and result["result"] == "summary"
    assert result["strategy"] == "auto_retry" and result["attempts"] == 2
    assert result["phases"] == [
        "assessment",
        "strategy_selection",
        "execution",
        "validation",
        "completion",
    ]
    # Each try got a prompt adjusted for the error before it.
    assert all(p and "Summarise the report" in p for p in calls)
    health = out["health"]
    assert health["active_errors"] == 0
    assert health["stats"]["total_errors"] == 1
    assert health["stats"]["successful_recoveries"] == 1
    assert set(health["subsystem_status"]) == {
        "retry_system",
        "rollback_system",
        "escalation_system",
        "loop_detector",
        "history_manager",
    }
    agentkeel.flush()
    phases = [e.attributes["phase"] for e in events.events if e.type == "recovery.phase"]
    assert phases == ["assessment", "strategy_selection", "execution", "validation", "completion"]
    assert any(e.type == "recovery.success" for e in events.events)


def test_failed_recovery_is_escalated_with_a_ticket() -> None:
    system = make_system()

    def always_fails() -> None:
        raise ConnectionError("down for good")

    result = system.handle_error_sync(ConnectionError("down"), {"agent_id": "a1"}, always_fails)
    assert result["success"] is False
    assert result["error"].startswith("ConnectionError")
    ticket = result["escalation_ticket"]
    assert ticket
    assert system.escalation_system.get_ticket(ticket).status == "open"


def test_validation_decides_success() -> None:
    system = make_system()
    result = system.handle_error_sync(
        ValueError("bad"), {"agent_id": "a2", "validate": lambda r: r == "good"}, lambda: "bad"
    )
    assert result["success"] is False
    assert "validation" in result["error"]
    assert result["escalation_ticket"]


def test_rollback_restores_the_last_good_state() -> None:
    system = make_system()
    state = {"plan": ["a", "b"], "step": 1}
    system.rollback_system.create_snapshot_sync(agent_id="a3", task_id="t", state_data=state)
    result = system.handle_error_sync(
        ValueError("state is inconsistent"), {"agent_id": "a3", "state_corrupted": True}
    )
    assert result["strategy"] == "rollback"
    assert result["success"] is True and result["result"] == state


def test_a_loop_is_rolled_back_and_escalated() -> None:
    system = make_system()
    system.rollback_system.create_snapshot_sync(agent_id="a4", task_id="t", state_data={"x": 1})
    error: LoopDetectedError | None = None
    try:
        for _ in range(5):  # the same tool call with the same answer, again and again
            with system.loop_detector.guard("a4", "search", {"q": "same"}) as step:
                step.result = "nothing new"
    except LoopDetectedError as caught:
        error = caught
    assert error is not None
    system.loop_detector.reset_agent_sync("a4")
    result = system.handle_error_sync(error, {"agent_id": "a4"}, lambda: "again")
    assert result["strategy"] == "hybrid"
    assert result["error_type"] == "infinite_loop"
    assert result["success"] is False and result["escalation_ticket"]
    assert result["snapshot_id"]


def test_repeated_failures_escalate_without_retrying() -> None:
    system = make_system({"escalation": {"max_auto_recovery_attempts": 1}})
    calls = 0

    def fails() -> None:
        nonlocal calls
        calls += 1
        raise TimeoutError("slow")

    system.handle_error_sync(TimeoutError("slow"), {"agent_id": "a5", "task_id": "t"}, fails)
    before = calls
    second = system.handle_error_sync(
        TimeoutError("slow"), {"agent_id": "a5", "task_id": "t"}, fails
    )
    assert second["strategy"] == "escalation" and calls == before


def test_no_callback_means_manual() -> None:
    result = make_system().handle_error_sync(RuntimeError("?"), {"agent_id": "a6"})
    assert result["strategy"] == "manual" and result["escalation_ticket"]


def test_subsystems_answer_the_seed_calls() -> None:
    async def main() -> None:
        system = make_system(SEED_CONFIG)
        sid = await system.rollback_system.create_snapshot(
            agent_id="trainer_01",
            task_id="model_training",
            state_data={"model_version": "2.1.0"},
            metadata={"reason": "before training"},
        )
        assert sid
        ticket = await system.escalation_system.create_escalation(
            {"error": "disk full", "agent_id": "trainer_01"}, recovery_attempts=2
        )
        report = await system.escalation_system.get_escalation_report(ticket)
        assert report
        assert await system.loop_detector.is_agent_paused("agent_01") is False
        assert await system.loop_detector.get_loop_patterns("agent_01") == []
        await system.loop_detector.reset_agent("agent_01")
        v1 = await system.history_manager.record_state(
            agent_id="trainer_01", task_id="model_training", state_data={"progress": 0.1}
        )
        v2 = await system.history_manager.record_state(
            agent_id="trainer_01", task_id="model_training", state_data={"progress": 0.5}
        )
        diff = await system.history_manager.compare_versions("trainer_01", "model_training", v1, v2)
        assert diff.total_changes == 1
        await system.shutdown()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"retries": {}}, "unknown config section"),
        ({"retry": {"max_retrys": 3}}, "unknown retry setting"),
        ({"retry": {"max_retries": 0}}, "max_retries"),
        ({"retry": {"base_delay": -1}}, "base_delay"),
        ({"retry": {"success_rate_threshold": 2}}, "success_rate_threshold"),
        ({"rollback": {"max_snapshot": 3}}, "max_snapshot"),
        ({"retry": []}, "must be a dict"),
        ("retry", "dict of sections"),
    ],
)
def test_bad_configuration(config: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ErrorHandlingSystem(config)


def test_bad_calls() -> None:
    system = make_system()
    with pytest.raises(ConfigurationError, match="exception"):
        system.handle_error_sync("not an exception", {})  # type: ignore[arg-type]

    async def inside_a_loop() -> None:
        with pytest.raises(ConfigurationError, match="await handle_error"):
            system.handle_error_sync(ValueError("x"), {})

    asyncio.run(inside_a_loop())


def _assessment(**changes: Any) -> Assessment:
    base: dict[str, Any] = {
        "error_type": ErrorType.COMMUNICATION_ERROR,
        "severity": Severity.HIGH,
        "category": "network",
        "retryable": True,
        "agent_id": "a",
        "task_id": "t",
        "has_callback": True,
        "has_snapshot": False,
        "previous_failures": 0,
        "critical": False,
        "state_corrupted": False,
    }
    base.update(changes)
    return Assessment(**base)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, RecoveryStrategy.AUTO_RETRY),
        ({"error_type": ErrorType.INFINITE_LOOP}, RecoveryStrategy.ESCALATION),
        ({"error_type": ErrorType.INFINITE_LOOP, "has_snapshot": True}, RecoveryStrategy.HYBRID),
        ({"critical": True}, RecoveryStrategy.ESCALATION),
        ({"severity": Severity.CRITICAL, "has_snapshot": True}, RecoveryStrategy.HYBRID),
        ({"previous_failures": 3}, RecoveryStrategy.ESCALATION),
        ({"has_callback": False}, RecoveryStrategy.MANUAL),
        (
            {"has_callback": False, "has_snapshot": True, "state_corrupted": True},
            RecoveryStrategy.ROLLBACK,
        ),
        ({"error_type": ErrorType.CONFIGURATION_ERROR}, RecoveryStrategy.ESCALATION),
        ({"retry_after": 2.0}, RecoveryStrategy.CIRCUIT_BREAKER),
        ({"state_corrupted": True, "has_snapshot": True}, RecoveryStrategy.HYBRID),
    ],
)
def test_strategy_table(changes: dict[str, Any], expected: RecoveryStrategy) -> None:
    assert select_strategy(_assessment(**changes), max_auto_recovery_attempts=3) is expected
