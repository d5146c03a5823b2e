"""Failures recorded by the tracker reach the store through the pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

import agentkeel
from agentkeel.tracking import (
    FailureTracker,
    TrackedToolRegistry,
    TrackingSettings,
    get_failure_tracker,
    track_node,
)


def weather(city: str) -> str:
    raise TimeoutError(f"weather timed out for {city}")


@pytest.fixture(params=["memory", "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'keel.db'}"


def test_failures_and_recoveries_reach_the_store(store_url: str, tmp_path: Path) -> None:
    agentkeel.configure(store=store_url)
    with agentkeel.run("plan-trip", user_id="u1") as scope:
        tracker = FailureTracker(runtime_dir=tmp_path, settings=TrackingSettings())
        registry = TrackedToolRegistry({"weather": weather}, tracker=tracker)

        @track_node("executor", tracker=tracker, recover=lambda exc, city: "unknown weather")
        def executor(city: str) -> str:
            return registry.call("weather", city)

        assert executor("Paris") == "unknown weather"
        tracker.record_failure(ValueError("Invalid date format"), graph_node="intent_parser")
    assert agentkeel.flush(timeout=10)

    stored = agentkeel.get_store().list_failures(run_id=scope.run_id)
    assert sorted(f.failure_id for f in stored) == sorted(f.failure_id for f in tracker.failures)
    by_id = {f.failure_id: f for f in stored}
    for record in tracker.failures:
        got = by_id[record.failure_id]
        assert (got.category, got.severity, got.graph_node, got.tool_name) == (
            record.category,
            record.severity,
            record.graph_node,
            record.tool_name,
        )
        assert got.recovered == record.recovered
        assert got.recovery_action == record.recovery_action
        assert got.fingerprint == record.fingerprint
        assert got.user_id == "u1"
    run = agentkeel.get_store().get_run(scope.run_id)
    assert run.failure_count == 2
    assert run.recovered_count == 1


def test_default_tracker_follows_the_run_into_the_store(store_url: str) -> None:
    agentkeel.configure(store=store_url)
    with agentkeel.run("r") as scope:
        registry = TrackedToolRegistry({"weather": weather})
        with pytest.raises(TimeoutError):
            registry.call("weather", "Oslo")
        assert get_failure_tracker().run_id == scope.run_id
    assert agentkeel.flush(timeout=10)
    (stored,) = agentkeel.get_store().list_failures(run_id=scope.run_id)
    assert (stored.tool_name, stored.category) == ("weather", "timeout")
