"""Snapshots, state versions and interventions: memory, SQLite and PostgreSQL answer alike."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentkeel import ConfigurationError, SchemaVersionError, StoreError
from agentkeel.store import InterventionRecord, SnapshotRecord, Store, _schema, open_store
from agentkeel.store._postgres import parse_url

T0 = 1_700_000_000.0


def snapshot(
    snapshot_id: str,
    agent_id: str = "agent-1",
    *,
    task_id: str | None = "task-1",
    at: float = T0,
    blob: bytes = b'{"x":1}',
    metadata: dict[str, Any] | None = None,
) -> SnapshotRecord:
    return SnapshotRecord(
        snapshot_id=snapshot_id,
        agent_id=agent_id,
        task_id=task_id,
        created_at=at,
        checksum=hashlib.sha256(blob).hexdigest(),
        compressed=False,
        size=len(blob),
        blob=blob,
        metadata=metadata or {},
    )


def version(store: Store, agent_id: str = "agent-1", task_id: str = "task-1", **kw: Any) -> int:
    blob: bytes = kw.pop("blob", b"[1,2,3]")
    record = store.save_state_version(
        agent_id=agent_id,
        task_id=task_id,
        created_at=kw.pop("at", T0),
        checksum=hashlib.sha256(blob).hexdigest(),
        compressed=kw.pop("compressed", False),
        size=len(blob),
        blob=blob,
        metadata=kw.pop("metadata", None),
    )
    return record.version


def intervention(
    intervention_id: str,
    agent_id: str = "agent-1",
    *,
    task_id: str | None = None,
    at: float = T0,
    kind: str = "manual",
) -> InterventionRecord:
    return InterventionRecord(
        intervention_id=intervention_id,
        agent_id=agent_id,
        task_id=task_id,
        at=at,
        kind=kind,
        actor="alice",
        action="pause",
        details={"why": "looping", "n": 3},
    )


# ---------------------------------------------------------------------- snapshots
def test_a_snapshot_reads_back_byte_for_byte(store: Store) -> None:
    blob = bytes(range(256)) * 4  # every byte value, NUL included
    record = snapshot("s1", blob=blob, metadata={"checkpoint": "before", "n": [1, 2]})
    store.save_snapshot(record)
    assert store.get_snapshot("s1") == record
    assert store.get_snapshot("nope") is None


def test_snapshot_ids_are_unique(store: Store) -> None:
    store.save_snapshot(snapshot("s1"))
    with pytest.raises(StoreError, match="already exists"):
        store.save_snapshot(snapshot("s1", blob=b"other"))
    assert store.get_snapshot("s1") == snapshot("s1")


def test_snapshots_list_newest_saved_first_with_filters(store: Store) -> None:
    # Saved order wins over created_at: a clock can stand still or step back.
    store.save_snapshot(snapshot("a", at=T0 + 5))
    store.save_snapshot(snapshot("b", at=T0 + 5))
    store.save_snapshot(snapshot("c", at=T0 + 1, task_id="task-2"))
    store.save_snapshot(snapshot("d", "agent-2", task_id=None))
    ids = [r.snapshot_id for r in store.list_snapshots()]
    assert ids == ["d", "c", "b", "a"]
    assert [r.snapshot_id for r in store.list_snapshots(agent_id="agent-1")] == ["c", "b", "a"]
    assert [r.snapshot_id for r in store.list_snapshots(agent_id="agent-1", task_id="task-1")] == [
        "b",
        "a",
    ]
    assert [r.snapshot_id for r in store.list_snapshots(limit=2)] == ["d", "c"]
    assert store.list_snapshots(agent_id="agent-2")[0].task_id is None
    assert store.list_snapshots(agent_id="nobody") == []


def test_deleting_snapshots_counts_what_went(store: Store) -> None:
    for name in ("a", "b", "c"):
        store.save_snapshot(snapshot(name))
    assert store.delete_snapshots(["a", "c", "zz"]) == 2
    assert store.delete_snapshots([]) == 0
    assert [r.snapshot_id for r in store.list_snapshots()] == ["b"]


def test_pruning_snapshots_by_count_per_agent_and_by_age(store: Store) -> None:
    for i in range(5):
        store.save_snapshot(snapshot(f"a{i}", "agent-1", at=T0 + i))
        store.save_snapshot(snapshot(f"b{i}", "agent-2", at=T0 + i))
    assert store.prune_snapshots(agent_id="agent-1", keep=3) == ["a0", "a1"]
    assert len(store.list_snapshots(agent_id="agent-2")) == 5  # the other agent untouched
    assert store.prune_snapshots(keep=4) == ["b0"]
    assert store.prune_snapshots(older_than=T0 + 3) == ["a2", "b1", "b2"]
    remaining = {r.snapshot_id for r in store.list_snapshots()}
    assert remaining == {"a3", "a4", "b3", "b4"}
    assert store.prune_snapshots() == []  # no rule, nothing deleted
    assert store.prune_snapshots(agent_id="agent-2", keep=0) == ["b3", "b4"]


# ----------------------------------------------------------------- state versions
def test_versions_are_numbered_per_agent_and_task(store: Store) -> None:
    assert [version(store) for _ in range(3)] == [1, 2, 3]
    assert version(store, task_id="task-2") == 1
    assert version(store, agent_id="agent-2") == 1
    record = store.get_state_version("agent-1", "task-1", 2)
    assert record is not None
    assert (record.version, record.version_id, record.blob) == (2, "v0002", b"[1,2,3]")
    assert store.get_state_version("agent-1", "task-1", 9) is None


def test_a_version_reads_back_as_written(store: Store) -> None:
    blob = b"\x00\xff" * 100
    number = version(store, blob=blob, compressed=True, metadata={"phase": "final"}, at=T0 + 0.25)
    record = store.get_state_version("agent-1", "task-1", number)
    assert record is not None
    assert record.blob == blob
    assert record.compressed is True
    assert record.created_at == T0 + 0.25
    assert record.metadata == {"phase": "final"}
    assert record.checksum == hashlib.sha256(blob).hexdigest()


def test_versions_list_newest_first(store: Store) -> None:
    version(store, at=T0 + 1)
    version(store, task_id="task-2", at=T0 + 2)
    version(store, at=T0 + 3)
    version(store, agent_id="agent-2", at=T0 + 4)
    listed = [(r.task_id, r.version) for r in store.list_state_versions(agent_id="agent-1")]
    assert listed == [("task-1", 2), ("task-2", 1), ("task-1", 1)]
    only = store.list_state_versions(agent_id="agent-1", task_id="task-1", limit=1)
    assert [r.version for r in only] == [2]


def test_pruned_version_numbers_are_never_reused(store: Store) -> None:
    for i in range(5):
        version(store, at=T0 + i)
    version(store, task_id="other")
    assert store.prune_state_versions(agent_id="agent-1", task_id="task-1", keep=2) == 3
    assert [r.version for r in store.list_state_versions(agent_id="agent-1", task_id="task-1")] == [
        5,
        4,
    ]
    assert store.prune_state_versions(older_than=T0 + 100) == 3  # both tasks, every agent
    assert store.list_state_versions(agent_id="agent-1") == []
    assert version(store) == 6
    assert store.prune_state_versions() == 0


def test_pruning_versions_keeps_each_task_separately(store: Store) -> None:
    for task in ("t1", "t2"):
        for _ in range(3):
            version(store, task_id=task)
    assert store.prune_state_versions(keep=1) == 4
    kept = {(r.task_id, r.version) for r in store.list_state_versions(agent_id="agent-1")}
    assert kept == {("t1", 3), ("t2", 3)}


def test_concurrent_writers_get_distinct_version_numbers(store: Store) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                version(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = sorted(r.version for r in store.list_state_versions(agent_id="agent-1"))
    assert numbers == list(range(1, 41))


# ------------------------------------------------------------------ interventions
def test_interventions_list_newest_first(store: Store) -> None:
    store.add_intervention(intervention("i1", at=T0 + 1, task_id="task-1"))
    store.add_intervention(intervention("i2", at=T0 + 2, kind="automatic"))
    store.add_intervention(intervention("i3", at=T0 + 2))  # same instant: saved later first
    store.add_intervention(intervention("i4", "agent-2", at=T0 + 3))
    listed = store.list_interventions(agent_id="agent-1")
    assert [r.intervention_id for r in listed] == ["i3", "i2", "i1"]
    assert listed[1].kind == "automatic"
    assert listed[2] == intervention("i1", at=T0 + 1, task_id="task-1")
    only = store.list_interventions(agent_id="agent-1", task_id="task-1")
    assert [r.intervention_id for r in only] == ["i1"]
    assert len(store.list_interventions(agent_id="agent-1", limit=1)) == 1
    with pytest.raises(StoreError, match="already exists"):
        store.add_intervention(intervention("i1"))


def test_pruning_interventions(store: Store) -> None:
    for i in range(4):
        store.add_intervention(intervention(f"a{i}", at=T0 + i))
        store.add_intervention(intervention(f"b{i}", "agent-2", at=T0 + i))
    assert store.prune_interventions(agent_id="agent-1", keep=1) == 3
    assert store.prune_interventions(older_than=T0 + 2) == 2
    left = {r.intervention_id for a in ("agent-1", "agent-2") for r in
            store.list_interventions(agent_id=a)}  # fmt: skip
    assert left == {"a3", "b2", "b3"}
    assert store.prune_interventions() == 0


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.save_snapshot(snapshot("s", "")),
        lambda s: s.save_snapshot(snapshot("", "a")),
        lambda s: s.save_snapshot(snapshot("s", "a\x00b")),
        lambda s: s.save_snapshot(snapshot("s", at=float("nan"))),
        lambda s: s.save_snapshot(snapshot("s", task_id="")),
        lambda s: s.get_snapshot(""),
        lambda s: s.list_snapshots(limit=-1),
        lambda s: s.delete_snapshots("abc"),
        lambda s: s.prune_snapshots(keep=-1),
        lambda s: s.prune_snapshots(older_than="yesterday"),
        lambda s: version(s, agent_id=""),
        lambda s: version(s, task_id=None),
        lambda s: s.get_state_version("a", "t", -1),
        lambda s: s.list_state_versions(agent_id=""),
        lambda s: s.add_intervention(intervention("i", kind="sometimes")),
        lambda s: s.prune_interventions(keep=True),
    ],
)
def test_bad_arguments_are_configuration_errors(store: Store, call: Any) -> None:
    with pytest.raises(ConfigurationError):
        call(store)


def test_a_closed_store_refuses_the_state_tables(store_url: str) -> None:
    store = open_store(store_url)
    store.close()
    for call in (
        lambda: store.save_snapshot(snapshot("s")),
        store.list_snapshots,
        lambda: version(store),
        lambda: store.list_state_versions(agent_id="a"),
        lambda: store.add_intervention(intervention("i")),
        lambda: store.list_interventions(agent_id="a"),
    ):
        with pytest.raises(StoreError, match="closed"):
            call()


# ------------------------------------------------------------ durable backends only
def test_separate_connections_get_distinct_version_numbers(durable_url: str) -> None:
    """Several processes' worth of connections racing for the next number."""
    stores = [open_store(durable_url) for _ in range(4)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(stores))

    def writer(store: Store) -> None:
        try:
            start.wait()
            for _ in range(15):
                version(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    numbers = sorted(r.version for r in stores[0].list_state_versions(agent_id="agent-1"))
    assert numbers == list(range(1, 61))
    for store in stores:
        store.close()


def test_snapshots_survive_reopening(durable_url: str) -> None:
    store = open_store(durable_url)
    store.save_snapshot(snapshot("s1", blob=b"\x00payload"))
    version(store)
    store.add_intervention(intervention("i1"))
    store.close()
    again = open_store(durable_url)
    assert again.get_snapshot("s1") == snapshot("s1", blob=b"\x00payload")
    assert [r.version for r in again.list_state_versions(agent_id="agent-1")] == [1]
    assert [r.intervention_id for r in again.list_interventions(agent_id="agent-1")] == ["i1"]
    again.close()


def build_v1_store(url: str) -> None:
    """A database as agentkeel with schema version 1 left it, with one event."""
    now = time.time()
    event = (
        "INSERT INTO events (origin, seq, type, name, severity, wall_ns, mono_ns, attributes) "
        "VALUES ('o', 1, 'tool.start', 'search', 0, 1, 1, '{}')"
    )
    if url.startswith("sqlite"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN")
        conn.execute(_schema.VERSION_TABLE_SQL)
        _schema.apply_pending(0, "sqlite", conn.execute, now, target=1)
        conn.execute(event)
        conn.execute("COMMIT")
        conn.close()
        return
    import psycopg

    conninfo, schema = parse_url(url)
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET LOCAL search_path = "{schema}"')

        def execute(sql: str, params: Any) -> None:
            conn.execute(sql.replace("?", "%s"), params)

        execute(_schema.VERSION_TABLE_SQL, ())
        _schema.apply_pending(0, "postgres", execute, now, target=1)
        conn.execute(event)


def test_a_version_1_store_is_upgraded_to_version_2(durable_url: str) -> None:
    build_v1_store(durable_url)
    old = open_store(durable_url, migrate=False)
    status = old.schema_status()
    assert (status.current, status.latest) == (1, _schema.LATEST)
    assert status.pending[0] == "0002_snapshots_and_history"
    with pytest.raises(SchemaVersionError, match="0002_snapshots_and_history"):
        old.list_snapshots()
    old.close()

    upgraded = open_store(durable_url)  # opening upgrades
    assert upgraded.schema_status().up_to_date
    assert upgraded.count_events() == 1  # what version 1 held is still there
    upgraded.save_snapshot(snapshot("s1"))
    assert version(upgraded) == 1
    assert upgraded.get_snapshot("s1") == snapshot("s1")
    upgraded.close()
