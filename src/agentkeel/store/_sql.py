"""The SQL both relational backends share: ingestion, derivation, queries, migrations.

A backend supplies a connection, its transactions and error translation, plus the
few statements where the dialects differ (bulk insert, prefix and substring
matches, the schema's own bootstrap). Statements here use ``?`` placeholders; the
PostgreSQL backend rewrites them to ``%s``. Statements are assembled only from our
own column names and ``?`` markers; every value is a bound parameter (which is why
the S608 warnings are silenced).
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

from agentkeel._errors import StoreError
from agentkeel.events import Event, FailureRecord
from agentkeel.store import _schema
from agentkeel.store._derive import (
    AGENT_END,
    AGENT_START,
    EVENT_COLUMNS,
    FAILURE,
    FAILURE_COLUMNS,
    FAILURE_RECOVERED,
    MAX_CANDIDATES,
    NULLABLE_SORT_COLUMNS,
    RUN_COLUMNS,
    EventRow,
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
    failure_from_db,
    failure_record,
    failure_to_db,
    mask_url,
    no_such_run,
    recovery_of,
    unique_rows,
)
from agentkeel.store._protocol import FailureGroup, RunRecord, SchemaStatus, StoredEvent
from agentkeel.store._sql_states import SQLStates, filters, where_clause

T = TypeVar("T")


class Tx(Protocol):
    """The little a backend's cursor must do for the shared code."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@functools.cache
def insert_events_sql(rows: int) -> str:
    """The INSERT of ``rows`` events in one statement; an event stored before is skipped."""
    values = ", ".join([f"({_marks(len(EVENT_COLUMNS))})"] * rows)
    return (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES {values} "  # noqa: S608
        "ON CONFLICT (origin, seq) DO NOTHING"
    )


_EVENT_SELECT = "store_seq, " + ", ".join(EVENT_COLUMNS)
_RUN_SELECT = ", ".join(f"r.{c}" for c in RUN_COLUMNS) + (  # noqa: S608
    ", (SELECT COUNT(*) FROM failures f WHERE f.run_id = r.run_id)"
    ", (SELECT COUNT(*) FROM failures f WHERE f.run_id = r.run_id AND f.recovered)"
    ", (SELECT COUNT(*) FROM events e WHERE e.run_id = r.run_id)"
)
_UPSERT_RUN_SQL = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({_marks(len(RUN_COLUMNS))}) "  # noqa: S608
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS[1:])
)
_INSERT_FAILURE_SQL = (
    f"INSERT INTO failures ({', '.join(FAILURE_COLUMNS)}) "  # noqa: S608
    f"VALUES ({_marks(len(FAILURE_COLUMNS))}) ON CONFLICT (failure_id) DO NOTHING"
)
_UPSERT_RECOVERY_SQL = (
    "INSERT INTO failure_recoveries (failure_id, recovery_action, recovered_at) "
    "VALUES (?, ?, ?) ON CONFLICT (failure_id) DO UPDATE SET "
    "recovery_action = COALESCE(excluded.recovery_action, failure_recoveries.recovery_action), "
    "recovered_at = excluded.recovered_at"
)
# Applied to every failure or recovery a batch touched, whichever arrived second.
_APPLY_RECOVERY_SQL = (
    "UPDATE failures SET recovered = ?, recovery_action = COALESCE("
    "(SELECT r.recovery_action FROM failure_recoveries r WHERE r.failure_id = ?), "
    "failures.recovery_action) "
    "WHERE failure_id = ? AND EXISTS "
    "(SELECT 1 FROM failure_recoveries r WHERE r.failure_id = ?)"
)
# Bound parameters per statement stay well under SQLite's limit.
_CHUNK = 500


