"""The store: events, runs, failures, snapshots and state history (SQLite or PostgreSQL)."""

from agentkeel.store._factory import open_store
from agentkeel.store._protocol import (
    FailureGroup,
    InterventionRecord,
    RunRecord,
    SchemaStatus,
    SnapshotRecord,
    StateVersionRecord,
    Store,
    StoredEvent,
)
from agentkeel.store._url import keel_home, resolve_store_url

__all__ = [
    "FailureGroup",
    "InterventionRecord",
    "RunRecord",
    "SchemaStatus",
    "SnapshotRecord",
    "StateVersionRecord",
    "Store",
    "StoredEvent",
    "keel_home",
    "open_store",
    "resolve_store_url",
]
