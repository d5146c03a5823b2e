"""The store's schema as numbered migrations, one SQL script per dialect.

To change the schema, append a :class:`Migration` with the next number to
``MIGRATIONS`` (never edit one that has shipped): its statements run in one
transaction together with the row that records it in ``keel_schema_version``, so
a crash mid-upgrade leaves the previous version intact. ``keel db upgrade``
applies what is pending; opening a store does so too unless ``migrate=False``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agentkeel._errors import SchemaVersionError
from agentkeel.store._derive import mask_url
from agentkeel.store._protocol import SchemaStatus

Dialect = Literal["sqlite", "postgres"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return self.sqlite if dialect == "sqlite" else self.postgres


# SQLite keeps JSON as TEXT and booleans as 0/1; PostgreSQL gets JSONB, BOOLEAN and
# IDs in the "C" collation, so that a run ID prefix is a plain B-tree range scan.
_INITIAL_SQLITE = (
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL,
        duration_ms REAL,
        user_id TEXT,
        session_id TEXT,
        parent_run_id TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        error_type TEXT,
        error_message TEXT,
        attributes TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX runs_started_at ON runs (started_at)",
    "CREATE INDEX runs_parent ON runs (parent_run_id)",
    # AUTOINCREMENT: store_seq is never reused, so a reader tailing with after_seq
    # can trust that a number it has passed will not come back.
    """CREATE TABLE events (
        store_seq INTEGER PRIMARY KEY AUTOINCREMENT,
        origin TEXT NOT NULL,
        seq INTEGER NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        severity INTEGER NOT NULL,
        category TEXT,
        run_id TEXT,
        correlation_id TEXT,
        span_id TEXT,
        parent_span_id TEXT,
        wall_ns INTEGER NOT NULL,
        mono_ns INTEGER NOT NULL,
        attributes TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_event_id ON events (origin, seq)",
    "CREATE INDEX events_run ON events (run_id, store_seq)",
    "CREATE INDEX events_type ON events (type)",  # SQLite appends store_seq itself
    """CREATE TABLE failures (
        failure_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        occurred_at REAL NOT NULL,
        category TEXT NOT NULL,
        severity TEXT NOT NULL,
        error_type TEXT NOT NULL,
        error_message TEXT NOT NULL,
        user_id TEXT,
        graph_node TEXT,
        tool_name TEXT,
        latency_ms REAL,
        recovered INTEGER NOT NULL DEFAULT 0,
        recovery_action TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        fingerprint TEXT NOT NULL DEFAULT '',
        attributes TEXT NOT NULL DEFAULT '{}',
        event_seq INTEGER NOT NULL
    )""",
    "CREATE INDEX failures_run ON failures (run_id, occurred_at)",
    "CREATE INDEX failures_time ON failures (occurred_at)",
    "CREATE INDEX failures_fingerprint ON failures (fingerprint)",
    # A recovery may be written before its failure (batches are not ordered across
    # severities), so it is remembered here and applied whichever comes second.
    """CREATE TABLE failure_recoveries (
        failure_id TEXT PRIMARY KEY,
        recovery_action TEXT,
        recovered_at REAL NOT NULL
    )""",
)