class SQLStore(SQLStates, ABC):
    """A store on a relational database; subclasses connect and translate errors.

    Snapshots, state versions and interventions come from :class:`SQLStates`.
    """

    dialect: ClassVar[_schema.Dialect]
    url: str
    _closed: bool = False
    _schema_ok: bool = False

    # ------------------------------------------------------------ backend hooks
    @abstractmethod
    def _write(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` in one write transaction that is durable when this returns."""

    @abstractmethod
    def _read(self, fn: Callable[[Tx], T]) -> T:
        """Run ``fn`` for reading."""

    @abstractmethod
    def _insert_events(self, tx: Tx, rows: list[EventRow]) -> list[tuple[int, EventRow]]:
        """Insert rows (skipping known event IDs); return the new rows that derive runs
        or failures, with their store_seq, in store order."""

    @abstractmethod
    def _prefix_condition(self, column: str, prefix: str) -> tuple[str, str]:
        """SQL that ``column`` starts with ``prefix`` (taken literally), and its parameter."""

    @abstractmethod
    def _contains_condition(self, column: str) -> str:
        """SQL that ``column`` contains the parameter as a substring."""

    @abstractmethod
    def _version_table_exists(self, tx: Tx) -> bool: ...

    @abstractmethod
    def _prepare_migration(self, tx: Tx) -> None:
        """Called first in the migration transaction (a lock, a schema to create …)."""

    @abstractmethod
    def _close_connection(self) -> None:
        """Close the connection; called once."""

    # ---------------------------------------------------------------- lifecycle
    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(
                f"the store {mask_url(self.url)} is closed: open it again with "
                "agentkeel.store.open_store()"
            )

    def _open_schema(self, migrate: bool) -> None:
        """Upgrade the schema if allowed; a newer one is refused either way.

        With ``migrate=False`` an old schema is left alone: the store still opens,
        so that ``keel db status`` and ``keel db upgrade`` can look at it and fix
        it, but reading or writing events raises SchemaVersionError until then.
        """
        current = self.schema_status().current
        if migrate:
            _schema.check_not_newer(current, self.url)
            if current < _schema.LATEST:
                self.migrate()
            self._schema_ok = True
        else:
            self._schema_ok = current == _schema.LATEST

    def _check_usable(self) -> None:
        """Open, and at the schema this code reads and writes."""
        self._check_open()
        if not self._schema_ok:
            # Look again: `keel db upgrade` may have run in another process since.
            current = self.schema_status().current
            _schema.check_current(current, self.url)
            self._schema_ok = True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close_connection()

    def __enter__(self) -> SQLStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({mask_url(self.url)!r})"

    # ---------------------------------------------------------------- migrations
    def _current_version(self, tx: Tx) -> int:
        if not self._version_table_exists(tx):
            return 0
        return int(tx.query(_schema.READ_VERSION_SQL)[0][0])

    def schema_status(self) -> SchemaStatus:
        self._check_open()
        return _schema.status(self._read(self._current_version))

    def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction; return their labels."""
        self._check_open()

        def upgrade(tx: Tx) -> list[str]:
            self._prepare_migration(tx)
            tx.run(_schema.VERSION_TABLE_SQL)
            current = self._current_version(tx)  # again: another process may have won
            _schema.check_not_newer(current, self.url)
            return _schema.apply_pending(current, self.dialect, tx.run, time.time())

        applied = self._write(upgrade)
        self._schema_ok = True
        return applied

    # ----------------------------------------------------------------- ingestion
    def write_events(self, events: Sequence[Event]) -> None:
        self._check_usable()
        if not events:
            return
        rows = unique_rows(events)
        self._write(lambda tx: self._ingest(tx, rows))

    def _ingest(self, tx: Tx, rows: list[EventRow]) -> None:
        new = self._insert_events(tx, rows)
        if new:
            self._derive(tx, [(seq, event_from_row(row)) for seq, row in new])

    def _derive(self, tx: Tx, new: list[tuple[int, Event]]) -> None:
        """Update runs and failures from the newly stored events, in store order."""
        run_events = [e for _, e in new if e.type in (AGENT_START, AGENT_END) and e.run_id]
        if run_events:
            ids = sorted({e.run_id for e in run_events if e.run_id})
            current: dict[str, RunRow] = {}
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                sql = (
                    f"SELECT {', '.join(RUN_COLUMNS)} FROM runs "  # noqa: S608
                    f"WHERE run_id IN ({_marks(len(chunk))})"
                )
                for db_row in tx.query(sql, chunk):
                    current[db_row[0]] = RunRow.from_db(db_row)
            changed: dict[str, RunRow] = {}
            for event in run_events:
                row = apply_run_event(current.get(event.run_id or ""), event)
                if row is not None:
                    current[row.run_id] = changed[row.run_id] = row
            tx.run_many(_UPSERT_RUN_SQL, [row.to_db() for row in changed.values()])

        failures = [failure_to_db(failure_record(e), seq) for seq, e in new if e.type == FAILURE]
        recoveries = [r for _, e in new if e.type == FAILURE_RECOVERED if (r := recovery_of(e))]
        if failures:
            tx.run_many(_INSERT_FAILURE_SQL, failures)
        if recoveries:
            tx.run_many(
                _UPSERT_RECOVERY_SQL,
                [(r.failure_id, r.recovery_action, r.recovered_at) for r in recoveries],
            )
        touched = {f[0] for f in failures} | {r.failure_id for r in recoveries}
        if touched:
            tx.run_many(_APPLY_RECOVERY_SQL, [(True, fid, fid, fid) for fid in sorted(touched)])

    # ------------------------------------------------------------------- queries
    def _run_filter(
        self,
        status: str | None,
        user_id: str | None,
        name: str | None,
        since: float | None,
        until: float | None,
    ) -> tuple[str, list[Any]]:
        """The WHERE clause (or "") and its parameters for the run filters."""
        check_status(status)
        check_text(user_id, "user_id")
        check_text(name, "name")
        since_f = check_since(since)
        until_f = check_until(until)
        where, params = filters(
            ("status = ?", status),
            ("user_id = ?", user_id),
            (self._contains_condition("name"), name),
            ("started_at >= ?", since_f),
            ("started_at < ?", until_f),
        )
        return where_clause(where), params

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
        """Runs, newest first unless ``sort`` says otherwise (see the Store protocol)."""
        self._check_usable()
        check_count(limit, "limit")
        check_count(offset, "offset")
        column, descending = check_sort(sort)
        clause, params = self._run_filter(status, user_id, name, since, until)
        direction = "DESC" if descending else "ASC"

        def order(alias: str) -> str:
            keys = f"{alias}{column} {direction}, {alias}run_id {direction}"
            if column in NULLABLE_SORT_COLUMNS:
                # Missing values last in both dialects (they disagree on where NULL
                # sorts); only where needed, as it keeps an index from serving the order.
                return f"({alias}{column} IS NULL), {keys}"
            return keys

        # The page is chosen first, in a subquery, and only its rows get the counts:
        # otherwise a sort the index cannot serve would count for every run.
        sql = (
            f"SELECT {_RUN_SELECT} FROM (SELECT * FROM runs {clause}"  # noqa: S608
            f"ORDER BY {order('')} LIMIT ? OFFSET ?) r ORDER BY {order('r.')}"
        )
        rows = self._read(lambda tx: tx.query(sql, [*params, limit, offset]))
        return [_run_record(row) for row in rows]

    def count_runs(
        self,
        *,
        status: str | None = None,
        user_id: str | None = None,
        name: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        self._check_usable()
        clause, params = self._run_filter(status, user_id, name, since, until)
        sql = f"SELECT COUNT(*) FROM runs {clause}"  # noqa: S608
        return int(self._read(lambda tx: tx.query(sql, params))[0][0])

    def get_run(self, run_id: str) -> RunRecord:
        """The run with this ID, or the only run whose ID starts with it; else UnknownRunError."""
        self._check_usable()
        check_run_id(run_id)
        by_id = f"SELECT {_RUN_SELECT} FROM runs r WHERE r.run_id = ?"  # noqa: S608
        condition, pattern = self._prefix_condition("run_id", run_id)
        by_prefix = f"SELECT run_id FROM runs WHERE {condition} ORDER BY run_id LIMIT ?"  # noqa: S608

        def lookup(tx: Tx) -> RunRecord:
            exact = tx.query(by_id, (run_id,))
            if exact:
                return _run_record(exact[0])
            candidates = [row[0] for row in tx.query(by_prefix, (pattern, MAX_CANDIDATES + 1))]
            if not candidates:
                raise no_such_run(run_id, self.url)
            if len(candidates) > 1:
                raise ambiguous_run(run_id, candidates)
            return _run_record(tx.query(by_id, (candidates[0],))[0])

        return self._read(lookup)

    def list_events(
        self,
        *,
        run_id: str | None = None,
        types: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int = 1000,
    ) -> list[StoredEvent]:
        """Events in store order; page with ``after_seq`` = the last ``store_seq`` seen."""
        self._check_usable()
        check_text(run_id, "run_id")
        wanted = check_types(types)
        check_count(after_seq, "after_seq")
        check_count(limit, "limit")
        if wanted is not None and not wanted:
            return []
        where = ["store_seq > ?"]
        params: list[Any] = [after_seq]
        if run_id is not None:
            where.append("run_id = ?")
            params.append(run_id)
        if wanted is not None:
            where.append(f"type IN ({_marks(len(wanted))})")
            params.extend(wanted)
        sql = (
            f"SELECT {_EVENT_SELECT} FROM events WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY store_seq LIMIT ?"
        )
        rows = self._read(lambda tx: tx.query(sql, [*params, limit]))
        return [StoredEvent(row[0], event_from_row(row[1:])) for row in rows]

    def count_events(self, *, run_id: str | None = None) -> int:
        self._check_usable()
        check_text(run_id, "run_id")
        if run_id is None:
            rows = self._read(lambda tx: tx.query("SELECT COUNT(*) FROM events"))
        else:
            sql = "SELECT COUNT(*) FROM events WHERE run_id = ?"
            rows = self._read(lambda tx: tx.query(sql, (run_id,)))
        return int(rows[0][0])

    def list_failures(
        self,
        *,
        run_id: str | None = None,
        category: str | None = None,
        limit: int = 1000,
    ) -> list[FailureRecord]:
        """Failures, oldest first."""
        self._check_usable()
        check_text(run_id, "run_id")
        check_text(category, "category")
        check_count(limit, "limit")
        where, params = filters(("run_id = ?", run_id), ("category = ?", category))
        clause = where_clause(where)
        sql = (
            f"SELECT {', '.join(FAILURE_COLUMNS)} FROM failures {clause}"  # noqa: S608
            "ORDER BY occurred_at, event_seq LIMIT ?"
        )
        rows = self._read(lambda tx: tx.query(sql, [*params, limit]))
        return [failure_from_db(row) for row in rows]

    def failure_groups(
        self,
        *,
        category: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[FailureGroup]:
        """Failures grouped by fingerprint, the largest group first."""
        self._check_usable()
        check_text(category, "category")
        since_f = check_since(since)
        check_count(limit, "limit")
        where, params = filters(("category = ?", category), ("occurred_at >= ?", since_f))
        clause = where_clause(where)
        groups_sql = (
            "SELECT fingerprint, COUNT(*), SUM(CASE WHEN recovered THEN 1 ELSE 0 END), "  # noqa: S608
            f"COUNT(DISTINCT run_id), MIN(occurred_at), MAX(occurred_at) FROM failures {clause}"
            "GROUP BY fingerprint ORDER BY COUNT(*) DESC, fingerprint LIMIT ?"
        )
        latest_sql = (
            "SELECT category, error_type, error_message, tool_name, graph_node FROM failures "  # noqa: S608
            f"{clause}{'AND' if where else 'WHERE'} fingerprint = ? "
            "ORDER BY occurred_at DESC, event_seq DESC LIMIT 1"
        )

        def query(tx: Tx) -> list[FailureGroup]:
            groups: list[FailureGroup] = []
            for fp, count, recovered, runs, first, last in tx.query(groups_sql, [*params, limit]):
                category_, error_type, message, tool, node = tx.query(latest_sql, [*params, fp])[0]
                groups.append(
                    FailureGroup(
                        fingerprint=fp,
                        count=int(count),
                        recovered=int(recovered or 0),
                        runs=int(runs),
                        first_seen=float(first),
                        last_seen=float(last),
                        category=category_,
                        error_type=error_type,
                        error_message=message,
                        tool_name=tool,
                        graph_node=node,
                    )
                )
            return groups

        return self._read(query)


def _run_record(row: Sequence[Any]) -> RunRecord:
    n = len(RUN_COLUMNS)
    return RunRow.from_db(row[:n]).to_record(
        failure_count=int(row[n]), recovered_count=int(row[n + 1]), event_count=int(row[n + 2])
    )
