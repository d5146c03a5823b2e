"""Snapshots, state versions and interventions on a relational store (SQLite, PostgreSQL).

A mixin of :class:`~agentkeel.store._sql.SQLStore`: the statements are plain SQL
both dialects run unchanged (window functions, ``ON CONFLICT`` upserts), with
``?`` placeholders the PostgreSQL backend rewrites. Every value is a bound
parameter; statements are assembled only from our own column names (hence the
silenced S608 warnings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from agentkeel._errors import StoreError
from agentkeel.store._derive import check_count, mask_url
from agentkeel.store._protocol import InterventionRecord, SnapshotRecord, StateVersionRecord
from agentkeel.store._states import (
    INTERVENTION_COLUMNS,
    SNAPSHOT_COLUMNS,
    VERSION_COLUMNS,
    check_cutoff,
    check_id,
    check_ids,
    check_keep,
    check_opt_id,
    intervention_from_db,
    intervention_to_db,
    snapshot_from_db,
    snapshot_to_db,
    version_from_db,
    version_to_db,
)

if TYPE_CHECKING:
    from agentkeel.store._sql import Tx

T = TypeVar("T")

# Bound parameters per statement stay well under SQLite's limit.
_CHUNK = 500


def _marks(n: int) -> str:
    return ", ".join("?" * n)


_SNAPSHOT_SELECT = ", ".join(SNAPSHOT_COLUMNS)
_INSERT_SNAPSHOT_SQL = (
    f"INSERT INTO snapshots ({_SNAPSHOT_SELECT}) VALUES ({_marks(len(SNAPSHOT_COLUMNS))})"  # noqa: S608
)
_VERSION_SELECT = ", ".join(VERSION_COLUMNS)
_INSERT_VERSION_SQL = (
    f"INSERT INTO state_versions ({_VERSION_SELECT}) VALUES ({_marks(len(VERSION_COLUMNS))})"  # noqa: S608
)
# One statement takes the next number: PostgreSQL holds the counter row's lock until
# commit, so a concurrent writer waits and then sees the number already taken.
_NEXT_VERSION_SQL = (
    "INSERT INTO state_version_counters (agent_id, task_id, last_version) VALUES (?, ?, 1) "
    "ON CONFLICT (agent_id, task_id) DO UPDATE SET "
    "last_version = state_version_counters.last_version + 1"
)
_READ_COUNTER_SQL = (
    "SELECT last_version FROM state_version_counters WHERE agent_id = ? AND task_id = ?"
)
_INTERVENTION_SELECT = ", ".join(INTERVENTION_COLUMNS)
_INSERT_INTERVENTION_SQL = (
    f"INSERT INTO interventions ({_INTERVENTION_SELECT}) "  # noqa: S608
    f"VALUES ({_marks(len(INTERVENTION_COLUMNS))})"
)


def where_clause(conditions: list[str]) -> str:
    return f"WHERE {' AND '.join(conditions)} " if conditions else ""


def filters(*pairs: tuple[str, object]) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters from ``(condition, value)`` pairs.

    A pair whose value is None is a filter the caller did not ask for: left out.
    """
    used = [(condition, value) for condition, value in pairs if value is not None]
    return [condition for condition, _ in used], [value for _, value in used]


