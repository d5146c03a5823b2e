"""RollbackManager: snapshots, verified reads, rollback, retention and validation."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from _recovery_helpers import FakeClock, flip_byte, set_blob

import agentkeel
from agentkeel import ConfigurationError, EventType
from agentkeel.events import Event
from agentkeel.recovery import (
    CorruptSnapshotError,
    RollbackConfig,
    RollbackManager,
    Snapshot,
    StateEncodingError,
    UnknownSnapshotError,
)
from agentkeel.store import Store

STATE = {
    "model_version": "2.1.0",
    "training_progress": 0.85,
    "parameters": {"learning_rate": 0.001, "layers": [64, 32, None]},
    "done": False,
}
Events = Callable[[str], list[Event]]


def manager(store: Store, clock: FakeClock | None = None, **kw: Any) -> RollbackManager:
    return RollbackManager(store=store, clock=clock or FakeClock(), **kw)


# ------------------------------------------------------------------- the basics
def test_the_seed_flow_restores_an_equal_state(store: Store, events: Events) -> None:
    rollback = manager(store)

    async def main() -> str:
        return await rollback.create_snapshot(
            agent_id="trainer_01",
            task_id="model_training",
            state_data=STATE,
            metadata={"checkpoint": "before_fine_tuning"},
        )

    snapshot_id = asyncio.run(main())
    assert snapshot_id.startswith("snap_")
    result = asyncio.run(rollback.rollback("trainer_01"))
    assert result.success
    assert result.state == STATE
    assert result.state is not STATE
    assert (result.snapshot_id, result.task_id) == (snapshot_id, "model_training")
    assert result.metadata == {"checkpoint": "before_fine_tuning"}
    assert [(t.snapshot_id, t.outcome) for t in result.tried] == [(snapshot_id, "restored")]
    created = events(EventType.SNAPSHOT_CREATED)
    assert [e.attributes["snapshot_id"] for e in created] == [snapshot_id]
    assert created[0].attributes["compressed"] in (True, False)
    restored = events(EventType.SNAPSHOT_RESTORED)
    assert [e.attributes["snapshot_id"] for e in restored] == [snapshot_id]
    (note,) = store.list_interventions(agent_id="trainer_01")
    assert (note.kind, note.action, note.details["snapshot_id"]) == (
        "automatic",
        "rollback",
        snapshot_id,
    )


def test_sync_twins(store: Store) -> None:
    rollback = manager(store)
    first = rollback.create_snapshot_sync(agent_id="a", state_data={"step": 1})
    second = rollback.create_snapshot_sync(agent_id="a", state_data={"step": 2})
    assert rollback.rollback_sync("a").state == {"step": 2}
    assert rollback.rollback_sync("a", first).state == {"step": 1}
    snap = rollback.get_snapshot_sync(second)
    assert isinstance(snap, Snapshot)
    assert (snap.state, snap.agent_id, snap.task_id, snap.intact) == ({"step": 2}, "a", None, True)
    assert snap.to_dict()["state"] == {"step": 2}
    assert rollback.delete_snapshot_sync(second) is True
    assert rollback.delete_snapshot_sync(second) is False
    assert rollback.rollback_sync("a").snapshot_id == first


def test_list_snapshots_newest_first_with_their_integrity(store: Store, clock: FakeClock) -> None:
    rollback = manager(store, clock)
    ids = []
    for step in range(3):
        ids.append(rollback.create_snapshot_sync(agent_id="a", task_id="t", state_data=[step]))
        clock.advance(1)
    other = rollback.create_snapshot_sync(agent_id="b", state_data={})
    flip_byte(store, ids[1])
    listed = rollback.list_snapshots_sync("a")
    assert [s.snapshot_id for s in listed] == ids[::-1]
    assert [s.intact for s in listed] == [True, False, True]
    assert listed[0].created_at == clock.now - 1
    assert rollback.list_snapshots_sync()[0].snapshot_id == other
    assert rollback.list_snapshots_sync("a", task_id="nope") == []
    assert len(asyncio.run(rollback.list_snapshots("a", limit=2))) == 2
    assert listed[0].to_dict()["intact"] is True


def test_compression_is_used_when_it_helps(store: Store) -> None:
    rollback = manager(store)
    big = {"notes": ["the same words again"] * 500}
    snap = rollback.get_snapshot_sync(rollback.create_snapshot_sync(agent_id="a", state_data=big))
    assert snap.compressed
    assert snap.stored_size < snap.size / 10
    tiny = rollback.get_snapshot_sync(rollback.create_snapshot_sync(agent_id="a", state_data=1))
    assert not tiny.compressed  # zlib would only make two bytes longer
    plain = manager(store, compression=False)
    raw = plain.get_snapshot_sync(plain.create_snapshot_sync(agent_id="a", state_data=big))
    assert (raw.compressed, raw.stored_size, raw.state) == (False, raw.size, big)


def test_rollback_with_nothing_to_restore(store: Store) -> None:
    result = manager(store).rollback_sync("nobody")
    assert not result.success
    assert result.state is None
    assert "has no snapshot" in result.reason
    assert result.to_dict()["success"] is False


def test_rollback_can_be_limited_to_a_task(store: Store) -> None:
    rollback = manager(store)
    rollback.create_snapshot_sync(agent_id="a", task_id="t1", state_data="one")
    rollback.create_snapshot_sync(agent_id="a", task_id="t2", state_data="two")
    assert rollback.rollback_sync("a").state == "two"
    assert rollback.rollback_sync("a", task_id="t1").state == "one"


def test_the_default_store_is_the_process_store() -> None:
    agentkeel.configure(store="memory://")
    rollback = RollbackManager()
    snapshot_id = rollback.create_snapshot_sync(agent_id="a", state_data=[1])
    assert agentkeel.get_store().get_snapshot(snapshot_id) is not None
    assert rollback.rollback_sync("a").state == [1]


# ---------------------------------------------------------------------- corruption
def test_a_flipped_byte_is_never_restored(store: Store, events: Events, clock: FakeClock) -> None:
    rollback = manager(store, clock)
    good = rollback.create_snapshot_sync(agent_id="a", state_data={"v": "good"})
    clock.advance(1)
    bad = rollback.create_snapshot_sync(agent_id="a", state_data={"v": "bad"})
    flip_byte(store, bad, position=3)

    with pytest.raises(CorruptSnapshotError) as excinfo:
        rollback.get_snapshot_sync(bad)
    error = excinfo.value
    assert (error.snapshot_id, error.agent_id, error.fallback_id) == (bad, "a", good)
    assert "SHA-256 mismatch" in str(error)
    assert f"next older intact snapshot is {good!r}" in str(error)
    with pytest.raises(CorruptSnapshotError):
        rollback.rollback_sync("a", bad)

    result = rollback.rollback_sync("a")
    assert result.success
    assert (result.snapshot_id, result.state) == (good, {"v": "good"})
    assert [(t.snapshot_id, t.outcome) for t in result.tried] == [
        (bad, "corrupt"),
        (good, "restored"),
    ]
    assert "1 corrupt" in result.reason
    reported = events("snapshot.corrupt")
    assert len(reported) == 3  # get, explicit rollback, latest-good rollback
    assert {e.attributes["fallback_id"] for e in reported} == {good}
    assert reported[0].severity == agentkeel.Severity.HIGH
    restored = events(EventType.SNAPSHOT_RESTORED)
    assert restored[-1].attributes["skipped"] == [bad]


def test_when_every_snapshot_is_corrupt_nothing_is_restored(store: Store, events: Events) -> None:
    rollback = manager(store)
    ids = [rollback.create_snapshot_sync(agent_id="a", state_data=[i] * 50) for i in range(2)]
    for snapshot_id in ids:
        flip_byte(store, snapshot_id, position=0, mask=0xFF)
    result = rollback.rollback_sync("a")
    assert not result.success
    assert result.state is None
    assert "2 corrupt" in result.reason
    assert [t.outcome for t in result.tried] == ["corrupt", "corrupt"]
    assert [e.attributes["fallback_id"] for e in events("snapshot.corrupt")] == [None, None]
    with pytest.raises(CorruptSnapshotError, match="has no older intact snapshot") as excinfo:
        rollback.get_snapshot_sync(ids[1])
    assert excinfo.value.fallback_id is None
    assert store.list_interventions(agent_id="a") == []


def test_a_truncated_or_emptied_blob_is_corrupt(store: Store) -> None:
    rollback = manager(store)
    first = rollback.create_snapshot_sync(agent_id="a", state_data={"k": "v" * 100})
    second = rollback.create_snapshot_sync(agent_id="a", state_data={"k": "w" * 100})
    record = store.get_snapshot(first)
    assert record is not None
    set_blob(store, first, record.blob[:-5])
    set_blob(store, second, b"")
    for snapshot_id in (first, second):
        with pytest.raises(CorruptSnapshotError):
            rollback.get_snapshot_sync(snapshot_id)
    assert not rollback.rollback_sync("a").success


# ----------------------------------------------------------------------- retention
def test_max_snapshots_is_enforced_per_agent(store: Store, events: Events) -> None:
    rollback = manager(store, max_snapshots=3)
    ids = [rollback.create_snapshot_sync(agent_id="a", state_data=i) for i in range(5)]
    other = rollback.create_snapshot_sync(agent_id="b", state_data="b")
    assert [r.snapshot_id for r in store.list_snapshots(agent_id="a")] == ids[:1:-1]
    assert store.get_snapshot(other) is not None
    pruned = [e.attributes["pruned"] for e in events(EventType.SNAPSHOT_CREATED)]
    assert pruned == [[], [], [], [ids[0]], [ids[1]], []]


def test_old_snapshots_are_never_restored_and_are_pruned(store: Store, clock: FakeClock) -> None:
    rollback = manager(store, clock, cleanup_after_hours=24)
    old = rollback.create_snapshot_sync(agent_id="a", state_data="old")
    clock.advance(24 * 3600 + 1)
    assert store.get_snapshot(old) is not None  # not yet pruned …
    assert rollback.list_snapshots_sync("a") == []  # … but no longer offered
    assert not rollback.rollback_sync("a").success
    with pytest.raises(UnknownSnapshotError, match="older than cleanup_after_hours"):
        rollback.get_snapshot_sync(old)
    rollback.create_snapshot_sync(agent_id="a", state_data="new")
    assert store.get_snapshot(old) is None  # taking a snapshot pruned it
    assert rollback.rollback_sync("a").state == "new"


def test_cleanup_enforces_retention_for_every_agent(store: Store, clock: FakeClock) -> None:
    rollback = manager(store, clock, cleanup_after_hours=timedelta(hours=1), max_snapshots=2)
    early = [rollback.create_snapshot_sync(agent_id=a, state_data=a) for a in ("a", "b")]
    clock.advance(1800)
    rollback.create_snapshot_sync(agent_id="a", state_data=1)
    clock.advance(1801)
    assert sorted(rollback.cleanup_sync()) == sorted(early)
    assert asyncio.run(rollback.cleanup("a")) == []
    unlimited = manager(store, clock, cleanup_after_hours=None)
    clock.advance(10 * 365 * 86400)
    assert unlimited.rollback_sync("a").state == 1


# ---------------------------------------------------------------------- validation
def test_a_refused_snapshot_is_skipped_for_an_older_one(store: Store) -> None:
    seen: list[Any] = []

    def healthy(snapshot: Snapshot) -> bool:
        seen.append(snapshot.state)
        return snapshot.state["healthy"] is True

    rollback = manager(store, validator=healthy)
    good = rollback.create_snapshot_sync(agent_id="a", state_data={"healthy": True, "n": 1})
    bad = rollback.create_snapshot_sync(agent_id="a", state_data={"healthy": False, "n": 2})
    result = rollback.rollback_sync("a")
    assert (result.success, result.snapshot_id, result.state["n"]) == (True, good, 1)
    assert [(t.snapshot_id, t.outcome) for t in result.tried] == [
        (bad, "rejected"),
        (good, "restored"),
    ]
    assert "refused by the validator" in result.reason
    assert [s["n"] for s in seen] == [2, 1]

    explicit = rollback.rollback_sync("a", bad)  # asked for by name: no substitute
    assert not explicit.success
    assert explicit.state is None
    assert "was refused: the validator returned False" in explicit.reason
    # A per-call validator replaces the manager's.
    assert rollback.rollback_sync("a", bad, validate=lambda s: True).state["n"] == 2


def test_async_validators(store: Store) -> None:
    async def only_even(snapshot: Snapshot) -> bool:
        await asyncio.sleep(0)
        return bool(snapshot.state % 2 == 0)

    rollback = manager(store, validator=only_even)
    for n in (2, 3):
        rollback.create_snapshot_sync(agent_id="a", state_data=n)
    assert asyncio.run(rollback.rollback("a")).state == 2
    with pytest.raises(ConfigurationError, match="validator is async"):
        rollback.rollback_sync("a")


def test_a_validator_that_raises_is_not_swallowed(store: Store) -> None:
    class Broken(Exception):
        pass

    def broken(snapshot: Snapshot) -> bool:
        raise Broken("validator bug")

    rollback = manager(store, validator=broken)
    rollback.create_snapshot_sync(agent_id="a", state_data=1)
    with pytest.raises(Broken):
        rollback.rollback_sync("a")
    with pytest.raises(Broken):
        asyncio.run(rollback.rollback("a"))


def test_a_manual_rollback_is_noted_as_such(store: Store) -> None:
    rollback = manager(store)
    rollback.create_snapshot_sync(agent_id="a", state_data=1)
    rollback.rollback_sync("a", kind="manual", actor="alice")
    (note,) = store.list_interventions(agent_id="a")
    assert (note.kind, note.actor) == ("manual", "alice")
    quiet = manager(store, record_interventions=False)
    quiet.rollback_sync("a")
    assert len(store.list_interventions(agent_id="a")) == 1


# -------------------------------------------------------------------------- hooks
@dataclasses.dataclass
class Point:
    x: int
    y: int


def encode(value: object) -> object:
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "iso": value.isoformat()}
    if isinstance(value, Point):
        return {"type": "Point", **dataclasses.asdict(value)}
    raise TypeError(f"cannot encode {type(value).__name__}")


def decode(data: Any) -> object:
    if data["type"] == "datetime":
        return dt.datetime.fromisoformat(data["iso"])
    return Point(data["x"], data["y"])


def test_hooks_carry_custom_types(memory_store: Store) -> None:
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    state = {"when": when, "at": [Point(1, 2)], "type": "plain dict, not a hook's"}
    rollback = manager(memory_store, encode_hook=encode, decode_hook=decode)
    rollback.create_snapshot_sync(agent_id="a", state_data=state)
    assert rollback.rollback_sync("a").state == state
    # Without a decode_hook (the CLI, say) the hook's output comes back as stored.
    viewer = manager(memory_store)
    assert viewer.rollback_sync("a").state["at"] == [{"type": "Point", "x": 1, "y": 2}]


def test_a_value_json_cannot_hold_names_its_path_and_the_hook(memory_store: Store) -> None:
    rollback = manager(memory_store)
    with pytest.raises(StateEncodingError) as excinfo:
        rollback.create_snapshot_sync(
            agent_id="a", state_data={"plan": {"steps": [1, {"when": dt.date(2025, 1, 1)}]}}
        )
    message = str(excinfo.value)
    assert "state_data.plan.steps[1].when is a datetime.date" in message
    assert "encode_hook" in message
    assert "RollbackManager" in message
    assert isinstance(excinfo.value, TypeError)
    with pytest.raises(StateEncodingError, match="set"):
        rollback.create_snapshot_sync(agent_id="a", state_data={"tags": {"x"}})
    hooked = manager(memory_store, encode_hook=encode)
    with pytest.raises(StateEncodingError, match="refused it"):
        hooked.create_snapshot_sync(agent_id="a", state_data=[b"bytes"])
    assert memory_store.list_snapshots() == []


# ----------------------------------------------------------------------- bad input
def test_bad_arguments_say_what_is_wrong(memory_store: Store) -> None:
    rollback = manager(memory_store)
    with pytest.raises(ConfigurationError, match="agent_id must be a non-empty string"):
        rollback.create_snapshot_sync(agent_id="", state_data={})
    with pytest.raises(ConfigurationError, match="task_id"):
        rollback.create_snapshot_sync(agent_id="a", task_id=" ", state_data={})
    with pytest.raises(ConfigurationError, match="metadata must be a dict"):
        rollback.create_snapshot_sync(agent_id="a", state_data={}, metadata=[1])  # type: ignore[arg-type]
    with pytest.raises(UnknownSnapshotError, match="keel snapshots") as excinfo:
        rollback.get_snapshot_sync("snap_missing")
    assert isinstance(excinfo.value, LookupError)
    with pytest.raises(UnknownSnapshotError):
        rollback.rollback_sync("a", "snap_missing")
    theirs = rollback.create_snapshot_sync(agent_id="b", state_data=1)
    with pytest.raises(UnknownSnapshotError, match="belongs to agent 'b'"):
        rollback.rollback_sync("a", theirs)
    with pytest.raises(ConfigurationError, match="kind"):
        rollback.rollback_sync("b", kind="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="limit"):
        rollback.list_snapshots_sync(limit=0)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"max_snapshots": 0}, "max_snapshots must be an integer >= 1"),
        ({"max_snapshots": 2.5}, "max_snapshots"),
        ({"cleanup_after_hours": -1}, "cleanup_after_hours must be a positive number of hours"),
        ({"cleanup_after_hours": 0}, "cleanup_after_hours"),
        ({"cleanup_after_hours": float("nan")}, "cleanup_after_hours"),
        ({"cleanup_after_hours": "24h"}, "cleanup_after_hours"),
        ({"compression": "yes"}, "compression must be True or False"),
        ({"validator": 42}, "validator must be callable"),
        ({"encode_hook": "json"}, "encode_hook must be callable"),
    ],
)
def test_bad_settings_are_refused_at_construction(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RollbackManager(**settings)


def test_config_from_a_seed_dict() -> None:
    config = RollbackConfig.from_dict(
        {
            "max_snapshots": 20,
            "cleanup_after_hours": 48,
            "compression_enabled": False,
            "verification_enabled": True,
            "backup_to_remote": False,
        }
    )
    assert config == RollbackConfig(max_snapshots=20, cleanup_after_hours=48.0, compression=False)
    assert config.retention_seconds == 48 * 3600
    assert RollbackConfig(cleanup_after_hours=timedelta(minutes=90)).cleanup_after_hours == 1.5
    with pytest.raises(ConfigurationError) as excinfo:
        RollbackConfig.from_dict({"max_snapshot": 5, "cleanup_hours": 1})
    assert "unknown rollback setting(s) cleanup_hours, max_snapshot" in str(excinfo.value)
    assert "allowed are backup_to_remote, cleanup_after_hours, compression" in str(excinfo.value)
    with pytest.raises(ConfigurationError, match="checksums are always verified"):
        RollbackConfig.from_dict({"verification_enabled": False})
    with pytest.raises(ConfigurationError, match="PostgreSQL store"):
        RollbackConfig.from_dict({"backup_to_remote": True})
    with pytest.raises(ConfigurationError, match="twice"):
        RollbackConfig.from_dict({"compression": True, "compression_enabled": False})
    with pytest.raises(ConfigurationError, match="must be a dict"):
        RollbackConfig.from_dict([("max_snapshots", 1)])  # type: ignore[arg-type]


def test_from_config(memory_store: Store) -> None:
    built = RollbackManager.from_config({"max_snapshots": 2}, store=memory_store)
    assert built.config.max_snapshots == 2
    assert "max_snapshots=2" in repr(built)
    default = RollbackManager.from_config(store=memory_store)
    assert default.config == RollbackConfig()
    same = RollbackManager.from_config(RollbackConfig(compression=False), store=memory_store)
    assert same.config.compression is False
    assert same.store is memory_store
