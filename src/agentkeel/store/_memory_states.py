"""Snapshots, state versions and interventions of the memory store.

Rows are kept in the exact form the SQL stores write (metadata as bounded JSON
text) and read back through the same functions, so the three backends agree to
the byte; orderings copy the SQL ``ORDER BY`` clauses.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from typing import Any

from agentkeel._errors import StoreError
from agentkeel.store._derive import check_count
from agentkeel.store._protocol import InterventionRecord, SnapshotRecord, StateVersionRecord
from agentkeel.store._states import (
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

# Row positions (see SNAPSHOT_COLUMNS, VERSION_COLUMNS, INTERVENTION_COLUMNS).
_AGENT, _TASK, _CREATED = 1, 2, 3


class MemoryStates:
    """The state tables' half of the memory store."""

    url: str
    _lock: threading.Lock

    def _check_open(self) -> None:
        raise NotImplementedError  # provided by MemoryStore

    def _init_states(self) -> None:
        self._snapshot_seq = itertools.count(1)
        self._snapshots: dict[str, tuple[int, tuple[Any, ...]]] = {}
        self._versions: dict[tuple[str, str, int], tuple[Any, ...]] = {}
        self._counters: dict[tuple[str, str], int] = {}
        self._intervention_seq = itertools.count(1)
        self._interventions: dict[str, tuple[int, tuple[Any, ...]]] = {}

    # ------------------------------------------------------------------ snapshots
    def save_snapshot(self, record: SnapshotRecord) -> None:
        self._check_open()
        row = snapshot_to_db(record)
        with self._lock:
            if row[0] in self._snapshots:
                raise StoreError(
                    f"a snapshot with ID {row[0]!r} already exists in {self.url}: "
                    "snapshot IDs must be unique"
                )
            self._snapshots[row[0]] = (next(self._snapshot_seq), row)

    def get_snapshot(self, snapshot_id: str) -> SnapshotRecord | None:
        self._check_open()
        check_id(snapshot_id, "snapshot_id")
        with self._lock:
            found = self._snapshots.get(snapshot_id)
        return snapshot_from_db(found[1]) if found else None

    def list_snapshots(
        self, *, agent_id: str | None = None, task_id: str | None = None, limit: int = 100
    ) -> list[SnapshotRecord]:
        self._check_open()
        agent = check_opt_id(agent_id, "agent_id")
        task = check_opt_id(task_id, "task_id")
        check_count(limit, "limit")
        with self._lock:
            rows = sorted(
                (
                    (seq, row)
                    for seq, row in self._snapshots.values()
                    if (agent is None or row[_AGENT] == agent)
                    and (task is None or row[_TASK] == task)
                ),
                key=lambda item: item[0],
                reverse=True,
            )
        return [snapshot_from_db(row) for _, row in rows[:limit]]

    def delete_snapshots(self, snapshot_ids: Sequence[str]) -> int:
        self._check_open()
        ids = check_ids(snapshot_ids)
        with self._lock:
            return sum(1 for i in ids if self._snapshots.pop(i, None) is not None)

    def prune_snapshots(
        self,
        *,
        agent_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> list[str]:
        self._check_open()
        agent = check_opt_id(agent_id, "agent_id")
        keep_n = check_keep(keep)
        cutoff = check_cutoff(older_than)
        with self._lock:
            scoped = [
                (seq, row)
                for seq, row in self._snapshots.values()
                if agent is None or row[_AGENT] == agent
            ]
            doomed: set[str] = set()
            if cutoff is not None:
                doomed.update(row[0] for _, row in scoped if row[_CREATED] < cutoff)
            if keep_n is not None:
                seen: dict[str, int] = {}
                for _, row in sorted(scoped, key=lambda item: item[0], reverse=True):
                    seen[row[_AGENT]] = rank = seen.get(row[_AGENT], 0) + 1
                    if rank > keep_n:
                        doomed.add(row[0])
            for snapshot_id in doomed:
                del self._snapshots[snapshot_id]
        return sorted(doomed)

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
        self._check_open()
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
        key = (row[0], row[1])
        with self._lock:
            version = self._counters[key] = self._counters.get(key, 0) + 1
            full = (*key, version, *row[2:])
            self._versions[(*key, version)] = full
        return version_from_db(full)

    def get_state_version(
        self, agent_id: str, task_id: str, version: int
    ) -> StateVersionRecord | None:
        self._check_open()
        key = (check_id(agent_id, "agent_id"), check_id(task_id, "task_id"))
        number = check_count(version, "version")
        with self._lock:
            row = self._versions.get((*key, number))
        return version_from_db(row) if row else None

    def list_state_versions(
        self, *, agent_id: str, task_id: str | None = None, limit: int = 100
    ) -> list[StateVersionRecord]:
        self._check_open()
        agent = check_id(agent_id, "agent_id")
        task = check_opt_id(task_id, "task_id")
        check_count(limit, "limit")
        with self._lock:
            rows = [
                row
                for (a, t, _), row in self._versions.items()
                if a == agent and (task is None or t == task)
            ]
        # ORDER BY created_at DESC, version DESC, task_id
        rows.sort(key=lambda r: r[1])
        rows.sort(key=lambda r: (r[3], r[2]), reverse=True)
        return [version_from_db(row) for row in rows[:limit]]

    def prune_state_versions(
        self,
        *,
        agent_id: str | None = None,
        task_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> int:
        self._check_open()
        agent = check_opt_id(agent_id, "agent_id")
        task = check_opt_id(task_id, "task_id")
        keep_n = check_keep(keep)
        cutoff = check_cutoff(older_than)
        with self._lock:
            scoped = [
                key
                for key in self._versions
                if (agent is None or key[0] == agent) and (task is None or key[1] == task)
            ]
            doomed: set[tuple[str, str, int]] = set()
            if cutoff is not None:
                doomed.update(k for k in scoped if self._versions[k][_CREATED] < cutoff)
            if keep_n is not None:
                seen: dict[tuple[str, str], int] = {}
                for key in sorted(scoped, key=lambda k: k[2], reverse=True):
                    seen[key[:2]] = rank = seen.get(key[:2], 0) + 1
                    if rank > keep_n:
                        doomed.add(key)
            for key in doomed:
                del self._versions[key]
        return len(doomed)

    # -------------------------------------------------------------- interventions
    def add_intervention(self, record: InterventionRecord) -> None:
        self._check_open()
        row = intervention_to_db(record)
        with self._lock:
            if row[0] in self._interventions:
                raise StoreError(
                    f"an intervention with ID {row[0]!r} already exists in {self.url}: "
                    "intervention IDs must be unique"
                )
            self._interventions[row[0]] = (next(self._intervention_seq), row)

    def list_interventions(
        self,
        *,
        agent_id: str,
        task_id: str | None = None,
        limit: int = 100,
    ) -> list[InterventionRecord]:
        self._check_open()
        agent = check_id(agent_id, "agent_id")
        task = check_opt_id(task_id, "task_id")
        check_count(limit, "limit")
        with self._lock:
            rows = [
                (seq, row)
                for seq, row in self._interventions.values()
                if row[_AGENT] == agent and (task is None or row[_TASK] == task)
            ]
        rows.sort(key=lambda item: (item[1][_CREATED], item[0]), reverse=True)
        return [intervention_from_db(row) for _, row in rows[:limit]]

    def prune_interventions(
        self,
        *,
        agent_id: str | None = None,
        keep: int | None = None,
        older_than: float | None = None,
    ) -> int:
        self._check_open()
        agent = check_opt_id(agent_id, "agent_id")
        keep_n = check_keep(keep)
        cutoff = check_cutoff(older_than)
        with self._lock:
            scoped = [
                (seq, row)
                for seq, row in self._interventions.values()
                if agent is None or row[_AGENT] == agent
            ]
            doomed: set[str] = set()
            if cutoff is not None:
                doomed.update(row[0] for _, row in scoped if row[_CREATED] < cutoff)
            if keep_n is not None:
                seen: dict[str, int] = {}
                ordered = sorted(scoped, key=lambda item: (item[1][_CREATED], item[0]))
                for _, row in reversed(ordered):
                    seen[row[_AGENT]] = rank = seen.get(row[_AGENT], 0) + 1
                    if rank > keep_n:
                        doomed.add(row[0])
            for intervention_id in doomed:
                del self._interventions[intervention_id]
        return len(doomed)