class SQLStates:
    """The state tables' half of a SQL store (see the module docstring)."""

    url: str

    # Provided by SQLStore.
    def _check_usable(self) -> None:
        raise NotImplementedError

    def _write(self, fn: Callable[[Tx], T]) -> T:
        raise NotImplementedError

    def _read(self, fn: Callable[[Tx], T]) -> T:
        raise NotImplementedError

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, record: SnapshotRecord) -> None:
        self._check_usable()
        row = snapshot_to_db(record)

        def insert(tx: Tx) -> None:
            if tx.query("SELECT 1 FROM snapshots WHERE snapshot_id = ?", (row[0],)):
                raise StoreError(
                    f"a snapshot with ID {row[0]!r} already exists in {mask_url(self.url)}: "
                    "snapshot IDs must be unique"
                )
            tx.run(_INSERT_SNAPSHOT_SQL, row)

        self._write(insert)

    def get_snapshot(self, snapshot_id: str) -> SnapshotRecord | None:
        self._check_usable()
        check_id(snapshot_id, "snapshot_id")
        sql = f"SELECT {_SNAPSHOT_SELECT} FROM snapshots WHERE snapshot_id = ?"  # noqa: S608
        rows = self._read(lambda tx: tx.query(sql, (snapshot_id,)))
        return snapshot_from_db(rows[0]) if rows else None

    def list_snapshots(
        self, *, agent_id: str | None = None, task_id: str | None = None, limit: int = 100
    ) -> list[SnapshotRecord]:
        self._check_usable()
        agent = check_opt_id(agent_id, "agent_id")
        task = check_opt_id(task_id, "task_id")
        check_count(limit, "limit")
        where, params = filters(("agent_id = ?", agent), ("task_id = ?", task))
        sql = (
            f"SELECT {_SNAPSHOT_SELECT} FROM snapshots {where_clause(where)}"  # noqa: S608
            "ORDER BY seq DESC LIMIT ?"
        )
        rows = self._read(lambda tx: tx.query(sql, [*params, limit]))
        return [snapshot_from_db(row) for row in rows]

    def delete_snapshots(self, snapshot_ids: Sequence[str]) -> int:
        self._check_usable()
        ids = check_ids(snapshot_ids)
        if not ids:
            return 0
        return self._write(lambda tx: _delete_snapshots(tx, ids))

    def prune_snapshots(
        self,
        *,
        agent_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> list[str]:
        self._check_usable()
        agent = check_opt_id(agent_id, "agent_id")
        keep_n = check_keep(keep)
        cutoff = check_cutoff(older_than)
        if keep_n is None and cutoff is None:
            return []
        where, params = filters(("agent_id = ?", agent))

        def prune(tx: Tx) -> list[str]:
            doomed: set[str] = set()
            if cutoff is not None:
                sql = (
                    "SELECT snapshot_id FROM snapshots "  # noqa: S608
                    f"{where_clause([*where, 'created_at < ?'])}"
                )
                doomed.update(row[0] for row in tx.query(sql, [*params, cutoff]))
            if keep_n is not None:
                sql = (
                    "SELECT snapshot_id FROM (SELECT snapshot_id, ROW_NUMBER() OVER "  # noqa: S608
                    "(PARTITION BY agent_id ORDER BY seq DESC) AS rn FROM snapshots "
                    f"{where_clause(where)}) ranked WHERE rn > ?"
                )
                doomed.update(row[0] for row in tx.query(sql, [*params, keep_n]))
            ids = sorted(doomed)
            _delete_snapshots(tx, ids)
            return ids

        return self._write(prune)

    # ------------------------------------------------------------- state versions
    def save_state_version(
        self,
        *,
        agent_id: str,
        task_id: str,
        created_at: float,
        checksum: str,
        compressed: bool,
        size: int,
        blob: bytes,
        metadata: dict[str, Any] | None = None,
    ) -> StateVersionRecord:
        self._check_usable()
        row = version_to_db(
            agent_id=agent_id,
            task_id=task_id,
            created_at=created_at,
            checksum=checksum,
            compressed=compressed,
            size=size,
            blob=blob,
            metadata=metadata,
        )

        def insert(tx: Tx) -> StateVersionRecord:
            key = row[:2]
            tx.run(_NEXT_VERSION_SQL, key)
            version = int(tx.query(_READ_COUNTER_SQL, key)[0][0])
            full = (*key, version, *row[2:])
            tx.run(_INSERT_VERSION_SQL, full)
            return version_from_db(full)

        return self._write(insert)

    def get_state_version(
        self, agent_id: str, task_id: str, version: int
    ) -> StateVersionRecord | None:
        self._check_usable()
        key = (check_id(agent_id, "agent_id"), check_id(task_id, "task_id"))
        number = check_count(version, "version")
        sql = (
            f"SELECT {_VERSION_SELECT} FROM state_versions "  # noqa: S608
            "WHERE agent_id = ? AND task_id = ? AND version = ?"
        )
        rows = self._read(lambda tx: tx.query(sql, (*key, number)))
        return version_from_db(rows[0]) if rows else None

    def list_state_versions(
        self, *, agent_id: str, task_id: str | None = None, limit: int = 100
    ) -> list[StateVersionRecord]:
        self._check_usable()
        where, params = filters(
            ("agent_id = ?", check_id(agent_id, "agent_id")),
            ("task_id = ?", check_opt_id(task_id, "task_id")),
        )
        check_count(limit, "limit")
        sql = (
            f"SELECT {_VERSION_SELECT} FROM state_versions {where_clause(where)}"  # noqa: S608
            "ORDER BY created_at DESC, version DESC, task_id LIMIT ?"
        )
        rows = self._read(lambda tx: tx.query(sql, [*params, limit]))
        return [version_from_db(row) for row in rows]

    def prune_state_versions(
        self,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> int:
        self._check_usable()
        agent = check_opt_id(agent_id, "agent_id")
        task = check_opt_id(task_id, "task_id")
        where, params = filters(("agent_id = ?", agent), ("task_id = ?", task))
        keep_n = check_keep(keep)
        cutoff = check_cutoff(older_than)
        if keep_n is None and cutoff is None:
            return 0

        def prune(tx: Tx) -> int:
            doomed: set[tuple[Any, ...]] = set()
            if cutoff is not None:
                sql = (
                    "SELECT agent_id, task_id, version FROM state_versions "  # noqa: S608
                    f"{where_clause([*where, 'created_at < ?'])}"
                )
                doomed.update(tx.query(sql, [*params, cutoff]))
            if keep_n is not None:
                sql = (
                    "SELECT agent_id, task_id, version FROM (SELECT agent_id, task_id, "  # noqa: S608
                    "version, ROW_NUMBER() OVER (PARTITION BY agent_id, task_id "
                    f"ORDER BY version DESC) AS rn FROM state_versions {where_clause(where)}) "
                    "ranked WHERE rn > ?"
                )
                doomed.update(tx.query(sql, [*params, keep_n]))
            if doomed:
                tx.run_many(
                    "DELETE FROM state_versions WHERE agent_id = ? AND task_id = ? AND version = ?",
                    sorted(tuple(key) for key in doomed),
                )
            return len(doomed)

        return self._write(prune)

    # -------------------------------------------------------------- interventions
    def add_intervention(self, record: InterventionRecord) -> None:
        self._check_usable()
        row = intervention_to_db(record)

        def insert(tx: Tx) -> None:
            if tx.query("SELECT 1 FROM interventions WHERE intervention_id = ?", (row[0],)):
                raise StoreError(
                    f"an intervention with ID {row[0]!r} already exists in "
                    f"{mask_url(self.url)}: intervention IDs must be unique"
                )
            tx.run(_INSERT_INTERVENTION_SQL, row)

        self._write(insert)

    def list_interventions(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        limit: int = 100,
    ) -> list[InterventionRecord]:
        self._check_usable()
        where, params = filters(
            ("agent_id = ?", check_id(agent_id, "agent_id")),
            ("task_id = ?", check_opt_id(task_id, "task_id")),
        )
        check_count(limit, "limit")
        sql = (
            f"SELECT {_INTERVENTION_SELECT} FROM interventions {where_clause(where)}"  # noqa: S608
            "ORDER BY at DESC, seq DESC LIMIT ?"
        )
        rows = self._read(lambda tx: tx.query(sql, [*params, limit]))
        return [intervention_from_db(row) for row in rows]

    def prune_interventions(
        self,
        *,
        agent_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> int:
        self._check_usable()
        agent = check_opt_id(agent_id, "agent_id")
        keep_n = check_keep(keep)
        cutoff = check_cutoff(older_than)
        if keep_n is None and cutoff is None:
            return 0
        where, params = filters(("agent_id = ?", agent))

        def prune(tx: Tx) -> int:
            doomed: set[str] = set()
            if cutoff is not None:
                sql = (
                    "SELECT intervention_id FROM interventions "  # noqa: S608
                    f"{where_clause([*where, 'at < ?'])}"
                )
                doomed.update(row[0] for row in tx.query(sql, [*params, cutoff]))
            if keep_n is not None:
                sql = (
                    "SELECT intervention_id FROM (SELECT intervention_id, ROW_NUMBER() OVER "  # noqa: S608
                    "(PARTITION BY agent_id ORDER BY at DESC, seq DESC) AS rn "
                    f"FROM interventions {where_clause(where)}) ranked WHERE rn > ?"
                )
                doomed.update(row[0] for row in tx.query(sql, [*params, keep_n]))
            ids = sorted(doomed)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                tx.run(
                    f"DELETE FROM interventions WHERE intervention_id IN ({_marks(len(chunk))})",  # noqa: S608
                    chunk,
                )
            return len(ids)

        return self._write(prune)


def _delete_snapshots(tx: Tx, ids: list[str]) -> int:
    found = 0
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        marks = _marks(len(chunk))
        found += int(
            tx.query(f"SELECT COUNT(*) FROM snapshots WHERE snapshot_id IN ({marks})", chunk)[0][0]  # noqa: S608
        )
        tx.run(f"DELETE FROM snapshots WHERE snapshot_id IN ({marks})", chunk)  # noqa: S608
    return found
