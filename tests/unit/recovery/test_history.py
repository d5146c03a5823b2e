"""HistoryManager: numbered versions, diffs, interventions, the timeline and retention."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from _recovery_helpers import FakeClock, set_version_blob

from agentkeel import ConfigurationError
from agentkeel.recovery import (
    Change,
    CorruptVersionError,
    HistoryConfig,
    HistoryManager,
    RollbackManager,
    StateEncodingError,
    StateVersion,
    UnknownVersionError,
)
from agentkeel.recovery._history import parse_version
from agentkeel.store import Store

DAY = 86_400.0


def history(store: Store, clock: FakeClock | None = None, **kw: Any) -> HistoryManager:
    return HistoryManager(store=store, clock=clock or FakeClock(), **kw)


def test_the_seed_flow(store: Store) -> None:
    manager = history(store)

    async def main() -> tuple[str, str, Any]:
        first = await manager.record_state(
            agent_id="agent_01",
            task_id="task_01",
            state_data={"status": "running", "result": None},
            metadata={"phase": "work"},
        )
        second = await manager.record_state(
            agent_id="agent_01",
            task_id="task_01",
            state_data={"status": "completed", "result": "success"},
            metadata={"phase": "final"},
        )
        comparison = await manager.compare_versions("agent_01", "task_01", "v0001", "v0002")
        return first, second, comparison

    first, second, comparison = asyncio.run(main())
    assert (first, second) == ("v0001", "v0002")
    assert comparison.total_changes == 2
    assert comparison.changed == (  # stored states come back with their keys sorted
        Change("result", None, "success"),
        Change("status", "running", "completed"),
    )
    assert comparison.to_dict()["total_changes"] == 2


def test_versions_read_back_verified(store: Store, clock: FakeClock) -> None:
    manager = history(store, clock)
    state = {"plan": {"steps": [{"tool": "search"}, {"tool": "book"}]}, "score": 0.5}
    manager.record_state_sync(agent_id="a", task_id="t", state_data=state, metadata={"m": 1})
    got = manager.get_version_sync("a", "t", "v0001")
    assert isinstance(got, StateVersion)
    assert (got.state, got.version, got.version_id, got.metadata) == (state, 1, "v0001", {"m": 1})
    assert (got.created_at, got.intact) == (clock.now, True)
    assert manager.get_version_sync("a", "t", 1).state == state
    assert asyncio.run(manager.get_version("a", "t", "1")).state == state
    assert got.to_dict()["state"] == state


def test_list_versions_is_chronological(store: Store, clock: FakeClock) -> None:
    manager = history(store, clock)
    for step in range(4):
        manager.record_state_sync(agent_id="a", task_id="t", state_data={"step": step})
        clock.advance(1)
    manager.record_state_sync(agent_id="a", task_id="other", state_data={})
    versions = manager.list_versions_sync("a", "t")
    assert [v.version_id for v in versions] == ["v0001", "v0002", "v0003", "v0004"]
    assert all(v.intact for v in versions)
    assert [v.version_id for v in manager.list_versions_sync("a", "t", limit=2)] == [
        "v0003",
        "v0004",
    ]
    every = asyncio.run(manager.list_versions("a"))
    assert [(v.task_id, v.version_id) for v in every][-1] == ("other", "v0001")
    assert every[0].to_dict()["version_id"] == "v0001"


def test_compare_any_two_versions(store: Store) -> None:
    manager = history(store)
    states = [
        {"plan": {"steps": ["search", "book", "pay"]}, "notes": "x"},
        {"plan": {"steps": ["search", "book", "refund"]}, "notes": "x"},
        {"plan": {"steps": ["search"]}, "budget": 100},
    ]
    for state in states:
        manager.record_state_sync(agent_id="a", task_id="t", state_data=state)
    one_three = manager.compare_versions_sync("a", "t", "v0001", "v0003")
    assert one_three.added == ("budget",)
    assert set(one_three.removed) == {"plan.steps[1]", "plan.steps[2]", "notes"}
    assert one_three.total_changes == 4
    assert manager.compare_versions_sync("a", "t", 2, 2).total_changes == 0
    assert manager.compare_versions_sync("a", "t", "v0001", "v0002").changed == (
        Change("plan.steps[2]", "pay", "refund"),
    )


def test_a_corrupt_version_is_never_returned(store: Store) -> None:
    manager = history(store)
    for step in range(2):
        manager.record_state_sync(agent_id="a", task_id="t", state_data={"step": step})
    set_version_blob(store, "a", "t", 1, b'{"step":99}')
    with pytest.raises(CorruptVersionError, match="v0001 of agent 'a', task 't' is corrupt"):
        manager.get_version_sync("a", "t", "v0001")
    with pytest.raises(CorruptVersionError, match="SHA-256 mismatch"):
        manager.compare_versions_sync("a", "t", "v0001", "v0002")
    assert [v.intact for v in manager.list_versions_sync("a", "t")] == [False, True]


def test_unknown_versions_say_what_there_is(store: Store) -> None:
    manager = history(store)
    with pytest.raises(UnknownVersionError, match="it has no recorded versions"):
        manager.get_version_sync("a", "t", "v0001")
    for _ in range(3):
        manager.record_state_sync(agent_id="a", task_id="t", state_data={})
    with pytest.raises(UnknownVersionError) as excinfo:
        manager.compare_versions_sync("a", "t", "v0001", "v0009")
    assert "there is no v0009; it has v0001 … v0003 (3)" in str(excinfo.value)
    assert "keel history a --task t" in str(excinfo.value)
    assert isinstance(excinfo.value, LookupError)


# ----------------------------------------------------------------------- retention
def test_max_versions_is_enforced_per_task(store: Store) -> None:
    manager = history(store, max_versions=3)
    for step in range(5):
        manager.record_state_sync(agent_id="a", task_id="t", state_data=step)
    manager.record_state_sync(agent_id="a", task_id="u", state_data="u")
    assert [v.version_id for v in manager.list_versions_sync("a", "t")] == [
        "v0003",
        "v0004",
        "v0005",
    ]
    assert len(store.list_state_versions(agent_id="a", task_id="t")) == 3
    with pytest.raises(UnknownVersionError, match="v0001"):
        manager.get_version_sync("a", "t", "v0001")
    assert manager.record_state_sync(agent_id="a", task_id="t", state_data=6) == "v0006"


def test_retention_days_is_enforced(store: Store, clock: FakeClock) -> None:
    manager = history(store, clock, retention_days=7)
    manager.record_state_sync(agent_id="a", task_id="t", state_data="old")
    manager.record_intervention_sync(agent_id="a", actor="bob", action="pause")
    clock.advance(7 * DAY + 1)
    assert manager.list_versions_sync("a", "t") == []  # hidden before it is pruned
    assert manager.get_timeline_sync("a") == []
    with pytest.raises(UnknownVersionError, match="older than retention_days"):
        manager.get_version_sync("a", "t", 1)
    assert len(store.list_state_versions(agent_id="a")) == 1
    assert manager.record_state_sync(agent_id="a", task_id="t", state_data="new") == "v0002"
    assert [r.version for r in store.list_state_versions(agent_id="a")] == [2]
    assert manager.cleanup_sync() == {"versions": 0, "interventions": 1}


def test_cleanup_for_every_agent(store: Store, clock: FakeClock) -> None:
    manager = history(store, clock, retention_days=timedelta(hours=1), max_versions=5)
    for agent in ("a", "b"):
        manager.record_state_sync(agent_id=agent, task_id="t", state_data=agent)
    clock.advance(3601)
    assert asyncio.run(manager.cleanup()) == {"versions": 2, "interventions": 0}
    assert HistoryManager(store=store, retention_days=None).cleanup_sync("a") == {
        "versions": 0,
        "interventions": 0,
    }


# ------------------------------------------------------------------ interventions
def test_the_timeline_merges_versions_and_interventions(store: Store, clock: FakeClock) -> None:
    manager = history(store, clock)
    rollback = RollbackManager(store=store, clock=clock)
    manager.record_state_sync(agent_id="a", task_id="t", state_data={"n": 1})
    rollback.create_snapshot_sync(agent_id="a", task_id="t", state_data={"n": 1})
    clock.advance(10)
    manager.record_state_sync(agent_id="a", task_id="t", state_data={"n": 2})
    clock.advance(10)
    paused = manager.record_intervention_sync(
        agent_id="a", task_id="t", actor="alice", action="pause", details={"why": "loop"}
    )
    assert (paused.kind, paused.details, paused.at) == ("manual", {"why": "loop"}, clock.now)
    clock.advance(10)
    rollback.rollback_sync("a")  # noted as an automatic intervention
    clock.advance(10)
    manager.record_state_sync(agent_id="a", task_id="t", state_data={"n": 1})

    timeline = manager.get_timeline_sync("a")
    assert [e.summary for e in timeline] == [
        "state v0001 of task t, 7 bytes",
        "state v0002 of task t, 7 bytes",
        "manual pause by alice",
        "automatic rollback by agentkeel.rollback",
        "state v0003 of task t, 7 bytes",
    ]
    assert [e.entry for e in timeline] == [
        "version",
        "version",
        "intervention",
        "intervention",
        "version",
    ]
    assert [e.at for e in timeline] == sorted(e.at for e in timeline)
    assert [e.summary for e in manager.get_timeline_sync("a", limit=2)] == [
        "automatic rollback by agentkeel.rollback",
        "state v0003 of task t, 7 bytes",
    ]
    as_dict = timeline[2].to_dict()
    assert as_dict["intervention"]["actor"] == "alice"
    assert as_dict["version"] is None
    assert asyncio.run(manager.get_timeline("a", "t"))[0].version is not None


def test_interventions_are_bounded_per_agent(store: Store, clock: FakeClock) -> None:
    manager = history(store, clock, max_interventions=2)
    for i in range(4):
        asyncio.run(
            manager.record_intervention(
                agent_id="a", kind="automatic", actor="loop-guard", action=f"pause-{i}"
            )
        )
        clock.advance(1)
    actions = [e.intervention.action for e in manager.get_timeline_sync("a") if e.intervention]
    assert actions == ["pause-2", "pause-3"]


# ----------------------------------------------------------------------- bad input
def test_bad_arguments_say_what_is_wrong(memory_store: Store) -> None:
    manager = history(memory_store)
    with pytest.raises(ConfigurationError, match="agent_id"):
        manager.record_state_sync(agent_id="", task_id="t", state_data={})
    with pytest.raises(ConfigurationError, match="task_id"):
        manager.record_state_sync(agent_id="a", task_id=None, state_data={})  # type: ignore[arg-type]
    with pytest.raises(StateEncodingError, match="HistoryManager"):
        manager.record_state_sync(agent_id="a", task_id="t", state_data={"when": object()})
    with pytest.raises(ConfigurationError, match="'manual' \\(by a person\\) or 'automatic'"):
        manager.record_intervention_sync(agent_id="a", kind="auto", actor="x", action="y")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="actor"):
        manager.record_intervention_sync(agent_id="a", actor="", action="y")
    with pytest.raises(ConfigurationError, match="details must be a dict"):
        manager.record_intervention_sync(agent_id="a", actor="x", action="y", details="no")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="v0001, v0002"):
        manager.get_version_sync("a", "t", "latest")


@pytest.mark.parametrize(
    ("value", "number"), [("v0001", 1), ("V12", 12), ("7", 7), (3, 3), (" v0010 ", 10)]
)
def test_version_ids(value: object, number: int) -> None:
    assert parse_version(value) == number


@pytest.mark.parametrize("value", ["v0", "v-1", "x1", "", 0, -2, True, 1.0, None])
def test_bad_version_ids(value: object) -> None:
    with pytest.raises(ConfigurationError):
        parse_version(value)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"max_versions": 0}, "max_versions"),
        ({"retention_days": -1}, "retention_days must be a positive number of days"),
        ({"retention_days": timedelta(0)}, "retention_days"),
        ({"compression": 1}, "compression"),
        ({"max_interventions": -5}, "max_interventions"),
        ({"decode_hook": 3}, "decode_hook must be callable"),
    ],
)
def test_bad_settings(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        HistoryManager(**settings)


def test_config_from_a_seed_dict(memory_store: Store) -> None:
    config = HistoryConfig.from_dict(
        {"max_versions": 200, "retention_days": 60, "compression_enabled": True}
    )
    assert config == HistoryConfig(max_versions=200, retention_days=60.0)
    assert config.retention_seconds == 60 * DAY
    assert HistoryConfig(retention_days=timedelta(hours=12)).retention_days == 0.5
    assert HistoryConfig(retention_days=None).retention_seconds is None
    with pytest.raises(ConfigurationError) as excinfo:
        HistoryConfig.from_dict({"max_version": 1})
    assert "unknown history setting(s) max_version: allowed are compression" in str(excinfo.value)
    manager = HistoryManager.from_config({"max_versions": 7}, store=memory_store)
    assert manager.config.max_versions == 7
    assert "max_versions=7" in repr(manager)
    assert HistoryManager.from_config(store=memory_store).config == HistoryConfig()
    assert HistoryManager.from_config(config, store=memory_store).config is not None
