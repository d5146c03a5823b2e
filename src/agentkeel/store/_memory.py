"""The reference store, in plain Python dicts (``memory://``).

It keeps the same rows the SQL stores keep (cleaned text, bounded JSON attributes)
and derives runs and failures with the same functions, so it answers every query
exactly as they do; the conformance suite holds all three to that. Nothing
survives the process: use it in tests, or where events are only looked at live.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import Counter
from collections.abc import Sequence

from agentkeel._errors import StoreError
from agentkeel.events import Event, FailureRecord
from agentkeel.store import _schema
from agentkeel.store._derive import (
    AGENT_END,
    AGENT_START,
    DERIVING_TYPES,
    FAILURE,
    FAILURE_RECOVERED,
    EventRow,
    Recovery,
    RunRow,
    ambiguous_run,
    apply_run_event,
    check_count,
    check_run_id,
    check_since,
    check_sort,
    check_status,
    check_text,
    check_types,
    check_until,
    event_from_row,
    failure_record,
    no_such_run,
    recovery_of,
    unique_rows,
)
from agentkeel.store._memory_states import MemoryStates
from agentkeel.store._protocol import FailureGroup, RunRecord, SchemaStatus, StoredEvent


class MemoryStore(MemoryStates):
    """An in-process store with the semantics of the durable ones.

    Snapshots, state versions and interventions come from :class:`MemoryStates`.
    """

    def __init__(self, url: str = "memory://", *, migrate: bool = True) -> None:
        # ``migrate`` is accepted for symmetry with open_store(): a new memory
        # store is always at the latest schema.
        self.url = url
        self._lock = threading.Lock()
        self._closed = False
        self._next_seq = itertools.count(1)
        self._events: list[tuple[int, EventRow]] = []
        self._keys: dict[tuple[str, int], int] = {}
        self._runs: dict[str, RunRow] = {}
        self._failures: dict[str, tuple[FailureRecord, int]] = {}
        self._recoveries: dict[str, Recovery] = {}
        self._init_states()

    def __repr__(self) -> str:
        return f"MemoryStore({self.url!r})"

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"the store {self.url} is closed: open it again with agentkeel.store.open_store()"
            )

    # ----------------------------------------------------------------- ingestion
    def write_events(self, events: Sequence[Event]) -> None:
        self._check_open()
        if not events:
            return
        rows = unique_rows(events)
        with self._lock:
            new: list[tuple[int, Event]] = []
            for row in rows:
                key = (row[0], row[1])
                if key in self._keys:
                    continue  # a retried batch: this event is already stored
                store_seq = next(self._next_seq)
                self._keys[key] = store_seq
                self._events.append((store_seq, row))
                if row[2] in DERIVING_TYPES:
                    new.append((store_seq, event_from_row(row)))
            self._derive(new)

    def _derive(self, new: list[tuple[int, Event]]) -> None:
        touched: set[str] = set()
        for store_seq, event in new:
            if event.type in (AGENT_START, AGENT_END):
                run_id = event.run_id or ""
                row = apply_run_event(self._runs.get(run_id), event)
                if row is not None:
                    self._runs[row.run_id] = row
            elif event.type == FAILURE:
                record = failure_record(event)
                self._failures.setdefault(record.failure_id, (record, store_seq))
                touched.add(record.failure_id)
            elif event.type == FAILURE_RECOVERED:
                recovery = recovery_of(event)
                if recovery is None:
                    continue
                known = self._recoveries.get(recovery.failure_id)
                if recovery.recovery_action is None and known is not None:
                    recovery = dataclasses.replace(recovery, recovery_action=known.recovery_action)
                self._recoveries[recovery.failure_id] = recovery
                touched.add(recovery.failure_id)
        for failure_id in touched:
            stored = self._failures.get(failure_id)
            recovery = self._recoveries.get(failure_id)
            if stored is None or recovery is None:
                continue
            record, store_seq = stored
            action = recovery.recovery_action
            record = dataclasses.replace(
                record,
                recovered=True,
                recovery_action=action if action is not None else record.recovery_action,
            )
            self._failures[failure_id] = (record, store_seq)

    # ------------------------------------------------------------------- queries
    def _record(self, row: RunRow) -> RunRecord:
        failures = [r for r, _ in self._failures.values() if r.run_id == row.run_id]
        events = sum(1 for _, e in self._events if e[6] == row.run_id)
        return row.to_record(
            failure_count=len(failures),
            recovered_count=sum(1 for r in failures if r.recovered),
            event_count=events,
        )

    def _matching_runs(
        self,
        status: str | None,
        user_id: str | None,
        name: str | None,
        since: float | None,
        until: float | None,
    ) -> list[RunRow]:
        """The runs that pass the filters; the caller holds the lock."""
        check_status(status)
        check_text(user_id, "user_id")
        check_text(name, "name")
        since_f = check_since(since)
        until_f = check_until(until)
        return [
            r
            for r in self._runs.values()
            if (status is None or r.status == status)
            and (user_id is None or r.user_id == user_id)
            and (name is None or name in r.name)
            and (since_f is None or r.started_at >= since_f)
            and (until_f is None or r.started_at < until_f)
        ]

    def list_runs(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        status: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        since: float | None = None,
        until: float | None = None,
        sort: str = "-started_at",
    ) -> list[RunRecord]:
        """Runs, newest first unless ``sort`` says otherwise; ``name`` is a substring."""
        self._check_open()
        check_count(limit, "limit")
        check_count(offset, "offset")
        column, descending = check_sort(sort)
        with self._lock:
            rows = self._matching_runs(status, user_id, name, since, until)
            # Runs without a value (a running run's duration) last, as the SQL stores do.
            present = [r for r in rows if getattr(r, column) is not None]
            missing = [r for r in rows if getattr(r, column) is None]
            present.sort(key=lambda r: (getattr(r, column), r.run_id), reverse=descending)
            missing.sort(key=lambda r: r.run_id, reverse=descending)
            rows = present + missing
            return [self._record(r) for r in rows[offset : offset + limit]]

    def count_runs(
        self,
        *,
        status: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        self._check_open()
        with self._lock:
            return len(self._matching_runs(status, user_id, name, since, until))

    def get_run(self, run_id: str) -> RunRecord:
        self._check_open()
        check_run_id(run_id)
        with self._lock:
            row = self._runs.get(run_id)
            if row is None:
                candidates = sorted(r for r in self._runs if r.startswith(run_id))
                if not candidates:
                    raise no_such_run(run_id, self.url)
                if len(candidates) > 1:
                    raise ambiguous_run(run_id, candidates)
                row = self._runs[candidates[0]]
            return self._record(row)

    def list_events(
        self,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        self._check_open()
        check_text(run_id, "run_id")
        wanted = check_types(types)
        check_count(after_seq, "after_seq")
        check_count(limit, "limit")
        out: list[StoredEvent] = []
        with self._lock:
            for store_seq, row in self._events:
                if len(out) >= limit:
                    break
                if store_seq <= after_seq:
                    continue
                if run_id is not None and row[6] != run_id:
                    continue
                if wanted is not None and row[2] not in wanted:
                    continue
                out.append(StoredEvent(store_seq, event_from_row(row)))
        return out

    def count_events(self, *, run_id: str | None = None) -> int:
        self._check_open()
        check_text(run_id, "run_id")
        with self._lock:
            if run_id is None:
                return len(self._events)
            return Counter(row[6] for _, row in self._events)[run_id]

    def list_failures(
        self,
        *,
        run_id: str | None = None,
        category: str | None = None,
        limit: int = 1000,
    ) -> list[FailureRecord]:
        self._check_open()
        check_text(run_id, "run_id")
        check_text(category, "category")
        check_count(limit, "limit")
        with self._lock:
            found = [
                (record.timestamp, store_seq, record)
                for record, store_seq in self._failures.values()
                if (run_id is None or record.run_id == run_id)
                and (category is None or record.category == category)
            ]
        found.sort(key=lambda item: (item[0], item[1]))
        return [dataclasses.replace(r, attributes=dict(r.attributes)) for _, _, r in found[:limit]]

    def failure_groups(
        self,
        *,
        category: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[FailureGroup]:
        self._check_open()
        check_text(category, "category")
        since_f = check_since(since)
        check_count(limit, "limit")
        by_fingerprint: dict[str, list[tuple[float, int, FailureRecord]]] = {}
        with self._lock:
            for record, store_seq in self._failures.values():
                if category is not None and record.category != category:
                    continue
                if since_f is not None and record.timestamp < since_f:
                    continue
                by_fingerprint.setdefault(record.fingerprint, []).append(
                    (record.timestamp, store_seq, record)
                )
        groups: list[FailureGroup] = []
        for fp, found in by_fingerprint.items():
            latest = max(found, key=lambda item: (item[0], item[1]))[2]
            groups.append(
                FailureGroup(
                    fingerprint=fp,
                    count=len(found),
                    recovered=sum(1 for _, _, r in found if r.recovered),
                    runs=len({r.run_id for _, _, r in found}),
                    first_seen=min(t for t, _, _ in found),
                    last_seen=max(t for t, _, _ in found),
                    category=latest.category,
                    error_type=latest.error_type,
                    error_message=latest.error_message,
                    tool_name=latest.tool_name,
                    graph_node=latest.graph_node,
                )
            )
        groups.sort(key=lambda g: (-g.count, g.fingerprint))
        return groups[:limit]

    # ---------------------------------------------------------------- lifecycle
    def schema_status(self) -> SchemaStatus:
        self._check_open()
        return _schema.status(_schema.LATEST)

    def migrate(self) -> list[str]:
        self._check_open()
        return []

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