_INITIAL_POSTGRES = (
    """CREATE TABLE runs (
        run_id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at DOUBLE PRECISION NOT NULL,
        ended_at DOUBLE PRECISION,
        duration_ms DOUBLE PRECISION,
        user_id TEXT,
        session_id TEXT,
        parent_run_id TEXT COLLATE "C",
        tags JSONB NOT NULL DEFAULT '[]',
        error_type TEXT,
        error_message TEXT,
        attributes JSONB NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX runs_started_at ON runs (started_at)",
    "CREATE INDEX runs_parent ON runs (parent_run_id)",
    """CREATE TABLE events (
        store_seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        origin TEXT COLLATE "C" NOT NULL,
        seq BIGINT NOT NULL,
        type TEXT NOT NULL,
        name TEXT NOT NULL,
        severity INTEGER NOT NULL,
        category TEXT,
        run_id TEXT COLLATE "C",
        correlation_id TEXT,
        span_id TEXT,
        parent_span_id TEXT,
        wall_ns BIGINT NOT NULL,
        mono_ns BIGINT NOT NULL,
        attributes JSONB NOT NULL
    )""",
    "CREATE UNIQUE INDEX events_event_id ON events (origin, seq)",
    "CREATE INDEX events_run ON events (run_id, store_seq)",
    "CREATE INDEX events_type ON events (type, store_seq)",
    """CREATE TABLE failures (
        failure_id TEXT COLLATE "C" PRIMARY KEY,
        run_id TEXT COLLATE "C" NOT NULL,
        occurred_at DOUBLE PRECISION NOT NULL,
        category TEXT NOT NULL,
        severity TEXT NOT NULL,
        error_type TEXT NOT NULL,
        error_message TEXT NOT NULL,
        user_id TEXT,
        graph_node TEXT,
        tool_name TEXT,
        latency_ms DOUBLE PRECISION,
        recovered BOOLEAN NOT NULL DEFAULT FALSE,
        recovery_action TEXT,
        tags JSONB NOT NULL DEFAULT '[]',
        fingerprint TEXT NOT NULL DEFAULT '',
        attributes JSONB NOT NULL DEFAULT '{}',
        event_seq BIGINT NOT NULL
    )""",
    "CREATE INDEX failures_run ON failures (run_id, occurred_at)",
    "CREATE INDEX failures_time ON failures (occurred_at)",
    "CREATE INDEX failures_fingerprint ON failures (fingerprint)",
    """CREATE TABLE failure_recoveries (
        failure_id TEXT COLLATE "C" PRIMARY KEY,
        recovery_action TEXT,
        recovered_at DOUBLE PRECISION NOT NULL
    )""",
)

# Snapshots (rollback) and versioned state (history) keep the state as an opaque,
# possibly compressed blob with the SHA-256 of exactly those bytes, so that a read
# can prove it got back what was written. ``seq`` orders rows as they were saved,
# which a clock (that may stand still or step back) cannot. Version numbers come from
# a counter row per (agent, task): taking the next one is a single upsert that
# PostgreSQL serialises on the row lock, and a number is never handed out twice,
# even after pruning.
_STATES_SQLITE = (
    """CREATE TABLE snapshots (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        snapshot_id TEXT NOT NULL UNIQUE,
        agent_id TEXT NOT NULL,
        task_id TEXT,
        created_at REAL NOT NULL,
        checksum TEXT NOT NULL,
        compressed INTEGER NOT NULL,
        size INTEGER NOT NULL,
        blob BLOB NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX snapshots_agent ON snapshots (agent_id, seq)",
    "CREATE INDEX snapshots_time ON snapshots (created_at)",
    """CREATE TABLE state_versions (
        agent_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        checksum TEXT NOT NULL,
        compressed INTEGER NOT NULL,
        size INTEGER NOT NULL,
        blob BLOB NOT NULL,
        metadata TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (agent_id, task_id, version)
    )""",
    "CREATE INDEX state_versions_time ON state_versions (created_at)",
    """CREATE TABLE state_version_counters (
        agent_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        last_version INTEGER NOT NULL,
        PRIMARY KEY (agent_id, task_id)
    )""",
    """CREATE TABLE interventions (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        intervention_id TEXT NOT NULL UNIQUE,
        agent_id TEXT NOT NULL,
        task_id TEXT,
        at REAL NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('manual', 'automatic')),
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        details TEXT NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX interventions_agent ON interventions (agent_id, at)",
    "CREATE INDEX interventions_time ON interventions (at)",
)

_STATES_POSTGRES = (
    """CREATE TABLE snapshots (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        snapshot_id TEXT COLLATE "C" NOT NULL UNIQUE,
        agent_id TEXT COLLATE "C" NOT NULL,
        task_id TEXT COLLATE "C",
        created_at DOUBLE PRECISION NOT NULL,
        checksum TEXT NOT NULL,
        compressed BOOLEAN NOT NULL,
        size BIGINT NOT NULL,
        blob BYTEA NOT NULL,
        metadata JSONB NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX snapshots_agent ON snapshots (agent_id, seq)",
    "CREATE INDEX snapshots_time ON snapshots (created_at)",
    """CREATE TABLE state_versions (
        agent_id TEXT COLLATE "C" NOT NULL,
        task_id TEXT COLLATE "C" NOT NULL,
        version BIGINT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        checksum TEXT NOT NULL,
        compressed BOOLEAN NOT NULL,
        size BIGINT NOT NULL,
        blob BYTEA NOT NULL,
        metadata JSONB NOT NULL DEFAULT '{}',
        PRIMARY KEY (agent_id, task_id, version)
    )""",
    "CREATE INDEX state_versions_time ON state_versions (created_at)",
    """CREATE TABLE state_version_counters (
        agent_id TEXT COLLATE "C" NOT NULL,
        task_id TEXT COLLATE "C" NOT NULL,
        last_version BIGINT NOT NULL,
        PRIMARY KEY (agent_id, task_id)
    )""",
    """CREATE TABLE interventions (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        intervention_id TEXT COLLATE "C" NOT NULL UNIQUE,
        agent_id TEXT COLLATE "C" NOT NULL,
        task_id TEXT COLLATE "C",
        at DOUBLE PRECISION NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('manual', 'automatic')),
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        details JSONB NOT NULL DEFAULT '{}'
    )""",
    "CREATE INDEX interventions_agent ON interventions (agent_id, at)",
    "CREATE INDEX interventions_time ON interventions (at)",
)

# The dashboard filters runs by status or user and pages them newest first, sorts
# them by duration, and groups failures by fingerprint within a category: indexes
# that let those queries stop after a page instead of reading every run.
_RUN_QUERIES = (
    "CREATE INDEX runs_status_started ON runs (status, started_at)",
    "CREATE INDEX runs_user_started ON runs (user_id, started_at)",
    "CREATE INDEX runs_duration ON runs (duration_ms)",
    "CREATE INDEX failures_category_time ON failures (category, occurred_at)",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial", sqlite=_INITIAL_SQLITE, postgres=_INITIAL_POSTGRES),
    Migration(2, "snapshots_and_history", sqlite=_STATES_SQLITE, postgres=_STATES_POSTGRES),
    Migration(3, "run_query_indexes", sqlite=_RUN_QUERIES, postgres=_RUN_QUERIES),
)

if [m.version for m in MIGRATIONS] != list(range(1, len(MIGRATIONS) + 1)):  # pragma: no cover
    raise RuntimeError("store migrations must be numbered 1, 2, 3 … without gaps")

LATEST = len(MIGRATIONS)

VERSION_TABLE_SQL = """CREATE TABLE IF NOT EXISTS keel_schema_version (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""
READ_VERSION_SQL = "SELECT COALESCE(MAX(version), 0) FROM keel_schema_version"
RECORD_VERSION_SQL = "INSERT INTO keel_schema_version (version, name, applied_at) VALUES (?, ?, ?)"


def pending(current: int, target: int | None = None) -> tuple[Migration, ...]:
    """The migrations after ``current``, up to ``target`` (default: the latest)."""
    return MIGRATIONS[current : LATEST if target is None else target]


def status(current: int) -> SchemaStatus:
    return SchemaStatus(
        current=current, latest=LATEST, pending=tuple(m.label for m in pending(current))
    )


def check_not_newer(current: int, url: str) -> None:
    """A database written by a newer agentkeel must not be touched by this one."""
    if current > LATEST:
        from agentkeel import __version__

        raise SchemaVersionError(
            f"the store {mask_url(url)} has schema version {current}, newer than this "
            f"agentkeel {__version__} knows (version {LATEST}): upgrade agentkeel "
            "(pip install -U agentkeel) on this machine, or use another store"
        )


def check_current(current: int, url: str) -> None:
    """Raise unless the schema is exactly the one this code was written for."""
    check_not_newer(current, url)
    if current < LATEST:
        names = ", ".join(m.label for m in pending(current))
        raise SchemaVersionError(
            f"the store {mask_url(url)} has schema version {current}, but this agentkeel "
            f"needs version {LATEST} (pending: {names}): run `keel db upgrade` to apply "
            "the migrations (or open the store with migrate=True)"
        )


def apply_pending(
    current: int,
    dialect: Dialect,
    execute: Callable[[str, Sequence[Any]], object],
    now: float,
    *,
    target: int | None = None,
) -> list[str]:
    """Run the pending migrations through ``execute``; the caller owns the transaction.

    ``target`` stops at that version instead of the latest: only tests use it, to
    build a database as an older agentkeel left it.
    """
    applied: list[str] = []
    for migration in pending(current, target):
        for statement in migration.statements(dialect):
            execute(statement, ())
        execute(RECORD_VERSION_SQL, (migration.version, migration.name, now))
        applied.append(migration.label)
    return applied
