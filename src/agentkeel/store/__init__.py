"""The store: where events, runs and failures live (SQLite by default, or PostgreSQL)."""

from agentkeel.store._factory import open_store
from agentkeel.store._protocol import RunRecord, SchemaStatus, Store, StoredEvent
from agentkeel.store._url import keel_home, resolve_store_url

__all__ = [
    "RunRecord",
    "SchemaStatus",
    "Store",
    "StoredEvent",
    "keel_home",
    "open_store",
    "resolve_store_url",
]
