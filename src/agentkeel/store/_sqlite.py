"""The embedded default store: one SQLite file in WAL mode.

Durability: ``synchronous=FULL`` in WAL mode fsyncs the log on every commit, and
each batch is one ``BEGIN IMMEDIATE`` … ``COMMIT`` transaction, so a batch that
``write_events`` returned for survives a crash or power cut. ``BEGIN IMMEDIATE``
takes the write lock up front, which also serialises writers from several
processes on the same file (each waits up to ``busy_timeout``).

One connection serves the pipeline's writer thread and the user's thread; a lock
takes turns. SQLite calls are short, so the simplicity is worth more than
parallel reads.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar, cast

from agentkeel._errors import (
    ConfigurationError,
    StoreCorruptError,
    StoreError,
    StoreUnavailableError,
)
from agentkeel.store import _schema
from agentkeel.store._derive import DERIVING_TYPES, EventRow
from agentkeel.store._protocol import SchemaStatus
from agentkeel.store._sql import SQLStore, Tx, insert_events_sql
from agentkeel.store._url import sqlite_path

T = TypeVar("T")

# Python's sqlite3 sends every None it binds through the adapter protocol: a
# registry lookup, then two attribute lookups that fail (one formats an
# AttributeError message on the way), about 1,200 instructions per None, several
# per event. With an adapter registered for None the first lookup answers. The
# registry is process-wide, so the adapter changes nothing: ``{}.get`` returns None
# for anything, in C, without a Python frame. One the program registered stays.
_NONE_ADAPTER = (type(None), sqlite3.PrepareProtocol)
if _NONE_ADAPTER not in sqlite3.adapters:
    sqlite3.register_adapter(type(None), cast("Callable[[None], None]", {}.get))

DEFAULT_BUSY_TIMEOUT = 5.0
_VERSION_TABLE = "keel_schema_version"


class _SQLiteTx:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def run(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, rows)


# Rows per INSERT statement, largest first: 64 rows of 13 columns stay under the
# 999 parameters the oldest SQLite still around allows.
_CHUNKS = (64, 8, 1)


_DERIVING = tuple(sorted(DERIVING_TYPES))
_NEW_DERIVING_SQL = (
    "SELECT store_seq, origin, seq FROM events WHERE store_seq > ? "  # noqa: S608
    f"AND type IN ({', '.join('?' * len(_DERIVING))}) ORDER BY store_seq"
)


def _insert_in_chunks(tx: Tx, rows: list[EventRow]) -> None:
    """Insert events many rows per statement.

    Python's sqlite3 lets go of the GIL around every statement step and must take it
    back after each one. Row by row, that is a GIL handover per event, and an agent
    running Python on another thread waits for each (a LangGraph run measured 0.15 ms
    slower per 30 events). In statements of 64 rows it is one handover per 64 events,
    for the same SQLite work.
    """
    start = 0
    for size in _CHUNKS:
        count = (len(rows) - start) // size
        if count:
            end = start + count * size
            tx.run_many(
                insert_events_sql(size),
                [list(chain.from_iterable(rows[i : i + size])) for i in range(start, end, size)],
            )
            start = end


class SQLiteStore(SQLStore):
    """Events, runs and failures in one SQLite file (``sqlite:///path/to/keel.db``).

    ``migrate=False`` leaves the schema as it is and creates no file before
    :meth:`migrate` is called; reading or writing events then raises
    SchemaVersionError until the schema is current. ``busy_timeout`` is how long
    to wait for another process's write lock before giving up with
    StoreUnavailableError: by default ``$KEEL_SQLITE_BUSY_TIMEOUT`` seconds, else 5.
    """

    dialect = "sqlite"

    def __init__(
        self,
        url: str,
        *,
        migrate: bool = True,
        busy_timeout: float | timedelta | None = None,
    ) -> None:
        self.busy_timeout = _busy_timeout(busy_timeout)
        self.url = url
        self.path: Path = sqlite_path(url)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        if migrate or self.path.exists():
            self._conn = self._connect()
        try:
            self._open_schema(migrate)
        except BaseException:
            self._close_connection()
            raise

    # ---------------------------------------------------------------- connection
    def _connect(self) -> sqlite3.Connection:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc) from exc
        try:
            conn = sqlite3.connect(
                path,
                timeout=self.busy_timeout,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock instead
            )
        except sqlite3.Error as exc:
            raise self._translate(exc) from exc
        try:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables - {"sqlite_sequence"} and _VERSION_TABLE not in tables:
                names = ", ".join(sorted(tables))
                raise StoreCorruptError(
                    f"{path} is a SQLite database but not an agentkeel store (it has the "
                    f"tables {names}): point KEEL_HOME or --store at another file, so that "
                    "agentkeel does not write into it"
                )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            conn.close()
            raise self._translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid != os.getpid():
            # A connection inherited across fork() must not be used (it would corrupt
            # the parent's locks); the child opens its own. The old one is left alone.
            _abandoned.append(self._conn)
            self._conn = None
        if self._conn is None:
            self._pid = os.getpid()
            self._conn = self._connect()
        return self._conn

    def _close_connection(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    def schema_status(self) -> SchemaStatus:
        self._check_open()
        if self._conn is None and not self.path.exists():
            return _schema.status(0)  # opened with migrate=False: no file until migrate()
        return super().schema_status()

    # --------------------------------------------------------------- transactions
    def _write(self, fn: Callable[[Tx], T]) -> T:
        self._check_open()
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = fn(_SQLiteTx(conn))
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    # The original error says more than a failed rollback would.
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from exc
                raise
            return result

    def _read(self, fn: Callable[[Tx], T]) -> T:
        self._check_open()
        with self._lock:
            try:
                return fn(_SQLiteTx(self._connection()))
            except sqlite3.Error as exc:
                raise self._translate(exc) from exc

    # ----------------------------------------------------------------- dialect
    def _insert_events(self, tx: Tx, rows: list[EventRow]) -> list[tuple[int, EventRow]]:
        # We hold the write lock, so every store_seq above the old maximum is ours:
        # that tells the new events from the ones a retried batch already stored.
        before = int(tx.query("SELECT COALESCE(MAX(store_seq), 0) FROM events")[0][0])
        _insert_in_chunks(tx, rows)
        deriving = {(row[0], row[1]): row for row in rows if row[2] in DERIVING_TYPES}
        if not deriving:
            return []
        # One query for all of them (the type index, then the store_seq range), not
        # one per event: each statement is a GIL handover the agent's thread waits for.
        found = tx.query(_NEW_DERIVING_SQL, (before, *_DERIVING))
        return [(store_seq, deriving[origin, seq]) for store_seq, origin, seq in found]

    def _prefix_condition(self, column: str, prefix: str) -> tuple[str, str]:
        # GLOB is case-sensitive and can use the primary key index; its wildcards
        # are escaped by putting them in a character class.
        escaped = "".join(f"[{c}]" if c in "*?[" else c for c in prefix)
        return f"{column} GLOB ?", escaped + "*"

    def _contains_condition(self, column: str) -> str:
        return f"instr({column}, ?) > 0"

    def _prepare_migration(self, tx: Tx) -> None:
        return  # BEGIN IMMEDIATE already keeps other processes out

    def _version_table_exists(self, tx: Tx) -> bool:
        sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        return bool(tx.query(sql, (_VERSION_TABLE,)))

    # ------------------------------------------------------------------ errors
    def _unwritable(self, exc: BaseException) -> StoreUnavailableError:
        return StoreUnavailableError(
            f"cannot create or write the store at {self.path} ({exc}): set KEEL_HOME to a "
            "writable directory or pass --store sqlite:///path/to/keel.db"
        )

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        """Our error for SQLite's, with what to do about it."""
        code = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        path = self.path
        if code.startswith(("SQLITE_NOTADB", "SQLITE_CORRUPT")) or "not a database" in text:
            return StoreCorruptError(
                f"{path} is not a usable agentkeel database (SQLite says: {text}): move it "
                f"away (mv {path} {path}.broken) and agentkeel will start a fresh store, or "
                "point KEEL_HOME / --store elsewhere"
            )
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
            return StoreUnavailableError(
                f"database is locked by another process: {path} stayed locked for longer "
                f"than the {self.busy_timeout:g} s busy timeout. Finish or close the program "
                "holding it (an open sqlite3 shell, a long transaction) or raise busy_timeout"
            )
        if code.startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_AUTH")):
            return self._unwritable(exc)
        if code.startswith("SQLITE_FULL"):
            return StoreUnavailableError(
                f"the disk holding {path} is full ({text}): free some space or move the "
                "store with KEEL_HOME / --store"
            )
        if code.startswith("SQLITE_IOERR"):
            return StoreUnavailableError(f"cannot read or write {path}: {text}")
        return StoreError(f"the store at {path} failed: {text}")


def _busy_timeout(value: float | timedelta | None) -> float:
    """Seconds to wait for a lock: the argument, else ``$KEEL_SQLITE_BUSY_TIMEOUT``, else 5."""
    source: str = "busy_timeout"
    raw: float | str = 0.0
    if value is None:
        raw = os.environ.get("KEEL_SQLITE_BUSY_TIMEOUT", "").strip()
        if not raw:
            return DEFAULT_BUSY_TIMEOUT
        source = "KEEL_SQLITE_BUSY_TIMEOUT"
    elif isinstance(value, timedelta):
        raw = value.total_seconds()
    else:
        raw = value
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not 0 <= seconds < float("inf"):  # also rejects NaN
        raise ConfigurationError(f"{source} must be a non-negative number of seconds, got {raw!r}")
    return seconds


# Connections inherited from a parent process: kept referenced so that garbage
# collection never closes them underneath the parent.
_abandoned: list[sqlite3.Connection] = []
